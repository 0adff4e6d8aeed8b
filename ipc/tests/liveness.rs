//! Acceptance point 5 (docs/ARCHITECTURE.md sections 5 and 9): kill tests.
//!
//! A peer is SIGKILLed while blocked in `send`, in `receive`, in `sendrec` as client and as
//! server, and while holding queued messages. Every survivor (a child process blocked on the
//! victim) must get the documented error within 100 ms of the SIGKILL:
//!
//! - a sender blocked on a dead destination: `EDVSDSTDIED`;
//! - a `sendrec` client whose server died (before or after it took the request): `EDVSDEADSRCDST`;
//! - a `receive(src)` from a dead source: `EDVSSRCDIED`.
//!
//! Each scenario runs twice: with the victim killed and reaped (`Worker::kill`), and killed but
//! left a zombie (never waited for while the survivors decide), which must count as dead too.
//! Survivors time their error with `CLOCK_MONOTONIC` (system-wide, so comparable with the
//! parent's timestamp of the kill) and report it through `support::say`.
//!
//! After each kill: the dead PID owns no slot, a message the victim had queued is withdrawn,
//! the victim's `nr` binds again at once at a new generation, and every survivor completes a
//! fresh round trip with the new binder through its own (unchanged) slot. Finally nothing is
//! left bound.
//!
//! A seeded randomized test kills one side of a sendrec/send stream at a random moment and checks
//! that the survivor never hangs and gets only success or a documented error, in time.
// Child roles run outside `#[test]` functions, where a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::endpoint;
use m3ipc::{ANY, Dc, Endpoint, Errno, FLAG_RECEIVING, FLAG_SENDING, Message, Proc, Timeout};
use std::time::{Duration, Instant};
use support::{Rng, TestDc, Worker, child_entry, eventually, say, spawn};

/// The liveness bound of docs/ARCHITECTURE.md section 5.
const LIMIT: Duration = Duration::from_millis(100);
/// Blocked calls wait this long at most: far beyond the bound, but never forever.
const LONG: Timeout = Timeout::Millis(20_000);
/// Message types.
const T_SEND: i32 = 1;
const T_SENDREC: i32 = 2;
const T_REPLY: i32 = 3;
/// Slot numbers: system processes below 30, users from 30 (the default DC has 64 system slots
/// counted from task -34).
const VICTIM_SERVER: i32 = 1;
const TEE: i32 = 20;
const USER: i32 = 100;

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn outcome(r: Result<(), Errno>) -> String {
    match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    }
}

/// Keep a victim alive (bound, doing nothing) until it is killed; bounded all the same.
fn hold() {
    std::thread::sleep(Duration::from_secs(60));
}

fn run_role(role: &str, dc: &str, args: &[String]) {
    let dc = Dc::open(dc).unwrap();
    let arg = |i: usize| -> i32 { args[i].parse().unwrap() };
    match role {
        // Bind and do nothing.
        "idle" => {
            let p = dc.bind(arg(0)).unwrap();
            say(&format!("bound {}", p.endpoint()));
            hold();
        }
        // A server that takes `n` requests without answering, then (optionally) blocks in a
        // sendrec of its own to `args[2]`.
        "take" => {
            let p = dc.bind(arg(0)).unwrap();
            say(&format!("bound {}", p.endpoint()));
            for _ in 0..arg(1) {
                let mut m = Message::default();
                p.receive(ANY, &mut m, LONG).unwrap();
                say(&format!("took {}", m.m_source));
            }
            if args.len() > 2 {
                let mut m = Message::new(T_SENDREC);
                let _ = p.sendrec(arg(2), &mut m, LONG);
            }
            hold();
        }
        // A client blocked in sendrec to `args[1]`, which never receives.
        "client" => {
            let p = dc.bind(arg(0)).unwrap();
            say(&format!("bound {}", p.endpoint()));
            let mut m = Message::new(T_SENDREC);
            let _ = p.sendrec(arg(1), &mut m, LONG);
            hold();
        }
        "survivor" => survivor(&dc, &args[0], arg(1), arg(2)),
        "stream" => stream(&dc, args),
        "serve" => serve(&dc, arg(0)),
        _ => panic!("unknown role {role}"),
    }
}

