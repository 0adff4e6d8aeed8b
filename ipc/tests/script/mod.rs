//! A scripted child for the call tests (`calls.rs`, `errors.rs`), and the parent-side helpers
//! that go with it.
//!
//! The child role `script` runs one call per argument, in order, and prints
//! `"<command> -> <outcome>"` after each, where the outcome is `OK`, `OK <details>` or the
//! error's DVK name (`EDVSLOCKED`, ...). The parent asserts on these exact lines, so a test reads
//! as the conversation it checks. Commands (fields separated by `:`; an endpoint is a number or
//! `ANY`/`NONE`/`SELF`/`HW`; a timeout is `F` (forever), `N` (no wait) or milliseconds):
//!
//! | command | call | outcome details |
//! |---|---|---|
//! | `bind:NR[:NAME]` | `Dc::bind_named` | `ep=E` |
//! | `unbind` | `Proc::unbind` | |
//! | `send:DST:TYPE:TMO[:FORGE]` | `send` (with `m_source = FORGE` set by the caller) | |
//! | `sendrec:DST:TYPE:TMO[:FORGE]` | `sendrec` | `src=S type=T` of the reply |
//! | `senda:DST:TYPE[:FORGE]` | `senda` | |
//! | `receive:SRC:TMO` | `receive` | `src=S type=T` |
//! | `rcvrqst:TMO` | `rcvrqst` | `src=S type=T` |
//! | `notify:DST` | `notify` | |
//! | `reply:DST:TYPE[:FORGE]` | `reply` | |
//! | `wakeup:EP` | `wakeup` | |
//! | `getpriv:EP` | `getpriv` | `allowed=HEX` |
//! | `setpriv:EP` | `setpriv` (the default privileges of a system process) | |
//! | `wait4bind:EP:TMO` | `Dc::wait4bind` | `ep=E` |
//! | `wait4unbind:EP:TMO` | `Dc::wait4unbind` | |
//! | `await:NR` | `Dc::wait4bind(NR, 30 s)`: a gate the parent opens by binding `NR` | |
//! | `sleep:MS` | sleep | |
//!
//! Every message a script sends carries a payload pattern derived from its type, and every
//! message it receives (other than a notification) is checked against it (`BADPAYLOAD`
//! otherwise). A call that fails with `EDVSTIMEDOUT` must have waited at least its timeout (the
//! child panics otherwise); nothing else about timing is asserted.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crate::support::{Worker, eventually, say, spawn};
use m3ipc::message::is_notify;
use m3ipc::{ANY, Dc, Endpoint, Errno, HARDWARE, Message, NONE, Priv, Proc, SELF, Timeout};
use std::time::{Duration, Instant};

/// The timeout of the parent's own blocking calls: long enough for a loaded machine, short
/// enough that a bug shows as `EDVSTIMEDOUT` rather than a hang.
pub const T: Timeout = Timeout::Millis(10_000);
/// How long the parent waits for a child to reach a state.
pub const STATE_WAIT: Duration = Duration::from_secs(10);

/// A message of type `t` carrying the payload pattern of `t`.
pub fn msg(t: i32) -> Message {
    let mut m = Message::new(t);
    for (i, w) in m.payload.iter_mut().enumerate() {
        *w = 0xa5 << 56 | (t as u32 as u64) << 16 | i as u64;
    }
    m
}

/// Whether `m` carries the payload pattern of its type.
pub fn payload_ok(m: &Message) -> bool {
    m.payload == msg(m.m_type).payload
}

/// Start a scripted child in DC `dc`.
pub fn script(dc: &str, cmds: &[&str]) -> Worker {
    spawn("script", dc, cmds)
}

/// Wait until slot `nr` shows all the `flags` in `getprocinfo`.
pub fn wait_flags(dc: &Dc, nr: i32, flags: u32) {
    eventually(STATE_WAIT, &format!("slot {nr} flags {flags:#x}"), || {
        dc.getprocinfo(nr).is_ok_and(|i| i.flags & flags == flags)
    });
}

/// Wait until every thread of process `pid` sleeps (state `S` in `/proc`). Once a child shown
/// blocked by `wait_flags` is asleep, it has finished the checks a call makes before it sleeps
/// (the deadlock check in particular, which runs after the call is already visible as SENDING
/// or RECEIVING but before its first sleep).
pub fn wait_asleep(pid: u32) {
    let all_sleep = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        let mut n = 0;
        for t in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                return false;
            };
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].trim_start().chars().next());
            if state != Some('S') {
                return false;
            }
            n += 1;
        }
        n > 0
    };
    eventually(STATE_WAIT, &format!("process {pid} asleep"), all_sleep);
}

/// Wait until slot `nr` is free.
pub fn wait_free(dc: &Dc, nr: i32) {
    eventually(STATE_WAIT, &format!("slot {nr} free"), || {
        dc.getprocinfo(nr)
            .is_ok_and(|i| i.state == m3ipc::SlotState::Free)
    });
}

/// Expect `"<cmd> -> OK ep=E"` from `w` and return `E`.
pub fn expect_ep(w: &mut Worker, cmd: &str) -> Endpoint {
    let line = w.line(STATE_WAIT * 2);
    let want = format!("{cmd} -> OK ep=");
    let ep = line
        .strip_prefix(&want)
        .unwrap_or_else(|| panic!("child said {line:?}, expected {want:?}E"));
    ep.parse().unwrap()
}

/// Assert that nothing more is queued for `p`: a `receive(ANY)` with NOWAIT would block.
pub fn assert_nothing_queued(p: &Proc, what: &str) {
    let mut m = Message::default();
    assert_eq!(
        p.receive(ANY, &mut m, Timeout::NoWait),
        Err(Errno::EDVSAGAIN),
        "{what}: {m:?}"
    );
}

