//! The exclusive lock RDISK holds on its image file, so that two RDISKs (in one process or two)
//! never serve one image: each would cache and write blocks the other does not see.
//!
//! The lock is an open file description lock (`F_OFD_SETLK`): it belongs to RDISK's open file,
//! not to the process, so a second RDISK in the same process (another thread or coroutine) is
//! refused too, and closing the file (or dying) releases it. It is advisory: tools that do not
//! lock (`fsck.minix`) are not kept out.
//!
//! Who holds it: `F_OFD_GETLK` reports `l_pid = -1` for OFD locks, and `/proc/locks` shows -1 as
//! well. The kernel does list, in `/proc/PID/fdinfo/FD`, the locks held through that descriptor
//! (`lock: ... OFDLCK ... WRITE ...`): so the holder is found by looking, in every process we may
//! inspect, for a descriptor of the same file (device and inode) whose fdinfo shows the lock.
//! This reads the kernel's own state, so it is never stale (unlike a pid file beside the image,
//! which a killed RDISK would leave behind, and which needs a writable directory). Limits: other
//! users' processes and other PID namespaces cannot be inspected; the message then says the
//! holder is unknown.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Lock all of `file` (the image at `path`) for writing, or say who holds it.
pub(crate) fn lock_exclusive(file: &File, path: &Path) -> Result<(), String> {
    // SAFETY: `flock` is a plain C struct of integers, valid when zeroed.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // l_start = 0 and l_len = 0: the whole file, however it grows. l_pid must be 0 for OFD.
    // SAFETY: fcntl on a descriptor `file` owns, with a pointer to a live, initialized flock.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => {}
        _ => return Err(format!("cannot lock disk image {}: {e}", path.display())),
    }
    let holders = file.metadata().map(|m| holders(m.dev(), m.ino(), file));
    Err(match holders.as_deref() {
        Ok([]) | Err(_) => format!(
            "disk image {} is in use by another RDISK (it holds the image's lock; its process \
             could not be found: another user's, or in another PID namespace)",
            path.display()
        ),
        Ok(pids) => {
            let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
            format!(
                "disk image {} is in use by another RDISK: pid {} holds the image's lock",
                path.display(),
                pids.join(", pid ")
            )
        }
    })
}

/// The PIDs with a descriptor of the file (`dev`, `ino`) through which a write OFD lock is held,
/// ascending; `ours` (which failed to lock) is skipped.
fn holders(dev: u64, ino: u64, ours: &File) -> Vec<u32> {
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                return false;
            };
            fds.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&fd| !(pid == me && fd == ours.as_raw_fd()))
                .any(|fd| {
                    // stat follows the link to the open file itself.
                    std::fs::metadata(format!("/proc/{pid}/fd/{fd}"))
                        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
                        && std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
                            .is_ok_and(|info| shows_write_lock(&info, ino))
                })
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether an fdinfo text lists a write OFD lock on inode `ino`, as in
/// `lock:\t1: OFDLCK ADVISORY  WRITE -1 fe:00:10010735 0 EOF`.
fn shows_write_lock(info: &str, ino: u64) -> bool {
    info.lines().filter(|l| l.starts_with("lock:")).any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.contains(&"OFDLCK")
            && words.contains(&"WRITE")
            && words.iter().any(|w| {
                let mut parts = w.split(':');
                parts.next().is_some()
                    && parts.next().is_some()
                    && parts.next().and_then(|i| i.parse::<u64>().ok()) == Some(ino)
                    && parts.next().is_none()
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    #[test]
    fn parses_fdinfo_lock_lines() {
        let info = "pos:\t0\nflags:\t02\nlock:\t1: OFDLCK ADVISORY  WRITE -1 fe:00:1234 0 EOF\n";
        assert!(shows_write_lock(info, 1234));
        assert!(!shows_write_lock(info, 123));
        assert!(!shows_write_lock(
            "lock:\t1: OFDLCK ADVISORY  READ -1 fe:00:1234 0 EOF\n",
            1234
        ));
        assert!(!shows_write_lock(
            "lock:\t1: POSIX  ADVISORY  WRITE 77 fe:00:1234 0 EOF\n",
            1234
        ));
        assert!(!shows_write_lock("pos:\t0\n", 1234));
    }

    #[test]
    fn second_open_is_refused_naming_this_process_until_the_first_closes() {
        let dir = std::env::temp_dir().join(format!("image-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk.img");
        std::fs::write(&path, [0u8; 4096]).unwrap();
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap()
        };
        let first = open();
        lock_exclusive(&first, &path).unwrap();
        let second = open();
        let err = lock_exclusive(&second, &path).unwrap_err();
        assert!(
            err.contains(&format!("pid {} holds", std::process::id())),
            "{err}"
        );
        drop(first);
        lock_exclusive(&second, &path).unwrap();
        drop(second);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
