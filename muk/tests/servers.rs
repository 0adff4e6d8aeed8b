//! Every server's behaviour under both runners: one suite, each test run as MUK2 (coroutines)
//! and as MUK (threads).
//!
//! Each test makes its own DC, hosts SYSTASK, PM and echo at their well-known slots, and talks to
//! them from outside: from child processes (re-executions of this binary in a role) bound as user
//! endpoints, and from the test process's own slots. It checks exact replies and errors, that a
//! malformed request gets an error reply and the server keeps serving, that a client SIGKILLed
//! mid-request leaves the servers healthy (and PM forgets it), the runners' timers, and bind on
//! behalf end to end. At the end the host stops and every server must have ended with `Ok`.
//!
//! `under_both_runners!(name, ...)` turns `fn name(runner: Runner)` into the tests
//! `name::coroutines` and `name::threads`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::{
    ANY, Dc, Endpoint, Errno, FLAG_RECEIVING, FLAG_SENDING, Message, NONE, Proc, SlotState,
    Timeout, endpoint,
};
use muk::protocol::*;
use muk::{Runner, ServerKind};
use std::time::{Duration, Instant};
use support::{TestDc, child_entry, eventually, say, spawn, start, stop};

/// Every request waits this long at most: far beyond any expected answer, never forever.
const T: Timeout = Timeout::Millis(20_000);
const SYSTASK: i32 = -2;
const PM: i32 = 0;
const ECHO: i32 = 20;
/// A system slot the test process binds for itself (the default DC has system slots up to 29).
const SYS_SLOT: i32 = 25;
/// A slot number outside the default DC's table (nr_procs 221).
const OUT_OF_TABLE: i32 = 5000;
/// The servers this file tests (the storage servers have their own, `storage.rs`).
const ALL: [ServerKind; 3] = [ServerKind::Systask, ServerKind::Pm, ServerKind::Echo];

macro_rules! under_both_runners {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn coroutines() {
                    super::$name(muk::Runner::Coroutines)
                }
                #[test]
                fn threads() {
                    super::$name(muk::Runner::Threads)
                }
            }
        )*
    };
}

under_both_runners!(
    echo_requests,
    pm_requests,
    systask_requests,
    bind_on_behalf,
    killed_client,
    timeout_probe,
    probe_source_dies,
    notifications_and_forged_types,
    vcopy_by_systask,
);

#[test]
fn child_main() {
    child_entry(run_role);
}

fn ep_of(dc: &Dc, nr: i32) -> Endpoint {
    server_endpoint(dc, nr).unwrap()
}

/// A raw request whose reply must be the error `want`.
fn expect_err(p: &Proc, server: Endpoint, mut m: Message, want: Errno) {
    let ty = m.m_type;
    let got = call(p, server, &mut m, T);
    assert_eq!(got, Err(want), "request type {ty:#x} to {server}");
    // An error reply carries nothing else.
    assert_eq!(m.m_type, want.code());
    assert_eq!(m.payload, [0; 7]);
    assert_eq!(m.m_source, server);
}

fn with_m1(m_type: i32, i1: i32) -> Message {
    let mut m = Message::new(m_type);
    m.m1_mut().m1i1 = i1;
    m
}

fn with_m3(m_type: i32, i1: i32, i2: i32, name: &[u8]) -> Message {
    let mut m = Message::new(m_type);
    let v = m.m3_mut();
    v.m3i1 = i1;
    v.m3i2 = i2;
    v.m3ca1[..name.len()].copy_from_slice(name);
    m
}

