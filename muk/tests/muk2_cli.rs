#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `muk2` binary end to end: default boot, `run` until SIGTERM, bad configs, and a split
//! deployment (a server left out of the config, run as its own process).
//!
//! Every test runs the built binary with its own `M3IPC_SHM_DIR`, so nothing touches /dev/shm and
//! the tests can run in parallel (and twice at once); each checks that the directory is empty
//! when the processes are gone, then removes it.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::disk::Scratch;

const MUK2: &str = env!("CARGO_BIN_EXE_muk2");
/// Only a hang reaches these.
const START: Duration = Duration::from_secs(20);
const EXIT: Duration = Duration::from_secs(20);

/// A private region directory, removed on drop.
struct ShmDir(Scratch);

impl ShmDir {
    fn new(what: &str) -> ShmDir {
        ShmDir(Scratch::new(&format!("muk2-cli-{what}")))
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(MUK2);
        c.args(args).env("M3IPC_SHM_DIR", self.0.dir());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The region files left in the directory (config files written by the test aside).
    /// The region and pool files in the directory, sorted.
    fn regions(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.0.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("m3ipc-"))
            .collect();
        names.sort();
        names
    }
}

/// A `muk2` that runs until signalled; killed on drop if the test failed first.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait for an output line containing `needle`.
    fn wait_line(&mut self, needle: &str) {
        let deadline = Instant::now() + START;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?}; output so far:\n{}\nstatus {:?}",
                    self.seen.join("\n"),
                    self.child.try_wait()
                ),
            }
        }
    }

    /// Send SIGTERM and return the exit code.
    fn terminate(&mut self) -> i32 {
        self.signal(libc::SIGTERM)
    }

    /// Send `sig` and return the exit code.
    fn signal(&mut self, sig: libc::c_int) -> i32 {
        // SAFETY: kill has no memory effects; the child is not reaped yet, so its pid is ours.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0);
        let deadline = Instant::now() + EXIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().expect("exited, not killed by a signal");
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {EXIT:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A self-check output line says `name ... ok`.
fn checked_ok(stdout: &str, name: &str) -> bool {
    stdout.lines().any(|l| {
        let mut words = l.split_whitespace();
        words.next() == Some(name) && l.contains(" ok ")
    })
}

#[test]
fn default_boot_checks_every_server() {
    let dir = ShmDir::new("boot");
    let out = dir.run(&[]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    for header in ["NR", "ENDPOINT", "NAME", "PID", "FLAGS", "SENT", "RECV"] {
        assert!(stdout.contains(header), "{header}: {stdout}");
    }
    assert!(stdout.contains("MUK2 (coroutines)"), "{stdout}");
    for name in ["systask", "pm", "echo", "rdisk", "fs", "ftp"] {
        assert!(
            checked_ok(&stdout, name),
            "{name} not checked ok:\n{stdout}"
        );
    }
    // The file round trip through m3ftp from the check process, with its throughput.
    assert!(
        stdout.lines().any(|l| l.contains("m3ftp: put 8 MiB")
            && l.contains("MB/s")
            && l.contains("bytes identical")),
        "{stdout}"
    );
    assert!(dir.regions().is_empty(), "left behind: {:?}", dir.regions());
}

#[test]
fn a_killed_boot_is_cleaned_up_by_the_next() {
    let dir = ShmDir::new("stale");
    // SIGKILL a boot as soon as its region appears: it cannot clean up after itself.
    let mut child = dir.cmd(&[]).stdout(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + START;
    // The region file and its pool file.
    while dir.regions().len() < 2 {
        assert!(Instant::now() < deadline, "no region appeared");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stale = dir.regions();
    assert_eq!(
        stale,
        vec![
            format!("m3ipc-dc-muk2-{}", child.id()),
            format!("m3ipc-pool-muk2-{}", child.id())
        ]
    );
    // The next boot removes it (its creator is gone), and its own.
    let out = dir.run(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.regions().is_empty(), "left behind: {:?}", dir.regions());
}

#[test]
fn run_until_sigterm_under_both_runners() {
    let dir = ShmDir::new("run");
    let config = dir.file(
        "muk.toml",
        "[dc]\nname = \"t-run\"\n[[server]]\nname = \"systask\"\n[[server]]\nname = \"echo\"\n\
         stack_kib = 64\n",
    );
    let config = config.to_str().unwrap();
    for threads in [false, true] {
        let mut args = vec!["run", "--config", config];
        if threads {
            args.push("--threads");
        }
        let mut run = Running::start(dir.cmd(&args));
        run.wait_line("running; stop with SIGINT or SIGTERM");
        assert_eq!(
            dir.regions(),
            vec!["m3ipc-dc-t-run".to_string(), "m3ipc-pool-t-run".to_string()]
        );
        let runner = if threads { "MUK (threads)" } else { "MUK2" };
        assert!(
            run.seen.iter().any(|l| l.contains(runner)),
            "{:?}",
            run.seen
        );
        assert!(
            run.seen
                .iter()
                .any(|l| l.contains("expected from outside: pm")),
            "{:?}",
            run.seen
        );
        // A second run of the same config must not take over the DC.
        let again = dir.run(&args);
        assert_eq!(again.status.code(), Some(1));
        assert!(
            text(&again.stderr).contains("already exists"),
            "{}",
            text(&again.stderr)
        );
        let check = dir.run(&["check", "--dc", "t-run", "--expect", "systask,echo"]);
        assert!(check.status.success(), "{}", text(&check.stderr));
        // Ctrl-C stops it as cleanly as SIGTERM.
        let sig = if threads { libc::SIGINT } else { libc::SIGTERM };
        assert_eq!(run.signal(sig), 0);
        assert!(dir.regions().is_empty(), "left behind: {:?}", dir.regions());
    }
}

/// Run `muk2 run --config` on `toml`; it must fail with a message holding every `needle`.
fn refused(dir: &ShmDir, toml: &str, needles: &[&str]) {
    let config = dir.file("bad.toml", toml);
    let out = dir.run(&["run", "--config", config.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{toml}\nstderr: {stderr}");
    assert!(stderr.starts_with("muk2: "), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{toml}\nmissing {n:?} in: {stderr}");
    }
    assert!(dir.regions().is_empty(), "left behind: {:?}", dir.regions());
}

#[test]
fn bad_configs_are_refused_clearly() {
    let dir = ShmDir::new("bad");
    refused(
        &dir,
        "[dc]\nname = \"t\"\n[[server]]\nname = \"nfs\"\n",
        &[
            "line 4",
            "unknown server \"nfs\"",
            "systask, pm, echo, rdisk, fs, ftp, web, is",
        ],
    );
    refused(
        &dir,
        "[dc]\nname = \"t\"\n[[server]]\nname = \"pm\"\n[[server]]\nname = \"echo\"\nnr = 0\n",
        &["line 7", "both use nr 0"],
    );
    refused(
        &dir,
        "[dc]\nname = \"t\"\n[[server]]\nname = \"pm\"\nspeed = 80\n",
        &["line 5", "unknown field `speed`"],
    );
    refused(
        &dir,
        "[dc]\nname = \"t\"\n[[server]]\nname = \"pm\"\nport = 80\n",
        &["line 5", "port is a setting of web"],
    );
    refused(
        &dir,
        "[dc]\nname = \"t\"\nnode = 40\n[[server]]\nname = \"pm\"\n",
        &["line 3", "node 40 is out of range"],
    );
    refused(
        &dir,
        "[dc]\nname = \"t\"\n[[server]]\nname = \"echo\"\nnr = 500\n",
        &["line 5", "nr 500"],
    );
    refused(&dir, "[dc\n", &["line 1"]);
    let out = dir.run(&["run", "--config", "/nonexistent/muk.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/muk.toml"));
    // Commands against a DC that does not exist.
    for args in [
        &["serve", "pm", "--dc", "nosuch"][..],
        &["check", "--dc", "nosuch"][..],
    ] {
        let out = dir.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("no DC named \"nosuch\""),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = dir.run(&["serve", "nfs", "--dc", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown server \"nfs\""));
    // A storage setting for a server that does not take it.
    let out = dir.run(&["serve", "pm", "--dc", "x", "--memory-mib", "4"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--image/--memory-mib is a setting of rdisk"));
    assert!(dir.regions().is_empty());
}

#[test]
fn bad_cluster_sections_are_refused_clearly() {
    let dir = ShmDir::new("badcluster");
    let head = "[dc]\nname = \"t\"\ndcid = 3\n[[server]]\nname = \"pm\"\n";
    let good = "[cluster]\nnode = 0\nlisten = \"127.0.0.1:0\"\n[[cluster.peer]]\nnode = 1\n\
                address = \"127.0.0.1:9\"\n";
    refused(
        &dir,
        &format!("{head}{}", good.replace("127.0.0.1:0", "nowhere")),
        &["line 6", "[cluster] listen = \"nowhere\": not HOST:PORT"],
    );
    refused(
        &dir,
        &format!("{head}{}", good.replace("node = 1", "node = 0")),
        &[
            "line 6",
            "[[cluster.peer]] node = 0: that is this node's own id",
        ],
    );
    refused(
        &dir,
        &format!("{head}{}", good.replace("address", "adress")),
        &["line 11", "unknown field `adress`"],
    );
    refused(
        &dir,
        &format!("{}{good}", head.replace("dcid = 3\n", "")),
        &["[cluster] needs [dc] dcid"],
    );
    refused(
        &dir,
        &format!("{}{good}", head.replace("dcid = 3", "dcid = 3\nnode = 2")),
        &["line 4", "[cluster] node = 0 but [dc] node = 2"],
    );
    // A listen address already taken: the daemon cannot start, the servers stop, the DC goes.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = dir.file(
        "taken.toml",
        &format!(
            "{head}{}",
            good.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
        ),
    );
    let out = dir.run(&["run", "--config", config.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the sandbox is off"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "muk2: [cluster]: the node daemon: listen on 127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(dir.regions().is_empty(), "left behind: {:?}", dir.regions());
}

#[test]
fn split_deployment_passes_the_self_check() {
    let dir = ShmDir::new("split");
    let config = dir.file(
        "split.toml",
        "[dc]\nname = \"t-split\"\n[[server]]\nname = \"systask\"\n[[server]]\nname = \"echo\"\n",
    );
    let mut run = Running::start(dir.cmd(&["run", "--config", config.to_str().unwrap()]));
    run.wait_line("running;");
    // Without pm the check fails, naming the missing server.
    let early = dir.run(&[
        "check",
        "--dc",
        "t-split",
        "--expect",
        "systask,pm,echo",
        "--wait-ms",
        "100",
    ]);
    assert_eq!(early.status.code(), Some(1));
    let stdout = text(&early.stdout);
    assert!(stdout.contains("muk2 serve pm --dc t-split"), "{stdout}");
    assert!(
        checked_ok(&stdout, "systask") && checked_ok(&stdout, "echo"),
        "{stdout}"
    );

    // A slot a server cannot use, or one the unikernel holds, is refused before serving.
    for (args, needle) in [
        (
            &["serve", "pm", "--dc", "t-split", "--nr", "40"][..],
            "not a system-process slot",
        ),
        (
            &["serve", "systask", "--dc", "t-split"][..],
            "cannot bind slot -2",
        ),
    ] {
        let out = dir.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
    }

    let mut pm = Running::start(dir.cmd(&["serve", "pm", "--dc", "t-split"]));
    pm.wait_line("pm serving at nr 0");
    let check = dir.run(&["check", "--dc", "t-split", "--expect", "systask,pm,echo"]);
    let stdout = text(&check.stdout);
    assert!(
        check.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&check.stderr)
    );
    for name in ["systask", "pm", "echo"] {
        assert!(checked_ok(&stdout, name), "{name}:\n{stdout}");
    }
    // pm runs in its own process, the others in the unikernel.
    assert_eq!(pid_in(&stdout, "pm"), pm.child.id());
    assert_eq!(pid_in(&stdout, "echo"), run.child.id());
    assert_eq!(pid_in(&stdout, "systask"), run.child.id());
    assert_eq!(pm.terminate(), 0);
    assert_eq!(run.terminate(), 0);
    assert!(dir.regions().is_empty(), "left behind: {:?}", dir.regions());
}

/// The PID a check line reports for `name` (`  NAME  nr N  pid P  ok ...`).
fn pid_in(stdout: &str, name: &str) -> u32 {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "pid").unwrap();
    words[at + 1].parse().unwrap()
}

#[test]
fn help_names_every_command() {
    let out = Command::new(MUK2).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    for cmd in ["run", "serve", "check", "default-config"] {
        assert!(help.contains(cmd), "{cmd}: {help}");
    }
    // What no command does.
    assert!(help.contains("With no command"), "{help}");
    assert!(help.contains("self-checks"), "{help}");
    let out = Command::new(MUK2)
        .args(["default-config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), muk::config::DEFAULT_TOML);
}
