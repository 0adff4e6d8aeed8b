//! The inbox: a direct hand-off to a receiver that is already waiting.
//!
//! A receiver that waits (spinning) *opens* its inbox, one cache line in its own slot. A sender
//! that finds it open and accepting it *claims* it with one read-modify-write, writes its message
//! there and *publishes* it: the receiver, which polls that line, reads the message where the
//! sender wrote it. The rendezvous then moves the inbox line once each way, where the queued
//! path (`mailbox.rs`) also moves the receiver's mailbox line and the sender's envelope line; this
//! is the original DVK's "copy into a process that is RECEIVING".
//!
//! Rules that keep it exact:
//! - A receiver opens only after a full look found nothing queued, and closes (CAS) before it
//!   takes anything else, before it sleeps (a sender never rings an open inbox), and when its
//!   call ends. A close that fails means a sender has claimed the inbox: the receiver delivers
//!   that message (the next receive does, if this one ends first).
//! - A claim is a CAS from an `Open` word that accepts the claimer and names the generation of
//!   the binding it addresses, so a message never lands in a successor of that binding. (Any
//!   opening of the same binding that accepts the claimer is one it may fill.)
//! - A taken message stays in the word until the receiver opens again (the receiver remembers
//!   which word it took), so taking costs the receiver no write on the way to its reply.
//! - A publish is a CAS from the sender's own `Filling` word: a receiver that gave up on a sender
//!   stalled past its deadline (or a forged `Filling`) closes the inbox, and the stale publish
//!   fails. Its body writes may then land in a later opening's line (garbage for that message,
//!   never undefined behaviour), exactly as with an abandoned reply.
//!
//! The word uses the envelope's layout (`mailbox::EnvState`): phase in bits 0..8, peer slot in
//! 8..18, tail bit 18, generation 19..35 (the receiver's while open, the sender's when full),
//! sequence 35..64 (for a `sendrec`, the client envelope's, which the reply claims).

use crate::mailbox::{EnvState, Envelope, pack};
use crate::sync::atomic::Ordering;

/// Phases of an inbox word (distinct from envelope phases, so a misplaced word never passes for
/// the other kind).
mod phase {
    pub(super) const CLOSED: u8 = 0;
    pub(super) const OPEN_ANY: u8 = 0x10;
    pub(super) const OPEN_FROM: u8 = 0x11;
    pub(super) const FILLING: u8 = 0x12;
    pub(super) const FULL_SEND: u8 = 0x13;
    pub(super) const FULL_SENDREC: u8 = 0x14;
}

/// What kind of call handed a message over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A `send`: complete once published.
    Send,
    /// A `sendrec`: the client waits for the reply in its envelope (`AwaitReply`).
    Sendrec,
}

/// An inbox word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InboxState(pub(crate) u64);

impl InboxState {
    const fn make(phase: u8, peer: u16, seq: u32) -> Self {
        // The envelope layout, with our own phase byte.
        InboxState(EnvState::new(crate::mailbox::Phase::Idle, peer, seq).0 | phase as u64)
    }

    fn env(self) -> EnvState {
        EnvState(self.0 & !0xff)
    }

    fn phase(self) -> u8 {
        self.0 as u8
    }

    /// Slot index: the accepted source of `Open`, the sender of `Filling`/`Full`.
    pub(crate) fn peer(self) -> usize {
        self.env().peer() as usize
    }

    /// Sequence: the opening's, or for `Full` of a `sendrec`, the client envelope's.
    pub(crate) fn seq(self) -> u32 {
        self.env().seq()
    }

    /// Generation of the sender of a `Full` message.
    pub(crate) fn generation(self) -> u16 {
        self.env().generation()
    }

    /// Whether a sender in slot `sender` may hand a message to this inbox.
    pub(crate) fn accepts(self, sender: usize) -> bool {
        match self.phase() {
            phase::OPEN_ANY => true,
            phase::OPEN_FROM => self.peer() == sender,
            _ => false,
        }
    }

    pub(crate) fn is_open(self) -> bool {
        matches!(self.phase(), phase::OPEN_ANY | phase::OPEN_FROM)
    }

