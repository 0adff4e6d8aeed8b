//! The mailbox: how a message travels from a sender's slot to a receiver's.
//!
//! A message is written once, by its sender, into an `Envelope` of the sender's own slot, and
//! read once, by its receiver, straight from there. The receiver's mailbox is a bitmap with one bit
//! per sender slot (a *hint* that the sender has something for it) plus a ticket counter that
//! orders senders FIFO. A slot has one synchronous envelope and a few asynchronous ones, so a
//! mailbox can never overflow: every sender slot owns the storage of its own outstanding messages.
//!
//! This is the general path. A receiver that already waits, spinning, also takes messages handed
//! straight into its inbox (`inbox.rs`), which costs fewer cache-line transfers; it opens the
//! inbox only when its mailbox is empty, so queued senders keep their FIFO order.
//!
//! Nothing here takes a lock. Every transition of an envelope is one compare-and-swap on its state
//! word, which carries a sequence number so that a late CAS on an old message always fails. A dead
//! sender leaves at worst a stale hint bit, which a receiver clears when it finds nothing behind it.
//!
//! Envelope life cycle (`seq` changes only when the sender posts):
//!
//! ```text
//! Idle --post--> Pending{Send,Sendrec,Async}(dst)
//!   PendingSend    --receiver takes--> Delivered
//!   PendingSendrec --receiver takes--> AwaitReply(server) --reply--> Replying --> Replied
//!   PendingAsync   --receiver takes--> Idle
//!   Pending*/AwaitReply --sender withdraws (timeout)--> Idle
//!   Pending*/AwaitReply --peer unbinds or dies--> Failed(errno)
//!   AwaitReply --vcopy holds (Replying, holder in the generation bits)--> AwaitReply
//!   PendingSend --a remote slot's proxy takes it (`hold`)--> Held(remote slot)
//!   Held --the far side delivered--> Delivered;  --it failed, or the link went--> Failed(errno)
//!   Held --the sender gives up, a grace past its deadline--> Idle
//! ```
//!
//! `Held` exists for `send`s to a remote slot (`remote.rs`): the proxy has taken the message to
//! forward it, and the sender stays blocked until the far side has delivered it.
//!
//! `Delivered`, `Replied` and `Failed` are final: only the owner moves on from them, by posting
//! its next message, so it never writes the state word just to say "idle again" (that write
//! would cost a cache-line transfer on every call).

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Asynchronous envelopes per slot: the bound on `senda` messages in flight from one sender.
pub const ASYNC_ENVELOPES: usize = 8;
/// Envelopes per slot; index 0 is the synchronous one.
pub(crate) const ENVELOPES: usize = 1 + ASYNC_ENVELOPES;
/// Index of the synchronous envelope.
pub(crate) const SYNC: usize = 0;

/// One message slot owned by a sender, laid out so that the common path touches one cache line.
///
/// Line A holds the state word and the message less two parts: its source (the receiver stamps
/// it; the sender cannot choose it) and its last four payload bytes. Line B holds those four
/// bytes and the FIFO ticket; a receiver reads it only when the state says the tail is non-zero
/// or when two senders compete, so in a ping-pong line B never leaves its writer's cache.
#[repr(C, align(64))]
pub(crate) struct Envelope {
    /// An `EnvState`; the only word whose CAS moves the envelope along.
    pub(crate) state: AtomicU64,
    /// `m_type` and the first 52 payload bytes, as seven words (see `pack`).
    pub(crate) body: [AtomicU64; 7],
    /// Position among the receiver's senders (FIFO), taken from the receiver's ticket counter.
    pub(crate) ticket: AtomicU64,
    /// The last four payload bytes (valid when the state's tail bit is set).
    pub(crate) tail: AtomicU32,
}

/// A message as it crosses an envelope: the body words and the tail.
pub(crate) type Packed = ([u64; 7], u32);

