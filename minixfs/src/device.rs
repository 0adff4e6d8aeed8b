//! Where the blocks live: the [`BlockDevice`] trait, a memory device and an image-file device.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::BLOCK_SIZE;
use crate::error::DeviceError;

/// Where the file system's blocks live. The FS server implements this over IPC to RDISK.
pub trait BlockDevice {
    /// Number of BLOCK_SIZE blocks on the device.
    fn block_count(&self) -> u64;
    /// Read `buf.len() / BLOCK_SIZE` consecutive blocks starting at block `first`.
    fn read_blocks(&mut self, first: u64, buf: &mut [u8]) -> Result<(), DeviceError>;
    /// Write `buf.len() / BLOCK_SIZE` consecutive blocks starting at block `first`.
    fn write_blocks(&mut self, first: u64, buf: &[u8]) -> Result<(), DeviceError>;
    /// Make earlier writes durable (for a file-backed device: fsync / msync).
    fn flush(&mut self) -> Result<(), DeviceError>;
    /// Blocks `first..first + count` are about to be written behind this device's back (a
    /// server copies a client's data straight into them): drop any copy of them it keeps. The
    /// default keeps none.
    fn forget_copies(&mut self, _first: u64, _count: u64) {}
}

/// Checks that `len` bytes are whole blocks and that the blocks `first..` fit on a device of
/// `blocks` blocks; returns the byte offset of `first`.
pub fn check_range(first: u64, len: usize, blocks: u64) -> Result<u64, DeviceError> {
    if !len.is_multiple_of(BLOCK_SIZE) {
        return Err(DeviceError::Io(format!(
            "buffer of {len} bytes is not a whole number of {BLOCK_SIZE}-byte blocks"
        )));
    }
    let count = (len / BLOCK_SIZE) as u64;
    match first.checked_add(count) {
        Some(end) if end <= blocks => Ok(first * BLOCK_SIZE as u64),
        _ => Err(DeviceError::OutOfRange {
            first,
            count,
            blocks,
        }),
    }
}

/// A device in memory (a `Vec<u8>` of whole blocks).
#[derive(Debug, Clone)]
pub struct MemDevice {
    bytes: Vec<u8>,
}

impl MemDevice {
    /// A zero-filled device of `blocks` blocks.
    pub fn new(blocks: u64) -> Self {
        MemDevice {
            bytes: vec![0; (blocks as usize).saturating_mul(BLOCK_SIZE)],
        }
    }

    /// A device over an image in memory; a partial last block is dropped.
    pub fn from_bytes(mut bytes: Vec<u8>) -> Self {
        bytes.truncate(bytes.len() / BLOCK_SIZE * BLOCK_SIZE);
        MemDevice { bytes }
    }

    /// The image, e.g. to write it to a file or inspect it.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The image, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl BlockDevice for MemDevice {
    fn block_count(&self) -> u64 {
        (self.bytes.len() / BLOCK_SIZE) as u64
    }

    fn read_blocks(&mut self, first: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let at = check_range(first, buf.len(), self.block_count())? as usize;
        buf.copy_from_slice(&self.bytes[at..at + buf.len()]);
        Ok(())
    }

    fn write_blocks(&mut self, first: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let at = check_range(first, buf.len(), self.block_count())? as usize;
        self.bytes[at..at + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// A device over an image file (positioned reads and writes; `flush` is `fsync`).
/// Its size is the file's length at open, rounded down to whole blocks.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    blocks: u64,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> DeviceError {
    DeviceError::Io(format!("{what} {}: {e}", path.display()))
}

impl FileDevice {
    /// Opens an existing image file for reading and writing.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DeviceError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io_err("cannot open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| io_err("cannot stat", path, e))?
            .len();
        Ok(FileDevice {
            file,
            blocks: len / BLOCK_SIZE as u64,
        })
    }

    /// Creates (or truncates) an image file of `blocks` zero blocks.
    pub fn create(path: impl AsRef<Path>, blocks: u64) -> Result<Self, DeviceError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| io_err("cannot create", path, e))?;
        let len = blocks
            .checked_mul(BLOCK_SIZE as u64)
            .ok_or_else(|| DeviceError::Io(format!("{blocks} blocks is too large an image")))?;
        file.set_len(len)
            .map_err(|e| io_err("cannot size", path, e))?;
        Ok(FileDevice { file, blocks })
    }
}

impl BlockDevice for FileDevice {
    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn read_blocks(&mut self, first: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let at = check_range(first, buf.len(), self.blocks)?;
        self.file
            .read_exact_at(buf, at)
            .map_err(|e| DeviceError::Io(format!("read at block {first}: {e}")))
    }

    fn write_blocks(&mut self, first: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let at = check_range(first, buf.len(), self.blocks)?;
        self.file
            .write_all_at(buf, at)
            .map_err(|e| DeviceError::Io(format!("write at block {first}: {e}")))
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        self.file
            .sync_data()
            .map_err(|e| DeviceError::Io(format!("fsync: {e}")))
    }
}

impl<D: BlockDevice + ?Sized> BlockDevice for &mut D {
    fn block_count(&self) -> u64 {
        (**self).block_count()
    }
    fn read_blocks(&mut self, first: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        (**self).read_blocks(first, buf)
    }
    fn write_blocks(&mut self, first: u64, buf: &[u8]) -> Result<(), DeviceError> {
        (**self).write_blocks(first, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        (**self).flush()
    }
}
