//! Acceptance point 2, errors: every error docs/ARCHITECTURE.md section 4 names, produced between real
//! processes (scripted children, see `script/mod.rs`), each in its own DC.
//!
//! Success paths are in `calls.rs`.
mod script;
mod support;

use m3ipc::privilege::Call;
use m3ipc::{
    ANY, CallSet, Dc, Errno, FLAG_RECEIVING, FLAG_SENDING, HARDWARE, Message, Priv, SELF, Timeout,
    endpoint,
};
use script::{
    T, assert_nothing_queued, expect_ep, msg, open_gate, recv, script, wait_asleep, wait_flags,
    wait_free,
};
use std::fmt::Debug;
use std::time::{Duration, Instant};
use support::{TestDc, child_entry};

fn run_role(role: &str, dc: &str, args: &[String]) {
    match role {
        "script" => script::run(dc, args),
        _ => panic!("unknown role {role}"),
    }
}

#[test]
fn child_main() {
    child_entry(run_role);
}

/// Run a child that binds `nr` and makes each call of `cases`, and check that each gives its
/// expected outcome.
fn expect_outcomes(t: &TestDc, nr: i32, cases: &[(&str, &str)]) {
    let bind = format!("bind:{nr}");
    let mut cmds = vec![bind.as_str()];
    cmds.extend(cases.iter().map(|(c, _)| *c));
    let mut w = script(&t.name, &cmds);
    w.expect(&format!("{bind} -> OK ep={nr}"));
    for (cmd, outcome) in cases {
        w.expect(&format!("{cmd} -> {outcome}"));
    }
    w.finish();
}

/// Call `f` with a timeout of `ms` and check that it expires, no earlier than asked.
fn expires<R: Debug>(ms: u32, f: impl FnOnce(Timeout) -> Result<R, Errno>) {
    let start = Instant::now();
    let r = f(Timeout::Millis(ms));
    let waited = start.elapsed();
    assert_eq!(r.err(), Some(Errno::EDVSTIMEDOUT));
    assert!(
        waited >= Duration::from_millis(ms as u64),
        "expired after {waited:?}, asked {ms} ms"
    );
}

/// `bind`: a slot held by another live process is `EDVSSLOTUSED`; a number outside the table is
/// `EDVSRANGE`; `HARDWARE` is `EDVSBADPROC`. Once the holder leaves, the slot binds again at a
/// new generation.
#[test]
fn bind_errors() {
    let t = TestDc::new('e');
    let mut w = script(&t.name, &["bind:5", "await:200"]);
    w.expect("bind:5 -> OK ep=5");
    assert_eq!(t.dc.bind(5).err(), Some(Errno::EDVSSLOTUSED));
    for nr in [221, -35, 1000, 5000, i32::MAX, i32::MIN] {
        assert_eq!(t.dc.bind(nr).err(), Some(Errno::EDVSRANGE), "nr {nr}");
    }
    assert_eq!(t.dc.bind(HARDWARE).err(), Some(Errno::EDVSBADPROC));
    // Also against a slot this process holds.
    let six = t.dc.bind(6).unwrap();
    assert_eq!(t.dc.bind(6).err(), Some(Errno::EDVSSLOTUSED));
    // And the other way round: the child cannot take ours.
    let mut c = script(&t.name, &["bind:6"]);
    c.expect("bind:6 -> EDVSSLOTUSED");
    c.finish();
    drop(six);

    let _gate = open_gate(&t.dc, 200);
    w.finish();
    wait_free(&t.dc, 5);
    let again = t.dc.bind(5).unwrap();
    assert_eq!(again.endpoint(), endpoint::make(1, 5));
}

