//! `receive` and `rcvrqst`.

use crate::cleanup;
use crate::deadlock;
use crate::endpoint::{self, ANY};
use crate::errno::{Errno, Result};
use crate::inbox::{self, Closed, InboxState, Kind};
use crate::mailbox::{self, EnvState, Envelope, EnvelopeTable, Phase};
use crate::message::{Message, notify_from};
use crate::privilege::Call;
use crate::proc::{Peer, Proc, Role};
use crate::region::Region;
use crate::slot::{Counters, FLAG_RECEIVING, FLAG_WAITING, Slot};
use crate::wait::{Blocked, LIVENESS_TICK, Timeout};
use std::sync::atomic::Ordering;
use std::time::Instant;

impl EnvelopeTable for Region {
    fn envelopes(&self, idx: usize) -> Option<&[Envelope]> {
        self.slot(idx).map(|s| &s.envelopes[..])
    }
}

impl Proc {
    /// `receive(src, m)`: receive from `src`, or from anyone with `ANY`, into `m`.
    ///
    /// Order, as docs/ARCHITECTURE.md section 4: (1) a pending `wakeup` gives `EDVSWOKENUP` (for `ANY`);
    /// (2) pending notifications, lowest slot first, only from `src` when `src` is not `ANY`;
    /// (3) the oldest queued message from `src` (or anyone), which completes that sender's call;
    /// (4) block.
    ///
    /// Errors: `EDVSDCNOTRUN`, `EDVSNOTBIND`, `EDVSBADCALL`, peer errors for a specific `src`
    /// (`EDVSENDPOINT` for self or a stale endpoint, `EDVSRANGE`, `EDVSSRCDIED` if it is free,
    /// unbinds or dies), `EDVSLOCKED` (blocking on `src` would close a cycle; never while a
    /// notification from `src` is pending for us, which step 2 delivers), `EDVSWOKENUP`,
    /// `EDVSAGAIN` (NOWAIT), `EDVSTIMEDOUT`; `EDVSNOPROXY` for a remote `src` no node daemon
    /// serves, `EDVSNOTCONN` if its daemon's proxy unbinds while we wait.
    ///
    /// A remote slot ([`Proc::bind_remote`]) receives everything but `send`s here: those wait
    /// for [`Proc::take_held`], which holds their senders until the far side delivered them.
    pub fn receive(&self, src: i32, m: &mut Message, timeout: Timeout) -> Result<()> {
        let me = self.caller(Call::Receive)?;
        let from = if src == ANY {
            None
        } else {
            Some(self.peer(src, Role::Source, Errno::EDVSENDPOINT)?)
        };
        self.accept(me, from, false, m, timeout)
    }

    /// `rcvrqst(m)`: receive the oldest queued request from anyone, ignoring notifications.
    /// Only for system processes (`EDVSTRAPDENIED`). Honours `wakeup`.
    pub fn rcvrqst(&self, m: &mut Message, timeout: Timeout) -> Result<()> {
        let me = self.caller(Call::Rcvrqst)?;
        self.require_sysproc()?;
        self.accept(me, None, true, m, timeout)
    }

    fn accept(
        &self,
        me: &Slot,
        from: Option<Peer<'_>>,
        requests_only: bool,
        m: &mut Message,
        timeout: Timeout,
    ) -> Result<()> {
        let spin_for = from.as_ref().map(|p| p.idx).or(self.last_peer.get());
        let watching = from.is_some();
        let mut inc = Incoming {
            proc: self,
            me,
            from,
            requests_only,
            out: m,
            flagged: false,
            seen: None,
            opened: false,
            expired_at: None,
        };
        let r = self.block(me, spin_for, watching, timeout, &mut inc);
        if inc.opened {
            // A hand-off that lands as we leave stays in the inbox; the next receive takes it.
            inbox::close(&me.inbox, self.inbox_taken.get());
        }
        if inc.flagged {
            me.flags
                .fetch_and(!(FLAG_RECEIVING | FLAG_WAITING), Ordering::Relaxed);
        }
        r
    }

