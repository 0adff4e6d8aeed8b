//! Bind on behalf of another process (`Dc::bind_for`) and taking such a slot (`Dc::attach`).
//!
//! The binder (here the test process, in MUK2 the SYSTASK server) claims a slot for a child
//! process; the child attaches it and makes calls through it; the slot belongs to the child for
//! liveness: when the child dies the slot is reaped and binds again at a new generation.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::{ANY, Dc, Errno, HARDWARE, Message, SlotState, Timeout, endpoint};
use std::time::Duration;
use support::{TestDc, child_entry, eventually, say, spawn};

const SERVER: i32 = 0;
const SLOT: i32 = 100;
const LONG: Timeout = Timeout::Millis(20_000);
const T_PING: i32 = 7;
const T_PONG: i32 = 8;

fn run_role(role: &str, dc: &str, args: &[String]) {
    let dc = Dc::open(dc).unwrap();
    let arg = |i: usize| -> i32 { args[i].parse().unwrap() };
    match role {
        // Wait until slot `args[0]` is bound (for us), attach it, ping `args[1]` through it.
        "attach" => {
            let nr = arg(0);
            let ep = dc.wait4bind(endpoint::make(0, nr), LONG).unwrap();
            let p = dc.attach(nr).unwrap();
            assert_eq!(p.endpoint(), ep);
            assert_eq!(dc.getprocinfo(nr).unwrap().pid, std::process::id());
            // Attaching twice from another process's point of view is the same check; a slot
            // of someone else is refused.
            assert_eq!(
                dc.attach(endpoint::nr(arg(1))).err(),
                Some(Errno::EDVSBADPROC)
            );
            let mut m = Message::new(T_PING);
            p.sendrec(arg(1), &mut m, LONG).unwrap();
            assert_eq!(m.m_type, T_PONG);
            say(&format!("ok {}", p.endpoint()));
            if args.len() > 2 {
                // Keep the slot until killed.
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        // Just live until killed.
        "idle" => {
            say("up");
            std::thread::sleep(Duration::from_secs(60));
        }
        _ => panic!("unknown role {role}"),
    }
}

#[test]
fn child_main() {
    child_entry(run_role);
}

#[test]
fn child_attaches_a_slot_bound_for_it() {
    let t = TestDc::new('b');
    let server = t.dc.bind(SERVER).unwrap();
    let child = spawn(
        "attach",
        &t.name,
        &[&SLOT.to_string(), &server.endpoint().to_string()],
    );
    let pid = child.child.id();
    let ep = t.dc.bind_for(pid, SLOT, "kid").unwrap();
    let info = t.dc.getprocinfo(SLOT).unwrap();
    assert_eq!(info.state, SlotState::Bound);
    assert_eq!(info.pid, pid);
    assert_eq!(info.endpoint, ep);
    assert_eq!(info.name, "kid");
    // Only the named owner may take it.
    assert_eq!(t.dc.attach(SLOT).err(), Some(Errno::EDVSBADPROC));
    // The slot is used, for everyone.
    assert_eq!(t.dc.bind(SLOT).err(), Some(Errno::EDVSSLOTUSED));
    assert_eq!(
        t.dc.bind_for(std::process::id(), SLOT, "x").err(),
        Some(Errno::EDVSSLOTUSED)
    );

    let mut m = Message::default();
    server.receive(ANY, &mut m, LONG).unwrap();
    assert_eq!(m.m_source, ep);
    assert_eq!(m.m_type, T_PING);
    server.reply(ep, &Message::new(T_PONG)).unwrap();
    let mut child = child;
    child.expect(&format!("ok {ep}"));
    child.finish();
    // The child's Proc unbound the slot when it returned.
    eventually(Duration::from_secs(5), "slot freed", || {
        t.dc.getprocinfo(SLOT).unwrap().state == SlotState::Free
    });
}

#[test]
fn bad_pid_and_bad_slot() {
    let t = TestDc::new('b');
    assert_eq!(t.dc.bind_for(0, SLOT, "").err(), Some(Errno::EDVSBADPID));
    assert_eq!(
        t.dc.bind_for(u32::MAX, SLOT, "").err(),
        Some(Errno::EDVSBADPID)
    );
    // A process that has exited (reaped) and one that is a zombie are no owners.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    assert_eq!(
        t.dc.bind_for(gone_pid, SLOT, "").err(),
        Some(Errno::EDVSBADPID)
    );
    let mut zombie = std::process::Command::new("true").spawn().unwrap();
    eventually(Duration::from_secs(5), "zombie", || {
        std::fs::read_to_string(format!("/proc/{}/stat", zombie.id()))
            .is_ok_and(|s| s.contains(") Z"))
    });
    assert_eq!(
        t.dc.bind_for(zombie.id(), SLOT, "").err(),
        Some(Errno::EDVSBADPID)
    );
    zombie.wait().unwrap();
    // Range and special slots, as for bind.
    let me = std::process::id();
    assert_eq!(t.dc.bind_for(me, 100_000, "").err(), Some(Errno::EDVSRANGE));
    assert_eq!(
        t.dc.bind_for(me, HARDWARE, "").err(),
        Some(Errno::EDVSBADPROC)
    );
    assert_eq!(t.dc.attach(100_000).err(), Some(Errno::EDVSRANGE));
    assert_eq!(t.dc.attach(HARDWARE).err(), Some(Errno::EDVSBADPROC));
    assert_eq!(t.dc.attach(SLOT).err(), Some(Errno::EDVSNOTBIND));
    // Nothing was left bound by the failures.
    assert!(t.dc.procs().is_empty());
}

#[test]
fn binding_for_oneself_then_attach_works_like_bind() {
    let t = TestDc::new('b');
    let ep = t.dc.bind_for(std::process::id(), SLOT, "me").unwrap();
    let p = t.dc.attach(SLOT).unwrap();
    assert_eq!(p.endpoint(), ep);
    let server = t.dc.bind(SERVER).unwrap();
    // A user slot may sendrec (and only that) through the attached handle.
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut m = Message::default();
            server.receive(ANY, &mut m, LONG).unwrap();
            assert_eq!(m.m_source, ep);
            server.reply(ep, &Message::new(T_PONG)).unwrap();
        });
        let mut m = Message::new(T_PING);
        p.sendrec(SERVER, &mut m, LONG).unwrap();
        assert_eq!(m.m_type, T_PONG);
    });
    p.unbind().unwrap();
    assert_eq!(t.dc.getprocinfo(SLOT).unwrap().state, SlotState::Free);
    // Rebinding gives a new generation.
    let again = t.dc.bind_for(std::process::id(), SLOT, "me").unwrap();
    assert_ne!(again, ep);
    drop(t.dc.attach(SLOT).unwrap());
}

