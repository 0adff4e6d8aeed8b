//! # m3-fuzz-targets: the bodies of the fuzz targets
//!
//! One public function per cargo-fuzz target of `fuzz/` (`fuzz/fuzz_targets/NAME.rs` is a
//! two-line wrapper around `NAME::run`), so that the fuzzers and `cargo test` run the same code:
//! the test `tests/replay.rs` feeds every file of `fuzz/corpus/NAME/` and `fuzz/regressions/NAME/`
//! through it.
//!
//! Each function takes the fuzzer's bytes, must never panic on them (a panic is a finding), is
//! deterministic as far as the code under test allows, and leaves nothing behind: regions live
//! in a private directory ([`shm::private_dir`]) removed at exit, and each input's DC is removed
//! before the function returns.
//!
//! Targets: [`region_open`], [`region_scribble`], [`message_views`], [`server_requests`],
//! [`minixfs_image`], [`grants`], [`ffi_args`], [`wire_decode`], [`http_request`].

pub mod ffi_args;
pub mod grants;
pub mod http_request;
pub mod message_views;
pub mod minixfs_image;
pub mod region_open;
pub mod region_scribble;
pub mod seeds;
pub mod server_requests;
pub mod shm;
pub mod wire_decode;

/// Whether `M3FUZZ_TRACE` is set: the scripted targets then print each step and its result
/// to stderr (to read what a crashing input does).
pub fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("M3FUZZ_TRACE").is_some())
}

/// A target's body: one input, returns normally or panics (a finding).
pub type Target = fn(&[u8]);

/// Every target by name, for the replay test and tools.
pub const TARGETS: [(&str, Target); 9] = [
    ("region_open", region_open::run),
    ("region_scribble", region_scribble::run),
    ("message_views", message_views::run),
    ("server_requests", server_requests::run),
    ("minixfs_image", minixfs_image::run),
    ("grants", grants::run),
    ("ffi_args", ffi_args::run),
    ("wire_decode", wire_decode::run),
    ("http_request", http_request::run),
];