fn run_role(role: &str, dc: &str, args: &[String]) {
    let dc = Dc::open(dc).unwrap();
    let arg = |i: usize| -> i32 { args[i].parse().unwrap() };
    match role {
        "echo" => echo_client(&dc, arg(0)),
        "pm" => pm_client(&dc, arg(0), arg(1)),
        "systask" => systask_client(&dc, arg(0)),
        "bindself" => bindself_client(&dc, arg(0), arg(1)),
        // Register with PM, then sit in a slow echo request until killed.
        "victim" => {
            let p = dc.bind_named(arg(0), "victim").unwrap();
            pm_register(&p, ep_of(&dc, PM), 0, "victim", T).unwrap();
            say(&format!("registered {}", p.endpoint()));
            let _ = echo_slow(&p, ep_of(&dc, ECHO), arg(1), T);
            std::thread::sleep(Duration::from_secs(60));
        }
        // Offer a 64 KiB buffer to SYSTASK for writing, sit in a slow echo request (blocked in
        // a receive, as vcopy requires) and report the buffer's checksum afterwards.
        "vcopy-sink" => {
            let p = dc.bind_named(arg(0), "sink").unwrap();
            let h = p.alloc_buffer(64 * 1024).unwrap();
            p.buffer(h).unwrap().fill(0, 64 * 1024, 0).unwrap();
            let g = p
                .grant(h, ep_of(&dc, SYSTASK), 0, 64 * 1024, m3ipc::Access::WRITE)
                .unwrap();
            say(&format!("ready {} {}", p.endpoint(), g.0));
            echo_slow(&p, ep_of(&dc, ECHO), arg(1), T).unwrap();
            let sum = p.buffer(h).unwrap().checksum(0, 64 * 1024).unwrap();
            say(&format!("sum {sum}"));
        }
        // Hold a slot, doing nothing, until killed.
        "idle" => {
            let p = dc.bind_named(arg(0), "idle").unwrap();
            say(&format!("bound {}", p.endpoint()));
            std::thread::sleep(Duration::from_secs(60));
        }
        // One round trip to each server.
        "ping" => {
            let p = dc.bind_named(arg(0), "ping").unwrap();
            let data = [9, 8, 7, 6, 5, 4, 3];
            assert_eq!(echo_ping(&p, ep_of(&dc, ECHO), data, T), Ok(data));
            pm_count(&p, ep_of(&dc, PM), T).unwrap();
            let me = systask_procinfo(&p, ep_of(&dc, SYSTASK), arg(0), T).unwrap();
            assert_eq!(me.pid, std::process::id());
            say("ok");
        }
        _ => panic!("unknown role {role}"),
    }
}

