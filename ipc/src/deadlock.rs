//! Deadlock detection, as MINIX's `deadlock()`: before a call blocks, follow the chain of
//! "blocked on" from its peer; if the chain comes back to the caller, blocking would close a cycle
//! and the caller gets `EDVSLOCKED`.
//!
//! A two-party chain is a deadlock only if both parties block the same way (both sending, or both
//! receiving): a send to a process that is receiving from us is a rendezvous, not a cycle.

use crate::endpoint::{self, ANY};
use crate::mailbox::{Phase, SYNC};
use crate::region::Region;
use crate::slot::{FLAG_RECEIVING, Slot};
use std::sync::atomic::{Ordering, fence};

/// What a slot's owner is blocked on: (slot index, whether it is sending).
fn blocked_on(region: &Region, slot: &Slot) -> Option<(usize, bool)> {
    let st = slot.envelopes[SYNC].load();
    match st.phase() {
        Phase::PendingSend | Phase::PendingSendrec => Some((st.peer() as usize, true)),
        Phase::AwaitReply | Phase::Replying => Some((st.peer() as usize, false)),
        _ if slot.flags.load(Ordering::Relaxed) & FLAG_RECEIVING != 0 => {
            let from = slot.getfrom.load(Ordering::Relaxed);
            if from == ANY {
                return None;
            }
            region.geo.index(endpoint::nr(from)).map(|i| (i, false))
        }
        _ => None,
    }
}

/// Whether the caller (slot `me`), about to block `sending` or receiving on slot `first`, closes
/// a cycle. Bounded by the number of slots, whatever the table says.
pub(crate) fn closes_cycle(region: &Region, me: usize, first: usize, sending: bool) -> bool {
    // SeqCst fence: the caller has published its own blocked state (its envelope or its
    // RECEIVING flag) before this fence; a peer doing the same check concurrently has a fence
    // too, so at least one of the two sees the other's state and the cycle cannot go unnoticed.
    fence(Ordering::SeqCst);
    let mut x = first;
    let mut group = 1;
    for _ in 0..region.geo.nr_slots {
        let Some(slot) = region.slot(x) else {
            return false;
        };
        group += 1;
        let Some((next, x_sending)) = blocked_on(region, slot) else {
            return false;
        };
        if next == me {
            return !(group == 2 && x_sending != sending);
        }
        x = next;
    }
    false
}
