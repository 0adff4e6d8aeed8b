//! The process's private region directory.
//!
//! Every target makes its regions in one directory of its own, made on first use under
//! `$M3IPC_SHM_DIR` (or `/dev/shm`) and removed when the process exits, so a fuzzing run never
//! meets another run's regions nor leaves its own behind, however many inputs it runs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// The private region directory, made (and `M3IPC_SHM_DIR` pointed at it) on the first call.
///
/// Call it before the process starts threads of its own: it sets an environment variable.
pub fn private_dir() -> &'static Path {
    DIR.get_or_init(|| {
        let parent = std::env::var_os("M3IPC_SHM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/dev/shm"));
        let dir = make_dir(&parent);
        // SAFETY: called once, under the OnceLock, before any target starts a thread (every
        // target calls this first); libFuzzer runs inputs on one thread, and the replay tests
        // call it before their first region is made.
        unsafe { std::env::set_var("M3IPC_SHM_DIR", &dir) };
        // SAFETY: `remove_at_exit` is an `extern "C" fn()` that only reads DIR, which is set
        // (the OnceLock initialises it with this closure's result before anything can exit).
        unsafe { libc::atexit(remove_at_exit) };
        dir
    })
}

/// A fresh directory `m3fuzz-PID-N` under `parent`.
fn make_dir(parent: &Path) -> PathBuf {
    let pid = std::process::id();
    for n in 0u32.. {
        let dir = parent.join(format!("m3fuzz-{pid}-{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            // The fuzzer cannot run without a region directory: say why, loudly.
            Err(e) => panic!(
                "cannot make a region directory in {}: {e}",
                parent.display()
            ),
        }
    }
    unreachable!("u32 ran out of directory numbers")
}

extern "C" fn remove_at_exit() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Remove a DC `name` made by a target, ignoring "not there".
pub fn remove_dc(name: &str) {
    let _ = m3ipc::Dc::remove(name);
    // A region file that never became a DC (region_open writes raw files) and its pool.
    let dir = private_dir();
    let _ = std::fs::remove_file(dir.join(format!("{}{name}", m3ipc::FILE_PREFIX)));
    let _ = std::fs::remove_file(dir.join(format!("{}{name}", m3ipc::pool::POOL_FILE_PREFIX)));
}
