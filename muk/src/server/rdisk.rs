//! RDISK (slot 3): a block device server over memory or an image file.
//!
//! An image file is locked exclusively while RDISK serves it (`image_lock.rs`): a second RDISK
//! on the same image is refused, naming the process that holds it.
//!
//! Requests ([`crate::storage::rdisk`]): the geometry, reads and writes of up to 1 MiB of
//! consecutive blocks, and a flush. Block data never travels in a message: the requester grants
//! RDISK a range of its pool buffer, and RDISK copies the blocks straight between the device and
//! that range (memory: one copy; an image file: a positioned read or write through a scratch
//! buffer). Blocks outside the device are `EDVSRANGE`; a failing image file `EDVSIO`. On a host
//! stop it flushes the image file (after FS above it has written back). A system
//! process (FS) may name a grant a client issued to RDISK, to read a file's blocks straight
//! into the client's buffer.

use crate::ipc::Ipc;
use crate::protocol::OK;
use crate::server::{Handler, Server, serve_requests};
use crate::storage::rdisk::{
    BLOCK_SIZE, BlockRequest, MAX_BLOCKS, RD_FLUSH, RD_GEOMETRY, RD_READ, RD_WRITE,
};
use crate::storage::{grantor_endpoint, is_remote, read_granted, write_granted};
use m3ipc::{Errno, Message, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where RDISK's blocks live, as a config names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskSpec {
    /// A zero-filled memory disk of this many bytes (rounded down to whole blocks).
    Memory(u64),
    /// An existing image file, read and written in place; its size is the file's.
    Image(PathBuf),
}

/// Size of the memory disk when a config names none: 64 MiB.
pub const DEFAULT_MEMORY: u64 = 64 << 20;

impl Default for DiskSpec {
    fn default() -> DiskSpec {
        DiskSpec::Memory(DEFAULT_MEMORY)
    }
}

enum Backing {
    Memory(Vec<u8>),
    File { file: File, scratch: Vec<u8> },
}

/// The RDISK server.
pub struct Rdisk {
    backing: Backing,
    blocks: u64,
}

impl std::fmt::Debug for Rdisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rdisk")
            .field("blocks", &self.blocks)
            .finish()
    }
}

impl Rdisk {
    /// The disk `spec` names: a memory disk, or the image file opened read-write (an error
    /// names the file).
    pub fn open(spec: &DiskSpec) -> std::result::Result<Rdisk, String> {
        match spec {
            DiskSpec::Memory(bytes) => {
                let len = usize::try_from(*bytes)
                    .map_err(|_| format!("a memory disk of {bytes} bytes does not fit"))?;
                Ok(Rdisk::memory(vec![0; len - len % BLOCK_SIZE]))
            }
            DiskSpec::Image(path) => Rdisk::image(path),
        }
    }

    /// A memory disk holding `bytes` (an image made elsewhere; cut to whole blocks).
    pub fn memory(mut bytes: Vec<u8>) -> Rdisk {
        bytes.truncate(bytes.len() - bytes.len() % BLOCK_SIZE);
        let blocks = (bytes.len() / BLOCK_SIZE) as u64;
        Rdisk {
            backing: Backing::Memory(bytes),
            blocks,
        }
    }

