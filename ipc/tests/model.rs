//! Acceptance point 3 (docs/ARCHITECTURE.md section 9): random operation sequences over five endpoints of
//! one DC, checked call by call against a small reference model of the semantics of section 4.
//!
//! Run: `cargo test -p m3ipc --release --test model` (about 3 s for 400 cases of up to ~40
//! operations; `PROPTEST_CASES=3000` for a longer run).
//!
//! The endpoints are SYSTASK (a task), three servers (system processes) and one user, each bound
//! by its own worker thread that makes the calls it is told to: `send`, `sendrec`, `senda`,
//! `notify`, `receive` (from ANY or one source), `rcvrqst`, `reply`, `wakeup`, with NOWAIT,
//! short or FOREVER timeouts. One operation runs at a time: the model ([`Model`]) predicts the
//! result of the call and of every blocked call the operation completes (a receiver woken by a
//! send, a sender whose message is received, a client whose reply comes), and which endpoints
//! stay blocked. The harness waits for exactly those results and compares them (error number, or
//! source, type and tag of the message), then waits until every endpoint the model has blocked
//! shows so in `getprocinfo` (flags, `getfrom`/`sendto`; the flags appear once the call's
//! deadlock check has passed) and its thread sleeps, so that the next operation starts from the
//! state the model is in. Any result the model did not predict fails the case.
//!
//! Timeouts. A call that the model says waits until its deadline is made with the generated
//! timeout (NOWAIT gives `EDVSAGAIN`, a short one `EDVSTIMEDOUT`); so is a receive that finds
//! something at once, and a NOWAIT send to a receiver that already waits for the sender (it
//! completes). Other calls whose outcome the fabric decides without the clock (a `sendrec` or a
//! short-timeout `send` meeting a waiting receiver, `EDVSLOCKED`) are made with FOREVER: there
//! the outcome of a short timeout would depend on how fast the peer thread is scheduled.
//!
//! Not modelled here (covered by other tests): unbind and death, privileges changed by
//! `setpriv`, stale endpoints, vcopy, several processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::message::{is_notify, notify_from};
use m3ipc::{ANY, Errno, FLAG_RECEIVING, FLAG_SENDING, Message, Proc, Timeout, WaitPolicy};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::TestDc;

/// The endpoints, in slot order (with the default DcConfig: 34 tasks, slots below 64 are system
/// processes, so `nr < 30` is a system process). Generation 0, so endpoint == nr.
const EPS: [i32; 5] = [-2, 0, 1, 2, 40];
const N: usize = EPS.len();
/// A system endpoint outside the model, used only to wake workers at teardown.
const CONTROLLER: i32 = 5;
/// The short timeout.
const SHORT: Timeout = Timeout::Millis(3);
/// How long the harness waits for a predicted result or state before failing.
const PATIENCE: Duration = Duration::from_secs(2);

/// `m_type` of the messages each call sends (never in the notification range).
const M_SEND: i32 = 1;
const M_SENDREC: i32 = 2;
const M_SENDA: i32 = 3;
const M_REPLY: i32 = 4;

/// How messages name endpoint `i`: its index (as in `Op`) and its nr.
fn name(i: usize) -> String {
    format!("#{i} (nr {})", EPS[i])
}

fn is_sys(i: usize) -> bool {
    EPS[i] < 30
}

// ---------------------------------------------------------------------------------------------
// Operations

/// A timeout class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum T {
    NoWait,
    Short,
    Forever,
}

/// A receive's source: anyone, or one endpoint (an index into `EPS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    Any,
    From(usize),
}

/// One operation; endpoints are indices into `EPS` (0: SYSTASK -2, 1..=3: servers 0, 1, 2,
/// 4: user 40), and the issuer may be its own peer.
#[derive(Clone, Copy, Debug)]
enum Op {
    Send {
        from: usize,
        to: usize,
        t: T,
    },
    Sendrec {
        from: usize,
        to: usize,
        t: T,
    },
    Senda {
        from: usize,
        to: usize,
    },
    Notify {
        from: usize,
        to: usize,
    },
    Receive {
        by: usize,
        src: Src,
        t: T,
    },
    Rcvrqst {
        by: usize,
        t: T,
    },
    Reply {
        from: usize,
        to: usize,
    },
    Wakeup {
        from: usize,
        to: usize,
    },
    /// Answer a client waiting for a reply: the `pick`-th (modulo their number) client in
    /// `AwaitReply` whose server is idle gets that server's answer, made `how`. Resolved into a
    /// `Reply`, `Send` or `Sendrec` against the model's state (skipped if there is none): random
    /// endpoints rarely hit the one pair that a reply needs.
    Answer {
        pick: usize,
        how: How,
    },
}