    pub(crate) fn is_filling(self) -> bool {
        self.phase() == phase::FILLING
    }

    /// The kind of a published message, if the word is `Full`.
    pub(crate) fn full(self) -> Option<Kind> {
        match self.phase() {
            phase::FULL_SEND => Some(Kind::Send),
            phase::FULL_SENDREC => Some(Kind::Sendrec),
            _ => None,
        }
    }
}

/// Current inbox word. Acquire: a `Full` word makes the message written before it visible.
pub(crate) fn load(inbox: &Envelope) -> InboxState {
    InboxState(inbox.state.load(Ordering::Acquire))
}

/// Receiver: open the inbox to `from` (a slot) or to anyone. `consumed` is the `Full` word the
/// receiver last took: the receiver does not write the inbox when it takes a message (that write
/// would cost its line on the way to the reply), so a taken message stays in the word until this
/// reopens it. Returns whether it is open now; an inbox holding a message not yet taken stays as
/// it is.
///
/// The word names the receiver's generation, `generation`, so that a sender that looked up an
/// earlier binding of the slot cannot hand its message to this one. It carries no sequence: a
/// claim is a CAS on the word the claimer just read, and any opening of this binding that
/// accepts the claimer is one it may fill.
pub(crate) fn open(
    inbox: &Envelope,
    from: Option<usize>,
    consumed: Option<InboxState>,
    generation: u16,
) -> bool {
    let st = load(inbox);
    if st.phase() != phase::CLOSED && Some(st) != consumed {
        return st.is_open();
    }
    let next = open_word(from, generation);
    // Relaxed success is enough: opening publishes nothing; a sender's claim reads only the word.
    inbox
        .state
        .compare_exchange(st.0, next.0, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
}

/// The word of an inbox open to `from` (or anyone) in the binding of generation `generation`.
fn open_word(from: Option<usize>, generation: u16) -> InboxState {
    let w = match from {
        None => InboxState::make(phase::OPEN_ANY, 0, 0),
        Some(i) => InboxState::make(phase::OPEN_FROM, i as u16, 0),
    };
    InboxState(w.0 | EnvState(0).with_gen(generation).0)
}

/// What `close` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    /// Closed (or already was): no message in it.
    Empty,
    /// A sender is writing; its message follows at once.
    Filling(InboxState),
    /// A message is in it: deliver it.
    Full(InboxState),
}

/// Receiver: close the inbox (`consumed` as for `open`: a taken message counts as empty).
pub(crate) fn close(inbox: &Envelope, consumed: Option<InboxState>) -> Closed {
    // Two rounds bound the loop: the only concurrent change an open word can see is one claim.
    for _ in 0..2 {
        let st = load(inbox);
        if st.is_open() {
            let closed = InboxState::make(phase::CLOSED, 0, st.seq());
            // Acquire on failure: the claim that beat us is then visible (and its publish after
            // it, on the next load).
            if inbox
                .state
                .compare_exchange(st.0, closed.0, Ordering::Relaxed, Ordering::Acquire)
                .is_ok()
            {
                return Closed::Empty;
            }
            continue;
        }
        return match st {
            _ if Some(st) == consumed => Closed::Empty,
            _ if st.full().is_some() => Closed::Full(st),
            _ if st.is_filling() => Closed::Filling(st),
            // Closed, or a corrupt word: nothing to deliver.
            _ => Closed::Empty,
        };
    }
    let st = load(inbox);
    match st.full() {
        _ if Some(st) == consumed => Closed::Empty,
        Some(_) => Closed::Full(st),
        None if st.is_filling() => Closed::Filling(st),
        None => Closed::Empty,
    }
}

/// Receiver: copy out a `Full` message. The word stays as it is (the receiver remembers it as
/// consumed) until the receiver opens the inbox again; no sender can claim it meanwhile, and the
/// receiver's reads are done before its own later CAS that reopens it.
pub(crate) fn take(inbox: &Envelope, full: InboxState) -> [u64; 8] {
    inbox.read(full.env())
}

