//! Hosting servers: bind their slots, run them under one of the two runners, stop them in
//! order.

use crate::server::Server;
use m3ipc::{Dc, Errno, Proc, WaitPolicy};
use std::cmp::Reverse;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
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

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A server's slot could not be bound.
    #[error("server {name}: cannot bind slot {nr}: {errno}")]
    Bind {
        /// The server.
        name: String,
        /// Its slot.
        nr: i32,
        /// Why.
        errno: Errno,
    },
    /// A stack smaller than [`MIN_STACK`].
    #[error("server {name}: stack of {size} bytes is below the minimum of {MIN_STACK}")]
    Stack {
        /// The server.
        name: String,
        /// The size asked for.
        size: usize,
    },
    /// The OS refused a thread or a stack.
    #[error("cannot start the runner: {0}")]
    Os(#[from] std::io::Error),
    /// Nothing to host.
    #[error("no server to host")]
    Empty,
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
struct Watch {
    /// A stop was asked.
    stop: bool,
    /// Per runner thread: it has ended.
    ended: Vec<bool>,
}

/// The stop's state, shared by the host, its runners and every [`Stopper`].
pub(crate) struct StopState {
    /// A stop was asked.
    asked: AtomicBool,
    /// The grace is over: every call fails with `EDVSSHUTDOWN`.
    hard: AtomicBool,
    /// Per server: it is asked to finish (its receives and sleeps fail with `EDVSSHUTDOWN`,
    /// its calls to others still work).
    finish: Vec<AtomicBool>,
    /// The order servers are asked in: upper layers first (FTP, then FS, then RDISK), each
    /// once the one before it has returned.
    order: Vec<usize>,
    /// The grace, in milliseconds.
    grace_ms: AtomicU64,
    /// The runner: MUK2's scheduler needs a ring to see the stop; MUK's threads are woken one
    /// by one as they are asked.
    runner: Runner,
    wakers: Vec<m3ipc::Waker>,
    watch: Mutex<Watch>,
    changed: Condvar,
}

/// Stops a running host from any thread (a signal-waiting thread included: it stores flags,
/// rings doorbells and wakes the joining thread, never blocks for long).
///
/// The stop is orderly: the servers are asked to finish one at a time, upper layers first
/// ([`Server::layer`]); a server asked returns from its loop after its final work (FS writes its
/// changes back to RDISK, RDISK flushes its image file), while the servers below it still serve.
/// [`Host::join`] drives it, bounded by the grace ([`STOP_GRACE`]): then every blocked call
/// fails with `EDVSSHUTDOWN`, and a server still not returned [`STOP_ABANDON`] later is left
/// behind and reported.
#[derive(Clone)]
pub struct Stopper {
    pub(crate) state: Arc<StopState>,
}

fn lock(m: &Mutex<Watch>) -> MutexGuard<'_, Watch> {
    // A panic while holding it leaves only flags behind: still valid.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Stopper {
    fn new(
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

    /// Ask the host to stop. Returns at once; [`Host::join`] (or [`Host::stop`]) waits for the
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
    fn ask(&self, i: usize) {
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
    fn wait_for(&self, until: Option<Instant>, done: impl Fn(&Watch) -> bool) -> bool {
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

/// A running host: its servers are bound and serving.
pub struct Host {
    stopper: Stopper,
    threads: Vec<JoinHandle<Vec<ServerExit>>>,
    /// What each runner thread hosts, for the report of one left behind.
    thread_names: Vec<String>,
    runner: Runner,
}

impl Host {
    /// Bind every server's slot in `dc` (all or none), then run them under `runner`.
    ///
    /// MUK2 runs its scheduler on one new thread; MUK starts one thread per server. The calling
    /// thread is free (to wait for signals, to run a self-check).
    pub fn start(dc: &Dc, servers: Vec<Hosted>, runner: Runner) -> Result<Host, HostError> {
        Host::start_with(dc, servers, runner, WaitPolicy::default())
    }

    /// [`Host::start`], with the fabric wait policy of MUK's threads (`Block` makes every wait
    /// a futex sleep, as the original's threads blocked in the kernel; the default `Adaptive`
    /// spins first while the peer runs on another CPU). MUK2 never spins or sleeps in the
    /// fabric (its scheduler does), so the policy does not apply to it.
    pub fn start_with(
        dc: &Dc,
        servers: Vec<Hosted>,
        runner: Runner,
        policy: WaitPolicy,
    ) -> Result<Host, HostError> {
        if servers.is_empty() {
            return Err(HostError::Empty);
        }
        for s in &servers {
            if s.stack_size < MIN_STACK {
                return Err(HostError::Stack {
                    name: s.name.clone(),
                    size: s.stack_size,
                });
            }
        }
        let procs = bind_all(dc, &servers, runner)?;
        for p in &procs {
            p.set_wait_policy(policy);
        }
        // Upper layers first; among equals, the last started first.
        let mut order: Vec<usize> = (0..servers.len()).collect();
        order.sort_by_key(|&i| (Reverse(servers[i].server.layer()), Reverse(i)));
        let thread_names = match runner {
            Runner::Coroutines => vec![format!(
                "the MUK2 scheduler (servers {})",
                servers
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
            Runner::Threads => servers.iter().map(|s| s.name.clone()).collect(),
        };
        let stopper = Stopper::new(
            procs.iter().map(Proc::waker).collect(),
            order,
            thread_names.len(),
            runner,
        );
        let threads = match runner {
            Runner::Coroutines => vec![crate::coro::spawn(servers, procs, stopper.clone())?],
            Runner::Threads => crate::threads::spawn(servers, procs, stopper.clone())?,
        };
        Ok(Host {
            stopper,
            threads,
            thread_names,
            runner,
        })
    }

    /// A handle that stops this host.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// The runner.
    pub fn runner(&self) -> Runner {
        self.runner
    }

    /// How long a stop lets the servers finish before every call fails (default
    /// [`STOP_GRACE`]).
    pub fn set_stop_grace(&self, grace: Duration) {
        let ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        self.stopper.state.grace_ms.store(ms, Ordering::Relaxed);
    }

    /// Stop every server in order and wait for them (see [`Stopper`]); their slots are unbound
    /// when this returns, except a server left behind (reported with an error).
    pub fn stop(self) -> Vec<ServerExit> {
        self.stopper.stop();
        self.join()
    }

    /// Wait until every server has returned: on their own, or after [`Stopper::stop`], which
    /// this then drives (each server asked to finish in turn, bounded by the grace; a server
    /// still running [`STOP_ABANDON`] after it is left behind and reported as an error).
    pub fn join(self) -> Vec<ServerExit> {
        let s = &self.stopper;
        s.wait_for(None, |w| w.stop || w.ended.iter().all(|&e| e));
        let stopped = s.stopping();
        if stopped {
            let grace = Duration::from_millis(s.state.grace_ms.load(Ordering::Relaxed));
            let until = Instant::now() + grace;
            match self.runner {
                // One thread per server, in server order: ask each, wait for it.
                Runner::Threads => {
                    for &i in s.order() {
                        s.ask(i);
                        s.wait_for(Some(until), |w| w.ended.get(i).is_none_or(|&e| e));
                    }
                }
                // The scheduler asks its tasks in order itself.
                Runner::Coroutines => {
                    s.wait_for(Some(until), |w| w.ended.iter().all(|&e| e));
                }
            }
            s.end_grace();
            s.wait_for(Some(Instant::now() + STOP_ABANDON), |w| {
                w.ended.iter().all(|&e| e)
            });
        }
        let ended = lock(&s.state.watch).ended.clone();
        let mut exits = Vec::new();
        for (t, handle) in self.threads.into_iter().enumerate() {
            if !ended.get(t).is_some_and(|&e| e) {
                // Stuck past the grace: leave the thread behind (dropping the handle detaches
                // it); the process's exit ends it.
                exits.push(ServerExit {
                    name: self.thread_names.get(t).cloned().unwrap_or_default(),
                    result: Err(format!(
                        "did not stop within the grace of {} ms; left running",
                        s.state.grace_ms.load(Ordering::Relaxed) + STOP_ABANDON.as_millis() as u64
                    )),
                });
                continue;
            }
            match handle.join() {
                Ok(mut e) => exits.append(&mut e),
                Err(_) => exits.push(ServerExit {
                    name: "runner".into(),
                    result: Err("the runner thread panicked".into()),
                }),
            }
        }
        exits
    }
}

/// Bind each server's slot; on any failure unbind those already bound (dropping them does).
fn bind_all(dc: &Dc, servers: &[Hosted], runner: Runner) -> Result<Vec<Proc>, HostError> {
    let mut procs: Vec<Proc> = Vec::with_capacity(servers.len());
    for s in servers {
        let bound = match (runner, procs.first()) {
            // MUK2 sleeps on one doorbell: the first server's, shared by all the others.
            (Runner::Coroutines, Some(host)) => dc.bind_sharing_doorbell(s.nr, &s.name, host),
            _ => dc.bind_named(s.nr, &s.name),
        };
        let p = bound.map_err(|errno| HostError::Bind {
            name: s.name.clone(),
            nr: s.nr,
            errno,
        })?;
        procs.push(p);
    }
    Ok(procs)
}
