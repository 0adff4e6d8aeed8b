//! FTP (slot 14, `m3ftpd`): file transfer for clients outside the unikernel (`m3ftp`).
//!
//! A client allocates a path buffer and a data buffer of up to 1 MiB in the DC's pool. It
//! grants the path buffer to FTP (READ) and the data buffer to FS (READ and WRITE; FS's
//! endpoint comes from [`FTP_HELLO`]); every request names both grants in an [`FtpRequest`].
//! FTP turns a request into FS requests that name the client's data grant, so FS moves the
//! bytes straight between the client's buffer and the file system: no copy in FTP, no bulk
//! data in any message. At most 1 MiB a request: a large file takes one request per chunk.
//! Errors are FS's (`EDVSNOENT`, `EDVSNOSPC`, `EDVSNAMETOOLONG`, ...), those of the grants,
//! and `EDVSNODEV` when FS cannot be reached.

use super::path::PathRef;
use m3ipc::{GrantId, Message, Result};

/// Read part of a file. Request: path, data grant, `offset` = file offset, `len` = most bytes.
/// Reply: `payload[0]` = bytes read into the data grant (0 at the end), `[1]` = the file's
/// size.
pub const FTP_GET: i32 = 0x0601;
/// Write part of a file, atomically: a put writes a temporary file next to the target and
/// renames it over the target after the last chunk ([`super::fs::FS_PUT_BEGIN`]), so the
/// target is the old file until the put is complete, and a failed put changes nothing.
/// Request: path, data grant, `offset` = file offset, `len` = bytes, `flags`
/// ([`PUT_FIRST`]: begin the put; [`PUT_LAST`]: the last chunk: replace the target, then
/// sync; [`PUT_ABORT`]: abandon the put, nothing else), and for every chunk after the first
/// the put's handle ([`FtpRequest::handle`]). Reply: `payload[0]` = bytes written, `[1]` = the
/// handle. Any error ends the put: its temporary is removed and the target is untouched.
pub const FTP_PUT: i32 = 0x0602;
/// List a directory into the data grant as [`super::dirent`] entries. Request: path, data
/// grant, `offset` = index of the first entry, `len` = bytes available. Reply: `payload[0]` =
/// entries, `[1]` = bytes, `[2]` = 1 if more follow, `[3]` = the index to ask for next (puts'
/// temporary files are not listed: see [`super::fs::FS_READDIR`]).
pub const FTP_LS: i32 = 0x0603;
/// Remove a file or an empty directory, then sync. Request: path. Reply: empty.
pub const FTP_RM: i32 = 0x0604;
/// Make a directory, then sync. Request: path. Reply: empty.
pub const FTP_MKDIR: i32 = 0x0605;
/// A path's attributes. Request: path. Reply: a stat ([`super::fs::encode_stat`]).
pub const FTP_STAT: i32 = 0x0606;
/// Sync the file system. Request, reply: empty.
pub const FTP_SYNC: i32 = 0x0607;
/// The endpoints the client grants its data buffer to. Request: empty. Reply: `payload[0]` =
/// FS's endpoint (low 32 bits), `payload[1]` = RDISK's endpoint (low half; high half 1, or the
/// whole word 0 while FS has no disk); `EDVSNODEV` when FS is not bound.
pub const FTP_HELLO: i32 = 0x0608;

/// [`FTP_PUT`] flag: the first chunk; begin the put.
pub const PUT_FIRST: u64 = 1;
/// [`FTP_PUT`] flag: the last chunk; replace the target with the put file, then sync.
pub const PUT_LAST: u64 = 2;
/// [`FTP_PUT`] flag: abandon the put named by the handle (the client cannot go on, e.g. its
/// local file failed); no data moves.
pub const PUT_ABORT: u64 = 4;
/// Flag of any request: the path is the one of this client's previous request, so FTP may use
/// its own copy instead of reading the client's path buffer again. Reading it is a copy from
/// the client's grant, which for a client on another node is a round trip over the link, once
/// per chunk of a large GET or PUT. FTP keeps the path of the last client it served; for any
/// other client (or a client whose endpoint changed) it reads the path as without the flag,
/// so the flag never changes what a request means.
pub const SAME_PATH: u64 = 8;

