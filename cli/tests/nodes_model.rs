//! Issue 18, acceptance 1: random call sequences over endpoints spread on two nodes, checked
//! call by call against the single-node model test's reference model
//! (`ipc/tests/model_ref/reference.rs`, included as it is).
//!
//! Run: `cargo nextest run -p dvs --test nodes_model` (300 cases, about 15 s; `PROPTEST_CASES=N` for more).
//!
//! Two nodes over loopback (each its region directory and `dvs node run` daemon, as in
//! `nodes.rs`). The model's five endpoints are bound in this process, by one worker thread
//! each, on the node `NODE_OF` names: SYSTASK and server 1 on node 0, servers 0 and 2 and the
//! user on node 1. One operation runs at a time, as in `ipc/tests/model.rs`; after each, the
//! harness waits until every endpoint shows the model's state on its own node and, for a call
//! in flight across nodes, on the far node too (the daemon's remote slot of the caller, sending
//! or awaiting the reply there, shown as blocked).
//!
//! Across nodes the sequences run `send`, `sendrec`, `reply` (and a `send` as the reply),
//! `notify`, `senda`, `receive(ANY)`, `receive(src)` and `rcvrqst` taking remote calls. What the
//! model cannot check across nodes, and so is not generated there (each is still generated
//! between endpoints of one node):
//! - a `send`/`sendrec` to a remote endpoint with NOWAIT or a short timeout: the far node's
//!   daemon makes the call with FOREVER, so its outcome is the far receiver's, not the clock's
//!   (an expired remote `send` has an unknown fate, and its message may still be delivered);
//! - `EDVSLOCKED` for a cycle spanning nodes: each node sees only its own slots, so such a
//!   cycle is not detected and the calls block (the model would predict the error);
//! - a `notify`/`senda` to a remote endpoint that does not wait for it: it completes at once and
//!   nothing in either region shows it in flight, so the harness cannot know when it has landed
//!   (generated only when the receiver waits for it, where its arrival is the result);
//! - a `sendrec` as the answer to a remote client awaiting our reply: the far side's reply can
//!   only come through a call the far daemon did not make (a known gap: `nodes.rs`,
//!   `a_sendrec_as_the_answer_to_a_remote_client`, ignored);
//! - `wakeup` of a remote endpoint: not forwarded.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::message::{is_notify, notify_from};
use m3ipc::{
    ANY, Dc, Endpoint, Errno, FLAG_RECEIVING, FLAG_SENDING, FLAG_WAITING, Message, Proc, SlotState,
    Timeout, WaitPolicy,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::{DC, Node, cluster};

include!("../../ipc/tests/model_ref/reference.rs");

/// The node each model endpoint is bound on.
const NODE_OF: [usize; N] = [0, 1, 0, 1, 1];
/// One system endpoint per node outside the model: wakes that node's workers at teardown.
const CONTROLLERS: [i32; 2] = [5, 6];
/// How long the harness waits for a predicted result or state before failing.
const PATIENCE: Duration = Duration::from_secs(5);

fn cross(a: usize, b: usize) -> bool {
    NODE_OF[a] != NODE_OF[b]
}

// ---------------------------------------------------------------------------------------------
// What the model can check across nodes

/// `op` as made across nodes: a call to a remote endpoint blocks with FOREVER (unless it is the
/// reply the peer waits for); `None` for what is not generated across nodes.
fn adapt(model: &Model, op: Op) -> Option<Op> {
    let as_reply = |from: usize, to: usize| model.st[to] == (St::AwaitReply { server: from });
    match op {
        Op::Send { from, to, t } if cross(from, to) => Some(Op::Send {
            from,
            to,
            t: if as_reply(from, to) { t } else { T::Forever },
        }),
        Op::Sendrec { from, to, .. } if cross(from, to) && as_reply(from, to) => None,
        Op::Sendrec { from, to, .. } if cross(from, to) => Some(Op::Sendrec {
            from,
            to,
            t: T::Forever,
        }),
        Op::Wakeup { from, to } if cross(from, to) => None,
        _ => Some(op),
    }
}

/// The endpoint `op` calls (for a receive from one source, the source).
fn target(op: &Op) -> Option<usize> {
    match *op {
        Op::Send { to, .. }
        | Op::Sendrec { to, .. }
        | Op::Senda { to, .. }
        | Op::Notify { to, .. }
        | Op::Reply { to, .. }
        | Op::Wakeup { to, .. } => Some(to),
        Op::Receive {
            src: Src::From(s), ..
        } => Some(s),
        _ => None,
    }
}

/// Whether the harness can check `plan` (made by `model`, before the operation) across nodes.
fn checkable(model: &Model, op: &Op, plan: &Plan) -> bool {
    let issuer = plan.issuer;
    let Some(first) = target(op) else {
        return true;
    };
    if plan.result == Some(Err(Errno::EDVSLOCKED)) {
        // The cycle must lie on one node.
        let mut x = first;
        if cross(issuer, x) {
            return false;
        }
        for _ in 0..=N {
            match model.blocked_on(x) {
                Some((next, _)) if cross(issuer, next) => return false,
                Some((next, _)) if next != issuer => x = next,
                _ => break,
            }
        }
    }
    if matches!(op, Op::Notify { .. } | Op::Senda { .. }) && cross(issuer, first) {
        // Only when its arrival is seen: it completes the waiting receiver (or fails at once).
        return matches!(plan.result, Some(Err(_))) || plan.others.iter().any(|&(w, _)| w == first);
    }
    true
}

// ---------------------------------------------------------------------------------------------
// The harness: one worker thread per endpoint, in the region of its node

enum Cmd {
    Send(Endpoint, Message, Timeout),
    Sendrec(Endpoint, Message, Timeout),
    Senda(Endpoint, Message),
    Notify(Endpoint),
    Receive(Endpoint, Timeout),
    Rcvrqst(Timeout),
    Reply(Endpoint, Message),
    Wakeup(Endpoint),
    Exit,
}

type Outcome = Result<Option<Message>, Errno>;

/// A message as the issuer builds it, with a forged `m_source` the fabric must overwrite.
fn outgoing(m_type: i32, tag: u64) -> Message {
    let mut m = Message::new(m_type);
    m.m_source = 0x5a5a;
    m.payload[0] = tag;
    m
}

fn worker(p: Proc, me: usize, cmds: mpsc::Receiver<Cmd>, out: mpsc::Sender<(usize, Outcome)>) {
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
}

struct Worker {
    cmds: mpsc::Sender<Cmd>,
    handle: Option<JoinHandle<()>>,
    tid: i32,
}

/// The scheduler state of thread `tid` of process `pid` ('S' while it sleeps).
fn thread_state(pid: u32, tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// The two nodes and their DCs as this process sees them.
struct Cluster {
    /// Held for their daemons and region directories, which end with them.
    _nodes: Vec<Node>,
    dcs: Vec<Dc>,
    controllers: Vec<Proc>,
}

impl Cluster {
    fn new() -> Cluster {
        let nodes = cluster(2);
        let dcs = nodes
            .iter()
            .map(|n| {
                // SAFETY: this test binary runs one test (`run` below) and starts no thread
                // before this; `Dc::open` reads the directory once and keeps its mapping.
                unsafe { std::env::set_var("M3IPC_SHM_DIR", &n.dir) };
                Dc::open(DC).unwrap()
            })
            .collect::<Vec<_>>();
        let controllers = (0..2)
            .map(|n| dcs[n].bind_named(CONTROLLERS[n], "ctl").unwrap())
            .collect();
        Cluster {
            _nodes: nodes,
            dcs,
            controllers,
        }
    }
}

struct Harness<'c> {
    c: &'c Cluster,
    workers: Vec<Worker>,
    results: mpsc::Receiver<(usize, Outcome)>,
    /// The endpoint of each model endpoint in this case (its generation grows case by case).
    eps: [Endpoint; N],
}

impl<'c> Harness<'c> {
    /// Bind the endpoints (each on its node) and wait until the other node mirrors them.
    fn new(c: &'c Cluster) -> Result<Harness<'c>, TestCaseError> {
        let (out, results) = mpsc::channel();
        let mut eps = [0; N];
        let mut workers = Vec::new();
        for i in 0..N {
            let dc = &c.dcs[NODE_OF[i]];
            let deadline = Instant::now() + PATIENCE;
            // The last case's slot may still be closing.
            let p = loop {
                match dc.bind(EPS[i]) {
                    Ok(p) => break p,
                    Err(e) if Instant::now() > deadline => {
                        return Err(TestCaseError::fail(format!("bind {}: {e:?}", name(i))));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            };
            eps[i] = p.endpoint();
            let (cmds, rx) = mpsc::channel();
            let (tid_tx, tid_rx) = mpsc::channel();
            let out = out.clone();
            let handle = std::thread::spawn(move || {
                // SAFETY: gettid has no preconditions.
                let _ = tid_tx.send(unsafe { libc::gettid() });
                worker(p, i, rx, out)
            });
            workers.push(Worker {
                cmds,
                handle: Some(handle),
                tid: tid_rx.recv().expect("worker tid"),
            });
        }
        let h = Harness {
            c,
            workers,
            results,
            eps,
        };
        for i in 0..N {
            let far = &c.dcs[1 - NODE_OF[i]];
            h.wait_for(&format!("the mirror of {}", name(i)), || {
                far.getprocinfo(EPS[i]).is_ok_and(|info| {
                    info.endpoint == eps[i]
                        && info.state == SlotState::Bound
                        && info.node == Some(NODE_OF[i] as u32)
                })
            })?;
        }
        Ok(h)
    }

    fn wait_for(&self, what: &str, mut ok: impl FnMut() -> bool) -> Result<(), TestCaseError> {
        let deadline = Instant::now() + PATIENCE;
        while !ok() {
            if Instant::now() > deadline {
                return Err(TestCaseError::fail(format!(
                    "{what}: not within {PATIENCE:?}"
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    fn observe(&self, r: &Outcome) -> Expect {
        r.map(|o| {
            o.map(|m| Got {
                // The model names endpoints by nr (generation 0).
                source: self
                    .eps
                    .iter()
                    .position(|&e| e == m.m_source)
                    .map_or(m.m_source, |i| EPS[i]),
                m_type: m.m_type,
                tag: (!is_notify(m.m_type)).then_some(m.payload[0]),
            })
        })
    }

    fn command(&self, op: &Op, tag: u64, timeout: Timeout) -> Cmd {
        let e = &self.eps;
        match *op {
            Op::Send { to, .. } => Cmd::Send(e[to], outgoing(M_SEND, tag), timeout),
            Op::Sendrec { to, .. } => Cmd::Sendrec(e[to], outgoing(M_SENDREC, tag), timeout),
            Op::Senda { to, .. } => Cmd::Senda(e[to], outgoing(M_SENDA, tag)),
            Op::Notify { to, .. } => Cmd::Notify(e[to]),
            Op::Receive { src, .. } => Cmd::Receive(
                match src {
                    Src::Any => ANY,
                    Src::From(s) => e[s],
                },
                timeout,
            ),
            Op::Rcvrqst { .. } => Cmd::Rcvrqst(timeout),
            Op::Reply { to, .. } => Cmd::Reply(e[to], outgoing(M_REPLY, tag)),
            Op::Wakeup { to, .. } => Cmd::Wakeup(e[to]),
            Op::Answer { .. } => unreachable!("resolved before use"),
        }
    }

    /// Run one operation (if the model can check it across nodes) and check its results.
    fn run(&mut self, model: &mut Model, op: &Op, tag: u64) -> Result<(), TestCaseError> {
        let Some(op) = model.resolve(op).and_then(|op| adapt(model, op)) else {
            return Ok(());
        };
        let mut next = model.clone();
        let Some(plan) = next.apply(&op, tag) else {
            return Ok(()); // the issuer is blocked in an earlier call
        };
        if !checkable(model, &op, &plan) {
            return Ok(());
        }
        *model = next;
        record(&op, &plan);
        self.workers[plan.issuer]
            .cmds
            .send(self.command(&op, tag, plan.timeout))
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
            let got = self.observe(&r);
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

    /// Wait until both regions show every endpoint in the model's state: its own slot on its
    /// node, and its remote slot on the other node (busy only while a call of it crosses).
    fn settle(&self, model: &Model) -> Result<(), TestCaseError> {
        for i in 0..N {
            let home = NODE_OF[i];
            let far = 1 - home;
            let want = model.st[i];
            let e = &self.eps;
            // What the far node's remote slot of `i` does: (flags, peer) or idle.
            let mirror = match want {
                St::Sending { to } if cross(i, to) => Some((FLAG_SENDING, e[to])),
                St::AwaitReply { server } if cross(i, server) => Some((FLAG_RECEIVING, e[server])),
                _ => None,
            };
            let shown_home = || {
                let Ok(info) = self.c.dcs[home].getprocinfo(EPS[i]) else {
                    return false;
                };
                let sending = info.flags & FLAG_SENDING != 0;
                let receiving = info.flags & FLAG_RECEIVING != 0;
                match want {
                    St::Idle => !sending && !receiving,
                    // Held by this node's daemon until the far side answers.
                    St::Sending { to } if cross(i, to) => sending || receiving,
                    St::Sending { to } => sending && info.sendto == e[to],
                    St::AwaitReply { server } => !sending && receiving && info.getfrom == e[server],
                    St::Receiving { src, .. } => {
                        !sending
                            && receiving
                            && info.getfrom
                                == match src {
                                    Src::Any => ANY,
                                    Src::From(s) => e[s],
                                }
                    }
                }
            };
            // A call to a remote endpoint that is itself blocked in a call across nodes may
            // still be on its way: the message is queued, as the model has it, on this node.
            let held_here = |to: usize| {
                self.c.dcs[home].getprocinfo(EPS[to]).is_ok_and(|info| {
                    info.flags & (FLAG_SENDING | FLAG_RECEIVING) != 0
                        && matches!(model.st[to], St::Sending { .. } | St::AwaitReply { .. })
                })
            };
            let shown_far = || {
                if let St::Sending { to } = want
                    && cross(i, to)
                    && held_here(to)
                {
                    return true;
                }
                let Ok(info) = self.c.dcs[far].getprocinfo(EPS[i]) else {
                    return false;
                };
                let sending = info.flags & FLAG_SENDING != 0;
                let receiving = info.flags & FLAG_RECEIVING != 0;
                match mirror {
                    None => !sending && !receiving,
                    // (A `sendrec` shows receiving too while it sends.)
                    Some((FLAG_SENDING, peer)) => {
                        sending && info.sendto == peer && info.flags & FLAG_WAITING != 0
                    }
                    Some((_, peer)) => {
                        !sending
                            && receiving
                            && info.getfrom == peer
                            && info.flags & FLAG_WAITING != 0
                    }
                }
            };
            let asleep = || {
                want == St::Idle
                    || thread_state(std::process::id(), self.workers[i].tid) == Some('S')
            };
            let deadline = Instant::now() + PATIENCE;
            while !(shown_home() && shown_far() && asleep()) {
                self.nothing_unexpected(model)?;
                if Instant::now() > deadline {
                    let info = |n: usize| self.c.dcs[n].getprocinfo(EPS[i]).ok();
                    return Err(TestCaseError::fail(format!(
                        "endpoint {} never showed {want:?}: here {:?}, on the other node {:?}",
                        name(i),
                        info(home),
                        info(far)
                    )));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        self.nothing_unexpected(model)
    }

    fn nothing_unexpected(&self, model: &Model) -> Result<(), TestCaseError> {
        if let Ok((w, r)) = self.results.try_recv() {
            return Err(TestCaseError::fail(format!(
                "endpoint {} returned {:?} unexpectedly (model: {:?})",
                name(w),
                self.observe(&r),
                model.st[w]
            )));
        }
        Ok(())
    }

    /// Make every worker exit (see `ipc/tests/model.rs`); returns whether all did.
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
            for &i in &alive {
                let _ = self.c.controllers[NODE_OF[i]].wakeup(self.eps[i]);
            }
            while self.results.try_recv().is_ok() {}
            std::thread::sleep(Duration::from_millis(1));
        }
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
        true
    }
}

impl Drop for Harness<'_> {
    fn drop(&mut self) {
        if self.workers.iter().any(|w| w.handle.is_some()) {
            self.shut_down();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Coverage: which outcomes the sequences reached across nodes.

static COVERAGE: std::sync::Mutex<BTreeMap<String, usize>> = std::sync::Mutex::new(BTreeMap::new());

fn record(op: &Op, plan: &Plan) {
    let across = target(op).is_some_and(|t| cross(plan.issuer, t))
        || plan.others.iter().any(|&(w, _)| cross(plan.issuer, w));
    let what = match &plan.result {
        None => "blocks".to_string(),
        Some(Ok(None)) => "ok".to_string(),
        Some(Ok(Some(g))) if g.tag.is_none() => "notification".to_string(),
        Some(Ok(Some(g))) => {
            let from = EPS
                .iter()
                .position(|&e| e == g.source)
                .unwrap_or(plan.issuer);
            if cross(plan.issuer, from) {
                "message from the other node".to_string()
            } else {
                "message".to_string()
            }
        }
        Some(Err(e)) => e.name().to_string(),
    };
    let key = format!(
        "{}{} -> {what}",
        op.name(),
        if across { " across" } else { "" }
    );
    let mut c = COVERAGE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(note) = plan.note {
        *c.entry(format!("{key} ({note})")).or_default() += 1;
    }
    *c.entry(key).or_default() += 1;
}

fn run_case(c: &Cluster, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(c)?;
    let mut model = Model::new();
    for (n, op) in ops.iter().enumerate() {
        h.run(&mut model, op, 1000 + n as u64)?;
    }
    prop_assert!(h.shut_down(), "workers did not exit: model {:?}", model);
    Ok(())
}

#[test]
fn random_operations_across_two_nodes_agree_with_the_model() {
    let cases = match std::env::var_os("PROPTEST_CASES") {
        Some(_) => Config::default().cases,
        None => 300,
    };
    let config = Config {
        cases,
        max_shrink_time: 60_000,
        failure_persistence: None,
        ..Config::default()
    };
    let c = Cluster::new();
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let r = runner.run(&ops(), |ops| run_case(&c, &ops));
    if let Err(e) = r {
        panic!("{e}");
    }
    let cov = COVERAGE.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!("two-node model: {:?}, outcomes reached:", started.elapsed());
    for (k, n) in cov.iter() {
        eprintln!("  {n:6}  {k}");
    }
    for must in [
        "send across -> blocks",
        "send across -> ok",
        "sendrec across -> blocks",
        "senda across -> ok",
        "notify across -> ok",
        "reply across -> ok",
        "send across -> ok (as the reply)",
        "receive(ANY) across -> message from the other node",
        "receive(src) across -> message from the other node",
    ] {
        assert!(
            cov.get(must).is_some_and(|&n| n > 0),
            "no case reached {must:?}"
        );
    }
}
