#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `muk2 run --isolate`: the unikernel in namespaces of its own. It cannot see the host's files
//! or processes (a test-only server, `probe`, tries at boot and reports), while outside
//! processes still work against it: a Rust client, the `m3ftp` command (a put and a get through
//! FS on an image file), and a client SIGKILLed while bound, whose slot the supervisor outside
//! releases (the unikernel cannot judge outside PIDs). After SIGTERM the DC is gone and
//! `fsck.minix -f` finds the image clean. The C client's run against an isolated unikernel is
//! in `ffi/tests/c_programs.rs`.
//!
//! Namespaces need root or unprivileged user namespaces: where neither is there (and only
//! then), the test says "needs ...: skipped". CI runs as root, where it always runs.

mod support;

use m3ipc::{Dc, Message, Timeout};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::disk::{MUK2, Scratch, fsck_clean, m3ftp_ok};

/// The probe's slot (`muk/src/bin/muk2/isolate.rs`).
const PROBE_NR: i32 = 23;
/// A user slot for the client that dies.
const DYING_NR: i32 = 120;

#[test]
fn child_main() {
    support::child_entry(run_role);
}

fn run_role(role: &str, dc: &str, _args: &[String]) {
    match role {
        // Bind, say so, and wait to be killed.
        "bound" => {
            let dc = Dc::open(dc).unwrap();
            let _p = dc.bind(DYING_NR).unwrap();
            support::say("bound");
            std::thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown role {other}"),
    }
}

/// A running `muk2 run --isolate`, killed on drop if the test did not end it.
struct Isolated(Child);

impl Drop for Isolated {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The namespace links of process `pid` that differ from this process's.
fn namespaces_apart(pid: u32) -> Vec<&'static str> {
    ["user", "mnt", "pid", "ipc", "uts", "net"]
        .into_iter()
        .filter(|ns| {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
            let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
            theirs != ours
        })
        .collect()
}

#[test]
fn an_isolated_muk2_sees_nothing_of_the_host_and_serves_outside_clients() {
    let scratch = Scratch::new("isolate");
    let image = scratch.mkfs("disk.img", 16);
    let secret = scratch.path("host-file.txt");
    std::fs::write(&secret, "the host's").unwrap();
    let dc_name = format!("iso{}", std::process::id());
    let config = scratch.path("muk2.toml");
    std::fs::write(
        &config,
        format!(
            "[dc]\nname = \"{dc_name}\"\n\
             [[server]]\nname = \"systask\"\n[[server]]\nname = \"pm\"\n\
             [[server]]\nname = \"echo\"\n\
             [[server]]\nname = \"rdisk\"\nimage = \"{}\"\n\
             [[server]]\nname = \"fs\"\n[[server]]\nname = \"ftp\"\n",
            image.display()
        ),
    )
    .unwrap();
    let mut run = Isolated(
        Command::new(MUK2)
            .args(["run", "--isolate", "--config", config.to_str().unwrap()])
            .env("MUK2_TEST_ISOLATION_PROBE", &secret)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut seen = Vec::new();
    for line in BufReader::new(run.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("running; stop with");
        seen.push(line);
        if done {
            break;
        }
    }
    if !seen.iter().any(|l| l.contains("running; stop with")) {
        let mut err = String::new();
        run.0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let _ = run.0.wait();
        if euid() != 0 && err.contains("cannot create the namespaces") {
            eprintln!(
                "needs root or unprivileged user namespaces: skipped ({})",
                err.trim()
            );
            return;
        }
        panic!("muk2 run --isolate did not start: {seen:?}\n{err}");
    }
    let outer_pid: u32 = seen
        .iter()
        .find_map(|l| l.split("(pid ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no outside pid in {seen:?}"));

    // The unikernel is a child of the supervisor, in six namespaces of its own.
    assert_ne!(outer_pid, run.0.id());
    assert_eq!(
        namespaces_apart(outer_pid),
        ["user", "mnt", "pid", "ipc", "uts", "net"]
    );
    let dc = Dc::open(&dc_name).unwrap();
    // Its slots are bound with its outside PID and judged alive from out here.
    for nr in [-2, 0, 1, 3, 14, 20, PROBE_NR] {
        let p = dc.getprocinfo(nr).unwrap();
        assert_eq!((p.pid, p.owner_alive), (outer_pid, true), "nr {nr}: {p:?}");
    }

    // What it saw of the host: not our file, and none of our processes.
    assert!(std::fs::read(&secret).is_ok() && Path::new("/proc/self").exists());
    let me = dc.bind(100).unwrap();
    let mut m = Message::new(0);
    m.m1_mut().m1i1 = std::process::id() as i32;
    me.sendrec(PROBE_NR, &mut m, Timeout::Millis(10_000))
        .unwrap();
    let (opened, pids, sees_us) = (m.m1().m1i1, m.m1().m1i2, m.m1().m1i3);
    assert_eq!(
        opened,
        libc::ENOENT,
        "the host file opened (0) or failed otherwise"
    );
    assert!(
        (1..=3).contains(&pids),
        "/proc showed {pids} processes: more than its own namespace's"
    );
    assert_eq!(sees_us, 0, "it saw this test's PID in its /proc");

    // An outside m3ftp works against it, through FS on the image.
    let (local, data) = scratch.random_file("up.bin", 300_000, 16);
    m3ftp_ok(&dc_name, &["put", local.to_str().unwrap(), "/up.bin"]);
    let back = scratch.path("down.bin");
    m3ftp_ok(&dc_name, &["get", "/up.bin", back.to_str().unwrap()]);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the bytes came back changed"
    );

    // A client killed while bound: the unikernel counts it alive (it cannot see it), the
    // supervisor outside releases its slot.
    let mut dying = support::spawn("bound", &dc_name, &[]);
    assert_eq!(dying.line(Duration::from_secs(10)), "bound");
    assert!(dc.getprocinfo(DYING_NR).unwrap().owner_alive);
    dying.child.kill().unwrap();
    dying.child.wait().unwrap();
    support::eventually(
        Duration::from_secs(10),
        "the dead client's slot freed",
        || {
            dc.getprocinfo(DYING_NR)
                .is_ok_and(|p| p.state == m3ipc::SlotState::Free)
        },
    );
    // And the servers still answer.
    let mut m = Message::new(0);
    me.sendrec(PROBE_NR, &mut m, Timeout::Millis(10_000))
        .unwrap();
    drop(me);

    // An orderly stop: exit 0, the DC removed by the supervisor, the image clean.
    // SAFETY: kill has no memory effects; the child is not reaped yet, so its pid is ours.
    let rc = unsafe { libc::kill(run.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = run.0.wait().unwrap();
    let mut err = String::new();
    run.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "muk2 run --isolate: {status}\n{err}");
    assert!(!err.contains("died"), "{err}");
    assert!(!dc.path().exists(), "the region is left");
    drop(dc);
    fsck_clean(&image);
}
