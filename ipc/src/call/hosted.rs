//! What a runtime that hosts several endpoints on one thread (MUK2) needs from the fabric: it
//! blocks its endpoints' calls itself, between coroutines, and still shows the truth to `dvs ps`,
//! to `getprocinfo` and to `vcopy`'s "is that party blocked in a receive" check.

use crate::doorbell::Doorbell;
use crate::endpoint::{Endpoint, NONE};
use crate::proc::Proc;
use crate::slot::{FLAG_RECEIVING, FLAG_SENDING, FLAG_SENDREC, FLAG_WAITING};
use crate::wait;
use std::sync::atomic::Ordering;

/// The ring count of the doorbell an endpoint is woken by, with the slot lookups of
/// [`Proc::doorbell_rings`] done once: for a runtime that reads it before every call it blocks
/// itself. It keeps reading the doorbell it was made for even if the slot's redirect is written
/// over later; a runtime that sleeps on the doorbell reads [`Proc::doorbell_rings`] too.
#[derive(Clone, Copy, Default)]
pub struct RingCount<'a>(Option<&'a Doorbell>);

impl RingCount<'_> {
    /// The count now (0 if the slot was out of range when this was made).
    #[inline]
    pub fn rings(&self) -> u32 {
        self.0.map_or(0, Doorbell::rings)
    }
}

impl core::fmt::Debug for RingCount<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("RingCount").field(&self.rings()).finish()
    }
}

impl Proc {
    /// This endpoint's [`RingCount`].
    pub fn ring_count(&self) -> RingCount<'_> {
        let region = self.region();
        RingCount(region.slot(self.idx).map(|s| region.bell(s)))
    }

    /// Show that this endpoint now blocks in a call its runtime handles itself, as the
    /// fabric's own calls show it: `flag` is `FLAG_SENDING` (queued to send), `FLAG_RECEIVING`
    /// (in a receive from `getfrom`) or `FLAG_SENDREC` (waiting for the reply of `getfrom`);
    /// `FLAG_WAITING` is added. [`Proc::show_running`] clears it. Only the owner writes its
    /// flags, so plain stores do.
    #[inline]
    pub fn show_waiting(&self, flag: u32, getfrom: Endpoint) {
        if let Some(s) = self.region().slot(self.idx) {
            let flag = flag & (FLAG_SENDING | FLAG_RECEIVING | FLAG_SENDREC);
            // Relaxed: introspection, and `vcopy`'s check of a party that is, by then, parked
            // until someone replies to it; a stale read there only refuses or allows a copy
            // that races with the party's own wake, as with the fabric's own calls.
            let from = if flag == FLAG_SENDING { NONE } else { getfrom };
            s.getfrom.store(from, Ordering::Relaxed);
            s.flags.store(flag | FLAG_WAITING, Ordering::Relaxed);
        }
    }

    /// Clear what [`Proc::show_waiting`] showed.
    #[inline]
    pub fn show_running(&self) {
        if let Some(s) = self.region().slot(self.idx) {
            // Relaxed: as in `show_waiting`.
            s.flags.store(0, Ordering::Relaxed);
            s.getfrom.store(NONE, Ordering::Relaxed);
        }
    }

    /// Count messages this endpoint sent and received outside the fabric (coroutine
    /// hand-offs), so that `dvs ps` shows them. A runtime may batch these.
    pub fn add_counts(&self, sent: u64, received: u64) {
        if let Some(s) = self.region().slot(self.idx) {
            // Only the owner counts in its slot (see `Counters::bump`).
            for (c, n) in [(&s.counters.sent, sent), (&s.counters.received, received)] {
                if n > 0 {
                    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
                }
            }
        }
    }

    /// Whether the owner of `ep` runs now on another CPU than the caller (its published CPU
    /// word): the fabric's rule for when a bounded spin may pay off. `false` for a bad endpoint.
    pub fn runs_elsewhere(&self, ep: Endpoint) -> bool {
        let region = self.region();
        let Some(slot) = region
            .geo
            .index(crate::endpoint::nr(ep))
            .and_then(|i| region.slot(i))
        else {
            return false;
        };
        // Relaxed: a scheduling hint.
        let cpu = slot.cpu.load(Ordering::Relaxed);
        cpu >= 0 && cpu != wait::current_cpu()
    }

    /// For a runtime that waits for `ep` itself: if the process that holds `ep`'s slot died,
    /// free the slot (its waiters get the usual errors) and return `true`. Reads `/proc` once.
    pub fn reap_if_dead(&self, ep: Endpoint) -> bool {
        let region = self.region();
        region
            .geo
            .index(crate::endpoint::nr(ep))
            .is_some_and(|idx| crate::cleanup::reap_if_dead(region, idx))
    }

    /// `receive(src)`, for a runtime that hosts this endpoint among others on one thread and
    /// has nothing else to run: spin as the adaptive policy does (only while the last peer runs
    /// on another CPU, with this endpoint's inbox open to a direct hand-off) for at most
    /// `budget`, never sleep (a park hook is not called): `EDVSAGAIN` when nothing came.
    /// Other errors as [`Proc::receive`].
    pub fn receive_spinning(
        &self,
        src: Endpoint,
        m: &mut crate::Message,
        budget: std::time::Duration,
    ) -> crate::Result<()> {
        self.spin_only.set(Some(budget));
        let r = self.receive(src, m, crate::Timeout::Forever);
        self.spin_only.set(None);
        r
    }

    /// Unbind now, keeping the handle (every later call fails with `EDVSNOTBIND`). For a
    /// runtime whose server ended while the others still run; dropping the handle does the same.
    pub fn release(&self) -> crate::Result<()> {
        self.unbind_inner()
    }
}