/// Every echo request, exact replies, and bad input.
fn echo_client(dc: &Dc, nr: i32) {
    let p = dc.bind_named(nr, "echo-client").unwrap();
    let echo = ep_of(dc, ECHO);
    for data in [[0; 7], [1, 2, 3, 4, 5, 6, 7], [u64::MAX; 7]] {
        assert_eq!(echo_ping(&p, echo, data, T), Ok(data));
    }
    // The whole reply: type OK, payload unchanged, stamped by the server.
    let mut m = Message::new(ECHO_ECHO);
    m.payload = [11, 22, 33, 44, 55, 66, 77];
    call(&p, echo, &mut m, T).unwrap();
    assert_eq!(m.m_type, OK);
    assert_eq!(m.m_source, echo);
    assert_eq!(m.payload, [11, 22, 33, 44, 55, 66, 77]);
    // SINK: an empty reply whatever came.
    let mut m = Message::new(ECHO_SINK);
    m.payload = [u64::MAX; 7];
    call(&p, echo, &mut m, T).unwrap();
    assert_eq!((m.m_type, m.payload), (OK, [0; 7]));
    assert_eq!(echo_sink(&p, echo, [5; 7], T), Ok(()));
    // SLOW: replies after the sleep.
    assert_eq!(echo_slow(&p, echo, 0, T), Ok(()));
    let t0 = Instant::now();
    assert_eq!(echo_slow(&p, echo, 30, T), Ok(()));
    assert!(
        t0.elapsed() >= Duration::from_millis(30),
        "{:?}",
        t0.elapsed()
    );
    // TIMEOUT_PROBE: times out (the timing itself is `timeout_probe`'s subject). The source is
    // a spare slot of ours that never sends.
    let silent = dc.bind_named(nr + 50, "silent").unwrap();
    let probe = echo_timeout_probe(&p, echo, 2, silent.endpoint(), T).unwrap();
    assert_eq!(probe.result, Err(Errno::EDVSTIMEDOUT));
    assert!(probe.elapsed >= Duration::from_millis(2), "{probe:?}");
    // From a slot nobody holds: the receive's own error, at once.
    let free = dc.getprocinfo(nr + 100).unwrap().endpoint;
    let probe = echo_timeout_probe(&p, echo, 5_000, free, T).unwrap();
    assert_eq!(probe.result, Err(Errno::EDVSSRCDIED));
    assert!(probe.elapsed < Duration::from_secs(1), "{probe:?}");
    // Bad input: each gets its error, then the server still answers.
    for m in [
        Message::new(0x0399),
        Message::new(OK),
        Message::new(-5),
        Message::new(i32::MAX),
        Message::new(SYS_PROCINFO),
    ] {
        expect_err(&p, echo, m, Errno::EDVSBADREQUEST);
        assert_eq!(echo_ping(&p, echo, [1; 7], T), Ok([1; 7]));
    }
    for (ty, ms) in [
        (ECHO_SLOW, -1),
        (ECHO_SLOW, MAX_WAIT_MS + 1),
        (ECHO_SLOW, i32::MIN),
        (ECHO_TIMEOUT_PROBE, 0),
        (ECHO_TIMEOUT_PROBE, -7),
        (ECHO_TIMEOUT_PROBE, i32::MAX),
    ] {
        let mut m = with_m1(ty, ms);
        m.m1_mut().m1i2 = silent.endpoint();
        expect_err(&p, echo, m, Errno::EDVSBADVALUE);
        assert_eq!(echo_sink(&p, echo, [2; 7], T), Ok(()));
    }
    for src in [ANY, NONE, m3ipc::HARDWARE, i32::MAX, i32::MIN] {
        let mut m = with_m1(ECHO_TIMEOUT_PROBE, 5);
        m.m1_mut().m1i2 = src;
        expect_err(&p, echo, m, Errno::EDVSENDPOINT);
        assert_eq!(echo_sink(&p, echo, [2; 7], T), Ok(()));
    }
    say("ok");
}

