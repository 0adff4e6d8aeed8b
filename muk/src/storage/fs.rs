//! FS (slot 1): a MINIX v3 file system (`minixfs`) over RDISK.
//!
//! Paths travel by [`PathRef`](super::path::PathRef) in `payload[0..2]`; file data by a grant of
//! the requester's pool buffer named in a [`DataRequest`]. File-system errors are their POSIX
//! errno negated, which is the matching EDVS code ([`fs_errno`]): `EDVSNOENT`, `EDVSEXIST`,
//! `EDVSNOTDIR`, `EDVSISDIR`, `EDVSNOTEMPTY`, `EDVSNAMETOOLONG`, `EDVSNOSPC`, `EDVSFBIG`,
//! `EDVSINVAL`, `EDVSBUSY`, `EDVSIO` (a corrupt image or a failing device). Before the file
//! system is mounted (RDISK not there yet, or an image that does not mount) every request is
//! `EDVSNODEV`.

pub use super::Grantor;
use super::{pack, unpack};
use m3ipc::{Errno, GrantId, Message, Result};
use minixfs::{FsError, Ino, Stat};

/// Look a path up. Request: path. Reply: a [`Stat`] ([`encode_stat`]).
pub const FS_LOOKUP: i32 = 0x0501;
/// Open a regular file, creating or truncating it as `payload[2]`'s [`OPEN_CREATE`] and
/// [`OPEN_TRUNC`] bits say ([`OPEN_EXCL`]: fail with `EDVSEXIST` if it exists). Request: path,
/// flags. Reply: its [`Stat`]; a directory is `EDVSISDIR`.
pub const FS_OPEN: i32 = 0x0502;
/// Create a regular file (`EDVSEXIST` if the name is taken). Request: path. Reply: its [`Stat`].
pub const FS_CREATE: i32 = 0x0503;
/// Read file data into a granted range. Request: a [`DataRequest`] (grant with WRITE). Reply:
/// `payload[0]` = bytes read (short at the end of the file).
pub const FS_READ: i32 = 0x0504;
/// Write file data from a granted range. Request: a [`DataRequest`] (grant with READ). Reply:
/// `payload[0]` = bytes written.
pub const FS_WRITE: i32 = 0x0505;
/// Set a file's length (grow with zeros or shrink). Request: `payload[0]` = inode,
/// `payload[1]` = length. Reply: empty.
pub const FS_TRUNCATE: i32 = 0x0506;
/// Remove a file (not a directory: `EDVSISDIR`). Request: path. Reply: empty.
pub const FS_UNLINK: i32 = 0x0507;
/// Make a directory. Request: path. Reply: its [`Stat`].
pub const FS_MKDIR: i32 = 0x0508;
/// Remove an empty directory. Request: path. Reply: empty.
pub const FS_RMDIR: i32 = 0x0509;
/// List a directory into a granted range, as [`super::dirent`] entries. Request:
/// `payload[0]` = inode, `[1]` = index of the first entry (`.` and `..` count), `[2]` = grant
/// (WRITE), `[3]` = bytes available in it, `[4]` = whose grant ([`Grantor`]). Reply:
/// `payload[0]` = entries, `[1]` = bytes, `[2]` = 1 if more entries follow, `[3]` = the index
/// to ask for next. A put's temporary files ([`super::path::is_put_temp`]) are not listed
/// (they count in the index, not in the entries).
pub const FS_READDIR: i32 = 0x050a;
/// An inode's attributes. Request: `payload[0]` = inode. Reply: its [`Stat`].
pub const FS_STAT: i32 = 0x050b;
/// Rename. Request: a path pair `FROM\0TO` ([`PathRef::read_pair`](super::path::PathRef::read_pair)).
/// Reply: empty.
pub const FS_RENAME: i32 = 0x050c;
/// Write every dirty block and the superblock back and flush RDISK. Request, reply: empty.
pub const FS_SYNC: i32 = 0x050d;
/// The file system's size and free space. Request: empty. Reply: `payload[0]` = blocks,
/// `[1]` = free blocks, `[2]` = inodes (low half) and free inodes (high half), `[3]` = largest
/// file size, `[4]` = RDISK's endpoint (low half; high half 1).
pub const FS_INFO: i32 = 0x050e;

