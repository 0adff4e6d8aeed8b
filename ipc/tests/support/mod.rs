//! Shared helpers for the multi-process tests: private DC names, child processes that re-execute
//! the test binary in a role, and line-based messages from children.
//!
//! A test file using this module must contain
//! `#[test] fn child_main() { support::child_entry(run_role) }` where
//! `fn run_role(role: &str, dc: &str, args: &[String])` performs the child's part.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use m3ipc::{Dc, DcConfig};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A DC name no other test (of this or a concurrent run) uses: at most 15 bytes.
pub fn unique_name(tag: char) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("t{tag}{}x{n}", std::process::id())
}

/// A DC that is removed when dropped.
pub struct TestDc {
    pub name: String,
    pub dc: Dc,
}

impl TestDc {
    pub fn new(tag: char) -> TestDc {
        TestDc::with(tag, &DcConfig::default())
    }

    pub fn with(tag: char, config: &DcConfig) -> TestDc {
        // Each DC gets its own id too, so concurrent tests never collide on ids either: ids are
        // only unique within the region directory, so derive one from the name and retry.
        for attempt in 0..64u32 {
            let name = unique_name(tag);
            let cfg = DcConfig {
                dcid: (std::process::id() + COUNTER.load(Ordering::Relaxed) + attempt) % 32,
                ..config.clone()
            };
            match Dc::create(&name, &cfg) {
                Ok(dc) => return TestDc { name, dc },
                Err(m3ipc::DcError::Exists(_)) => continue,
                Err(e) => panic!("create DC {name}: {e}"),
            }
        }
        panic!("no free DC id")
    }
}

impl Drop for TestDc {
    fn drop(&mut self) {
        let _ = Dc::remove(&self.name);
    }
}

/// Run the child's role if this process was started as a child; else do nothing.
pub fn child_entry(run: fn(&str, &str, &[String])) {
    let Ok(role) = std::env::var("M3_CHILD_ROLE") else {
        return;
    };
    let dc = std::env::var("M3_CHILD_DC").unwrap_or_default();
    let args: Vec<String> = std::env::var("M3_CHILD_ARGS")
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
        .env("M3_CHILD_ROLE", role)
        .env("M3_CHILD_DC", dc)
        .env("M3_CHILD_ARGS", args.join(" "))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout: ChildStdout = child.stdout.take().expect("stdout");
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

    /// Wait for a line equal to `want` (skipping none); panics if another line comes.
    pub fn expect(&mut self, want: &str) {
        let got = self.line(Duration::from_secs(20));
        assert_eq!(got, want, "child said {got:?}, expected {want:?}");
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

impl Worker {
    /// The next line from the child if one comes within `timeout`, else `None` (for asserting
    /// that a child's call has *not* returned yet).
    pub fn try_line(&mut self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }
}

/// A small seeded PRNG (xorshift64*) for randomized tests: reproducible from its seed, no crate.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits (the seed must not be 0).
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