/// Receive with `p` and check the payload; returns `(m_source, m_type)`.
pub fn recv(p: &Proc, src: Endpoint, timeout: Timeout) -> (Endpoint, i32) {
    let mut m = Message::default();
    p.receive(src, &mut m, timeout).unwrap();
    assert!(
        is_notify(m.m_type) || payload_ok(&m),
        "payload of {m:?} corrupted"
    );
    (m.m_source, m.m_type)
}

/// Hold a gate open: bind slot `nr` (a child waiting in `await:NR` proceeds) and keep it bound
/// as long as the returned `Proc` lives.
pub fn open_gate(dc: &Dc, nr: i32) -> Proc {
    dc.bind_named(nr, "gate").unwrap()
}

fn endpoint(s: &str) -> Endpoint {
    match s {
        "ANY" => ANY,
        "NONE" => NONE,
        "SELF" => SELF,
        "HW" => HARDWARE,
        n => n.parse().unwrap_or_else(|_| panic!("bad endpoint {n:?}")),
    }
}

fn timeout(s: &str) -> Timeout {
    match s {
        "F" => Timeout::Forever,
        "N" => Timeout::NoWait,
        ms => Timeout::Millis(ms.parse().unwrap_or_else(|_| panic!("bad timeout {ms:?}"))),
    }
}

/// Run the call and check that an expiry came no earlier than requested.
fn timed<T>(tmo: Timeout, f: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
    let start = Instant::now();
    let r = f();
    if let (Err(Errno::EDVSTIMEDOUT), Timeout::Millis(ms)) = (&r, tmo) {
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(ms as u64),
            "timed out after {waited:?}, before the {ms} ms asked for"
        );
    }
    r
}

fn received(m: &Message) -> String {
    if is_notify(m.m_type) || payload_ok(m) {
        format!("src={} type={}", m.m_source, m.m_type)
    } else {
        format!("BADPAYLOAD {m:?}")
    }
}

/// The child role: run `cmds` in DC `dc_name`.
pub fn run(dc_name: &str, cmds: &[String]) {
    let dc = Dc::open(dc_name).unwrap();
    let mut me: Option<Proc> = None;
    for cmd in cmds {
        let f: Vec<&str> = cmd.split(':').collect();
        let arg = |i: usize| {
            *f.get(i)
                .unwrap_or_else(|| panic!("{cmd}: field {i} missing"))
        };
        let forged = |i: usize, mut m: Message| {
            if let Some(s) = f.get(i) {
                m.m_source = s.parse().unwrap();
            }
            m
        };
        let p = || me.as_ref().expect("bind first");
        let outcome: Result<String, Errno> = match f[0] {
            "bind" => dc
                .bind_named(arg(1).parse().unwrap(), f.get(2).copied().unwrap_or(""))
                .map(|proc| {
                    let s = format!("ep={}", proc.endpoint());
                    me = Some(proc);
                    s
                }),
            "unbind" => me
                .take()
                .expect("bind first")
                .unbind()
                .map(|()| String::new()),
            "send" => {
                let m = forged(4, msg(arg(2).parse().unwrap()));
                let tmo = timeout(arg(3));
                timed(tmo, || p().send(endpoint(arg(1)), &m, tmo)).map(|()| String::new())
            }
            "sendrec" => {
                let mut m = forged(4, msg(arg(2).parse().unwrap()));
                let tmo = timeout(arg(3));
                timed(tmo, || p().sendrec(endpoint(arg(1)), &mut m, tmo)).map(|()| received(&m))
            }
            "senda" => {
                let m = forged(3, msg(arg(2).parse().unwrap()));
                p().senda(endpoint(arg(1)), &m).map(|()| String::new())
            }
            "receive" => {
                let mut m = Message::default();
                let tmo = timeout(arg(2));
                timed(tmo, || p().receive(endpoint(arg(1)), &mut m, tmo)).map(|()| received(&m))
            }
            "rcvrqst" => {
                let mut m = Message::default();
                let tmo = timeout(arg(1));
                timed(tmo, || p().rcvrqst(&mut m, tmo)).map(|()| received(&m))
            }
            "notify" => p().notify(endpoint(arg(1))).map(|()| String::new()),
            "reply" => {
                let m = forged(3, msg(arg(2).parse().unwrap()));
                p().reply(endpoint(arg(1)), &m).map(|()| String::new())
            }
            "wakeup" => p().wakeup(endpoint(arg(1))).map(|()| String::new()),
            "getpriv" => p()
                .getpriv(endpoint(arg(1)))
                .map(|pr| format!("allowed={:#x}", pr.allowed.0)),
            "setpriv" => p()
                .setpriv(endpoint(arg(1)), &Priv::default_for(true, false))
                .map(|()| String::new()),
            "wait4bind" => {
                let tmo = timeout(arg(2));
                timed(tmo, || dc.wait4bind(endpoint(arg(1)), tmo)).map(|ep| format!("ep={ep}"))
            }
            "wait4unbind" => {
                let tmo = timeout(arg(2));
                timed(tmo, || dc.wait4unbind(endpoint(arg(1)), tmo)).map(|()| String::new())
            }
            "await" => dc
                .wait4bind(endpoint(arg(1)), Timeout::Millis(30_000))
                .map(|_| String::new()),
            "sleep" => {
                std::thread::sleep(Duration::from_millis(arg(1).parse().unwrap()));
                Ok(String::new())
            }
            other => panic!("unknown command {other:?}"),
        };
        let line = match outcome {
            Ok(s) if s.is_empty() => format!("{cmd} -> OK"),
            Ok(s) => format!("{cmd} -> OK {s}"),
            Err(e) => format!("{cmd} -> {}", e.name()),
        };
        say(&line);
    }
}