#[test]
fn slot_of_a_dead_owner_is_reaped() {
    let t = TestDc::new('b');
    // Bound for a child that never attaches, then is killed.
    let mut idle = spawn("idle", &t.name, &[]);
    idle.expect("up");
    let ep1 = t.dc.bind_for(idle.child.id(), SLOT, "idle").unwrap();
    // Bound for a child that attaches and uses the slot, then is killed while holding it.
    let server = t.dc.bind(SERVER).unwrap();
    let mut user = spawn(
        "attach",
        &t.name,
        &[
            &(SLOT + 1).to_string(),
            &server.endpoint().to_string(),
            "hold",
        ],
    );
    let ep2 = t.dc.bind_for(user.child.id(), SLOT + 1, "user").unwrap();
    let mut m = Message::default();
    server.receive(ANY, &mut m, LONG).unwrap();
    server.reply(m.m_source, &Message::new(T_PONG)).unwrap();
    user.expect(&format!("ok {ep2}"));

    // Alive: nobody may reap them.
    assert_eq!(t.dc.reap_dead(), 0);
    idle.kill();
    user.kill();
    // A sender to the dead slot learns it at once; and the slots bind again.
    assert_eq!(
        server.send(ep2, &Message::new(1), LONG).err(),
        Some(Errno::EDVSDSTDIED)
    );
    let _ = t.dc.reap_dead();
    for (nr, old) in [(SLOT, ep1), (SLOT + 1, ep2)] {
        assert_eq!(t.dc.getprocinfo(nr).unwrap().state, SlotState::Free);
        let p = t.dc.bind(nr).unwrap();
        assert_ne!(p.endpoint(), old);
    }
}
