//! One remote endpoint as the daemon holds it: the remote slot's [`Proc`], the call it makes now
//! on behalf of the remote endpoint, and the calls from it that wait their turn.
//!
//! Nothing here blocks. Incoming calls are *posted* ([`Proc::start_call`]) by the link's reader
//! thread; their outcomes ring the proxy's doorbell, which the DC's pump thread (`served.rs`)
//! sleeps on, and the pump polls them ([`RemoteEp::pump`]) and answers the far side. The same
//! look takes the calls local processes made to the remote endpoint ([`Proc::take_held`]) and
//! writes them to the link. So a call from the doorbell to the socket, or from the socket to
//! the destination, never waits for another thread of the daemon.
//!
//! A `Proc` is used by one thread at a time: the state's lock gives it to the reader thread or
//! the pump, never for longer than one non-blocking step.

use super::node::{Node, lock};
use super::served::{Pending, Served};
use crate::wire::{Command, Frame};
use m3ipc::{ANY, Endpoint, Errno, Message, Posted, Proc, Taken, Timeout};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Calls taken per look before the pump looks at the other endpoints (it looks again after).
const TAKE_BATCH: usize = 64;
/// How long an unbind waits for the calls queued before it.
const UNBIND_GRACE: Duration = Duration::from_millis(500);
/// Frames from one remote endpoint that may wait for its current call: its node sends one
/// synchronous call at a time (its caller blocks), so only calls its node gave up on (a
/// timeout) pile up. Beyond this they are refused with `EDVSAGAIN`.
const MAX_QUEUED: usize = 256;

/// The daemon's handle on one remote slot.
pub(crate) struct RemoteEp {
    /// The node the endpoint is bound on.
    pub(crate) node: u32,
    /// The remote endpoint (its generation included).
    pub(crate) ep: Endpoint,
    state: Mutex<EpState>,
}

struct EpState {
    /// `None` once the slot is unbound or dropped.
    proc: Option<Proc>,
    /// The call made now as the remote endpoint, and the frame that asked for it.
    current: Option<(Posted, Asked)>,
    /// Frames from the remote endpoint waiting for `current` to end (per-pair order).
    queue: VecDeque<Frame>,
    /// When its node said the endpoint unbound: the slot unbinds once the queue is done, or
    /// after [`UNBIND_GRACE`].
    unbinding: Option<Instant>,
}

/// What an incoming call must be answered with.
#[derive(Clone, Copy)]
struct Asked {
    cmd: Command,
    src: Endpoint,
    dst: Endpoint,
    seq: u64,
}

/// What [`RemoteEp::pump`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pumped {
    /// Nothing more to do now.
    Idle,
    /// More calls may wait to be taken: look again soon.
    More,
    /// The slot is unbound: forget the endpoint.
    Gone,
}

impl RemoteEp {
    /// The handle on remote slot `proc`, bound for an endpoint of node `peer`.
    pub(crate) fn new(proc: Proc, peer: u32) -> RemoteEp {
        RemoteEp {
            node: peer,
            ep: proc.endpoint(),
            state: Mutex::new(EpState {
                proc: Some(proc),
                current: None,
                queue: VecDeque::new(),
                unbinding: None,
            }),
        }
    }

    /// A call frame from the remote endpoint (`Send`, `Sendrec`, `Notify`, `Senda`): make it
    /// now, or after the calls before it.
    pub(crate) fn deliver(&self, node: &Node, served: &Served, f: Frame) {
        let mut st = lock(&self.state);
        if st.queue.len() >= MAX_QUEUED {
            drop(st);
            node.refuse(self.node, &f, Errno::EDVSAGAIN);
            return;
        }
        st.queue.push_back(f);
        self.advance(&mut st, node, served);
    }

    /// Give `client` the reply the far side sent (`fail`: the error instead).
    pub(crate) fn reply(&self, client: Endpoint, answer: Result<Message, Errno>) {
        let st = lock(&self.state);
        let Some(proc) = st.proc.as_ref() else { return };
        // EDVSPROCSTS: the client gave up meanwhile.
        let _ = match answer {
            Ok(msg) => proc.reply(client, &msg),
            Err(why) => proc.fail_request(client, why),
        };
    }

