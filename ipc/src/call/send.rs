//! `send`, `sendrec` and `senda`.

use super::proxy::HELD_GRACE;
use crate::cleanup;
use crate::deadlock;
use crate::endpoint::{self, ANY};
use crate::errno::{Errno, Result};
use crate::inbox::{self, Kind};
use crate::mailbox::{EnvState, Envelope, Phase, SYNC};
use crate::message::Message;
use crate::privilege::Call;
use crate::proc::{Peer, Proc, Role};
use crate::slot::{Counters, FLAG_RECEIVING, FLAG_SENDREC, FLAG_WAITING, Slot};
use crate::wait::{self, Blocked, LIVENESS_TICK, Timeout};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Proc {
    /// `send(dst, m)`: rendezvous. Returns once `dst` has received the message, or with an error.
    /// Senders to one destination are served in FIFO order. `m_source` is stamped with the
    /// caller's endpoint.
    ///
    /// Errors, in the order checked: `EDVSDCNOTRUN`, `EDVSNOTBIND`, `EDVSBADCALL` (a user
    /// endpoint), `EDVSENDPOINT` (`ANY`/`NONE`/stale generation), `EDVSBADDEST` (`HARDWARE` or
    /// self), `EDVSRANGE`, `EDVSDSTDIED` (free slot, or `dst` unbinds or dies while we wait),
    /// `EDVSTRAPDENIED` (not in `ipc_to`), `EDVSLOCKED` (the send would close a cycle),
    /// `EDVSAGAIN` (NOWAIT and `dst` is not blocked in a receive that accepts the caller; if it
    /// is, the call completes as soon as `dst` runs, within a bounded grace), `EDVSTIMEDOUT`.
    ///
    /// If `dst` is a client waiting for this caller's reply (the receive half of its `sendrec`),
    /// the send is that reply and completes at once.
    ///
    /// To a remote slot (an endpoint on another node, see [`Proc::bind_remote`]) the send
    /// completes when the far side has delivered it: `EDVSNOPROXY` at once if no node daemon
    /// serves it, `EDVSNOTCONN` if the link goes while we wait, the far side's error if it
    /// fails there. A timeout that expires while the daemon forwards the message waits up to
    /// [`HELD_GRACE`](crate::HELD_GRACE) more for the outcome, then is `EDVSTIMEDOUT` (the
    /// message may have been delivered).
    pub fn send(&self, dst: i32, m: &Message, timeout: Timeout) -> Result<()> {
        let me = self.caller(Call::Send)?;
        let peer = self.peer(dst, Role::Destination, Errno::EDVSBADDEST)?;
        self.check_ipc_to(me, &peer)?;
        if self.try_reply(me, &peer, m)? {
            return Ok(());
        }
        let mut out = *m;
        // NOWAIT means "do not wait for a receiver that is not there". A receiver that already
        // blocks in a receive accepting us completes the rendezvous as soon as it runs, so give
        // it that long (bounded) before giving up with EDVSAGAIN.
        let (timeout, expiry) = match timeout {
            Timeout::NoWait if receiving_from(&peer, self.ep) => {
                (Timeout::Millis(NOWAIT_GRACE_MS), Some(Errno::EDVSAGAIN))
            }
            t => (t, None),
        };
        self.transmit(me, peer, Phase::PendingSend, &mut out, timeout, expiry)
    }

    /// `sendrec(dst, m)`: send the request in `m`, then receive the reply from `dst` only, into
    /// `m`. The only messaging call a user endpoint may make by default.
    ///
    /// Errors: as [`Proc::send`] (self is `EDVSENDPOINT` here), and `EDVSDEADSRCDST` if `dst`
    /// unbinds or dies before it replies. A timeout after the request was received withdraws the
    /// caller; a late reply then fails with `EDVSPROCSTS` at the server.
    ///
    /// If `dst` is a client waiting for this caller's reply (the receive half of its own
    /// `sendrec`), the request is that reply, as with [`Proc::send`], and the call goes on to
    /// wait for `dst`'s answer.
    pub fn sendrec(&self, dst: i32, m: &mut Message, timeout: Timeout) -> Result<()> {
        let me = self.caller(Call::Sendrec)?;
        let peer = self.peer(dst, Role::Destination, Errno::EDVSENDPOINT)?;
        self.check_ipc_to(me, &peer)?;
        self.transmit(me, peer, Phase::PendingSendrec, m, timeout, None)
    }

    /// `senda(dst, m)`: asynchronous send. The message is queued and the call returns at once.
    /// Each endpoint has [`crate::mailbox::ASYNC_ENVELOPES`] messages in flight at most; beyond,
    /// `EDVSAGAIN` (never a silent loss). A message still queued when `dst` unbinds is dropped.
    pub fn senda(&self, dst: i32, m: &Message) -> Result<()> {
        let me = self.caller(Call::Senda)?;
        let peer = self.peer(dst, Role::Destination, Errno::EDVSBADDEST)?;
        self.check_ipc_to(me, &peer)?;
        let env = me.envelopes[SYNC + 1..]
            .iter()
            .find(|e| e.load().phase() == Phase::Idle)
            .ok_or(Errno::EDVSAGAIN)?;
        let mut out = *m;
        out.m_source = self.ep;
        self.post(env, &peer, Phase::PendingAsync, &out);
        Counters::bump(&me.counters.sent);
        Ok(())
    }

    fn post(&self, env: &Envelope, peer: &Peer<'_>, phase: Phase, m: &Message) -> EnvState {
        // Relaxed: the ticket only orders senders among themselves; the envelope's Release
        // store publishes it together with the message.
        let ticket = peer.slot.mailbox.ticket.fetch_add(1, Ordering::Relaxed);
        let posted = env.post(phase, peer.idx as u16, peer.ep, ticket, &m.to_words());
        peer.slot.pending().announce(self.idx);
        if self.region().bell(peer.slot).ring() {
            wait::mark_woken(&peer.slot.cpu);
        }
        posted
    }

    /// Hand `m` straight to `peer` if it waits with its inbox open to us: the `send` is then
    /// complete (the receiver is committed to it, as MINIX's copy into a RECEIVING process).
    fn hand_off(&self, peer: &Peer<'_>, m: &Message) -> bool {
        let Some(filling) = inbox::claim(
            &peer.slot.inbox,
            self.idx,
            endpoint::generation(peer.ep) as u16,
        ) else {
            return false;
        };
        let generation = endpoint::generation(self.ep) as u16;
        inbox::publish(
            &peer.slot.inbox,
            filling,
            Kind::Send,
            generation,
            0,
            &m.to_words(),
        )
    }

    /// Post the request of a `sendrec` in `env`. If `peer` waits in the receive half of its own
    /// `sendrec` to us, it is receiving from us: as in MINIX (and as `send` does), the request
    /// is delivered at once, as its reply, and we go straight to waiting for its answer in
    /// `AwaitReply(peer)`. Queueing the request instead left both waiting for each other for
    /// ever, a cycle the deadlock check does not report (a sender and a receiver blocked on each
    /// other are a rendezvous, not a cycle), found by the model test (`tests/model.rs`).
    ///
    /// Order: claim the peer's envelope (`Replying`: it can neither withdraw nor read yet), make
    /// ours `AwaitReply(peer)`, then publish the reply. When the peer runs again it can answer
    /// at once, and nobody else can reply to us: we are not announced anywhere.
    fn post_request(
        &self,
        env: &Envelope,
        peer: &Peer<'_>,
        m: &Message,
        may_hand_off: bool,
    ) -> EnvState {
        // A server waiting with its inbox open takes the request directly (see `inbox.rs`). Our
        // envelope waits for the reply first, so that the server, which may answer the moment
        // it sees the request, finds us waiting.
        if let Some(filling) = may_hand_off
            .then(|| {
                inbox::claim(
                    &peer.slot.inbox,
                    self.idx,
                    endpoint::generation(peer.ep) as u16,
                )
            })
            .flatten()
        {
            let posted = env.await_reply(peer.idx as u16);
            let generation = endpoint::generation(self.ep) as u16;
            if inbox::publish(
                &peer.slot.inbox,
                filling,
                Kind::Sendrec,
                generation,
                posted.seq(),
                &m.to_words(),
            ) || !env.transition(posted, EnvState::new(Phase::Idle, 0, posted.seq()))
            {
                return posted;
            }
            // The server gave up on our stalled claim: queue the request as usual.
        }
        if let Some(replying) = self.claim_reply(peer) {
            let posted = env.post(
                Phase::AwaitReply,
                peer.idx as u16,
                peer.ep,
                0,
                &m.to_words(),
            );
            // If the peer abandoned our claim (we stalled past its deadline), it no longer
            // waits for us: take ours back and queue the request as usual. If that fails, the
            // peer has meanwhile claimed ours to answer the AwaitReply it saw: wait for that.
            if self.finish_claimed_reply(peer, replying, m)
                || !env.transition(posted, EnvState::new(Phase::Idle, 0, posted.seq()))
            {
                return posted;
            }
        }
        self.post(env, peer, Phase::PendingSendrec, m)
    }

    /// Post `m` in the synchronous envelope and wait for the receiver (and, for `sendrec`, the
    /// reply).
    fn transmit(
        &self,
        me: &Slot,
        peer: Peer<'_>,
        phase: Phase,
        m: &mut Message,
        timeout: Timeout,
        expiry: Option<Errno>,
    ) -> Result<()> {
        let env = &me.envelopes[SYNC];
        let Some(posted) = self.post_sync(me, &peer, phase, m) else {
            Counters::bump(&me.counters.sent);
            self.last_peer.set(Some(peer.idx));
            return Ok(());
        };
        let peer_idx = peer.idx;
        let mut out = Outgoing {
            proc: self,
            me,
            env,
            posted,
            peer,
            reply: m,
            expired_at: None,
            expiry,
        };
        let r = self.block(me, Some(peer_idx), true, timeout, &mut out);
        self.end_transmit(me, peer_idx, r.is_ok());
        r
    }

    /// Post `m` in the synchronous envelope for `peer` (stamping `m_source`). `None` when it
    /// was handed straight to a receiver waiting with its inbox open (a `send` is then
    /// complete); else the state posted, which [`Outgoing`] follows to the outcome.
    pub(super) fn post_sync(
        &self,
        me: &Slot,
        peer: &Peer<'_>,
        phase: Phase,
        m: &mut Message,
    ) -> Option<EnvState> {
        let env = &me.envelopes[SYNC];
        let st = env.load();
        if !matches!(
            st.phase(),
            Phase::Idle | Phase::Delivered | Phase::Replied | Phase::Failed
        ) {
            // Only a hostile write, or a reply abandoned past our deadline (see `expire`), leaves
            // our own envelope busy between calls: take it back before reusing it.
            env.transition(st, EnvState::new(Phase::Idle, 0, st.seq()));
        }
        m.m_source = self.ep;
        // No SENDING flag is stored: the envelope's Pending state is the flag (introspection and
        // deadlock checks read it), and a store here would take the slot's first cache line,
        // which spinning peers read, away from them on every call.
        // A direct hand-off must not overtake one of our own `senda` messages still queued
        // for the same receiver: messages from one sender arrive in the order sent.
        let may_hand_off = !async_pending_to(me, peer.idx);
        if phase == Phase::PendingSend && may_hand_off && self.hand_off(peer, m) {
            return None;
        }
        Some(match phase {
            Phase::PendingSendrec => self.post_request(env, peer, m, may_hand_off),
            _ => self.post(env, peer, phase, m),
        })
    }

    /// A `send` or `sendrec` to slot `peer_idx` ended: clear the blocked flags its first tick
    /// set, and count it if it succeeded.
    pub(super) fn end_transmit(&self, me: &Slot, peer_idx: usize, ok: bool) {
        if me.flags.load(Ordering::Relaxed) & FLAG_WAITING != 0 {
            me.flags
                .fetch_and(!(FLAG_WAITING | FLAG_SENDREC), Ordering::Relaxed);
        }
        if ok {
            Counters::bump(&me.counters.sent);
            self.last_peer.set(Some(peer_idx));
        }
    }
}

