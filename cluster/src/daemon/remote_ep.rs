//! One remote endpoint's thread: it owns the remote slot's [`Proc`] (a `Proc` is used by one
//! thread at a time) and does, in the order they were queued, everything done as that
//! endpoint: deliver its incoming calls, take the calls made to it and forward them, give the
//! replies the far side sent, and finally unbind or drop the slot.

use super::node::Node;
use super::served::{Pending, Served};
use crate::wire::{Command, Frame};
use m3ipc::{ANY, Endpoint, Errno, Message, Proc, Taken, Timeout, wait};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Calls taken per poll before the thread looks at its other jobs (it polls again after).
const TAKE_BATCH: usize = 64;
/// How long an unbind waits for the calls queued before it, before their calls give up.
const UNBIND_GRACE: Duration = Duration::from_millis(500);

/// Something to do as the remote endpoint.
pub(crate) enum Job {
    /// Take the calls made to it and forward them.
    Poll,
    /// Make the call a frame from the remote endpoint asks for.
    Deliver(Frame),
    /// Serve a chunk of a copy against a grant a local endpoint issued to this remote one.
    Copy(Frame),
    /// Give `client` the reply the far side sent.
    Reply { client: Endpoint, msg: Message },
    /// The far side could not answer `client`'s request.
    FailRequest { client: Endpoint, why: Errno },
    /// The remote endpoint unbound: unbind the slot (waiters get the dead-peer errors).
    Unbind,
    /// The link is gone: drop the slot (waiters get `EDVSNOTCONN`).
    Drop,
}

/// The table's handle on a remote endpoint's thread.
pub(crate) struct RemoteEp {
    pub(crate) node: u32,
    pub(crate) ep: Endpoint,
    jobs: Sender<Job>,
    poll_queued: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl RemoteEp {
    /// Start the thread of remote slot `proc`, bound for an endpoint of node `peer`.
    pub(crate) fn start(node: &Node, served: &Served, proc: Proc, peer: u32) -> RemoteEp {
        let (jobs, rx) = channel();
        let (done_tx, done) = channel();
        let poll_queued = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let ep = proc.endpoint();
        let ctx = Ctx {
            node: node.weak(),
            served: served.weak(),
            peer,
            dcid: served.dcid,
            jobs: jobs.clone(),
            poll_queued: poll_queued.clone(),
        };
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("m3node-ep{}", m3ipc::endpoint::nr(ep)))
            .spawn(move || {
                run(&ctx, proc, &rx, flag);
                let _ = done_tx.send(());
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("m3node: cannot start the thread of endpoint {ep}: {e}");
                None
            }
        };
        let r = RemoteEp {
            node: peer,
            ep,
            jobs,
            poll_queued,
            stop,
            done,
            thread,
        };
        // Calls may be waiting already.
        r.poke();
        r
    }

