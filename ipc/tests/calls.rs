//! Acceptance point 2, success paths: every call of docs/ARCHITECTURE.md section 4 between real processes.
//!
//! The peers are scripted child processes (see `script/mod.rs`): each binds a slot and makes its
//! calls, printing one line per call; the test process holds the other end and checks the lines
//! and the slot table. A child that must be blocked before the test goes on is observed through
//! `Dc::getprocinfo(nr).flags` (`FLAG_SENDING`/`FLAG_RECEIVING`). Every test has its own DC.
//!
//! Errors are in `errors.rs`.
mod script;
mod support;

use m3ipc::mailbox::ASYNC_ENVELOPES;
use m3ipc::message::{is_notify, notify_from};
use m3ipc::privilege::level;
use m3ipc::{
    ANY, CallSet, Errno, FLAG_RECEIVING, FLAG_SENDING, Message, NONE, Priv, SELF, SlotState,
    Timeout, endpoint,
};
use script::{
    T, assert_nothing_queued, expect_ep, msg, open_gate, recv, script, wait_flags, wait_free,
};
use std::time::Duration;
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

/// `send` blocks until the destination has received; the receiver sees the message intact.
#[test]
fn send_is_a_rendezvous() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let mut w = script(&t.name, &["bind:5", "send:0:7:F"]);
    w.expect("bind:5 -> OK ep=5");
    wait_flags(&t.dc, 5, FLAG_SENDING);
    assert_eq!(t.dc.getprocinfo(5).unwrap().sendto, 0);
    // Nobody received yet: the child's send has not returned.
    assert_eq!(w.try_line(Duration::from_millis(200)), None);
    assert_eq!(recv(&me, ANY, T), (5, 7));
    w.expect("send:0:7:F -> OK");
    w.finish();
    assert_eq!(t.dc.getprocinfo(0).unwrap().received, 1);
}

/// A `receive` that blocks first is completed by a later `send`.
#[test]
fn blocked_receive_is_completed_by_send() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let mut w = script(&t.name, &["bind:5", "receive:ANY:F", "receive:0:F"]);
    w.expect("bind:5 -> OK ep=5");
    wait_flags(&t.dc, 5, FLAG_RECEIVING);
    assert_eq!(t.dc.getprocinfo(5).unwrap().getfrom, ANY);
    me.send(5, &msg(9), T).unwrap();
    w.expect("receive:ANY:F -> OK src=0 type=9");
    // And a receive from one specific source.
    wait_flags(&t.dc, 5, FLAG_RECEIVING);
    assert_eq!(t.dc.getprocinfo(5).unwrap().getfrom, 0);
    me.send(5, &msg(10), T).unwrap();
    w.expect("receive:0:F -> OK src=0 type=10");
    w.finish();
    assert_eq!(t.dc.getprocinfo(0).unwrap().sent, 2);
}

/// Senders queued on one destination are received in the order they queued, whatever their
/// slot numbers and whether they `send`, `sendrec` or `senda`.
#[test]
fn queued_senders_are_served_fifo() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let order = [
        (7, "send"),
        (40, "sendrec"),
        (5, "senda"),
        (9, "send"),
        (-3, "send"),
        (41, "sendrec"),
    ];
    let mut ws = Vec::new();
    for (nr, kind) in order {
        let bind = format!("bind:{nr}");
        let cmd = match kind {
            "senda" => format!("senda:0:{nr}"),
            k => format!("{k}:0:{nr}:F"),
        };
        let mut w = script(&t.name, &[&bind, &cmd, "await:200"]);
        // The next one queues only after this one has.
        if kind == "senda" {
            w.expect(&format!("{bind} -> OK ep={nr}"));
            w.expect(&format!("{cmd} -> OK"));
        } else {
            wait_flags(&t.dc, nr, FLAG_SENDING);
        }
        ws.push((w, bind, cmd, kind));
    }
    for (nr, kind) in order {
        assert_eq!(recv(&me, ANY, T), (nr, nr));
        if kind == "sendrec" {
            me.reply(nr, &msg(nr + 1000)).unwrap();
        }
    }
    let _gate = open_gate(&t.dc, 200);
    for (mut w, bind, cmd, kind) in ws {
        match kind {
            "senda" => {}
            "sendrec" => {
                w.expect(&format!("{bind} -> OK ep={}", &bind[5..]));
                w.expect(&format!(
                    "{cmd} -> OK src=0 type={}",
                    bind[5..].parse::<i32>().unwrap() + 1000
                ));
            }
            _ => {
                w.expect(&format!("{bind} -> OK ep={}", &bind[5..]));
                w.expect(&format!("{cmd} -> OK"));
            }
        }
        w.expect("await:200 -> OK");
        w.finish();
    }
}

