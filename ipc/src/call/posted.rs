//! Calls a remote slot makes without waiting: how the node daemon delivers a remote endpoint's
//! `send` or `sendrec` from one thread, for every remote endpoint at once.
//!
//! [`Proc::start_call`] makes the call's checks and posts it exactly as [`Proc::send`] and
//! [`Proc::sendrec`] do, then returns a [`Posted`] instead of waiting. Whatever ends the call
//! (the receiver takes the message, the server replies, the peer unbinds or dies, the DC is
//! removed) rings the remote slot's doorbell, which is the proxy's: the daemon sleeps on that
//! one doorbell and, when it rings, asks each outstanding call with [`Proc::poll_call`].
//! Polls with `tick` set, at least once per liveness tick, also check the peer's liveness, as a
//! blocked caller's ticks do. [`Proc::abandon_call`] withdraws a call whose remote endpoint is
//! gone.
//!
//! The outcome is the blocking call's, error for error: a [`Posted`] follows the same envelope
//! states with the same code (`send.rs`'s `Outgoing`). Only a timeout does not exist here: the
//! remote endpoint's own node times its call out.

use super::send::Outgoing;
use crate::endpoint::Endpoint;
use crate::errno::{Errno, Result};
use crate::mailbox::{EnvState, Phase, SYNC};
use crate::message::Message;
use crate::privilege::Call;
use crate::proc::{Peer, Proc, Role};
use crate::slot::{OwnerWord, Slot};
use crate::wait::Blocked;

/// A `send` or `sendrec` a remote slot posted with [`Proc::start_call`], not finished yet (or
/// finished at once, when its outcome waits in it for the first poll).
#[derive(Debug)]
pub struct Posted {
    /// The destination as resolved when posted.
    peer_idx: usize,
    peer_ep: Endpoint,
    peer_owner: OwnerWord,
    /// The envelope state posted (its sequence number ties the outcome to this call).
    posted: EnvState,
    /// Whether the first tick (the deadlock check, then "blocked") has run.
    ticked: bool,
    /// An outcome known at once: handed to a waiting receiver, or the check failed.
    done: Option<Result<Message>>,
}

impl Posted {
    /// The destination.
    pub fn destination(&self) -> Endpoint {
        self.peer_ep
    }

    /// Whether it is a `sendrec` (its outcome carries the reply).
    pub fn is_sendrec(&self) -> bool {
        matches!(
            self.posted.phase(),
            Phase::PendingSendrec | Phase::AwaitReply
        )
    }
}

impl Proc {
    /// Remote slot only: make `send` (`sendrec` false) or `sendrec` to `dst` as this remote
    /// endpoint, with every check of those calls, and return without waiting for the outcome
    /// (see the module docs). `m_source` is stamped with this endpoint.
    ///
    /// Errors, at once: `EDVSLCLPROC` (not a remote slot), then those of [`Proc::send`] /
    /// [`Proc::sendrec`] found before the call would wait (`EDVSLOCKED` included). Later
    /// outcomes come from [`Proc::poll_call`].
    pub fn start_call(&self, dst: Endpoint, m: &Message, sendrec: bool) -> Result<Posted> {
        if !self.remote {
            return Err(Errno::EDVSLCLPROC);
        }
        let (call, self_err) = if sendrec {
            (Call::Sendrec, Errno::EDVSENDPOINT)
        } else {
            (Call::Send, Errno::EDVSBADDEST)
        };
        let me = self.caller(call)?;
        let peer = self.peer(dst, Role::Destination, self_err)?;
        self.check_ipc_to(me, &peer)?;
        let mut p = Posted {
            peer_idx: peer.idx,
            peer_ep: peer.ep,
            peer_owner: peer.owner,
            posted: EnvState::new(Phase::Idle, 0, 0),
            ticked: false,
            done: None,
        };
        if !sendrec && self.try_reply(me, &peer, m)? {
            p.done = Some(Ok(Message::default()));
            return Ok(p);
        }
        let phase = if sendrec {
            Phase::PendingSendrec
        } else {
            Phase::PendingSend
        };
        let mut out = *m;
        match self.post_sync(me, &peer, phase, &mut out) {
            None => {
                self.end_transmit(me, peer.idx, true);
                p.done = Some(Ok(Message::default()));
            }
            Some(posted) => {
                p.posted = posted;
                // As a blocked caller does once: the deadlock check, then "blocked" for
                // introspection and `vcopy`.
                p.ticked = true;
                let mut reply = Message::default();
                if let Some(r) = self.outgoing(me, peer, &p, &mut reply).tick(true) {
                    self.end_transmit(me, p.peer_idx, r.is_ok());
                    p.done = Some(r.map(|()| reply));
                }
            }
        }
        Ok(p)
    }

