//! `minixfs`: a MINIX v3 file system, on-disk compatible with util-linux's `mkfs.minix -3`
//! and `fsck.minix`, over any [`BlockDevice`] (memory, an image file, or a block server).
//!
//! # Format
//!
//! Blocks of 1024 bytes; block 0 is the boot block, block 1 the superblock (magic `0x4d5a`,
//! `s_max_size` 0x7fffffff, zone size = block size), then the inode bitmap, the zone bitmap,
//! the inode table (64-byte inodes: mode, links, uid, gid, size, atime, mtime, ctime, 7
//! direct zones, single, double and triple indirect), then the data zones. Directories hold
//! 64-byte entries (u32 inode, 60-byte name); "." and ".." come first. Bit 0 of each bitmap
//! is reserved. [`FileSystem::format`] picks the same layout as `mkfs.minix -3` for the same
//! device size (tested byte for byte).
//!
//! # Limits
//!
//! - Names: 1 to 60 bytes, no '/' or NUL (".." and "." are looked up, never created).
//! - Files: up to 2 GiB - 1 (the superblock's `s_max_size`); sizes are 32-bit on disk.
//! - Devices: up to 2^32 - 1 blocks; metadata (bitmaps and inode table) must end below
//!   block 65536, which bounds the inode count near one million.
//! - Regular files and directories only: no symlinks, devices or hard-link creation
//!   (existing ones in an image are looked up and stat'ed, not read or written).
//! - One user at a time (`&mut self`); the servers serialize requests.
//!
//! # Caching and durability
//!
//! Metadata and partial blocks go through a bounded write-back block cache (clock
//! replacement, 4096 blocks by default, see [`FileSystem::with_cache_blocks`]); bitmaps are
//! held in memory. Whole-block runs of large reads and writes move between the caller's
//! buffer and the device in one call per run of contiguous zones, bypassing the cache.
//! Changes reach the device at [`FileSystem::sync`] or [`FileSystem::into_device`];
//! dropping a `FileSystem` without either loses the cached ones (whole-block data already
//! written stays, so the image may then need `fsck.minix`).
//!
//! Directories in use are indexed in memory (name -> slot and inode, and their free slots),
//! so a lookup or a create costs no scan of the directory however large it is. An index is
//! built by one scan at a directory's first use and kept coherent by every change the file
//! system makes; the indexes live within a byte budget (32 MiB by default, see
//! [`FileSystem::with_dir_index_bytes`]), least recently used dropped first.
//!
//! # Failure modes
//!
//! Everything read from the image is untrusted: a bad superblock fails [`FileSystem::mount`]
//! with [`FsError::Corrupt`] naming the field; an inode with a zone outside the data zones,
//! a size past the maximum, a directory entry naming an inode past the count or a free one,
//! a directory with a hole, a zone freed twice (a loop or cross-link in the zone tree), or a
//! ".." chain that never reaches the root gives `Corrupt` from the operation that meets it.
//! No input makes the library panic or loop without bound. Device failures come back as
//! [`FsError::Device`]. Each error maps to one POSIX errno ([`FsError::errno`]).
//!
//! ```
//! use minixfs::{FileSystem, FormatOptions, MemDevice, ROOT};
//!
//! let mut fs = FileSystem::format(MemDevice::new(1024), &FormatOptions::default())?;
//! let f = fs.create(ROOT, "hello.txt", 0o644)?;
//! fs.write(f, 0, b"hello")?;
//! let mut buf = [0u8; 16];
//! let same = fs.lookup("/hello.txt")?;
//! let n = fs.read(same, 0, &mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! let image = fs.into_device()?.into_bytes(); // an image fsck.minix accepts
//! # assert_eq!(image.len(), 1024 * 1024);
//! # Ok::<(), minixfs::FsError>(())
//! ```

pub mod device;
pub mod error;
pub mod extent;
pub mod fs;

mod bitmap;
mod cache;
mod dir;
mod dir_index;
mod format;
mod inode;
mod superblock;
mod zones;

pub use device::{BlockDevice, FileDevice, MemDevice};
pub use error::{DeviceError, FsError};
pub use extent::Extent;
pub use format::FormatOptions;
pub use fs::{DirEntry, FileSystem, FsInfo, Stat};

/// Block size of the file system: 1024 bytes, as `mkfs.minix -3` from util-linux makes it.
pub const BLOCK_SIZE: usize = 1024;
/// An inode number. 1 is the root directory; 0 means "no inode".
pub type Ino = u32;
/// The root directory's inode number.
pub const ROOT: Ino = 1;