/// Every PM request, exact replies, bad input, and a client that goes away without EXIT.
fn pm_client(dc: &Dc, nr: i32, nr2: i32) {
    assert!(nr < nr2);
    let me = std::process::id();
    let p = dc.bind_named(nr, "pm-client").unwrap();
    let pm = ep_of(dc, PM);
    assert_eq!(pm_count(&p, pm, T), Ok(0));
    assert_eq!(pm_getpid(&p, pm, p.endpoint(), T), Err(Errno::EDVSSRCH));
    assert_eq!(pm_exit(&p, pm, T), Err(Errno::EDVSSRCH));

    assert_eq!(pm_register(&p, pm, 0, "alice", T), Ok(()));
    assert_eq!(pm_count(&p, pm, T), Ok(1));
    assert_eq!(pm_getpid(&p, pm, p.endpoint(), T), Ok(me));
    assert_eq!(pm_getep(&p, pm, me, T), Ok(p.endpoint()));
    // Registering again (with the PID spelt out) replaces the entry.
    assert_eq!(pm_register(&p, pm, me, "alice2", T), Ok(()));
    assert_eq!(pm_count(&p, pm, T), Ok(1));

    // A second endpoint of the same process.
    let q = dc.bind_named(nr2, "pm-client2").unwrap();
    assert_eq!(pm_register(&q, pm, 0, "bob", T), Ok(()));
    assert_eq!(pm_count(&p, pm, T), Ok(2));
    assert_eq!(pm_getpid(&p, pm, q.endpoint(), T), Ok(me));
    // GETEP of a PID with two endpoints: the lowest slot.
    assert_eq!(pm_getep(&q, pm, me, T), Ok(p.endpoint()));

    // Bad input, each followed by a good request.
    let parent = std::os::unix::process::parent_id();
    let bad = [
        // Someone else's PID, and PIDs that are none.
        (
            with_m3(PM_REGISTER, parent as i32, 0, b"x"),
            Errno::EDVSBADPID,
        ),
        (with_m3(PM_REGISTER, -3, 0, b"x"), Errno::EDVSBADPID),
        (with_m3(PM_REGISTER, 0, 0, &[b'a'; 40]), Errno::EDVSNAMESIZE),
        (with_m3(PM_REGISTER, 0, 0, &[b'a'; 16]), Errno::EDVSNAMESIZE),
        (
            with_m3(PM_REGISTER, 0, 0, &[0xff, 0xfe]),
            Errno::EDVSBADVALUE,
        ),
        // Endpoints: special, malformed, outside the table.
        (with_m1(PM_GETPID, ANY), Errno::EDVSENDPOINT),
        (with_m1(PM_GETPID, NONE), Errno::EDVSENDPOINT),
        (with_m1(PM_GETPID, i32::MAX), Errno::EDVSENDPOINT),
        (with_m1(PM_GETPID, i32::MIN), Errno::EDVSENDPOINT),
        (with_m1(PM_GETPID, OUT_OF_TABLE), Errno::EDVSRANGE),
        // Valid endpoints nobody registered: PM's own, a stale one of ours.
        (with_m1(PM_GETPID, pm), Errno::EDVSSRCH),
        (
            with_m1(
                PM_GETPID,
                endpoint::make(endpoint::generation(p.endpoint()) + 1, nr),
            ),
            Errno::EDVSSRCH,
        ),
        (with_m1(PM_GETEP, 0), Errno::EDVSBADPID),
        (with_m1(PM_GETEP, -1), Errno::EDVSBADPID),
        (with_m1(PM_GETEP, 1), Errno::EDVSSRCH),
        (Message::new(0x0299), Errno::EDVSBADREQUEST),
        (Message::new(ECHO_ECHO), Errno::EDVSBADREQUEST),
    ];
    for (m, want) in bad {
        expect_err(&p, pm, m, want);
        assert_eq!(pm_count(&p, pm, T), Ok(2));
    }
    // The failed registrations changed nothing.
    assert_eq!(pm_getpid(&p, pm, p.endpoint(), T), Ok(me));

    // EXIT.
    assert_eq!(pm_exit(&q, pm, T), Ok(()));
    assert_eq!(pm_exit(&q, pm, T), Err(Errno::EDVSSRCH));
    assert_eq!(pm_count(&q, pm, T), Ok(1));
    assert_eq!(pm_getpid(&q, pm, q.endpoint(), T), Err(Errno::EDVSSRCH));
    assert_eq!(pm_getep(&q, pm, me, T), Ok(p.endpoint()));

    // `p` unbinds without EXIT: PM's sweep drops it.
    drop(p);
    let t0 = Instant::now();
    eventually(
        Duration::from_secs(2),
        "PM to drop an unbound client",
        || pm_count(&q, pm, T) == Ok(0),
    );
    say(&format!("dropped in {:?}", t0.elapsed()));
    assert_eq!(pm_getep(&q, pm, me, T), Err(Errno::EDVSSRCH));
    say("ok");
}

