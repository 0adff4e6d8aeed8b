//! A thread-safe handle that wakes one bound endpoint, for shutting down a server's loop.

use crate::dc::Dc;
use crate::slot::OwnerWord;
use std::sync::atomic::Ordering;

/// Wakes one endpoint from any thread of the process that bound it (see [`crate::Proc::waker`]).
///
/// The wake is the `wakeup` call's: the endpoint's current or next `receive(ANY)`/`rcvrqst`
/// returns `EDVSWOKENUP`. It needs no privilege, because only the endpoint's own process can
/// make one. Once the binding is gone (unbound, or rebound by someone else), `wake` does nothing.
#[derive(Clone, Debug)]
pub struct Waker {
    dc: Dc,
    idx: usize,
    owner: OwnerWord,
}

impl Waker {
    pub(crate) fn new(dc: Dc, idx: usize, owner: OwnerWord) -> Waker {
        Waker { dc, idx, owner }
    }

    /// Wake the endpoint; returns `false` when it is no longer bound as it was.
    pub fn wake(&self) -> bool {
        let region = &self.dc.region;
        let Some(slot) = region.slot(self.idx) else {
            return false;
        };
        if slot.owner() != self.owner {
            return false;
        }
        // Relaxed: the ring's AcqRel publishes it (as `Proc::wakeup`).
        slot.mailbox.wokenup.store(1, Ordering::Relaxed);
        region.bell(slot).ring();
        true
    }
}

/// A thread-safe handle on the doorbell of one bound endpoint (see [`crate::Proc::bell_watch`]),
/// for the one thread that sleeps on it while other threads use the endpoint's `Proc`. A node
/// daemon's pump sleeps on its proxy's doorbell this way, which every remote slot shares.
#[derive(Clone, Debug)]
pub struct BellWatch {
    dc: Dc,
    idx: usize,
}

impl BellWatch {
    pub(crate) fn new(dc: Dc, idx: usize) -> BellWatch {
        BellWatch { dc, idx }
    }

    /// The ring count now (0 if the slot is out of range).
    pub fn rings(&self) -> u32 {
        let region = &self.dc.region;
        region.slot(self.idx).map_or(0, |s| region.bell(s).rings())
    }

    /// Sleep until the ring count differs from `seen`, as [`crate::Proc::doorbell_wait`] does
    /// (bounded by `timeout` and by the liveness tick; at once if it differs already). The
    /// caller re-checks everything afterwards.
    pub fn wait(&self, seen: u32, timeout: std::time::Duration) {
        let region = &self.dc.region;
        let Some(slot) = region.slot(self.idx) else {
            return;
        };
        let bell = region.bell(slot);
        let token = bell.prepare();
        if token.rings() != seen {
            bell.done();
            return;
        }
        let _ = bell.sleep(token, timeout.min(crate::wait::LIVENESS_TICK));
    }
}