    /// The slot of the lowest pending notification (from `only` if given). Only the owner
    /// clears its bits, so a bit seen here stays set until the owner takes it.
    pub(super) fn pending_notification(&self, me: &Slot, only: Option<usize>) -> Option<usize> {
        let words = self.region().geo.nr_slots.div_ceil(64);
        match only {
            Some(i) => Slot::bit(&me.notify_pending, i).then_some(i),
            None => me.notify_pending[..words]
                .iter()
                .enumerate()
                .find_map(|(w, word)| {
                    let bits = word.load(Ordering::Relaxed);
                    (bits != 0).then(|| w * 64 + bits.trailing_zeros() as usize)
                }),
        }
    }

    /// Take the pending notification of slot `src` and build its message.
    pub(super) fn take_notification(&self, me: &Slot, src: usize) -> Option<Message> {
        let bit = 1u64 << (src % 64);
        // AcqRel: only one receiver call takes a given notification.
        let old = me
            .notify_pending
            .get(src / 64)?
            .fetch_and(!bit, Ordering::AcqRel);
        if old & bit == 0 {
            return None;
        }
        let nr = self.region().geo.nr(src);
        let mut m = Message::new(notify_from(nr));
        m.m_source = self.endpoint_of(src);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let n = m.notify_mut();
        n.tv_sec = now.as_secs() as i64;
        n.tv_nsec = now.subsec_nanos() as i64;
        Counters::bump(&me.counters.notified);
        Some(m)
    }
}

/// A `receive` or `rcvrqst` in progress.
struct Incoming<'a, 'm> {
    proc: &'a Proc,
    me: &'a Slot,
    from: Option<Peer<'a>>,
    requests_only: bool,
    out: &'m mut Message,
    flagged: bool,
    /// The doorbell count at the start of the last full look.
    seen: Option<u32>,
    /// Whether we opened our inbox to direct hand-offs (see `inbox.rs`).
    opened: bool,
    /// When the timeout first expired while a sender was filling our inbox.
    expired_at: Option<Instant>,
}

impl Incoming<'_, '_> {
    /// Whether a message handed over by slot `sender` is one this call may take.
    fn accepts(&self, sender: usize) -> bool {
        self.from.as_ref().is_none_or(|f| f.idx == sender)
    }

    /// Deliver the message in our inbox.
    fn deliver_inbox(&mut self, st: InboxState) -> Result<()> {
        let p = self.proc;
        let words = inbox::take(&self.me.inbox, st);
        p.inbox_taken.set(Some(st));
        self.opened = false;
        let sender = st.peer();
        *self.out = Message::from_words(words);
        self.out.m_source = endpoint::make(st.generation() as u32, p.region().geo.nr(sender));
        Counters::bump(&self.me.counters.received);
        Counters::bump(&self.me.counters.handed);
        p.last_peer.set(Some(sender));
        if st.full() == Some(Kind::Sendrec) {
            let awaiting = EnvState::new(Phase::AwaitReply, p.idx as u16, st.seq());
            p.last_request.set(Some((sender, awaiting)));
        }
        Ok(())
    }

    /// Whether slot `sender` is handing a message to our inbox right now. A `sendrec` client
    /// waits for our reply (`AwaitReply`) from just before it publishes its request in our
    /// inbox, so a deadlock check can see it "receiving from us" while its request arrives:
    /// that is a rendezvous, not a cycle. (The client claims the inbox before it waits, and the
    /// check read its wait with Acquire, so the claim is visible here.)
    fn handing_over(&self, sender: usize) -> bool {
        let ib = inbox::load(&self.me.inbox);
        let untaken = ib.full().is_some() && Some(ib) != self.proc.inbox_taken.get();
        (ib.is_filling() || untaken) && ib.peer() == sender
    }

    /// Close our inbox before taking anything else. `false`: a sender has claimed it, and its
    /// message (delivered by the next check) comes first.
    fn shut(&mut self) -> bool {
        if !self.opened {
            return true;
        }
        match inbox::close(&self.me.inbox, self.proc.inbox_taken.get()) {
            Closed::Empty => {
                self.opened = false;
                true
            }
            Closed::Filling(_) | Closed::Full(_) => false,
        }
    }
}

