#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `include/m3ipc.h` is what cbindgen makes of the crate now: a fresh header is generated into a
//! temporary file and compared with the committed one.
//!
//! Without cbindgen installed the check is skipped with a message, except under CI (`CI=true`),
//! where a missing cbindgen fails it (`.ci/run` installs it).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn committed_header_is_current() {
    let ffi = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if Command::new("cbindgen").arg("--version").output().is_err() {
        assert!(
            !in_ci,
            "cbindgen is not installed, and CI=true: `cargo install cbindgen --locked`"
        );
        eprintln!(
            "SKIPPED: cbindgen is not installed, so ffi/include/m3ipc.h was not checked \
             (`cargo install cbindgen --locked`)"
        );
        return;
    }
    let fresh =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("m3ipc-{}.h", std::process::id()));
    let o = Command::new("cbindgen")
        .args([
            "--config",
            "cbindgen.toml",
            "--crate",
            "m3ipc-ffi",
            "--quiet",
            "--output",
        ])
        .arg(&fresh)
        .current_dir(&ffi)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cbindgen failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let fresh_text = std::fs::read_to_string(&fresh).unwrap();
    let _ = std::fs::remove_file(&fresh);
    let committed = std::fs::read_to_string(ffi.join("include/m3ipc.h")).unwrap();
    if fresh_text != committed {
        let line = fresh_text
            .lines()
            .zip(committed.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || fresh_text.lines().count().min(committed.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "ffi/include/m3ipc.h is stale (first difference at line {line}); regenerate it in ffi/ \
             with `cbindgen --config cbindgen.toml --crate m3ipc-ffi --output include/m3ipc.h`"
        );
    }
}
