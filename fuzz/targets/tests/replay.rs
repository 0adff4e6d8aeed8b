//! Replay every seed corpus file and every regression input (`fuzz/corpus/TARGET/`,
//! `fuzz/regressions/TARGET/`) through the target functions the fuzzers run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files of `fuzz/corpus/NAME` and `fuzz/regressions/NAME`, sorted.
fn inputs(name: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(fuzz_dir().join(dir).join(name)) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files
}

/// One target at a time: they share the process's region directory.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn replay(name: &str) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_, run) = m3_fuzz_targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a target of that name");
    let files = inputs(name);
    assert!(
        !files.is_empty(),
        "fuzz/corpus/{name}/ has no seed: every target needs at least one"
    );
    for f in &files {
        let data = std::fs::read(f).unwrap();
        eprintln!("{name}: {}", f.display());
        run(&data);
    }
    eprintln!("{name}: {} inputs replayed", files.len());
}

macro_rules! replay_tests {
    ($($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*
    };
}

replay_tests!(
    region_open,
    region_scribble,
    message_views,
    minixfs_image,
    grants,
    ffi_args,
    wire_decode,
    http_request
);

#[test]
fn server_requests() {
    replay("server_requests");
    m3_fuzz_targets::server_requests::stop();
}

#[test]
fn every_target_has_a_test_and_a_wrapper() {
    for (name, _) in m3_fuzz_targets::TARGETS {
        let wrapper = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(wrapper.is_file(), "{} is missing", wrapper.display());
    }
}
