//! FS's requests: each one decoded, checked and answered against the mounted file system.

use super::Mounted;
use super::device::{IpcCell, RDISK_TIMEOUT};
use super::puts::Puts;
use crate::protocol::OK;
use crate::storage::dirent::Listed;
use crate::storage::fs::{
    DIR_MODE, DataRequest, FILE_MODE, FS_CREATE, FS_INFO, FS_LOOKUP, FS_MKDIR, FS_OPEN,
    FS_PUT_ABORT, FS_PUT_BEGIN, FS_PUT_COMMIT, FS_PUT_WRITE, FS_READ, FS_READDIR, FS_RENAME,
    FS_RMDIR, FS_STAT, FS_SYNC, FS_TRUNCATE, FS_UNLINK, FS_WRITE, Grantor, OPEN_CREATE, OPEN_EXCL,
    OPEN_TRUNC, encode_stat, fs_errno,
};
use crate::storage::path::{PathRef, is_put_temp, split_parent};
use crate::storage::rdisk::{BLOCK_SIZE, BlockRequest, RD_READ, RD_WRITE};
use crate::storage::{
    MAX_CHUNK, grantor_endpoint, pack, read_granted, reply_result, word_len, write_granted,
};
use m3ipc::{Errno, GrantId, Message, Result};
use minixfs::{FsError, Ino};

/// Most directory entries FS reads from the file system at a time for one listing.
const READDIR_BATCH: usize = 256;

/// Whether a successful request of this type changed the file system.
pub(super) fn mutates(m_type: i32) -> bool {
    matches!(
        m_type,
        FS_OPEN
            | FS_CREATE
            | FS_WRITE
            | FS_TRUNCATE
            | FS_UNLINK
            | FS_MKDIR
            | FS_RMDIR
            | FS_RENAME
            | FS_PUT_BEGIN
            | FS_PUT_WRITE
            | FS_PUT_COMMIT
            | FS_PUT_ABORT
    )
}

fn fs_err(e: FsError) -> Errno {
    fs_errno(&e)
}

/// The path a request names in `payload[0..2]`.
fn path_of(cell: &IpcCell<'_>, m: &Message) -> Result<String> {
    let r = PathRef::from_words(m.payload[0], m.payload[1], false)?;
    r.fetch(&mut **cell.borrow_mut(), m.m_source)
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

/// The put handle and writer of an [`FS_PUT_COMMIT`] or [`FS_PUT_ABORT`].
fn put_of(cell: &IpcCell<'_>, m: &Message) -> Result<(Ino, m3ipc::Endpoint)> {
    let ino = u32::try_from(m.payload[0]).map_err(|_| Errno::EDVSBADVALUE)?;
    let owner = grantor_of(cell, m, Grantor::from_word(m.payload[1])?)?;
    Ok((ino, owner))
}

/// Answer one request to a mounted file system on the RDISK at `rdisk`, with `puts` under
/// way.
pub(super) fn handle(
    cell: &IpcCell<'_>,
    fs: &mut Mounted<'_, '_>,
    rdisk: m3ipc::Endpoint,
    puts: &mut Puts,
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
                    write_granted(
                        &mut **cell.borrow_mut(),
                        from,
                        r.grant,
                        r.grant_offset,
                        &scratch[..n],
                    )?;
                    n
                }
            };
            let mut reply = Message::new(OK);
            reply.payload[0] = n as u64;
            Ok(reply)
        }
        FS_WRITE | FS_PUT_WRITE => {
            let r = DataRequest::decode(m)?;
            let from = grantor_of(cell, m, r.grantor)?;
            if m.m_type == FS_PUT_WRITE {
                puts.check(r.ino, from)?;
            }
            let n = match (r.grantor, r.disk_grant) {
                (Grantor::Client(_), Some(disk)) if r.offset.is_multiple_of(BLOCK_SIZE as u64) => {
                    write_direct(cell, fs, rdisk, &r, from, disk, scratch)?
                }
                _ => {
                    read_granted(
                        &mut **cell.borrow_mut(),
                        from,
                        r.grant,
                        r.grant_offset,
                        &mut scratch[..r.len],
                    )?;
                    fs.write(r.ino, r.offset, &scratch[..r.len])
                        .map_err(fs_err)?
                }
            };
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
            let (from, to) = r.fetch_pair(&mut **cell.borrow_mut(), m.m_source)?;
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
        FS_PUT_BEGIN => {
            let path = path_of(cell, m)?;
            let owner = grantor_of(cell, m, Grantor::from_word(m.payload[2])?)?;
            let ino = puts.begin(fs, &path, owner)?;
            stat_reply(fs, ino)
        }
        FS_PUT_COMMIT => {
            let (ino, owner) = put_of(cell, m)?;
            let ino = puts.commit(fs, ino, owner)?;
            stat_reply(fs, ino)
        }
        FS_PUT_ABORT => {
            let (ino, owner) = put_of(cell, m)?;
            puts.abort(fs, ino, owner)?;
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
            cell.borrow_mut().sendrec(rdisk, &mut msg, RDISK_TIMEOUT)?;
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
            write_granted(&mut **cell.borrow_mut(), client, r.grant, at + done, rest)?;
        }
        total += len;
    }
    Ok(total)
}