/// Every SYSTASK request, exact replies, and bad input.
fn systask_client(dc: &Dc, nr: i32) {
    let me = std::process::id();
    let parent = std::os::unix::process::parent_id();
    let p = dc.bind_named(nr, "sys-client").unwrap();
    let sys = ep_of(dc, SYSTASK);
    let echo = ep_of(dc, ECHO);

    let mine = systask_procinfo(&p, sys, nr, T).unwrap();
    assert_eq!(mine.endpoint, p.endpoint());
    assert_eq!(mine.state, SlotState::Bound);
    assert_eq!(mine.pid, me);
    for (server, nr) in [(sys, SYSTASK), (ep_of(dc, PM), PM), (echo, ECHO)] {
        let info = systask_procinfo(&p, sys, nr, T).unwrap();
        assert_eq!(
            (info.endpoint, info.state, info.pid),
            (server, SlotState::Bound, parent)
        );
    }
    // It reports exactly what the fabric reports.
    let free = systask_procinfo(&p, sys, nr + 1, T).unwrap();
    let fabric = dc.getprocinfo(nr + 1).unwrap();
    assert_eq!(free, SlotInfo::from_proc_info(&fabric));
    assert_eq!((free.state, free.pid), (SlotState::Free, 0));
    // Counters move: three round trips with echo.
    let before = systask_procinfo(&p, sys, ECHO, T).unwrap();
    for _ in 0..3 {
        echo_sink(&p, echo, [0; 7], T).unwrap();
    }
    let after = systask_procinfo(&p, sys, ECHO, T).unwrap();
    assert_eq!(after.received, before.received + 3);
    // echo counts a reply as sent just after the client may already have it: look again.
    eventually(Duration::from_secs(5), "echo's sent counter", || {
        systask_procinfo(&p, sys, ECHO, T).unwrap().sent == before.sent + 3
    });

    let bad = [
        (with_m1(SYS_PROCINFO, OUT_OF_TABLE), Errno::EDVSRANGE),
        (with_m1(SYS_PROCINFO, i32::MIN), Errno::EDVSRANGE),
        (with_m1(SYS_PROCINFO, i32::MAX), Errno::EDVSRANGE),
        (with_m1(SYS_PROCINFO, -35), Errno::EDVSRANGE),
        (Message::new(0x0199), Errno::EDVSBADREQUEST),
        (Message::new(PM_COUNT), Errno::EDVSBADREQUEST),
        // SYS_BIND: bad PIDs, someone else's PID, a system slot, a used slot, out of the table,
        // bad names.
        (with_m3(SYS_BIND, nr + 1, -1, b"k"), Errno::EDVSBADPID),
        (with_m3(SYS_BIND, nr + 1, 0, b"k"), Errno::EDVSBADPID),
        (
            with_m3(SYS_BIND, nr + 1, parent as i32, b"k"),
            Errno::EDVSPRIVILEGES,
        ),
        (
            with_m3(SYS_BIND, SYS_SLOT, me as i32, b"k"),
            Errno::EDVSPRIVILEGES,
        ),
        (with_m3(SYS_BIND, nr, me as i32, b"k"), Errno::EDVSSLOTUSED),
        (
            with_m3(SYS_BIND, OUT_OF_TABLE, me as i32, b"k"),
            Errno::EDVSRANGE,
        ),
        (
            with_m3(SYS_BIND, nr + 1, me as i32, &[b'n'; 16]),
            Errno::EDVSNAMESIZE,
        ),
        (
            with_m3(SYS_BIND, nr + 1, me as i32, &[0xc3]),
            Errno::EDVSBADVALUE,
        ),
    ];
    for (m, want) in bad {
        expect_err(&p, sys, m, want);
        assert_eq!(
            systask_procinfo(&p, sys, nr, T).map(|i| i.endpoint),
            Ok(p.endpoint())
        );
    }
    // None of the refused binds bound anything.
    assert_eq!(dc.getprocinfo(nr + 1).unwrap().state, SlotState::Free);
    assert_eq!(dc.getprocinfo(SYS_SLOT).unwrap().state, SlotState::Free);
    say("ok");
}