    /// Has call `p` ended? `None` while it is under way; the outcome once (a call polled again
    /// after it ended gets `EDVSPROCSTS`). With `tick`, also check the destination's liveness
    /// (a dead one is released, which ends the call with the dead-peer errors): do that at
    /// least once per [`crate::wait::LIVENESS_TICK`] while the call is under way.
    pub fn poll_call(&self, p: &mut Posted, tick: bool) -> Option<Result<Message>> {
        if let Some(done) = p.done.take() {
            return Some(done);
        }
        if p.posted.phase() == Phase::Idle {
            return Some(Err(Errno::EDVSPROCSTS));
        }
        let me = match self.bound() {
            Ok(me) => me,
            Err(e) => return Some(Err(e)),
        };
        let Some(peer) = self.posted_peer(p) else {
            return Some(Err(Errno::EDVSPROCSTS));
        };
        let mut reply = Message::default();
        let mut out = self.outgoing(me, peer, p, &mut reply);
        let mut r = out.check();
        if r.is_none() && tick {
            r = out.tick(!p.ticked);
            p.ticked = true;
        }
        let r = r?;
        self.end_transmit(me, p.peer_idx, r.is_ok());
        p.posted = EnvState::new(Phase::Idle, 0, 0);
        Some(r.map(|()| reply))
    }

    /// Withdraw call `p` with `why` (its remote endpoint is gone). `Some` with the outcome if
    /// it ended meanwhile or could be withdrawn; `None` if it could not be taken back (a
    /// server is writing its reply, or a remote slot's proxy holds it): it then ends by itself
    /// and nobody waits for it.
    pub fn abandon_call(&self, mut p: Posted, why: Errno) -> Option<Result<Message>> {
        if let Some(r) = self.poll_call(&mut p, false) {
            return Some(r);
        }
        let me = self.bound().ok()?;
        let peer = self.posted_peer(&p)?;
        let mut reply = Message::default();
        let r = self.outgoing(me, peer, &p, &mut reply).give_up(why)?;
        self.end_transmit(me, p.peer_idx, false);
        Some(r.map(|()| reply))
    }

    /// Whether `client` waits in the receive half of a `sendrec` for this endpoint's reply
    /// (after a `sendrec` of its own that this endpoint's request answered, for example).
    pub fn awaits_reply(&self, client: Endpoint) -> bool {
        let Ok(peer) = self.peer(client, Role::Destination, Errno::EDVSENDPOINT) else {
            return false;
        };
        let st = peer.slot.envelopes[SYNC].load();
        st.phase() == Phase::AwaitReply && usize::from(st.peer()) == self.idx
    }

    /// The destination of `p` as it was resolved when posted (`None`: its slot index is out
    /// of range).
    fn posted_peer(&self, p: &Posted) -> Option<Peer<'_>> {
        Some(Peer {
            idx: p.peer_idx,
            ep: p.peer_ep,
            slot: self.region().slot(p.peer_idx)?,
            owner: p.peer_owner,
        })
    }

    /// The blocking call's state machine, for one look at `p`.
    fn outgoing<'a>(
        &'a self,
        me: &'a Slot,
        peer: Peer<'a>,
        p: &Posted,
        reply: &'a mut Message,
    ) -> Outgoing<'a> {
        Outgoing {
            proc: self,
            me,
            env: &me.envelopes[SYNC],
            posted: p.posted,
            peer,
            reply,
            expired_at: None,
            expiry: None,
        }
    }
}