/// Split a message (eight words: `m_source | m_type << 32`, then the payload) into body and
/// tail. Viewed as sixteen 32-bit halves `u[0..16]`, the body is `u[1..15]` and the tail `u[15]`;
/// `u[0]`, the source, is dropped.
pub(crate) fn pack(m: &[u64; 8]) -> Packed {
    let mut body = [0u64; 7];
    for (i, b) in body.iter_mut().enumerate() {
        *b = (m[i] >> 32) | (m[i + 1] << 32);
    }
    (body, (m[7] >> 32) as u32)
}

/// The inverse of `pack`, with a zero source.
fn unpack(body: &[u64; 7], tail: u32) -> [u64; 8] {
    let mut m = [0u64; 8];
    m[0] = body[0] << 32;
    for j in 1..7 {
        m[j] = (body[j - 1] >> 32) | (body[j] << 32);
    }
    m[7] = (body[6] >> 32) | (tail as u64) << 32;
    m
}

/// The generation encoded in an endpoint, as the state word keeps it (16 bits).
fn gen_of(ep: i32) -> u16 {
    crate::endpoint::generation(ep) as u16
}

impl Envelope {
    /// An idle envelope (for tests; in the region, all-zero memory is an idle envelope).
    #[cfg(any(test, loom))]
    pub(crate) fn new() -> Self {
        Envelope {
            state: AtomicU64::new(0),
            body: Default::default(),
            ticket: AtomicU64::new(0),
            tail: AtomicU32::new(0),
        }
    }

    /// Current state. Acquire: a `Pending` state makes the message written before it visible; a
    /// `Replied` state makes the reply visible.
    pub(crate) fn load(&self) -> EnvState {
        EnvState(self.state.load(Ordering::Acquire))
    }

    /// Store a packed message (the owner of the line's current state only).
    pub(crate) fn write(&self, (body, tail): &Packed) {
        for (slot, w) in self.body.iter().zip(body) {
            slot.store(*w, Ordering::Relaxed);
        }
        if *tail != 0 {
            self.tail.store(*tail, Ordering::Relaxed);
        }
    }

    /// Copy out the message that state `st` describes (its tail only if `st` says so).
    pub(crate) fn read(&self, st: EnvState) -> [u64; 8] {
        let mut body = [0u64; 7];
        for (o, w) in body.iter_mut().zip(&self.body) {
            *o = w.load(Ordering::Relaxed);
        }
        let tail = if st.has_tail() {
            self.tail.load(Ordering::Relaxed)
        } else {
            0
        };
        unpack(&body, tail)
    }

    /// Sender: publish `words` for `dst_idx`/`dst_ep` under a new sequence number.
    ///
    /// Only the owner of the envelope calls this, and only on an envelope it has seen `Idle` (or
    /// finished), so no receiver can be reading the words it overwrites: a receiver that still
    /// copies an old message will fail its CAS on the old sequence number and drop the copy.
    pub(crate) fn post(
        &self,
        phase: Phase,
        dst_idx: u16,
        dst_ep: i32,
        ticket: u64,
        words: &[u64; 8],
    ) -> EnvState {
        let seq = self.load().seq().wrapping_add(1);
        let packed = pack(words);
        self.write(&packed);
        self.ticket.store(ticket, Ordering::Relaxed);
        let state = EnvState::new(phase, dst_idx, seq)
            .with_gen(gen_of(dst_ep))
            .with_tail(packed.1 != 0);
        // Release: the body, tail and ticket above happen-before any Acquire load that sees
        // this state.
        self.state.store(state.0, Ordering::Release);
        state
    }

    /// Client: make the envelope wait for `server`'s reply (`AwaitReply`) under a new sequence
    /// number, with no message in it: the request went straight into the server's inbox. The
    /// state is exactly `EnvState::new(AwaitReply, server, seq)`, the value the server's
    /// `reply` claims with one CAS.
    pub(crate) fn await_reply(&self, server: u16) -> EnvState {
        let seq = self.load().seq().wrapping_add(1);
        let state = EnvState::new(Phase::AwaitReply, server, seq);
        // Release: pairs with the server's Acquire load of the inbox it hands the request to
        // after this (a CAS there), so the server that replies sees this state.
        self.state.store(state.0, Ordering::Release);
        state
    }