/// The arguments of every FTP request: `payload[0]`, `[1]` = the path ([`PathRef`]), `[2]` =
/// the data grant (issued to FS), `[3]` = offset, `[4]` = length, `[5]` = flags (low half)
/// and a put's handle (high half), `[6]` = optionally (0: none) a grant of the same buffer to
/// RDISK, with which a GET's blocks go from the disk straight into the client's buffer and a
/// PUT's from the client's buffer to the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FtpRequest {
    /// The path.
    pub path: PathRef,
    /// The client's data grant to FS.
    pub data: GrantId,
    /// File offset (GET, PUT) or first entry (LS).
    pub offset: u64,
    /// Bytes to move (at most 1 MiB).
    pub len: usize,
    /// Flags ([`PUT_FIRST`], [`PUT_LAST`], [`PUT_ABORT`], [`SAME_PATH`]).
    pub flags: u64,
    /// A put's handle, from the reply to its first chunk (0: none).
    pub handle: u32,
    /// The client's grant of the data buffer to RDISK (WRITE), if it made one.
    pub disk_data: Option<GrantId>,
}

impl FtpRequest {
    /// The request message of type `m_type`.
    pub fn encode(&self, m_type: i32) -> Message {
        let mut m = Message::new(m_type);
        let [g, l] = self.path.words();
        m.payload[0] = g;
        m.payload[1] = l;
        m.payload[2] = self.data.0;
        m.payload[3] = self.offset;
        m.payload[4] = self.len as u64;
        m.payload[5] = self.flags | u64::from(self.handle) << 32;
        m.payload[6] = self.disk_data.map_or(0, |g| g.0);
        m
    }

    /// Decode and check (a path too long is `EDVSNAMETOOLONG`, a length above 1 MiB or
    /// unknown flags `EDVSBADVALUE`).
    pub fn decode(m: &Message) -> Result<FtpRequest> {
        let (flags, handle) = super::unpack(m.payload[5]);
        let flags = u64::from(flags);
        if flags & !(PUT_FIRST | PUT_LAST | PUT_ABORT | SAME_PATH) != 0 {
            return Err(m3ipc::Errno::EDVSBADVALUE);
        }
        Ok(FtpRequest {
            path: PathRef::from_words(m.payload[0], m.payload[1], false)?,
            data: GrantId(m.payload[2]),
            offset: m.payload[3],
            len: super::word_len(m.payload[4], super::MAX_CHUNK)?,
            flags,
            handle,
            disk_data: (m.payload[6] != 0).then_some(GrantId(m.payload[6])),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use m3ipc::Errno;

    #[test]
    fn requests_round_trip_and_are_checked() {
        let r = FtpRequest {
            path: PathRef {
                grant: GrantId(9),
                len: 12,
            },
            data: GrantId(10),
            offset: 5 << 20,
            len: 1 << 20,
            flags: PUT_FIRST | PUT_LAST,
            handle: u32::MAX,
            disk_data: Some(GrantId(1 << 63)),
        };
        assert_eq!(FtpRequest::decode(&r.encode(FTP_PUT)), Ok(r));
        let mut m = r.encode(FTP_PUT);
        m.payload[5] = 16;
        assert_eq!(FtpRequest::decode(&m), Err(Errno::EDVSBADVALUE));
        m.payload[5] = SAME_PATH;
        assert_eq!(FtpRequest::decode(&m).map(|r| r.flags), Ok(SAME_PATH));
        m.payload[5] = 0;
        m.payload[1] = 1 << 40;
        assert_eq!(FtpRequest::decode(&m), Err(Errno::EDVSNAMETOOLONG));
    }
}