/// `receive(src)` takes `src`'s message although another sender queued earlier and another
/// source's notification is pending; both stay for a later `receive`.
#[test]
fn receive_from_one_source_leaves_the_others() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let mut a = script(&t.name, &["bind:5", "send:0:50:F"]);
    wait_flags(&t.dc, 5, FLAG_SENDING);
    let mut b = script(&t.name, &["bind:6", "send:0:60:F"]);
    wait_flags(&t.dc, 6, FLAG_SENDING);
    let mut c = script(&t.name, &["bind:7", "notify:0", "await:200"]);
    c.expect("bind:7 -> OK ep=7");
    c.expect("notify:0 -> OK");

    assert_eq!(recv(&me, 6, T), (6, 60));
    b.expect("bind:6 -> OK ep=6");
    b.expect("send:0:60:F -> OK");
    // A is still queued, C's notification still pending.
    assert_ne!(t.dc.getprocinfo(5).unwrap().flags & FLAG_SENDING, 0);
    assert_eq!(recv(&me, 5, T), (5, 50));
    a.expect("bind:5 -> OK ep=5");
    a.expect("send:0:50:F -> OK");
    assert_eq!(recv(&me, ANY, Timeout::NoWait), (7, notify_from(7)));
    assert_nothing_queued(&me, "nothing more should be queued");
    let _gate = open_gate(&t.dc, 200);
    for w in [a, b, c] {
        w.finish();
    }
}

/// `receive(src)` delivers `src`'s own pending notification before its queued message, and
/// leaves the notifications of other sources pending.
#[test]
fn receive_from_a_source_takes_its_notification_first() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let mut d = script(&t.name, &["bind:8", "notify:0", "await:200"]);
    d.expect("bind:8 -> OK ep=8");
    d.expect("notify:0 -> OK");
    let mut c = script(&t.name, &["bind:9", "notify:0", "send:0:90:F"]);
    c.expect("bind:9 -> OK ep=9");
    c.expect("notify:0 -> OK");
    wait_flags(&t.dc, 9, FLAG_SENDING);
    assert_eq!(recv(&me, 9, T), (9, notify_from(9)));
    assert_eq!(recv(&me, 9, T), (9, 90));
    c.expect("send:0:90:F -> OK");
    c.finish();
    // 8's notification was not taken by the receives from 9.
    assert_eq!(recv(&me, ANY, Timeout::NoWait), (8, notify_from(8)));
    let _gate = open_gate(&t.dc, 200);
    d.finish();
}

/// A process blocked in `receive(src)` is woken by `src`'s notification but not by another
/// source's, which stays pending for its next `receive(ANY)`.
#[test]
fn blocked_receive_from_a_source_ignores_other_notifications() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let other = t.dc.bind(1).unwrap();
    let mut r = script(&t.name, &["bind:5", "receive:0:F", "receive:ANY:N"]);
    r.expect("bind:5 -> OK ep=5");
    wait_flags(&t.dc, 5, FLAG_RECEIVING);
    other.notify(5).unwrap();
    assert_eq!(r.try_line(Duration::from_millis(100)), None);
    assert_ne!(t.dc.getprocinfo(5).unwrap().flags & FLAG_RECEIVING, 0);
    me.notify(5).unwrap();
    r.expect(&format!("receive:0:F -> OK src=0 type={}", notify_from(0)));
    r.expect(&format!(
        "receive:ANY:N -> OK src=1 type={}",
        notify_from(1)
    ));
    r.finish();
}

