//! Who owns a slot, and whether that process still lives.
//!
//! A process is named by its PID and its start time (field 22 of `/proc/PID/stat`, in clock ticks
//! since boot). A PID that the kernel has given to a new process has a different start time, so
//! PID reuse never makes a dead owner look alive. A zombie (killed but not yet reaped by its
//! parent) counts as dead: it will never touch the region again.
//!
//! # A process in a PID namespace of its own
//!
//! Owner words name processes by their PID in the *outer* PID namespace, the one the DC's other
//! processes share (`muk2 run --isolate` runs the unikernel in a namespace of its own). A process
//! in a child namespace sees itself under another PID and cannot see the outer processes at all,
//! so it calls [`assume_outer_identity`] once, while `/proc` is still the outer one. From then
//! on:
//! - its binds record its outer PID and start time, so outer processes judge its slots as they
//!   judge any other (alive while it runs, released once it died);
//! - it judges every *other* owner as alive: their PIDs cannot be resolved here (a PID it could
//!   look up would name some process of its own namespace, not the owner), and calling them dead
//!   would release the slots of live clients. Its own PID is still judged by start time.
//!
//! The cost: this process never releases the slot of an outer process that died; an outer
//! process does (its next bind of that slot, a peer's liveness tick, `dvs dc ls`, or the parent
//! `muk2 run --isolate` leaves outside, which releases dead owners' slots every few hundred
//! milliseconds). Until then a reply to the dead client goes to its slot and is dropped with it.
//! Nothing read from the region can make this panic or loop: the rule only widens "alive".

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

/// A process identity: PID and start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcessId {
    /// Linux PID (thread-group id).
    pub(crate) pid: u32,
    /// Start time in clock ticks since boot.
    pub(crate) start: u64,
}

static CURRENT: OnceLock<(u32, u64)> = OnceLock::new();

/// Set by [`assume_outer_identity`]: the PID this process has in its own namespace, and its
/// identity in the outer one.
static OUTER: OnceLock<(u32, ProcessId)> = OnceLock::new();

/// The outer identity of this process, if it assumed one (and is the process that did: a child
/// it forks has another PID here and does not inherit it).
fn outer_self() -> Option<ProcessId> {
    OUTER
        .get()
        .filter(|(local, _)| *local == std::process::id())
        .map(|&(_, id)| id)
}

/// Whether this process (or the process it was forked from) assumed an outer identity: the
/// owners it cannot resolve then count as alive (see the module doc).
pub(crate) fn isolated() -> bool {
    OUTER.get().is_some()
}

/// This process's PID and start time in the outer PID namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OuterIdentity {
    /// PID in the outer namespace (what owner words record).
    pub pid: u32,
    /// Start time in clock ticks since boot (the same in every PID namespace).
    pub start: u64,
}

/// Take this process's identity in the outer PID namespace from `proc_dir`, a `/proc` mounted
/// for that namespace (the outer `/proc`, before a new one replaces it): `PID/stat` read through
/// its `self` link gives the PID the outer namespace knows this process by. Every later bind of
/// this process records that identity, and liveness checks in this process count every owner
/// other than itself as alive (see the module doc). Call it once, before the first bind; a
/// second call fails.
///
/// Errors: `proc_dir/self/stat` unreadable or malformed, or a second call.
pub fn assume_outer_identity(proc_dir: &std::path::Path) -> std::io::Result<OuterIdentity> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let text = std::fs::read_to_string(proc_dir.join("self/stat"))?;
    let pid: u32 = text
        .split_ascii_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .filter(|&p| p > 0 && p <= i32::MAX as u32)
        .ok_or_else(|| bad("no PID in self/stat"))?;
    let start = parse_stat(&text)
        .ok_or_else(|| bad("no start time in self/stat"))?
        .start;
    let id = ProcessId { pid, start };
    OUTER
        .set((std::process::id(), id))
        .map_err(|_| bad("the outer identity was assumed already"))?;
    Ok(OuterIdentity { pid, start })
}

impl ProcessId {
    /// The calling process. The start time is read once per process (a forked child, which has
    /// another PID, reads its own). A process that assumed an outer identity gets that.
    pub(crate) fn current() -> ProcessId {
        if let Some(id) = outer_self() {
            return id;
        }
        let pid = std::process::id();
        if let Some(&(p, start)) = CURRENT.get()
            && p == pid
        {
            return ProcessId { pid, start };
        }
        let start = stat(pid).map_or(0, |s| s.start);
        let _ = CURRENT.set((pid, start));
        ProcessId { pid, start }
    }

    /// The live process `pid` (not a zombie), with its start time; `None` when there is none,
    /// and in an isolated process for every PID but its own (it cannot learn their start time).
    pub(crate) fn of(pid: u32) -> Option<ProcessId> {
        if pid == 0 || pid > i32::MAX as u32 {
            return None;
        }
        if isolated() {
            return outer_self().filter(|me| me.pid == pid);
        }
        let s = stat(pid)?;
        (s.state != 'Z' && s.state != 'X').then_some(ProcessId {
            pid,
            start: s.start,
        })
    }

