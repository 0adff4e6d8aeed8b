//! Hosting servers: bind their slots, run them under one of the two runners, stop them in
//! order.

use crate::runner::lock;
pub use crate::runner::{
    DEFAULT_STACK, Hosted, MIN_STACK, Runner, STOP_ABANDON, STOP_GRACE, ServerExit, Stopper,
};
use m3ipc::{Dc, Errno, Proc, WaitPolicy};
use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
