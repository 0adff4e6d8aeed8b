//! Helpers for muk's multi-process tests: private DCs, hosts that must stop cleanly, and child
//! processes that re-execute the test binary in a role (the same scheme as m3ipc's tests).
//!
//! A test file using this module must contain
//! `#[test] fn child_main() { support::child_entry(run_role) }` where
//! `fn run_role(role: &str, dc: &str, args: &[String])` performs the child's part; a panic in a
//! role is the child's failure report (its stderr is the parent's).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use m3ipc::{Dc, DcConfig};
use muk::host::DEFAULT_STACK;
use muk::{Host, Hosted, Runner, ServerKind};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A DC that no other test (of this or a concurrent run) uses; removed when dropped.
pub struct TestDc {
    pub name: String,
    pub dc: Dc,
}

impl TestDc {
    pub fn new() -> TestDc {
        for attempt in 0..64u32 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            // At most 15 bytes; the PID keeps concurrent test processes apart.
            let name = format!("mk{}x{n}", std::process::id());
            let cfg = DcConfig {
                dcid: (std::process::id() + n + attempt) % 32,
                ..DcConfig::default()
            };
            match Dc::create(&name, &cfg) {
                Ok(dc) => return TestDc { name, dc },
                Err(m3ipc::DcError::Exists(_)) => continue,
                Err(e) => panic!("create DC {name}: {e}"),
            }
        }
        panic!("no free DC name or id")
    }
}

impl Drop for TestDc {
    fn drop(&mut self) {
        let _ = Dc::remove(&self.name);
    }
}

/// Host `kinds` at their well-known slots under `runner`.
pub fn start(dc: &Dc, kinds: &[ServerKind], runner: Runner) -> Host {
    let servers = kinds
        .iter()
        .map(|&k| Hosted {
            name: k.name().to_string(),
            nr: k.default_nr(),
            stack_size: DEFAULT_STACK,
            server: k.build(),
        })
        .collect();
    Host::start(dc, servers, runner).unwrap_or_else(|e| panic!("start {runner:?}: {e}"))
}

/// Stop `host` and check that each of its `n` servers ended well.
pub fn stop(host: Host, n: usize) {
    let exits = host.stop();
    assert_eq!(exits.len(), n, "{exits:?}");
    for e in &exits {
        assert!(
            e.result.is_ok(),
            "server {} ended with {:?}",
            e.name,
            e.result
        );
    }
}

/// Run the child's role if this process was started as a child; else do nothing.
pub fn child_entry(run: fn(&str, &str, &[String])) {
    let Ok(role) = std::env::var("MUK_CHILD_ROLE") else {
        return;
    };
    let dc = std::env::var("MUK_CHILD_DC").unwrap_or_default();
    let args: Vec<String> = std::env::var("MUK_CHILD_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    run(&role, &dc, &args);
    say("DONE");
    // Do not let the harness print more or run other tests.
    std::process::exit(0);
}

/// Print one line for the parent.
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "@@ {line}");
    let _ = out.flush();
}

/// A child process running a role.
pub struct Worker {
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

/// Start a child running `role` in DC `dc` with `args`.
pub fn spawn(role: &str, dc: &str, args: &[&str]) -> Worker {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args([
            "child_main",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("MUK_CHILD_ROLE", role)
        .env("MUK_CHILD_DC", dc)
        .env("MUK_CHILD_ARGS", args.join(" "))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print "test child_main ... " on the same line first.
            if let Some(at) = line.find("@@ ")
                && tx.send(line[at + 3..].to_string()).is_err()
            {
                break;
            }
        }
    });
    Worker { child, lines: rx }
}

impl Worker {
    /// The next line from the child; panics after `timeout`.
    pub fn line(&mut self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no line from child within {timeout:?}: {e}"))
    }

    /// SIGKILL the child and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait for the child to say DONE and exit successfully.
    pub fn finish(mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l == "DONE" => break,
                Ok(_) => continue,
                Err(_) => {
                    let status = self.child.try_wait();
                    self.kill();
                    panic!("child did not finish (status {status:?})");
                }
            }
        }
        let status = self.child.wait().expect("wait child");
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Poll `f` until it returns true; panics after `timeout`.
pub fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}