/// Destination and source checks, from a child against the table the parent sees: self
/// (`EDVSBADDEST` for send/senda, `EDVSENDPOINT` otherwise), `HARDWARE` (`EDVSBADDEST`), out of
/// range (`EDVSRANGE`), a free slot (`EDVSDSTDIED`, or `EDVSSRCDIED` as a source), and the
/// special values `ANY`/`NONE` as a peer (`EDVSENDPOINT`).
#[test]
fn destination_errors() {
    let t = TestDc::new('e');
    let _me = t.dc.bind(0).unwrap();
    expect_outcomes(
        &t,
        5,
        &[
            ("send:5:1:N", "EDVSBADDEST"),
            ("send:SELF:1:N", "EDVSBADDEST"),
            ("senda:5:1", "EDVSBADDEST"),
            ("sendrec:5:1:N", "EDVSENDPOINT"),
            ("notify:5", "EDVSENDPOINT"),
            ("receive:5:N", "EDVSENDPOINT"),
            ("send:HW:1:N", "EDVSBADDEST"),
            ("sendrec:HW:1:N", "EDVSBADDEST"),
            ("senda:HW:1", "EDVSBADDEST"),
            ("notify:HW", "EDVSBADDEST"),
            ("receive:HW:N", "EDVSBADDEST"),
            ("send:221:1:N", "EDVSRANGE"),
            ("send:-35:1:N", "EDVSRANGE"),
            ("sendrec:300:1:N", "EDVSRANGE"),
            ("senda:221:1", "EDVSRANGE"),
            ("notify:221", "EDVSRANGE"),
            ("receive:-35:N", "EDVSRANGE"),
            ("wakeup:221", "EDVSRANGE"),
            ("getpriv:221", "EDVSRANGE"),
            ("send:10:1:N", "EDVSDSTDIED"),
            ("sendrec:10:1:N", "EDVSDSTDIED"),
            ("senda:10:1", "EDVSDSTDIED"),
            ("notify:10", "EDVSDSTDIED"),
            ("reply:10:1", "EDVSDSTDIED"),
            ("wakeup:10", "EDVSDSTDIED"),
            ("receive:10:N", "EDVSSRCDIED"),
            ("send:ANY:1:N", "EDVSENDPOINT"),
            ("send:NONE:1:N", "EDVSENDPOINT"),
            ("receive:NONE:N", "EDVSENDPOINT"),
            // The parent's slot is fine: only the call would block.
            ("send:0:1:N", "EDVSAGAIN"),
        ],
    );
    // The same checks hold in the parent, against slots a child left.
    let me = t.dc.bind(1).unwrap();
    assert_eq!(me.send(1, &msg(1), T), Err(Errno::EDVSBADDEST));
    assert_eq!(me.send(HARDWARE, &msg(1), T), Err(Errno::EDVSBADDEST));
    assert_eq!(me.send(221, &msg(1), T), Err(Errno::EDVSRANGE));
    assert_eq!(
        me.send(endpoint::make(1, 5), &msg(1), T),
        Err(Errno::EDVSDSTDIED)
    );
}

/// A stale endpoint (an earlier binding of a slot, whether the slot is free or bound again) is
/// `EDVSENDPOINT` for every call that names a peer; the new binding's endpoint works.
#[test]
fn stale_endpoint_is_endpoint_error() {
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    expect_outcomes(&t, 5, &[]);
    wait_free(&t.dc, 5);
    // Free at generation 1: the old endpoint is stale, the next one merely unbound.
    assert_eq!(me.send(5, &msg(1), T), Err(Errno::EDVSENDPOINT));
    assert_eq!(
        me.send(endpoint::make(1, 5), &msg(1), T),
        Err(Errno::EDVSDSTDIED)
    );

    let mut w = script(&t.name, &["bind:5", "receive:0:F"]);
    let ep = expect_ep(&mut w, "bind:5");
    assert_eq!(ep, endpoint::make(1, 5));
    wait_flags(&t.dc, 5, FLAG_RECEIVING);
    let mut m = msg(1);
    assert_eq!(me.send(5, &m, T), Err(Errno::EDVSENDPOINT));
    assert_eq!(me.sendrec(5, &mut m, T), Err(Errno::EDVSENDPOINT));
    assert_eq!(me.senda(5, &m), Err(Errno::EDVSENDPOINT));
    assert_eq!(me.notify(5), Err(Errno::EDVSENDPOINT));
    assert_eq!(me.receive(5, &mut m, T), Err(Errno::EDVSENDPOINT));
    assert_eq!(me.reply(5, &m), Err(Errno::EDVSENDPOINT));
    assert_eq!(me.wakeup(5), Err(Errno::EDVSENDPOINT));
    assert_eq!(me.getpriv(5), Err(Errno::EDVSENDPOINT));
    assert_eq!(
        me.setpriv(5, &Priv::default_for(true, false)),
        Err(Errno::EDVSENDPOINT)
    );
    assert_eq!(t.dc.wait4unbind(5, Timeout::NoWait), Ok(()));
    // Nothing addressed to the stale endpoint reached the new binder.
    me.send(ep, &msg(2), T).unwrap();
    w.expect("receive:0:F -> OK src=0 type=2");
    w.finish();
}