    /// The reply the far side sent to `client` is a request of the remote endpoint's own (see
    /// [`Command::ReplyRequest`]): deliver it as the reply and answer it with `seq`.
    pub(crate) fn reply_request(
        &self,
        node: &Node,
        served: &Served,
        client: Endpoint,
        msg: Message,
        seq: u64,
    ) {
        let mut f = Frame::new(Command::Sendrec, served.dcid, self.ep, client, seq);
        f.msg = msg;
        self.deliver(node, served, f);
    }

    /// Whether the endpoint's `sendrec` to a local server is under way here: its reply will
    /// then come from this node, on the same link as anything this node sends it before.
    pub(crate) fn awaits_local_reply(&self) -> bool {
        lock(&self.state)
            .current
            .as_ref()
            .is_some_and(|(p, asked)| asked.cmd == Command::Sendrec && p.is_sendrec())
    }

    /// Serve a chunk of a copy against a grant a local endpoint issued to this remote one.
    pub(crate) fn serve_copy(&self, dcid: u32, f: &Frame) -> Option<super::copies::ChunkServed> {
        let st = lock(&self.state);
        let proc = st.proc.as_ref()?;
        Some(super::copies::serve(proc, dcid, f))
    }

    /// The pump's look: the outcome of the current call, the next queued ones, and the calls
    /// local processes made to the endpoint. `tick`: also check the liveness of the current
    /// call's destination.
    pub(crate) fn pump(&self, node: &Node, served: &Served, tick: bool) -> Pumped {
        let mut st = lock(&self.state);
        if let Some((mut posted, asked)) = st.current.take() {
            let Some(proc) = st.proc.as_ref() else {
                return Pumped::Gone;
            };
            match proc.poll_call(&mut posted, tick) {
                Some(r) => answer(node, served, proc, self.node, asked, r),
                None => st.current = Some((posted, asked)),
            }
        }
        self.advance(&mut st, node, served);
        if let Some(since) = st.unbinding
            && ((st.current.is_none() && st.queue.is_empty()) || since.elapsed() >= UNBIND_GRACE)
        {
            finish(&mut st, Errno::EDVSSRCDIED, true);
            return Pumped::Gone;
        }
        let Some(proc) = st.proc.as_ref() else {
            return Pumped::Gone;
        };
        for _ in 0..TAKE_BATCH {
            match proc.take_held(ANY, Timeout::NoWait) {
                Ok(taken) => forward(node, served, proc, self.node, taken),
                // A local `wakeup` of the remote endpoint: its node wakes it.
                Err(Errno::EDVSWOKENUP) => {
                    let f = Frame::new(Command::Wakeup, served.dcid, served.proxy_ep, self.ep, 0);
                    let _ = node.send(self.node, &f);
                }
                Err(_) => return Pumped::Idle,
            }
        }
        Pumped::More
    }

    /// The endpoint unbound on its node: unbind the slot once the calls queued before are
    /// done (the pump does it), or at once if there are none.
    pub(crate) fn unbind(&self) -> Pumped {
        let mut st = lock(&self.state);
        if st.current.is_none() && st.queue.is_empty() {
            finish(&mut st, Errno::EDVSSRCDIED, true);
            return Pumped::Gone;
        }
        st.unbinding.get_or_insert_with(Instant::now);
        Pumped::More
    }

    /// Unbind now, whatever is queued (a newer binding of the same `nr` arrived).
    pub(crate) fn unbind_now(&self) {
        finish(&mut lock(&self.state), Errno::EDVSSRCDIED, true);
    }

    /// The link is gone: drop the slot (its waiters get `EDVSNOTCONN`).
    pub(crate) fn drop_slot(&self) {
        finish(&mut lock(&self.state), Errno::EDVSNOTCONN, false);
    }

