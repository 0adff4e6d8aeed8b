//! Namespaces for `muk2 run --isolate`: a child process in new user, mount, PID, IPC, UTS and
//! network namespaces, whose root holds only the files it is given (its DC's region and pool
//! files, its disk images) and a `/proc` of its own PID namespace.
//!
//! [`spawn`] clones the calling (single-threaded) process with the new namespaces, as `fork`
//! would copy it; the parent writes the child's UID and GID maps (its own IDs, mapped to
//! themselves), moves the plan's interface, if any, into the child's network namespace (one
//! `RTM_NEWLINK` netlink request with `IFLA_NET_NS_PID`, as `ip link set dev IF netns PID`
//! sends), and then lets it go on. The child:
//! 1. takes its identity in the outer PID namespace from the outer `/proc`
//!    ([`m3ipc::assume_outer_identity`]): its slots are bound with it, so outer processes judge
//!    them as they judge any other, and it counts every other owner as alive (it cannot see
//!    them; the parent, outside, releases the slots of dead outer processes);
//! 2. names its host `muk2` and brings up the loopback interface, and the interface the parent
//!    moved in when the plan names one ([`Plan::interface`]), with its address;
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

use crate::config::{InterfaceAddress, IsolateSpec};

/// Why the namespaces could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// The kernel refused the new namespaces (no root, no unprivileged user namespaces).
    #[error(
        "cannot create the namespaces (--isolate needs root or unprivileged user namespaces): {0}"
    )]
    Unavailable(std::io::Error),
    /// The interface to move in cannot be (it does not exist, is in use, or the kernel
    /// refused the move).
    #[error("[isolate] interface {name:?}: {why}")]
    Interface {
        /// The interface.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// Another step failed.
    #[error("{0}")]
    Other(String),
}

/// What the child's root holds.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Files bound into the new root at the same absolute path (made canonical here).
    pub files: Vec<PathBuf>,
    /// A host interface to move into the new network namespace and bring up there (with its
    /// address, when given). It must exist here, not be a loopback, a bridge's or bond's port,
    /// up, or have an IPv4 address ([`check_interface`]): what a moved interface would take
    /// away from the host.
    pub interface: Option<IsolateSpec>,
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
    if let Some(spec) = &plan.interface {
        check_interface(&spec.interface)?;
    }
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
        let setup = wait_for_go(go_r).and_then(|()| enter(&files, plan.interface.as_ref()));
        let code = child(setup);
        let _ = std::io::stdout().flush();
        // SAFETY: _exit ends the process without running the parent's destructors (copies of
        // them live in this child's memory and must not act twice).
        unsafe { libc::_exit(code) };
    }
    drop(go_r);
    let pid = pid as u32;
    let ready = write_maps(pid)
        .map_err(IsolateError::Unavailable)
        .and_then(|()| match &plan.interface {
            Some(spec) => move_interface(&spec.interface, pid),
            None => Ok(()),
        });
    match ready {
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
            Err(e)
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
fn enter(files: &[PathBuf], interface: Option<&IsolateSpec>) -> Setup {
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
    if let Some(spec) = interface {
        interface_up(spec)?;
    }
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

/// Bring up `lo`, the new network namespace's loopback (down when it is made).
fn loopback_up() -> Result<(), String> {
    let sock = inet_socket().map_err(|e| format!("socket for lo: {e}"))?;
    set_up(&sock, "lo")
}

/// A datagram socket for the interface ioctls.
fn inet_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: socket has no memory arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just opened and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An ifreq naming `name` (at most [`crate::config::MAX_INTERFACE_NAME`] bytes: longer names
/// are cut, and then name no interface).
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain C data, valid when zeroed.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let room = req.ifr_name.len() - 1;
    for (d, s) in req.ifr_name.iter_mut().take(room).zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    req
}

/// The interface's flags (`IFF_*`).
fn flags_of(sock: &OwnedFd, name: &str) -> std::io::Result<libc::c_int> {
    let mut req = ifreq(name);
    // SAFETY: `req` is a live ifreq naming the interface; SIOCGIFFLAGS fills in its flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the union member SIOCGIFFLAGS just wrote.
    Ok(libc::c_int::from(unsafe { req.ifr_ifru.ifru_flags }) & 0xffff)
}

/// Bring interface `name` up.
fn set_up(sock: &OwnedFd, name: &str) -> Result<(), String> {
    let flags = flags_of(sock, name).map_err(|e| format!("reading {name}'s flags: {e}"))?;
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_flags = (flags | libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: `req` is a live ifreq naming the interface, with the flags to set.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    check(rc, &format!("bringing {name} up"))
}

/// `ip` as a `sockaddr` (`AF_INET`) for the address ioctls.
fn sockaddr_of(ip: std::net::Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes of plain data; the kernel reads the
    // family and then the sockaddr_in fields.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// The child's part for the moved-in interface: its address and netmask (when given), then up.
fn interface_up(spec: &IsolateSpec) -> Result<(), String> {
    let name = &spec.interface;
    let sock = inet_socket().map_err(|e| format!("socket for {name}: {e}"))?;
    if let Some(a) = spec.address {
        set_address(&sock, name, a)?;
    }
    set_up(&sock, name)
}

/// Give interface `name` the IPv4 address `a` (SIOCSIFADDR, then SIOCSIFNETMASK: the kernel
/// adds the prefix's route).
fn set_address(sock: &OwnedFd, name: &str, a: InterfaceAddress) -> Result<(), String> {
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_addr = sockaddr_of(a.ip);
    // SAFETY: `req` is a live ifreq naming the interface, holding an AF_INET address.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFADDR, &req) };
    check(rc, &format!("giving {name} the address {}", a.ip))?;
    req.ifr_ifru.ifru_netmask = sockaddr_of(a.netmask());
    // SAFETY: as above, holding the netmask.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFNETMASK, &req) };
    check(rc, &format!("giving {name} the netmask {}", a.netmask()))
}

/// Whether the host may give interface `name` to the unikernel: it exists here, and nothing on
/// the host uses it (not a loopback, not a bridge's or bond's port, not up, no IPv4 address).
pub fn check_interface(name: &str) -> Result<(), IsolateError> {
    let refuse = |why: String| IsolateError::Interface {
        name: name.into(),
        why,
    };
    let sock = inet_socket().map_err(|e| refuse(format!("socket: {e}")))?;
    let flags = match flags_of(&sock, name) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
            return Err(refuse(
                "no such interface in this network namespace (`ip link` lists them; one \
                 moved into another namespace is no longer here)"
                    .into(),
            ));
        }
        Err(e) => return Err(refuse(format!("reading its flags: {e}"))),
    };
    if flags & libc::IFF_LOOPBACK != 0 {
        return Err(refuse(
            "is a loopback: the unikernel has its own, and this one cannot move".into(),
        ));
    }
    if let Ok(master) = std::fs::read_link(format!("/sys/class/net/{name}/master")) {
        let master = master.file_name().map_or_else(
            || master.display().to_string(),
            |m| m.to_string_lossy().into_owned(),
        );
        return Err(refuse(format!(
            "is in use: a port of {master} (`ip link set {name} nomaster` frees it)"
        )));
    }
    if flags & libc::IFF_UP != 0 {
        return Err(refuse(format!(
            "is in use: it is up on the host (moving it would take it away; `ip link set \
             {name} down` first if that is meant)"
        )));
    }
    let mut req = ifreq(name);
    // SAFETY: `req` is a live ifreq naming the interface; SIOCGIFADDR fills in its address.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFADDR, &mut req) } == 0 {
        return Err(refuse(format!(
            "is in use: it has an IPv4 address on the host (`ip addr flush dev {name}` frees it)"
        )));
    }
    Ok(())
}

/// The parent's part: move interface `name` into the network namespace of process `pid`, by
/// netlink (`RTM_NEWLINK` on its index with `IFLA_NET_NS_PID`), and read the kernel's answer.
fn move_interface(name: &str, pid: u32) -> Result<(), IsolateError> {
    let refuse = |why: String| IsolateError::Interface {
        name: name.into(),
        why,
    };
    let c_name = CString::new(name).map_err(|_| refuse("NUL in the name".into()))?;
    // SAFETY: a NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(refuse(format!(
            "vanished before it could be moved: {}",
            std::io::Error::last_os_error()
        )));
    }
    netlink_move(index, pid).map_err(|e| {
        refuse(match e.raw_os_error() {
            Some(libc::EPERM) => format!(
                "moving it into the unikernel's namespace needs CAP_NET_ADMIN on the host \
                 (root): {e}"
            ),
            Some(libc::EINVAL) => {
                format!("the kernel will not move it to another namespace (a namespace-local device?): {e}")
            }
            _ => format!("moving it into the unikernel's namespace: {e}"),
        })
    })
}