/// NOWAIT: every call that would block returns `EDVSAGAIN` at once, and a send that gave up
/// leaves no message behind.
#[test]
fn nowait_gives_again() {
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    let mut w = script(
        &t.name,
        &[
            "bind:5",
            "send:0:1:N",
            "sendrec:0:2:N",
            "await:200",
            "receive:ANY:N",
            "await:201",
        ],
    );
    w.expect("bind:5 -> OK ep=5");
    w.expect("send:0:1:N -> EDVSAGAIN");
    w.expect("sendrec:0:2:N -> EDVSAGAIN");
    let mut m = msg(3);
    assert_nothing_queued(&me, "nothing more should be queued");
    assert_eq!(
        me.receive(5, &mut m, Timeout::NoWait),
        Err(Errno::EDVSAGAIN)
    );
    assert_eq!(me.rcvrqst(&mut m, Timeout::NoWait), Err(Errno::EDVSAGAIN));
    let m3 = msg(3);
    assert_eq!(me.send(5, &m3, Timeout::NoWait), Err(Errno::EDVSAGAIN));
    let mut m4 = msg(4);
    assert_eq!(
        me.sendrec(5, &mut m4, Timeout::NoWait),
        Err(Errno::EDVSAGAIN)
    );
    assert_eq!(t.dc.wait4bind(6, Timeout::NoWait), Err(Errno::EDVSAGAIN));
    assert_eq!(t.dc.wait4unbind(5, Timeout::NoWait), Err(Errno::EDVSAGAIN));
    let info = t.dc.getprocinfo(0).unwrap();
    assert_eq!(info.flags & (FLAG_SENDING | FLAG_RECEIVING), 0);
    let _g1 = open_gate(&t.dc, 200);
    w.expect("await:200 -> OK");
    w.expect("receive:ANY:N -> EDVSAGAIN");
    let _g2 = open_gate(&t.dc, 201);
    w.finish();
}

/// A timeout expires with `EDVSTIMEDOUT`, never before the time asked for, and withdraws the
/// caller: no message is left behind, and a late `reply` to a `sendrec` client that gave up is
/// `EDVSPROCSTS`.
#[test]
fn timeouts_give_timedout() {
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    // The child's calls (the script checks the time waited).
    let mut w = script(
        &t.name,
        &[
            "bind:5",
            "send:0:1:100",
            "sendrec:0:2:100",
            "receive:ANY:100",
            "receive:0:100",
            "rcvrqst:100",
            "wait4bind:6:100",
            "wait4unbind:0:100",
            "await:200",
            "receive:ANY:N",
            "await:201",
        ],
    );
    w.expect("bind:5 -> OK ep=5");
    for cmd in [
        "send:0:1:100",
        "sendrec:0:2:100",
        "receive:ANY:100",
        "receive:0:100",
        "rcvrqst:100",
        "wait4bind:6:100",
        "wait4unbind:0:100",
    ] {
        w.expect(&format!("{cmd} -> EDVSTIMEDOUT"));
    }
    // The parent's.
    let mut m = Message::default();
    expires(100, |tmo| me.receive(ANY, &mut m, tmo));
    expires(100, |tmo| me.receive(5, &mut m, tmo));
    expires(100, |tmo| me.rcvrqst(&mut m, tmo));
    expires(100, |tmo| me.send(5, &msg(3), tmo));
    expires(100, |tmo| me.sendrec(5, &mut msg(4), tmo));
    expires(100, |tmo| t.dc.wait4bind(6, tmo));
    expires(100, |tmo| t.dc.wait4unbind(5, tmo));
    assert_nothing_queued(&me, "a timed-out message was left");
    let _g1 = open_gate(&t.dc, 200);
    w.expect("await:200 -> OK");
    w.expect("receive:ANY:N -> EDVSAGAIN");

    // A client that gives up after its request was received.
    let mut c = script(&t.name, &["bind:40", "sendrec:0:5:500", "await:202"]);
    assert_eq!(recv(&me, ANY, T), (40, 5));
    c.expect("bind:40 -> OK ep=40");
    c.expect("sendrec:0:5:500 -> EDVSTIMEDOUT");
    assert_eq!(me.reply(40, &msg(6)), Err(Errno::EDVSPROCSTS));
    let _g2 = open_gate(&t.dc, 201);
    let _g3 = open_gate(&t.dc, 202);
    w.finish();
    c.finish();
}

