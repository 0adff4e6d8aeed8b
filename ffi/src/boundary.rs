//! The ABI boundary: every `extern "C"` function runs its body through [`guarded`], so an
//! error becomes its negative number and a panic never unwinds into C.

use ipc::{Errno, Result};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Run `body`; its `Ok(n)` is returned as `n` (0 or a positive handle), its `Err(e)` as `e`'s
/// negative number, and a panic as `EDVSGENERIC` (the default hook has printed it).
///
/// `AssertUnwindSafe`: after a caught panic the only state left behind is in the handle
/// tables, whose locks recover from poisoning (see `handles.rs`), and in a `Proc`, whose fields
/// are re-checked against shared memory by every call.
pub(crate) fn guarded(body: impl FnOnce() -> Result<i32>) -> i32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => e.code(),
        Err(_) => Errno::EDVSGENERIC.code(),
    }
}

/// `Ok(())` as 0.
pub(crate) fn done(r: Result<()>) -> Result<i32> {
    r.map(|()| 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_panics_become_numbers() {
        assert_eq!(guarded(|| Ok(7)), 7);
        assert_eq!(guarded(|| Err(Errno::EDVSAGAIN)), -11);
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = guarded(|| panic!("boom"));
        std::panic::set_hook(quiet);
        assert_eq!(r, Errno::EDVSGENERIC.code());
    }
}