/// Begin an atomic put: create a temporary file in the directory of the target path, under a
/// reserved name no request can name ([`super::path::PUT_TEMP_PREFIX`]), for the writer
/// `payload[2]` names ([`Grantor`]: the requester, or the client FTP acts for). Request: the
/// target's path, owner. Reply: the temporary's [`Stat`]; its inode is the put's handle. The
/// target is not touched: `EDVSISDIR` if it is a directory, `EDVSNOENT` if its directory does
/// not exist, `EDVSAGAIN` when [`MAX_PUTS`] puts are under way, or [`MAX_PUTS_PER_WRITER`] of
/// this writer's.
///
/// The temporary lives until [`FS_PUT_COMMIT`] or [`FS_PUT_ABORT`], or until its writer's
/// endpoint is gone (unbound, or its process died): FS checks that at least every
/// [`PUT_REAP_MS`] while puts are under way and removes the temporaries of writers that are
/// gone. At mount FS removes every temporary it finds (left by an FS that stopped mid-put).
pub const FS_PUT_BEGIN: i32 = 0x050f;
/// Write to a put's temporary: an [`FS_WRITE`] whose inode must be the handle of a put under
/// way of the request's grantor (else `EDVSBADVALUE`). Reply: `payload[0]` = bytes written.
pub const FS_PUT_WRITE: i32 = 0x0510;
/// Finish a put: rename the temporary over the target in one step (an old file there is
/// freed). Request: `payload[0]` = the handle, `[1]` = the writer ([`Grantor`]). Reply: the
/// file's [`Stat`]. On failure the temporary is removed and the target is untouched.
pub const FS_PUT_COMMIT: i32 = 0x0511;
/// Abandon a put: remove its temporary. Request, reply: as [`FS_PUT_COMMIT`]'s (reply empty).
pub const FS_PUT_ABORT: i32 = 0x0512;

/// Most puts under way at once in one FS.
pub const MAX_PUTS: usize = 64;
/// Most puts under way at once for one writer (so one cannot take them all).
pub const MAX_PUTS_PER_WRITER: usize = 8;
/// Longest time, in milliseconds, between two checks of whether the writers of the puts under
/// way are still there.
pub const PUT_REAP_MS: u32 = 250;

/// [`FS_OPEN`] flag: create the file if it does not exist.
pub const OPEN_CREATE: u64 = 1;
/// [`FS_OPEN`] flag: truncate it to 0 bytes.
pub const OPEN_TRUNC: u64 = 2;
/// [`FS_OPEN`] flag: with [`OPEN_CREATE`], fail if it exists.
pub const OPEN_EXCL: u64 = 4;

/// Permission bits of files and directories FS creates.
pub const FILE_MODE: u16 = 0o644;
/// Permission bits of directories FS creates.
pub const DIR_MODE: u16 = 0o755;

/// The EDVS code of a file-system error: its errno negated (a code outside the table is
/// `EDVSIO`).
pub fn fs_errno(e: &FsError) -> Errno {
    Errno::from_code(-e.errno()).unwrap_or(Errno::EDVSIO)
}

/// The arguments of [`FS_READ`] and [`FS_WRITE`]: `payload[0]` = inode, `[1]` = file offset,
/// `[2]` = length (at most 1 MiB), `[3]` = a grant to FS, `[4]` = offset in the grant's
/// range, `[5]` = whose grant it is ([`Grantor`]), `[6]` = optionally (0: none) the same
/// grantor's grant of the same buffer to RDISK ([`DataRequest::disk_grant`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRequest {
    /// The file.
    pub ino: Ino,
    /// Offset in the file.
    pub offset: u64,
    /// Bytes to move.
    pub len: usize,
    /// The grant.
    pub grant: GrantId,
    /// Offset in the grant's range.
    pub grant_offset: usize,
    /// Who issued the grant.
    pub grantor: Grantor,
    /// For an [`FS_READ`] for a client ([`Grantor::Client`]): the client's grant to RDISK
    /// (WRITE) of the same buffer, both grants starting at the buffer's first byte. FS then has
    /// RDISK copy the file's whole blocks straight into the client's buffer (the zones come from
    /// `minixfs`'s extents, written back first), so the bytes cross memory once on their way
    /// from the disk to the client; the rest (holes, a last partial block) FS writes itself.
    pub disk_grant: Option<GrantId>,
}