/// Two-party cycles: a `send` or `sendrec` to a process that is itself blocked sending to the
/// caller is `EDVSLOCKED`, and so is a `receive` from a process that is itself blocked receiving
/// from the caller (also in the receive half of its `sendrec`). A `send` to a process that
/// receives from the caller is a rendezvous, not a cycle.
///
/// "Blocked" means asleep (`wait_asleep`): a call shows SENDING/RECEIVING as soon as it posts,
/// but makes its own deadlock check only before its first sleep, so a peer that closed the cycle
/// inside that window would make the *child* the one to get `EDVSLOCKED` (still correct: exactly
/// the caller that closes the cycle fails, and nobody hangs).
#[test]
fn two_party_cycles_are_locked() {
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    let mut w = script(
        &t.name,
        &[
            "bind:5",
            "send:0:1:F",
            "receive:0:F",
            "sendrec:0:3:F",
            "await:200",
        ],
    );
    w.expect("bind:5 -> OK ep=5");
    let pid = w.child.id();
    wait_flags(&t.dc, 5, FLAG_SENDING);
    wait_asleep(pid);
    assert_eq!(me.send(5, &msg(9), T), Err(Errno::EDVSLOCKED));
    assert_eq!(me.sendrec(5, &mut msg(9), T), Err(Errno::EDVSLOCKED));
    assert_eq!(recv(&me, ANY, T), (5, 1));
    w.expect("send:0:1:F -> OK");

    wait_flags(&t.dc, 5, FLAG_RECEIVING);
    wait_asleep(pid);
    let mut m = Message::default();
    assert_eq!(me.receive(5, &mut m, T), Err(Errno::EDVSLOCKED));
    me.send(5, &msg(2), T).unwrap();
    w.expect("receive:0:F -> OK src=0 type=2");

    wait_flags(&t.dc, 5, FLAG_SENDING);
    wait_asleep(pid);
    assert_eq!(me.sendrec(5, &mut msg(9), T), Err(Errno::EDVSLOCKED));
    assert_eq!(recv(&me, ANY, T), (5, 3));
    // Now 5 waits for our reply: receiving from it would wait forever too.
    assert_eq!(me.receive(5, &mut m, T), Err(Errno::EDVSLOCKED));
    me.reply(5, &msg(4)).unwrap();
    w.expect("sendrec:0:3:F -> OK src=0 type=4");
    let _gate = open_gate(&t.dc, 200);
    w.finish();
}

/// A `receive` that a pending notification satisfies is not blocked (docs/ARCHITECTURE.md section 4, step
/// 2 comes before step 4): receiving by name from a process that is blocked receiving from us
/// while our notify to it is still pending is a rendezvous, not a cycle, and must never be
/// `EDVSLOCKED`. The child is stopped (SIGSTOP) between our notify and its delivery, so the
/// deadlock check certainly sees the notification pending.
#[test]
fn pending_notify_is_not_a_cycle() {
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    let mut w = script(&t.name, &["bind:5", "receive:0:F", "send:0:77:F"]);
    w.expect("bind:5 -> OK ep=5");
    let pid = w.child.id();
    wait_flags(&t.dc, 5, FLAG_RECEIVING);
    wait_asleep(pid);
    // SAFETY: kill(2) on our own child's pid, which we have not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
    stopped(pid);
    me.notify(5).unwrap();
    let resume = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    });
    assert_eq!(recv(&me, 5, T), (5, 77));
    resume.join().unwrap();
    w.expect(&format!(
        "receive:0:F -> OK src=0 type={}",
        m3ipc::message::notify_from(0)
    ));
    w.expect("send:0:77:F -> OK");
    w.finish();
}

