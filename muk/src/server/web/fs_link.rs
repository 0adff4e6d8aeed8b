//! The web server's way to FS: a path buffer granted to FS (READ) and a data buffer granted
//! to FS (WRITE), so that file data comes by grant, as FTP's does. The data buffer is also
//! granted to RDISK (WRITE), whose endpoint FS names (`FS_INFO`): FS then has RDISK copy a
//! read's whole blocks straight from the disk into it (once, as for an m3ftp client), instead
//! of reading them through its cache and copying them twice. That needs the web server to be
//! a system process (FS lets only those name a grantor); if FS refuses, reads go through FS's
//! cache.

use crate::ipc::Ipc;
use crate::storage::dirent::{self, Listed};
use crate::storage::fs::{
    DataRequest, FS_INFO, FS_LOOKUP, FS_READ, FS_READDIR, Grantor, decode_stat,
};
use crate::storage::path::{PATH_BUFFER, PATH_MAX, PathRef};
use crate::storage::reply_result;
use m3ipc::{Access, Endpoint, Errno, GrantId, Handle, Message, Result, Timeout};
use minixfs::Stat;

/// Bytes of the data buffer (one FS read at most).
pub(crate) const DATA_BUFFER: usize = 256 * 1024;
/// Longest wait for one FS request.
const FS_TIMEOUT: Timeout = Timeout::Millis(30_000);
/// Most directory entries an index page lists.
pub(crate) const MAX_LISTED: usize = 10_000;

struct Link {
    fs: Endpoint,
    path: Handle,
    path_grant: GrantId,
    data: Handle,
    data_grant: GrantId,
    /// The data buffer granted to RDISK, while FS takes direct reads.
    disk_grant: Option<GrantId>,
}

/// The link to the FS at a slot, made on demand and re-made when that FS changes.
pub(crate) struct FsLink {
    fs_nr: i32,
    link: Option<Link>,
}

impl FsLink {
    pub(crate) fn new(fs_nr: i32) -> FsLink {
        FsLink { fs_nr, link: None }
    }

    fn link(&mut self, ipc: &mut dyn Ipc) -> Result<&Link> {
        let fs = match ipc.dc().wait4bind(self.fs_nr, Timeout::NoWait) {
            Ok(ep) => ep,
            Err(Errno::EDVSAGAIN) => return Err(Errno::EDVSNODEV),
            Err(e) => return Err(e),
        };
        if self.link.as_ref().is_some_and(|l| l.fs != fs)
            && let Some(old) = self.link.take()
        {
            let _ = ipc.revoke(old.path_grant);
            let _ = ipc.revoke(old.data_grant);
            if let Some(g) = old.disk_grant {
                let _ = ipc.revoke(g);
            }
            let _ = ipc.release_buffer(old.path);
            let _ = ipc.release_buffer(old.data);
        }
        if self.link.is_none() {
            let path = ipc.alloc_buffer(PATH_BUFFER)?;
            let data = match ipc.alloc_buffer(DATA_BUFFER) {
                Ok(d) => d,
                Err(e) => {
                    let _ = ipc.release_buffer(path);
                    return Err(e);
                }
            };
            let grants = ipc
                .grant(path, fs, 0, PATH_BUFFER, Access::READ)
                .and_then(|p| Ok((p, ipc.grant(data, fs, 0, DATA_BUFFER, Access::WRITE)?)));
            match grants {
                Ok((path_grant, data_grant)) => {
                    let disk_grant = disk_grant(ipc, fs, data);
                    self.link = Some(Link {
                        fs,
                        path,
                        path_grant,
                        data,
                        data_grant,
                        disk_grant,
                    });
                }
                Err(e) => {
                    let _ = ipc.release_buffer(path);
                    let _ = ipc.release_buffer(data);
                    return Err(e);
                }
            }
        }
        self.link.as_ref().ok_or(Errno::EDVSNODEV)
    }

    fn call(&mut self, ipc: &mut dyn Ipc, m: &mut Message) -> Result<Message> {
        let fs = self.link(ipc)?.fs;
        match ipc.sendrec(fs, m, FS_TIMEOUT) {
            Ok(()) => {}
            Err(
                Errno::EDVSDEADSRCDST
                | Errno::EDVSDSTDIED
                | Errno::EDVSENDPOINT
                | Errno::EDVSNOTBIND,
            ) => {
                self.link = None;
                return Err(Errno::EDVSNODEV);
            }
            Err(e) => return Err(e),
        }
        reply_result(m)?;
        Ok(*m)
    }