/// Repeated notifications before the receiver takes one coalesce: each returns OK, one message
/// is delivered, and the repeats count in the receiver's `notify_overruns`. A notification sent
/// after delivery is a new one, not an overrun.
#[test]
fn notify_repeats_coalesce_and_count_overruns() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let mut w = script(
        &t.name,
        &[
            "bind:7",
            "notify:0",
            "notify:0",
            "notify:0",
            "await:200",
            "notify:0",
            "await:201",
        ],
    );
    w.expect("bind:7 -> OK ep=7");
    for _ in 0..3 {
        w.expect("notify:0 -> OK");
    }
    let info = t.dc.getprocinfo(0).unwrap();
    assert_eq!(info.notify_overruns, 2);
    assert_eq!(info.notified, 0);

    let mut m = Message::default();
    me.receive(ANY, &mut m, Timeout::NoWait).unwrap();
    assert_eq!(m.m_source, 7);
    assert_eq!(m.m_type, notify_from(7));
    assert!(is_notify(m.m_type));
    assert!(m.notify().tv_sec > 0, "no timestamp in {m:?}");
    assert_nothing_queued(&me, "coalesced notifications delivered twice");
    let info = t.dc.getprocinfo(0).unwrap();
    assert_eq!((info.notified, info.notify_overruns), (1, 2));

    let _g1 = open_gate(&t.dc, 200);
    w.expect("await:200 -> OK");
    w.expect("notify:0 -> OK");
    assert_eq!(recv(&me, ANY, Timeout::NoWait), (7, notify_from(7)));
    let info = t.dc.getprocinfo(0).unwrap();
    assert_eq!((info.notified, info.notify_overruns), (2, 2));
    let _g2 = open_gate(&t.dc, 201);
    w.finish();
}

/// Pending notifications are delivered lowest slot first (tasks before servers), whatever the
/// order they were sent in; a notification wakes a receiver blocked in `receive(ANY)`.
#[test]
fn notifications_lowest_source_first_and_wake_a_receiver() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let mut ws = Vec::new();
    for nr in [9, 3, -5] {
        let mut w = script(&t.name, &[&format!("bind:{nr}"), "notify:0", "await:200"]);
        w.expect(&format!("bind:{nr} -> OK ep={nr}"));
        w.expect("notify:0 -> OK");
        ws.push(w);
    }
    for nr in [-5, 3, 9] {
        assert_eq!(recv(&me, ANY, Timeout::NoWait), (nr, notify_from(nr)));
    }

    let mut r = script(&t.name, &["bind:4", "receive:ANY:F"]);
    r.expect("bind:4 -> OK ep=4");
    wait_flags(&t.dc, 4, FLAG_RECEIVING);
    me.notify(4).unwrap();
    r.expect(&format!(
        "receive:ANY:F -> OK src=0 type={}",
        notify_from(0)
    ));
    r.finish();
    let _gate = open_gate(&t.dc, 200);
    ws.into_iter().for_each(support::Worker::finish);
}

/// `sendrec` from a user endpoint: the server receives the request, the client waits in the
/// receive half (RECEIVING from the server), and `reply` (or a `send` to that client) completes
/// it with the reply in the same message.
#[test]
fn sendrec_and_reply() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let mut w = script(&t.name, &["bind:40", "sendrec:0:5:F", "sendrec:0:7:F"]);
    w.expect("bind:40 -> OK ep=40");
    // Queued: sending the request and (already) receiving from the server.
    wait_flags(&t.dc, 40, FLAG_SENDING | FLAG_RECEIVING);
    let info = t.dc.getprocinfo(40).unwrap();
    assert_eq!((info.sendto, info.getfrom), (0, 0));
    assert_eq!(recv(&me, ANY, T), (40, 5));
    let info = t.dc.getprocinfo(40).unwrap();
    assert_eq!(info.flags & (FLAG_SENDING | FLAG_RECEIVING), FLAG_RECEIVING);
    assert_eq!(info.getfrom, 0);
    assert_eq!(w.try_line(Duration::from_millis(100)), None);
    me.reply(40, &msg(6)).unwrap();
    w.expect("sendrec:0:5:F -> OK src=0 type=6");

    // A plain send to a client waiting for our reply is that reply.
    assert_eq!(recv(&me, ANY, T), (40, 7));
    me.send(40, &msg(8), T).unwrap();
    w.expect("sendrec:0:7:F -> OK src=0 type=8");
    w.finish();
    let info = t.dc.getprocinfo(0).unwrap();
    assert_eq!((info.received, info.sent), (2, 2));
}

