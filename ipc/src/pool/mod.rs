//! The DC's shared buffer pool (docs/ARCHITECTURE.md section 7): zero-copy data between processes.
//!
//! A second mapped file next to the region (`file.rs`) holds buffers of 4 KiB .. 1 MiB, handed
//! out by a lock-free allocator (`alloc.rs`, model-checked by `loom_tests.rs`). A buffer has one
//! owner endpoint at a time: it writes the payload in place, then gives the buffer to another
//! endpoint (`buffers.rs`) and passes its [`Handle`] in a message; the new owner reads the bytes
//! where they lie ([`BufView`], `view.rs`) and releases the buffer. An owner may also grant
//! another endpoint READ and/or WRITE on a byte range (`grant.rs`), as MINIX safecopies do; a
//! grant is what `vcopy` (`call/vcopy.rs`) copies from and to.
//!
//! Error numbers (every call documents which it returns):
//! - `EDVSNODEV`: the DC has no pool (created with a pool size of 0);
//! - `EDVSBADF`: a handle that names no allocated buffer (stale, released, forged);
//! - `EDVSBADOWNER`: a handle of a buffer the caller does not own;
//! - `EDVSPERM`: a grant id that names no live grant of the endpoint named as its grantor
//!   (revoked, stale, forged, or its buffer changed owner or was released);
//! - `EDVSACCES`: a grant issued to another endpoint, or without the right needed;
//! - `EDVSRANGE`: a length of 0 or above 1 MiB, or a range outside the buffer or the grant;
//! - `EDVSNOMEM`: no room in the pool for a buffer of that size; `EDVSNOSPC`: the grant table is
//!   full; `EDVSAGAIN`: the pool's words contradict each other (scribbled on), try again.
//!
//! Limits: one buffer is at most 1 MiB ([`MAX_BUFFER`]); a 16 GiB pool at most; [`GRANTS`]
//! grants per DC. A process killed inside an allocation or a release (a window of a few
//! instructions) may leak that one block until the DC is recreated. Everything read from the
//! pool file is untrusted: a process that scribbles on it can corrupt buffer contents and make
//! calls fail, but cannot make the library touch memory outside the pool or hang.

pub(crate) mod alloc;
#[cfg(not(loom))]
mod buffers;
#[cfg(not(loom))]
pub(crate) mod file;
#[cfg(not(loom))]
mod grant;
#[cfg(not(loom))]
mod handle;
#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(not(loom))]
mod view;

#[cfg(not(loom))]
pub(crate) use buffers::Pool;
#[cfg(not(loom))]
pub use buffers::{Holdings, PoolInfo};
#[cfg(not(loom))]
pub use file::{GRANTS, MAX_POOL_BYTES, POOL_FILE_PREFIX};
#[cfg(not(loom))]
pub use handle::{Access, CopyRef, GrantId, Handle};
#[cfg(not(loom))]
pub use view::{BufView, checksum_words};

/// Largest buffer, and largest `vcopy`: 1 MiB (the original's MAXCOPYLEN).
pub const MAX_BUFFER: usize = alloc::CHUNK;
/// Smallest buffer: 4 KiB (smaller requests get one).
pub const MIN_BUFFER: usize = alloc::PAGE;
/// Pool sizes are multiples of this: 1 MiB.
pub const POOL_GRANULE: u64 = alloc::CHUNK as u64;
/// How long `vcopy` waits for a party that is entering a receive to show it blocks: a client
/// in `sendrec` publishes `FLAG_WAITING` after at most one adaptive spin budget (50 µs), or
/// later if it is preempted first.
pub const VCOPY_SETTLE: std::time::Duration = std::time::Duration::from_millis(2);
/// Pool size of a DC unless `DcConfig::pool_bytes` says otherwise: 64 MiB.
pub const DEFAULT_POOL_BYTES: u64 = 64 << 20;