    /// The attributes of `path` (absolute).
    pub(crate) fn lookup(&mut self, ipc: &mut dyn Ipc, path: &str) -> Result<Stat> {
        crate::storage::path::check(path)?;
        if path.len() > PATH_MAX {
            return Err(Errno::EDVSNAMETOOLONG);
        }
        let (buf, grant) = {
            let l = self.link(ipc)?;
            (l.path, l.path_grant)
        };
        ipc.buffer(buf)?.write_at(0, path.as_bytes())?;
        let mut m = Message::new(FS_LOOKUP);
        let [g, len] = PathRef {
            grant,
            len: path.len(),
        }
        .words();
        m.payload[0] = g;
        m.payload[1] = len;
        Ok(decode_stat(&self.call(ipc, &mut m)?))
    }

    /// Read up to `len` (at most [`DATA_BUFFER`]) bytes of `ino` at `offset`, appended to
    /// `out`; how many.
    pub(crate) fn read(
        &mut self,
        ipc: &mut dyn Ipc,
        ino: u32,
        offset: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        let (buf, grant, disk) = {
            let l = self.link(ipc)?;
            (l.data, l.data_grant, l.disk_grant)
        };
        let len = len.min(DATA_BUFFER);
        let mut req = DataRequest {
            ino,
            offset,
            len,
            grant,
            grant_offset: 0,
            grantor: Grantor::Requester,
            disk_grant: None,
        };
        if disk.is_some() {
            // Our own grants, named as a system process names a client's.
            req.grantor = Grantor::Client(ipc.endpoint());
            req.disk_grant = disk;
        }
        let n = match self.call(ipc, &mut req.encode(FS_READ)) {
            Err(Errno::EDVSPERM) if disk.is_some() => {
                // Not a system process: FS reads through its cache from now on.
                if let Some(g) = self.link.as_mut().and_then(|l| l.disk_grant.take()) {
                    let _ = ipc.revoke(g);
                }
                req.grantor = Grantor::Requester;
                req.disk_grant = None;
                self.call(ipc, &mut req.encode(FS_READ))?
            }
            r => r?,
        }
        .payload[0] as usize;
        if n > len {
            return Err(Errno::EDVSIO);
        }
        let at = out.len();
        out.resize(at + n, 0);
        ipc.buffer(buf)?.read_at(0, &mut out[at..])?;
        Ok(n)
    }

    /// The entries of directory `ino` (at most [`MAX_LISTED`]; `.` and `..` left out).
    pub(crate) fn list(&mut self, ipc: &mut dyn Ipc, ino: u32) -> Result<Vec<Listed>> {
        let mut all = Vec::new();
        let mut index = 0u64;
        for _ in 0..MAX_LISTED {
            let (buf, grant) = {
                let l = self.link(ipc)?;
                (l.data, l.data_grant)
            };
            let mut m = Message::new(FS_READDIR);
            m.payload[0] = u64::from(ino);
            m.payload[1] = index;
            m.payload[2] = grant.0;
            m.payload[3] = DATA_BUFFER as u64;
            m.payload[4] = Grantor::Requester.word();
            let got = self.call(ipc, &mut m)?;
            let count = usize::try_from(got.payload[0]).map_err(|_| Errno::EDVSIO)?;
            let bytes = usize::try_from(got.payload[1])
                .ok()
                .filter(|&b| b <= DATA_BUFFER)
                .ok_or(Errno::EDVSIO)?;
            let mut raw = vec![0u8; bytes];
            ipc.buffer(buf)?.read_at(0, &mut raw)?;
            all.extend(
                dirent::decode(&raw, count)?
                    .into_iter()
                    .filter(|e| e.name != "." && e.name != ".."),
            );
            if got.payload[2] == 0 || all.len() >= MAX_LISTED || got.payload[3] <= index {
                break;
            }
            index = got.payload[3];
        }
        all.truncate(MAX_LISTED);
        Ok(all)
    }
}

/// The data buffer `data` granted to the RDISK below `fs` (WRITE), if FS names one and the
/// grant can be made; `None` leaves reads to FS's cache.
fn disk_grant(ipc: &mut dyn Ipc, fs: Endpoint, data: Handle) -> Option<GrantId> {
    let mut m = Message::new(FS_INFO);
    ipc.sendrec(fs, &mut m, FS_TIMEOUT).ok()?;
    reply_result(&m).ok()?;
    // payload[4]: RDISK's endpoint in the low half, 1 in the high half once FS has mounted.
    let w = m.payload[4];
    if w >> 32 != 1 {
        return None;
    }
    let rdisk = w as u32 as Endpoint;
    ipc.grant(data, rdisk, 0, DATA_BUFFER, Access::WRITE).ok()
}
