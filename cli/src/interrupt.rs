//! Ctrl-C during `dvs demo` and `dvs bench`: the command survives it long enough to clean up.
//!
//! The terminal sends SIGINT to the whole foreground process group, so the child processes (which
//! keep the default action, as `exec` resets caught signals) die at once. The parent only notes
//! the signal; it then sees its children fail, removes its DC and shared-memory files as it does on
//! any error, and exits with code 130.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_signal: libc::c_int) {
    REQUESTED.store(true, Ordering::Relaxed);
}

/// Catch SIGINT from now on: it sets a flag that [`requested`] reads.
pub fn install() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe; it is a plain
    // `extern "C"` function that lives as long as the program.
    unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
}

/// Whether SIGINT arrived since [`install`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}
