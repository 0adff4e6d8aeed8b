//! The sandbox: after boot, a unikernel process keeps only the system calls its servers use.
//!
//! [`enter`] sets `no_new_privs` and installs a seccomp-BPF allowlist ([`mod@profile`], built with
//! `seccompiler`) on every thread of the process at once (TSYNC). A call outside the list traps:
//! a SIGSYS handler on the thread's alternate signal stack writes `muk2: sandbox: server NAME
//! made the forbidden system call CALL (NR)` with `write(2)` and ends the process with
//! [`FORBIDDEN_EXIT`] (`report`).
//!
//! Boot must be over first: the runners announce when their threads have finished starting
//! (`runner_starting`, `runner_ready`; thread creation, stacks and signal stacks use calls
//! the list leaves out), and [`enter`] waits for them.

pub mod profile;
mod report;

pub use profile::{Entry, NETWORK_PROFILE, PROFILE, profile};
pub use report::FORBIDDEN_EXIT;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Runner threads started, and those of them that have finished starting.
static STARTED: AtomicUsize = AtomicUsize::new(0);
static READY: AtomicUsize = AtomicUsize::new(0);

/// How long [`enter`] waits for the runner threads to finish starting.
const READY_WAIT: Duration = Duration::from_secs(10);

/// A runner thread is about to be started (called by the runner before it spawns it).
pub(crate) fn runner_starting() {
    // Relaxed: a counter; `enter` compares it with READY only after both are final.
    STARTED.fetch_add(1, Ordering::Relaxed);
}

/// The calling runner thread has finished starting: its stacks, signal stack and handlers are
/// in place, from here on it makes only the calls of the profile.
pub(crate) fn runner_ready() {
    // Release: `enter` (Acquire) installs the filter after everything this thread did.
    READY.fetch_add(1, Ordering::Release);
}

/// Label the calling thread with the server it runs (MUK: one thread per server), for the
/// report of a forbidden call. MUK2's coroutines are found by their stacks instead.
pub(crate) fn name_thread(name: &str) {
    report::name_thread(name);
}

/// What the filter may name besides the static rules.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The `/proc` directory pinned for liveness checks ([`m3ipc::pin_proc_dir`]): the only
    /// directory `openat` may open in.
    pub proc_dir: i32,
    /// This process's children that it may still SIGKILL and wait for (the self-check client,
    /// the helper that removes the DC).
    pub children: Vec<u32>,
    /// Descriptors besides stdout and stderr that `write` may write to (the pipe that tells the
    /// helper to remove the DC).
    pub write_fds: Vec<i32>,
    /// Whether the unikernel hosts a network server (web, IS): [`NETWORK_PROFILE`] is allowed
    /// too, and `write` takes any descriptor.
    pub network: bool,
}

/// Why the sandbox could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A runner thread never said it had finished starting.
    #[error("the runner threads did not finish starting within {} s", READY_WAIT.as_secs())]
    NotReady,
    /// The filter could not be built.
    #[error("cannot build the seccomp filter: {0}")]
    Build(String),
    /// The kernel refused the filter or `no_new_privs`.
    #[error("cannot install the seccomp filter: {0}")]
    Install(String),
    /// The SIGSYS handler could not be installed.
    #[error("cannot install the SIGSYS handler: {0}")]
    Handler(std::io::Error),
}

/// Wait for the runner threads to finish starting, then install the allowlist on every thread of
/// the process. Irreversible: from here on a call outside [`PROFILE`] ends the process with a
/// message naming it and the server that made it.
pub fn enter(settings: &Settings) -> Result<(), SandboxError> {
    let until = Instant::now() + READY_WAIT;
    // Acquire: pairs with `runner_ready`'s Release.
    while READY.load(Ordering::Acquire) < STARTED.load(Ordering::Relaxed) {
        if Instant::now() >= until {
            return Err(SandboxError::NotReady);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let program = profile::compile(settings)?;
    report::install().map_err(SandboxError::Handler)?;
    seccompiler::apply_filter_all_threads(&program)
        .map_err(|e| SandboxError::Install(e.to_string()))
}

/// The name of system call `nr` on this architecture, for the calls this crate knows.
pub fn call_name(nr: i64) -> Option<&'static str> {
    report::call_name(nr)
}