/// Wait until process `pid` is stopped (state `T` in `/proc/PID/stat`).
fn stopped(pid: u32) {
    support::eventually(Duration::from_secs(10), "child stopped", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
        })
    });
}

/// The benchmark's case: two processes ping-pong notifies and each receives from the other by
/// name. Every receive is satisfied by the other's notify, pending or about to be; none may be
/// `EDVSLOCKED`, whatever the interleaving (the two deadlock checks race with the notifies).
#[test]
fn notify_ping_pong_by_name_never_locks() {
    const ROUNDS: usize = 400;
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    let mut cmds = vec!["bind:5"];
    for _ in 0..ROUNDS {
        cmds.extend(["receive:0:10000", "notify:0"]);
    }
    // Stay bound until we have the last notify (unbinding withdraws it).
    cmds.push("await:200");
    let mut w = script(&t.name, &cmds);
    w.expect("bind:5 -> OK ep=5");
    let notified = format!(
        "receive:0:10000 -> OK src=0 type={}",
        m3ipc::message::notify_from(0)
    );
    for round in 0..ROUNDS {
        me.notify(5).unwrap();
        let mut m = Message::default();
        assert_eq!(me.receive(5, &mut m, T), Ok(()), "round {round}");
        assert_eq!(m.m_type, m3ipc::message::notify_from(5), "round {round}");
        w.expect(&notified);
        w.expect("notify:0 -> OK");
    }
    let _gate = open_gate(&t.dc, 200);
    w.finish();
}

/// Three-party cycle: A sends to B, B sends to the caller; the caller's `send`/`sendrec` to A,
/// or `receive` from A, would close the cycle and is `EDVSLOCKED`. Nobody else is disturbed.
#[test]
fn three_party_cycle_is_locked() {
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    let mut b = script(&t.name, &["bind:6", "send:0:60:F", "receive:5:F"]);
    wait_flags(&t.dc, 6, FLAG_SENDING);
    let mut a = script(&t.name, &["bind:5", "send:6:50:F"]);
    wait_flags(&t.dc, 5, FLAG_SENDING);
    wait_asleep(b.child.id());
    wait_asleep(a.child.id());
    assert_eq!(me.send(5, &msg(9), T), Err(Errno::EDVSLOCKED));
    assert_eq!(me.sendrec(5, &mut msg(9), T), Err(Errno::EDVSLOCKED));
    let mut m = Message::default();
    assert_eq!(me.receive(5, &mut m, T), Err(Errno::EDVSLOCKED));
    // Not a cycle: 6 is not blocked on 5.
    assert_ne!(t.dc.getprocinfo(5).unwrap().flags & FLAG_SENDING, 0);
    assert_eq!(recv(&me, ANY, T), (6, 60));
    b.expect("bind:6 -> OK ep=6");
    b.expect("send:0:60:F -> OK");
    b.expect("receive:5:F -> OK src=5 type=50");
    a.expect("bind:5 -> OK ep=5");
    a.expect("send:6:50:F -> OK");
    a.finish();
    b.finish();
}