/// How a server answers its client.
#[derive(Clone, Copy, Debug)]
enum How {
    Reply,
    Send,
    Sendrec(T),
}

impl Op {
    fn issuer(&self) -> usize {
        match *self {
            Op::Send { from, .. }
            | Op::Sendrec { from, .. }
            | Op::Senda { from, .. }
            | Op::Notify { from, .. }
            | Op::Reply { from, .. }
            | Op::Wakeup { from, .. } => from,
            Op::Receive { by, .. } | Op::Rcvrqst { by, .. } => by,
            Op::Answer { .. } => unreachable!("resolved before use"),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Op::Send { .. } => "send",
            Op::Sendrec { .. } => "sendrec",
            Op::Senda { .. } => "senda",
            Op::Notify { .. } => "notify",
            Op::Receive { src: Src::Any, .. } => "receive(ANY)",
            Op::Receive { .. } => "receive(src)",
            Op::Rcvrqst { .. } => "rcvrqst",
            Op::Reply { .. } => "reply",
            Op::Wakeup { .. } => "wakeup",
            Op::Answer { .. } => "answer",
        }
    }
}

fn ep() -> impl Strategy<Value = usize> {
    0..N
}

fn timeout_class() -> impl Strategy<Value = T> {
    prop_oneof![3 => Just(T::Forever), 1 => Just(T::NoWait), 1 => Just(T::Short)]
}

fn op() -> impl Strategy<Value = Op> {
    let src = prop_oneof![Just(Src::Any), ep().prop_map(Src::From)];
    prop_oneof![
        3 => (ep(), ep(), timeout_class()).prop_map(|(from, to, t)| Op::Send { from, to, t }),
        3 => (ep(), ep(), timeout_class()).prop_map(|(from, to, t)| Op::Sendrec { from, to, t }),
        2 => (ep(), ep()).prop_map(|(from, to)| Op::Senda { from, to }),
        2 => (ep(), ep()).prop_map(|(from, to)| Op::Notify { from, to }),
        6 => (ep(), src, timeout_class()).prop_map(|(by, src, t)| Op::Receive { by, src, t }),
        1 => (ep(), timeout_class()).prop_map(|(by, t)| Op::Rcvrqst { by, t }),
        3 => (ep(), ep()).prop_map(|(from, to)| Op::Reply { from, to }),
        1 => (ep(), ep()).prop_map(|(from, to)| Op::Wakeup { from, to }),
        3 => (any::<usize>(), prop_oneof![
            Just(How::Reply),
            Just(How::Send),
            timeout_class().prop_map(How::Sendrec),
        ])
            .prop_map(|(pick, how)| Op::Answer { pick, how }),
    ]
}

/// A sequence: single operations, and now and then a burst of `senda`s from one system process
/// to one endpoint (enough to fill its asynchronous envelopes).
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let burst =
        (0..N - 1, ep(), 2..=10usize).prop_map(|(from, to, n)| vec![Op::Senda { from, to }; n]);
    let group = prop_oneof![24 => op().prop_map(|o| vec![o]), 1 => burst];
    prop::collection::vec(group, 1..=36).prop_map(|g| g.concat())
}

// ---------------------------------------------------------------------------------------------
// The reference model

/// What a call returns, as compared: the error, or the message's source, type and tag
/// (`payload[0]`; `None` for a notification, whose payload is a timestamp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Got {
    source: i32,
    m_type: i32,
    tag: Option<u64>,
}

type Expect = Result<Option<Got>, Errno>;

fn msg(from: usize, m_type: i32, tag: u64) -> Got {
    Got {
        source: EPS[from],
        m_type,
        tag: Some(tag),
    }
}

fn notification(from: usize) -> Got {
    Got {
        source: EPS[from],
        m_type: notify_from(EPS[from]),
        tag: None,
    }
}

/// What an endpoint's worker is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Idle,
    /// Blocked in `send`/`sendrec`, its message queued at `to`.
    Sending {
        to: usize,
    },
    /// In the receive half of a `sendrec` whose request `server` received.
    AwaitReply {
        server: usize,
    },
    /// Blocked in `receive(src)` or (`requests_only`) `rcvrqst`.
    Receiving {
        src: Src,
        requests_only: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Send,
    Sendrec,
    Async,
}

/// A message waiting in a receiver's queue.
#[derive(Clone, Copy, Debug)]
struct Queued {
    from: usize,
    to: usize,
    ticket: u64,
    kind: Kind,
    got: Got,
}

#[derive(Debug)]
struct Model {
    st: [St; N],
    queue: Vec<Queued>,
    /// Pending notifications of each endpoint, by notifier (index order is slot order).
    notify: [BTreeSet<usize>; N],
    woken: [bool; N],
    ticket: u64,
}

