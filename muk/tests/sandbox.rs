#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The sandbox of `muk2 run`: every thread of a booted unikernel is under the seccomp filter, a
//! forbidden call (made by the test-only server `forbidden`) ends the unikernel with a message
//! naming the call and the server, and its outside clients get errors, never a hang; without
//! the sandbox the same call goes through.

mod support;

use m3ipc::{Dc, Errno, Message, Timeout};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::disk::{MUK2, Scratch};

/// Only a hang reaches these.
const START: Duration = Duration::from_secs(20);
const CALL: Timeout = Timeout::Millis(20_000);

/// The slot of the test-only server (`sandbox::FORBIDDEN_NR` in the binary).
const FORBIDDEN_NR: i32 = 21;
/// `muk2`'s exit code after a forbidden call (128 + SIGSYS).
const FORBIDDEN_EXIT: i32 = 128 + libc::SIGSYS;

struct Unikernel {
    dir: Scratch,
    child: Child,
    dc: String,
    /// The slot bound last at boot (`forbidden`'s when it is hosted, else echo's).
    last_nr: i32,
}

impl Unikernel {
    /// `muk2 run` with systask, echo (and `forbidden` when `call` is given) on a DC of its own.
    fn start(what: &str, call: Option<&str>, extra: &[&str]) -> Unikernel {
        let dir = Scratch::new(&format!("sandbox-{what}"));
        // Names are at most 15 bytes; each directory is private, so the name may repeat.
        let dc = format!("sb-{}", what.get(..12).unwrap_or(what));
        let config = dir.path("muk.toml");
        std::fs::write(
            &config,
            format!("[dc]\nname = \"{dc}\"\n[[server]]\nname = \"systask\"\n[[server]]\nname = \"echo\"\n"),
        )
        .unwrap();
        let mut cmd = Command::new(MUK2);
        cmd.args(["run", "--config", config.to_str().unwrap()])
            .args(extra)
            .env("M3IPC_SHM_DIR", dir.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match call {
            Some(c) => cmd.env("MUK2_TEST_FORBIDDEN_CALL", c),
            None => cmd.env_remove("MUK2_TEST_FORBIDDEN_CALL"),
        };
        let child = cmd.spawn().unwrap();
        let last_nr = if call.is_some() { FORBIDDEN_NR } else { 20 };
        Unikernel {
            dir,
            child,
            dc,
            last_nr,
        }
    }

    fn open(&mut self) -> Dc {
        let deadline = Instant::now() + START;
        loop {
            if let Ok(dc) = with_dir(self.dir.dir(), || Dc::open(&self.dc)) {
                // Wait until the servers are bound.
                dc.wait4bind(self.last_nr, Timeout::Millis(20_000)).unwrap();
                return dc;
            }
            if Instant::now() >= deadline || matches!(self.child.try_wait(), Ok(Some(_))) {
                let _ = self.child.kill();
                let mut err = String::new();
                let _ = self
                    .child
                    .stderr
                    .take()
                    .map(|mut e| e.read_to_string(&mut err));
                panic!("DC {} never appeared: {err}", self.dc);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait for the exit; its code and stderr.
    fn exit(&mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + START;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "muk2 did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.code(), err)
    }

    fn terminate(&self) {
        // SAFETY: kill has no memory effects; the child is not reaped yet, so its pid is ours.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0);
    }

    /// Region files left in its directory.
    fn regions(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("m3ipc-"))
            .collect()
    }
}

impl Drop for Unikernel {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run `f` with `M3IPC_SHM_DIR` pointing at `dir` (the region directory is read when a DC is
/// opened or a slot bound; nextest runs each test in its own process).
fn with_dir<T>(dir: &std::path::Path, f: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // SAFETY: every access to the variable in this test binary happens under LOCK.
    unsafe { std::env::set_var("M3IPC_SHM_DIR", dir) };
    f()
}

/// The Seccomp mode of each thread of `pid` (2: filter).
fn seccomp_modes(pid: u32) -> Vec<u32> {
    let mut modes = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        let mode = status
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        modes.push(mode);
    }
    modes
}

#[test]
fn every_thread_is_filtered_under_both_runners_and_not_without_the_sandbox() {
    for (what, extra, want) in [
        ("co", &[][..], 2),
        ("th", &["--threads"][..], 2),
        ("off", &["--no-sandbox"][..], 0),
    ] {
        let mut u = Unikernel::start(&format!("modes-{what}"), None, extra);
        let dc = u.open();
        // The sandbox closes in right after boot: give it the moment it takes.
        let deadline = Instant::now() + START;
        let modes = loop {
            let modes = seccomp_modes(u.child.id());
            if modes.iter().all(|&m| m == want) || Instant::now() >= deadline {
                break modes;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(modes.iter().all(|&m| m == want), "{what}: {modes:?}");
        // A stop and a continue (Ctrl-Z, fg) interrupt its timed waits: the kernel restarts
        // them (`restart_syscall`), which the filter allows.
        for sig in [libc::SIGSTOP, libc::SIGCONT] {
            // SAFETY: kill has no memory effects; the child is not reaped, so its pid is ours.
            let rc = unsafe { libc::kill(u.child.id() as libc::pid_t, sig) };
            assert_eq!(rc, 0);
            std::thread::sleep(Duration::from_millis(100));
        }
        // It still serves.
        let client = with_dir(u.dir.dir(), || muk::ftp_client::bind_user(&dc, "sb")).unwrap();
        let echo = dc.getprocinfo(20).unwrap().endpoint;
        muk::protocol::echo_slow(&client, echo, 1, CALL).unwrap();
        drop(client);
        drop(dc);
        u.terminate();
        let (code, err) = u.exit();
        assert_eq!(code, Some(0), "{what}: {err}");
        let left = u.regions();
        assert!(left.is_empty(), "{what}: left behind {left:?}");
    }
}

/// Ask `forbidden` to make its call; with a client of echo blocked meanwhile in a slow request.
fn provoke(u: &mut Unikernel) -> (m3ipc::Result<()>, m3ipc::Result<()>, Message) {
    let dc = u.open();
    let echo = dc.getprocinfo(20).unwrap().endpoint;
    let target = dc.getprocinfo(FORBIDDEN_NR).unwrap().endpoint;
    let dir = u.dir.dir();
    std::thread::scope(|s| {
        // A client in the middle of a call to another server of the unikernel.
        let slow = s.spawn(|| {
            let waiter = with_dir(dir, || muk::ftp_client::bind_user(&dc, "waiter")).unwrap();
            muk::protocol::echo_slow(&waiter, echo, 5_000, CALL)
        });
        let caller = with_dir(dir, || muk::ftp_client::bind_user(&dc, "caller")).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut m = Message::new(1);
        let r = caller.sendrec(target, &mut m, CALL);
        (r, slow.join().unwrap(), m)
    })
}

#[test]
fn a_forbidden_call_ends_the_unikernel_with_its_name_and_clients_get_errors() {
    let calls = [
        ("openat", "coroutines"),
        ("execve", "coroutines"),
        ("socket", "threads"),
    ];
    for (call, runner) in calls {
        let extra: &[&str] = if runner == "threads" {
            &["--threads"]
        } else {
            &[]
        };
        let mut u = Unikernel::start(&format!("call-{call}"), Some(call), extra);
        let start = Instant::now();
        let (direct, other, _) = provoke(&mut u);
        // Neither client hangs (each call is bounded by CALL: a timeout would be a hang).
        for (who, r) in [("the caller", direct), ("echo's client", other)] {
            let e = r.expect_err(&format!("{call}: {who} got an answer"));
            assert!(
                matches!(e, Errno::EDVSDSTDIED | Errno::EDVSDEADSRCDST),
                "{call}: {who}: {e:?}"
            );
        }
        assert!(
            start.elapsed() < START,
            "{call}: took {:?}",
            start.elapsed()
        );
        let (code, err) = u.exit();
        assert_eq!(code, Some(FORBIDDEN_EXIT), "{call}/{runner}: {err}");
        let want = format!("server forbidden made the forbidden system call {call} (");
        assert!(err.contains(&want), "{call}/{runner}: {err}");
        // A dead unikernel's DC stays (as without the sandbox), named by its helper.
        assert!(
            err.contains("died; the DC is left"),
            "{call}/{runner}: {err}"
        );
        assert_eq!(u.regions().len(), 2, "{call}: {:?}", u.regions());
        with_dir(u.dir.dir(), || Dc::remove(&u.dc)).unwrap();
    }
}

#[test]
fn without_the_sandbox_the_same_call_goes_through() {
    let mut u = Unikernel::start("nosb-openat", Some("openat"), &["--no-sandbox"]);
    let (direct, other, m) = provoke(&mut u);
    direct.unwrap();
    other.unwrap();
    assert!(m.m1().m1i1 >= 0, "openat failed: {}", m.m1().m1i1);
    assert!(!u.regions().is_empty());
    u.terminate();
    let (code, err) = u.exit();
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn the_profile_is_printed_and_small() {
    let out = Command::new(MUK2).arg("sandbox-profile").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let n = muk::sandbox::PROFILE.len();
    assert!(n <= 30, "{n} calls");
    assert!(
        text.contains(&format!("{n} system calls allowed")),
        "{text}"
    );
    for e in muk::sandbox::PROFILE {
        assert!(text.contains(e.call) && text.contains(e.why), "{}", e.call);
    }
    // README explains each entry.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split("## Sandbox")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    assert!(section.contains(&format!("{n} calls")), "README's count");
    for e in muk::sandbox::PROFILE {
        assert!(
            section.contains(&format!("`{}`", e.call)),
            "README: {}",
            e.call
        );
    }
    for absent in ["execve", "socket", "clone", "unlink"] {
        assert!(
            !muk::sandbox::PROFILE.iter().any(|e| e.call == absent),
            "{absent} is allowed"
        );
    }
}
