//! MUK: each server on its own OS thread, every call through the fabric.
//!
//! The baseline MUK2 must beat: the same servers, the same code, but each rendezvous between two
//! servers is a cross-thread wake (a futex when the peer sleeps) instead of a coroutine switch.

use crate::host::{EndGuard, Hosted, ServerExit, Stopper};
use crate::ipc::Ipc;
use m3ipc::{
    Access, BufView, CopyRef, Dc, Endpoint, Errno, GrantId, Handle, Message, Proc, Result, Timeout,
};
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

fn run_one(hosted: Hosted, proc: Proc, me: usize, stopper: Stopper) -> ServerExit {
    let Hosted {
        name, mut server, ..
    } = hosted;
    let mut ctx = ThreadIpc {
        proc,
        name: name.clone(),
        me,
        stopper,
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
        let r = self.proc.receive(src, m, timeout);
        self.stop_check(r)
    }

    fn sendrec(&mut self, dst: Endpoint, m: &mut Message, timeout: Timeout) -> Result<()> {
        self.live_to_send()?;
        self.proc.sendrec(dst, m, timeout)
    }

    fn rcvrqst(&mut self, m: &mut Message, timeout: Timeout) -> Result<()> {
        self.live()?;
        let r = self.proc.rcvrqst(m, timeout);
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
            self.proc.doorbell_wait(seen, Some(until - now));
        }
    }

    fn stopping(&self) -> bool {
        self.stopper.finishing(self.me)
    }
}
