//! Helpers for muk's multi-process tests: m3ipc's (private DCs, child processes that re-execute
//! the test binary in a role, reading their lines), and hosts that must stop cleanly.
//!
//! A test file using this module must contain
//! `#[test] fn child_main() { support::child_entry(run_role) }` where
//! `fn run_role(role: &str, dc: &str, args: &[String])` performs the child's part; a panic in a
//! role is the child's failure report (its stderr is the parent's).
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub mod disk;
#[path = "../../../ipc/tests/support/mod.rs"]
mod fabric;

pub use fabric::{Rng, TestDc, Worker, child_entry, eventually, say, spawn};
use m3ipc::Dc;
use muk::host::DEFAULT_STACK;
use muk::{Host, Hosted, Runner, ServerKind};

/// Host `kinds` at their well-known slots under `runner`.
pub fn start(dc: &Dc, kinds: &[ServerKind], runner: Runner) -> Host {
    let servers = kinds
        .iter()
        .map(|&k| Hosted {
            name: k.name().to_string(),
            nr: k.default_nr(),
            stack_size: DEFAULT_STACK,
            server: k.build(),
        })
        .collect();
    Host::start(dc, servers, runner).unwrap_or_else(|e| panic!("start {runner:?}: {e}"))
}

/// Stop `host` and check that each of its `n` servers ended well.
pub fn stop(host: Host, n: usize) {
    let exits = host.stop();
    assert_eq!(exits.len(), n, "{exits:?}");
    for e in &exits {
        assert!(
            e.result.is_ok(),
            "server {} ended with {:?}",
            e.name,
            e.result
        );
    }
}
