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

/// A system endpoint outside the model, used only to wake workers at teardown.
const CONTROLLER: i32 = 5;
/// How long the harness waits for a predicted result or state before failing.
const PATIENCE: Duration = Duration::from_secs(2);

include!("model_ref/reference.rs");

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