/// How long a NOWAIT `send` waits for a destination that already blocks receiving from the
/// caller: long enough for a sleeping receiver to be scheduled, short enough to stay "no wait".
const NOWAIT_GRACE_MS: u32 = 100;

/// Whether `peer` blocks in a receive that accepts a message from `me` (`ANY`, or `me`).
fn receiving_from(peer: &Peer<'_>, me: i32) -> bool {
    let flags = peer.slot.flags.load(Ordering::Relaxed);
    let from = peer.slot.getfrom.load(Ordering::Relaxed);
    flags & FLAG_RECEIVING != 0 && (from == ANY || from == me)
}

/// A `send` or `sendrec` in flight.
pub(super) struct Outgoing<'a> {
    pub(super) proc: &'a Proc,
    pub(super) me: &'a Slot,
    pub(super) env: &'a Envelope,
    pub(super) posted: EnvState,
    pub(super) peer: Peer<'a>,
    pub(super) reply: &'a mut Message,
    /// When the timeout first expired while a reply was being written.
    pub(super) expired_at: Option<Instant>,
    /// The error to report on expiry instead of the wait's own (a NOWAIT send given grace).
    pub(super) expiry: Option<Errno>,
}

impl Outgoing<'_> {
    fn is_sendrec(&self) -> bool {
        // AwaitReply: a request delivered at once as a reply (see `post_request`).
        matches!(
            self.posted.phase(),
            Phase::PendingSendrec | Phase::AwaitReply
        )
    }

    /// Take the message back, if it is still ours to take; else let `check` report.
    fn withdraw(&mut self, why: Errno) -> Option<Result<()>> {
        let st = self.env.load();
        let withdrawable = st.seq() == self.posted.seq()
            && matches!(
                st.phase(),
                Phase::PendingSend | Phase::PendingSendrec | Phase::AwaitReply
            );
        (withdrawable
            && self
                .env
                .transition(st, EnvState::new(Phase::Idle, 0, st.seq())))
        .then_some(Err(why))
    }

    /// Give the call up for a reason that ends it whatever its fate (the link to a remote
    /// destination is gone, the DC was removed): withdraw it, or leave the hold of a remote
    /// slot's proxy (whose later outcome then fails cleanly at the proxy, see `Held`).
    pub(super) fn give_up(&mut self, why: Errno) -> Option<Result<()>> {
        if let Some(r) = self.withdraw(why) {
            return Some(r);
        }
        let st = self.env.load();
        (st.phase() == Phase::Held
            && st.seq() == self.posted.seq()
            && self
                .env
                .transition(st, EnvState::new(Phase::Idle, 0, st.seq())))
        .then_some(Err(why))
    }
}

