//! What `dvs`'s help promises: `demo --count`'s real range, and `bench`'s exit status when a
//! target is missed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dvs"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn demo_count_shows_its_range() {
    let h = help(&["demo", "--help"]);
    assert!(h.contains("1..=10000000"), "{h}");
    // The range the command line really accepts.
    let out = Command::new(env!("CARGO_BIN_EXE_dvs"))
        .args(["demo", "--count", "10000001"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn bench_says_a_missed_target_exits_0() {
    let h = help(&["bench", "--help"]);
    assert!(h.contains("Exit status: 0"), "{h}");
    assert!(h.contains("NO"), "{h}");
}