    pub(crate) fn push(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    /// Ask the thread to take calls (at most one poll queued at a time).
    pub(crate) fn poke(&self) {
        // AcqRel: the thread clears the flag before it polls, so a call made after it cleared
        // it is seen by that poll or by the one queued here.
        if !self.poll_queued.swap(true, Ordering::AcqRel) {
            self.push(Job::Poll);
        }
    }

    /// Make the calls in flight give up (the link is gone).
    pub(crate) fn give_up(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Queue `last` (`Unbind` or `Drop`) and wait for the thread to end. For an unbind, the
    /// calls queued before it get [`UNBIND_GRACE`] to finish before they are made to give up.
    pub(crate) fn finish(mut self, last: Job) {
        self.push(last);
        if self.done.recv_timeout(UNBIND_GRACE).is_err() {
            self.give_up();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the thread needs besides its slot.
struct Ctx {
    node: Weak<Node>,
    served: Weak<Served>,
    peer: u32,
    dcid: u32,
    jobs: Sender<Job>,
    poll_queued: Arc<AtomicBool>,
}

std::thread_local! {
    /// The stop flag of the remote endpoint this thread serves (read by the give-up hook).
    static STOP: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

fn stop_requested() -> bool {
    STOP.with(|s| {
        s.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    })
}

fn run(ctx: &Ctx, proc: Proc, rx: &Receiver<Job>, stop: Arc<AtomicBool>) {
    STOP.with(|s| *s.borrow_mut() = Some(stop));
    // A blocked incoming call gives up (EDVSSHUTDOWN) once its link is gone.
    wait::set_give_up_hook(Some(stop_requested));
    while let Ok(job) = rx.recv() {
        match job {
            Job::Poll => {
                ctx.poll_queued.store(false, Ordering::Release);
                forward_calls(ctx, &proc);
            }
            Job::Deliver(f) => deliver(ctx, &proc, f),
            Job::Copy(f) => {
                if let Some(node) = ctx.node.upgrade() {
                    let _ = node.send(ctx.peer, &super::copies::serve(&proc, ctx.dcid, &f));
                }
            }
            Job::Reply { client, msg } => {
                // EDVSPROCSTS: the client gave up meanwhile.
                let _ = proc.reply(client, &msg);
            }
            Job::FailRequest { client, why } => {
                let _ = proc.fail_request(client, why);
            }
            Job::Unbind => {
                let _ = proc.unbind();
                return;
            }
            Job::Drop => return,
        }
    }
}

/// Take the calls made to this remote slot and send them to its node.
fn forward_calls(ctx: &Ctx, proc: &Proc) {
    let (Some(node), Some(served)) = (ctx.node.upgrade(), ctx.served.upgrade()) else {
        return;
    };
    for _ in 0..TAKE_BATCH {
        match proc.take_held(ANY, Timeout::NoWait) {
            Ok(taken) => forward(ctx, &node, &served, proc, taken),
            // A local wakeup of the remote endpoint: no sender to name, not forwarded.
            Err(Errno::EDVSWOKENUP) => {}
            Err(_) => return,
        }
    }
    // More may wait: look again after the other jobs.
    if !ctx.poll_queued.swap(true, Ordering::AcqRel) {
        let _ = ctx.jobs.send(Job::Poll);
    }
}

fn forward(ctx: &Ctx, node: &Node, served: &Served, proc: &Proc, taken: Taken) {
    let m = *taken.message();
    let src = m.m_source;
    served.announce_source(node, src);
    let seq = node.next_seq();
    let cmd = match &taken {
        Taken::Send(_) => Command::Send,
        Taken::Request(_) => Command::Sendrec,
        Taken::Notify(_) => Command::Notify,
        Taken::Async(_) => Command::Senda,
    };
    let mut f = Frame::new(cmd, ctx.dcid, src, proc.endpoint(), seq);
    f.msg = m;
    match taken {
        Taken::Send(held) => {
            served.add_pending(
                seq,
                Pending::Send {
                    peer: ctx.peer,
                    held,
                },
            );
            if node.send(ctx.peer, &f).is_err()
                && let Some(Pending::Send { held, .. }) = served.take_pending(seq)
            {
                let _ = held.fail(Errno::EDVSNOTCONN);
            }
        }
        Taken::Request(_) => {
            served.add_pending(
                seq,
                Pending::Sendrec {
                    peer: ctx.peer,
                    via: proc.nr(),
                    client: src,
                },
            );
            if node.send(ctx.peer, &f).is_err() && served.take_pending(seq).is_some() {
                let _ = proc.fail_request(src, Errno::EDVSNOTCONN);
            }
        }
        // Complete when taken, as specified: a link that is down loses them.
        Taken::Notify(_) | Taken::Async(_) => {
            let _ = node.send(ctx.peer, &f);
        }
    }
}

/// Make the call frame `f` asks for, as this remote endpoint, and answer it.
fn deliver(ctx: &Ctx, proc: &Proc, f: Frame) {
    let Some(node) = ctx.node.upgrade() else {
        return;
    };
    let Some(served) = ctx.served.upgrade() else {
        return;
    };
    let answer = |cmd: Command, rcode: i32, msg: Message| {
        let mut a = Frame::new(cmd, ctx.dcid, f.dst, f.src, f.seq);
        a.rcode = rcode;
        a.msg = msg;
        let _ = node.send(ctx.peer, &a);
    };
    match f.cmd {
        Command::Send => {
            served.in_flight.fetch_add(1, Ordering::Relaxed);
            let r = proc.send(f.dst, &f.msg, Timeout::Forever);
            served.in_flight.fetch_sub(1, Ordering::Relaxed);
            answer(Command::SendAck, rcode(r), Message::default());
        }
        Command::Sendrec => {
            let mut m = f.msg;
            served.in_flight.fetch_add(1, Ordering::Relaxed);
            let r = proc.sendrec(f.dst, &mut m, Timeout::Forever);
            served.in_flight.fetch_sub(1, Ordering::Relaxed);
            let msg = if r.is_ok() { m } else { Message::default() };
            answer(Command::Reply, rcode(r), msg);
        }
        Command::Notify => {
            let _ = proc.notify(f.dst);
        }
        Command::Senda => {
            let _ = proc.senda(f.dst, &f.msg);
        }
        _ => {}
    }
}

fn rcode(r: m3ipc::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}
