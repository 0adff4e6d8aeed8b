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