/// `rcvrqst` takes the oldest request and ignores pending notifications, which stay for
/// `receive`.
#[test]
fn rcvrqst_takes_requests_and_ignores_notifications() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let mut n = script(&t.name, &["bind:7", "notify:0", "await:200"]);
    n.expect("bind:7 -> OK ep=7");
    n.expect("notify:0 -> OK");
    let mut m = Message::default();
    assert_eq!(
        me.rcvrqst(&mut m, Timeout::NoWait),
        Err(Errno::EDVSAGAIN),
        "rcvrqst took a notification"
    );

    let mut c1 = script(&t.name, &["bind:40", "sendrec:0:41:F"]);
    wait_flags(&t.dc, 40, FLAG_SENDING);
    let mut c2 = script(&t.name, &["bind:41", "sendrec:0:42:F"]);
    wait_flags(&t.dc, 41, FLAG_SENDING);
    for (src, ty) in [(40, 41), (41, 42)] {
        me.rcvrqst(&mut m, T).unwrap();
        assert_eq!((m.m_source, m.m_type), (src, ty));
        assert!(script::payload_ok(&m));
        me.reply(src, &msg(ty + 100)).unwrap();
    }
    c1.expect("bind:40 -> OK ep=40");
    c1.expect("sendrec:0:41:F -> OK src=0 type=141");
    c2.expect("bind:41 -> OK ep=41");
    c2.expect("sendrec:0:42:F -> OK src=0 type=142");
    assert_eq!(recv(&me, ANY, Timeout::NoWait), (7, notify_from(7)));

    // A blocked rcvrqst is completed by a request that comes later.
    let mut c3 = script(&t.name, &["bind:42", "await:201", "sendrec:0:43:F"]);
    c3.expect("bind:42 -> OK ep=42");
    let _g = open_gate(&t.dc, 201);
    me.rcvrqst(&mut m, T).unwrap();
    assert_eq!((m.m_source, m.m_type), (42, 43));
    me.reply(42, &msg(1)).unwrap();
    c3.expect("await:201 -> OK");
    c3.expect("sendrec:0:43:F -> OK src=0 type=1");
    let _gate = open_gate(&t.dc, 200);
    for w in [n, c1, c2, c3] {
        w.finish();
    }
}

/// `senda` returns at once (the destination is not receiving) and its messages arrive in order
/// with the true sender.
#[test]
fn senda_queues_and_returns_at_once() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let mut w = script(
        &t.name,
        &["bind:5", "senda:0:1", "senda:0:2", "senda:0:3", "await:200"],
    );
    w.expect("bind:5 -> OK ep=5");
    for ty in 1..=3 {
        w.expect(&format!("senda:0:{ty} -> OK"));
    }
    assert_eq!(t.dc.getprocinfo(5).unwrap().flags & FLAG_SENDING, 0);
    for ty in 1..=3 {
        assert_eq!(recv(&me, ANY, T), (5, ty));
    }
    let _gate = open_gate(&t.dc, 200);
    w.finish();
}

/// The `senda` queue is bounded: beyond `ASYNC_ENVELOPES` messages in flight the call fails with
/// `EDVSAGAIN` (nothing is lost), and a received message frees room for the next.
#[test]
fn senda_queue_full_is_again() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let n = ASYNC_ENVELOPES as i32;
    let mut cmds: Vec<String> = vec!["bind:5".into()];
    cmds.extend((1..=n + 1).map(|i| format!("senda:0:{i}")));
    cmds.extend([
        "await:200".into(),
        format!("senda:0:{}", n + 2),
        "await:201".into(),
    ]);
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let mut w = script(&t.name, &refs);
    w.expect("bind:5 -> OK ep=5");
    for i in 1..=n {
        w.expect(&format!("senda:0:{i} -> OK"));
    }
    w.expect(&format!("senda:0:{} -> EDVSAGAIN", n + 1));
    assert_eq!(recv(&me, ANY, T), (5, 1));
    let _g1 = open_gate(&t.dc, 200);
    w.expect("await:200 -> OK");
    w.expect(&format!("senda:0:{} -> OK", n + 2));
    for ty in (2..=n).chain([n + 2]) {
        assert_eq!(recv(&me, ANY, T), (5, ty));
    }
    assert_nothing_queued(&me, "nothing more should be queued");
    let _g2 = open_gate(&t.dc, 201);
    w.finish();
}

