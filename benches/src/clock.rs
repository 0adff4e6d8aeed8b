//! Timing one operation: the CPU's time-stamp counter, converted to nanoseconds with a rate
//! measured once against the system clock.
//!
//! Reading `Instant::now()` costs about 25 ns on these guests, two counter reads about 20 ns;
//! every sample includes one pair of reads, whatever the scenario, so ratios stay fair.
//! [`overhead_ns`] tells what the pair costs, measured in the same run.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The time-stamp counter (or, off x86-64, nanoseconds of a monotonic clock).
#[inline]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions; it only reads the time-stamp counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Nanoseconds per tick, measured once (20 ms) against `Instant`.
pub fn ns_per_tick() -> f64 {
    static RATE: OnceLock<f64> = OnceLock::new();
    *RATE.get_or_init(|| {
        let (w0, t0) = (Instant::now(), ticks());
        std::thread::sleep(Duration::from_millis(20));
        let (wall, t) = (w0.elapsed(), ticks().wrapping_sub(t0));
        if t == 0 {
            1.0
        } else {
            wall.as_nanos() as f64 / t as f64
        }
    })
}

/// Convert a tick count to nanoseconds.
pub fn to_ns(ticks: u64) -> u64 {
    (ticks as f64 * ns_per_tick()) as u64
}

/// What two back-to-back counter reads cost, in nanoseconds (median of 100 000).
pub fn overhead_ns() -> u64 {
    let mut t: Vec<u64> = (0..100_000)
        .map(|_| {
            let a = ticks();
            std::hint::black_box(());
            ticks().wrapping_sub(a)
        })
        .collect();
    t.sort_unstable();
    to_ns(t[t.len() / 2])
}

/// Where a batch's per-operation times go (nanoseconds), if anywhere.
pub type Record<'a> = Option<&'a mut dyn FnMut(u64)>;

/// Run `op` `n` times; with `record`, time each run with the counter and pass it on. Returns
/// the batch's wall time. The first error stops the batch.
pub fn timed_loop<E>(
    n: u64,
    record: Record<'_>,
    mut op: impl FnMut() -> Result<(), E>,
) -> Result<Duration, E> {
    let start = Instant::now();
    match record {
        None => {
            for _ in 0..n {
                op()?;
            }
        }
        Some(rec) => {
            let rate = ns_per_tick();
            for _ in 0..n {
                let a = ticks();
                op()?;
                let b = ticks();
                rec((b.wrapping_sub(a) as f64 * rate) as u64);
            }
        }
    }
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_what_it_runs() {
        let mut seen = Vec::new();
        let mut calls = 0;
        let mut rec = |ns| seen.push(ns);
        let wall = timed_loop::<()>(5, Some(&mut rec), || {
            calls += 1;
            std::thread::sleep(Duration::from_millis(2));
            Ok(())
        });
        assert_eq!(calls, 5);
        assert_eq!(seen.len(), 5);
        assert!(wall.is_ok_and(|w| w >= Duration::from_millis(10)));
        // Each sample is about 2 ms: the rate is right within a factor of two.
        assert!(
            seen.iter().all(|&ns| (1_500_000..40_000_000).contains(&ns)),
            "{seen:?}"
        );
        assert_eq!(timed_loop(3, None, || Err::<(), _>("stop")), Err("stop"));
    }
}