/// Ask SYSTASK to bind `target` for our own PID, attach it, use it, give it back.
fn bindself_client(dc: &Dc, nr: i32, target: i32) {
    let me = std::process::id();
    let p = dc.bind_named(nr, "binder").unwrap();
    let sys = ep_of(dc, SYSTASK);
    let (pm, echo) = (ep_of(dc, PM), ep_of(dc, ECHO));
    assert_eq!(dc.attach(target).err(), Some(Errno::EDVSNOTBIND));
    let ep = systask_bind(&p, sys, target, me, "kid", T).unwrap();
    assert_eq!(endpoint::nr(ep), target);
    let info = systask_procinfo(&p, sys, target, T).unwrap();
    assert_eq!(
        (info.endpoint, info.state, info.pid),
        (ep, SlotState::Bound, me)
    );
    assert_eq!(dc.getprocinfo(target).unwrap().name, "kid");
    // Bound already: a second request is refused.
    assert_eq!(
        systask_bind(&p, sys, target, me, "kid", T),
        Err(Errno::EDVSSLOTUSED)
    );

    let q = dc.attach(target).unwrap();
    assert_eq!(q.endpoint(), ep);
    assert_eq!(echo_ping(&q, echo, [3; 7], T), Ok([3; 7]));
    assert_eq!(pm_register(&q, pm, 0, "kid", T), Ok(()));
    assert_eq!(pm_getpid(&p, pm, ep, T), Ok(me));
    assert_eq!(pm_getep(&p, pm, me, T), Ok(ep));
    let seen = systask_procinfo(&p, sys, target, T).unwrap();
    // Two requests went out through it: the ping and the registration.
    assert_eq!(seen.sent, 2);

    q.unbind().unwrap();
    let gone = systask_procinfo(&p, sys, target, T).unwrap();
    assert_eq!(gone.state, SlotState::Free);
    assert_ne!(gone.endpoint, ep);
    // PM notices the endpoint is gone.
    eventually(
        Duration::from_secs(2),
        "PM to drop the attached slot",
        || pm_getpid(&p, pm, ep, T) == Err(Errno::EDVSSRCH),
    );
    say("ok");
}

fn echo_requests(runner: Runner) {
    let t = TestDc::new('m');
    let host = start(&t.dc, &ALL, runner);
    spawn("echo", &t.name, &["100"]).finish();
    // Two clients at once, and the server still serves afterwards.
    let a = spawn("echo", &t.name, &["101"]);
    let b = spawn("echo", &t.name, &["102"]);
    a.finish();
    b.finish();
    stop(host, ALL.len());
}

fn pm_requests(runner: Runner) {
    let t = TestDc::new('m');
    let host = start(&t.dc, &ALL, runner);
    let mut w = spawn("pm", &t.name, &["100", "101"]);
    let dropped = w.line(Duration::from_secs(30));
    eprintln!("{runner:?}: {dropped}");
    w.finish();
    stop(host, ALL.len());
}

fn systask_requests(runner: Runner) {
    let t = TestDc::new('m');
    let host = start(&t.dc, &ALL, runner);
    spawn("systask", &t.name, &["100"]).finish();
    // A system process may bind for anyone, system slots included; a dead PID is refused.
    let me = t.dc.bind_named(SYS_SLOT, "sys-tester").unwrap();
    let sys = ep_of(&t.dc, SYSTASK);
    let ep = systask_bind(&me, sys, SYS_SLOT + 1, std::process::id(), "srv", T).unwrap();
    let attached = t.dc.attach(SYS_SLOT + 1).unwrap();
    assert_eq!(attached.endpoint(), ep);
    assert!(t.dc.getprocinfo(SYS_SLOT + 1).unwrap().system);
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    assert_eq!(
        systask_bind(&me, sys, 120, dead, "x", T),
        Err(Errno::EDVSBADPID)
    );
    drop(attached);
    drop(me);
    stop(host, ALL.len());
}

fn bind_on_behalf(runner: Runner) {
    let t = TestDc::new('m');
    let host = start(&t.dc, &ALL, runner);
    spawn("bindself", &t.name, &["100", "150"]).finish();
    stop(host, ALL.len());
}

