//! Loom models of the mailbox protocol (docs/ARCHITECTURE.md section 9, acceptance point 4).
//!
//! Run them with (from the workspace root; nothing else of the crate is compiled under loom):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p m3ipc --release --lib mailbox::loom
//! ```
//!
//! (about 2 s of tests, after a build of about 40 s from a clean target directory). Run only under
//! loom: `cargo test` without `--cfg loom` does not compile this module.
//!
//! Each model drives the real `Envelope`, `PendingSet` and `scan` of this module from loom
//! threads; the few steps that live in `call/` (withdraw, claim and finish a reply, abandon a
//! stalled reply) are repeated here as `call/send.rs` and `call/reply.rs` do them. Sender slots
//! get only the envelopes a model uses: the protocol of one envelope does not depend on its
//! neighbours, and every extra atomic multiplies the interleavings.
//!
//! Limits: loom explores interleavings and the values a load may return from stores already
//! made, but not load buffering (a load returning a store that comes later in the other
//! thread's program order), so the `Release` half of `take`'s CAS is argued in its comment, not
//! checked here. Its partial-order reduction also misses some orders of a load against a later
//! RMW, which is why (a') yields before its sender's look. Every model stays bounded (no
//! thread spins for another). `LOOM_MAX_PREEMPTIONS` overrides the preemption bounds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use loom::sync::Arc;
use loom::sync::atomic::AtomicBool;
use loom::thread;

/// The receiver's slot index and endpoint in every model.
const RX: u16 = 0;
const RX_EP: i32 = 0;

/// Sender slots 1.. with `envs` envelopes each; slot 0 (the receiver) has none.
struct Table(Vec<Vec<Envelope>>);

impl EnvelopeTable for Table {
    fn envelopes(&self, idx: usize) -> Option<&[Envelope]> {
        self.0.get(idx).map(|v| v.as_slice())
    }
}

/// Everything a model shares: the table, the receiver's hint word and ticket counter.
struct World {
    table: Table,
    hints: [AtomicU64; 1],
    ticket: AtomicU64,
}

impl World {
    fn new(senders: usize, envs: usize) -> Arc<World> {
        let mut slots = vec![Vec::new()];
        for _ in 0..senders {
            slots.push((0..envs).map(|_| Envelope::new()).collect());
        }
        Arc::new(World {
            table: Table(slots),
            hints: [AtomicU64::new(0)],
            ticket: AtomicU64::new(0),
        })
    }

    fn env(&self, sender: usize) -> &Envelope {
        &self.table.0[sender][SYNC]
    }

    fn pending(&self) -> PendingSet<'_> {
        PendingSet(&self.hints)
    }

    /// A sender's post, as `Proc::post` does it: ticket, envelope, hint.
    fn post(&self, sender: usize, phase: Phase, words: &[u64; 8]) -> EnvState {
        let ticket = self.ticket.fetch_add(1, Ordering::Relaxed);
        let st = self.env(sender).post(phase, RX, RX_EP, ticket, words);
        self.pending().announce(sender);
        st
    }

    /// One receive attempt, as `Incoming::check` does it: scan, then take the candidate.
    /// Returns the sender and the words.
    fn receive_once(&self) -> Option<(usize, [u64; 8])> {
        let c = scan(&self.pending(), &self.table, RX, RX_EP, |_, _| true)?;
        let words = self.table.0[c.sender][c.envelope].take(c.state, RX)?;
        Some((c.sender, words))
    }

    /// The ticket of `sender`'s synchronous envelope.
    fn ticket_of(&self, sender: usize) -> u64 {
        self.env(sender).ticket.load(Ordering::Relaxed)
    }
}

/// The distinct words of message `n`: a torn copy mixes two of them. The source half of word 0
/// is zero (the receiver stamps the source; the envelope does not carry it); the last four
/// payload bytes (the envelope's tail) are non-zero, so both cache lines of the envelope carry
/// message bytes.
fn words(n: u64) -> [u64; 8] {
    core::array::from_fn(|i| {
        let v = n * 100 + i as u64;
        if i == 0 { v << 32 } else { v << 32 | v }
    })
}

/// Message `n` without a tail (its last four bytes zero): the tail word is then neither written
/// nor read.
fn short_words(n: u64) -> [u64; 8] {
    let mut w = words(n);
    w[7] &= 0xffff_ffff;
    w
}