/// Receiver: give up on a `Filling` claim (its sender died, or stalled past our deadline).
pub(crate) fn abandon(inbox: &Envelope, filling: InboxState) -> bool {
    let closed = InboxState::make(phase::CLOSED, 0, filling.seq());
    inbox
        .state
        .compare_exchange(filling.0, closed.0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}

/// Sender (slot `me`): claim the inbox if it is open to us, in the binding of generation
/// `generation` we address. The first CAS guesses the common word (open to anyone), so a claim
/// usually costs one read-modify-write, which also brings the line over in exclusive state; a
/// wrong guess returns the real word, and a second CAS on the now local line tries that.
pub(crate) fn claim(inbox: &Envelope, me: usize, generation: u16) -> Option<InboxState> {
    let filling = InboxState::make(phase::FILLING, me as u16, 0);
    let mut expected = open_word(None, generation);
    for _ in 0..2 {
        // Acquire: the receiver's reads of the message it took before this opening are done.
        match inbox.state.compare_exchange(
            expected.0,
            filling.0,
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Some(filling),
            Err(actual) => {
                let actual = InboxState(actual);
                if actual == expected || !actual.accepts(me) || actual.generation() != generation {
                    return None;
                }
                expected = actual;
            }
        }
    }
    None
}

/// Sender: write `words` into a claimed inbox and publish it. `seq` is what the receiver needs
/// back (the client envelope's sequence for a `sendrec`), `generation` the sender's. Returns
/// `false` if the receiver abandoned the claim: the message was not handed over.
pub(crate) fn publish(
    inbox: &Envelope,
    filling: InboxState,
    kind: Kind,
    generation: u16,
    seq: u32,
    words: &[u64; 8],
) -> bool {
    let packed = pack(words);
    inbox.write(&packed);
    let phase = match kind {
        Kind::Send => phase::FULL_SEND,
        Kind::Sendrec => phase::FULL_SENDREC,
    };
    let full = InboxState(
        InboxState::make(phase, filling.peer() as u16, seq).0
            | EnvState(0).with_gen(generation).with_tail(packed.1 != 0).0,
    );
    // Release (in AcqRel): the body, the tail, and (for a `sendrec`) the client's `AwaitReply`
    // stored before, happen-before the receiver's Acquire load of `Full`.
    inbox
        .state
        .compare_exchange(filling.0, full.0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}

/// Cleanup: reset an inbox claimed by slot `dead` (which will never publish).
pub(crate) fn release_claim_of(inbox: &Envelope, dead: usize) {
    let st = load(inbox);
    if st.is_filling() && st.peer() == dead {
        abandon(inbox, st);
    }
}

/// Cleanup: close the inbox of a slot being freed, whatever it holds.
pub(crate) fn reset(inbox: &Envelope) {
    let st = load(inbox);
    inbox.state.store(
        InboxState::make(phase::CLOSED, 0, st.seq()).0,
        Ordering::Release,
    );
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Loom models of the hand-off: `RUSTFLAGS="--cfg loom" cargo test -p m3ipc --release --lib
    //! loom_`.
    use super::*;
    use loom::sync::Arc;

    fn message() -> [u64; 8] {
        // No source (the receiver stamps it) and a non-zero tail.
        [7 << 32, 1, 2, 3, 4, 5, 6, 9 << 32]
    }

    /// A sender claims and publishes while the receiver closes: either the close came first and
    /// the claim fails, or the receiver is told of the message (filling or full) and, once the
    /// sender is done, takes it exactly as written.
    #[test]
    fn loom_hand_off_races_close() {
        loom::model(|| {
            let inbox = Arc::new(Envelope::new());
            assert!(open(&inbox, None, None, 0));
            let i2 = inbox.clone();
            let sender = loom::thread::spawn(move || match claim(&i2, 3, 0) {
                Some(f) => publish(&i2, f, Kind::Send, 1, 0, &message()),
                None => false,
            });
            let closed = close(&inbox, None);
            // Read the message as a receiver does, before the sender is known to be done
            // (a join would order everything and hide a missing Release).
            let taken = match closed {
                Closed::Empty => None,
                Closed::Filling(_) | Closed::Full(_) => {
                    let st = loop {
                        let st = load(&inbox);
                        if st.full().is_some() {
                            break st;
                        }
                        loom::thread::yield_now();
                    };
                    assert_eq!(st.full(), Some(Kind::Send));
                    let words = take(&inbox, st);
                    assert_eq!(
                        close(&inbox, Some(st)),
                        Closed::Empty,
                        "taken counts as empty"
                    );
                    Some(words)
                }
            };
            let published = sender.join().unwrap();
            assert_eq!(
                published,
                taken.is_some(),
                "published {published}, closed {closed:?}"
            );
            if let Some(words) = taken {
                assert_eq!(words, message());
            }
        });
    }

    /// A receiver abandons a claim while its sender publishes: exactly one of them wins, and a
    /// won publish leaves the message intact for the receiver.
    #[test]
    fn loom_abandon_races_publish() {
        loom::model(|| {
            let inbox = Arc::new(Envelope::new());
            assert!(open(&inbox, None, None, 0));
            let filling = claim(&inbox, 2, 0).unwrap();
            let i2 = inbox.clone();
            let sender = loom::thread::spawn(move || {
                publish(&i2, filling, Kind::Sendrec, 4, 11, &message())
            });
            let abandoned = abandon(&inbox, filling);
            let published = sender.join().unwrap();
            assert!(
                abandoned != published,
                "abandoned {abandoned}, published {published}"
            );
            let st = load(&inbox);
            if published {
                assert_eq!(
                    (st.full(), st.seq(), st.generation()),
                    (Some(Kind::Sendrec), 11, 4)
                );
                assert_eq!(take(&inbox, st), message());
            } else {
                assert!(!st.is_open() && st.full().is_none() && !st.is_filling());
            }
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn hand_off_round_trip() {
        let inbox = Envelope::new();
        assert!(claim(&inbox, 3, 0).is_none(), "a closed inbox refuses");
        assert!(open(&inbox, None, None, 0));
        let f = claim(&inbox, 3, 0).unwrap();
        assert!(claim(&inbox, 4, 0).is_none(), "one claim at a time");
        let mut m = [0u64; 8];
        m[0] = 7 << 32;
        m[7] = 0xfeed << 32;
        assert!(publish(&inbox, f, Kind::Sendrec, 9, 77, &m));
        let Closed::Full(st) = close(&inbox, None) else {
            panic!("close must report the message");
        };
        assert_eq!(
            (st.full(), st.peer(), st.generation(), st.seq()),
            (Some(Kind::Sendrec), 3, 9, 77)
        );
        assert_eq!(take(&inbox, st), m);
        assert_eq!(close(&inbox, Some(st)), Closed::Empty);
        assert!(
            claim(&inbox, 3, 0).is_none(),
            "a taken message is not an opening"
        );
        assert!(open(&inbox, None, Some(st), 0), "the taken word reopens");
        assert!(claim(&inbox, 3, 0).is_some());
    }

    #[test]
    fn open_from_accepts_only_that_source_and_generation() {
        let inbox = Envelope::new();
        assert!(open(&inbox, Some(5), None, 0));
        assert!(claim(&inbox, 4, 0).is_none());
        assert_eq!(close(&inbox, None), Closed::Empty);
        assert!(open(&inbox, Some(5), None, 0));
        assert!(
            claim(&inbox, 5, 1).is_none(),
            "another binding's sender is refused"
        );
        assert!(claim(&inbox, 5, 0).is_some());
    }

    #[test]
    fn abandoned_claim_cannot_publish() {
        let inbox = Envelope::new();
        assert!(open(&inbox, None, None, 0));
        let f = claim(&inbox, 2, 0).unwrap();
        assert!(matches!(close(&inbox, None), Closed::Filling(_)));
        assert!(abandon(&inbox, f));
        assert!(!publish(&inbox, f, Kind::Send, 0, 0, &[0; 8]));
        assert_eq!(close(&inbox, None), Closed::Empty);
    }
}
