//! Where a file's bytes lie on the device, for servers that move data between the device and
//! a client without passing it through the file system's buffers (RDISK copying straight
//! into a client's grant, or out of it: the zones of a write are allocated first, the data
//! goes to them directly, then the write is committed).

use crate::device::BlockDevice;
use crate::error::FsError;
use crate::fs::FileSystem;
use crate::inode::now;
use crate::{BLOCK_SIZE, Ino};

/// One piece of a file's byte range: its bytes are `len` bytes at `device_offset` on the
/// device, or zeros (a hole) when `device_offset` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Offset in the file of the first byte.
    pub file_offset: u64,
    /// Bytes in this piece.
    pub len: u64,
    /// Byte offset on the device (block × 1024 + offset in the block), or `None` for a hole.
    pub device_offset: Option<u64>,
}

/// Blocks mapped per step (bounds the zone list kept in memory).
const STEP: usize = 1024;

impl<D: BlockDevice> FileSystem<D> {
    /// The pieces of file `ino`'s bytes `off..off + len` (cut at the end of the file), in
    /// file order; runs of contiguous zones form one piece. Cached blocks of the range that
    /// are newer than the device are written back first, so the device holds every byte the
    /// extents name until the file is next written, truncated or removed.
    pub fn extents(&mut self, ino: Ino, off: u64, len: u64) -> Result<Vec<Extent>, FsError> {
        let inode = self.load_regular(ino)?;
        let size = u64::from(inode.size);
        let mut out: Vec<Extent> = Vec::new();
        if off >= size || len == 0 {
            return Ok(out);
        }
        let end = size.min(off.saturating_add(len));
        let bs = BLOCK_SIZE as u64;
        let first_fb = off / bs;
        let last_fb = (end - 1) / bs;
        let mut zones = vec![0u32; STEP.min((last_fb - first_fb + 1) as usize)];
        let mut fb = first_fb;
        while fb <= last_fb {
            let n = ((last_fb - fb + 1) as usize).min(zones.len());
            self.map_range(ino, &inode, fb, &mut zones[..n])?;
            for (k, &z) in zones[..n].iter().enumerate() {
                let block_start = (fb + k as u64) * bs;
                let from = off.max(block_start);
                let to = end.min(block_start + bs);
                let device_offset = if z == 0 {
                    None
                } else {
                    self.cache.write_back(&mut self.dev, u64::from(z))?;
                    Some(u64::from(z) * bs + (from - block_start))
                };
                let piece = Extent {
                    file_offset: from,
                    len: to - from,
                    device_offset,
                };
                match out.last_mut() {
                    Some(last)
                        if match (last.device_offset, device_offset) {
                            (None, None) => true,
                            (Some(a), Some(b)) => a + last.len == b,
                            _ => false,
                        } =>
                    {
                        last.len += piece.len;
                    }
                    _ => out.push(piece),
                }
            }
            fb += n as u64;
        }
        Ok(out)
    }

    /// Prepares a write whose data someone else puts on the device: allocates (as
    /// [`FileSystem::write`] would) the zones of the whole blocks of file `ino`'s bytes
    /// `off..off + len` and returns where they lie, in file order, contiguous zones as one
    /// piece. `off` must be a multiple of the block size; a last partial block is left out
    /// (write it with [`FileSystem::write`]). Neither the cache nor the device
    /// ([`BlockDevice::forget_copies`]) keeps a copy of those blocks afterwards. The file's
    /// size and times stay as they were until [`FileSystem::commit_write`]; zones allocated
    /// past the end meanwhile belong to the file (a truncate or unlink frees them).
    ///
    /// On a full disk the pieces cover the blocks that fit (`NoSpace` when none did).
    pub fn write_extents(&mut self, ino: Ino, off: u64, len: u64) -> Result<Vec<Extent>, FsError> {
        let mut inode = self.load_regular(ino)?;
        let bs = BLOCK_SIZE as u64;
        if !off.is_multiple_of(bs) {
            return Err(FsError::InvalidArgument(
                "a direct write starts at a block boundary",
            ));
        }
        let end = off.checked_add(len).ok_or(FsError::FileTooBig)?;
        if end > self.sb.max_file_size() {
            return Err(FsError::FileTooBig);
        }
        let mut out: Vec<Extent> = Vec::new();
        let mut failure = None;
        for k in 0..len / bs {
            let z = match self.zone_for_write(ino, &mut inode, off / bs + k) {
                Ok((z, _)) => u64::from(z),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            self.cache.forget(z);
            self.dev.forget_copies(z, 1);
            match out.last_mut() {
                Some(last) if last.device_offset.map(|d| d + last.len) == Some(z * bs) => {
                    last.len += bs;
                }
                _ => out.push(Extent {
                    file_offset: off + k * bs,
                    len: bs,
                    device_offset: Some(z * bs),
                }),
            }
        }
        // Stored even on error: the zones allocated so far are recorded in the inode.
        self.store_inode(ino, &inode)?;
        match failure {
            Some(FsError::NoSpace) if !out.is_empty() => Ok(out),
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Ends a write whose data went to the device directly ([`FileSystem::write_extents`]):
    /// the file is at least `end` bytes long, and it was modified now.
    pub fn commit_write(&mut self, ino: Ino, end: u64) -> Result<(), FsError> {
        let mut inode = self.load_regular(ino)?;
        if end > self.sb.max_file_size() {
            return Err(FsError::FileTooBig);
        }
        if end > u64::from(inode.size) {
            inode.size = end as u32;
        }
        let t = now();
        inode.mtime = t;
        inode.ctime = t;
        self.store_inode(ino, &inode)
    }

    /// Ends a direct write whose data did not reach the device: frees the zones
    /// [`FileSystem::write_extents`] allocated past the file's end.
    pub fn abort_write(&mut self, ino: Ino) -> Result<(), FsError> {
        let mut inode = self.load_regular(ino)?;
        let keep = u64::from(inode.size).div_ceil(BLOCK_SIZE as u64);
        self.free_blocks_from(ino, &mut inode, keep)?;
        self.store_inode(ino, &inode)
    }
}