/// The sender's withdraw on a timeout, as `Outgoing::withdraw` in `call/send.rs`.
fn withdraw(env: &Envelope, posted: EnvState) -> bool {
    let st = env.load();
    let withdrawable = st.seq() == posted.seq()
        && matches!(
            st.phase(),
            Phase::PendingSend | Phase::PendingSendrec | Phase::AwaitReply
        );
    withdrawable && env.transition(st, EnvState::new(Phase::Idle, 0, st.seq()))
}

/// The server's claim of a client's envelope, as `Proc::try_reply` in `call/reply.rs`.
fn claim(env: &Envelope, server: u16) -> Option<EnvState> {
    let st = env.load();
    if st.phase() != Phase::AwaitReply || st.peer() != server {
        return None;
    }
    let replying = EnvState::new(Phase::Replying, st.peer(), st.seq());
    env.transition(st, replying).then_some(replying)
}

/// The server's whole reply: claim, write, publish.
fn try_reply(env: &Envelope, server: u16, reply: &[u64; 8]) -> bool {
    claim(env, server).is_some_and(|replying| env.finish_reply(replying, reply))
}

/// The client's one look at its envelope after the server won: the reply if it is published.
fn reply_if_published(env: &Envelope, posted: EnvState) -> Option<[u64; 8]> {
    let st = env.load();
    assert_eq!(
        st.seq(),
        posted.seq(),
        "the envelope moved on under its owner"
    );
    match st.phase() {
        Phase::Replied => Some(env.read_words(st)),
        Phase::Replying => None,
        p => panic!("the server won, yet the client sees {p:?}"),
    }
}

fn builder(default_bound: usize) -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(default_bound);
    }
    b
}

/// (a) Two senders post and announce while the receiver scans and takes twice: each message
/// arrives exactly once with its words intact (one with a tail, one without), and when both were
/// visible before a scan, the lower ticket comes first. After the senders finish, a last scan
/// finds whatever the receiver did not take yet (nothing is lost), and both envelopes rest in
/// `Delivered` for their senders. (Loom needs bounded loops: no thread spins for another.)
#[test]
fn loom_two_senders_fifo_exactly_once() {
    builder(3).check(|| {
        let w = World::new(2, 1);
        let msgs = [words(1), short_words(2)];
        let announced = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        let senders: Vec<_> = (1..=2usize)
            .map(|s| {
                let w = w.clone();
                let announced = announced.clone();
                thread::spawn(move || {
                    let posted = w.post(s, Phase::PendingSend, &msgs[s - 1]);
                    announced[s - 1].store(true, Ordering::Release);
                    posted
                })
            })
            .collect();

        let mut got: Vec<usize> = Vec::new();
        let record = |got: &mut Vec<usize>, both_visible: bool| match w.receive_once() {
            Some((sender, ws)) => {
                assert_eq!(ws, msgs[sender - 1], "torn message");
                assert!(!got.contains(&sender), "message of {sender} received twice");
                if both_visible && got.is_empty() {
                    // Both were pending when the scan began: the lower ticket first.
                    let (mine, other) = (w.ticket_of(sender), w.ticket_of(3 - sender));
                    assert!(mine < other, "ticket {mine} taken before {other}");
                }
                got.push(sender);
            }
            None => assert!(!both_visible, "a visible message was not found"),
        };
        for _ in 0..2 {
            let both_visible = announced.iter().all(|a| a.load(Ordering::Acquire));
            record(&mut got, both_visible);
        }
        let posted: Vec<EnvState> = senders.into_iter().map(|s| s.join().unwrap()).collect();
        while got.len() < 2 {
            record(&mut got, true);
        }
        assert!(w.receive_once().is_none(), "a message was received twice");
        for (s, p) in (1..=2).zip(posted) {
            let st = w.env(s).load();
            assert_eq!((st.phase(), st.seq()), (Phase::Delivered, p.seq()));
        }
    });
}

/// (a') The seqlock argument of `take`: the receiver copies the words before its CAS, and the
/// sender, seeing `Delivered`, writes its next message into the same words at once (`post` over
/// a final state, no reset in between). The receiver gets each message whole, in order; the
/// second has no tail, so a stale tail of the first must not leak into it.
#[test]
fn loom_take_then_repost_never_tears() {
    builder(3).check(|| {
        let w = World::new(1, 1);
        let w2 = w.clone();
        let sender = thread::spawn(move || {
            w2.post(1, Phase::PendingSend, &words(1));
            // Let the receiver run (loom's partial-order reduction would otherwise never order
            // its CAS before this load), then one look: if delivered, post the next message.
            thread::yield_now();
            let st = w2.env(1).load();
            let again = st.phase() == Phase::Delivered;
            if again {
                w2.post(1, Phase::PendingSend, &short_words(2));
            }
            again
        });
        let mut got = Vec::new();
        for _ in 0..2 {
            if let Some((_, ws)) = w.receive_once() {
                got.push(ws);
            }
        }
        let again = sender.join().unwrap();
        while let Some((_, ws)) = w.receive_once() {
            got.push(ws);
        }
        let want = if again {
            vec![words(1), short_words(2)]
        } else {
            vec![words(1)]
        };
        assert_eq!(got, want, "torn, lost, duplicated or reordered");
    });
}

