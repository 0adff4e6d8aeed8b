//! The FS server's block device: RDISK, reached by IPC.
//!
//! Two 1 MiB pool buffers are granted to RDISK: a read window and a write staging buffer. A
//! read that misses the window fetches up to 1 MiB in one `RD_READ` (the whole request when it
//! is large; ahead of a small read, [`SEQUENTIAL_AHEAD`] blocks when the reads run
//! sequentially, else [`RANDOM_AHEAD`]), so that a file read block by block costs one round
//! trip per megabyte, not per block. Writes go through at once (FS is RDISK's only writer, so
//! the window stays coherent: a write patches the blocks of the window it covers).

use crate::ipc::Ipc;
use crate::storage::rdisk::{
    BLOCK_SIZE, BlockRequest, MAX_BLOCKS, RD_FLUSH, RD_GEOMETRY, RD_READ, RD_WRITE,
};
use crate::storage::{Grantor, reply_result};
use m3ipc::{Access, Endpoint, Errno, GrantId, Handle, Message, Timeout};
use minixfs::{BlockDevice, DeviceError};
use std::cell::RefCell;

/// Blocks fetched ahead of a small read that continues the previous one: 1 MiB.
pub const SEQUENTIAL_AHEAD: usize = MAX_BLOCKS;
/// Blocks fetched for a small read elsewhere (metadata: inodes, bitmaps, directories).
pub const RANDOM_AHEAD: usize = 32;
/// Longest FS waits for one RDISK request: a lost RDISK is an I/O error, not a hang.
pub const RDISK_TIMEOUT: Timeout = Timeout::Millis(30_000);

/// The server's IPC, shared between its request loop and the device the file system owns.
pub type IpcCell<'i> = RefCell<&'i mut dyn Ipc>;

/// One granted 1 MiB buffer.
struct Granted {
    handle: Handle,
    grant: GrantId,
}

/// RDISK as a [`BlockDevice`].
pub struct RdiskDevice<'c, 'i> {
    ipc: &'c IpcCell<'i>,
    rdisk: Endpoint,
    blocks: u64,
    window_buf: Granted,
    staging: Granted,
    /// Blocks `[first, first + count)` of the device are in the window buffer.
    window: Option<(u64, usize)>,
    /// Where the last read ended: a read starting here is sequential.
    last_end: u64,
}

fn io(what: &str, e: Errno) -> DeviceError {
    DeviceError::Io(format!("RDISK {what}: {e}"))
}

impl<'c, 'i> RdiskDevice<'c, 'i> {
    /// Connect to RDISK at `rdisk`: allocate and grant the two buffers, ask the geometry.
    pub fn connect(ipc: &'c IpcCell<'i>, rdisk: Endpoint) -> m3ipc::Result<RdiskDevice<'c, 'i>> {
        let mut granted = Vec::with_capacity(2);
        {
            let mut me = ipc.borrow_mut();
            for _ in 0..2 {
                let handle = me.alloc_buffer(MAX_BLOCKS * BLOCK_SIZE)?;
                let grant = match me.grant(
                    handle,
                    rdisk,
                    0,
                    MAX_BLOCKS * BLOCK_SIZE,
                    Access::READ_WRITE,
                ) {
                    Ok(g) => g,
                    Err(e) => {
                        let _ = me.release_buffer(handle);
                        return Err(e);
                    }
                };
                granted.push(Granted { handle, grant });
            }
        }
        let staging = granted.pop().ok_or(Errno::EDVSGENERIC)?;
        let window_buf = granted.pop().ok_or(Errno::EDVSGENERIC)?;
        let mut dev = RdiskDevice {
            ipc,
            rdisk,
            blocks: 0,
            window_buf,
            staging,
            window: None,
            last_end: u64::MAX,
        };
        let mut m = Message::new(RD_GEOMETRY);
        dev.call(&mut m)?;
        if m.payload[1] != BLOCK_SIZE as u64 {
            return Err(Errno::EDVSBADVALUE);
        }
        dev.blocks = m.payload[0];
        Ok(dev)
    }

    /// RDISK's endpoint.
    pub fn rdisk(&self) -> Endpoint {
        self.rdisk
    }

    fn call(&self, m: &mut Message) -> m3ipc::Result<()> {
        self.ipc
            .borrow_mut()
            .sendrec(self.rdisk, m, RDISK_TIMEOUT)?;
        reply_result(m)
    }