/// A user endpoint may only `sendrec` (and unbind, getep, wait4bind): every other call is
/// `EDVSBADCALL`. A system process narrowed by `setpriv` gets the same for the calls taken away.
#[test]
fn user_calls_are_bad_calls() {
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    let mut w = script(
        &t.name,
        &[
            "bind:40",
            "send:0:1:N",
            "receive:ANY:N",
            "receive:0:N",
            "notify:0",
            "senda:0:1",
            "rcvrqst:N",
            "reply:0:1",
            "wakeup:0",
            "getpriv:SELF",
            "setpriv:SELF",
            "sendrec:0:9:F",
        ],
    );
    w.expect("bind:40 -> OK ep=40");
    for cmd in [
        "send:0:1:N",
        "receive:ANY:N",
        "receive:0:N",
        "notify:0",
        "senda:0:1",
        "rcvrqst:N",
        "reply:0:1",
        "wakeup:0",
        "getpriv:SELF",
        "setpriv:SELF",
    ] {
        w.expect(&format!("{cmd} -> EDVSBADCALL"));
    }
    assert_eq!(recv(&me, ANY, T), (40, 9));
    me.reply(40, &msg(10)).unwrap();
    w.expect("sendrec:0:9:F -> OK src=0 type=10");
    w.finish();

    let mut s = script(
        &t.name,
        &["bind:5", "await:200", "send:0:1:N", "sendrec:0:2:N"],
    );
    s.expect("bind:5 -> OK ep=5");
    let narrow = Priv {
        allowed: CallSet::ALL.without(Call::Send),
        ..Priv::default_for(true, false)
    };
    me.setpriv(5, &narrow).unwrap();
    let _gate = open_gate(&t.dc, 200);
    s.expect("await:200 -> OK");
    s.expect("send:0:1:N -> EDVSBADCALL");
    s.expect("sendrec:0:2:N -> EDVSAGAIN");
    s.finish();
}

/// A destination that is a system process not in the caller's `ipc_to` (narrowed by `setpriv`)
/// is `EDVSTRAPDENIED` for send, sendrec, senda and notify; other destinations still work.
#[test]
fn ipc_to_narrowed_is_trapdenied() {
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    let other = t.dc.bind(1).unwrap();
    let mut s = script(
        &t.name,
        &[
            "bind:5",
            "await:200",
            "send:0:1:N",
            "sendrec:0:1:N",
            "senda:0:1",
            "notify:0",
            "senda:1:2",
            "notify:1",
            "await:201",
        ],
    );
    s.expect("bind:5 -> OK ep=5");
    let mut u = script(&t.name, &["bind:40", "await:200", "sendrec:0:3:N"]);
    u.expect("bind:40 -> OK ep=40");
    let idx0 = 34; // nr 0 + nr_tasks
    let mut sys = Priv::default_for(true, false);
    sys.set_send_to(idx0, false);
    me.setpriv(5, &sys).unwrap();
    let mut user = Priv::default_for(false, false);
    user.set_send_to(idx0, false);
    me.setpriv(40, &user).unwrap();
    assert!(!me.getpriv(5).unwrap().may_send_to(idx0));

    let _g1 = open_gate(&t.dc, 200);
    s.expect("await:200 -> OK");
    for cmd in ["send:0:1:N", "sendrec:0:1:N", "senda:0:1", "notify:0"] {
        s.expect(&format!("{cmd} -> EDVSTRAPDENIED"));
    }
    s.expect("senda:1:2 -> OK");
    s.expect("notify:1 -> OK");
    u.expect("await:200 -> OK");
    u.expect("sendrec:0:3:N -> EDVSTRAPDENIED");
    u.finish();
    assert_eq!(recv(&other, ANY, T), (5, m3ipc::message::notify_from(5)));
    assert_eq!(recv(&other, ANY, T), (5, 2));
    assert_nothing_queued(&me, "nothing more should be queued");
    let _g2 = open_gate(&t.dc, 201);
    s.finish();
}

/// Users cannot be notified: `notify` to a user endpoint is `EDVSTRAPDENIED`, from the parent
/// and from another process.
#[test]
fn notify_to_a_user_is_trapdenied() {
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    let mut u = script(&t.name, &["bind:40", "await:200"]);
    u.expect("bind:40 -> OK ep=40");
    assert_eq!(me.notify(40), Err(Errno::EDVSTRAPDENIED));
    expect_outcomes(
        &t,
        5,
        &[("notify:40", "EDVSTRAPDENIED"), ("notify:0", "OK")],
    );
    let _gate = open_gate(&t.dc, 200);
    u.finish();
}

