//! One entry of the DC's slot table (the original's `struct proc`), as it lies in shared memory.
//!
//! Every field is an atomic, so any bit pattern another process leaves here is a valid value; the
//! code that reads a field checks what it means before it uses it.

use crate::doorbell::Doorbell;
use crate::mailbox::{ENVELOPES, Envelope, PendingSet};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Most slots (tasks plus processes) one DC may have.
pub const MAX_SLOTS: usize = 1024;
/// Words of a bitmap over all slots.
pub(crate) const BITMAP_WORDS: usize = MAX_SLOTS / 64;

/// `flags` bit: the owner waits for a message to be received (as the original's `SENDING`).
pub const FLAG_SENDING: u32 = 1 << 2;
/// `flags` bit: the owner waits in a receive (as the original's `RECEIVING`).
pub const FLAG_RECEIVING: u32 = 1 << 3;
/// `flags` bit: the owner's call has passed its deadlock check and blocks. `Dc::getprocinfo`
/// reports `FLAG_SENDING`/`FLAG_RECEIVING` only together with it, so an observer that sees a
/// process SENDING knows it is queued and settled, not still deciding whether it may block.
pub const FLAG_WAITING: u32 = 1 << 20;
/// `flags` bit: the owner blocks in a `sendrec` (set with `FLAG_WAITING`): it waits to receive
/// its reply. `vcopy` takes it, like `FLAG_RECEIVING`, for "blocked in a receive" of an
/// endpoint whose runtime shows its calls in its flags (MUK2); a fabric client counts at once by
/// its envelope (`AwaitReply`, see `call/vcopy.rs`). Deadlock
/// detection reads the sendrec from the owner's envelope instead, so a stale bit cannot fake a
/// cycle.
pub const FLAG_SENDREC: u32 = 1 << 21;
/// `flags` bit: the owner waits in `wait4bind` (as the original's `WAITBIND`).
pub const FLAG_WAITBIND: u32 = 1 << 18;

/// The binding state of a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Nobody holds it.
    Free,
    /// A process is filling it in.
    Binding,
    /// A process holds it.
    Bound,
    /// Its process unbinds or died; waiters are being told.
    Closing,
}

/// The owner word: `pid << 32 | generation << 8 | state`. One atomic word, so a CAS moves a slot
/// between states and owners at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OwnerWord(pub(crate) u64);

impl OwnerWord {
    pub(crate) const fn new(state: SlotState, generation: u32, pid: u32) -> Self {
        let s = match state {
            SlotState::Free => 0,
            SlotState::Binding => 1,
            SlotState::Bound => 2,
            SlotState::Closing => 3,
        };
        OwnerWord((pid as u64) << 32 | ((generation & 0xff_ffff) as u64) << 8 | s)
    }

    /// The state; a corrupt state byte reads as `Closing` (nobody may use the slot until a
    /// cleanup, which any process may do once the named owner is dead, frees it).
    pub(crate) const fn state(self) -> SlotState {
        match self.0 as u8 {
            0 => SlotState::Free,
            1 => SlotState::Binding,
            2 => SlotState::Bound,
            _ => SlotState::Closing,
        }
    }

    pub(crate) const fn generation(self) -> u32 {
        ((self.0 >> 8) & 0xff_ffff) as u32
    }

