//! FS (slot 1): the MINIX v3 file system server.
//!
//! It wraps [`minixfs::FileSystem`] over RDISK ([`device::RdiskDevice`]), mounts it when RDISK
//! is bound (formatting a blank disk first when its config says so) and answers the requests of
//! [`crate::storage::fs`]. Paths come from a grant of the requester; file data moves between
//! the requester's granted buffer and the file system, never through a message. Every request
//! is answered, malformed ones with an error.
//!
//! Durability: mutating requests mark the file system dirty; after [`IDLE_SYNC`] without a
//! request, and on `FS_SYNC`, FS writes everything back and flushes RDISK. A host stop ends
//! FS at once (under MUK2 no call can reach RDISK any more): what was written since the last
//! sync is lost then, as on a machine that loses power. Clients that need durability sync.

pub mod device;

use crate::ipc::Ipc;
use crate::protocol::{self, OK};
use crate::server::Server;
use crate::storage::dirent::Listed;
use crate::storage::fs::{
    DIR_MODE, DataRequest, FILE_MODE, FS_CREATE, FS_INFO, FS_LOOKUP, FS_MKDIR, FS_OPEN, FS_READ,
    FS_READDIR, FS_RENAME, FS_RMDIR, FS_STAT, FS_SYNC, FS_TRUNCATE, FS_UNLINK, FS_WRITE, Grantor,
    OPEN_CREATE, OPEN_EXCL, OPEN_TRUNC, encode_stat, fs_errno,
};
use crate::storage::path::{PathRef, split_parent};
use crate::storage::rdisk::{BLOCK_SIZE, BlockRequest, RD_READ};
use crate::storage::{MAX_CHUNK, grantor_endpoint, pack, reply_result, word_len};
use device::{IpcCell, RdiskDevice};
use m3ipc::{ANY, Errno, GrantId, Message, Result, Timeout};
use minixfs::{BlockDevice, FileSystem, FormatOptions, FsError, Ino};
use std::time::Duration;

/// Idle time after which FS writes dirty blocks back.
pub const IDLE_SYNC: Duration = Duration::from_millis(200);
/// How often FS looks for RDISK while it is not mounted.
pub const MOUNT_RETRY: Duration = Duration::from_millis(10);
/// Most directory entries FS reads from the file system at a time for one listing.
const READDIR_BATCH: usize = 256;

/// What FS does with a disk at start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FormatPolicy {
    /// Mount what is there; a disk without a file system is a mount error.
    Never,
    /// Format a blank disk (boot block and superblock all zeros) with `minixfs`'s formatter,
    /// mount any other.
    #[default]
    IfBlank,
    /// Format the disk at every start (the previous contents are lost).
    Always,
}