    /// Start queued frames while no call is under way.
    fn advance(&self, st: &mut EpState, node: &Node, served: &Served) {
        while st.current.is_none() {
            let Some(f) = st.queue.pop_front() else {
                return;
            };
            let Some(proc) = st.proc.as_ref() else {
                node.refuse(self.node, &f, Errno::EDVSSRCDIED);
                continue;
            };
            let asked = Asked {
                cmd: f.cmd,
                src: f.src,
                dst: f.dst,
                seq: f.seq,
            };
            match f.cmd {
                Command::Send | Command::Sendrec => {
                    match proc.start_call(f.dst, &f.msg, f.cmd == Command::Sendrec) {
                        Ok(mut posted) => match proc.poll_call(&mut posted, false) {
                            Some(r) => answer(node, served, proc, self.node, asked, r),
                            None => st.current = Some((posted, asked)),
                        },
                        Err(e) => answer(node, served, proc, self.node, asked, Err(e)),
                    }
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
    }
}

/// End the slot: abandon the current call (its destination never gets it, or its reply is
/// dropped), refuse the queued frames, and unbind (`unbind`) or drop the slot.
fn finish(st: &mut EpState, why: Errno, unbind: bool) {
    if let Some((posted, _)) = st.current.take()
        && let Some(proc) = st.proc.as_ref()
    {
        let _ = proc.abandon_call(posted, why);
    }
    // Nobody waits for their answers: their remote endpoint is gone.
    st.queue.clear();
    if let Some(proc) = st.proc.take()
        && unbind
    {
        let _ = proc.unbind();
    }
}

/// Answer the far side's call `asked` with its outcome `r`.
fn answer(
    node: &Node,
    served: &Served,
    proc: &Proc,
    peer: u32,
    asked: Asked,
    r: Result<Message, Errno>,
) {
    let cmd = match asked.cmd {
        Command::Send => Command::SendAck,
        Command::Sendrec => Command::Reply,
        _ => return,
    };
    let mut a = Frame::new(cmd, served.dcid, asked.dst, asked.src, asked.seq);
    match r {
        Ok(msg) if cmd == Command::Reply => {
            a.msg = msg;
            // The server answered with a `sendrec` of its own: it now waits for the remote
            // client's answer, which comes back as a Reply to a call of ours.
            if proc.awaits_reply(asked.dst) {
                let seq = node.next_seq();
                a.cmd = Command::ReplyRequest;
                a.payload = seq.to_le_bytes().to_vec();
                served.add_pending(
                    seq,
                    Pending::Sendrec {
                        peer,
                        via: proc.nr(),
                        client: asked.dst,
                    },
                );
                if node.send(peer, &a).is_err() && served.take_pending(seq).is_some() {
                    let _ = proc.fail_request(asked.dst, Errno::EDVSNOTCONN);
                }
                return;
            }
        }
        Ok(_) => {}
        Err(e) => a.rcode = e.code(),
    }
    let _ = node.send(peer, &a);
}

/// Send a call taken from the remote slot to its node.
fn forward(node: &Node, served: &Served, proc: &Proc, peer: u32, taken: Taken) {
    let m = *taken.message();
    let src = m.m_source;
    served.announce_source(node, src);
    served.clear_poison(src);
    let seq = node.next_seq();
    let cmd = match &taken {
        Taken::Send(_) => Command::Send,
        Taken::Request(_) => Command::Sendrec,
        Taken::Notify(_) => Command::Notify,
        Taken::Async(_) => Command::Senda,
    };
    let mut f = Frame::new(cmd, served.dcid, src, proc.endpoint(), seq);
    f.msg = m;
    match taken {
        Taken::Send(held) => {
            served.add_pending(seq, Pending::Send { peer, held });
            if node.send(peer, &f).is_err()
                && let Some(Pending::Send { held, .. }) = served.take_pending(seq)
            {
                let _ = held.fail(Errno::EDVSNOTCONN);
            }
        }
        Taken::Request(_) => {
            served.add_pending(
                seq,
                Pending::Sendrec {
                    peer,
                    via: proc.nr(),
                    client: src,
                },
            );
            if node.send(peer, &f).is_err() && served.take_pending(seq).is_some() {
                let _ = proc.fail_request(src, Errno::EDVSNOTCONN);
            }
        }
        // Complete when taken, as specified: a link that is down loses them.
        Taken::Notify(_) | Taken::Async(_) => {
            let _ = node.send(peer, &f);
        }
    }
}
