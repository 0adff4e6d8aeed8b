//! Peer processes: the executable that runs the benchmark (`dvs` or a criterion bench binary)
//! re-executed as `EXE __bench-peer ROLE ARGS...`. A peer prints `READY` once it is set up
//! (bound, pinned, listening); its parent kills it when the session ends, and it dies with its
//! parent (`PR_SET_PDEATHSIG`), so no error path leaves one running.
//!
//! Every executable that starts sessions must hand its command line to [`main`] when the first
//! argument is [`PEER_CMD`]; [`dispatch`] does that check.

use crate::error::{BenchError, Result, io};
use crate::placement;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};

/// First argument of a peer's command line.
pub const PEER_CMD: &str = "__bench-peer";

/// The line a peer prints when it is ready.
const READY: &str = "READY";

/// A running peer process.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    role: String,
}

impl Peer {
    /// Start this executable as a peer in `role` with `args`, and wait for its `READY`.
    pub fn spawn(role: &str, args: &[String]) -> Result<Peer> {
        Peer::spawn_with_env(role, args, &[])
    }

    /// [`Peer::spawn`] with these variables added to the peer's environment (a node's region
    /// directory, `M3IPC_SHM_DIR`, for a peer on another node).
    pub fn spawn_with_env(role: &str, args: &[String], env: &[(&str, &Path)]) -> Result<Peer> {
        Peer::spawn_full(role, args, env, None)
    }

    /// [`Peer::spawn_with_env`], the peer's standard error written to the file `log` (created)
    /// instead of this process's.
    pub fn spawn_logged(
        role: &str,
        args: &[String],
        env: &[(&str, &Path)],
        log: &Path,
    ) -> Result<Peer> {
        Peer::spawn_full(role, args, env, Some(log))
    }

    fn spawn_full(
        role: &str,
        args: &[String],
        env: &[(&str, &Path)],
        log: Option<&Path>,
    ) -> Result<Peer> {
        let stderr = match log {
            Some(path) => {
                Stdio::from(std::fs::File::create(path).map_err(io(format!("{}", path.display())))?)
            }
            None => Stdio::inherit(),
        };
        let exe = std::env::current_exe().map_err(io("cannot find this executable"))?;
        let mut child = Command::new(&exe)
            .arg(PEER_CMD)
            .arg(role)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(io(format!("cannot start {}", exe.display())))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .map(BufReader::new)
            .ok_or_else(|| BenchError::new("peer without standard output"))?;
        let mut peer = Peer {
            child,
            stdin,
            stdout,
            role: role.to_string(),
        };
        let line = peer.read_line()?;
        if line.trim_end() != READY {
            return Err(BenchError::new(format!(
                "peer {role} did not start (said {line:?})"
            )));
        }
        Ok(peer)
    }

    /// The next line the peer printed; an error at its end of output.
    pub fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(io(format!("reading peer {}", self.role)))?;
        if n == 0 {
            let status = self.status();
            return Err(BenchError::new(format!(
                "peer {} ended ({status})",
                self.role
            )));
        }
        Ok(line)
    }

    /// The peer's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The peer's standard input (the pipe scenario writes requests into it).
    pub fn stdin(&mut self) -> Result<&mut ChildStdin> {
        self.stdin
            .as_mut()
            .ok_or_else(|| BenchError::new("peer input closed"))
    }

    /// The peer's standard output (the pipe scenario reads replies from it).
    pub fn stdout(&mut self) -> &mut BufReader<ChildStdout> {
        &mut self.stdout
    }

    /// Wait up to `limit` for the peer to end by itself (one told to leave); whether it did.
    /// A peer still running is killed when dropped.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> bool {
        let until = std::time::Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return true,
                Err(_) => return false,
                Ok(None) if std::time::Instant::now() >= until => return false,
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
    }

    fn status(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(s)) => s.to_string(),
            _ => "still running".into(),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// With `M3_BENCH_SANDBOX=1` in the environment (`M3_BENCH_SANDBOX=1 dvs bench ...`), put a
/// unikernel peer under `muk2`'s seccomp allowlist after its host started (call it before
/// [`ready`]): the MUK2/MUK rows served by a peer process are then measured under the sandbox.
pub fn sandbox_if_asked() -> Result<()> {
    if std::env::var_os("M3_BENCH_SANDBOX").is_none_or(|v| v != "1") {
        return Ok(());
    }
    let proc_dir = m3ipc::pin_proc_dir().map_err(io("/proc"))?;
    let settings = muk::sandbox::Settings {
        proc_dir,
        ..Default::default()
    };
    muk::sandbox::enter(&settings).map_err(|e| BenchError::new(format!("sandbox: {e}")))
}

/// Print `READY` for the parent.
pub fn ready() -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY}")
        .and_then(|()| out.flush())
        .map_err(io("stdout"))
}

/// Start-up of every peer: die with the parent, then pin to `cpu` if one is given ("-": not
/// pinned).
pub fn start(cpu: &str) -> Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes the signal number as its one argument and changes only this
    // process's own attributes.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if rc != 0 {
        return Err(BenchError::new(format!(
            "prctl(PR_SET_PDEATHSIG): {}",
            std::io::Error::last_os_error()
        )));
    }
    // The parent may have died before the signal was armed.
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } == 1 {
        return Err(BenchError::new("parent gone"));
    }
    match cpu {
        "-" => Ok(()),
        c => placement::pin(
            c.parse()
                .map_err(|_| BenchError::new(format!("bad CPU {c:?}")))?,
        ),
    }
}

/// A CPU for a peer's command line: its number, or "-" for none.
pub fn cpu_arg(cpu: Option<usize>) -> String {
    cpu.map_or_else(|| "-".to_string(), |c| c.to_string())
}

/// If this process was started as a peer (`args[1] == PEER_CMD`), run the role and return its
/// exit code; else `None`. Call it first thing in `main`.
pub fn dispatch(args: &[String]) -> Option<ExitCode> {
    (args.get(1).map(String::as_str) == Some(PEER_CMD)).then(|| main(&args[2..]))
}

/// Run the peer role `args[0]` with the rest of `args` (`ROLE TARGET CPU [EXTRA...]`).
pub fn main(args: &[String]) -> ExitCode {
    let [role, target, cpu, extra @ ..] = args else {
        eprintln!("{PEER_CMD}: expected ROLE TARGET CPU [ARGS...], got {args:?}");
        return ExitCode::from(2);
    };
    // The node's network namespace first, while this process has one thread and no socket.
    let result = crate::netns::enter_from_env()
        .and_then(|()| start(cpu))
        .and_then(|()| crate::scenario::run_role(role, target, extra));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{PEER_CMD} {role}: {e}");
            ExitCode::FAILURE
        }
    }
}
