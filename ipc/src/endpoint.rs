//! Endpoints: the 32-bit names of bound slots, with generations, and the special values.
//!
//! As in MINIX, an endpoint is `generation * GEN_SIZE + nr`. The generation changes each time a
//! slot is bound again, so a message addressed to a process that has gone never reaches the
//! process that bound the slot after it: the stale endpoint is refused with `EDVSENDPOINT`.
//! Generation 0 gives `endpoint == nr`, which keeps the original's well-known numbers (PM 0,
//! FS 1, SYSTASK -2, ...) valid on a first bind.

/// The 32-bit name of an endpoint, or one of the special values.
pub type Endpoint = i32;

/// Receive from any source.
pub const ANY: Endpoint = 0x7ace;
/// No endpoint.
pub const NONE: Endpoint = 0x6ace;
/// The caller itself.
pub const SELF: Endpoint = 0x8ace;
/// The kernel / hardware pseudo-endpoint (`KERNEL`); never bindable.
pub const HARDWARE: Endpoint = -1;
/// SYSTASK of node 0. `SYSTASK(n)` is `SYSTEM - n`.
pub const SYSTEM: Endpoint = -2;

/// The SYSTASK endpoint number of node `node`.
pub const fn systask(node: i32) -> Endpoint {
    SYSTEM - node
}

/// Largest number of task slots a DC may have (tasks are `-nr_tasks..=-1`).
pub const MAX_TASKS: i32 = 35;
/// Largest number of process slots a DC may have.
pub const MAX_PROCS: i32 = 4096 - MAX_TASKS;
/// Distance between two generations of one slot: larger than every `nr` and every special value.
pub const GEN_SIZE: i32 = MAX_TASKS + SELF + 1;
/// Number of generations before they wrap around to 0.
pub const MAX_GENERATION: u32 = ((i32::MAX - MAX_PROCS) / GEN_SIZE) as u32;

/// The endpoint of slot `nr` at generation `generation` (taken modulo [`MAX_GENERATION`]).
pub const fn make(generation: u32, nr: i32) -> Endpoint {
    (generation % MAX_GENERATION) as i32 * GEN_SIZE + nr
}

/// The slot number (`nr`) named by an endpoint.
pub const fn nr(ep: Endpoint) -> i32 {
    // In i64: any i32 a caller passes (i32::MAX included) must not overflow.
    ((ep as i64 + MAX_TASKS as i64).rem_euclid(GEN_SIZE as i64) - MAX_TASKS as i64) as i32
}

/// The generation named by an endpoint.
pub const fn generation(ep: Endpoint) -> u32 {
    ((ep as i64 + MAX_TASKS as i64).div_euclid(GEN_SIZE as i64)) as u32
}

/// Whether `ep` is one of the special values `ANY`, `NONE`, `SELF` or `HARDWARE`.
pub const fn is_special(ep: Endpoint) -> bool {
    ep == ANY || ep == NONE || ep == SELF || ep == HARDWARE
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generation_zero_is_nr() {
        assert_eq!(make(0, 0), 0);
        assert_eq!(make(0, -2), SYSTEM);
        assert_eq!(make(0, 14), 14);
        assert_eq!(nr(SYSTEM), -2);
        assert_eq!(generation(SYSTEM), 0);
    }

    #[test]
    fn any_i32_decodes_without_overflow() {
        for ep in [i32::MAX, i32::MIN, i32::MAX - MAX_TASKS + 1, -1] {
            let n = nr(ep);
            assert!(
                (-MAX_TASKS..GEN_SIZE - MAX_TASKS).contains(&n),
                "{ep} -> {n}"
            );
            let _ = generation(ep);
        }
    }

    proptest! {
        #[test]
        fn round_trip_and_never_special(g in 0..MAX_GENERATION, n in -MAX_TASKS..MAX_PROCS) {
            prop_assume!(n != HARDWARE);
            let ep = make(g, n);
            prop_assert_eq!(nr(ep), n);
            prop_assert_eq!(generation(ep), g);
            prop_assert!(!is_special(ep), "endpoint {} of ({}, {}) is special", ep, g, n);
        }

        #[test]
        fn generations_differ(g in 0..MAX_GENERATION - 1, n in -MAX_TASKS..MAX_PROCS) {
            prop_assert_ne!(make(g, n), make(g + 1, n));
        }
    }
}