    /// Receiver: take the message of `expected` (a pending state read by `scan`). Returns the
    /// words (with a zero source) if the CAS won, `None` if the sender withdrew or someone else
    /// took it.
    ///
    /// The words are copied before the CAS, seqlock style. The copy is valid exactly when the CAS
    /// succeeds: the sender only rewrites the words after moving the state away from `expected`
    /// (a withdraw, which would make this CAS fail) or after seeing the state this CAS writes
    /// (whose Release orders these loads before its rewrite).
    pub(crate) fn take(&self, expected: EnvState, receiver_idx: u16) -> Option<[u64; 8]> {
        let next = match expected.phase() {
            Phase::PendingSend => EnvState::new(Phase::Delivered, receiver_idx, expected.seq()),
            Phase::PendingSendrec => EnvState::new(Phase::AwaitReply, receiver_idx, expected.seq()),
            Phase::PendingAsync => EnvState::new(Phase::Idle, 0, expected.seq()),
            _ => return None,
        };
        self.take_into(expected, next)
    }

    /// Proxy of a remote slot: take the `send` of `expected` (a `PendingSend` state read by
    /// `scan`) as `take` does, but leave its sender blocked in `Held(receiver_idx)` (with the
    /// generation the sender addressed) until the far side's outcome moves it to `Delivered` or
    /// `Failed`. `None` as for `take`, or if `expected` is not a `send`.
    pub(crate) fn hold(&self, expected: EnvState, receiver_idx: u16) -> Option<[u64; 8]> {
        if expected.phase() != Phase::PendingSend {
            return None;
        }
        let next = EnvState::new(Phase::Held, receiver_idx, expected.seq())
            .with_gen(expected.generation());
        self.take_into(expected, next)
    }

    /// Copy out the message of `expected`, then move the state to `next` (see `take`).
    fn take_into(&self, expected: EnvState, next: EnvState) -> Option<[u64; 8]> {
        let out = self.read(expected);
        // AcqRel: Release keeps the loads above before the CAS (see above) and publishes the
        // new state to the sender; Acquire is not needed for correctness but keeps the rule
        // "every successful state CAS synchronizes" simple to check.
        self.state
            .compare_exchange(expected.0, next.0, Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| out)
    }