impl Blocked<()> for Incoming<'_, '_> {
    fn check(&mut self) -> Option<Result<()>> {
        let p = self.proc;
        // (0) A message handed straight to our inbox (it never rings).
        let ib = inbox::load(&self.me.inbox);
        if ib.full().is_some() && self.accepts(ib.peer()) && Some(ib) != p.inbox_taken.get() {
            return Some(self.deliver_inbox(ib));
        }
        if ib.is_filling() {
            return None;
        }
        // Everything else that can end a receive rings our doorbell first (a post, a notify, a
        // wakeup, a cleanup, the DC's removal). If it has not rung since our last full look,
        // there is nothing new: a spinning receiver then costs two loads per check.
        let rings = p.region().bell(self.me).rings();
        if self.seen == Some(rings) {
            return None;
        }
        if !self.shut() {
            return None;
        }
        self.seen = Some(rings);
        // (1) wakeup, for receive(ANY) and rcvrqst.
        if self.from.is_none()
            && self.me.mailbox.wokenup.load(Ordering::Relaxed) != 0
            && self.me.mailbox.wokenup.swap(0, Ordering::AcqRel) != 0
        {
            return Some(Err(Errno::EDVSWOKENUP));
        }
        // (2) notifications.
        if !self.requests_only
            && let Some(src) = p.pending_notification(self.me, self.from.as_ref().map(|f| f.idx))
        {
            if self.flagged {
                // Stop looking blocked before the bit goes: the AcqRel take below releases this
                // store, so a deadlock check that sees the bit cleared sees the flag cleared
                // too, and never takes a receive that just ended for a blocked one.
                self.me
                    .flags
                    .fetch_and(!(FLAG_RECEIVING | FLAG_WAITING), Ordering::Relaxed);
                self.flagged = false;
            }
            if let Some(n) = p.take_notification(self.me, src) {
                // The notifier is a peer worth spinning for on our next receive(ANY), as a
                // sender is: a notify ping-pong then spins instead of sleeping on every hop.
                p.last_peer.set(Some(src));
                *self.out = n;
                return Some(Ok(()));
            }
        }
        // (3) the oldest queued message.
        let region = p.region();
        let words = region.geo.nr_slots.div_ceil(64);
        let pending = mailbox::PendingSet(&self.me.mailbox.senders[..words]);
        let only = self.from.as_ref().map(|f| f.idx);
        // A remote slot's `send`s wait for its proxy's `take_held`: received here, they would
        // complete before the far side has them.
        let remote = p.remote;
        if let Some(c) = mailbox::scan(&pending, region, p.idx as u16, p.ep, |s, st| {
            only.is_none_or(|o| o == s) && !(remote && st.phase() == Phase::PendingSend)
        }) {
            let taken = region
                .slot(c.sender)
                .and_then(|s| s.envelopes.get(c.envelope))
                .and_then(|env| env.take(c.state, p.idx as u16));
            let Some(words) = taken else {
                // Lost the race to a withdraw (which does not ring): look again in full on the
                // next check, another sender may be waiting.
                self.seen = None;
                return None;
            };
            *self.out = Message::from_words(words);
            self.out.m_source = p.endpoint_of(c.sender);
            Counters::bump(&self.me.counters.received);
            p.last_peer.set(Some(c.sender));
            if c.state.phase() == Phase::PendingSendrec {
                let awaiting = EnvState::new(Phase::AwaitReply, p.idx as u16, c.state.seq());
                p.last_request.set(Some((c.sender, awaiting)));
            }
            // A `send` completes now: wake its sender. A `sendrec` client waits on for the reply
            // (which rings it), and a `senda` sender does not wait.
            if c.state.phase() == Phase::PendingSend
                && let Some(s) = region.slot(c.sender)
            {
                region.bell(s).ring();
            }
            return Some(Ok(()));
        }
        // A specific source that went away.
        if let Some(f) = &self.from
            && f.slot.owner() != f.owner
        {
            return Some(Err(Errno::EDVSSRCDIED));
        }
        // The DC was removed while we wait (`Dc::remove` rings every bell): nothing more can
        // come, so fail as a new call would rather than wait forever.
        if !p.region().running() {
            return Some(Err(Errno::EDVSDCNOTRUN));
        }
        // Nothing queued: let the next sender hand its message over directly (never to a
        // remote slot: see `Proc::remote`).
        self.opened = !p.remote
            && inbox::open(
                &self.me.inbox,
                self.from.as_ref().map(|f| f.idx),
                p.inbox_taken.get(),
                endpoint::generation(p.ep) as u16,
            );
        if self.opened {
            p.inbox_taken.set(None);
        }
        None
    }