impl FormatPolicy {
    /// The name a config uses: `never`, `if-blank`, `always`.
    pub fn name(self) -> &'static str {
        match self {
            FormatPolicy::Never => "never",
            FormatPolicy::IfBlank => "if-blank",
            FormatPolicy::Always => "always",
        }
    }

    /// The policy of that name.
    pub fn from_name(name: &str) -> Option<FormatPolicy> {
        [
            FormatPolicy::Never,
            FormatPolicy::IfBlank,
            FormatPolicy::Always,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

/// The FS server.
#[derive(Debug)]
pub struct Fs {
    rdisk_nr: i32,
    format: FormatPolicy,
}

impl Fs {
    /// FS over the RDISK at slot `rdisk_nr`, with `format` at start.
    pub fn new(rdisk_nr: i32, format: FormatPolicy) -> Fs {
        Fs { rdisk_nr, format }
    }
}

type Mounted<'c, 'i> = FileSystem<RdiskDevice<'c, 'i>>;

/// The state of the file system.
enum State<'c, 'i> {
    /// RDISK is not bound yet.
    Waiting,
    /// Mounted on the RDISK at this endpoint.
    Up(Box<Mounted<'c, 'i>>, m3ipc::Endpoint),
    /// The disk did not mount: the reason, printed once; requests get `EDVSIO`.
    Failed,
}

impl Server for Fs {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> Result<()> {
        let cell: IpcCell<'_> = std::cell::RefCell::new(ipc);
        let mut state = State::Waiting;
        let mut scratch = vec![0u8; MAX_CHUNK];
        let mut dirty = false;
        let mut m = Message::default();
        loop {
            if cell.borrow().stopping() {
                return Ok(());
            }
            if matches!(state, State::Waiting) {
                state = self.try_mount(&cell)?;
            }
            let timeout = match state {
                State::Waiting => Timeout::Millis(MOUNT_RETRY.as_millis() as u32),
                _ if dirty => Timeout::Millis(IDLE_SYNC.as_millis() as u32),
                _ => Timeout::Forever,
            };
            let got = cell.borrow_mut().receive(ANY, &mut m, timeout);
            match got {
                Ok(()) => {
                    let reply = match &mut state {
                        State::Up(fs, rdisk) => {
                            let r = handle(&cell, fs, *rdisk, &mut scratch, &m);
                            if r.is_ok() && mutates(m.m_type) {
                                dirty = true;
                            }
                            if m.m_type == FS_SYNC && r.is_ok() {
                                dirty = false;
                            }
                            r
                        }
                        State::Waiting => Err(Errno::EDVSNODEV),
                        State::Failed => Err(Errno::EDVSIO),
                    };
                    let reply = reply.unwrap_or_else(protocol::error_reply);
                    let _ = cell.borrow_mut().reply(m.m_source, &reply);
                }
                Err(Errno::EDVSSHUTDOWN) => return Ok(()),
                Err(Errno::EDVSTIMEDOUT) => {
                    if let (State::Up(fs, _), true) = (&mut state, dirty) {
                        match fs.sync() {
                            Ok(()) => dirty = false,
                            Err(e) => eprintln!("fs: background sync failed: {e}"),
                        }
                    }
                }
                Err(
                    Errno::EDVSAGAIN
                    | Errno::EDVSWOKENUP
                    | Errno::EDVSSRCDIED
                    | Errno::EDVSDEADSRCDST
                    | Errno::EDVSENDPOINT,
                ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Fs {
    /// Mount (or format and mount) once RDISK is bound. `Waiting` while it is not.
    fn try_mount<'c, 'i>(&self, cell: &'c IpcCell<'i>) -> Result<State<'c, 'i>> {
        let bound = cell.borrow().dc().wait4bind(self.rdisk_nr, Timeout::NoWait);
        let rdisk = match bound {
            Ok(ep) => ep,
            Err(Errno::EDVSAGAIN) => return Ok(State::Waiting),
            Err(e) => return Err(e),
        };
        let mut dev = match RdiskDevice::connect(cell, rdisk) {
            Ok(d) => d,
            Err(Errno::EDVSSHUTDOWN) => return Err(Errno::EDVSSHUTDOWN),
            Err(e) => {
                eprintln!("fs: cannot reach RDISK at nr {}: {e}", self.rdisk_nr);
                return Ok(State::Failed);
            }
        };
        let format = match self.format {
            FormatPolicy::Never => false,
            FormatPolicy::Always => true,
            FormatPolicy::IfBlank => is_blank(&mut dev),
        };
        let blocks = dev.block_count();
        let mounted = if format {
            FileSystem::format(dev, &FormatOptions::default())
        } else {
            FileSystem::mount(dev)
        };
        match mounted {
            Ok(fs) => {
                if format {
                    eprintln!("fs: formatted a blank disk of {blocks} blocks");
                }
                Ok(State::Up(Box::new(fs), rdisk))
            }
            Err(e) => {
                eprintln!(
                    "fs: cannot {} the disk on RDISK ({blocks} blocks): {e}",
                    if format { "format" } else { "mount" }
                );
                Ok(State::Failed)
            }
        }
    }
}

/// Whether the disk's boot block and superblock are all zeros.
fn is_blank(dev: &mut impl BlockDevice) -> bool {
    if dev.block_count() < 2 {
        return false;
    }
    let mut head = vec![0u8; 2 * minixfs::BLOCK_SIZE];
    dev.read_blocks(0, &mut head).is_ok() && head.iter().all(|&b| b == 0)
}

fn mutates(m_type: i32) -> bool {
    matches!(
        m_type,
        FS_OPEN | FS_CREATE | FS_WRITE | FS_TRUNCATE | FS_UNLINK | FS_MKDIR | FS_RMDIR | FS_RENAME
    )
}

fn fs_err(e: FsError) -> Errno {
    fs_errno(&e)
}

/// The path a request names in `payload[0..2]`.
fn path_of(cell: &IpcCell<'_>, m: &Message) -> Result<String> {
    let r = PathRef::from_words(m.payload[0], m.payload[1], false)?;
    let me = cell.borrow();
    let view = me.granted(m.m_source, r.grant)?;
    r.read(&view)
}

/// The directory holding `path` and the last name in it.
fn parent_of<'p>(fs: &mut Mounted<'_, '_>, path: &'p str) -> Result<(Ino, &'p str)> {
    let (parent, name) = split_parent(path);
    let dir = fs.lookup(parent).map_err(fs_err)?;
    Ok((dir, name))
}

/// The endpoint whose grant a request names: the requester, or a client a system process
/// (FTP) acts for.
fn grantor_of(cell: &IpcCell<'_>, m: &Message, g: Grantor) -> Result<m3ipc::Endpoint> {
    grantor_endpoint(cell.borrow().dc(), m.m_source, g)
}

fn stat_reply(fs: &mut Mounted<'_, '_>, ino: Ino) -> Result<Message> {
    Ok(encode_stat(&fs.stat(ino).map_err(fs_err)?))
}

/// Answer one request to a mounted file system on the RDISK at `rdisk`.
fn handle(
    cell: &IpcCell<'_>,
    fs: &mut Mounted<'_, '_>,
    rdisk: m3ipc::Endpoint,
    scratch: &mut [u8],
    m: &Message,
) -> Result<Message> {
    match m.m_type {
        FS_LOOKUP => {
            let path = path_of(cell, m)?;
            let ino = fs.lookup(&path).map_err(fs_err)?;
            stat_reply(fs, ino)
        }
        FS_OPEN => open(cell, fs, m),
        FS_CREATE => {
            let path = path_of(cell, m)?;
            let (dir, name) = parent_of(fs, &path)?;
            let ino = fs.create(dir, name, FILE_MODE).map_err(fs_err)?;
            stat_reply(fs, ino)
        }
        FS_READ => {
            let r = DataRequest::decode(m)?;
            let from = grantor_of(cell, m, r.grantor)?;
            let n = match (r.grantor, r.disk_grant) {
                (Grantor::Client(_), Some(disk)) if r.offset.is_multiple_of(BLOCK_SIZE as u64) => {
                    read_direct(cell, fs, rdisk, &r, from, disk, scratch)?
                }
                _ => {
                    let n = fs
                        .read(r.ino, r.offset, &mut scratch[..r.len])
                        .map_err(fs_err)?;
                    let me = cell.borrow();
                    me.granted(from, r.grant)?
                        .write_at(r.grant_offset, &scratch[..n])?;
                    n
                }
            };
            let mut reply = Message::new(OK);
            reply.payload[0] = n as u64;
            Ok(reply)
        }
        FS_WRITE => {
            let r = DataRequest::decode(m)?;
            let from = grantor_of(cell, m, r.grantor)?;
            {
                let me = cell.borrow();
                me.granted(from, r.grant)?
                    .read_at(r.grant_offset, &mut scratch[..r.len])?;
            }
            let n = fs
                .write(r.ino, r.offset, &scratch[..r.len])
                .map_err(fs_err)?;
            let mut reply = Message::new(OK);
            reply.payload[0] = n as u64;
            Ok(reply)
        }
        FS_TRUNCATE => {
            let ino = u32::try_from(m.payload[0]).map_err(|_| Errno::EDVSBADVALUE)?;
            fs.truncate(ino, m.payload[1]).map_err(fs_err)?;
            Ok(Message::new(OK))
        }
        FS_UNLINK => {
            let path = path_of(cell, m)?;
            let (dir, name) = parent_of(fs, &path)?;
            fs.unlink(dir, name).map_err(fs_err)?;
            Ok(Message::new(OK))
        }
        FS_MKDIR => {
            let path = path_of(cell, m)?;
            let (dir, name) = parent_of(fs, &path)?;
            let ino = fs.mkdir(dir, name, DIR_MODE).map_err(fs_err)?;
            stat_reply(fs, ino)
        }
        FS_RMDIR => {
            let path = path_of(cell, m)?;
            let (dir, name) = parent_of(fs, &path)?;
            fs.rmdir(dir, name).map_err(fs_err)?;
            Ok(Message::new(OK))
        }
        FS_READDIR => readdir(cell, fs, m),
        FS_STAT => {
            let ino = u32::try_from(m.payload[0]).map_err(|_| Errno::EDVSBADVALUE)?;
            stat_reply(fs, ino)
        }
        FS_RENAME => {
            let r = PathRef::from_words(m.payload[0], m.payload[1], true)?;
            let (from, to) = {
                let me = cell.borrow();
                let view = me.granted(m.m_source, r.grant)?;
                r.read_pair(&view)?
            };
            let (from_dir, from_name) = parent_of(fs, &from)?;
            let (to_dir, to_name) = parent_of(fs, &to)?;
            fs.rename(from_dir, from_name, to_dir, to_name)
                .map_err(fs_err)?;
            Ok(Message::new(OK))
        }
        FS_SYNC => {
            fs.sync().map_err(fs_err)?;
            Ok(Message::new(OK))
        }
        FS_INFO => {
            let i = fs.info();
            let mut reply = Message::new(OK);
            reply.payload[0] = i.blocks;
            reply.payload[1] = i.free_blocks;
            reply.payload[2] = pack(i.inodes, i.free_inodes);
            reply.payload[3] = i.max_file_size;
            reply.payload[4] = pack(rdisk as u32, 1);
            Ok(reply)
        }
        _ => Err(Errno::EDVSBADREQUEST),
    }
}

/// An `FS_READ` for a client that granted the same buffer to RDISK: RDISK copies the file's
/// whole blocks straight from the disk into the client's buffer; FS fills holes with zeros and
/// copies a last partial block itself. Returns the bytes read.
fn read_direct(
    cell: &IpcCell<'_>,
    fs: &mut Mounted<'_, '_>,
    rdisk: m3ipc::Endpoint,
    r: &DataRequest,
    client: m3ipc::Endpoint,
    disk: GrantId,
    scratch: &mut [u8],
) -> Result<usize> {
    let pieces = fs.extents(r.ino, r.offset, r.len as u64).map_err(fs_err)?;
    let bs = BLOCK_SIZE as u64;
    let mut total = 0usize;
    for p in pieces {
        // Within the request (extents are cut to it), so these fit the 1 MiB grant offsets.
        let at =
            usize::try_from(p.file_offset - r.offset).map_err(|_| Errno::EDVSIO)? + r.grant_offset;
        let len = usize::try_from(p.len).map_err(|_| Errno::EDVSIO)?;
        let whole = match p.device_offset {
            Some(d) if d.is_multiple_of(bs) => (p.len / bs) as usize,
            _ => 0,
        };
        if let (Some(d), true) = (p.device_offset, whole > 0) {
            let req = BlockRequest {
                first: d / bs,
                count: whole,
                grant: disk,
                offset: at,
                grantor: Grantor::Client(client),
            };
            let mut msg = req.encode(RD_READ);
            cell.borrow_mut()
                .sendrec(rdisk, &mut msg, device::RDISK_TIMEOUT)?;
            reply_result(&msg)?;
        }
        let done = whole * BLOCK_SIZE;
        if done < len {
            let rest = &mut scratch[..len - done];
            if p.device_offset.is_some() {
                let got = fs
                    .read(r.ino, p.file_offset + done as u64, rest)
                    .map_err(fs_err)?;
                if got != rest.len() {
                    return Err(Errno::EDVSIO);
                }
            } else {
                rest.fill(0);
            }
            let me = cell.borrow();
            me.granted(client, r.grant)?.write_at(at + done, rest)?;
        }
        total += len;
    }
    Ok(total)
}

fn open(cell: &IpcCell<'_>, fs: &mut Mounted<'_, '_>, m: &Message) -> Result<Message> {
    let flags = m.payload[2];
    if flags & !(OPEN_CREATE | OPEN_TRUNC | OPEN_EXCL) != 0 {
        return Err(Errno::EDVSBADVALUE);
    }
    let path = path_of(cell, m)?;
    let ino = match fs.lookup(&path) {
        Ok(_) if flags & OPEN_CREATE != 0 && flags & OPEN_EXCL != 0 => {
            return Err(Errno::EDVSEXIST);
        }
        Ok(ino) => {
            let st = fs.stat(ino).map_err(fs_err)?;
            if st.is_dir() {
                return Err(Errno::EDVSISDIR);
            }
            if flags & OPEN_TRUNC != 0 && st.size != 0 {
                fs.truncate(ino, 0).map_err(fs_err)?;
            }
            ino
        }
        Err(FsError::NotFound) if flags & OPEN_CREATE != 0 => {
            let (dir, name) = parent_of(fs, &path)?;
            fs.create(dir, name, FILE_MODE).map_err(fs_err)?
        }
        Err(e) => return Err(fs_err(e)),
    };
    stat_reply(fs, ino)
}

fn readdir(cell: &IpcCell<'_>, fs: &mut Mounted<'_, '_>, m: &Message) -> Result<Message> {
    let ino = u32::try_from(m.payload[0]).map_err(|_| Errno::EDVSBADVALUE)?;
    let start = word_len(m.payload[1], usize::MAX / 2)?;
    let grant = GrantId(m.payload[2]);
    let room = word_len(m.payload[3], MAX_CHUNK)?;
    let to = grantor_of(cell, m, Grantor::from_word(m.payload[4])?)?;
    if !fs.stat(ino).map_err(fs_err)?.is_dir() {
        return Err(Errno::EDVSNOTDIR);
    }
    let mut out = Vec::new();
    let mut count = 0usize;
    let mut more = false;
    // Bounded: each batch either fills `out` or ends the directory, and `out` holds at most
    // `room` bytes.
    'batches: loop {
        let batch = fs
            .readdir(ino, start + count, READDIR_BATCH)
            .map_err(fs_err)?;
        if batch.is_empty() {
            break;
        }
        let last = batch.len() < READDIR_BATCH;
        for e in batch {
            let st = fs.stat(e.ino).map_err(fs_err)?;
            let listed = Listed {
                ino: e.ino,
                mode: st.mode,
                size: st.size,
                name: e.name,
            };
            if out.len() + listed.encoded_len() > room {
                more = true;
                break 'batches;
            }
            listed.encode(&mut out)?;
            count += 1;
        }
        if last {
            break;
        }
    }
    if !out.is_empty() {
        let me = cell.borrow();
        me.granted(to, grant)?.write_at(0, &out)?;
    }
    let mut reply = Message::new(OK);
    reply.payload[0] = count as u64;
    reply.payload[1] = out.len() as u64;
    reply.payload[2] = u64::from(more);
    Ok(reply)
}