    /// Move from `from` to `to` if the state is still `from`. Used by the sender to withdraw,
    /// by a server to claim a reply, and by cleanup to fail waiters.
    pub(crate) fn transition(&self, from: EnvState, to: EnvState) -> bool {
        // AcqRel: a winner both sees what the previous holder of the state wrote and publishes
        // what it wrote before.
        self.state
            .compare_exchange(from.0, to.0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Server: write the reply into a claimed (`Replying`) envelope and publish it. Returns
    /// `false` if the state left `Replying` meanwhile (the client gave up on a server that took
    /// too long, or a cleanup judged the server dead): the reply is then not delivered.
    pub(crate) fn finish_reply(&self, replying: EnvState, words: &[u64; 8]) -> bool {
        let packed = pack(words);
        self.write(&packed);
        let done =
            EnvState::new(Phase::Replied, replying.peer(), replying.seq()).with_tail(packed.1 != 0);
        // Release (in AcqRel): the reply happens-before the client's Acquire load of `Replied`.
        // A CAS rather than a store, because the client may abandon a `Replying` envelope whose
        // server stalls past the client's deadline (see `call/send.rs`).
        self.transition(replying, done)
    }

    /// Owner: copy out the reply of a `Replied` state `st` it has loaded (with Acquire).
    pub(crate) fn read_words(&self, st: EnvState) -> [u64; 8] {
        self.read(st)
    }
}

/// Phase of an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Free for the owner's next message.
    Idle = 0,
    /// A `send` waits for its receiver.
    PendingSend = 1,
    /// A `sendrec` waits for its server to receive the request.
    PendingSendrec = 2,
    /// A `senda` message waits; its sender does not.
    PendingAsync = 3,
    /// The `send` was received.
    Delivered = 4,
    /// The `sendrec` request was received; the client waits for the reply of `peer`.
    AwaitReply = 5,
    /// The server `peer` is writing the reply.
    Replying = 6,
    /// The reply is in the words.
    Replied = 7,
    /// The call failed; `peer` holds the negated error number.
    Failed = 8,
    /// The `send` was taken by the proxy of the remote slot `peer`, which forwards it: the
    /// sender waits for the far side's delivery (`Delivered`) or a failure (`Failed`).
    Held = 9,
    /// Anything else: a corrupt state word.
    Corrupt = 255,
}

/// An envelope state word. Bits 0..8: phase; 8..18: peer slot index (or the negated errno of
/// `Failed`); 18: the message has a non-zero tail; 19..35: the destination's generation (while
/// pending); 35..64: sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EnvState(pub(crate) u64);

const PEER_BITS: u32 = 10;
const PEER_MASK: u64 = (1 << PEER_BITS) - 1;
const TAIL_BIT: u64 = 1 << 18;
const GEN_SHIFT: u32 = 19;
const SEQ_SHIFT: u32 = 35;
const SEQ_MASK: u32 = (1 << (64 - SEQ_SHIFT)) - 1;

impl EnvState {
    /// A state word (no tail, generation 0). `peer` is taken modulo 1024 and `seq` modulo 2^29.
    pub(crate) const fn new(phase: Phase, peer: u16, seq: u32) -> Self {
        EnvState(
            ((seq & SEQ_MASK) as u64) << SEQ_SHIFT | (peer as u64 & PEER_MASK) << 8 | phase as u64,
        )
    }

    /// The same state naming the destination's generation `generation`.
    pub(crate) const fn with_gen(self, generation: u16) -> Self {
        EnvState(self.0 & !(0xffff << GEN_SHIFT) | (generation as u64) << GEN_SHIFT)
    }

    /// The same state with the tail bit set to `tail`.
    pub(crate) const fn with_tail(self, tail: bool) -> Self {
        if tail {
            EnvState(self.0 | TAIL_BIT)
        } else {
            EnvState(self.0 & !TAIL_BIT)
        }
    }

    /// Whether the message's last four payload bytes are in line B.
    pub(crate) const fn has_tail(self) -> bool {
        self.0 & TAIL_BIT != 0
    }

    /// The destination's generation (of a pending state).
    pub(crate) const fn generation(self) -> u16 {
        (self.0 >> GEN_SHIFT) as u16
    }

    /// A failed state carrying `errno` (a negative DVK code, at most 1023 in magnitude).
    pub(crate) const fn failed(errno: i32, seq: u32) -> Self {
        EnvState::new(Phase::Failed, (-errno) as u16, seq)
    }

    /// The phase (a corrupt word gives [`Phase::Corrupt`]).
    pub(crate) const fn phase(self) -> Phase {
        match self.0 as u8 {
            0 => Phase::Idle,
            1 => Phase::PendingSend,
            2 => Phase::PendingSendrec,
            3 => Phase::PendingAsync,
            4 => Phase::Delivered,
            5 => Phase::AwaitReply,
            6 => Phase::Replying,
            7 => Phase::Replied,
            8 => Phase::Failed,
            9 => Phase::Held,
            _ => Phase::Corrupt,
        }
    }

    /// The peer slot index (destination, server or receiver), or the negated errno of `Failed`.
    pub(crate) const fn peer(self) -> u16 {
        ((self.0 >> 8) & PEER_MASK) as u16
    }

    /// The sequence number of the message (29 bits; `post` wraps it).
    pub(crate) const fn seq(self) -> u32 {
        (self.0 >> SEQ_SHIFT) as u32
    }

    /// The error number of a `Failed` state.
    pub(crate) const fn errno(self) -> i32 {
        -(self.peer() as i32)
    }

