//! Loom models of the mailbox protocol (DESIGN.md section 11, acceptance point 4).
//!
//! Run them with (from the workspace root; nothing else of the crate is compiled under loom):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p m3ipc --release --lib mailbox::loom
//! ```
//!
//! Each model drives the real `Envelope`, `PendingSet` and `scan` of this module from loom
//! threads; the few steps that live in `call/` (withdraw, claim a reply) are repeated here
//! exactly as `call/send.rs` and `call/reply.rs` do them. Sender slots get only the envelopes a
//! model uses: the protocol of one envelope does not depend on its neighbours, and every extra
//! atomic multiplies the interleavings.
//!
//! `LOOM_MAX_PREEMPTIONS` overrides the preemption bound of the larger models.

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
    fn receive_once(&self) -> Option<(usize, u64, [u64; 8])> {
        let c = scan(&self.pending(), &self.table, RX, RX_EP, |_, _| true)?;
        let words = self.table.0[c.sender][c.envelope].take(c.state, RX)?;
        Some((c.sender, c.ticket, words))
    }
}

/// The distinct words of message `n`: a torn copy mixes two of them.
fn words(n: u64) -> [u64; 8] {
    core::array::from_fn(|i| n * 100 + i as u64)
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

/// The server's claim and reply, as `Proc::try_reply` in `call/reply.rs`.
fn try_reply(env: &Envelope, server: u16, reply: &[u64; 8]) -> bool {
    let st = env.load();
    if st.phase() != Phase::AwaitReply || st.peer() != server {
        return false;
    }
    let replying = EnvState::new(Phase::Replying, st.peer(), st.seq());
    if !env.transition(st, replying) {
        return false;
    }
    env.finish_reply(replying, reply);
    true
}

fn builder(default_bound: usize) -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(default_bound);
    }
    b
}

/// (a) Two senders post and announce while the receiver scans and takes twice: each message
/// arrives exactly once with its words intact, and when both were visible before a scan, the
/// lower ticket comes first. After the senders finish, a last scan finds whatever the receiver
/// did not take yet (nothing is lost), and each sender sees `Delivered` and resets, as `send`
/// does. (Loom needs bounded loops: no thread spins waiting for another.)
#[test]
fn loom_two_senders_fifo_exactly_once() {
    builder(3).check(|| {
        let w = World::new(2, 1);
        let announced = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        let senders: Vec<_> = (1..=2usize)
            .map(|s| {
                let w = w.clone();
                let announced = announced.clone();
                thread::spawn(move || {
                    let posted = w.post(s, Phase::PendingSend, &words(s as u64));
                    announced[s - 1].store(true, Ordering::Release);
                    posted
                })
            })
            .collect();

        let mut got: Vec<(usize, u64)> = Vec::new();
        let record = |got: &mut Vec<(usize, u64)>, both_visible: bool| {
            let n = got.len();
            match w.receive_once() {
                Some((sender, ticket, ws)) => {
                    assert_eq!(ws, words(sender as u64), "torn message");
                    assert!(
                        got.iter().all(|&(s, _)| s != sender),
                        "message of {sender} received twice"
                    );
                    if both_visible && n == 0 {
                        // Both were pending when the scan began: the lower ticket first.
                        let other = w.env(3 - sender).ticket.load(Ordering::Relaxed);
                        assert!(ticket < other, "ticket {ticket} taken before {other}");
                    }
                    got.push((sender, ticket));
                }
                None => assert!(!both_visible || n == 2, "a visible message was not found"),
            }
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
            w.env(s).reset(st);
            assert_eq!(w.env(s).load().phase(), Phase::Idle);
        }
    });
}

/// (a') The seqlock argument of `take`: the receiver copies the words before its CAS, and the
/// sender, seeing `Delivered`, resets and writes its next message into the same words at once.
/// The receiver must get each message whole, the first before the second.
#[test]
fn loom_take_then_repost_never_tears() {
    builder(3).check(|| {
        let w = World::new(1, 1);
        let w2 = w.clone();
        let sender = thread::spawn(move || {
            w2.post(1, Phase::PendingSend, &words(1));
            // Let the receiver run, then one look (loom needs bounded loops); if delivered, send
            // the next message at once.
            thread::yield_now();
            let st = w2.env(1).load();
            if st.phase() == Phase::Delivered {
                w2.env(1).reset(st);
                w2.post(1, Phase::PendingSend, &words(2));
                true
            } else {
                false
            }
        });
        let mut got = Vec::new();
        for _ in 0..2 {
            if let Some((_, _, ws)) = w.receive_once() {
                got.push(ws);
            }
        }
        let second = sender.join().unwrap();
        while let Some((_, _, ws)) = w.receive_once() {
            got.push(ws);
        }
        let want: Vec<[u64; 8]> = if second {
            vec![words(1), words(2)]
        } else {
            vec![words(1)]
        };
        assert_eq!(got, want, "torn, lost, duplicated or reordered");
    });
}