fn killed_client(runner: Runner) {
    let t = TestDc::new('m');
    let host = start(&t.dc, &ALL, runner);
    let (victim_nr, slow_ms) = (100, 300);
    let echo = ep_of(&t.dc, ECHO);
    let pm = ep_of(&t.dc, PM);
    let me = t.dc.bind_named(110, "watcher").unwrap();
    for round in 0..2 {
        let mut v = spawn(
            "victim",
            &t.name,
            &[&victim_nr.to_string(), &slow_ms.to_string()],
        );
        let line = v.line(Duration::from_secs(30));
        let vep: Endpoint = line
            .strip_prefix("registered ")
            .unwrap_or_else(|| panic!("victim said {line:?}"))
            .parse()
            .unwrap();
        assert_eq!(pm_getpid(&me, pm, vep, T), Ok(v.child.id()));
        // Kill it once echo has taken its SLOW request (it waits for the reply).
        eventually(Duration::from_secs(10), "the victim inside SLOW", || {
            t.dc.getprocinfo(victim_nr).is_ok_and(|i| {
                i.flags & FLAG_RECEIVING != 0 && i.flags & FLAG_SENDING == 0 && i.getfrom == echo
            })
        });
        v.kill();
        let killed = Instant::now();
        // PM forgets the dead client within about one sweep (while echo still sleeps).
        eventually(
            Duration::from_secs(2),
            "PM to drop the killed client",
            || pm_getpid(&me, pm, vep, T) == Err(Errno::EDVSSRCH),
        );
        let dropped = killed.elapsed();
        eprintln!("{runner:?}: PM dropped the killed client {dropped:?} after the kill");
        assert!(dropped < Duration::from_millis(500), "{dropped:?}");
        assert_eq!(pm_count(&me, pm, T), Ok(0));
        // echo finishes the sleep, its reply fails, and it serves the next clients.
        let ping = spawn("ping", &t.name, &["101"]);
        ping.finish();
        assert_eq!(echo_ping(&me, echo, [round; 7], T), Ok([round; 7]));
    }
    drop(me);
    stop(host, ALL.len());
}

fn timeout_probe(runner: Runner) {
    let t = TestDc::new('m');
    let host = start(&t.dc, &ALL, runner);
    let me = t.dc.bind_named(100, "prober").unwrap();
    let silent = t.dc.bind_named(101, "silent").unwrap();
    let echo = ep_of(&t.dc, ECHO);
    // From an outside endpoint (the fabric's timer path) and from an idle server of the same
    // host (under MUK2 a local coroutine: the scheduler's own timers).
    for src in [silent.endpoint(), ep_of(&t.dc, SYSTASK)] {
        let mut seen = Vec::new();
        for _ in 0..5 {
            let probe = echo_timeout_probe(&me, echo, 5, src, T).unwrap();
            assert_eq!(probe.result, Err(Errno::EDVSTIMEDOUT));
            seen.push(probe.elapsed);
        }
        eprintln!("{runner:?}: TIMEOUT_PROBE(5) from {src} took {seen:?}");
        // Never early; and 5-15 ms as a rule: the median of five must be in range, so that one
        // probe delayed by a loaded CI machine does not fail the suite.
        for e in &seen {
            assert!(
                *e >= Duration::from_millis(5),
                "{runner:?}: a 5 ms receive timeout ended early: {e:?} (all: {seen:?})"
            );
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert!(
            sorted[sorted.len() / 2] <= Duration::from_millis(15),
            "{runner:?}: 5 ms receive timeouts took {seen:?}"
        );
    }
    drop((me, silent));
    stop(host, ALL.len());
}

/// A server blocked in `receive` from an outside endpoint learns that it died (SIGKILL) within
/// the fabric's liveness bound, under both runners, instead of waiting for its timeout.
fn probe_source_dies(runner: Runner) {
    let t = TestDc::new('m');
    let host = start(&t.dc, &ALL, runner);
    let me = t.dc.bind_named(100, "prober").unwrap();
    let echo = ep_of(&t.dc, ECHO);
    let mut idle = spawn("idle", &t.name, &["120"]);
    let line = idle.line(Duration::from_secs(30));
    let src: Endpoint = line
        .strip_prefix("bound ")
        .unwrap_or_else(|| panic!("idle said {line:?}"))
        .parse()
        .unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        idle.kill();
    });
    let probe = echo_timeout_probe(&me, echo, 3_000, src, T).unwrap();
    killer.join().unwrap();
    eprintln!("{runner:?}: receive from a source killed after 100 ms: {probe:?}");
    assert_eq!(probe.result, Err(Errno::EDVSSRCDIED), "{probe:?}");
    assert!(probe.elapsed < Duration::from_millis(600), "{probe:?}");
    drop(me);
    stop(host, ALL.len());
}