impl DataRequest {
    /// The request message of type `m_type`.
    pub fn encode(&self, m_type: i32) -> Message {
        let mut m = Message::new(m_type);
        m.payload[0] = u64::from(self.ino);
        m.payload[1] = self.offset;
        m.payload[2] = self.len as u64;
        m.payload[3] = self.grant.0;
        m.payload[4] = self.grant_offset as u64;
        m.payload[5] = self.grantor.word();
        m.payload[6] = self.disk_grant.map_or(0, |g| g.0);
        m
    }

    /// Decode and check: an inode that does not fit 32 bits or a length or grant offset above
    /// 1 MiB is `EDVSBADVALUE`.
    pub fn decode(m: &Message) -> Result<DataRequest> {
        Ok(DataRequest {
            ino: u32::try_from(m.payload[0]).map_err(|_| Errno::EDVSBADVALUE)?,
            offset: m.payload[1],
            len: super::word_len(m.payload[2], super::MAX_CHUNK)?,
            grant: GrantId(m.payload[3]),
            grant_offset: super::word_len(m.payload[4], super::MAX_CHUNK)?,
            grantor: Grantor::from_word(m.payload[5])?,
            disk_grant: (m.payload[6] != 0).then_some(GrantId(m.payload[6])),
        })
    }
}

/// A [`Stat`] as a reply: `payload[0]` = inode (low half), mode and link count (high half,
/// mode low), `[1]` = size, `[2]` = uid, gid (16 bits each), `[3]` = mtime (low), atime
/// (high), `[4]` = ctime.
pub fn encode_stat(s: &Stat) -> Message {
    let mut m = Message::new(crate::protocol::OK);
    m.payload[0] = pack(s.ino, u32::from(s.mode) | u32::from(s.nlinks) << 16);
    m.payload[1] = s.size;
    m.payload[2] = u64::from(s.uid) | u64::from(s.gid) << 16;
    m.payload[3] = pack(s.mtime, s.atime);
    m.payload[4] = u64::from(s.ctime);
    m
}

/// The [`Stat`] of a reply made by [`encode_stat`].
pub fn decode_stat(m: &Message) -> Stat {
    let (ino, mode_links) = unpack(m.payload[0]);
    let (mtime, atime) = unpack(m.payload[3]);
    Stat {
        ino,
        mode: mode_links as u16,
        nlinks: (mode_links >> 16) as u16,
        uid: m.payload[2] as u16,
        gid: (m.payload[2] >> 16) as u16,
        size: m.payload[1],
        mtime,
        atime,
        ctime: m.payload[4] as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_data_requests_round_trip() {
        let s = Stat {
            ino: 77,
            mode: 0o100_644,
            nlinks: 3,
            uid: 1000,
            gid: 65535,
            size: 1 << 40,
            mtime: 5,
            atime: u32::MAX,
            ctime: 9,
        };
        assert_eq!(decode_stat(&encode_stat(&s)), s);
        let r = DataRequest {
            ino: 4,
            offset: u64::MAX,
            len: 1 << 20,
            grant: GrantId(3),
            grant_offset: 17,
            grantor: Grantor::Client(-5),
            disk_grant: Some(GrantId(1 << 63 | 2)),
        };
        assert_eq!(DataRequest::decode(&r.encode(FS_READ)), Ok(r));
        let mut m = r.encode(FS_READ);
        m.payload[2] = (1 << 20) + 1;
        assert_eq!(DataRequest::decode(&m), Err(Errno::EDVSBADVALUE));
        m.payload[2] = 1;
        m.payload[0] = 1 << 32;
        assert_eq!(DataRequest::decode(&m), Err(Errno::EDVSBADVALUE));
        m.payload[0] = 1;
        m.payload[5] = 2 << 32;
        assert_eq!(DataRequest::decode(&m), Err(Errno::EDVSBADVALUE));
        assert_eq!(
            Grantor::from_word(Grantor::Requester.word()),
            Ok(Grantor::Requester)
        );
    }

    #[test]
    fn fs_errors_map_to_edvs_codes() {
        assert_eq!(fs_errno(&FsError::NotFound), Errno::EDVSNOENT);
        assert_eq!(fs_errno(&FsError::NoSpace), Errno::EDVSNOSPC);
        assert_eq!(fs_errno(&FsError::NoInodes), Errno::EDVSNOSPC);
        assert_eq!(fs_errno(&FsError::NameTooLong), Errno::EDVSNAMETOOLONG);
        assert_eq!(fs_errno(&FsError::Corrupt("x".into())), Errno::EDVSIO);
        assert_eq!(fs_errno(&FsError::Busy), Errno::EDVSBUSY);
    }
}