/// `wakeup` makes a blocked `receive(ANY)` and a blocked `rcvrqst` return `EDVSWOKENUP`; sent to
/// a process that is not receiving, it makes its *next* `receive(ANY)` return it (once), while a
/// `receive` from a specific source ignores it.
#[test]
fn wakeup_interrupts_receive_any_and_rcvrqst() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let mut w = script(
        &t.name,
        &[
            "bind:5",
            "receive:ANY:F",
            "rcvrqst:F",
            "await:200",
            "receive:0:N",
            "receive:ANY:N",
            "receive:ANY:N",
        ],
    );
    w.expect("bind:5 -> OK ep=5");
    wait_flags(&t.dc, 5, FLAG_RECEIVING);
    me.wakeup(5).unwrap();
    w.expect("receive:ANY:F -> EDVSWOKENUP");
    wait_flags(&t.dc, 5, FLAG_RECEIVING);
    me.wakeup(5).unwrap();
    w.expect("rcvrqst:F -> EDVSWOKENUP");
    eventually_not_receiving(&t.dc, 5);
    me.wakeup(5).unwrap();
    let _gate = open_gate(&t.dc, 200);
    w.expect("await:200 -> OK");
    w.expect("receive:0:N -> EDVSAGAIN");
    w.expect("receive:ANY:N -> EDVSWOKENUP");
    w.expect("receive:ANY:N -> EDVSAGAIN");
    w.finish();
}

fn eventually_not_receiving(dc: &m3ipc::Dc, nr: i32) {
    support::eventually(script::STATE_WAIT, "not receiving", || {
        dc.getprocinfo(nr)
            .is_ok_and(|i| i.flags & FLAG_RECEIVING == 0)
    });
}

/// `wait4bind` returns the endpoint once the slot is bound (also to a child blocked in it),
/// `SELF` waits for the caller's own binding, and `wait4unbind` returns once the binding is gone.
#[test]
fn wait4bind_and_wait4unbind() {
    let t = TestDc::new('c');
    let dc = &t.dc;
    assert_eq!(dc.wait4bind(SELF, Timeout::NoWait), Err(Errno::EDVSAGAIN));
    assert_eq!(dc.wait4bind(5, Timeout::NoWait), Err(Errno::EDVSAGAIN));

    let mut waiter = script(&t.name, &["wait4bind:5:F"]);
    let mut b = script(&t.name, &["bind:5", "await:200"]);
    assert_eq!(dc.wait4bind(5, T), Ok(5));
    b.expect("bind:5 -> OK ep=5");
    waiter.expect("wait4bind:5:F -> OK ep=5");
    waiter.finish();

    let _me = dc.bind(0).unwrap();
    assert_eq!(dc.wait4bind(SELF, Timeout::NoWait), Ok(0));
    assert_eq!(dc.wait4bind(5, Timeout::NoWait), Ok(5));

    assert_eq!(dc.wait4unbind(5, Timeout::NoWait), Err(Errno::EDVSAGAIN));
    let mut unwaiter = script(&t.name, &["wait4unbind:5:F"]);
    let _gate = open_gate(dc, 200);
    assert_eq!(dc.wait4unbind(5, T), Ok(()));
    b.expect("await:200 -> OK");
    b.finish();
    unwaiter.expect("wait4unbind:5:F -> OK");
    unwaiter.finish();
    // The old endpoint stays unbound even when the slot is bound again.
    wait_free(dc, 5);
    let again = dc.bind(5).unwrap();
    assert_ne!(again.endpoint(), 5);
    assert_eq!(dc.wait4unbind(5, Timeout::NoWait), Ok(()));
    assert_eq!(dc.wait4bind(5, Timeout::NoWait), Ok(again.endpoint()));
}

