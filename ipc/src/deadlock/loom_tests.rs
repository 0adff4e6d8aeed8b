//! Loom model of a notify racing a deadlock check (`deadlock.rs`, `call/receive.rs`).
//!
//! Run with the other loom models (from the workspace root):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p m3ipc --release --lib deadlock_loom
//! ```
//!
//! A notifies B and then receives from B by name; B receives from A by name. A's notify
//! satisfies B's receive, so neither receive closes a cycle, whatever the interleaving: B's
//! check must find A's notification whenever it finds A receiving, and A's check must not take
//! B for blocked, neither while A's notification is pending for B nor just after B took it
//! (B's RECEIVING flag lingers until B clears it). Publishing RECEIVING Relaxed, or not reading
//! the flag again after the bit, each fails this model. The steps are those of
//! `Incoming::tick`/`check` and `deadlock::blocked_on`, repeated on loom atomics over the words
//! they touch (each slot's flags and pending-notification word).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use loom::sync::Arc;
use loom::thread;

const RECEIVING: u32 = 1;

/// One slot's words: its flags and its pending notifications (bit `i`: from slot `i`).
#[derive(Default)]
struct Slot {
    flags: AtomicU32,
    pending: AtomicU64,
}

/// `deadlock::blocked_on` for a receiver from `from`: RECEIVING, and no notification from
/// `from` pending, and still RECEIVING.
fn blocked_receiving(s: &Slot, from: usize) -> bool {
    s.flags.load(Ordering::Acquire) & RECEIVING != 0
        && s.pending.load(Ordering::Acquire) & (1 << from) == 0
        && s.flags.load(Ordering::Relaxed) & RECEIVING != 0
}

/// `Incoming::tick(true)` of `me` receiving from `peer` (a two-party chain): publish RECEIVING,
/// fence, then EDVSLOCKED if the peer blocks receiving from us and nothing from the peer is
/// pending for us. Returns whether the receive fails with EDVSLOCKED.
fn tick_locked(me: &Slot, me_idx: usize, peer: &Slot, peer_idx: usize) -> bool {
    me.flags.fetch_or(RECEIVING, Ordering::Release);
    fence(Ordering::SeqCst);
    blocked_receiving(peer, me_idx) && me.pending.load(Ordering::Relaxed) & (1 << peer_idx) == 0
}

/// `Incoming::check` step (2): take the notification from `from` if pending, leaving the
/// receiving state first. Returns whether it took one.
fn take(me: &Slot, from: usize) -> bool {
    if me.pending.load(Ordering::Relaxed) & (1 << from) == 0 {
        return false;
    }
    me.flags.fetch_and(!RECEIVING, Ordering::Relaxed);
    me.pending.fetch_and(!(1 << from), Ordering::AcqRel) & (1 << from) != 0
}

#[test]
fn notify_then_receive_by_name_is_never_locked() {
    const A: usize = 0;
    const B: usize = 1;
    loom::model(|| {
        let a = Arc::new(Slot::default());
        let b = Arc::new(Slot::default());
        let (a2, b2) = (a.clone(), b.clone());
        let tb = thread::spawn(move || {
            // B: receive(A). Its first check may already find A's notify; else it blocks (tick)
            // and checks again.
            if take(&b2, A) {
                return;
            }
            assert!(
                !tick_locked(&b2, B, &a2, A),
                "B's receive(A) got EDVSLOCKED"
            );
            let _ = take(&b2, A);
        });
        // A: notify(B), then receive(B), which blocks (B never sends): it must not be
        // EDVSLOCKED, since B's receive ends on the notify.
        b.pending.fetch_or(1 << A, Ordering::Relaxed);
        assert!(!tick_locked(&a, A, &b, B), "A's receive(B) got EDVSLOCKED");
        tb.join().unwrap();
    });
}