/// The model's prediction for one operation.
#[derive(Debug)]
struct Plan {
    issuer: usize,
    /// The timeout the call is made with.
    timeout: Timeout,
    /// `None`: the issuer stays blocked.
    result: Option<Expect>,
    /// Blocked endpoints the operation completes, with their results.
    others: Vec<(usize, Expect)>,
    /// Which special path the call takes (for the coverage report).
    note: Option<&'static str>,
}

impl Model {
    fn new() -> Model {
        Model {
            st: [St::Idle; N],
            queue: Vec::new(),
            notify: Default::default(),
            woken: [false; N],
            ticket: 0,
        }
    }

    /// What `x` is blocked on, as MINIX's `deadlock()` follows it: (peer, whether sending).
    fn blocked_on(&self, x: usize) -> Option<(usize, bool)> {
        match self.st[x] {
            St::Sending { to } => Some((to, true)),
            St::AwaitReply { server } => Some((server, false)),
            // A receiver with a notification pending from its source is not blocked: its
            // receive delivers it (unreachable here, where a notify completes an accepting
            // receiver at once; the fabric meets it when a notify races a deadlock check).
            St::Receiving {
                src: Src::From(s), ..
            } if !self.notify[x].contains(&s) => Some((s, false)),
            _ => None,
        }
    }

    /// Whether `me`, blocking (`sending` or receiving) on `first`, closes a cycle. A two-party
    /// chain of a sender and a receiver is a rendezvous, not a cycle.
    fn closes_cycle(&self, me: usize, first: usize, sending: bool) -> bool {
        let mut x = first;
        let mut group = 1;
        for _ in 0..=N {
            group += 1;
            let Some((next, x_sending)) = self.blocked_on(x) else {
                return false;
            };
            if next == me {
                return !(group == 2 && x_sending != sending);
            }
            x = next;
        }
        false
    }

    /// Whether `r` is blocked in a receive that takes this message (or notification) of `from`.
    fn accepts(&self, r: usize, from: usize, is_notification: bool) -> bool {
        match self.st[r] {
            St::Receiving { src, requests_only } => {
                (src == Src::Any || src == Src::From(from)) && !(is_notification && requests_only)
            }
            _ => false,
        }
    }

    /// The oldest message queued for `r` from `src`.
    fn oldest(&self, r: usize, src: Src) -> Option<usize> {
        self.queue
            .iter()
            .enumerate()
            .filter(|(_, q)| q.to == r && (src == Src::Any || src == Src::From(q.from)))
            .min_by_key(|(_, q)| q.ticket)
            .map(|(i, _)| i)
    }

    /// `r` takes queued message `i`: the sender's call moves on.
    fn take(&mut self, r: usize, i: usize, others: &mut Vec<(usize, Expect)>) -> Got {
        let q = self.queue.remove(i);
        match q.kind {
            Kind::Send => {
                self.st[q.from] = St::Idle;
                others.push((q.from, Ok(None)));
            }
            Kind::Sendrec => self.st[q.from] = St::AwaitReply { server: r },
            Kind::Async => {}
        }
        q.got
    }

    /// A `send`/`sendrec` that no receiver takes at once: NOWAIT fails, a cycle is refused,
    /// a short timeout expires, FOREVER queues it.
    fn block_sender(
        &mut self,
        from: usize,
        to: usize,
        kind: Kind,
        got: Got,
        t: T,
    ) -> (Timeout, Option<Expect>) {
        self.ticket += 1;
        match t {
            T::NoWait => (Timeout::NoWait, Some(Err(Errno::EDVSAGAIN))),
            _ if self.closes_cycle(from, to, true) => {
                (Timeout::Forever, Some(Err(Errno::EDVSLOCKED)))
            }
            T::Short => (SHORT, Some(Err(Errno::EDVSTIMEDOUT))),
            T::Forever => {
                self.queue.push(Queued {
                    from,
                    to,
                    ticket: self.ticket,
                    kind,
                    got,
                });
                self.st[from] = St::Sending { to };
                (Timeout::Forever, None)
            }
        }
    }

    /// A receive that finds nothing.
    fn block_receiver(
        &mut self,
        by: usize,
        src: Src,
        requests_only: bool,
        t: T,
    ) -> (Timeout, Option<Expect>) {
        match (t, src) {
            (T::NoWait, _) => (Timeout::NoWait, Some(Err(Errno::EDVSAGAIN))),
            (_, Src::From(s)) if self.closes_cycle(by, s, false) => {
                (Timeout::Forever, Some(Err(Errno::EDVSLOCKED)))
            }
            (T::Short, _) => (SHORT, Some(Err(Errno::EDVSTIMEDOUT))),
            (T::Forever, _) => {
                self.st[by] = St::Receiving { src, requests_only };
                (Timeout::Forever, None)
            }
        }
    }