    fn check(&self, first: u64, len: usize) -> Result<usize, DeviceError> {
        if !len.is_multiple_of(BLOCK_SIZE) {
            return Err(DeviceError::Io(format!(
                "a transfer of {len} bytes is not whole blocks"
            )));
        }
        let count = len / BLOCK_SIZE;
        if first
            .checked_add(count as u64)
            .is_none_or(|end| end > self.blocks)
        {
            return Err(DeviceError::OutOfRange {
                first,
                count: count as u64,
                blocks: self.blocks,
            });
        }
        Ok(count)
    }

    /// Fetch `count` blocks from `first` into the window.
    fn fetch(&mut self, first: u64, count: usize) -> Result<(), DeviceError> {
        self.window = None;
        let req = BlockRequest {
            first,
            count,
            grant: self.window_buf.grant,
            offset: 0,
            grantor: Grantor::Requester,
        };
        self.call(&mut req.encode(RD_READ))
            .map_err(|e| io("read", e))?;
        self.window = Some((first, count));
        Ok(())
    }
}

impl BlockDevice for RdiskDevice<'_, '_> {
    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn read_blocks(&mut self, first: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let count = self.check(first, buf.len())?;
        let sequential = first == self.last_end;
        let mut done = 0usize;
        while done < count {
            let b = first + done as u64;
            let hit = match self.window {
                Some((w, n)) if b >= w && b < w + n as u64 => Some((w, n)),
                _ => None,
            };
            let (w, n) = match hit {
                Some(x) => x,
                None => {
                    let want = count - done;
                    let ahead = if want >= RANDOM_AHEAD {
                        want
                    } else if sequential {
                        SEQUENTIAL_AHEAD
                    } else {
                        RANDOM_AHEAD
                    };
                    let left = usize::try_from(self.blocks - b).unwrap_or(usize::MAX);
                    let n = ahead.min(MAX_BLOCKS).min(left);
                    self.fetch(b, n)?;
                    (b, n)
                }
            };
            let skip = (b - w) as usize;
            let take = (n - skip).min(count - done);
            let out = &mut buf[done * BLOCK_SIZE..(done + take) * BLOCK_SIZE];
            let me = self.ipc.borrow();
            me.buffer(self.window_buf.handle)
                .and_then(|v| v.read_at(skip * BLOCK_SIZE, out))
                .map_err(|e| io("window", e))?;
            done += take;
        }
        self.last_end = first + count as u64;
        Ok(())
    }

    fn write_blocks(&mut self, first: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let count = self.check(first, buf.len())?;
        for (i, chunk) in buf.chunks(MAX_BLOCKS * BLOCK_SIZE).enumerate() {
            let b = first + (i * MAX_BLOCKS) as u64;
            let n = chunk.len() / BLOCK_SIZE;
            {
                let me = self.ipc.borrow();
                me.buffer(self.staging.handle)
                    .and_then(|v| v.write_at(0, chunk))
                    .map_err(|e| io("staging", e))?;
            }
            let req = BlockRequest {
                first: b,
                count: n,
                grant: self.staging.grant,
                offset: 0,
                grantor: Grantor::Requester,
            };
            self.call(&mut req.encode(RD_WRITE))
                .map_err(|e| io("write", e))?;
            // Keep the window coherent: copy in the blocks of it this write covered.
            if let Some((w, wn)) = self.window {
                let lo = b.max(w);
                let hi = (b + n as u64).min(w + wn as u64);
                if lo < hi {
                    let src =
                        &chunk[(lo - b) as usize * BLOCK_SIZE..(hi - b) as usize * BLOCK_SIZE];
                    let me = self.ipc.borrow();
                    let patched = me
                        .buffer(self.window_buf.handle)
                        .and_then(|v| v.write_at((lo - w) as usize * BLOCK_SIZE, src));
                    if patched.is_err() {
                        drop(me);
                        self.window = None;
                    }
                }
            }
        }
        debug_assert!(count > 0 || buf.is_empty());
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        self.call(&mut Message::new(RD_FLUSH))
            .map_err(|e| io("flush", e))
    }

    /// RDISK is about to write these blocks from a client's buffer: the window's copy would
    /// be stale.
    fn forget_copies(&mut self, first: u64, count: u64) {
        if let Some((w, n)) = self.window
            && first < w + n as u64
            && w < first.saturating_add(count)
        {
            self.window = None;
        }
    }
}

impl Drop for RdiskDevice<'_, '_> {
    fn drop(&mut self) {
        // Give the buffers back; a host that stops releases them with the slot anyway.
        if let Ok(mut me) = self.ipc.try_borrow_mut() {
            for g in [&self.window_buf, &self.staging] {
                let _ = me.revoke(g.grant);
                let _ = me.release_buffer(g.handle);
            }
        }
    }
}
