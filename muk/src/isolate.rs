//! Namespaces for `muk2 run --isolate`: a child process in new user, mount, PID, IPC, UTS and
//! network namespaces, whose root holds only the files it is given (its DC's region and pool
//! files, its disk images) and a `/proc` of its own PID namespace.
//!
//! [`spawn`] clones the calling (single-threaded) process with the new namespaces, as `fork`
//! would copy it; the parent writes the child's UID and GID maps (its own IDs, mapped to
//! themselves) and then lets it go on. The child:
//! 1. takes its identity in the outer PID namespace from the outer `/proc`
//!    ([`m3ipc::assume_outer_identity`]): its slots are bound with it, so outer processes judge
//!    them as they judge any other, and it counts every other owner as alive (it cannot see
//!    them; the parent, outside, releases the slots of dead outer processes);
//! 2. names its host `muk2` and brings up the loopback interface (its only one);
//! 3. makes every mount private, builds a new root on a tmpfs (mounted over `/tmp` or `/mnt` of
//!    its private mount table, never the host's), bind-mounts each file at its own path (opened
//!    before the tmpfs can hide it), mounts `proc`, pivots into it, drops the old root and makes
//!    the root read-only (the bound files stay writable);
//! 4. runs the closure and exits with its code.
//!
//! Outer processes still reach the child's servers: the region file is the same file (same
//! inode), so its slots, mailboxes and futex doorbells (shared futexes are keyed by the file,
//! not the process) work across the namespaces.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the namespaces could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// The kernel refused the new namespaces (no root, no unprivileged user namespaces).
    #[error(
        "cannot create the namespaces (--isolate needs root or unprivileged user namespaces): {0}"
    )]
    Unavailable(std::io::Error),
    /// Another step failed.
    #[error("{0}")]
    Other(String),
}

/// What the child's root holds.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Files bound into the new root at the same absolute path (made canonical here).
    pub files: Vec<PathBuf>,
}

/// The child's view of its set-up: its outer identity, or why the set-up failed.
pub type Setup = Result<m3ipc::OuterIdentity, String>;