    /// The state with which `vcopy` holds this `AwaitReply` state while it copies (see
    /// `call/vcopy.rs`): `Replying`, so that the client can neither withdraw nor be answered,
    /// with `holder + 1` in the generation bits, which a reply's claim leaves zero.
    pub(crate) const fn held_by(self, holder: u16) -> Self {
        EnvState::new(Phase::Replying, self.peer(), self.seq()).with_gen(holder.wrapping_add(1))
    }

    /// The slot of the `vcopy` holding this state, if it is such a hold.
    pub(crate) const fn holder(self) -> Option<u16> {
        match (self.phase(), self.generation()) {
            (Phase::Replying, g) if g != 0 => Some(g - 1),
            _ => None,
        }
    }

    /// The `AwaitReply` state a hold stands for (for whoever lifts a dead holder's hold).
    pub(crate) const fn unheld(self) -> Self {
        EnvState::new(Phase::AwaitReply, self.peer(), self.seq())
    }

    /// Whether the envelope holds a message not yet received.
    pub(crate) const fn is_pending(self) -> bool {
        matches!(
            self.phase(),
            Phase::PendingSend | Phase::PendingSendrec | Phase::PendingAsync
        )
    }
}

/// The receiver's side of the mailbox: one hint bit per sender slot.
pub(crate) struct PendingSet<'a>(pub(crate) &'a [AtomicU64]);

impl PendingSet<'_> {
    /// Sender: say that slot `sender` has a message for this receiver.
    pub(crate) fn announce(&self, sender: usize) {
        if let Some(word) = self.0.get(sender / 64) {
            // Release: the envelope's Pending state, stored before, happens-before the receiver's
            // Acquire read of this bit, so a receiver that sees the bit sees the message.
            word.fetch_or(1 << (sender % 64), Ordering::Release);
        }
    }

    /// Remove every hint (when the receiving slot is freed).
    pub(crate) fn clear_all(&self) {
        for w in self.0 {
            w.store(0, Ordering::Relaxed);
        }
    }
}

/// Where the receiver finds the envelopes of a sender slot.
pub(crate) trait EnvelopeTable {
    /// The envelopes of slot `idx`, or `None` if there is no such slot.
    fn envelopes(&self, idx: usize) -> Option<&[Envelope]>;
}

/// A message found by `scan`, not yet taken.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    /// Sender slot index.
    pub(crate) sender: usize,
    /// Envelope index in the sender slot.
    pub(crate) envelope: usize,
    /// The pending state seen.
    pub(crate) state: EnvState,
    /// The FIFO ticket, if it had to be read (only when candidates compete).
    pub(crate) ticket: Option<u64>,
}

/// Receiver: find the oldest message for `me` (slot `me_idx`, endpoint `me_ep`) whose sender
/// passes `accept`. Clears the hint bits of senders that have nothing for `me`.
///
/// Bounded: one pass over the bitmap words, and over at most `ENVELOPES` envelopes per set bit.
pub(crate) fn scan<T: EnvelopeTable>(
    pending: &PendingSet<'_>,
    table: &T,
    me_idx: u16,
    me_ep: i32,
    mut accept: impl FnMut(usize, EnvState) -> bool,
) -> Option<Candidate> {
    let mut best: Option<Candidate> = None;
    let me_gen = gen_of(me_ep);
    for (w, word) in pending.0.iter().enumerate() {
        // Acquire: pairs with `announce` (see there).
        let mut bits = word.load(Ordering::Acquire);
        while bits != 0 {
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let sender = w * 64 + bit;
            let Some(envs) = table.envelopes(sender) else {
                // No such slot: a corrupt bit. No sender can own it, so clearing loses nothing.
                word.fetch_and(!(1 << bit), Ordering::Relaxed);
                continue;
            };
            let mut any = examine(table, envs, sender, me_idx, me_gen, &mut accept, &mut best);
            if !any {
                // Clear the hint, then look again: a sender that posted after our look set the
                // bit before or after this clear. If before, we see its envelope now (the
                // AcqRel RMW reads the latest value, whose release sequence carries its post);
                // if after, the bit stays set for the next scan.
                word.fetch_and(!(1 << bit), Ordering::AcqRel);
                any = examine(table, envs, sender, me_idx, me_gen, &mut accept, &mut best);
                if any {
                    word.fetch_or(1 << bit, Ordering::Relaxed);
                }
            }
        }
    }
    best
}

