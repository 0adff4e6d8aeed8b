//! Hosting servers: bind their slots, run them under one of the two runners, stop them.

use crate::server::Server;
use m3ipc::{Dc, Errno, Proc, WaitPolicy};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

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

/// Stops a running host from any thread (a signal handler's thread included: it only stores a
/// flag and rings doorbells).
#[derive(Clone)]
pub struct Stopper {
    pub(crate) flag: Arc<AtomicBool>,
    pub(crate) wakers: Arc<Vec<m3ipc::Waker>>,
}

impl Stopper {
    /// Ask every server to stop: blocked calls fail with `EDVSSHUTDOWN`, servers return.
    ///
    /// Under MUK2 every blocked call is ended. Under MUK (threads) the stop reaches receives
    /// and sleeps; a `send` or `sendrec` to an outside endpoint that neither takes the message
    /// nor dies ends only at its own timeout (the fabric cannot withdraw it from another
    /// thread), so servers should give such calls one.
    pub fn stop(&self) {
        // Release: pairs with the Acquire in `stopping`, though the flag carries no data.
        self.flag.store(true, Ordering::Release);
        for w in self.wakers.iter() {
            w.wake();
        }
    }

    /// Whether `stop` was called.
    pub fn stopping(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

/// A running host: its servers are bound and serving.
pub struct Host {
    stopper: Stopper,
    threads: Vec<JoinHandle<Vec<ServerExit>>>,
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
        let stopper = Stopper {
            flag: Arc::new(AtomicBool::new(false)),
            wakers: Arc::new(procs.iter().map(Proc::waker).collect()),
        };
        let threads = match runner {
            Runner::Coroutines => vec![crate::coro::spawn(servers, procs, stopper.clone())?],
            Runner::Threads => crate::threads::spawn(servers, procs, stopper.clone())?,
        };
        Ok(Host {
            stopper,
            threads,
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

    /// Stop every server and wait for them; their slots are unbound when this returns.
    pub fn stop(self) -> Vec<ServerExit> {
        self.stopper.stop();
        self.join()
    }

    /// Wait until every server has returned (after [`Stopper::stop`], or on their own).
    pub fn join(self) -> Vec<ServerExit> {
        let mut exits = Vec::new();
        for t in self.threads {
            match t.join() {
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
