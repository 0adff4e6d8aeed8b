//! The sandbox of `muk2`, `muk2 run` and `muk2 serve`: after boot, the process keeps only the
//! system calls of `muk::sandbox::PROFILE` (on by default; `--no-sandbox` turns it off).
//!
//! What the filter refuses is done before it closes in or by another process:
//! - the DC's files are removed at the end by a helper started before the sandbox (`muk2
//!   remove-dc-at-eof NAME`, hidden): told so through a pipe when the unikernel has stopped
//!   its servers (a unikernel that dies leaves its DC, as it would without the sandbox);
//! - threads are started, and the self-check client is spawned, before it.
//!
//! `MUK2_TEST_FORBIDDEN_CALL=openat|execve|socket` (for tests only) adds a server `forbidden`
//! at nr [`FORBIDDEN_NR`] to `muk2 run` that makes that call on each request.

use crate::hosting::CreatedDc;
use crate::{Error, Result, output};
use m3ipc::{ANY, Dc, Errno, Message, Timeout};
use muk::{Hosted, Ipc, Server};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// Whether the sandbox is on (the default).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turn the sandbox on or off for this process (from the command line).
pub fn set_enabled(on: bool) {
    // Relaxed: set once by the main thread before anything reads it.
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the sandbox is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// After boot: pin `/proc` for the liveness checks, hand the removal of `created` (if this
/// process created its DC) to a helper process, and install the filter on every thread.
/// `children`: processes already started that this one may still kill and wait for.
pub fn lock_down(created: Option<&mut CreatedDc>, children: &[u32]) -> Result<()> {
    if !enabled() {
        return Ok(());
    }
    let proc_dir =
        m3ipc::pin_proc_dir().map_err(|e| Error(format!("sandbox: cannot open /proc: {e}")))?;
    let mut settings = muk::sandbox::Settings {
        proc_dir,
        children: children.to_vec(),
        write_fds: Vec::new(),
        network: ["web", "is"]
            .iter()
            .any(|s| muk::sockets::announced(s).is_some()),
    };
    if let Some(fd) = created.as_ref().and_then(|c| c.parent_pipe()) {
        // Under --isolate the parent outside removes the DC: the pipe to it is all we need.
        settings.write_fds.push(fd);
    } else if let Some(created) = created {
        let janitor = Janitor::spawn(created.dc().name())?;
        settings.children.push(janitor.child.id());
        settings
            .write_fds
            .extend(janitor.stdin.as_ref().map(AsRawFd::as_raw_fd));
        created.hand_removal_to(janitor);
    }
    muk::sandbox::enter(&settings).map_err(|e| Error(format!("sandbox: {e}")))
}

/// Start a thread and wait until it runs: its start-up calls (stack, signal stack, name) are
/// not in the sandbox's list, so it must be past them before the filter closes in.
pub fn spawn_started<F>(name: &str, f: F) -> Result<()>
where
    F: FnOnce() + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(());
            f();
        })
        .map_err(|e| Error(format!("cannot start a thread: {e}")))?;
    rx.recv()
        .map_err(|_| Error(format!("thread {name} ended before it started")))
}

/// The helper process that removes the DC when its standard input closes.
pub struct Janitor {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Janitor {
    fn spawn(dc: &str) -> Result<Janitor> {
        let exe = std::env::current_exe()
            .map_err(|e| Error(format!("cannot find the muk2 executable: {e}")))?;
        let mut child = Command::new(&exe)
            .args(["remove-dc-at-eof", dc])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| Error(format!("cannot start {}: {e}", exe.display())))?;
        let stdin = child.stdin.take();
        Ok(Janitor { child, stdin })
    }

    /// Tell it to remove the DC (the stop was orderly), close its input and wait until it has.
    pub fn finish(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(REMOVE);
        }
        match self.child.wait() {
            Ok(s) if s.success() => {}
            Ok(s) => muk::diag!("muk2: the helper that removes the DC failed ({s})"),
            Err(e) => muk::diag!("muk2: waiting for the helper that removes the DC: {e}"),
        }
    }
}

/// What the unikernel writes to the helper when its stop was orderly.
pub const REMOVE: &[u8] = b"remove\n";