/// (b) A sender withdraws (its timeout) while the receiver takes: exactly one wins; the receiver
/// never returns a message whose sender believes it withdrawn, nor words torn with the sender's
/// next post, which follows a successful withdraw at once.
#[test]
fn loom_withdraw_races_take() {
    builder(3).check(|| {
        let w = World::new(1, 1);
        let w2 = w.clone();
        let sender = thread::spawn(move || {
            let posted = w2.post(1, Phase::PendingSend, &words(1));
            let withdrew = withdraw(w2.env(1), posted);
            if withdrew {
                // The envelope is ours again: reuse it for the next message at once.
                w2.post(1, Phase::PendingSend, &words(2));
            } else {
                // The receiver won: the state must say so.
                let st = w2.env(1).load();
                assert_eq!((st.phase(), st.seq()), (Phase::Delivered, posted.seq()));
            }
            withdrew
        });
        let taken = w.receive_once().map(|(_, ws)| ws);
        let withdrew = sender.join().unwrap();
        let took_first = taken == Some(words(1));
        if let Some(ws) = taken {
            assert!(ws == words(1) || ws == words(2), "torn message");
        }
        assert!(
            !(took_first && withdrew),
            "took a message its sender withdrew"
        );
        assert!(
            took_first || withdrew,
            "neither the receiver nor the withdraw won"
        );
        // Message 2 is neither lost nor duplicated.
        let rest = w.receive_once().map(|(_, ws)| ws);
        let twice = [taken, rest]
            .iter()
            .filter(|t| **t == Some(words(2)))
            .count();
        assert_eq!(twice, usize::from(withdrew), "message 2 lost or duplicated");
    });
}

/// (c) A stale hint (the sender's previous message was withdrawn) is cleared by a scan while the
/// sender posts again: the clear-then-recheck in `scan` never loses the new message.
#[test]
fn loom_stale_hint_clear_never_loses_a_post() {
    builder(4).check(|| {
        let w = World::new(1, 1);
        // Setup: message 1 posted, announced, then withdrawn; its hint stays behind.
        let old = w.post(1, Phase::PendingSend, &words(1));
        assert!(withdraw(w.env(1), old));
        let w2 = w.clone();
        let sender = thread::spawn(move || {
            w2.post(1, Phase::PendingSend, &words(2));
        });
        let taken = w.receive_once();
        sender.join().unwrap();
        if let Some((_, ws)) = taken {
            assert_eq!(ws, words(2));
            assert!(w.receive_once().is_none(), "message received twice");
        } else {
            // The receiver's scan ran before the post became visible: the hint must still be
            // there for the next scan, which happens after both.
            let rest = w.receive_once();
            assert_eq!(rest.map(|r| r.1), Some(words(2)), "message lost");
        }
    });
}

/// (c') Two scans race with a post: a scan that clears the stale hint while the other thread's
/// post sets it must leave either the message taken or the hint set.
#[test]
fn loom_stale_hint_two_scans() {
    builder(3).check(|| {
        let w = World::new(1, 1);
        let old = w.post(1, Phase::PendingSend, &words(1));
        assert!(withdraw(w.env(1), old));
        let w2 = w.clone();
        let sender = thread::spawn(move || {
            w2.post(1, Phase::PendingSend, &words(2));
        });
        let mut taken = 0;
        for _ in 0..2 {
            if let Some((_, ws)) = w.receive_once() {
                assert_eq!(ws, words(2));
                taken += 1;
            }
        }
        sender.join().unwrap();
        if taken == 0 {
            taken += usize::from(w.receive_once().is_some());
        }
        assert_eq!(taken, 1, "message lost or duplicated");
    });
}

