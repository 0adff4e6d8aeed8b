//! # libm3ipc: the M3-IPC fabric for C programs
//!
//! This crate builds `libm3ipc.so` and `libm3ipc.a`, whose interface is `include/m3ipc.h`
//! (generated from this crate by cbindgen, see `cbindgen.toml`). `include/dvk_compat.h`, written
//! by hand on top of it, gives programs written for the original DVK user library its names
//! (`dvk_send`, `dvk_receive_T`, `dvk_bind`, ...). docs/ARCHITECTURE.md section 8.
//!
//! Conventions of every `m3_` function:
//! - it returns an `int32_t`: 0 or a positive result (a handle), or a negative EDVS error number
//!   (the original's numbers, `M3_EDVS*`); endpoints come back through out-parameters, since a
//!   task's endpoint is negative too;
//! - it checks its pointers before it touches them: a null or misaligned pointer is
//!   `EDVSFAULT`; a length whose range wraps around the address space is `EDVSFAULT`; a name
//!   without a NUL within its limit is `EDVSNAMESIZE`, one that is not UTF-8 `EDVSINVAL` (a
//!   non-null, aligned pointer to memory the caller does not own is the caller's undefined
//!   behaviour, as in any C library);
//! - it never lets a panic cross the ABI: one is caught and returned as `EDVSGENERIC`.
//!
//! How a C caller holds things (decided here, see `handles.rs`):
//! - a DC is an `int32_t` handle from `m3_dc_open`/`m3_dc_create`/`m3_dc_open_id`, and a bound
//!   endpoint is an `int32_t` handle from `m3_bind`. A handle names one table entry and its
//!   generation, so a closed (stale) handle is refused with `EDVSBADF`, never reused by accident;
//! - the handle [`M3_CURRENT`] (0) names the caller's *current binding*: the calling thread's
//!   (made with `m3_bind_current(.., M3_BIND_THREAD, ..)`, the original's `dvk_tbind`), else the
//!   process's (`M3_BIND_PROCESS`, `dvk_bind`). That is how `dvk_compat.h` maps the original's
//!   calls, which take no endpoint argument after `dvk_bind`;
//! - an endpoint handle may be used from any thread, one call at a time: a call made while
//!   another thread is inside a call on the same endpoint returns `EDVSBUSY` at once (an
//!   endpoint receives in one place at a time);
//! - after `fork`, the child holds no binding of its parent: calls on inherited endpoint handles
//!   (the current binding included) return `EDVSNOTBIND`, and closing them leaves the parent's
//!   slots alone. Inherited DC handles stay usable.

mod boundary;
mod dc_api;
mod errors;
mod foreign;
mod handles;
mod ipc_api;
mod pool_api;
mod types;

pub use dc_api::*;
pub use errors::*;
pub use ipc_api::*;
pub use pool_api::*;
pub use types::*;

/// The ABI version `m3_abi_version` returns: bumped whenever a function's signature, a struct's
/// layout or a constant's meaning changes.
pub const M3_ABI_VERSION: u32 = 1;

/// The handle that names the caller's current binding (as an endpoint handle argument), or the
/// DC of that binding (as a DC handle argument).
pub const M3_CURRENT: i32 = 0;
/// `m3_bind_current` scope: the binding serves the whole process (`dvk_bind`).
pub const M3_BIND_PROCESS: i32 = 0;
/// `m3_bind_current` scope: the binding serves the calling thread only (`dvk_tbind`).
pub const M3_BIND_THREAD: i32 = 1;

/// Receive from any source.
pub const M3_ANY: i32 = 0x7ace;
/// No endpoint.
pub const M3_NONE: i32 = 0x6ace;
/// The caller itself.
pub const M3_SELF: i32 = 0x8ace;
/// The kernel / hardware pseudo-endpoint.
pub const M3_HARDWARE: i32 = -1;
/// SYSTASK of node 0 (`SYSTASK(n)` is `M3_SYSTEM - n`).
pub const M3_SYSTEM: i32 = -2;

/// Timeout: wait as long as it takes.
pub const M3_TIMEOUT_FOREVER: i64 = -1;
/// Timeout: never wait; a call that would block returns `EDVSAGAIN`.
pub const M3_TIMEOUT_NOWAIT: i64 = 0;

/// `m_type` bit of a notification; a notification from slot `nr` has type
/// `M3_NOTIFY_MESSAGE | (nr & 0xfff)`.
pub const M3_NOTIFY_MESSAGE: i32 = 0x1000;
/// Size of a `message` in bytes.
pub const M3_MESSAGE_SIZE: usize = 64;
/// Longest DC or endpoint name, in bytes (without the NUL).
pub const M3_NAME_MAX: usize = 15;
/// Words of the `ipc_to` bitmap of an `m3_priv` (one bit per slot index).
pub const M3_IPC_TO_WORDS: usize = 16;

/// Wait policy: spin briefly while the peer runs on another CPU, then sleep (the default).
pub const M3_WAIT_ADAPTIVE: i32 = 0;
/// Wait policy: sleep on the futex doorbell at once.
pub const M3_WAIT_BLOCK: i32 = 1;
/// Wait policy: spin until done (for benchmarks on idle cores).
pub const M3_WAIT_SPIN: i32 = 2;

/// Grant right: read the range (be the source of a `vcopy`).
pub const M3_GRANT_READ: u32 = 1;
/// Grant right: write the range (be the destination of a `vcopy`).
pub const M3_GRANT_WRITE: u32 = 2;

const _: () = {
    assert!(M3_ANY == ipc::ANY && M3_NONE == ipc::NONE && M3_SELF == ipc::SELF);
    assert!(M3_HARDWARE == ipc::HARDWARE && M3_SYSTEM == ipc::SYSTEM);
    assert!(M3_TIMEOUT_FOREVER == ipc::Timeout::FOREVER_MS);
    assert!(M3_TIMEOUT_NOWAIT == ipc::Timeout::NOWAIT_MS);
    assert!(M3_NOTIFY_MESSAGE == ipc::message::NOTIFY_MESSAGE);
    assert!(M3_MESSAGE_SIZE == ipc::message::MESSAGE_SIZE);
    assert!(M3_NAME_MAX == ipc::MAX_NAME);
    assert!(M3_IPC_TO_WORDS == ipc::MAX_SLOTS / 64);
    assert!(M3_GRANT_READ == ipc::Access::READ.0 as u32);
    assert!(M3_GRANT_WRITE == ipc::Access::WRITE.0 as u32);
};