/// `getep`, `getprocinfo` and `getdcinfo` describe the DC as other processes bind and leave it.
#[test]
fn getep_getprocinfo_getdcinfo() {
    let t = TestDc::new('c');
    let dc = &t.dc;
    let info = dc.info();
    assert_eq!(info.name, t.name);
    assert_eq!(info.creator_pid, std::process::id());
    assert!(info.created_at > 0);
    assert_eq!(
        (
            info.config.nr_tasks,
            info.config.nr_procs,
            info.config.nr_sysprocs
        ),
        (34, 221, 64)
    );
    assert_eq!(info.bound, 0);
    assert!(info.region_bytes > 4096);
    assert_eq!(dc.getep(std::process::id()), Err(Errno::EDVSNOTBIND));

    let mut k = script(&t.name, &["bind:12:kid", "await:200"]);
    k.expect("bind:12:kid -> OK ep=12");
    let mut u = script(&t.name, &["bind:40:user", "await:200"]);
    u.expect("bind:40:user -> OK ep=40");
    let _me = dc.bind_named(0, "parent").unwrap();
    assert_eq!(dc.getep(std::process::id()), Ok(0));
    assert_eq!(dc.getep(k.child.id()), Ok(12));
    assert_eq!(dc.getep(u.child.id()), Ok(40));
    assert_eq!(dc.info().bound, 3);

    let p = dc.getprocinfo(12).unwrap();
    assert_eq!(
        (p.nr, p.endpoint, p.state, p.pid, p.name.as_str()),
        (12, 12, SlotState::Bound, k.child.id(), "kid")
    );
    assert_eq!((p.flags, p.getfrom, p.sendto), (0, NONE, NONE));
    assert!(p.system);
    assert_eq!((p.level, p.allowed), (level::SERVER, CallSet::ALL));
    let p = dc.getprocinfo(40).unwrap();
    assert_eq!(
        (p.state, p.pid, p.name.as_str()),
        (SlotState::Bound, u.child.id(), "user")
    );
    assert!(!p.system);
    assert_eq!((p.level, p.allowed), (level::USER, CallSet::USER));
    let p = dc.getprocinfo(-34).unwrap();
    assert!(p.system);
    assert_eq!((p.state, p.pid, p.endpoint), (SlotState::Free, 0, -34));
    assert!(dc.getprocinfo(29).unwrap().system);
    assert!(!dc.getprocinfo(30).unwrap().system);
    let p = dc.getprocinfo(220).unwrap();
    assert_eq!((p.state, p.pid, p.name.as_str()), (SlotState::Free, 0, ""));
    assert_eq!(dc.getprocinfo(221), Err(Errno::EDVSRANGE));
    assert_eq!(dc.getprocinfo(-35), Err(Errno::EDVSRANGE));
    let mut bound: Vec<i32> = dc.procs().iter().map(|p| p.nr).collect();
    bound.sort();
    assert_eq!(bound, [0, 12, 40]);

    let (kid, uid) = (k.child.id(), u.child.id());
    let _gate = open_gate(dc, 200);
    k.finish();
    u.finish();
    wait_free(dc, 12);
    wait_free(dc, 40);
    assert_eq!(dc.getep(kid), Err(Errno::EDVSNOTBIND));
    assert_eq!(dc.getep(uid), Err(Errno::EDVSNOTBIND));
    // The free slot names the endpoint of its next binding.
    assert_eq!(dc.getprocinfo(12).unwrap().endpoint, endpoint::make(1, 12));
    assert_eq!(dc.info().bound, 2); // the parent and the gate
}