/// (d) A server claims and writes a reply while the client withdraws from `AwaitReply` (its
/// timeout): exactly one wins; the client never sees a reply for a withdrawn request, and a
/// reply never overwrites the client's next message.
#[test]
fn loom_reply_races_withdraw() {
    builder(3).check(|| {
        let w = World::new(1, 1);
        // Setup: the client's request was received; the client awaits the reply of RX.
        let posted = w.post(1, Phase::PendingSendrec, &words(1));
        let (_, ws) = w.receive_once().unwrap();
        assert_eq!(ws, words(1));
        assert_eq!(w.env(1).load().phase(), Phase::AwaitReply);

        let w2 = w.clone();
        let server = thread::spawn(move || try_reply(w2.env(1), RX, &words(7)));

        let env = w.env(1);
        let withdrew = withdraw(env, posted);
        let mut got_reply = None;
        if withdrew {
            // The client's next call reuses the envelope at once.
            w.post(1, Phase::PendingSendrec, &words(3));
        } else {
            // Too late to withdraw: one look now, concurrent with the server's write.
            got_reply = reply_if_published(env, posted);
        }
        let replied = server.join().unwrap();
        assert_ne!(withdrew, replied, "both or neither won");
        if replied {
            let reply = got_reply.or_else(|| reply_if_published(env, posted));
            assert_eq!(reply, Some(words(7)), "torn or missing reply");
        } else {
            // The next request is intact and pending, with no reply written over it.
            assert_eq!(env.load().phase(), Phase::PendingSendrec);
            let (_, ws) = w.receive_once().unwrap();
            assert_eq!(ws, words(3));
        }
    });
}

/// (d') A client past its deadline abandons a `Replying` envelope (the server stalled, see
/// `Outgoing::expire`) while the server publishes the reply: exactly one of the abandon and the
/// server's final CAS wins, and a client that did not abandon reads the whole reply.
#[test]
fn loom_abandon_races_finish_reply() {
    builder(3).check(|| {
        let w = World::new(1, 1);
        let posted = w.post(1, Phase::PendingSendrec, &words(1));
        w.receive_once().unwrap();
        let replying = claim(w.env(1), RX).unwrap();
        let w2 = w.clone();
        let server = thread::spawn(move || w2.env(1).finish_reply(replying, &short_words(7)));
        let env = w.env(1);
        let st = env.load();
        let abandoned = st.phase() == Phase::Replying
            && env.transition(st, EnvState::new(Phase::Idle, 0, st.seq()));
        let early = (!abandoned)
            .then(|| reply_if_published(env, posted))
            .flatten();
        let delivered = server.join().unwrap();
        assert_ne!(abandoned, delivered, "both or neither won");
        if delivered {
            let reply = early.or_else(|| reply_if_published(env, posted));
            assert_eq!(reply, Some(short_words(7)), "torn or missing reply");
        } else {
            assert_eq!(env.load().phase(), Phase::Idle);
        }
    });
}

/// (d'') Two servers race to reply to one client (a stale server, or a hostile one): only one
/// claim succeeds and the reply is the winner's, untorn.
#[test]
fn loom_two_replies_one_wins() {
    builder(3).check(|| {
        let w = World::new(1, 1);
        let posted = w.post(1, Phase::PendingSendrec, &words(1));
        w.receive_once().unwrap();
        let servers: Vec<_> = [7u64, 8]
            .into_iter()
            .map(|n| {
                let w = w.clone();
                thread::spawn(move || try_reply(w.env(1), RX, &words(n)).then_some(n))
            })
            .collect();
        let env = w.env(1);
        // One look concurrent with the servers, the rest after them.
        let early = match env.load().phase() {
            Phase::Replied | Phase::Replying => reply_if_published(env, posted),
            _ => None,
        };
        let winners: Vec<u64> = servers
            .into_iter()
            .filter_map(|s| s.join().unwrap())
            .collect();
        assert_eq!(winners.len(), 1, "two replies claimed one request");
        let reply = early.or_else(|| reply_if_published(env, posted));
        assert_eq!(reply, Some(words(winners[0])), "torn reply");
    });
}