    pub(crate) const fn pid(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// The receiver's hot cache line: what a sender touches to deliver (hint bit, ticket, doorbell).
#[repr(C, align(64))]
pub(crate) struct MailboxHead {
    /// Wakes the owner.
    pub(crate) bell: Doorbell,
    /// Non-zero: the next `receive(ANY)`/`rcvrqst` returns `EDVSWOKENUP`.
    pub(crate) wokenup: AtomicU32,
    /// FIFO ticket counter for senders.
    pub(crate) ticket: AtomicU64,
    /// One hint bit per sender slot.
    pub(crate) senders: [AtomicU64; BITMAP_WORDS],
}

/// Per-slot statistics.
#[repr(C)]
pub(crate) struct Counters {
    /// Messages this slot sent that were received.
    pub(crate) sent: AtomicU64,
    /// Messages this slot received.
    pub(crate) received: AtomicU64,
    /// Notifications to this slot that coalesced with a pending one.
    pub(crate) overruns: AtomicU64,
    /// Notifications this slot received.
    pub(crate) notified: AtomicU64,
    /// Messages this slot received by direct hand-off into its inbox (a part of `received`).
    pub(crate) handed: AtomicU64,
}

impl Counters {
    /// Add one to a counter of the caller's own slot. Only the owner counts in its slot, so a
    /// plain load and store do (no locked instruction on the hot path); a concurrent scribble
    /// can only make the count wrong, which a counter may be.
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
}

/// One slot of the table.
#[repr(C, align(64))]
pub(crate) struct Slot {
    /// [`OwnerWord`].
    pub(crate) owner: AtomicU64,
    /// Start time of the owner process (see `owner.rs`).
    pub(crate) owner_start: AtomicU64,
    /// `FLAG_*` bits, for introspection and deadlock detection.
    pub(crate) flags: AtomicU32,
    /// Whom the owner receives from, while `FLAG_RECEIVING`.
    pub(crate) getfrom: AtomicI32,
    /// Whose doorbell wakes the owner: 0 its own, `n > 0` that of slot index `n - 1`. A process
    /// that hosts several endpoints on one thread (MUK2) sleeps on one doorbell for all of them;
    /// it sets this at bind, before the slot reads Bound, so a sender that sees the binding sees
    /// the redirect too. Untrusted: a value out of range means "its own". (Whom the owner sends
    /// to is read from its synchronous envelope; see `Dc::getprocinfo`.)
    pub(crate) bell_at: AtomicI32,
    /// CPU the owner runs on, or -1 while it sleeps in the fabric.
    pub(crate) cpu: AtomicI32,
    /// Calls the owner may make (bit n = call number n).
    pub(crate) allowed: AtomicU64,
    /// Privilege level (0 user .. 5 proxy, as the original).
    pub(crate) level: AtomicU32,
    /// What kind of slot this is: local (0), the DC's proxy, or a remote slot with its node
    /// (see `remote.rs`). Written before the slot reads Bound, cleared when it is released.
    pub(crate) remote: AtomicU32,
    /// Process name given at bind, NUL-padded.
    pub(crate) name: [AtomicU64; 2],
    /// The receiver's hot line and sender hints.
    pub(crate) mailbox: MailboxHead,
    /// Pending notifications: one bit per notifying slot.
    pub(crate) notify_pending: [AtomicU64; BITMAP_WORDS],
    /// Slots (system processes) the owner may send to.
    pub(crate) ipc_to: [AtomicU64; BITMAP_WORDS],
    /// Statistics.
    pub(crate) counters: Counters,
    /// The owner's outgoing messages.
    pub(crate) envelopes: [Envelope; ENVELOPES],
    /// Direct hand-offs to the owner while it waits (see `inbox.rs`).
    pub(crate) inbox: Envelope,
}

impl Slot {
    pub(crate) fn owner(&self) -> OwnerWord {
        // Acquire: a Bound word makes the fields the binder wrote before it visible.
        OwnerWord(self.owner.load(Ordering::Acquire))
    }

    pub(crate) fn pending(&self) -> PendingSet<'_> {
        PendingSet(&self.mailbox.senders)
    }

    pub(crate) fn name(&self) -> String {
        let mut bytes = [0u8; 16];
        for (i, w) in self.name.iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    }

    pub(crate) fn set_name(&self, name: &str) {
        let mut bytes = [0u8; 16];
        let n = name.len().min(15);
        bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
        for (i, w) in self.name.iter().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
    }

    /// Whether bit `idx` of a slot bitmap is set.
    pub(crate) fn bit(map: &[AtomicU64; BITMAP_WORDS], idx: usize) -> bool {
        map.get(idx / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (idx % 64)) != 0)
    }
}

const _: () = {
    assert!(core::mem::size_of::<Slot>().is_multiple_of(64));
    assert!(core::mem::size_of::<Envelope>() == 128);
    assert!(core::mem::size_of::<MailboxHead>() == 192);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_word_round_trips() {
        let w = OwnerWord::new(SlotState::Bound, 60_000, 4_000_000);
        assert_eq!(w.state(), SlotState::Bound);
        assert_eq!(w.generation(), 60_000);
        assert_eq!(w.pid(), 4_000_000);
        assert_eq!(OwnerWord(0).state(), SlotState::Free);
        assert_eq!(OwnerWord(0x77).state(), SlotState::Closing);
    }
}