/// Send one `RTM_NEWLINK` that moves interface `index` into `pid`'s network namespace; the
/// kernel's error, if any.
fn netlink_move(index: u32, pid: u32) -> std::io::Result<()> {
    const NLMSG_HDR: usize = 16;
    const IFINFOMSG: usize = 16;
    const RTA: usize = 8;
    const LEN: usize = NLMSG_HDR + IFINFOMSG + RTA;
    const SEQ: u32 = 1;
    let mut msg = Vec::with_capacity(LEN);
    // struct nlmsghdr
    msg.extend_from_slice(&(LEN as u32).to_ne_bytes());
    msg.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg.extend_from_slice(&SEQ.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    // struct ifinfomsg: family, pad, type, index, flags, change
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    msg.extend_from_slice(&(index as i32).to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    // struct rtattr IFLA_NET_NS_PID, u32
    msg.extend_from_slice(&(RTA as u16).to_ne_bytes());
    msg.extend_from_slice(&libc::IFLA_NET_NS_PID.to_ne_bytes());
    msg.extend_from_slice(&pid.to_ne_bytes());
    // SAFETY: socket has no memory arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just opened and is owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain C data, valid when zeroed; pid 0 is the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `msg` is valid for its length, `kernel` for the size given.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&raw const kernel).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The answer: an NLMSG_ERROR whose first field is 0 (done) or -errno.
    let mut answer = [0u8; 1024];
    // Nothing else is sent to this socket: the answer is the first message, a few strays at
    // most are skipped, never waited for without end.
    for _ in 0..16 {
        // SAFETY: `answer` is valid for writes of its length.
        let got = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                answer.as_mut_ptr().cast(),
                answer.len(),
                0,
            )
        };
        if got < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let got = &answer[..got as usize];
        let u16_at = |o: usize| got.get(o..o + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
        let u32_at = |o: usize| {
            got.get(o..o + 4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        let (Some(kind), Some(seq), Some(code)) = (u16_at(4), u32_at(8), u32_at(NLMSG_HDR)) else {
            return Err(std::io::Error::other("a short netlink answer"));
        };
        if kind != libc::NLMSG_ERROR as u16 || seq != SEQ {
            // Not the answer to our request (nothing else is sent to this socket, but a
            // stray message is no reason to fail).
            continue;
        }
        return match code as i32 {
            0 => Ok(()),
            e => Err(std::io::Error::from_raw_os_error(-e)),
        };
    }
    Err(std::io::Error::other(
        "no answer from the kernel to the netlink request",
    ))
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
