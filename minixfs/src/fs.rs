//! The file system: mount, lookup and every operation (skeleton).

use crate::Ino;
use crate::device::BlockDevice;
use crate::error::FsError;

/// What `stat` reports about an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Inode number.
    pub ino: Ino,
    /// File type and permission bits (S_IFREG 0o100000, S_IFDIR 0o040000).
    pub mode: u16,
    /// Number of directory entries naming the inode.
    pub nlinks: u16,
    /// Owner.
    pub uid: u16,
    /// Group.
    pub gid: u16,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, seconds since the epoch.
    pub mtime: u32,
    /// Last access, seconds since the epoch.
    pub atime: u32,
    /// Last status change, seconds since the epoch.
    pub ctime: u32,
}

impl Stat {
    /// Whether the inode is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170000 == 0o040000
    }
    /// Whether the inode is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }
}

/// One live directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The inode the entry names.
    pub ino: Ino,
    /// The name (at most 60 bytes).
    pub name: String,
}

/// Options of [`FileSystem::format`].
#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    /// Number of inodes; by default one per 3 blocks, as util-linux does.
    pub inodes: Option<u32>,
}

/// Size and usage of a mounted file system.
#[derive(Debug, Clone, Copy)]
pub struct FsInfo {
    /// Number of blocks (zones) of the file system.
    pub blocks: u64,
    /// Free data zones.
    pub free_blocks: u64,
    /// Number of inodes.
    pub inodes: u32,
    /// Free inodes.
    pub free_inodes: u32,
    /// Largest file size in bytes.
    pub max_file_size: u64,
    /// Longest name in bytes.
    pub name_len: usize,
}

/// A mounted MINIX v3 file system; owns the device and a block cache.
pub struct FileSystem<D: BlockDevice> {
    dev: D,
}

const TODO: FsError = FsError::InvalidArgument("not implemented yet");

#[allow(unused_variables, missing_docs)]
impl<D: BlockDevice> FileSystem<D> {
    pub fn format(dev: D, opts: &FormatOptions) -> Result<Self, FsError> {
        Err(TODO)
    }
    pub fn mount(dev: D) -> Result<Self, FsError> {
        Err(TODO)
    }
    pub fn with_cache_blocks(self, n: usize) -> Self {
        self
    }
    pub fn info(&self) -> FsInfo {
        FsInfo {
            blocks: 0,
            free_blocks: 0,
            inodes: 0,
            free_inodes: 0,
            max_file_size: 0,
            name_len: 60,
        }
    }
    pub fn lookup(&mut self, path: &str) -> Result<Ino, FsError> {
        Err(TODO)
    }
    pub fn lookup_in(&mut self, dir: Ino, name: &str) -> Result<Ino, FsError> {
        Err(TODO)
    }
    pub fn create(&mut self, dir: Ino, name: &str, mode: u16) -> Result<Ino, FsError> {
        Err(TODO)
    }
    pub fn mkdir(&mut self, dir: Ino, name: &str, mode: u16) -> Result<Ino, FsError> {
        Err(TODO)
    }
    pub fn unlink(&mut self, dir: Ino, name: &str) -> Result<(), FsError> {
        Err(TODO)
    }
    pub fn rmdir(&mut self, dir: Ino, name: &str) -> Result<(), FsError> {
        Err(TODO)
    }
    pub fn rename(
        &mut self,
        from_dir: Ino,
        from: &str,
        to_dir: Ino,
        to: &str,
    ) -> Result<(), FsError> {
        Err(TODO)
    }
    pub fn read(&mut self, ino: Ino, off: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        Err(TODO)
    }
    pub fn write(&mut self, ino: Ino, off: u64, data: &[u8]) -> Result<usize, FsError> {
        Err(TODO)
    }
    pub fn truncate(&mut self, ino: Ino, len: u64) -> Result<(), FsError> {
        Err(TODO)
    }
    pub fn readdir(
        &mut self,
        dir: Ino,
        start: usize,
        max: usize,
    ) -> Result<Vec<DirEntry>, FsError> {
        Err(TODO)
    }
    pub fn stat(&mut self, ino: Ino) -> Result<Stat, FsError> {
        Err(TODO)
    }
    pub fn sync(&mut self) -> Result<(), FsError> {
        Err(TODO)
    }
    pub fn into_device(self) -> Result<D, FsError> {
        Ok(self.dev)
    }
}
