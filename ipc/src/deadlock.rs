//! Deadlock detection, as MINIX's `deadlock()`: before a call blocks, follow the chain of
//! "blocked on" from its peer; if the chain comes back to the caller, blocking would close a cycle
//! and the caller gets `EDVSLOCKED`.
//!
//! A two-party chain is a deadlock only if both parties block the same way (both sending, or both
//! receiving): a send to a process that is receiving from us is a rendezvous, not a cycle.
//!
//! A receiver with a notification pending from the source it receives from is not blocked: its
//! receive delivers that notification (docs/ARCHITECTURE.md section 4, step 2 before step 4). Two processes
//! that notify each other and then receive from each other by name are therefore never
//! `EDVSLOCKED`.

use crate::endpoint::{self, ANY};
use crate::mailbox::{Phase, SYNC};
use crate::region::Region;
use crate::slot::{FLAG_RECEIVING, Slot};
use std::sync::atomic::{Ordering, fence};

/// What a slot's owner is blocked on: (slot index, whether it is sending).
fn blocked_on(region: &Region, slot: &Slot) -> Option<(usize, bool)> {
    let st = slot.envelopes[SYNC].load();
    match st.phase() {
        // Held: a `send` to a remote slot, taken by its proxy: still blocked sending to it.
        Phase::PendingSend | Phase::PendingSendrec | Phase::Held => {
            Some((st.peer() as usize, true))
        }
        Phase::AwaitReply | Phase::Replying => Some((st.peer() as usize, false)),
        // Acquire: pairs with the Release with which a receiver publishes FLAG_RECEIVING (see
        // `Incoming::tick`): its `getfrom`, and a notification it had sent before blocking,
        // are visible once the flag is.
        _ if slot.flags.load(Ordering::Acquire) & FLAG_RECEIVING != 0 => {
            let from = slot.getfrom.load(Ordering::Relaxed);
            if from == ANY {
                return None;
            }
            let i = region.geo.index(endpoint::nr(from))?;
            // A receive that a pending notification from its source satisfies is not blocked
            // (docs/ARCHITECTURE.md section 4: notifications come before blocking); it returns as soon
            // as its owner runs.
            if notification_pending(slot, i) {
                return None;
            }
            // Read the flag again: a receiver that takes its notification first clears the flag,
            // then (Release) the bit. If the Acquire load above saw the bit cleared, this load
            // sees the flag cleared too, unless the owner blocks in a new receive: a receive
            // that just ended on a notification is never taken for a blocked one.
            (slot.flags.load(Ordering::Relaxed) & FLAG_RECEIVING != 0).then_some((i, false))
        }
        _ => None,
    }
}

/// Whether `slot` has a notification pending from slot `from`.
pub(crate) fn notification_pending(slot: &Slot, from: usize) -> bool {
    // Acquire: pairs with the receiver's AcqRel take of the bit (see above).
    slot.notify_pending
        .get(from / 64)
        .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (from % 64)) != 0)
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