/// One call of kind `op` with `peer`; a `receive` answers a `sendrec` it gets.
fn call(p: &Proc, op: &str, peer: Endpoint, timeout: Timeout) -> Result<(), Errno> {
    match op {
        "send" => p.send(peer, &Message::new(T_SEND), timeout),
        "sendrec" => {
            let mut m = Message::new(T_SENDREC);
            p.sendrec(peer, &mut m, timeout)?;
            assert_eq!(m.m_type, T_REPLY);
            assert_eq!(m.m_source, peer);
            Ok(())
        }
        "receive" => {
            let mut m = Message::default();
            p.receive(peer, &mut m, timeout)?;
            assert_eq!(m.m_source, peer);
            if m.m_type == T_SENDREC {
                p.reply(m.m_source, &Message::new(T_REPLY))?;
            }
            Ok(())
        }
        _ => panic!("unknown op {op}"),
    }
}

/// Block in `op` on `peer`, report the outcome and when it came; then wait for `peer`'s slot
/// to be bound again at a new generation and do a fresh round trip with the new binder.
fn survivor(dc: &Dc, op: &str, nr: i32, peer: Endpoint) {
    let p = dc.bind(nr).unwrap();
    say(&format!("bound {}", p.endpoint()));
    let r = call(&p, op, peer, LONG);
    let t = mono_ns();
    say(&format!("result {} {t}", outcome(r)));
    let deadline = Instant::now() + Duration::from_secs(20);
    let fresh = loop {
        if let Ok(ep) = dc.wait4bind(peer, Timeout::Millis(500))
            && ep != peer
        {
            break ep;
        }
        assert!(Instant::now() < deadline, "{peer} never bound again");
        std::thread::sleep(Duration::from_millis(1));
    };
    say(&format!("again {}", outcome(call(&p, op, fresh, LONG))));
}

/// What a survivor is blocked in, as `getprocinfo` shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Blocked {
    /// `send`, not yet received.
    Send,
    /// `sendrec`, request not yet received.
    SendrecPending,
    /// `sendrec`, request received, waiting for the reply.
    SendrecAwaiting,
    /// `receive(src)`.
    Receive,
}

