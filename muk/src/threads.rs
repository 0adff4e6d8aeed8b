//! MUK: each server on its own OS thread, every call through the fabric.
//!
//! The baseline MUK2 must beat: the same servers, the same code, but each rendezvous between two
//! servers is a cross-thread wake (a futex when the peer sleeps) instead of a coroutine switch.
//!
//! A thread sleeps on its slot's doorbell, a region word: each sleep lasts at most the fabric's
//! liveness tick (the doorbell's rule), and after each one a blocked call asks this thread's
//! give-up hook, which reads the host's private stop flags. So a stop reaches a thread within a
//! tick even when a scribble ate its ring (or made its [`m3ipc::Waker`] refuse to ring).

use crate::ipc::Ipc;
use crate::runner::{EndGuard, Hosted, ServerExit, Stopper};
use m3ipc::{
    Access, BufView, CopyRef, Dc, Endpoint, Errno, GrantId, Handle, Message, Proc, Result, Timeout,
};
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Start one thread per server; each returns its server's exit.
pub(crate) fn spawn(
    servers: Vec<Hosted>,
    procs: Vec<Proc>,
    stopper: Stopper,
) -> std::io::Result<Vec<JoinHandle<Vec<ServerExit>>>> {
    let mut threads = Vec::with_capacity(servers.len());
    for (me, (hosted, proc)) in servers.into_iter().zip(procs).enumerate() {
        let own = stopper.clone();
        crate::sandbox::runner_starting();
        let t = std::thread::Builder::new()
            .name(hosted.name.clone())
            .stack_size(hosted.stack_size)
            .spawn(move || {
                crate::sandbox::name_thread(&hosted.name);
                crate::sandbox::runner_ready();
                let _ended = EndGuard {
                    stopper: own.clone(),
                    thread: me,
                };
                vec![run_one(hosted, proc, me, own)]
            });
        match t {
            Ok(t) => threads.push(t),
            Err(e) => {
                // Stop those already started before reporting (no final work is due: nobody
                // was served yet).
                stopper.stop();
                stopper.end_grace();
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
        }
    }
    Ok(threads)
}

std::thread_local! {
    /// This thread's host stop and server index, for [`gives_up`].
    static STOP: RefCell<Option<(Stopper, usize)>> = const { RefCell::new(None) };
    /// The blocked call is a receive: it gives up once the server is asked to finish; other
    /// calls only once the grace is over (a finishing server still calls those below it).
    static RECEIVING: Cell<bool> = const { Cell::new(false) };
}

/// The give-up hook of a MUK thread (see `m3ipc::wait::set_give_up_hook`).
fn gives_up() -> bool {
    STOP.with_borrow(|s| {
        s.as_ref().is_some_and(|(stopper, me)| {
            if RECEIVING.get() {
                stopper.finishing(*me)
            } else {
                stopper.hard()
            }
        })
    })
}

/// Run `call` as a receive (see [`RECEIVING`]).
fn receiving<T>(call: impl FnOnce() -> T) -> T {
    RECEIVING.set(true);
    let r = call();
    RECEIVING.set(false);
    r
}

fn run_one(hosted: Hosted, proc: Proc, me: usize, stopper: Stopper) -> ServerExit {
    let Hosted {
        name, mut server, ..
    } = hosted;
    STOP.set(Some((stopper.clone(), me)));
    m3ipc::wait::set_give_up_hook(Some(gives_up));
    let mut ctx = ThreadIpc {
        proc,
        name: name.clone(),
        me,
        stopper,
        epoll: None,
    };
    let result = match catch_unwind(AssertUnwindSafe(|| server.serve(&mut ctx))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e}")),
        Err(_) => Err("panicked".into()),
    };
    ServerExit { name, result }
}

/// A server's view of the fabric from its own thread.
pub struct ThreadIpc {
    proc: Proc,
    name: String,
    /// Its index among the host's servers.
    me: usize,
    stopper: Stopper,
    /// Its sockets, once it watches one.
    epoll: Option<crate::sockets::Epoll>,
}

impl ThreadIpc {
    /// Map the wakeup that asks this server to finish to `EDVSSHUTDOWN`.
    fn stop_check<T>(&self, r: Result<T>) -> Result<T> {
        match r {
            Err(Errno::EDVSWOKENUP) if self.stopper.finishing(self.me) => Err(Errno::EDVSSHUTDOWN),
            r => r,
        }
    }

    /// Receives and sleeps fail once this server is asked to finish.
    fn live(&self) -> Result<()> {
        if self.stopper.finishing(self.me) {
            Err(Errno::EDVSSHUTDOWN)
        } else {
            Ok(())
        }
    }

    /// Sends fail only once the grace is over: a server that finishes still calls those below.
    fn live_to_send(&self) -> Result<()> {
        if self.stopper.hard() {
            Err(Errno::EDVSSHUTDOWN)
        } else {
            Ok(())
        }
    }
}