/// `muk2 remove-dc-at-eof NAME`: wait for standard input to close; remove DC `NAME` if the
/// unikernel said so first (an orderly stop). Without that word the unikernel died (a forbidden
/// call, SIGKILL): the DC stays, as a dead unikernel's always does, so that its clients get
/// dead-peer errors and `dvs ps` shows what was bound. SIGINT and SIGTERM are blocked: a Ctrl-C
/// to the terminal's process group must not end it before the unikernel has stopped.
pub fn remove_dc_at_eof(name: &str) -> Result<()> {
    let _blocked = crate::signals::Signals::block()?;
    let mut said = Vec::new();
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => said.extend_from_slice(&sink[..n.min(64)]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
        said.truncate(REMOVE.len());
    }
    if said != REMOVE {
        muk::diag!("muk2: the unikernel of DC {name} died; the DC is left (`dvs dc rm {name}`)");
        return Ok(());
    }
    match Dc::remove(name) {
        Ok(()) | Err(m3ipc::DcError::NotFound(..)) => Ok(()),
        Err(e) => Err(Error(format!("removing DC {name}: {e}"))),
    }
}

/// `muk2 sandbox-profile`: the allowlist, one call a line.
pub fn print_profile() -> Result<()> {
    let p = muk::sandbox::PROFILE;
    let n = muk::sandbox::NETWORK_PROFILE;
    let mut text = format!(
        "muk2's sandbox: {} system calls allowed after boot (any other ends the process), \
         {} more when a network server (web, IS) is hosted\n",
        p.len(),
        n.len()
    );
    for (title, list) in [("", p), ("with a network server:\n", n)] {
        text.push_str(title);
        for e in list {
            text.push_str(&format!(
                "{:<16} {:>4}  only: {}\n{:<22}why: {}\n",
                e.call, e.nr, e.only, "", e.why
            ));
        }
    }
    output::print(&text)
}

/// The slot of the test-only server `forbidden`.
pub const FORBIDDEN_NR: i32 = 21;

/// The test-only server, when `MUK2_TEST_FORBIDDEN_CALL` names a call.
pub fn test_server() -> Result<Option<Hosted>> {
    let Ok(call) = std::env::var("MUK2_TEST_FORBIDDEN_CALL") else {
        return Ok(None);
    };
    let call = match call.as_str() {
        "openat" => ForbiddenCall::Openat,
        "execve" => ForbiddenCall::Execve,
        "socket" => ForbiddenCall::Socket,
        other => {
            return Err(Error(format!(
                "MUK2_TEST_FORBIDDEN_CALL={other:?}: not openat, execve or socket"
            )));
        }
    };
    Ok(Some(Hosted {
        name: "forbidden".into(),
        nr: FORBIDDEN_NR,
        stack_size: muk::host::DEFAULT_STACK,
        server: Box::new(Forbidden(call)),
    }))
}

#[derive(Clone, Copy, Debug)]
enum ForbiddenCall {
    Openat,
    Execve,
    Socket,
}

/// Answers each request after making its call: `OK` with the call's result in `m1i1` when the
/// call returns (no sandbox), never when the sandbox ends the process.
struct Forbidden(ForbiddenCall);

impl Forbidden {
    fn call(&self) -> i32 {
        match self.0 {
            // SAFETY: a NUL-terminated literal path; the descriptor is closed at once.
            ForbiddenCall::Openat => unsafe {
                let fd = libc::openat(
                    libc::AT_FDCWD,
                    c"/etc/hostname".as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                );
                if fd >= 0 {
                    libc::close(fd);
                }
                fd
            },
            // SAFETY: a NUL-terminated path, and argv/envp arrays ending in null. A path that
            // does not exist: without the sandbox it fails with ENOENT and replaces nothing.
            ForbiddenCall::Execve => unsafe {
                let path = c"/nonexistent/muk2-test".as_ptr();
                let argv = [path, core::ptr::null()];
                let envp = [core::ptr::null::<libc::c_char>()];
                libc::execve(path, argv.as_ptr(), envp.as_ptr())
            },
            // SAFETY: socket has no memory arguments; the descriptor is closed at once.
            ForbiddenCall::Socket => unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                if fd >= 0 {
                    libc::close(fd);
                }
                fd
            },
        }
    }
}

impl Server for Forbidden {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        let mut m = Message::default();
        loop {
            match ipc.receive(ANY, &mut m, Timeout::Forever) {
                Ok(()) => {
                    let mut r = Message::new(0);
                    r.m1_mut().m1i1 = self.call();
                    let _ = ipc.reply(m.m_source, &r);
                }
                Err(Errno::EDVSSHUTDOWN) => return Ok(()),
                Err(Errno::EDVSTIMEDOUT | Errno::EDVSWOKENUP | Errno::EDVSSRCDIED) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