/// Look at one sender's envelopes; returns whether any is pending for `me` (accepted or not).
///
/// Tickets live on the envelope's second cache line: they are read only when two candidates
/// compete, so a lone sender's message is judged from the state word alone.
fn examine<T: EnvelopeTable>(
    table: &T,
    envs: &[Envelope],
    sender: usize,
    me_idx: u16,
    me_gen: u16,
    accept: &mut impl FnMut(usize, EnvState) -> bool,
    best: &mut Option<Candidate>,
) -> bool {
    let mut any = false;
    for (e, env) in envs.iter().enumerate().take(ENVELOPES) {
        let state = env.load();
        if !state.is_pending() || state.peer() != me_idx {
            continue;
        }
        if state.generation() != me_gen {
            // For a previous binding of this slot: its sender will notice and withdraw.
            continue;
        }
        any = true;
        if !accept(sender, state) {
            continue;
        }
        let new = Candidate {
            sender,
            envelope: e,
            state,
            ticket: None,
        };
        *best = Some(match best.take() {
            None => new,
            Some(mut old) => {
                let old_ticket = *old.ticket.get_or_insert_with(|| {
                    table
                        .envelopes(old.sender)
                        .and_then(|envs| envs.get(old.envelope))
                        .map_or(u64::MAX, |env| env.ticket.load(Ordering::Relaxed))
                });
                let ticket = env.ticket.load(Ordering::Relaxed);
                if ticket < old_ticket {
                    Candidate {
                        ticket: Some(ticket),
                        ..new
                    }
                } else {
                    old
                }
            }
        });
    }
    any
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Table(Vec<Vec<Envelope>>);
    impl EnvelopeTable for Table {
        fn envelopes(&self, idx: usize) -> Option<&[Envelope]> {
            self.0.get(idx).map(|v| v.as_slice())
        }
    }

    fn table(n: usize) -> Table {
        Table(
            (0..n)
                .map(|_| (0..ENVELOPES).map(|_| Envelope::new()).collect())
                .collect(),
        )
    }

    #[test]
    fn state_word_round_trips() {
        let s = EnvState::new(Phase::AwaitReply, 1023, 0x1ead_beef)
            .with_gen(60_000)
            .with_tail(true);
        assert_eq!(s.phase(), Phase::AwaitReply);
        assert_eq!(s.peer(), 1023);
        assert_eq!(s.seq(), 0x1ead_beef);
        assert_eq!(s.generation(), 60_000);
        assert!(s.has_tail());
        assert!(!s.with_tail(false).has_tail());
        // Sequence numbers wrap within their 29 bits, never into other fields.
        let w = EnvState::new(Phase::PendingSend, 7, u32::MAX);
        assert_eq!(
            (w.phase(), w.peer(), w.generation()),
            (Phase::PendingSend, 7, 0)
        );
        let f = EnvState::failed(-324, 9);
        assert_eq!(f.phase(), Phase::Failed);
        assert_eq!(f.errno(), -324);
        assert_eq!(EnvState(0xff).phase(), Phase::Corrupt);
    }

    #[test]
    fn fifo_by_ticket_and_filter() {
        let t = table(4);
        let bits = [AtomicU64::new(0)];
        let pending = PendingSet(&bits);
        // Senders 3, 1, 2 post in that order to receiver 0 (endpoint 0).
        for (ticket, sender) in [3usize, 1, 2].into_iter().enumerate() {
            t.0[sender][SYNC].post(Phase::PendingSend, 0, 0, ticket as u64, &[sender as u64; 8]);
            pending.announce(sender);
        }
        let c = scan(&pending, &t, 0, 0, |_, _| true).unwrap();
        assert_eq!(c.sender, 3);
        let c2 = scan(&pending, &t, 0, 0, |s, _| s == 2).unwrap();
        assert_eq!(c2.sender, 2);
        let words = t.0[2][SYNC].take(c2.state, 0).unwrap();
        // The source half of word 0 is not carried: the receiver stamps it.
        assert_eq!(words, [0, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!(t.0[2][SYNC].load().phase(), Phase::Delivered);
        // A second take of the same state fails.
        assert!(t.0[2][SYNC].take(c2.state, 0).is_none());
    }

    #[test]
    fn held_send_waits_for_its_outcome() {
        let t = table(2);
        let env = &t.0[1][SYNC];
        let s = env.post(
            Phase::PendingSend,
            0,
            crate::endpoint::make(5, 0),
            0,
            &[3; 8],
        );
        // Only a send can be held; a sendrec cannot.
        let r = t.0[0][SYNC].post(Phase::PendingSendrec, 1, 0, 0, &[1; 8]);
        assert!(t.0[0][SYNC].hold(r, 1).is_none());
        let words = env.hold(s, 0).unwrap();
        assert_eq!(words[1], 3);
        let held = env.load();
        assert_eq!(
            (held.phase(), held.peer(), held.seq(), held.generation()),
            (Phase::Held, 0, s.seq(), 5)
        );
        assert!(!held.is_pending());
        // Taken once only.
        assert!(env.hold(s, 0).is_none());
        assert!(env.take(s, 0).is_none());
        assert!(env.transition(held, EnvState::new(Phase::Delivered, 0, held.seq())));
        assert_eq!(env.load().phase(), Phase::Delivered);
    }

    #[test]
    fn withdrawn_message_cannot_be_taken_and_hint_clears() {
        let t = table(2);
        let bits = [AtomicU64::new(0)];
        let pending = PendingSet(&bits);
        let s = t.0[1][SYNC].post(Phase::PendingSendrec, 0, 0, 0, &[7; 8]);
        pending.announce(1);
        assert!(t.0[1][SYNC].transition(s, EnvState::new(Phase::Idle, 0, s.seq())));
        assert!(t.0[1][SYNC].take(s, 0).is_none());
        assert!(scan(&pending, &t, 0, 0, |_, _| true).is_none());
        assert_eq!(bits[0].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn message_for_a_previous_binding_is_ignored() {
        let t = table(2);
        let bits = [AtomicU64::new(0)];
        let pending = PendingSet(&bits);
        t.0[1][SYNC].post(Phase::PendingSend, 0, 5, 0, &[1; 8]);
        pending.announce(1);
        assert!(scan(&pending, &t, 0, 5 + 35570, |_, _| true).is_none());
    }

    proptest::proptest! {
        #[test]
        fn pack_round_trips_all_but_the_source(m in proptest::array::uniform8(proptest::num::u64::ANY)) {
            let (body, tail) = pack(&m);
            let mut want = m;
            want[0] &= !0xffff_ffff;
            proptest::prop_assert_eq!(unpack(&body, tail), want);
        }
    }

    #[test]
    fn tail_travels_only_when_set() {
        let t = table(2);
        let env = &t.0[1][SYNC];
        let mut m = [0u64; 8];
        m[7] = 0xabcd_0000_0000_0000;
        let s = env.post(Phase::PendingSend, 0, 0, 0, &m);
        assert!(s.has_tail());
        assert_eq!(env.take(s, 0), Some(m));
        let s = env.post(Phase::PendingSend, 0, 0, 0, &[0; 8]);
        assert!(!s.has_tail());
        assert_eq!(env.take(s, 0), Some([0; 8]));
    }

    #[test]
    fn corrupt_bits_are_harmless() {
        let t = table(2);
        let bits = [AtomicU64::new(u64::MAX)];
        assert!(scan(&PendingSet(&bits), &t, 0, 0, |_, _| true).is_none());
        assert_eq!(bits[0].load(Ordering::Relaxed), 0);
    }
}
