#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `muk2` and `m3ftp` with their output closed (`| head -1` after head has gone): no panic, no
//! exit 101. `m3ftp` dies quietly of SIGPIPE as `ls` does; `muk2` keeps going without its
//! report (a write fails with EPIPE and ends only the printing), so a `muk2 run` whose
//! standard output and error are closed pipes keeps serving and stops cleanly.
//!
//! Each test has its own `M3IPC_SHM_DIR`, empty again when it ends.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use support::disk::{M3FTP, MUK2, Scratch};

/// Only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(30);

/// The write end of a pipe whose read end is already closed: every write to it fails with
/// EPIPE (or raises SIGPIPE).
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

/// Run `cmd` with a closed standard output (standard error captured).
fn run_closed(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// Neither a panic nor Rust's panic exit code.
fn assert_quiet(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "{what} panicked ({:?}):\n{stderr}",
        out.status
    );
    assert_ne!(out.status.code(), Some(101), "{what}: {stderr}");
}

/// Exit 0, or death by SIGPIPE (what `ls` does).
fn ok_or_sigpipe(status: ExitStatus) -> bool {
    status.success() || status.signal() == Some(libc::SIGPIPE)
}

struct Shm(Scratch);

impl Shm {
    fn new(what: &str) -> Shm {
        Shm(Scratch::new(&format!("closed-{what}")))
    }

    fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args).env("M3IPC_SHM_DIR", self.0.dir());
        c
    }

    fn regions(&self) -> Vec<String> {
        std::fs::read_dir(self.0.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("m3ipc-"))
            .collect()
    }
}

#[test]
fn muk2_boot_and_default_config_with_closed_output() {
    let shm = Shm::new("boot");
    let out = run_closed(shm.cmd(MUK2, &["default-config"]));
    assert_quiet("muk2 default-config", &out);
    assert!(out.status.success(), "{:?}", out.status);

    // The boot's own report and its self-check child's both go to the closed pipe; the check
    // still runs and passes.
    let out = run_closed(shm.cmd(MUK2, &[]));
    assert_quiet("muk2", &out);
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shm.regions().is_empty(), "{:?}", shm.regions());
}

#[test]
fn a_server_with_closed_output_keeps_serving() {
    let shm = Shm::new("serve");
    let dc = format!("closed{}", std::process::id());
    let config = shm.0.path("muk.toml");
    std::fs::write(
        &config,
        muk::config::DEFAULT_TOML.replace("name = \"muk2\"", &format!("name = \"{dc}\"")),
    )
    .unwrap();
    // Both standard output and error closed (`muk2 run ... 2>&1 | head -1`): the table, FS's
    // "formatted" note and the stop message all fail to print.
    let mut server = shm
        .cmd(MUK2, &["run", "--config", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .spawn()
        .unwrap();

    // `muk2 check` with a closed output: it checks every server all the same and says so by
    // its exit code.
    let start = Instant::now();
    loop {
        let out = run_closed(shm.cmd(MUK2, &["check", "--dc", &dc]));
        assert_quiet("muk2 check", &out);
        if out.status.success() {
            break;
        }
        assert!(
            server.try_wait().unwrap().is_none(),
            "muk2 run died: {:?}",
            server.try_wait()
        );
        assert!(
            start.elapsed() < LIMIT,
            "muk2 check never passed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let file = shm.0.path("f.bin");
    std::fs::write(&file, b"some bytes").unwrap();
    for name in ["a", "b", "c"] {
        let put = shm
            .cmd(M3FTP, &["--dc", &dc, "put", file.to_str().unwrap()])
            .arg(format!("/{name}"))
            .output()
            .unwrap();
        assert!(put.status.success(), "{put:?}");
    }
    // Three lines to print into a closed pipe, twice: the client dies of SIGPIPE, and the
    // next one is served all the same.
    for _ in 0..2 {
        let out = run_closed(shm.cmd(M3FTP, &["--dc", &dc, "ls", "/"]));
        assert_quiet("m3ftp ls", &out);
        assert!(ok_or_sigpipe(out.status), "m3ftp ls: {:?}", out.status);
    }
    let ls = shm.cmd(M3FTP, &["--dc", &dc, "ls", "/"]).output().unwrap();
    assert!(ls.status.success(), "{ls:?}");
    let listing = String::from_utf8_lossy(&ls.stdout);
    for name in ["a", "b", "c"] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {name}"))),
            "{listing}"
        );
    }

    assert!(server.try_wait().unwrap().is_none(), "muk2 run died");
    let pid = server.id() as libc::pid_t;
    // SAFETY: kill has no memory effects; the child is not reaped yet, so the pid is ours.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = server.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "muk2 run did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Exit 0: every server stopped in order (FS synced) although nothing could be printed.
    assert!(status.success(), "muk2 run: {status:?}");
    assert!(shm.regions().is_empty(), "{:?}", shm.regions());
}

#[test]
fn m3ftp_help_and_errors_with_closed_output() {
    let shm = Shm::new("m3ftp");
    let out = run_closed(shm.cmd(M3FTP, &["--help"]));
    assert_quiet("m3ftp --help", &out);
    // No DC: an error on standard error, exit 1, still no panic.
    let out = run_closed(shm.cmd(M3FTP, &["--dc", "nodc", "--wait-ms", "0", "ls", "/"]));
    assert_quiet("m3ftp ls (no DC)", &out);
    assert_eq!(out.status.code(), Some(1));
}