    /// Whether this process is still alive (and not a zombie). In an isolated process: any
    /// other process counts as alive (it cannot be resolved here), this one by its start time.
    pub(crate) fn is_alive(self) -> bool {
        if self.pid == 0 || self.pid > i32::MAX as u32 {
            return false;
        }
        if isolated() {
            return alive_seen_from_inside(outer_self(), self);
        }
        match stat(self.pid) {
            Some(s) => s.start == self.start && s.state != 'Z' && s.state != 'X',
            None => false,
        }
    }
}

/// The judgement of an isolated process `me` (its outer identity; `None` in a child it forked)
/// on `other`, a valid PID: itself by start time, anyone else alive (unknown).
fn alive_seen_from_inside(me: Option<ProcessId>, other: ProcessId) -> bool {
    me.is_none_or(|me| me.pid != other.pid || me.start == other.start)
}

/// The fields of `/proc/PID/stat` we need.
struct Stat {
    state: char,
    start: u64,
}

/// The `/proc` directory pinned by [`pin_proc_dir`]; -1 until then.
static PROC_DIR: AtomicI32 = AtomicI32::new(-1);

/// Open `/proc` once and read every later liveness check's `PID/stat` relative to that
/// descriptor (`openat(fd, "PID/stat", O_RDONLY|O_CLOEXEC)`, `read`, `close`: no path lookup
/// from the root, no `statx`), so that a seccomp filter can allow `openat` on this one
/// directory and refuse every other. Returns the descriptor; a second call returns the same.
pub fn pin_proc_dir() -> std::io::Result<i32> {
    // Acquire: pairs with the Release below (the descriptor is open before it is seen).
    let fd = PROC_DIR.load(Ordering::Acquire);
    if fd >= 0 {
        return Ok(fd);
    }
    // SAFETY: the path is a NUL-terminated literal; O_PATH opens no file contents.
    let fd = unsafe {
        libc::open(
            c"/proc".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    match PROC_DIR.compare_exchange(-1, fd, Ordering::Release, Ordering::Acquire) {
        Ok(_) => Ok(fd),
        Err(theirs) => {
            // Another thread pinned it first: keep theirs.
            // SAFETY: `fd` was opened above and is not shared.
            unsafe { libc::close(fd) };
            Ok(theirs)
        }
    }
}

/// The text of `/proc/PID/stat`: through the pinned directory when there is one.
pub(crate) fn read_stat(pid: u32) -> Option<String> {
    // Acquire: pairs with the Release in `pin_proc_dir`.
    let dir = PROC_DIR.load(Ordering::Acquire);
    if dir < 0 {
        return std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    }
    let rel = std::ffi::CString::new(format!("{pid}/stat")).ok()?;
    // SAFETY: `rel` is NUL-terminated and outlives the call; `dir` stays open for the process.
    let fd = unsafe { libc::openat(dir, rel.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // A stat line is well under 1 KiB; 4 KiB bounds the loop.
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: writing at most `buf.len() - len` bytes into `buf` from offset `len`.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&read_stat(pid)?)
}

/// Parse `/proc/PID/stat`. The command name (field 2) may hold spaces and parentheses, so fields
/// are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3) come fields 4..; the start time is field 22.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some(Stat { state, start })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let line =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 100";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.start, 987654);
    }

    #[test]
    fn current_is_alive_and_others_are_not() {
        let me = ProcessId::current();
        assert!(me.pid > 0 && me.start > 0);
        assert!(me.is_alive());
        assert!(
            !ProcessId {
                pid: me.pid,
                start: me.start + 1
            }
            .is_alive()
        );
        assert!(!ProcessId { pid: 0, start: 0 }.is_alive());
    }

    #[test]
    fn a_pinned_proc_dir_reads_the_same_stat() {
        let me = ProcessId::current();
        let fd = pin_proc_dir().unwrap();
        assert!(fd >= 0);
        assert_eq!(pin_proc_dir().unwrap(), fd, "pinned once");
        let s = stat(me.pid).unwrap();
        assert_eq!(s.start, me.start);
        assert!(me.is_alive());
        assert!(read_stat(u32::MAX >> 1).is_none());
    }

    #[test]
    fn inside_a_pid_namespace_only_its_own_pid_is_judged() {
        let me = ProcessId {
            pid: 4000,
            start: 77,
        };
        let at = |pid, start| ProcessId { pid, start };
        assert!(alive_seen_from_inside(Some(me), me));
        assert!(!alive_seen_from_inside(Some(me), at(4000, 78)), "an earlier 4000");
        assert!(alive_seen_from_inside(Some(me), at(4001, 1)), "an outside PID");
        assert!(alive_seen_from_inside(None, at(4000, 78)), "from a forked child");
    }

    #[test]
    fn zombie_is_dead() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId {
            pid: child.id(),
            start: stat(child.id()).map_or(0, |s| s.start),
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        // Not yet waited for: a zombie.
        assert!(!id.is_alive());
        let mut child = child;
        child.wait().unwrap();
        assert!(!id.is_alive());
    }
}
