//! Sockets for servers: what a server may wait for besides messages, under both runners.
//!
//! A server that talks TCP owns its sockets, makes them non-blocking, and tells its runner
//! which ones it watches ([`crate::Ipc::watch_fd`]). When every socket it serves would block
//! it calls [`crate::Ipc::wait_io`], which returns the sockets that became ready since.
//! Readiness is edge-triggered: a socket is reported once each time it becomes readable or
//! writable, so a server reads (or writes) until `WouldBlock` before it waits again.
//!
//! - Under MUK2 the wait parks the server's coroutine; the scheduler's one sleep waits for the
//!   doorbell and for every watched socket together (see `coro::io`).
//! - Under MUK the wait blocks the server's own OS thread in `epoll_wait` on its own epoll set,
//!   a tick at a time ([`m3ipc::wait::LIVENESS_TICK`]) so that it sees a stop, as every futex
//!   wait of the fabric is bounded by that tick.

use m3ipc::{Errno, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// One watched socket that became ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoEvent {
    /// The token the server gave with [`crate::Ipc::watch_fd`].
    pub token: u64,
    /// Readable (or the peer closed its half, or an error: a read says which).
    pub readable: bool,
    /// Writable (or an error: a write says which).
    pub writable: bool,
}

/// Largest token a server may give: tokens are 48 bits (MUK2 keeps the task in the rest).
pub const MAX_TOKEN: u64 = (1 << 48) - 1;

/// An epoll set in edge-triggered mode, as both runners use it.
#[derive(Debug)]
pub(crate) struct Epoll(OwnedFd);

/// The events every watched socket is registered for.
const WATCHED: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

/// The errno of the last failed system call, as an EDVS code for a server.
pub(crate) fn os_errno() -> Errno {
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EBADF) => Errno::EDVSBADF,
        Some(libc::ENOMEM | libc::ENOSPC | libc::EMFILE | libc::ENFILE) => Errno::EDVSNOMEM,
        Some(libc::EEXIST) => Errno::EDVSEXIST,
        Some(libc::ENOENT) => Errno::EDVSNOENT,
        _ => Errno::EDVSINVAL,
    }
}

impl Epoll {
    /// A new, empty set.
    pub(crate) fn new() -> Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointer; a non-negative result is a new descriptor
        // that we own from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(os_errno());
        }
        // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The set's own descriptor (readable when a watched socket is ready).
    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Watch `fd`, reporting `data` with its events.
    pub(crate) fn add(&self, fd: RawFd, data: u64) -> Result<()> {
        let mut ev = libc::epoll_event {
            events: WATCHED,
            u64: data,
        };
        // SAFETY: `ev` lives on this frame for the call; the kernel copies it.
        let r = unsafe { libc::epoll_ctl(self.raw(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 { Err(os_errno()) } else { Ok(()) }
    }

    /// Stop watching `fd`.
    pub(crate) fn del(&self, fd: RawFd) -> Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as `add` (kernels before 2.6.9 wanted a non-null event).
        let r = unsafe { libc::epoll_ctl(self.raw(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
        if r < 0 { Err(os_errno()) } else { Ok(()) }
    }

    /// Wait up to `timeout_ms` (0: just look) for events; call `each(data, readable,
    /// writable)` for every one. Returns how many there were (0 on a timeout or a signal).
    pub(crate) fn wait(&self, timeout_ms: i32, mut each: impl FnMut(u64, bool, bool)) -> usize {
        const BATCH: usize = 256;
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        // SAFETY: `evs` is a writable array of BATCH events on this frame; the kernel writes at
        // most BATCH of them and returns how many.
        let n = unsafe { libc::epoll_wait(self.raw(), evs.as_mut_ptr(), BATCH as i32, timeout_ms) };
        let n = usize::try_from(n).unwrap_or(0).min(BATCH);
        for ev in &evs[..n] {
            let bits = ev.events;
            let data = ev.u64;
            let err = bits & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
            let readable = err || bits & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0;
            let writable = err || bits & libc::EPOLLOUT as u32 != 0;
            each(data, readable, writable);
        }
        n
    }
}

static ANNOUNCED: std::sync::Mutex<Vec<(String, std::net::SocketAddr)>> =
    std::sync::Mutex::new(Vec::new());

/// Record that this process's server `name` listens on `addr` (the network servers do when
/// they are built), for `muk2 run` to print.
pub fn announce(name: &str, addr: std::net::SocketAddr) {
    let mut a = ANNOUNCED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    a.retain(|(n, _)| n != name);
    a.push((name.to_string(), addr));
}

/// Where this process's server `name` listens, if it announced it.
pub fn announced(name: &str) -> Option<std::net::SocketAddr> {
    ANNOUNCED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| *a)
}

/// A listening TCP socket on `addr` (port 0: any free port), non-blocking, with `SO_REUSEADDR`
/// (std sets it) and the kernel's largest backlog.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}