    fn may_sleep(&mut self) -> bool {
        // A sender never rings an open inbox: close it, or deliver what just landed in it.
        self.shut()
    }

    fn rescan(&mut self) {
        // The count may have been written over (set back to the one we saw): look in full.
        self.seen = None;
    }

    fn tick(&mut self, first: bool) -> Option<Result<()>> {
        if first {
            // Publish that we block receiving, for deadlock checks and cleanup wakeups.
            let getfrom = self.from.as_ref().map_or(ANY, |f| f.ep);
            self.me.getfrom.store(getfrom, Ordering::Relaxed);
            // Release: a deadlock check that sees this flag (Acquire, `deadlock::blocked_on`)
            // sees `getfrom` and every notification we sent before this receive; so of two
            // processes that notify each other and then receive from each other by name, the
            // one that finds the other receiving also finds that one's notification pending.
            self.me.flags.fetch_or(FLAG_RECEIVING, Ordering::Release);
            self.flagged = true;
        }
        // A sender that died while filling our inbox will never publish: reopen it.
        let ib = inbox::load(&self.me.inbox);
        if !first
            && ib.is_filling()
            && self
                .proc
                .region()
                .slot(ib.peer())
                .is_none_or(|s| !cleanup::owner_alive(s, s.owner()))
        {
            inbox::abandon(&self.me.inbox, ib);
            self.opened = false;
        }
        if let Some(f) = self.from.as_ref() {
            if !self.proc.peer_still_there(f, !first) {
                return Some(Err(Errno::EDVSSRCDIED));
            }
            // A remote source whose proxy unbound: the link is gone.
            if crate::remote::link_down(self.proc.region(), f.slot, f.owner) {
                return Some(Err(Errno::EDVSNOTCONN));
            }
            // A notification from `f` that arrived since our last check satisfies this receive:
            // the next check delivers it, so waiting is no cycle.
            if first
                && deadlock::closes_cycle(self.proc.region(), self.proc.idx, f.idx, false)
                && !self.handing_over(f.idx)
                && !deadlock::notification_pending(self.me, f.idx)
            {
                return Some(Err(Errno::EDVSLOCKED));
            }
        }
        if first {
            self.me.flags.fetch_or(FLAG_WAITING, Ordering::Relaxed);
        }
        None
    }

    fn expire(&mut self, why: Errno) -> Option<Result<()>> {
        if !self.opened {
            return Some(Err(why));
        }
        match inbox::close(&self.me.inbox, self.proc.inbox_taken.get()) {
            Closed::Empty => {
                self.opened = false;
                Some(Err(why))
            }
            // Handed over just in time: the sender's call completed, so must ours.
            Closed::Full(st) if self.accepts(st.peer()) => Some(self.deliver_inbox(st)),
            Closed::Full(_) => Some(Err(why)),
            // A sender is writing, which takes nanoseconds. One still writing a liveness tick
            // past our deadline is stalled (or the word is forged): give up on it.
            Closed::Filling(st) => {
                let since = *self.expired_at.get_or_insert_with(Instant::now);
                (since.elapsed() >= LIVENESS_TICK && inbox::abandon(&self.me.inbox, st))
                    .then_some(Err(why))
            }
        }
    }
}