/// `setpriv` widens and narrows another endpoint's privileges (seen by `getpriv` and
/// `getprocinfo`, and obeyed by that process's next calls).
#[test]
fn setpriv_and_getpriv() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    assert_eq!(me.getpriv(SELF), Ok(Priv::default_for(true, false)));
    assert_eq!(me.getpriv(0), Ok(Priv::default_for(true, false)));

    let mut u = script(&t.name, &["bind:40", "await:200", "notify:0", "await:201"]);
    u.expect("bind:40 -> OK ep=40");
    let mut s = script(&t.name, &["bind:5", "await:200", "senda:0:1", "notify:0"]);
    s.expect("bind:5 -> OK ep=5");
    assert_eq!(me.getpriv(40), Ok(Priv::default_for(false, false)));

    // Widen the user: it may notify now.
    let wide = Priv {
        level: level::SERVER,
        allowed: CallSet::USER.with(m3ipc::Call::Notify),
        ..Priv::default_for(false, false)
    };
    me.setpriv(40, &wide).unwrap();
    assert_eq!(me.getpriv(40), Ok(wide.clone()));
    let info = t.dc.getprocinfo(40).unwrap();
    assert_eq!((info.level, info.allowed), (level::SERVER, wide.allowed));
    // Narrow a server: no senda.
    let narrow = Priv {
        allowed: CallSet::ALL.without(m3ipc::Call::Senda),
        ..Priv::default_for(true, false)
    };
    me.setpriv(5, &narrow).unwrap();
    assert_eq!(me.getpriv(5), Ok(narrow));

    let _g1 = open_gate(&t.dc, 200);
    u.expect("await:200 -> OK");
    u.expect("notify:0 -> OK");
    s.expect("await:200 -> OK");
    s.expect("senda:0:1 -> EDVSBADCALL");
    s.expect("notify:0 -> OK");
    s.finish();
    assert_eq!(recv(&me, 40, Timeout::NoWait), (40, notify_from(40)));

    // Narrowing itself: the caller's own next call obeys.
    let mine = Priv {
        allowed: CallSet::ALL.without(m3ipc::Call::Wakeup),
        ..Priv::default_for(true, false)
    };
    me.setpriv(SELF, &mine).unwrap();
    assert_eq!(me.wakeup(40), Err(Errno::EDVSBADCALL));
    me.setpriv(SELF, &Priv::default_for(true, false)).unwrap();
    assert_eq!(me.wakeup(40), Ok(()));
    let _g2 = open_gate(&t.dc, 201);
    u.expect("await:201 -> OK");
    u.finish();
}

/// `unbind` of a process that others wait on: queued senders get `EDVSDSTDIED`, `sendrec`
/// clients (queued or awaiting the reply) `EDVSDEADSRCDST`, receivers from it `EDVSSRCDIED`; a
/// `receive(ANY)` is not disturbed; its pending notifications are withdrawn; `senda` messages
/// queued for it are dropped, which frees their sender's queue.
#[test]
fn unbind_wakes_everyone_waiting_on_it() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    let victim = t.dc.bind(3).unwrap();
    let mut held = script(&t.name, &["bind:41", "sendrec:3:41:F"]);
    assert_eq!(recv(&victim, ANY, T), (41, 41));
    let mut sender = script(&t.name, &["bind:5", "send:3:5:F"]);
    wait_flags(&t.dc, 5, FLAG_SENDING);
    let mut client = script(&t.name, &["bind:40", "sendrec:3:40:F"]);
    wait_flags(&t.dc, 40, FLAG_SENDING);
    let mut rfrom = script(&t.name, &["bind:6", "receive:3:F"]);
    wait_flags(&t.dc, 6, FLAG_RECEIVING);
    let mut rany = script(&t.name, &["bind:7", "receive:ANY:F"]);
    wait_flags(&t.dc, 7, FLAG_RECEIVING);
    let n = ASYNC_ENVELOPES;
    let mut cmds: Vec<String> = vec!["bind:8".into()];
    cmds.extend((1..=n).map(|i| format!("senda:3:{i}")));
    cmds.push("await:200".into());
    cmds.extend((1..=n).map(|i| format!("senda:0:{i}")));
    cmds.push("await:201".into());
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let mut async_sender = script(&t.name, &refs);
    async_sender.expect("bind:8 -> OK ep=8");
    for i in 1..=n {
        async_sender.expect(&format!("senda:3:{i} -> OK"));
    }
    victim.notify(0).unwrap();

    victim.unbind().unwrap();
    sender.expect("bind:5 -> OK ep=5");
    sender.expect("send:3:5:F -> EDVSDSTDIED");
    client.expect("bind:40 -> OK ep=40");
    client.expect("sendrec:3:40:F -> EDVSDEADSRCDST");
    held.expect("bind:41 -> OK ep=41");
    held.expect("sendrec:3:41:F -> EDVSDEADSRCDST");
    rfrom.expect("bind:6 -> OK ep=6");
    rfrom.expect("receive:3:F -> EDVSSRCDIED");
    // The receiver from ANY was not disturbed: it still waits, and takes the next message.
    rany.expect("bind:7 -> OK ep=7");
    assert_eq!(rany.try_line(Duration::from_millis(50)), None);
    assert_ne!(t.dc.getprocinfo(7).unwrap().flags & FLAG_RECEIVING, 0);
    me.send(7, &msg(77), T).unwrap();
    rany.expect("receive:ANY:F -> OK src=0 type=77");
    assert_nothing_queued(&me, "the unbound process's notification was delivered");
    let _g1 = open_gate(&t.dc, 200);
    async_sender.expect("await:200 -> OK");
    for i in 1..=n {
        async_sender.expect(&format!("senda:0:{i} -> OK"));
    }
    for i in 1..=n as i32 {
        assert_eq!(recv(&me, ANY, T), (8, i));
    }
    let _g2 = open_gate(&t.dc, 201);
    for w in [sender, client, held, rfrom, rany, async_sender] {
        w.finish();
    }
}