/// An `FS_WRITE` for a client that granted the same buffer to RDISK: FS allocates the zones of
/// the whole blocks (`write_extents`), RDISK copies them straight from the client's buffer to
/// the disk, FS writes a last partial block itself, then sets the size (`commit_write`).
/// Returns the bytes written: fewer than asked when the disk filled up.
fn write_direct(
    cell: &IpcCell<'_>,
    fs: &mut Mounted<'_, '_>,
    rdisk: m3ipc::Endpoint,
    r: &DataRequest,
    client: m3ipc::Endpoint,
    disk: GrantId,
    scratch: &mut [u8],
) -> Result<usize> {
    if r.len == 0 {
        return Ok(0);
    }
    let pieces = fs
        .write_extents(r.ino, r.offset, r.len as u64)
        .map_err(fs_err)?;
    let mut done = 0usize;
    for p in &pieces {
        // Whole blocks within the request (write_extents cuts them to it): offsets fit the
        // 1 MiB grant.
        let d = p.device_offset.ok_or(Errno::EDVSIO)?;
        let len = usize::try_from(p.len).map_err(|_| Errno::EDVSIO)?;
        let at =
            usize::try_from(p.file_offset - r.offset).map_err(|_| Errno::EDVSIO)? + r.grant_offset;
        let req = BlockRequest {
            first: d / BLOCK_SIZE as u64,
            count: len / BLOCK_SIZE,
            grant: disk,
            offset: at,
            grantor: Grantor::Client(client),
        };
        let mut msg = req.encode(RD_WRITE);
        let copied = cell
            .borrow_mut()
            .sendrec(rdisk, &mut msg, RDISK_TIMEOUT)
            .and_then(|()| reply_result(&msg));
        if let Err(e) = copied {
            // What RDISK wrote before stays (as a failed write through the cache would leave
            // it); zones allocated past the end go back.
            let _ = fs.abort_write(r.ino);
            return Err(e);
        }
        done += len;
    }
    let whole = r.len - r.len % BLOCK_SIZE;
    if done == whole && whole < r.len {
        let rest = &mut scratch[..r.len - whole];
        read_granted(
            &mut **cell.borrow_mut(),
            client,
            r.grant,
            r.grant_offset + whole,
            rest,
        )?;
        match fs.write(r.ino, r.offset + whole as u64, rest) {
            Ok(n) => done += n,
            Err(FsError::NoSpace) => {}
            Err(e) => return Err(fs_err(e)),
        }
    }
    fs.commit_write(r.ino, r.offset + done as u64)
        .map_err(fs_err)?;
    Ok(done)
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
    // The index of the next entry to look at: put temporaries are passed over, not listed.
    let mut next = start;
    let mut more = false;
    // Bounded: each batch either fills `out` or ends the directory, and `out` holds at most
    // `room` bytes.
    'batches: loop {
        let batch = fs.readdir(ino, next, READDIR_BATCH).map_err(fs_err)?;
        if batch.is_empty() {
            break;
        }
        let last = batch.len() < READDIR_BATCH;
        for e in batch {
            if is_put_temp(&e.name) {
                next += 1;
                continue;
            }
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
            next += 1;
        }
        if last {
            break;
        }
    }
    if !out.is_empty() {
        write_granted(&mut **cell.borrow_mut(), to, grant, 0, &out)?;
    }
    let mut reply = Message::new(OK);
    reply.payload[0] = count as u64;
    reply.payload[1] = out.len() as u64;
    reply.payload[2] = u64::from(more);
    reply.payload[3] = next as u64;
    Ok(reply)
}