/// `rcvrqst` and `reply` are for system processes: a user allowed the calls by `setpriv` still
/// gets `EDVSTRAPDENIED`, and its `setpriv` is `EDVSPRIVILEGES`, while the other calls it was
/// given work.
#[test]
fn rcvrqst_and_reply_by_a_user_are_trapdenied() {
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    let mut u = script(
        &t.name,
        &[
            "bind:40",
            "await:200",
            "rcvrqst:N",
            "reply:0:1",
            "setpriv:SELF",
            "receive:ANY:N",
            "notify:0",
            "await:201",
        ],
    );
    u.expect("bind:40 -> OK ep=40");
    let all = Priv {
        allowed: CallSet::ALL,
        ..Priv::default_for(false, false)
    };
    me.setpriv(40, &all).unwrap();
    let _g1 = open_gate(&t.dc, 200);
    u.expect("await:200 -> OK");
    u.expect("rcvrqst:N -> EDVSTRAPDENIED");
    u.expect("reply:0:1 -> EDVSTRAPDENIED");
    u.expect("setpriv:SELF -> EDVSPRIVILEGES");
    u.expect("receive:ANY:N -> EDVSAGAIN");
    u.expect("notify:0 -> OK");
    assert_eq!(
        recv(&me, 40, Timeout::NoWait),
        (40, m3ipc::message::notify_from(40))
    );
    let _g2 = open_gate(&t.dc, 201);
    u.finish();
}

/// `reply` to a process that is not waiting in the receive half of a `sendrec` to the caller is
/// `EDVSPROCSTS`: idle, in a plain `receive` from the caller, with its request not yet received,
/// awaiting another server's reply, or already answered.
#[test]
fn reply_to_a_client_not_waiting_is_procsts() {
    let t = TestDc::new('e');
    let s0 = t.dc.bind(0).unwrap();
    let s1 = t.dc.bind(1).unwrap();
    let mut idle = script(
        &t.name,
        &["bind:40", "await:200", "sendrec:0:5:F", "await:201"],
    );
    idle.expect("bind:40 -> OK ep=40");
    assert_eq!(s0.reply(40, &msg(1)), Err(Errno::EDVSPROCSTS));

    let mut rcv = script(&t.name, &["bind:5", "receive:0:F"]);
    rcv.expect("bind:5 -> OK ep=5");
    wait_flags(&t.dc, 5, FLAG_RECEIVING);
    assert_eq!(s0.reply(5, &msg(1)), Err(Errno::EDVSPROCSTS));
    s0.send(5, &msg(6), T).unwrap();
    rcv.expect("receive:0:F -> OK src=0 type=6");
    rcv.finish();

    let mut other = script(&t.name, &["bind:41", "sendrec:1:7:F"]);
    assert_eq!(recv(&s1, ANY, T), (41, 7));
    assert_eq!(s0.reply(41, &msg(1)), Err(Errno::EDVSPROCSTS));
    s1.reply(41, &msg(8)).unwrap();
    other.expect("bind:41 -> OK ep=41");
    other.expect("sendrec:1:7:F -> OK src=1 type=8");
    other.finish();

    let _gate = open_gate(&t.dc, 200);
    idle.expect("await:200 -> OK");
    wait_flags(&t.dc, 40, FLAG_SENDING);
    assert_eq!(s0.reply(40, &msg(1)), Err(Errno::EDVSPROCSTS));
    assert_eq!(recv(&s0, ANY, T), (40, 5));
    s0.reply(40, &msg(9)).unwrap();
    idle.expect("sendrec:0:5:F -> OK src=0 type=9");
    assert_eq!(s0.reply(40, &msg(1)), Err(Errno::EDVSPROCSTS));
    let _g2 = open_gate(&t.dc, 201);
    idle.finish();
}

