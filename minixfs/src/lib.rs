//! A MINIX v3 file system (skeleton: being filled in).

pub mod device;
pub mod error;
pub mod fs;
mod bitmap;
mod cache;
mod dir;
mod format;
mod inode;
mod superblock;
mod zones;

pub use device::{BlockDevice, FileDevice, MemDevice};
pub use error::{DeviceError, FsError};
pub use fs::{DirEntry, FileSystem, FsInfo, Stat};
pub use format::FormatOptions;

/// Block size of the file system: 1024 bytes, as `mkfs.minix -3` from util-linux makes it.
pub const BLOCK_SIZE: usize = 1024;
/// An inode number. 1 is the root directory; 0 means "no inode".
pub type Ino = u32;
/// The root directory's inode number.
pub const ROOT: Ino = 1;