/// `m_source` is stamped by the library: whatever the sender writes there, the receiver (and a
/// client receiving a reply) sees the true endpoint, with its generation.
#[test]
fn m_source_cannot_be_forged() {
    let t = TestDc::new('c');
    let me = t.dc.bind(0).unwrap();
    // A first binding of 5 comes and goes, so the next one has an endpoint other than 5.
    let first = script(&t.name, &["bind:5"]);
    first.finish();
    wait_free(&t.dc, 5);
    let mut w = script(
        &t.name,
        &[
            "bind:5",
            "send:0:1:F:0",
            "senda:0:2:12345",
            "sendrec:0:3:F:7",
            "await:200",
        ],
    );
    let ep = expect_ep(&mut w, "bind:5");
    assert_eq!(ep, endpoint::make(1, 5));
    for ty in 1..=3 {
        assert_eq!(recv(&me, ANY, T), (ep, ty));
    }
    let mut reply = msg(4);
    reply.m_source = 99;
    me.reply(ep, &reply).unwrap();
    w.expect("send:0:1:F:0 -> OK");
    w.expect("senda:0:2:12345 -> OK");
    w.expect("sendrec:0:3:F:7 -> OK src=0 type=4");
    let _gate = open_gate(&t.dc, 200);
    w.finish();
}

/// `wait4bind` made through a bound endpoint: allowed to a user, shown as `FLAG_WAITBIND` on
/// its slot while it waits (and cleared after), refused with `EDVSBADCALL` once the call is
/// taken from its privileges.
#[test]
fn wait4bind_by_a_bound_endpoint_shows_waitbind() {
    let t = TestDc::new('c');
    let user = t.dc.bind(40).unwrap();
    let waiter = std::thread::spawn(move || {
        let r = user.wait4bind(7, Timeout::Millis(20_000));
        (r, user)
    });
    support::eventually(Duration::from_secs(10), "FLAG_WAITBIND on 40", || {
        t.dc.getprocinfo(40).unwrap().flags & m3ipc::FLAG_WAITBIND != 0
    });
    let seven = t.dc.bind(7).unwrap();
    let (r, user) = waiter.join().unwrap();
    assert_eq!(r, Ok(seven.endpoint()));
    assert_eq!(
        t.dc.getprocinfo(40).unwrap().flags & m3ipc::FLAG_WAITBIND,
        0
    );
    assert_eq!(
        user.wait4unbind(6, Timeout::NoWait),
        Ok(()),
        "6 is not bound"
    );
    let mut p = seven.getpriv(40).unwrap();
    p.allowed = p.allowed.without(m3ipc::Call::Wait4bind);
    seven.setpriv(40, &p).unwrap();
    assert_eq!(user.wait4bind(7, Timeout::NoWait), Err(Errno::EDVSBADCALL));
}