/// Clone this process into new namespaces (see the module doc). In the parent, returns the
/// child's PID; in the child, sets up and runs `child`, then exits with its code (never
/// returns). The calling process must be single-threaded: the child is a copy of it, with only
/// the calling thread.
pub fn spawn<F>(plan: &Plan, child: F) -> Result<u32, IsolateError>
where
    F: FnOnce(Setup) -> i32,
{
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
    if threads != 1 {
        return Err(IsolateError::Other(format!(
            "--isolate must start from a single thread, found {threads}"
        )));
    }
    let files = plan
        .files
        .iter()
        .map(|f| {
            std::fs::canonicalize(f)
                .map_err(|e| IsolateError::Other(format!("{}: {e}", f.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (go_r, go_w) = pipe().map_err(|e| IsolateError::Other(format!("pipe: {e}")))?;
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWNET;
    // SAFETY: clone without CLONE_VM and with a null stack acts as fork: the child gets a copy of
    // this (single-threaded, checked above) process and returns here with 0.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(IsolateError::Unavailable(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(go_w);
        let setup = wait_for_go(go_r).and_then(|()| enter(&files));
        let code = child(setup);
        let _ = std::io::stdout().flush();
        // SAFETY: _exit ends the process without running the parent's destructors (copies of
        // them live in this child's memory and must not act twice).
        unsafe { libc::_exit(code) };
    }
    drop(go_r);
    let pid = pid as u32;
    match write_maps(pid) {
        Ok(()) => {
            let mut go = File::from(go_w);
            go.write_all(b"g")
                .map_err(|e| IsolateError::Other(format!("starting the child: {e}")))?;
            Ok(pid)
        }
        Err(e) => {
            // SAFETY: `pid` is our unreaped child; kill and waitpid have no memory effects
            // beyond the status word we pass.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
            Err(IsolateError::Unavailable(e))
        }
    }
}

/// An O_CLOEXEC pipe: (read end, write end).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The parent's part: map the child's user and group to ours, one ID each (what an
/// unprivileged process may write; `setgroups` denied first, as the kernel requires then).
fn write_maps(pid: u32) -> std::io::Result<()> {
    // SAFETY: geteuid and getegid have no arguments and cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let at = |f: &str| format!("/proc/{pid}/{f}");
    std::fs::write(at("uid_map"), format!("{uid} {uid} 1\n"))?;
    std::fs::write(at("setgroups"), "deny")?;
    std::fs::write(at("gid_map"), format!("{gid} {gid} 1\n"))
}

/// The child waits until the parent has written its maps (EOF: the parent gave up).
fn wait_for_go(go: OwnedFd) -> Result<(), String> {
    let mut byte = [0u8; 1];
    match File::from(go).read(&mut byte) {
        Ok(1) => Ok(()),
        _ => Err("the parent did not start the isolated child".into()),
    }
}

/// The child's set-up, in the new namespaces.
fn enter(files: &[PathBuf]) -> Setup {
    // SAFETY: prctl with an integer signal number has no memory effects. A parent that dies
    // (the one that removes the DC and releases dead outsiders' slots) stops the unikernel in
    // order: SIGTERM, which it takes by waiting for it.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) };
    let id = m3ipc::assume_outer_identity(Path::new("/proc"))
        .map_err(|e| format!("reading the outer identity from /proc: {e}"))?;
    let name = b"muk2";
    // SAFETY: `name` is valid for its length.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    check(rc, "sethostname")?;
    loopback_up()?;
    new_root(files)?;
    Ok(id)
}

fn check(rc: libc::c_int, what: &str) -> Result<(), String> {
    if rc < 0 {
        Err(format!("{what}: {}", std::io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

fn c_path(p: &Path) -> Result<CString, String> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{}: NUL in path", p.display()))
}

/// Bring up `lo`, the new network namespace's only interface (down when it is made).
fn loopback_up() -> Result<(), String> {
    // SAFETY: socket has no memory arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd, "socket for lo")?;
    // SAFETY: the descriptor was just opened and is owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain C data, valid when zeroed.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo") {
        *d = *s as libc::c_char;
    }
    // SAFETY: `req` is a live ifreq naming `lo`; SIOCGIFFLAGS fills in its flags.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    check(rc, "reading lo's flags")?;
    // SAFETY: the union member SIOCGIFFLAGS just wrote.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above, with the flags to set.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    check(rc, "bringing lo up")
}

/// Mount `src` on `dst` (a thin wrapper that names the step in its error).
fn mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let src_c = src.map(c_path).transpose()?;
    let dst_c = c_path(dst)?;
    let type_c = fstype.map(|t| CString::new(t).unwrap_or_default());
    let data_c = data.map(|d| CString::new(d).unwrap_or_default());
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            ptr(&src_c),
            dst_c.as_ptr(),
            ptr(&type_c),
            flags,
            ptr(&data_c).cast(),
        )
    };
    check(rc, &format!("mounting {}", dst.display()))
}

/// Build the new root and pivot into it (step 3 of the module doc).
fn new_root(files: &[PathBuf]) -> Result<(), String> {
    // Nothing done below may propagate to the host's mount table.
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    // Open every file first: the tmpfs below may hide it (an image under /tmp).
    let sources = files
        .iter()
        .map(|f| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(f)
                .map(|file| (f.clone(), file))
                .map_err(|e| format!("{}: {e}", f.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stage = ["/tmp", "/mnt"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_dir())
        .ok_or("no /tmp or /mnt to build the new root on")?;
    mount(
        Some(Path::new("tmpfs")),
        stage,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755,size=1m"),
    )?;
    for (path, file) in &sources {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let target = stage.join(rel);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        File::create(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        let via = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        mount(Some(&via), &target, None, libc::MS_BIND, None)?;
    }
    drop(sources);
    let proc_dir = stage.join("proc");
    std::fs::create_dir_all(&proc_dir).map_err(|e| format!("{}: {e}", proc_dir.display()))?;
    mount(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    std::env::set_current_dir(stage).map_err(|e| format!("{}: {e}", stage.display()))?;
    // pivot_root(".", "."): the old root is stacked on the new one, then detached.
    let dot = c".";
    // SAFETY: two NUL-terminated literals.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    check(rc as libc::c_int, "pivot_root")?;
    // SAFETY: a NUL-terminated literal.
    let rc = unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) };
    check(rc, "detaching the old root")?;
    std::env::set_current_dir("/").map_err(|e| format!("/: {e}"))?;
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )
}
