//! Taking over a DC left behind by a dead process, and the lock that makes removal and takeover
//! safe against each other.
//!
//! A process killed by SIGKILL (or a power loss) cannot remove its DC: the region and pool files
//! stay, and the next `create` of that name would fail. A region is *stale* when its creator is
//! dead (PID and start time, so a reused PID does not look alive) and no slot has a live owner;
//! a stale region is removed and the DC created afresh. A region whose creator or any slot owner
//! lives is refused with [`DcError::InUse`], naming that process.
//!
//! The race. Two processes that both find the same region stale must not both win: the loser
//! could otherwise unlink the winner's fresh region. Every removal of a region file (by
//! [`crate::Dc::remove`] or by a takeover) happens while holding an exclusive `flock` on that
//! file, after checking that the path still names the locked file. So of two takers, the first
//! to lock judges, unlinks and unlocks; the second then finds that the path no longer names the
//! file it locked, and starts again from the path: there it finds no file (and races the first
//! taker in the exclusive `create_new`, which exactly one wins) or the winner's fresh region
//! (whose creator lives: refused). The lock is never held while waiting for anything else, and is
//! released by the kernel when its holder dies.
//!
//! Limit: a process that opens the stale DC and binds between the judgement and the unlink ends
//! up in a removed DC (its calls fail with `EDVSDCNOTRUN`), as after `dvs dc rm`.

use crate::cleanup;
use crate::owner::ProcessId;
use crate::region::{self, DcError, Region, io_err};
use crate::slot::SlotState;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Longest wait for another process's removal or takeover of the same region (each takes
/// milliseconds; only a stopped process makes one last longer).
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// How long a region whose creator is not yet recorded (a creator killed within microseconds of
/// creating the file) counts as being created rather than abandoned.
const CREATE_GRACE: Duration = Duration::from_secs(5);

/// A region file held under an exclusive `flock`. While it is held no other process removes or
/// takes over this file, so the path keeps naming it. Dropping it (or dying) unlocks.
pub(crate) struct RegionLock {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
}

impl RegionLock {
    /// Lock the region file that `name`'s path names now; `None` when there is none. Errors:
    /// the file cannot be opened, or another process holds its lock for longer than
    /// [`LOCK_WAIT`].
    pub(crate) fn acquire(name: &str) -> Result<Option<RegionLock>, DcError> {
        let path = region::path_of(name);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            let opened = OpenOptions::new().read(true).write(true).open(&path);
            // Read-only is enough to lock (and to unlink, which needs the directory only).
            let opened = match opened {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => File::open(&path),
                other => other,
            };
            let file = match opened {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err(&path)(e)),
            };
            lock_until(&file, &path, deadline)?;
            let held = file.metadata().map_err(io_err(&path))?;
            match std::fs::metadata(&path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Some(RegionLock { file, path }));
                }
                // Removed or replaced while we waited: unlock (drop) and look again.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
            if Instant::now() >= deadline {
                return Err(busy(&path));
            }
        }
    }
}

fn busy(path: &Path) -> DcError {
    io_err(path)(io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "another process has been removing or taking over this region for more than {} s",
            LOCK_WAIT.as_secs()
        ),
    ))
}

/// `flock(LOCK_EX)` on `file`, retrying until `deadline`.
fn lock_until(file: &File, path: &Path, deadline: Instant) -> Result<(), DcError> {
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
            _ => return Err(io_err(path)(e)),
        }
        if Instant::now() >= deadline {
            return Err(busy(path));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What a takeover found and removed: shown as `DC "X": taking over the region left by pid N
/// (dead)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakenOver {
    /// The DC's name.
    pub name: String,
    /// The PID of the dead creator (0 when it died before recording itself).
    pub creator_pid: u32,
}

impl core::fmt::Display for TakenOver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "DC {:?}: taking over the region left by pid {} (dead)",
            self.name, self.creator_pid
        )
    }
}

/// Whether the creator `id` lives. A start time of 0 (unknown when it was recorded) falls back
/// to the PID alone: a reused PID then keeps the region, which errs on the safe side.
pub(crate) fn creator_alive(id: ProcessId) -> bool {
    match id.start {
        // An isolated process resolves no other PID: alive, the safe side.
        0 => ProcessId::of(id.pid).is_some() || crate::owner::isolated(),
        _ => id.is_alive(),
    }
}

/// The process that keeps the region of `name` in use, or `None` when the region is stale.
/// Called with the region locked. Errors: a region this build cannot read (refused, never taken
/// over: its slots cannot be judged).
fn holder(name: &str, lock: &RegionLock) -> Result<Option<String>, DcError> {
    let Some(probe) = Region::probe(&lock.file, name, &lock.path)? else {
        // Shorter than its header: its creator died between creating and sizing it, unless
        // that happened just now.
        return Ok(young(&lock.file).then(|| "a process that is creating it now".into()));
    };
    let creator = probe.creator_id();
    match probe.state() {
        region::STATE_RUNNING => {}
        // A removal under the lock marks the region removed and unlinks it; finding it marked
        // here (under the lock) means that remover died half-way.
        region::STATE_REMOVED => return Ok(None),
        _ if creator.pid == 0 => {
            return Ok(young(&lock.file).then(|| "a process that is creating it now".into()));
        }
        _ if creator_alive(creator) => {
            return Ok(Some(format!("pid {}, creating it now", creator.pid)));
        }
        _ => return Ok(None),
    }
    if creator_alive(creator) {
        return Ok(Some(format!("its creator, pid {}, is alive", creator.pid)));
    }
    let region = Region::open_with(name, false, Duration::ZERO)?;
    for idx in 0..region.geo.nr_slots {
        let Some(slot) = region.slot(idx) else { break };
        let w = slot.owner();
        if w.state() != SlotState::Free && cleanup::owner_alive(slot, w) {
            let bound = slot.name();
            let as_name = if bound.is_empty() {
                String::new()
            } else {
                format!(" as {bound:?}")
            };
            return Ok(Some(format!(
                "pid {} is alive and bound at nr {}{as_name}",
                w.pid(),
                region.geo.nr(idx)
            )));
        }
    }
    Ok(None)
}

/// Whether `file` was changed within [`CREATE_GRACE`].
fn young(file: &File) -> bool {
    file.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_none_or(|age| age < CREATE_GRACE)
}

/// If the region of `name` is stale, remove it (region and pool files) and say whose it was;
/// `Ok(None)` when there is no region file (any more). Errors: [`DcError::InUse`] naming the
/// live process, a region this build cannot read, I/O.
pub(crate) fn remove_if_stale(name: &str) -> Result<Option<TakenOver>, DcError> {
    let Some(lock) = RegionLock::acquire(name)? else {
        return Ok(None);
    };
    if let Some(holder) = holder(name, &lock)? {
        return Err(DcError::InUse {
            name: name.to_string(),
            holder,
        });
    }
    let creator_pid =
        Region::probe(&lock.file, name, &lock.path)?.map_or(0, |p| p.creator_id().pid);
    region::remove_locked(name, &lock, Duration::ZERO)?;
    Ok(Some(TakenOver {
        name: name.to_string(),
        creator_pid,
    }))
}
