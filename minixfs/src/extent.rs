//! Where a file's bytes lie on the device, for servers that move data between the device and
//! a client without passing it through the file system's buffers (RDISK copying straight
//! into a client's grant).

use crate::device::BlockDevice;
use crate::error::FsError;
use crate::fs::FileSystem;
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
}
