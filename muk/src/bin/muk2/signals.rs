//! SIGINT, SIGTERM and SIGHUP taken by waiting for them, not by a handler.
//!
//! SIGHUP stops as SIGTERM does: closing the terminal of a `muk2 run ... &` stops it in order
//! (unsynced writes flushed, the DC removed) instead of killing it where it stands.
//!
//! The main thread blocks them (with SIGUSR1, this program's own "something finished" signal)
//! before it starts any thread, so every thread inherits the mask and none of them is picked to
//! run a handler. The main thread then sleeps in `sigtimedwait` until one is pending: no handler,
//! no flag, no polling. Children started with `std::process::Command` get an empty mask again
//! (std resets it before `exec`), so Ctrl-C still reaches them.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

/// What woke the main thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// SIGINT, SIGTERM or SIGHUP: the operator asks us to stop (the signal number).
    Stop(libc::c_int),
    /// SIGUSR1: a watcher thread finished something (see [`wake_main`]).
    Wake,
    /// The timeout passed.
    Timeout,
}

/// The signals blocked in this process; only [`Signals::wait`] takes them.
pub struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    /// Block SIGINT, SIGTERM, SIGHUP and SIGUSR1 in the calling thread. Call it before starting any
    /// thread: threads inherit the mask of the thread that starts them.
    pub fn block() -> io::Result<Signals> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initializes the set it is given; sigaddset only writes into that
        // initialized set; the signal numbers are valid.
        let set = unsafe {
            if libc::sigemptyset(set.as_mut_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1] {
                if libc::sigaddset(set.as_mut_ptr(), sig) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            set.assume_init()
        };
        // SAFETY: `set` is an initialized signal set; a null old-set pointer is allowed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(Signals { set })
    }

    /// Sleep until one of the blocked signals is pending (and take it), or `timeout` passes.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<Event> {
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
        loop {
            // SAFETY: `self.set` is an initialized set; a null info pointer is allowed; `ts_ptr`
            // is null (wait forever) or points to `ts`, which outlives the call.
            let sig = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), ts_ptr) };
            if sig >= 0 {
                return Ok(match sig {
                    libc::SIGUSR1 => Event::Wake,
                    other => Event::Stop(other),
                });
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // Another (unblocked) signal interrupted the wait: wait again. The timeout then
                // restarts, which only lengthens a rare wait.
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(Event::Timeout),
                _ => return Err(e),
            }
        }
    }
}

/// Wake the main thread out of [`Signals::wait`] with [`Event::Wake`]: send SIGUSR1 to this
/// process. Every thread blocks it, so it stays pending until the main thread takes it.
pub fn wake_main() {
    // SAFETY: kill with our own pid and a valid signal number has no memory effects.
    unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
}

/// The name of a stop signal, for messages.
pub fn name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