/// (b) A sender withdraws (its timeout) while the receiver takes: exactly one wins; the receiver
/// never returns a message whose sender believes it withdrawn, and never words torn with the
/// sender's next post, which follows a successful withdraw at once.
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
                assert_eq!(st.phase(), Phase::Delivered);
                assert_eq!(st.seq(), posted.seq());
                w2.env(1).reset(st);
            }
            withdrew
        });
        let taken = w.receive_once();
        let withdrew = sender.join().unwrap();
        match taken {
            Some((_, _, ws)) if ws == words(1) => {
                assert!(!withdrew, "took a message its sender withdrew")
            }
            Some((_, _, ws)) => {
                assert_eq!(ws, words(2), "torn message");
                assert!(withdrew);
            }
            None => {}
        }
        // Exactly one of the receiver and the withdraw won message 1.
        let took_first = taken.is_some_and(|(_, _, ws)| ws == words(1));
        assert_ne!(took_first, withdrew, "both or neither won message 1");
        // Message 2 is neither lost nor duplicated.
        let rest = w.receive_once();
        match (withdrew, taken) {
            (true, Some(_)) if !took_first => assert!(rest.is_none()),
            (true, _) => {
                assert_eq!(rest.map(|r| r.2), Some(words(2)), "message 2 lost")
            }
            (false, _) => assert!(rest.is_none()),
        }
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
        if let Some((_, _, ws)) = taken {
            assert_eq!(ws, words(2));
            assert!(w.receive_once().is_none(), "message received twice");
        } else {
            // The receiver's scan ran before the post became visible: the hint must still be
            // there for the next scan, which happens after both.
            let rest = w.receive_once();
            assert_eq!(rest.map(|r| r.2), Some(words(2)), "message lost");
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
            if let Some((_, _, ws)) = w.receive_once() {
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
        let (_, _, ws) = w.receive_once().unwrap();
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
            // Too late to withdraw: the server holds the envelope. One look now, concurrent
            // with the server's write; the rest after it finished.
            let st = env.load();
            assert_eq!(st.seq(), posted.seq());
            match st.phase() {
                Phase::Replied => {
                    got_reply = Some(env.read_words());
                    env.reset(st);
                }
                Phase::Replying => {}
                p => panic!("client could not withdraw from {p:?}"),
            }
        }
        let replied = server.join().unwrap();
        assert_ne!(withdrew, replied, "both or neither won");
        if replied && got_reply.is_none() {
            let st = env.load();
            assert_eq!(st.phase(), Phase::Replied);
            got_reply = Some(env.read_words());
            env.reset(st);
        }
        if replied {
            assert_eq!(got_reply, Some(words(7)), "torn or missing reply");
            assert_eq!(env.load().phase(), Phase::Idle);
        } else {
            // The next request is intact and pending, with no reply written over it.
            let st = env.load();
            assert_eq!(st.phase(), Phase::PendingSendrec);
            let (_, _, ws) = w.receive_once().unwrap();
            assert_eq!(ws, words(3));
        }
    });
}

/// (d') Two servers race to reply to one client (a stale server, or a hostile one): only one
/// claim succeeds and the reply is the winner's, untorn.
#[test]
fn loom_two_replies_one_wins() {
    builder(3).check(|| {
        let w = World::new(1, 1);
        w.post(1, Phase::PendingSendrec, &words(1));
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
        let early = {
            let st = env.load();
            (st.phase() == Phase::Replied).then(|| {
                let r = env.read_words();
                env.reset(st);
                r
            })
        };
        let winners: Vec<u64> = servers
            .into_iter()
            .filter_map(|s| s.join().unwrap())
            .collect();
        assert_eq!(winners.len(), 1, "two replies claimed one request");
        let reply = early.unwrap_or_else(|| {
            let st = env.load();
            assert_eq!(st.phase(), Phase::Replied);
            env.read_words()
        });
        assert_eq!(reply, words(winners[0]), "torn reply");
    });
}