/// (f) A `vcopy` holds a client in `AwaitReply` (see `Proc::settle` in `call/vcopy.rs`) while
/// the client withdraws on its timeout and the server replies (retrying after a hold, as
/// `Proc::await_copy` waits for it). The client never leaves during the hold: if it withdrew or
/// read the reply after a hold, it sees the bytes the holder copied (an atomic stands for them,
/// written Relaxed inside the hold). A hold is never lifted under its live holder.
#[test]
fn loom_vcopy_hold_races_withdraw_and_reply() {
    builder(3).check(|| {
        let w = World::new(1, 1);
        let posted = w.post(1, Phase::PendingSendrec, &words(1));
        let _ = w.receive_once().unwrap();
        let copied = Arc::new(AtomicU64::new(0));

        let (w2, c2) = (w.clone(), copied.clone());
        let holder = thread::spawn(move || {
            let env = w2.env(1);
            let st = env.load();
            if st.phase() != Phase::AwaitReply {
                return false;
            }
            let held = st.held_by(2);
            if !env.transition(st, held) {
                return false;
            }
            c2.store(1, Ordering::Relaxed);
            assert!(
                env.transition(held, st),
                "a hold was lifted under its holder"
            );
            true
        });
        let w3 = w.clone();
        let server = thread::spawn(move || {
            for _ in 0..2 {
                if try_reply(w3.env(1), RX, &words(7)) {
                    return true;
                }
                if w3.env(1).load().holder().is_none() {
                    return false;
                }
                thread::yield_now();
            }
            false
        });

        let env = w.env(1);
        let withdrew = withdraw(env, posted);
        let seen_on_withdraw = copied.load(Ordering::Relaxed);
        let mut seen_with_reply = None;
        if !withdrew {
            let st = env.load();
            if st.phase() == Phase::Replied {
                assert_eq!(env.read_words(st), words(7), "torn reply");
                seen_with_reply = Some(copied.load(Ordering::Relaxed));
            }
        }
        let held = holder.join().unwrap();
        let replied = server.join().unwrap();
        assert!(
            !(withdrew && replied),
            "both the withdraw and the reply won"
        );
        if held && withdrew {
            assert_eq!(
                seen_on_withdraw, 1,
                "the client left before the copy was visible"
            );
        }
        if held && let Some(seen) = seen_with_reply {
            assert_eq!(seen, 1, "the reply came before the copy was visible");
        }
    });
}

/// (g) A `send` held by a remote slot's proxy (`hold`): the proxy's outcome (`Held` to
/// `Delivered`, as `Held::complete` does it) races the sender giving up past its deadline
/// (`Held` to `Idle`, as `Outgoing::expire` does it, then a new message at once). Exactly one
/// wins; the sender's next message is never marked delivered by the late outcome; the proxy
/// reads the held message whole.
#[test]
fn loom_held_outcome_races_give_up() {
    builder(3).check(|| {
        let w = World::new(1, 1);
        let w2 = w.clone();
        let sender = thread::spawn(move || {
            let posted = w2.post(1, Phase::PendingSend, &words(1));
            // Wait (bounded) for the proxy to hold it, as the sender's blocked call does.
            let mut st = w2.env(1).load();
            for _ in 0..3 {
                if st.phase() == Phase::Held {
                    break;
                }
                thread::yield_now();
                st = w2.env(1).load();
            }
            if st.phase() != Phase::Held || st.seq() != posted.seq() {
                return None;
            }
            let gave_up = w2
                .env(1)
                .transition(st, EnvState::new(Phase::Idle, 0, st.seq()));
            if gave_up {
                w2.post(1, Phase::PendingSend, &words(2));
            } else {
                let now = w2.env(1).load();
                assert_eq!((now.phase(), now.seq()), (Phase::Delivered, posted.seq()));
            }
            Some(gave_up)
        });
        let held = scan(&w.pending(), &w.table, RX, RX_EP, |_, _| true).and_then(|c| {
            let ws = w.env(c.sender).hold(c.state, RX)?;
            assert_eq!(ws, words(1), "torn held message");
            Some(EnvState::new(Phase::Held, RX, c.state.seq()).with_gen(c.state.generation()))
        });
        let delivered = held.is_some_and(|h| {
            w.env(1)
                .transition(h, EnvState::new(Phase::Delivered, RX, h.seq()))
        });
        let gave_up = sender.join().unwrap();
        match gave_up {
            Some(true) => assert!(!delivered, "both the outcome and the give-up won"),
            Some(false) => assert!(delivered, "neither the outcome nor the give-up won"),
            // The sender stopped looking before the hold (a real one waits on): whatever the
            // proxy did stands.
            None => {
                if delivered {
                    assert_eq!(w.env(1).load().phase(), Phase::Delivered);
                }
            }
        }
        if gave_up == Some(true) {
            // The next message is pending, untouched by the late outcome.
            let st = w.env(1).load();
            assert_eq!(st.phase(), Phase::PendingSend);
        }
    });
}
