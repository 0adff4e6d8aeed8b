//! The runner interface: what the host hands each of its two runners (MUK2's coroutine
//! scheduler in `coro/`, MUK's threads in `threads.rs`) and how it stops them. The host
//! (`host.rs`) picks a runner and starts it; the runners know only this module, so neither
//! imports the host.

use crate::server::Server;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Default stack of a server coroutine.
pub const DEFAULT_STACK: usize = 256 * 1024;
/// Smallest stack a server coroutine may be given.
pub const MIN_STACK: usize = 16 * 1024;

/// How the servers run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Runner {
    /// MUK2: every server a coroutine on one scheduler thread.
    #[default]
    Coroutines,
    /// MUK: every server on its own OS thread, blocking through the fabric.
    Threads,
}

/// One server to host.
pub struct Hosted {
    /// Its name (shown by `dvs ps` and in errors).
    pub name: String,
    /// The slot it binds.
    pub nr: i32,
    /// Its coroutine stack in bytes (MUK2; MUK threads get it as their thread stack).
    pub stack_size: usize,
    /// The server.
    pub server: Box<dyn Server>,
}

/// How a hosted server ended.
#[derive(Debug)]
pub struct ServerExit {
    /// The server's name.
    pub name: String,
    /// What its loop returned (`Err` when it failed or panicked).
    pub result: Result<(), String>,
}

/// How long a stop lets the servers finish their work (FS writes back, RDISK flushes its image
/// file) before every call of theirs fails with `EDVSSHUTDOWN`.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// After the grace, how long a stop still waits for a server stuck outside any call (or, under
/// MUK, in a call to an outside endpoint that never answers) before it leaves it behind.
pub const STOP_ABANDON: Duration = Duration::from_secs(1);

/// What the thread that joins a host waits for.
pub(crate) struct Watch {
    /// A stop was asked.
    pub(crate) stop: bool,
    /// Per runner thread: it has ended.
    pub(crate) ended: Vec<bool>,
}

/// The stop's state, shared by the host, its runners and every [`Stopper`].
pub(crate) struct StopState {
    /// A stop was asked.
    pub(crate) asked: AtomicBool,
    /// The grace is over: every call fails with `EDVSSHUTDOWN`.
    pub(crate) hard: AtomicBool,
    /// Per server: it is asked to finish (its receives and sleeps fail with `EDVSSHUTDOWN`,
    /// its calls to others still work).
    pub(crate) finish: Vec<AtomicBool>,
    /// The order servers are asked in: upper layers first (FTP, then FS, then RDISK), each
    /// once the one before it has returned.
    pub(crate) order: Vec<usize>,
    /// The grace, in milliseconds.
    pub(crate) grace_ms: AtomicU64,
    /// The runner: MUK2's scheduler needs a ring to see the stop; MUK's threads are woken one
    /// by one as they are asked.
    pub(crate) runner: Runner,
    pub(crate) wakers: Vec<m3ipc::Waker>,
    pub(crate) watch: Mutex<Watch>,
    pub(crate) changed: Condvar,
}

/// Stops a running host from any thread (a signal-waiting thread included: it stores flags,
/// rings doorbells and wakes the joining thread, never blocks for long).
///
/// The stop is orderly: the servers are asked to finish one at a time, upper layers first
/// ([`Server::layer`]); a server asked returns from its loop after its final work (FS writes its
/// changes back to RDISK, RDISK flushes its image file), while the servers below it still serve.
/// [`Host::join`](crate::host::Host::join) drives it, bounded by the grace ([`STOP_GRACE`]): then every blocked call
/// fails with `EDVSSHUTDOWN`, and a server still not returned [`STOP_ABANDON`] later is left
/// behind and reported.
#[derive(Clone)]
pub struct Stopper {
    pub(crate) state: Arc<StopState>,
}