impl Blocked<()> for Outgoing<'_> {
    fn check(&mut self) -> Option<Result<()>> {
        let st = self.env.load();
        if st.seq() != self.posted.seq() {
            return Some(Err(Errno::EDVSPROCSTS));
        }
        match st.phase() {
            // Still waiting. If the DC was removed meanwhile (`Dc::remove` rings every bell), give
            // up with EDVSDCNOTRUN as a new call would, instead of waiting forever for a peer that
            // is alive but in a DC that no longer runs. Withdrawing fails, and we keep waiting for
            // the outcome, if the message was already taken or a reply is being written.
            Phase::PendingSend
            | Phase::PendingSendrec
            | Phase::AwaitReply
            | Phase::Replying
            | Phase::Held
                if !self.proc.region().running() =>
            {
                self.give_up(Errno::EDVSDCNOTRUN)
            }
            Phase::PendingSend | Phase::PendingSendrec | Phase::Replying => None,
            // A remote slot's proxy forwards our `send`: wait for the far side's outcome.
            Phase::Held if !self.is_sendrec() => None,
            Phase::AwaitReply if self.is_sendrec() => None,
            Phase::Delivered if !self.is_sendrec() => Some(Ok(())),
            Phase::Replied if self.is_sendrec() => {
                let words = self.env.read_words(st);
                *self.reply = Message::from_words(words);
                self.reply.m_source = self.peer.ep;
                Counters::bump(&self.me.counters.received);
                Some(Ok(()))
            }
            Phase::Failed => Some(Err(
                Errno::from_code(st.errno()).unwrap_or(Errno::EDVSGENERIC)
            )),
            // Idle (withdrawn by a cleanup that judged us dead) or a corrupt word.
            _ => Some(Err(Errno::EDVSPROCSTS)),
        }
    }

    fn tick(&mut self, first: bool) -> Option<Result<()>> {
        if !self.proc.peer_still_there(&self.peer, !first) {
            // The errors the peer's release gives (EDVSNOTCONN for a remote slot whose link
            // went): while it runs, its slot word is intact; once it has cleared it, it has
            // failed our envelope already and this withdraw loses.
            let (send_err, rec_err) = crate::remote::waiter_errors(self.peer.slot);
            let why = if self.is_sendrec() { rec_err } else { send_err };
            return self.withdraw(why);
        }
        // A remote destination whose proxy unbound: the link is gone (the proxy's release
        // fails the calls it finds; this catches one posted while it looked).
        if crate::remote::link_down(self.proc.region(), self.peer.slot, self.peer.owner) {
            return self.give_up(Errno::EDVSNOTCONN);
        }
        if first {
            // MINIX checks for a cycle once, when the call is about to block.
            if self.env.load().is_pending()
                && deadlock::closes_cycle(self.proc.region(), self.proc.idx, self.peer.idx, true)
            {
                return self.withdraw(Errno::EDVSLOCKED);
            }
            // A blocked `sendrec` also waits to receive (its reply): `vcopy` checks the flags
            // word for a party blocked in a receive.
            let flags = if self.is_sendrec() {
                FLAG_WAITING | FLAG_SENDREC
            } else {
                FLAG_WAITING
            };
            self.me.flags.fetch_or(flags, Ordering::Relaxed);
        }
        None
    }

    fn expire(&mut self, why: Errno) -> Option<Result<()>> {
        let why = self.expiry.unwrap_or(why);
        if let Some(r) = self.withdraw(why) {
            return Some(r);
        }
        // A server claimed the reply (`Replying`) and normally publishes it within nanoseconds.
        // One that is still writing a liveness tick past our deadline is stalled, or the state
        // is forged: give up rather than wait past the timeout for as long as it lives. The
        // server's final CAS then fails and its `reply` returns EDVSPROCSTS. (A server stalled
        // that long between its claim and its word writes could still write over our next
        // message's words: garbage for that message, never undefined behaviour.)
        let st = self.env.load();
        // A `send` a remote slot's proxy holds (see `call/proxy.rs`): the far side's outcome
        // normally comes within a network round trip. Wait for it up to HELD_GRACE past our
        // deadline, then give up with the timeout's error; the proxy's late outcome then fails
        // cleanly (EDVSPROCSTS). The message may still have been delivered at the far side:
        // a timed-out remote `send` has an unknown fate, as over any network.
        if st.phase() == Phase::Held && st.seq() == self.posted.seq() {
            let since = *self.expired_at.get_or_insert_with(Instant::now);
            return (since.elapsed() >= HELD_GRACE
                && self
                    .env
                    .transition(st, EnvState::new(Phase::Idle, 0, st.seq())))
            .then_some(Err(why));
        }
        if st.phase() != Phase::Replying || st.seq() != self.posted.seq() {
            return None;
        }
        // A `vcopy` holds us in the receive half for one copy (see `Proc::settle`), which
        // takes about a millisecond at most: wait for it to end, up to HOLD_GRACE past our
        // deadline; give up at once if its holder died. Only a holder stalled (or a forged
        // word) that long makes us leave before the copy ends: never a hang.
        let since = *self.expired_at.get_or_insert_with(Instant::now);
        let grace = match st.holder() {
            Some(holder)
                if self
                    .proc
                    .region()
                    .slot(holder as usize)
                    .is_some_and(|h| cleanup::owner_alive(h, h.owner())) =>
            {
                HOLD_GRACE
            }
            Some(_) => Duration::ZERO,
            None => LIVENESS_TICK,
        };
        (since.elapsed() >= grace
            && self
                .env
                .transition(st, EnvState::new(Phase::Idle, 0, st.seq())))
        .then_some(Err(why))
    }
}

/// How long past its deadline a client waits for a live `vcopy` holder to let it go.
const HOLD_GRACE: Duration = Duration::from_millis(100);

/// Whether one of `me`'s asynchronous messages to slot `peer` is still queued (our own
/// envelopes: a few loads of lines we wrote).
fn async_pending_to(me: &Slot, peer: usize) -> bool {
    me.envelopes[SYNC + 1..].iter().any(|e| {
        let st = e.load();
        st.phase() == Phase::PendingAsync && usize::from(st.peer()) == peer
    })
}