/// After the DC is removed, every call of a process still attached fails with `EDVSDCNOTRUN`:
/// new calls, `bind`, `wait4bind`, and the calls other processes were blocked in.
#[test]
fn removed_dc_is_dcnotrun() {
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    let mut r = script(&t.name, &["bind:5", "receive:ANY:F"]);
    wait_flags(&t.dc, 5, FLAG_RECEIVING);
    let mut rs = script(&t.name, &["bind:7", "receive:0:F"]);
    wait_flags(&t.dc, 7, FLAG_RECEIVING);
    let mut s = script(&t.name, &["bind:6", "send:0:1:F"]);
    wait_flags(&t.dc, 6, FLAG_SENDING);
    let mut c = script(&t.name, &["bind:40", "sendrec:0:2:F"]);
    wait_flags(&t.dc, 40, FLAG_SENDING);
    let mut wb = script(&t.name, &["sleep:0", "wait4bind:100:F"]);
    wb.expect("sleep:0 -> OK"); // it has the DC open
    assert_eq!(wb.try_line(Duration::from_millis(100)), None);

    Dc::remove(&t.name).unwrap();
    assert!(Dc::open(&t.name).is_err());
    let mut m = msg(1);
    assert_eq!(me.send(5, &m, T), Err(Errno::EDVSDCNOTRUN));
    assert_eq!(me.sendrec(5, &mut m, T), Err(Errno::EDVSDCNOTRUN));
    assert_eq!(me.senda(5, &m), Err(Errno::EDVSDCNOTRUN));
    assert_eq!(me.notify(5), Err(Errno::EDVSDCNOTRUN));
    assert_eq!(me.receive(ANY, &mut m, T), Err(Errno::EDVSDCNOTRUN));
    assert_eq!(me.rcvrqst(&mut m, T), Err(Errno::EDVSDCNOTRUN));
    assert_eq!(me.reply(40, &m), Err(Errno::EDVSDCNOTRUN));
    assert_eq!(me.wakeup(5), Err(Errno::EDVSDCNOTRUN));
    assert_eq!(me.getpriv(SELF), Err(Errno::EDVSDCNOTRUN));
    assert_eq!(
        me.setpriv(SELF, &Priv::default_for(true, false)),
        Err(Errno::EDVSDCNOTRUN)
    );
    assert_eq!(t.dc.bind(8).err(), Some(Errno::EDVSDCNOTRUN));
    assert_eq!(t.dc.wait4bind(8, T), Err(Errno::EDVSDCNOTRUN));
    assert_eq!(t.dc.wait4unbind(5, T), Err(Errno::EDVSDCNOTRUN));

    r.expect("bind:5 -> OK ep=5");
    r.expect("receive:ANY:F -> EDVSDCNOTRUN");
    rs.expect("bind:7 -> OK ep=7");
    rs.expect("receive:0:F -> EDVSDCNOTRUN");
    s.expect("bind:6 -> OK ep=6");
    s.expect("send:0:1:F -> EDVSDCNOTRUN");
    c.expect("bind:40 -> OK ep=40");
    c.expect("sendrec:0:2:F -> EDVSDCNOTRUN");
    wb.expect("wait4bind:100:F -> EDVSDCNOTRUN");
    for w in [r, rs, s, c, wb] {
        w.finish();
    }
}

/// A `send` with NOWAIT to a process already blocked in a `receive` that accepts the caller
/// does not "block" in MINIX or in the original DVK: the message is handed over and the call
/// returns OK, here as soon as the sleeping receiver runs.
#[test]
fn nowait_send_to_a_blocked_receiver_completes() {
    let t = TestDc::new('e');
    let me = t.dc.bind(0).unwrap();
    let mut w = script(&t.name, &["bind:5", "receive:ANY:F", "receive:0:F"]);
    w.expect("bind:5 -> OK ep=5");
    wait_flags(&t.dc, 5, FLAG_RECEIVING);
    assert_eq!(me.send(5, &msg(1), Timeout::NoWait), Ok(()));
    w.expect("receive:ANY:F -> OK src=0 type=1");
    wait_flags(&t.dc, 5, FLAG_RECEIVING);
    assert_eq!(me.send(5, &msg(2), Timeout::NoWait), Ok(()));
    w.expect("receive:0:F -> OK src=0 type=2");
    w.finish();
}