pub(crate) fn lock(m: &Mutex<Watch>) -> MutexGuard<'_, Watch> {
    // A panic while holding it leaves only flags behind: still valid.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Stopper {
    pub(crate) fn new(
        wakers: Vec<m3ipc::Waker>,
        order: Vec<usize>,
        threads: usize,
        runner: Runner,
    ) -> Stopper {
        Stopper {
            state: Arc::new(StopState {
                asked: AtomicBool::new(false),
                hard: AtomicBool::new(false),
                finish: (0..wakers.len()).map(|_| AtomicBool::new(false)).collect(),
                order,
                grace_ms: AtomicU64::new(STOP_GRACE.as_millis() as u64),
                runner,
                wakers,
                watch: Mutex::new(Watch {
                    stop: false,
                    ended: vec![false; threads],
                }),
                changed: Condvar::new(),
            }),
        }
    }

    /// Ask the host to stop. Returns at once; [`Host::join`](crate::host::Host::join) (or [`Host::stop`](crate::host::Host::stop)) waits for the
    /// servers to finish in order.
    pub fn stop(&self) {
        let s = &*self.state;
        // Release/Acquire: the flag carries no data; the pairs only order it before the rings.
        s.asked.store(true, Ordering::Release);
        lock(&s.watch).stop = true;
        s.changed.notify_all();
        // MUK2's scheduler sleeps on the doorbell its tasks share: one ring reaches it (the
        // task woken takes it as nothing received). MUK's threads are woken as they are asked.
        if s.runner == Runner::Coroutines
            && let Some(w) = s.order.first().and_then(|&i| s.wakers.get(i))
        {
            w.wake();
        }
    }

    /// Whether `stop` was called.
    pub fn stopping(&self) -> bool {
        self.state.asked.load(Ordering::Acquire)
    }

    /// Whether the grace is over: every call fails.
    pub(crate) fn hard(&self) -> bool {
        self.state.hard.load(Ordering::Acquire)
    }

    /// Whether server `i` is to finish: asked, or the grace is over.
    pub(crate) fn finishing(&self, i: usize) -> bool {
        self.hard()
            || self
                .state
                .finish
                .get(i)
                .is_some_and(|f| f.load(Ordering::Acquire))
    }

    /// The order servers are asked to finish in.
    pub(crate) fn order(&self) -> &[usize] {
        &self.state.order
    }

    /// Ask server `i` to finish (MUK: its thread wakes).
    pub(crate) fn ask(&self, i: usize) {
        if let Some(f) = self.state.finish.get(i) {
            f.store(true, Ordering::Release);
        }
        if let Some(w) = self.state.wakers.get(i) {
            w.wake();
        }
    }

    /// End the grace: every call fails from now on.
    pub(crate) fn end_grace(&self) {
        self.state.hard.store(true, Ordering::Release);
        for w in &self.state.wakers {
            w.wake();
        }
    }

    /// Runner thread `t` ended (called from its last act, on unwinding too).
    pub(crate) fn thread_ended(&self, t: usize) {
        if let Some(e) = lock(&self.state.watch).ended.get_mut(t) {
            *e = true;
        }
        self.state.changed.notify_all();
    }

    /// Wait until `done` holds for the watch, or `until` passes (`None`: no bound); whether it
    /// holds.
    pub(crate) fn wait_for(&self, until: Option<Instant>, done: impl Fn(&Watch) -> bool) -> bool {
        let s = &*self.state;
        let mut w = lock(&s.watch);
        loop {
            if done(&w) {
                return true;
            }
            w = match until {
                None => s.changed.wait(w).unwrap_or_else(PoisonError::into_inner),
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    s.changed
                        .wait_timeout(w, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

/// Marks runner thread `t` ended when dropped: at its end, and if it unwinds.
pub(crate) struct EndGuard {
    pub(crate) stopper: Stopper,
    pub(crate) thread: usize,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.stopper.thread_ended(self.thread);
    }
}