fn notifications_and_forged_types(runner: Runner) {
    let t = TestDc::new('m');
    let host = start(&t.dc, &ALL, runner);
    let me = t.dc.bind_named(SYS_SLOT, "notifier").unwrap();
    let user = t.dc.bind_named(100, "forger").unwrap();
    for nr in [SYSTASK, PM, ECHO] {
        let server = ep_of(&t.dc, nr);
        // Notifications get no answer anyone waits for, and do not disturb the server.
        for _ in 0..3 {
            me.notify(server).unwrap();
        }
        let mut m = Message::new(if nr == ECHO { ECHO_SINK } else { PM_COUNT });
        if nr == SYSTASK {
            m = with_m1(SYS_PROCINFO, SYS_SLOT);
        }
        call(&me, server, &mut m, T).unwrap();
        // A request typed like a notification is still a request: it gets its error reply.
        let forged = Message::new(m3ipc::message::notify_from(SYS_SLOT));
        expect_err(&user, server, forged, Errno::EDVSBADREQUEST);
        expect_err(&me, server, forged, Errno::EDVSBADREQUEST);
    }
    drop((me, user));
    stop(host, ALL.len());
}

#[test]
fn every_kind_builds_a_server() {
    for k in ServerKind::ALL {
        let _server = k.build();
        assert_eq!(ServerKind::from_name(k.name()), Some(k));
    }
}

/// SYS_VCOPY: SYSTASK copies 64 KiB from the caller's granted buffer into another process's,
/// while that process waits in a request; refusals for a caller that is not a party and for a
/// party that no longer waits.
fn vcopy_by_systask(runner: Runner) {
    let t = TestDc::new('m');
    let host = start(&t.dc, &ALL, runner);
    let sys = ep_of(&t.dc, SYSTASK);
    let me = t.dc.bind_named(100, "asker").unwrap();
    let h = me.alloc_buffer(64 * 1024).unwrap();
    let src = me.buffer(h).unwrap();
    let bytes: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 + 3) as u8).collect();
    src.write_at(0, &bytes).unwrap();
    let want = src.checksum(0, 64 * 1024).unwrap();
    let g = me.grant(h, sys, 0, 64 * 1024, m3ipc::Access::READ).unwrap();
    let mut sink = spawn("vcopy-sink", &t.name, &["101", "1500"]);
    let line = sink.line(Duration::from_secs(30));
    let mut words = line.strip_prefix("ready ").unwrap().split_whitespace();
    let sink_ep: Endpoint = words.next().unwrap().parse().unwrap();
    let sink_grant = m3ipc::GrantId(words.next().unwrap().parse().unwrap());
    // The sink blocks in its slow request: vcopy needs it blocked in a receive.
    eventually(Duration::from_secs(10), "sink blocked in sendrec", || {
        t.dc.getprocinfo(101)
            .is_ok_and(|i| i.flags & m3ipc::FLAG_WAITING != 0)
    });
    let req = VcopyRequest {
        src_ep: me.endpoint(),
        src: m3ipc::CopyRef::Grant(g),
        src_off: 0,
        dst_ep: sink_ep,
        dst: m3ipc::CopyRef::Grant(sink_grant),
        dst_off: 0,
        len: 64 * 1024,
    };
    // A user that is not a party may not ask for it.
    let other = t.dc.bind_named(102, "other").unwrap();
    assert_eq!(
        systask_vcopy(&other, sys, &req, T),
        Err(Errno::EDVSPRIVILEGES)
    );
    systask_vcopy(&me, sys, &req, T).unwrap();
    let line = sink.line(Duration::from_secs(30));
    assert_eq!(
        line,
        format!("sum {want}"),
        "the sink's buffer after the copy"
    );
    sink.finish();
    // The sink is gone (its grant lapsed with it).
    assert!(systask_vcopy(&me, sys, &req, T).is_err());
    drop((me, other));
    stop(host, ALL.len());
}