impl Ipc for ThreadIpc {
    fn endpoint(&self) -> Endpoint {
        self.proc.endpoint()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn dc(&self) -> &Dc {
        self.proc.dc()
    }

    fn send(&mut self, dst: Endpoint, m: &Message, timeout: Timeout) -> Result<()> {
        self.live_to_send()?;
        self.proc.send(dst, m, timeout)
    }

    fn receive(&mut self, src: Endpoint, m: &mut Message, timeout: Timeout) -> Result<()> {
        self.live()?;
        let r = receiving(|| self.proc.receive(src, m, timeout));
        self.stop_check(r)
    }

    fn sendrec(&mut self, dst: Endpoint, m: &mut Message, timeout: Timeout) -> Result<()> {
        self.live_to_send()?;
        self.proc.sendrec(dst, m, timeout)
    }

    fn rcvrqst(&mut self, m: &mut Message, timeout: Timeout) -> Result<()> {
        self.live()?;
        let r = receiving(|| self.proc.rcvrqst(m, timeout));
        self.stop_check(r)
    }

    fn reply(&mut self, dst: Endpoint, m: &Message) -> Result<()> {
        self.proc.reply(dst, m)
    }

    fn notify(&mut self, dst: Endpoint) -> Result<()> {
        self.proc.notify(dst)
    }

    fn vcopy(
        &mut self,
        src_ep: Endpoint,
        src: CopyRef,
        src_off: usize,
        dst_ep: Endpoint,
        dst: CopyRef,
        dst_off: usize,
        len: usize,
    ) -> Result<()> {
        self.proc
            .vcopy(src_ep, src, src_off, dst_ep, dst, dst_off, len)
    }

    fn alloc_buffer(&mut self, len: usize) -> Result<Handle> {
        self.proc.alloc_buffer(len)
    }

    fn buffer(&self, h: Handle) -> Result<BufView<'_>> {
        self.proc.buffer(h)
    }

    fn give(&mut self, h: Handle, to: Endpoint) -> Result<()> {
        self.proc.give(h, to)
    }

    fn release_buffer(&mut self, h: Handle) -> Result<()> {
        self.proc.release_buffer(h)
    }

    fn grant(
        &mut self,
        h: Handle,
        grantee: Endpoint,
        offset: usize,
        len: usize,
        access: Access,
    ) -> Result<GrantId> {
        self.proc.grant(h, grantee, offset, len, access)
    }

    fn revoke(&mut self, id: GrantId) -> Result<()> {
        self.proc.revoke(id)
    }

    fn granted(&self, grantor: Endpoint, id: GrantId) -> Result<BufView<'_>> {
        self.proc.granted(grantor, id)
    }

    fn sleep(&mut self, d: Duration) -> Result<()> {
        let until = Instant::now() + d;
        loop {
            self.live()?;
            let seen = self.proc.doorbell_rings();
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            // A stop rings our doorbell, so the sleep ends at once; other rings only re-check.
            // A ring lost to a scribble costs a tick: the wait never lasts longer, and the loop
            // reads the private stop flags (`live`).
            self.proc.doorbell_wait(seen, Some(until - now));
        }
    }

    fn stopping(&self) -> bool {
        self.stopper.finishing(self.me)
    }

    fn watch_fd(&mut self, fd: std::os::fd::RawFd, token: u64) -> Result<()> {
        if token > crate::sockets::MAX_TOKEN {
            return Err(Errno::EDVSBADVALUE);
        }
        if self.epoll.is_none() {
            self.epoll = Some(crate::sockets::Epoll::new()?);
        }
        self.epoll
            .as_ref()
            .ok_or(Errno::EDVSGENERIC)?
            .add(fd, token)
    }

    fn unwatch_fd(&mut self, fd: std::os::fd::RawFd) -> Result<()> {
        self.epoll.as_ref().ok_or(Errno::EDVSBADF)?.del(fd)
    }

    fn wait_io(&mut self, events: &mut Vec<crate::ipc::IoEvent>, timeout: Timeout) -> Result<()> {
        let until = match timeout {
            Timeout::Forever => None,
            Timeout::NoWait => Some(Instant::now()),
            Timeout::Millis(ms) => Some(Instant::now() + Duration::from_millis(u64::from(ms))),
        };
        let Some(ep) = self.epoll.as_ref() else {
            // Nothing watched: a plain sleep.
            return match until {
                Some(u) => self.sleep(u.saturating_duration_since(Instant::now())),
                None => self.sleep(Duration::from_secs(86_400)),
            };
        };
        loop {
            self.live()?;
            // The thread blocks in epoll_wait, a liveness tick at a time, to see a stop.
            let left = until.map_or(m3ipc::wait::LIVENESS_TICK, |u| {
                u.saturating_duration_since(Instant::now())
                    .min(m3ipc::wait::LIVENESS_TICK)
            });
            let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            let n = ep.wait(ms, |token, readable, writable| {
                events.push(crate::ipc::IoEvent {
                    token,
                    readable,
                    writable,
                });
            });
            if n > 0 || until.is_some_and(|u| Instant::now() >= u) {
                return Ok(());
            }
        }
    }
}
