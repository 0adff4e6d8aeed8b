//! `dvs` with its standard output closed (`dvs ps DC | head -1` after head has gone): no panic,
//! no exit 101. SIGPIPE stays ignored in `dvs`, so a write fails with EPIPE and that ends the
//! printing only: the command finishes its work (and, for `demo`, removes its DC and stops its
//! server process) and exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A private region directory, removed on drop.
struct ShmDir(PathBuf);

impl ShmDir {
    fn new() -> ShmDir {
        let path = std::env::temp_dir().join(format!("dvs-closed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        ShmDir(path)
    }

    /// Run `dvs ARGS` with a closed standard output.
    fn closed(&self, args: &[&str]) -> Output {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_dvs"))
            .args(args)
            .env("M3IPC_SHM_DIR", &self.0)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "dvs {args:?}:\n{stderr}");
        assert!(
            out.status.success(),
            "dvs {args:?}: {:?}\n{stderr}",
            out.status
        );
        out
    }

    fn files(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_command_survives_a_closed_output() {
    let shm = ShmDir::new();
    shm.closed(&["--help"]);
    shm.closed(&["dc", "create", "closed", "--pool-size", "0"]);
    shm.closed(&["dc", "ls"]);
    // No bound slot: the one-line answer.
    shm.closed(&["ps", "closed"]);
    shm.closed(&["dc", "rm", "closed"]);
    assert!(shm.files().is_empty(), "{:?}", shm.files());
    // The demo's server process and DC go away although nothing could be printed.
    shm.closed(&["demo", "--count", "1000"]);
    assert!(shm.files().is_empty(), "{:?}", shm.files());
}