    /// The concrete operation of `op` (an `Answer` names its endpoints only through the state);
    /// `None` if there is none.
    fn resolve(&self, op: &Op) -> Option<Op> {
        let Op::Answer { pick, how } = *op else {
            return Some(*op);
        };
        let waiting: Vec<(usize, usize)> = (0..N)
            .filter_map(|c| match self.st[c] {
                St::AwaitReply { server } if self.st[server] == St::Idle => Some((server, c)),
                _ => None,
            })
            .collect();
        let (from, to) = *waiting.get(pick % waiting.len().max(1))?;
        Some(match how {
            How::Reply => Op::Reply { from, to },
            How::Send => Op::Send {
                from,
                to,
                t: T::NoWait,
            },
            How::Sendrec(t) => Op::Sendrec { from, to, t },
        })
    }

    /// Apply `op` (resolved; its messages carry `tag`); `None` if its issuer is busy in a call.
    fn apply(&mut self, op: &Op, tag: u64) -> Option<Plan> {
        let issuer = op.issuer();
        if self.st[issuer] != St::Idle {
            return None;
        }
        let mut note = None;
        let mut others = Vec::new();
        let now = |r: Expect| (Timeout::Forever, Some(r));
        let (timeout, result) = match *op {
            Op::Send { from, to, t } => {
                let got = msg(from, M_SEND, tag);
                if !is_sys(from) {
                    now(Err(Errno::EDVSBADCALL))
                } else if to == from {
                    now(Err(Errno::EDVSBADDEST))
                } else if self.st[to] == (St::AwaitReply { server: from }) {
                    // The send is the reply the client waits for.
                    note = Some("as the reply");
                    self.st[to] = St::Idle;
                    others.push((to, Ok(Some(got))));
                    (t.timeout(), Some(Ok(None)))
                } else if self.accepts(to, from, false) {
                    // A rendezvous with a waiting receiver. NOWAIT too: the receiver already
                    // waits for us, so the send completes when it runs (within a grace).
                    self.ticket += 1;
                    self.st[to] = St::Idle;
                    others.push((to, Ok(Some(got))));
                    let timeout = match t {
                        T::NoWait => Timeout::NoWait,
                        _ => Timeout::Forever,
                    };
                    (timeout, Some(Ok(None)))
                } else {
                    self.block_sender(from, to, Kind::Send, got, t)
                }
            }
            Op::Sendrec { from, to, t } => {
                let got = msg(from, M_SENDREC, tag);
                if to == from {
                    now(Err(Errno::EDVSENDPOINT))
                } else if self.st[to] == (St::AwaitReply { server: from }) {
                    // `to` receives from us (the receive half of its sendrec): our request is
                    // its reply, and we wait for its answer.
                    note = Some("as the reply");
                    self.st[to] = St::Idle;
                    others.push((to, Ok(Some(got))));
                    match t {
                        T::NoWait => (Timeout::NoWait, Some(Err(Errno::EDVSAGAIN))),
                        T::Short => (SHORT, Some(Err(Errno::EDVSTIMEDOUT))),
                        T::Forever => {
                            self.st[from] = St::AwaitReply { server: to };
                            (Timeout::Forever, None)
                        }
                    }
                } else if self.accepts(to, from, false) {
                    self.ticket += 1;
                    self.st[to] = St::Idle;
                    others.push((to, Ok(Some(got))));
                    self.st[from] = St::AwaitReply { server: to };
                    (Timeout::Forever, None)
                } else {
                    self.block_sender(from, to, Kind::Sendrec, got, t)
                }
            }
            Op::Senda { from, to } => {
                let got = msg(from, M_SENDA, tag);
                let in_flight = self
                    .queue
                    .iter()
                    .filter(|q| q.from == from && q.kind == Kind::Async)
                    .count();
                if !is_sys(from) {
                    now(Err(Errno::EDVSBADCALL))
                } else if to == from {
                    now(Err(Errno::EDVSBADDEST))
                } else if in_flight >= m3ipc::mailbox::ASYNC_ENVELOPES {
                    now(Err(Errno::EDVSAGAIN))
                } else {
                    self.ticket += 1;
                    if self.accepts(to, from, false) {
                        self.st[to] = St::Idle;
                        others.push((to, Ok(Some(got))));
                    } else {
                        self.queue.push(Queued {
                            from,
                            to,
                            ticket: self.ticket,
                            kind: Kind::Async,
                            got,
                        });
                    }
                    now(Ok(None))
                }
            }
            Op::Notify { from, to } => {
                if !is_sys(from) {
                    now(Err(Errno::EDVSBADCALL))
                } else if to == from {
                    now(Err(Errno::EDVSENDPOINT))
                } else if !is_sys(to) {
                    now(Err(Errno::EDVSTRAPDENIED))
                } else {
                    if self.notify[to].contains(&from) {
                        // Coalesces with the pending one.
                    } else if self.accepts(to, from, true) {
                        self.st[to] = St::Idle;
                        others.push((to, Ok(Some(notification(from)))));
                    } else {
                        self.notify[to].insert(from);
                    }
                    now(Ok(None))
                }
            }
            Op::Receive { by, src, t } => {
                if !is_sys(by) {
                    now(Err(Errno::EDVSBADCALL))
                } else if src == Src::From(by) {
                    now(Err(Errno::EDVSENDPOINT))
                } else if src == Src::Any && self.woken[by] {
                    self.woken[by] = false;
                    (t.timeout(), Some(Err(Errno::EDVSWOKENUP)))
                } else if let Some(&n) = self.notify[by]
                    .iter()
                    .find(|&&n| src == Src::Any || src == Src::From(n))
                {
                    self.notify[by].remove(&n);
                    if src != Src::Any && self.closes_cycle(by, n, false) {
                        // Receiving from a process that receives from us: the pending
                        // notification comes first (step 2), never EDVSLOCKED.
                        note = Some("its source receives from it");
                    }
                    (t.timeout(), Some(Ok(Some(notification(n)))))
                } else if let Some(i) = self.oldest(by, src) {
                    let got = self.take(by, i, &mut others);
                    (t.timeout(), Some(Ok(Some(got))))
                } else {
                    self.block_receiver(by, src, false, t)
                }
            }
            Op::Rcvrqst { by, t } => {
                if !is_sys(by) {
                    now(Err(Errno::EDVSBADCALL))
                } else if self.woken[by] {
                    self.woken[by] = false;
                    (t.timeout(), Some(Err(Errno::EDVSWOKENUP)))
                } else if let Some(i) = self.oldest(by, Src::Any) {
                    let got = self.take(by, i, &mut others);
                    (t.timeout(), Some(Ok(Some(got))))
                } else {
                    self.block_receiver(by, Src::Any, true, t)
                }
            }
            Op::Reply { from, to } => {
                if !is_sys(from) {
                    now(Err(Errno::EDVSBADCALL))
                } else if to == from {
                    now(Err(Errno::EDVSENDPOINT))
                } else if self.st[to] == (St::AwaitReply { server: from }) {
                    self.st[to] = St::Idle;
                    others.push((to, Ok(Some(msg(from, M_REPLY, tag)))));
                    now(Ok(None))
                } else {
                    now(Err(Errno::EDVSPROCSTS))
                }
            }
            Op::Wakeup { from, to } => {
                if !is_sys(from) {
                    now(Err(Errno::EDVSBADCALL))
                } else if to == from {
                    now(Err(Errno::EDVSENDPOINT))
                } else {
                    if matches!(self.st[to], St::Receiving { src: Src::Any, .. }) {
                        self.st[to] = St::Idle;
                        others.push((to, Err(Errno::EDVSWOKENUP)));
                    } else {
                        self.woken[to] = true;
                    }
                    now(Ok(None))
                }
            }
            Op::Answer { .. } => unreachable!("resolved before use"),
        };
        Some(Plan {
            issuer,
            timeout,
            result,
            others,
            note,
        })
    }
}