    /// The image file at `path`, opened read-write and locked: while this RDISK lives, another
    /// one (in this process or another) is refused with a message naming the holder's PID.
    pub fn image(path: &Path) -> std::result::Result<Rdisk, String> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open disk image {}: {e}", path.display()))?;
        super::image_lock::lock_exclusive(&file, path)?;
        let len = file
            .metadata()
            .map_err(|e| format!("cannot stat disk image {}: {e}", path.display()))?
            .len();
        if len < BLOCK_SIZE as u64 {
            return Err(format!(
                "disk image {} holds {len} bytes, less than one block",
                path.display()
            ));
        }
        Ok(Rdisk {
            backing: Backing::File {
                file,
                scratch: vec![0; MAX_BLOCKS * BLOCK_SIZE],
            },
            blocks: len / BLOCK_SIZE as u64,
        })
    }

    /// Number of blocks.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The byte range of the request's blocks on the device, else `EDVSRANGE`.
    fn span(&self, r: &BlockRequest) -> Result<(u64, usize)> {
        let end = r
            .first
            .checked_add(r.count as u64)
            .ok_or(Errno::EDVSRANGE)?;
        if end > self.blocks {
            return Err(Errno::EDVSRANGE);
        }
        Ok((r.first * BLOCK_SIZE as u64, r.bytes()))
    }

    fn read(&mut self, ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        let r = BlockRequest::decode(m)?;
        let (at, len) = self.span(&r)?;
        let grantor = grantor_endpoint(ipc.dc(), m.m_source, r.grantor)?;
        match &mut self.backing {
            Backing::Memory(bytes) => {
                let at = usize::try_from(at).map_err(|_| Errno::EDVSRANGE)?;
                let src = bytes.get(at..at + len).ok_or(Errno::EDVSRANGE)?;
                write_granted(ipc, grantor, r.grant, r.offset, src)?;
            }
            Backing::File { file, scratch } => {
                let buf = &mut scratch[..len];
                file.read_exact_at(buf, at).map_err(|_| Errno::EDVSIO)?;
                write_granted(ipc, grantor, r.grant, r.offset, buf)?;
            }
        }
        Ok(Message::new(OK))
    }

    fn write(&mut self, ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        let r = BlockRequest::decode(m)?;
        let (at, len) = self.span(&r)?;
        let grantor = grantor_endpoint(ipc.dc(), m.m_source, r.grantor)?;
        match &mut self.backing {
            Backing::Memory(bytes) => {
                let at = usize::try_from(at).map_err(|_| Errno::EDVSRANGE)?;
                let dst = bytes.get_mut(at..at + len).ok_or(Errno::EDVSRANGE)?;
                if is_remote(ipc, grantor) {
                    // The bytes come over the link anyway: fetch them whole, then skip the
                    // zero pieces as below.
                    let mut got = vec![0u8; len];
                    read_granted(ipc, grantor, r.grant, r.offset, &mut got)?;
                    write_sparse(
                        |o, p| {
                            p.copy_from_slice(&got[o..o + p.len()]);
                            Ok(())
                        },
                        dst,
                    )?;
                } else {
                    let view = ipc.granted(grantor, r.grant)?;
                    write_sparse(|o, p| view.read_at(r.offset + o, p), dst)?;
                }
            }
            Backing::File { file, scratch } => {
                let buf = &mut scratch[..len];
                read_granted(ipc, grantor, r.grant, r.offset, buf)?;
                file.write_all_at(buf, at).map_err(|_| Errno::EDVSIO)?;
            }
        }
        Ok(Message::new(OK))
    }

    fn flush(&mut self) -> Result<Message> {
        if let Backing::File { file, .. } = &self.backing {
            file.sync_data().map_err(|_| Errno::EDVSIO)?;
        }
        Ok(Message::new(OK))
    }
}

/// Copy `dst.len()` bytes of the request's data into the memory disk at `dst`, leaving alone
/// every page-sized piece where both are all zeros; `fetch(o, piece)` reads the data's bytes
/// at offset `o` into `piece`. The memory disk starts zero-filled and unallocated (the kernel
/// maps a page only when it is written), and the formatter writes whole zeroed inode tables:
/// skipping those keeps the disk's resident memory to the blocks that hold something. A zero
/// piece of an untouched page reads the shared zero page.
fn write_sparse(
    mut fetch: impl FnMut(usize, &mut [u8]) -> Result<()>,
    dst: &mut [u8],
) -> Result<()> {
    const PIECE: usize = 4096;
    let mut piece = [0u8; PIECE];
    let mut from = 0;
    for d in dst.chunks_mut(PIECE) {
        if is_zero(d) {
            let p = &mut piece[..d.len()];
            fetch(from, p)?;
            if !is_zero(p) {
                d.copy_from_slice(p);
            }
        } else {
            fetch(from, d)?;
        }
        from += d.len();
    }
    Ok(())
}

/// Whether every byte is zero (a whole-slice fold, which the compiler vectorizes).
fn is_zero(b: &[u8]) -> bool {
    b.iter().fold(0u8, |acc, &x| acc | x) == 0
}

impl Handler for Rdisk {
    fn handle(&mut self, ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        match m.m_type {
            RD_GEOMETRY => {
                let mut r = Message::new(OK);
                r.payload[0] = self.blocks;
                r.payload[1] = BLOCK_SIZE as u64;
                Ok(r)
            }
            RD_READ => self.read(ipc, m),
            RD_WRITE => self.write(ipc, m),
            RD_FLUSH => self.flush(),
            _ => Err(Errno::EDVSBADREQUEST),
        }
    }

    /// On a stop: what the image file was given reaches the disk.
    fn finish(&mut self, _ipc: &mut dyn Ipc) -> Result<()> {
        self.flush().map(drop).inspect_err(|e| {
            crate::diag!("rdisk: flushing the image file at stop failed: {e}");
        })
    }
}

impl Server for Rdisk {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> Result<()> {
        serve_requests(self, ipc)
    }
}