impl Blocked {
    fn op(self) -> &'static str {
        match self {
            Blocked::Send => "send",
            Blocked::SendrecPending | Blocked::SendrecAwaiting => "sendrec",
            Blocked::Receive => "receive",
        }
    }

    /// Whether slot `nr` is blocked this way on `peer`.
    fn holds(self, dc: &Dc, nr: i32, peer: Endpoint) -> bool {
        let Ok(i) = dc.getprocinfo(nr) else {
            return false;
        };
        let s = i.flags & FLAG_SENDING != 0;
        let r = i.flags & FLAG_RECEIVING != 0;
        match self {
            Blocked::Send => s && !r && i.sendto == peer,
            Blocked::SendrecPending => s && r && i.sendto == peer,
            Blocked::SendrecAwaiting => !s && r && i.getfrom == peer,
            Blocked::Receive => !s && r && i.getfrom == peer,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Surv {
    nr: i32,
    blocked: Blocked,
    expect: Errno,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Victim {
    /// Bound, doing nothing (a destination that never receives, a source that never sends).
    Idle,
    /// A server that took the requests of `first` and does nothing more.
    Take,
    /// A server that took the requests of `first`, then blocked in sendrec to the tee.
    TakeThenSendrec,
    /// A client blocked in sendrec to the tee.
    Client,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kill {
    /// SIGKILL and wait: the PID is gone.
    Reaped,
    /// SIGKILL only: the victim stays a zombie while the survivors decide.
    Zombie,
}

struct Plan {
    name: &'static str,
    victim: Victim,
    victim_nr: i32,
    /// Survivors whose requests the victim takes before blocking (in this order).
    first: Vec<Surv>,
    /// Survivors that block on the victim afterwards.
    rest: Vec<Surv>,
}

fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..].trim_start().chars().next()
}

fn parse_bound(w: &mut Worker) -> Endpoint {
    let l = w.line(Duration::from_secs(20));
    l.strip_prefix("bound ")
        .unwrap_or_else(|| panic!("expected bound, got {l:?}"))
        .parse()
        .unwrap()
}

/// Run one kill scenario; returns the survivors' detection latencies.
fn scenario(plan: &Plan, kill: Kill) -> Vec<Duration> {
    let t = TestDc::new('l');
    let dc = &t.dc;
    let me = std::process::id();
    let tee = matches!(plan.victim, Victim::TakeThenSendrec | Victim::Client)
        .then(|| dc.bind(TEE).unwrap());
    let tee_ep = tee.as_ref().map(|p| p.endpoint().to_string());
    let nr = plan.victim_nr.to_string();
    let n_first = plan.first.len().to_string();
    let vargs: Vec<&str> = match plan.victim {
        Victim::Idle => vec![&nr],
        Victim::Take => vec![&nr, &n_first],
        Victim::TakeThenSendrec => vec![&nr, &n_first, tee_ep.as_deref().unwrap()],
        Victim::Client => vec![&nr, tee_ep.as_deref().unwrap()],
    };
    let role = match plan.victim {
        Victim::Idle => "idle",
        Victim::Take | Victim::TakeThenSendrec => "take",
        Victim::Client => "client",
    };
    let mut victim = spawn(role, &t.name, &vargs);
    let victim_pid = victim.child.id();
    let victim_ep = parse_bound(&mut victim);

    let mut survivors: Vec<(Surv, Worker, Endpoint)> = Vec::new();
    let start = |s: &Surv| {
        let mut w = spawn(
            "survivor",
            &t.name,
            &[s.blocked.op(), &s.nr.to_string(), &victim_ep.to_string()],
        );
        let ep = parse_bound(&mut w);
        (*s, w, ep)
    };
    for s in &plan.first {
        survivors.push(start(s));
        let l = victim.line(Duration::from_secs(20));
        assert!(l.starts_with("took "), "victim said {l:?}");
    }
    for s in &plan.rest {
        survivors.push(start(s));
    }
    if let Some(tee) = &tee {
        let tee_ep = tee.endpoint();
        eventually(Duration::from_secs(20), "victim blocked on the tee", || {
            Blocked::SendrecPending.holds(dc, plan.victim_nr, tee_ep)
        });
    }
    for (s, _, _) in &survivors {
        eventually(Duration::from_secs(20), &format!("{s:?} blocked"), || {
            s.blocked.holds(dc, s.nr, victim_ep)
        });
    }
    // Let everyone fall asleep in the futex: the slow path is the one under test.
    std::thread::sleep(Duration::from_millis(50));

    let killed_at = mono_ns();
    match kill {
        Kill::Reaped => victim.kill(),
        Kill::Zombie => {
            // SAFETY: kill(2) on our own child's PID, which is not reaped yet, so not reused.
            assert_eq!(unsafe { libc::kill(victim_pid as i32, libc::SIGKILL) }, 0);
        }
    }

    let mut latencies = Vec::new();
    for (s, w, _) in &mut survivors {
        let l = w.line(Duration::from_secs(30));
        let mut f = l.split_whitespace();
        assert_eq!(f.next(), Some("result"), "survivor said {l:?}");
        let err = f.next().unwrap();
        let at: u64 = f.next().unwrap().parse().unwrap();
        let lat = Duration::from_nanos(at.saturating_sub(killed_at));
        eprintln!(
            "[liveness] {} ({kill:?}): survivor nr {} in {:?} got {err} after {lat:?}",
            plan.name, s.nr, s.blocked
        );
        assert_eq!(
            err,
            format!("{:?}", s.expect),
            "{} survivor {s:?}",
            plan.name
        );
        latencies.push(lat);
    }
    for (lat, (s, _, _)) in latencies.iter().zip(&survivors) {
        assert!(
            *lat < LIMIT,
            "{} ({kill:?}): survivor {s:?} noticed the death after {lat:?}",
            plan.name
        );
    }
    if kill == Kill::Zombie {
        // The test tested what it claims: the victim is still an unreaped zombie.
        assert_eq!(proc_state(victim_pid), Some('Z'));
    }

    // Nothing of the dead process is left: no slot, no queued message.
    assert!(
        dc.procs().iter().all(|p| p.pid != victim_pid),
        "a slot still names the dead PID: {:?}",
        dc.procs()
    );
    if let Some(tee) = &tee {
        let mut m = Message::default();
        assert_eq!(
            tee.receive(ANY, &mut m, Timeout::NoWait),
            Err(Errno::EDVSAGAIN),
            "the dead victim's queued request was delivered: {m:?}"
        );
    }

    // A new process binds the victim's nr at once, at a new generation.
    let fresh = dc.bind(plan.victim_nr).unwrap();
    assert_ne!(fresh.endpoint(), victim_ep);
    assert_eq!(endpoint::nr(fresh.endpoint()), plan.victim_nr);
    assert_ne!(
        endpoint::generation(fresh.endpoint()),
        endpoint::generation(victim_ep)
    );
    let info = dc.getprocinfo(plan.victim_nr).unwrap();
    assert_eq!(info.pid, me);
    assert_eq!(info.flags, 0, "state left over from the dead binding");

    // Every survivor's own slot is intact and usable: a fresh round trip with the new binder.
    for (s, w, ep) in &survivors {
        let i = dc.getprocinfo(s.nr).unwrap();
        assert_eq!((i.endpoint, i.pid), (*ep, w.child.id()));
    }
    for (s, _, ep) in &survivors {
        if s.blocked == Blocked::Receive {
            let mut m = Message::new(T_SENDREC);
            fresh.sendrec(*ep, &mut m, LONG).unwrap();
            assert_eq!(m.m_type, T_REPLY);
        }
    }
    let senders = survivors
        .iter()
        .filter(|(s, _, _)| s.blocked != Blocked::Receive)
        .count();
    for _ in 0..senders {
        let mut m = Message::default();
        fresh.receive(ANY, &mut m, LONG).unwrap();
        if m.m_type == T_SENDREC {
            fresh.reply(m.m_source, &Message::new(T_REPLY)).unwrap();
        }
    }
    for (_, mut w, _) in survivors {
        w.expect("again ok");
        w.finish();
    }
    drop(fresh);
    drop(tee);
    assert_eq!(dc.procs(), vec![], "slots left bound");
    assert_eq!(dc.info().bound, 0);
    drop(victim);
    latencies
}

fn surv(nr: i32, blocked: Blocked, expect: Errno) -> Surv {
    Surv {
        nr,
        blocked,
        expect,
    }
}

fn both(plan: Plan) {
    scenario(&plan, Kill::Reaped);
    scenario(&plan, Kill::Zombie);
}

#[test]
fn child_main() {
    child_entry(run_role);
}

#[test]
fn killed_destination_fails_blocked_send() {
    both(Plan {
        name: "send",
        victim: Victim::Idle,
        victim_nr: VICTIM_SERVER,
        first: vec![],
        rest: vec![surv(2, Blocked::Send, Errno::EDVSDSTDIED)],
    });
}

#[test]
fn killed_source_fails_blocked_receive() {
    both(Plan {
        name: "receive",
        victim: Victim::Idle,
        victim_nr: VICTIM_SERVER,
        first: vec![],
        rest: vec![surv(2, Blocked::Receive, Errno::EDVSSRCDIED)],
    });
}

#[test]
fn killed_server_fails_sendrec_before_it_received() {
    both(Plan {
        name: "sendrec-pending",
        victim: Victim::Idle,
        victim_nr: VICTIM_SERVER,
        first: vec![],
        rest: vec![surv(USER, Blocked::SendrecPending, Errno::EDVSDEADSRCDST)],
    });
}

#[test]
fn killed_server_fails_sendrec_it_holds() {
    both(Plan {
        name: "sendrec-held",
        victim: Victim::Take,
        victim_nr: VICTIM_SERVER,
        first: vec![surv(USER, Blocked::SendrecAwaiting, Errno::EDVSDEADSRCDST)],
        rest: vec![],
    });
}

/// The victim is a client blocked in sendrec (to the tee, which never receives); the survivor
/// is a server receiving from it. The tee must not get the dead client's request afterwards.
#[test]
fn killed_sendrec_client_fails_server_receiving_from_it() {
    both(Plan {
        name: "client-in-sendrec",
        victim: Victim::Client,
        victim_nr: USER,
        first: vec![],
        rest: vec![surv(2, Blocked::Receive, Errno::EDVSSRCDIED)],
    });
}

/// The victim is a server blocked in a sendrec of its own (to the tee) while it holds one
/// client's request and has two more callers queued.
#[test]
fn killed_server_in_sendrec_fails_all_its_callers() {
    both(Plan {
        name: "server-in-sendrec",
        victim: Victim::TakeThenSendrec,
        victim_nr: VICTIM_SERVER,
        first: vec![surv(USER, Blocked::SendrecAwaiting, Errno::EDVSDEADSRCDST)],
        rest: vec![
            surv(USER + 1, Blocked::SendrecPending, Errno::EDVSDEADSRCDST),
            surv(2, Blocked::Send, Errno::EDVSDSTDIED),
        ],
    });
}

/// The victim holds a queue of senders: every one of them is failed.
#[test]
fn killed_destination_fails_every_queued_sender() {
    both(Plan {
        name: "queued",
        victim: Victim::Idle,
        victim_nr: VICTIM_SERVER,
        first: vec![],
        rest: vec![
            surv(2, Blocked::Send, Errno::EDVSDSTDIED),
            surv(USER, Blocked::SendrecPending, Errno::EDVSDEADSRCDST),
            surv(3, Blocked::Send, Errno::EDVSDSTDIED),
            surv(USER + 1, Blocked::SendrecPending, Errno::EDVSDEADSRCDST),
            surv(4, Blocked::Send, Errno::EDVSDSTDIED),
            surv(USER + 2, Blocked::SendrecPending, Errno::EDVSDEADSRCDST),
        ],
    });
}

/// A restarted process binds the dead one's nr at once, at a new generation; a zombie counts as
/// dead as soon as it is one.
#[test]
fn restarted_process_binds_at_once() {
    let t = TestDc::new('r');
    for kill in [Kill::Reaped, Kill::Zombie] {
        let mut victim = spawn("idle", &t.name, &["5"]);
        let pid = victim.child.id();
        let old = parse_bound(&mut victim);
        match kill {
            Kill::Reaped => victim.kill(),
            Kill::Zombie => {
                // SAFETY: kill(2) on our own unreaped child.
                assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
                eventually(Duration::from_secs(5), "zombie", || {
                    proc_state(pid) == Some('Z')
                });
            }
        }
        // The slot still names the dead PID until someone looks: the new process's bind does.
        let mut again = spawn("idle", &t.name, &["5"]);
        let new = parse_bound(&mut again);
        assert_ne!(new, old);
        assert_eq!(endpoint::nr(new), 5);
        let i = t.dc.getprocinfo(5).unwrap();
        assert_eq!((i.pid, i.endpoint), (again.child.id(), new));
        assert!(t.dc.procs().iter().all(|p| p.pid != pid));
        if kill == Kill::Zombie {
            assert_eq!(proc_state(pid), Some('Z'));
        }
        again.kill();
        drop(victim);
        // Reaping is also done by `reap_dead`, without binding.
        eventually(Duration::from_secs(5), "reaped", || {
            t.dc.reap_dead();
            t.dc.procs().is_empty()
        });
    }
}

const STREAM_TIMEOUT: Timeout = Timeout::Millis(2_000);
const STREAM_SERVER: i32 = 7;
const STREAM_CLIENT: i32 = 8;

/// Client of the random test: `count` calls, send or sendrec at random, to the server.
fn stream(dc: &Dc, args: &[String]) {
    let server: Endpoint = args[0].parse().unwrap();
    let mut rng = Rng(args[1].parse().unwrap());
    let count: u64 = args[2].parse().unwrap();
    let p = dc.bind(STREAM_CLIENT).unwrap();
    say(&format!("bound {}", p.endpoint()));
    for i in 0..count {
        let op = if rng.below(2) == 0 { "send" } else { "sendrec" };
        let began = Instant::now();
        let r = call(&p, op, server, STREAM_TIMEOUT);
        let t = mono_ns();
        assert!(began.elapsed() < Duration::from_millis(2_000) + Duration::from_secs(2));
        if i == 0 {
            say("streaming");
        }
        if let Err(e) = r {
            say(&format!("end {e:?} {t} {i}"));
            return;
        }
    }
    say(&format!("end complete 0 {count}"));
}

/// Server of the random test: answer the client until an error.
fn serve(dc: &Dc, nr: i32) {
    let p = dc.bind(nr).unwrap();
    say(&format!("bound {}", p.endpoint()));
    let mut from = ANY;
    let mut n = 0u64;
    loop {
        let mut m = Message::default();
        let began = Instant::now();
        let mut r = p.receive(from, &mut m, STREAM_TIMEOUT);
        if r.is_ok() {
            from = m.m_source;
            n += 1;
            if m.m_type == T_SENDREC {
                r = p.reply(m.m_source, &Message::new(T_REPLY));
            }
        }
        let t = mono_ns();
        assert!(began.elapsed() < Duration::from_millis(2_000) + Duration::from_secs(2));
        if let Err(e) = r {
            say(&format!("end {e:?} {t} {n}"));
            return;
        }
    }
}

/// Kill the server or the client of a send/sendrec stream at a random moment (20 iterations;
/// the seed is `$M3_SEED`, else a fixed one, and is printed with every failure).
#[test]
fn random_kills_during_traffic() {
    let seed: u64 = std::env::var("M3_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd);
    let mut rng = Rng(seed | 1);
    let t = TestDc::new('k');
    let dc = &t.dc;
    let mut worst = Duration::ZERO;
    for iter in 0..20 {
        let kill_server = rng.below(2) == 0;
        let kill = if rng.below(2) == 0 {
            Kill::Reaped
        } else {
            Kill::Zombie
        };
        let delay = Duration::from_micros(rng.below(30_000));
        let count = 1 + rng.below(20_000);
        let mut server = spawn("serve", &t.name, &[&STREAM_SERVER.to_string()]);
        let server_ep = parse_bound(&mut server);
        let mut client = spawn(
            "stream",
            &t.name,
            &[
                &server_ep.to_string(),
                &(rng.next() | 1).to_string(),
                &count.to_string(),
            ],
        );
        let client_ep = parse_bound(&mut client);
        assert_eq!(client.line(Duration::from_secs(20)), "streaming");
        std::thread::sleep(delay);
        let (mut victim, mut survivor, victim_nr, victim_ep) = if kill_server {
            (server, client, STREAM_SERVER, server_ep)
        } else {
            (client, server, STREAM_CLIENT, client_ep)
        };
        let victim_pid = victim.child.id();
        let killed_at = mono_ns();
        match kill {
            Kill::Reaped => victim.kill(),
            Kill::Zombie => {
                // SAFETY: kill(2) on our own unreaped child.
                assert_eq!(unsafe { libc::kill(victim_pid as i32, libc::SIGKILL) }, 0);
            }
        }
        let l = survivor.line(Duration::from_secs(10));
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f.first(), Some(&"end"), "survivor said {l:?}");
        let what = format!(
            "iteration {iter} (seed {seed}): killed {} ({kill:?}) after {delay:?}: {l}",
            if kill_server { "server" } else { "client" }
        );
        // Did the client finish its stream (and unbind) before the kill? Then this iteration
        // killed nothing that mattered; the server saw a normal unbind.
        let mut client_done = false;
        if !kill_server {
            while let Some(v) = victim.try_line(Duration::from_millis(200)) {
                client_done |= v.starts_with("end complete");
            }
        }
        let allowed: &[&str] = if kill_server {
            &["complete", "EDVSDSTDIED", "EDVSDEADSRCDST"]
        } else if client_done {
            // Unbound while the server waited for it, or before its next call (stale endpoint).
            &["EDVSSRCDIED", "EDVSENDPOINT"]
        } else {
            // The server receives from the client it knows, or replies to it (a reply to a
            // client that is already released is EDVSDSTDIED).
            &["EDVSSRCDIED", "EDVSDSTDIED"]
        };
        assert!(allowed.contains(&f[1]), "{what}");
        if f[1] != "complete" && !client_done {
            let at: u64 = f[2].parse().unwrap();
            let lat = Duration::from_nanos(at.saturating_sub(killed_at));
            eprintln!("[liveness] random {what}: after {lat:?}");
            assert!(lat < LIMIT, "{what}: noticed after {lat:?}");
            worst = worst.max(lat);
        } else {
            eprintln!("[liveness] random {what}: stream had ended before the kill");
        }
        survivor.finish();
        // The dead process holds nothing; its nr binds again at a new generation.
        let again = dc.bind(victim_nr).unwrap();
        assert_ne!(again.endpoint(), victim_ep);
        assert!(dc.procs().iter().all(|p| p.pid != victim_pid));
        drop(again);
        assert_eq!(dc.procs(), vec![], "{what}: slots left bound");
        drop(victim);
    }
    eprintln!("[liveness] random: worst detection latency {worst:?}");
}
