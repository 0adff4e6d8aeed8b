//! What the C tests share: building C programs against libm3ipc, private region directories,
//! and child processes of this test binary in a role (a Rust server, DC set-up).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The libraries a program linked with `libm3ipc.a` needs: rustc's `native-static-libs` less
/// `-lgcc_s`, which the C compiler's driver adds itself (and which `-static` cannot find).
pub const STATIC_LIBS: &[&str] = &["-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];
/// The C compiler's flags for every program: the issue's, so a warning fails the test.
pub const CFLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread"];

/// The crate's directory.
pub fn ffi_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory of the profile this test was built in (`target/debug`, ...).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test binary>
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Bring `artifact` of the profile directory up to date with `cargo build ARGS` (a no-op when
/// it is): cargo builds a package's cdylib and staticlib for `cargo build`, not for its tests,
/// and running one package's tests does not build another's binaries.
fn ensure_built(artifact: &str, args: &[&str]) -> PathBuf {
    let profile = profile_dir();
    let target_dir = profile.parent().unwrap();
    let mut cmd = Command::new(cargo());
    cmd.arg("build")
        .arg("--quiet")
        .arg("--target-dir")
        .arg(target_dir)
        .args(args)
        .current_dir(ffi_dir());
    if profile.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "cargo build {args:?} failed");
    let path = profile.join(artifact);
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// `libm3ipc.a` of this profile.
pub fn static_lib() -> PathBuf {
    ensure_built("libm3ipc.a", &["-p", "m3ipc-ffi", "--lib"])
}

/// `libm3ipc.so` of this profile.
pub fn shared_lib() -> PathBuf {
    ensure_built("libm3ipc.so", &["-p", "m3ipc-ffi", "--lib"])
}

/// The `muk2` binary of this profile.
pub fn muk2() -> PathBuf {
    ensure_built("muk2", &["-p", "muk", "--bin", "muk2"])
}

/// A directory for this test's build products, under cargo's temporary directory.
pub fn build_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("ffi-c")
        .join(format!("{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compile the C files `sources` (paths relative to `ffi/`) into the program `name` in `dir`,
/// linked with `libm3ipc.a`, with [`CFLAGS`] and `extra` flags. Panics with the compiler's
/// output if it fails.
pub fn compile(dir: &Path, name: &str, sources: &[&str], extra: &[String]) -> PathBuf {
    let out = dir.join(name);
    let ffi = ffi_dir();
    let mut cmd = Command::new("gcc");
    cmd.args(CFLAGS)
        .arg(format!("-I{}", ffi.join("include").display()))
        .arg(format!("-I{}", ffi.join("examples").display()))
        .args(extra)
        .args(sources.iter().map(|s| ffi.join(s)))
        .arg(static_lib())
        .args(STATIC_LIBS)
        .arg("-o")
        .arg(&out);
    let o = cmd.output().expect("gcc (install it: apt-get install gcc)");
    assert!(
        o.status.success(),
        "gcc failed for {name}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A private region directory (`M3IPC_SHM_DIR`) for one test, removed on drop.
pub struct ShmDir(pub PathBuf);

impl ShmDir {
    pub fn new(test: &str) -> ShmDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "m3ffi-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        ShmDir(dir)
    }

    /// A command that runs in this region directory.
    pub fn cmd(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("M3IPC_SHM_DIR", &self.0).stdin(Stdio::null());
        c
    }

    /// Run this test binary's `role` with `args` in this region directory; its output.
    pub fn role(&self, role: &str, args: &[&str]) -> Command {
        let mut c = self.cmd(&std::env::current_exe().unwrap());
        c.args([
            "child_main",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("M3FFI_ROLE", role)
        .env("M3FFI_ARGS", args.join(" "));
        c
    }

    /// Create the DC `name` with id `dcid` here (in a child, which owns the environment).
    pub fn create_dc(&self, name: &str, dcid: u32) {
        run_ok(self.role("create-dc", &[name, &dcid.to_string()]));
    }

    /// Remove the DC `name` here.
    pub fn remove_dc(&self, name: &str) {
        run_ok(self.role("remove-dc", &[name]));
    }

    /// The region and pool files left here.
    pub fn regions(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("m3ipc-"))
            .collect();
        v.sort();
        v
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `cmd` to the end; panics unless it exits 0. Its stdout.
pub fn run_ok(mut cmd: Command) -> String {
    let o: Output = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{cmd:?} failed ({:?}):\nstdout:\n{out}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A process started in the background, whose stdout lines are read as they come; killed on
/// drop if still running.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(mut cmd: Command) -> Running {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
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

    /// Wait (at most 30 s) for a line containing `needle`; the line from `needle` on (a role's
    /// first line follows libtest's "test child_main ... ").
    pub fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(at) = line.find(needle) {
                        return line[at..].to_string();
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?}; so far:\n{}\nstatus {:?}",
                    self.seen.join("\n"),
                    self.child.try_wait()
                ),
            }
        }
    }

    /// Wait (at most 30 s) for the process to exit; panics unless it exits 0.
    pub fn finish(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(
                    st.success(),
                    "exited {st:?}; output:\n{}",
                    self.seen.join("\n")
                );
                return;
            }
            assert!(Instant::now() < deadline, "still running after 30 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send SIGTERM and wait for the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        // SAFETY: kill has no memory effects; the child is not reaped yet, so its pid is ours.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        self.child.wait().unwrap().code()
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

/// If this process was started as a child in a role, run it and exit.
pub fn child_entry(run: fn(&str, &[String])) {
    let Ok(role) = std::env::var("M3FFI_ROLE") else {
        return;
    };
    let args: Vec<String> = std::env::var("M3FFI_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    run(&role, &args);
    std::process::exit(0);
}
