//! `receive` and `rcvrqst`.

use crate::deadlock;
use crate::endpoint::ANY;
use crate::errno::{Errno, Result};
use crate::mailbox::{self, EnvState, Envelope, EnvelopeTable, Phase};
use crate::message::{Message, notify_from};
use crate::privilege::Call;
use crate::proc::{Peer, Proc, Role};
use crate::region::Region;
use crate::slot::{FLAG_RECEIVING, FLAG_WAITING, Slot};
use crate::wait::{Blocked, Timeout};
use std::sync::atomic::Ordering;

impl EnvelopeTable for Region {
    fn envelopes(&self, idx: usize) -> Option<&[Envelope]> {
        self.slot(idx).map(|s| &s.envelopes[..])
    }
}

impl Proc {
    /// `receive(src, m)`: receive from `src`, or from anyone with `ANY`, into `m`.
    ///
    /// Order, as DESIGN.md section 4: (1) a pending `wakeup` gives `EDVSWOKENUP` (for `ANY`);
    /// (2) pending notifications, lowest slot first, only from `src` when `src` is not `ANY`;
    /// (3) the oldest queued message from `src` (or anyone), which completes that sender's call;
    /// (4) block.
    ///
    /// Errors: `EDVSDCNOTRUN`, `EDVSNOTBIND`, `EDVSBADCALL`, peer errors for a specific `src`
    /// (`EDVSENDPOINT` for self or a stale endpoint, `EDVSRANGE`, `EDVSSRCDIED` if it is free,
    /// unbinds or dies), `EDVSLOCKED`, `EDVSWOKENUP`, `EDVSAGAIN` (NOWAIT), `EDVSTIMEDOUT`.
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
        };
        let r = self.block(me, spin_for, watching, timeout, &mut inc);
        if inc.flagged {
            me.flags
                .fetch_and(!(FLAG_RECEIVING | FLAG_WAITING), Ordering::Relaxed);
        }
        r
    }

    /// Take one pending notification (from `only` if given) and build its message.
    fn take_notification(&self, me: &Slot, only: Option<usize>) -> Option<Message> {
        let words = self.region().geo.nr_slots.div_ceil(64);
        let src = match only {
            Some(i) => Slot::bit(&me.notify_pending, i).then_some(i)?,
            None => me.notify_pending[..words]
                .iter()
                .enumerate()
                .find_map(|(w, word)| {
                    let bits = word.load(Ordering::Relaxed);
                    (bits != 0).then(|| w * 64 + bits.trailing_zeros() as usize)
                })?,
        };
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
        me.counters.notified.fetch_add(1, Ordering::Relaxed);
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
}

impl Blocked<()> for Incoming<'_, '_> {
    fn check(&mut self) -> Option<Result<()>> {
        let p = self.proc;
        // Everything that can end a receive rings our doorbell first (a post, a notify, a
        // wakeup, a cleanup, the DC's removal). If it has not rung since our last full look,
        // there is nothing new: a spinning receiver then costs one load per check.
        let rings = self.me.mailbox.bell.rings();
        if self.seen == Some(rings) {
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
            && let Some(n) = p.take_notification(self.me, self.from.as_ref().map(|f| f.idx))
        {
            *self.out = n;
            return Some(Ok(()));
        }
        // (3) the oldest queued message.
        let region = p.region();
        let words = region.geo.nr_slots.div_ceil(64);
        let pending = mailbox::PendingSet(&self.me.mailbox.senders[..words]);
        let only = self.from.as_ref().map(|f| f.idx);
        if let Some(c) = mailbox::scan(&pending, region, p.idx as u16, p.ep, |s, _| {
            only.is_none_or(|o| o == s)
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
            self.me.counters.received.fetch_add(1, Ordering::Relaxed);
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
                s.mailbox.bell.ring();
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
        None
    }

    fn tick(&mut self, first: bool) -> Option<Result<()>> {
        if first {
            // Publish that we block receiving, for deadlock checks and cleanup wakeups.
            let getfrom = self.from.as_ref().map_or(ANY, |f| f.ep);
            self.me.getfrom.store(getfrom, Ordering::Relaxed);
            self.me.flags.fetch_or(FLAG_RECEIVING, Ordering::Relaxed);
            self.flagged = true;
        }
        if let Some(f) = self.from.as_ref() {
            if !self.proc.peer_still_there(f, !first) {
                return Some(Err(Errno::EDVSSRCDIED));
            }
            if first && deadlock::closes_cycle(self.proc.region(), self.proc.idx, f.idx, false) {
                return Some(Err(Errno::EDVSLOCKED));
            }
        }
        if first {
            self.me.flags.fetch_or(FLAG_WAITING, Ordering::Relaxed);
        }
        None
    }

    fn expire(&mut self, why: Errno) -> Option<Result<()>> {
        Some(Err(why))
    }
}
