//! What a runtime that hosts several endpoints on one thread (MUK2) needs from the fabric: it
//! blocks its endpoints' calls itself, between coroutines, and still shows the truth to `dvs ps`,
//! to `getprocinfo` and to `vcopy`'s "is that party blocked in a receive" check.

use crate::endpoint::{Endpoint, NONE};
use crate::proc::Proc;
use crate::slot::{Counters, FLAG_RECEIVING, FLAG_SENDING, FLAG_WAITING};
use crate::wait;
use std::sync::atomic::Ordering;

impl Proc {
    /// Show that this endpoint now blocks in a call its runtime handles itself: `sending`
    /// (`FLAG_SENDING`) or receiving from `getfrom` (`FLAG_RECEIVING`), each with
    /// `FLAG_WAITING`; [`Proc::show_running`] clears it. Only the owner writes its flags, so
    /// plain stores do.
    pub fn show_waiting(&self, sending: bool, getfrom: Endpoint) {
        if let Some(s) = self.region().slot(self.idx) {
            let flag = if sending {
                FLAG_SENDING
            } else {
                FLAG_RECEIVING
            };
            // Relaxed: introspection, and `vcopy`'s check of a party that is, by then, parked
            // until someone replies to it; a stale read there only refuses or allows a copy
            // that races with the party's own wake, as with the fabric's own calls.
            s.getfrom
                .store(if sending { NONE } else { getfrom }, Ordering::Relaxed);
            s.flags.store(flag | FLAG_WAITING, Ordering::Relaxed);
        }
    }

    /// Clear what [`Proc::show_waiting`] showed.
    pub fn show_running(&self) {
        if let Some(s) = self.region().slot(self.idx) {
            // Relaxed: as in `show_waiting`.
            s.flags.store(0, Ordering::Relaxed);
            s.getfrom.store(NONE, Ordering::Relaxed);
        }
    }

    /// Count a message this endpoint handed to `receiver` outside the fabric (a coroutine
    /// hand-off), so `dvs ps` counts it as sent and received.
    pub fn count_delivery(&self, receiver: &Proc) {
        if let Some(s) = self.region().slot(self.idx) {
            Counters::bump(&s.counters.sent);
        }
        if let Some(r) = receiver.region().slot(receiver.idx) {
            Counters::bump(&r.counters.received);
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

    /// Unbind now, keeping the handle (every later call fails with `EDVSNOTBIND`). For a
    /// runtime whose server ended while the others still run; dropping the handle does the same.
    pub fn release(&self) -> crate::Result<()> {
        self.unbind_inner()
    }
}