impl T {
    fn timeout(self) -> Timeout {
        match self {
            T::NoWait => Timeout::NoWait,
            T::Short => SHORT,
            T::Forever => Timeout::Forever,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: one worker thread per endpoint

enum Cmd {
    Send(i32, Message, Timeout),
    Sendrec(i32, Message, Timeout),
    Senda(i32, Message),
    Notify(i32),
    Receive(i32, Timeout),
    Rcvrqst(Timeout),
    Reply(i32, Message),
    Wakeup(i32),
    Exit,
}

type Outcome = Result<Option<Message>, Errno>;

fn observe(r: &Outcome) -> Expect {
    r.map(|o| {
        o.map(|m| Got {
            source: m.m_source,
            m_type: m.m_type,
            tag: (!is_notify(m.m_type)).then_some(m.payload[0]),
        })
    })
}

/// A message as the issuer builds it, with a forged `m_source` the fabric must overwrite.
fn outgoing(m_type: i32, tag: u64) -> Message {
    let mut m = Message::new(m_type);
    m.m_source = 0x5a5a;
    m.payload[0] = tag;
    m
}

fn command(op: &Op, tag: u64, timeout: Timeout) -> Cmd {
    match *op {
        Op::Send { to, .. } => Cmd::Send(EPS[to], outgoing(M_SEND, tag), timeout),
        Op::Sendrec { to, .. } => Cmd::Sendrec(EPS[to], outgoing(M_SENDREC, tag), timeout),
        Op::Senda { to, .. } => Cmd::Senda(EPS[to], outgoing(M_SENDA, tag)),
        Op::Notify { to, .. } => Cmd::Notify(EPS[to]),
        Op::Receive { src, .. } => Cmd::Receive(
            match src {
                Src::Any => ANY,
                Src::From(s) => EPS[s],
            },
            timeout,
        ),
        Op::Rcvrqst { .. } => Cmd::Rcvrqst(timeout),
        Op::Reply { to, .. } => Cmd::Reply(EPS[to], outgoing(M_REPLY, tag)),
        Op::Wakeup { to, .. } => Cmd::Wakeup(EPS[to]),
        Op::Answer { .. } => unreachable!("resolved before use"),
    }
}

fn worker(p: Proc, me: usize, cmds: mpsc::Receiver<Cmd>, out: mpsc::Sender<(usize, Outcome)>) {
    // Block: no spinning, so that a blocked call reaches its deadlock check and its sleep at once
    // (the harness waits for the sleep) and two CPUs are enough for five workers.
    p.set_wait_policy(WaitPolicy::Block);
    for cmd in cmds {
        let r = match cmd {
            Cmd::Send(to, m, t) => p.send(to, &m, t).map(|()| None),
            Cmd::Sendrec(to, mut m, t) => p.sendrec(to, &mut m, t).map(|()| Some(m)),
            Cmd::Senda(to, m) => p.senda(to, &m).map(|()| None),
            Cmd::Notify(to) => p.notify(to).map(|()| None),
            Cmd::Receive(src, t) => {
                let mut m = Message::default();
                p.receive(src, &mut m, t).map(|()| Some(m))
            }
            Cmd::Rcvrqst(t) => {
                let mut m = Message::default();
                p.rcvrqst(&mut m, t).map(|()| Some(m))
            }
            Cmd::Reply(to, m) => p.reply(to, &m).map(|()| None),
            Cmd::Wakeup(to) => p.wakeup(to).map(|()| None),
            Cmd::Exit => break,
        };
        if out.send((me, r)).is_err() {
            break;
        }
    }
    // Dropping `p` unbinds: whoever waits on this endpoint fails and can exit in turn.
}

struct Worker {
    cmds: mpsc::Sender<Cmd>,
    handle: Option<JoinHandle<()>>,
    tid: i32,
}

/// The scheduler state of thread `tid` of this process ('S' while it sleeps in a futex).
fn thread_state(tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

struct Harness {
    workers: Vec<Worker>,
    results: mpsc::Receiver<(usize, Outcome)>,
    controller: Option<Proc>,
    /// Last: removed after the workers have gone.
    t: TestDc,
}

impl Harness {
    fn new() -> Harness {
        let t = TestDc::new('m');
        let (out, results) = mpsc::channel();
        let workers = (0..N)
            .map(|i| {
                let p = t.dc.bind(EPS[i]).expect("bind");
                let (cmds, rx) = mpsc::channel();
                let (tid_tx, tid_rx) = mpsc::channel();
                let out = out.clone();
                let handle = std::thread::spawn(move || {
                    // SAFETY: gettid has no preconditions.
                    let _ = tid_tx.send(unsafe { libc::gettid() });
                    worker(p, i, rx, out)
                });
                Worker {
                    cmds,
                    handle: Some(handle),
                    tid: tid_rx.recv().expect("worker tid"),
                }
            })
            .collect();
        let controller = Some(t.dc.bind(CONTROLLER).expect("bind controller"));
        Harness {
            workers,
            results,
            controller,
            t,
        }
    }

    /// Run one operation and check everything the model predicts for it.
    fn run(&mut self, model: &mut Model, op: &Op, tag: u64) -> Result<(), TestCaseError> {
        let Some(op) = &model.resolve(op) else {
            return Ok(()); // no client to answer: skip
        };
        let Some(plan) = model.apply(op, tag) else {
            return Ok(()); // the issuer is blocked in an earlier call: skip
        };
        record(op, &plan);
        self.workers[plan.issuer]
            .cmds
            .send(command(op, tag, plan.timeout))
            .map_err(|_| TestCaseError::fail("worker gone"))?;
        let mut expected = plan.others.clone();
        if let Some(r) = plan.result {
            expected.push((plan.issuer, r));
        }
        while !expected.is_empty() {
            let (w, r) = self.results.recv_timeout(PATIENCE).map_err(|_| {
                TestCaseError::fail(format!(
                    "{op:?}: no result within {PATIENCE:?}; still expecting {expected:?}"
                ))
            })?;
            let got = observe(&r);
            let Some(at) = expected.iter().position(|&(e, _)| e == w) else {
                return Err(TestCaseError::fail(format!(
                    "{op:?}: endpoint {} returned {got:?}, but the model has it {:?}",
                    name(w),
                    model.st[w]
                )));
            };
            let (_, want) = expected.remove(at);
            prop_assert_eq!(
                got,
                want,
                "{:?}: result of endpoint {} (plan {:?})",
                op,
                name(w),
                plan
            );
        }
        self.settle(model)
    }

    /// Wait until the fabric shows every endpoint in the model's state, and every blocked
    /// worker asleep (past its deadlock check).
    fn settle(&self, model: &Model) -> Result<(), TestCaseError> {
        let deadline = Instant::now() + PATIENCE;
        for (i, w) in self.workers.iter().enumerate() {
            let want = model.st[i];
            loop {
                let info = self
                    .t
                    .dc
                    .getprocinfo(EPS[i])
                    .map_err(|e| TestCaseError::fail(format!("getprocinfo: {e:?}")))?;
                let sending = info.flags & FLAG_SENDING != 0;
                let receiving = info.flags & FLAG_RECEIVING != 0;
                let shown = match want {
                    St::Idle => !sending && !receiving,
                    St::Sending { to } => sending && info.sendto == EPS[to],
                    St::AwaitReply { server } => {
                        !sending && receiving && info.getfrom == EPS[server]
                    }
                    St::Receiving { src, .. } => {
                        !sending
                            && receiving
                            && info.getfrom
                                == match src {
                                    Src::Any => ANY,
                                    Src::From(s) => EPS[s],
                                }
                    }
                };
                let asleep = want == St::Idle || thread_state(w.tid) == Some('S');
                if shown && asleep {
                    break;
                }
                self.nothing_unexpected(model)?;
                if Instant::now() > deadline {
                    return Err(TestCaseError::fail(format!(
                        "endpoint {} never showed {want:?}: flags {:#x} getfrom {} sendto {}",
                        name(i),
                        info.flags,
                        info.getfrom,
                        info.sendto
                    )));
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        self.nothing_unexpected(model)
    }

    /// Nothing the model did not predict has finished meanwhile.
    fn nothing_unexpected(&self, model: &Model) -> Result<(), TestCaseError> {
        if let Ok((w, r)) = self.results.try_recv() {
            return Err(TestCaseError::fail(format!(
                "endpoint {} returned {:?} unexpectedly (model: {:?})",
                name(w),
                observe(&r),
                model.st[w]
            )));
        }
        Ok(())
    }

    /// Make every worker exit: idle ones unbind at once, which fails those blocked on them;
    /// those blocked in `receive(ANY)`/`rcvrqst` are woken. Returns whether all exited.
    fn shut_down(&mut self) -> bool {
        for w in &self.workers {
            let _ = w.cmds.send(Cmd::Exit);
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let alive: Vec<usize> = (0..N)
                .filter(|&i| {
                    self.workers[i]
                        .handle
                        .as_ref()
                        .is_some_and(|h| !h.is_finished())
                })
                .collect();
            if alive.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return false;
            }
            if let Some(c) = &self.controller {
                for &i in &alive {
                    let _ = c.wakeup(EPS[i]);
                }
            }
            while self.results.try_recv().is_ok() {}
            std::thread::sleep(Duration::from_millis(1));
        }
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
        self.controller = None;
        true
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // After a failed check: best effort. Threads still stuck then are left behind (their
        // mappings outlive the region file, which `TestDc` removes).
        if self.workers.iter().any(|w| w.handle.is_some()) {
            self.shut_down();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Coverage: which outcomes the random sequences reached.

static COVERAGE: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

fn record(op: &Op, plan: &Plan) {
    let what = match &plan.result {
        None => "blocks".to_string(),
        Some(Ok(None)) => "ok".to_string(),
        Some(Ok(Some(g))) if g.tag.is_none() => "notification".to_string(),
        Some(Ok(Some(_))) => "message".to_string(),
        Some(Err(e)) => e.name().to_string(),
    };
    let mut keys = vec![format!("{} -> {what}", op.name())];
    if let Some(note) = plan.note {
        keys.push(format!("{} -> {what} ({note})", op.name()));
    }
    for (_, r) in &plan.others {
        keys.push(format!(
            "{} completes a blocked call: {}",
            op.name(),
            match r {
                Ok(Some(g)) if g.tag.is_none() => "notification",
                Ok(_) => "ok",
                Err(_) => "error",
            }
        ));
    }
    let mut c = COVERAGE.lock().unwrap_or_else(|e| e.into_inner());
    for k in keys {
        *c.entry(k).or_default() += 1;
    }
}

fn run_case(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    let mut model = Model::new();
    for (n, op) in ops.iter().enumerate() {
        h.run(&mut model, op, 1000 + n as u64)?;
    }
    prop_assert!(h.shut_down(), "workers did not exit: model {:?}", model);
    Ok(())
}

/// Found by the model: a server answering its client with a `sendrec` (the client waits in the
/// receive half of its own `sendrec` to the server) must be delivered as the client's reply, as
/// a `send` is; queueing it left both blocked for ever, a cycle no deadlock check reports.
#[test]
fn sendrec_to_a_client_awaiting_our_reply_is_its_reply() {
    let ops = [
        Op::Sendrec {
            from: 1,
            to: 2,
            t: T::Forever,
        },
        Op::Receive {
            by: 2,
            src: Src::Any,
            t: T::Forever,
        },
        Op::Sendrec {
            from: 2,
            to: 1,
            t: T::Forever,
        },
        Op::Reply { from: 1, to: 2 },
        // Once more with the user as the first client and NOWAIT for the answer.
        Op::Sendrec {
            from: 4,
            to: 3,
            t: T::Forever,
        },
        Op::Receive {
            by: 3,
            src: Src::From(4),
            t: T::NoWait,
        },
        Op::Sendrec {
            from: 3,
            to: 4,
            t: T::NoWait,
        },
        Op::Reply { from: 4, to: 3 },
    ];
    if let Err(e) = run_case(&ops) {
        panic!("{e}");
    }
}

/// A receive by name from a process that is itself blocked receiving from us by name, with a
/// notification from it pending, delivers the notification (docs/ARCHITECTURE.md section 4, step 2): it
/// is not a cycle and must not be `EDVSLOCKED`.
#[test]
fn pending_notification_comes_before_the_deadlock_check() {
    let ops = [
        Op::Notify { from: 2, to: 1 },
        Op::Receive {
            by: 2,
            src: Src::From(1),
            t: T::Forever,
        },
        Op::Receive {
            by: 1,
            src: Src::From(2),
            t: T::Forever,
        },
        Op::Send {
            from: 1,
            to: 2,
            t: T::Forever,
        },
    ];
    if let Err(e) = run_case(&ops) {
        panic!("{e}");
    }
    let cov = COVERAGE.lock().unwrap_or_else(|e| e.into_inner());
    assert!(cov.contains_key("receive(src) -> notification (its source receives from it)"));
}

#[test]
fn random_operations_agree_with_the_model() {
    // 400 cases unless PROPTEST_CASES says otherwise.
    let cases = match std::env::var_os("PROPTEST_CASES") {
        Some(_) => Config::default().cases,
        None => 400,
    };
    let config = Config {
        cases,
        source_file: Some(file!()),
        // A hang costs PATIENCE per shrinking step: stop shrinking after a minute.
        max_shrink_time: 60_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let r = runner.run(&ops(), |ops| run_case(&ops));
    if let Err(e) = r {
        panic!("{e}");
    }
    let cov = COVERAGE.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!("model: {:?}, outcomes reached:", started.elapsed());
    for (k, n) in cov.iter() {
        eprintln!("  {n:6}  {k}");
    }
    // The sequences must reach every kind of outcome, or the test proves little.
    for must in [
        "send -> blocks",
        "send -> EDVSLOCKED",
        "send -> EDVSAGAIN",
        "send -> EDVSTIMEDOUT",
        "send -> EDVSBADCALL",
        "send -> EDVSBADDEST",
        "sendrec -> blocks",
        "sendrec -> EDVSLOCKED",
        "senda -> ok",
        "notify -> ok",
        "notify -> EDVSTRAPDENIED",
        "receive(ANY) -> message",
        "receive(ANY) -> notification",
        "receive(ANY) -> EDVSWOKENUP",
        "receive(ANY) -> EDVSAGAIN",
        "receive(ANY) -> blocks",
        "receive(src) -> message",
        "receive(src) -> EDVSLOCKED",
        "receive(src) -> EDVSENDPOINT",
        "rcvrqst -> message",
        "reply -> ok",
        "reply -> EDVSPROCSTS",
        "send -> ok (as the reply)",
        "sendrec -> blocks (as the reply)",
        "senda -> EDVSAGAIN",
        "rcvrqst -> EDVSWOKENUP",
        "send completes a blocked call: ok",
        "notify completes a blocked call: notification",
        "wakeup completes a blocked call: error",
        "reply completes a blocked call: ok",
    ] {
        assert!(
            cov.get(must).is_some_and(|&n| n > 0),
            "no case reached {must:?}"
        );
    }
}
