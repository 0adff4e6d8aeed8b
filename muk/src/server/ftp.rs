//! FTP (slot 14, `m3ftpd`): file transfer for outside clients (`m3ftp`), over FS.
//!
//! A client grants FTP its path buffer and FS its data buffer ([`crate::storage::ftp`]). FTP
//! copies the path into its own path buffer (granted to FS; a GET's later chunks reuse the path
//! FTP read for the first, [`SAME_PATH`]) and asks FS, naming the client's
//! data grant: FS reads a GET's chunk straight into the client's buffer and writes a PUT's
//! straight from it, so the bytes never pass through FTP. A client that also granted its
//! buffer to RDISK gets a GET's whole blocks copied by RDISK from the disk into its buffer, and
//! a PUT's whole blocks copied by RDISK from its buffer to the disk (FS allocates their zones).
//! Every chunk is one request of the client, at most 1 MiB. A put is atomic: FS writes it to a
//! temporary file and renames that over the target after the last chunk; any failure removes
//! the temporary and leaves the target as it was ([`FTP_PUT`]). When FS is
//! not there (not bound, or restarted), requests are `EDVSNODEV` until it is back; FTP grants
//! its path buffer to the new FS then. A PUT chunk that FS
//! writes only in part (the disk filled up) is `EDVSNOSPC`.

use crate::ipc::Ipc;
use crate::protocol::OK;
use crate::server::{Handler, Server, serve_requests};
use crate::storage::fs::{
    DataRequest, FS_INFO, FS_LOOKUP, FS_MKDIR, FS_PUT_ABORT, FS_PUT_BEGIN, FS_PUT_COMMIT,
    FS_PUT_WRITE, FS_READ, FS_READDIR, FS_RMDIR, FS_SYNC, FS_UNLINK, Grantor, decode_stat,
};
use crate::storage::ftp::{
    FTP_GET, FTP_HELLO, FTP_LS, FTP_MKDIR, FTP_PUT, FTP_RM, FTP_STAT, FTP_SYNC, FtpRequest,
    PUT_ABORT, PUT_FIRST, PUT_LAST, SAME_PATH,
};
use crate::storage::path::{PATH_BUFFER, PathRef};
use crate::storage::{MAX_CHUNK, reply_result};
use m3ipc::{Access, Endpoint, Errno, GrantId, Handle, Message, Result, Timeout};
use minixfs::Stat;

/// Longest FTP waits for one FS request.
pub const FS_TIMEOUT: Timeout = Timeout::Millis(30_000);

/// FTP's path buffer, granted to one FS endpoint.
#[derive(Debug)]
struct Link {
    fs: Endpoint,
    path: Handle,
    path_grant: GrantId,
}

/// The FTP server.
#[derive(Debug)]
pub struct Ftp {
    fs_nr: i32,
    link: Option<Link>,
    /// The last path read from the path buffer of each of the last [`RECENT_CLIENTS`]
    /// clients, most recent first ([`SAME_PATH`]).
    recent_paths: Vec<(Endpoint, String)>,
}

/// Clients whose last path FTP keeps: a client fetching over two lanes is two, and a few
/// clients at once each keep theirs.
const RECENT_CLIENTS: usize = 16;

impl Ftp {
    /// FTP over the FS at slot `fs_nr`.
    pub fn new(fs_nr: i32) -> Ftp {
        Ftp {
            fs_nr,
            link: None,
            recent_paths: Vec::new(),
        }
    }

    /// The request's path: FTP's copy when the client says it is the one of its previous
    /// request and FTP has that one, else read from the client's path buffer (and kept).
    fn path(&mut self, ipc: &mut dyn Ipc, client: Endpoint, r: &FtpRequest) -> Result<String> {
        let known = self.recent_paths.iter().position(|(who, _)| *who == client);
        if r.flags & SAME_PATH != 0
            && let Some(i) = known
        {
            return Ok(self.recent_paths[i].1.clone());
        }
        let path = r.path.fetch(ipc, client)?;
        if let Some(i) = known {
            self.recent_paths.remove(i);
        }
        self.recent_paths.truncate(RECENT_CLIENTS - 1);
        self.recent_paths.insert(0, (client, path.clone()));
        Ok(path)
    }

    /// The link to the FS bound now: made (or re-made for a new FS) on demand.
    fn link(&mut self, ipc: &mut dyn Ipc) -> Result<&Link> {
        // A no-wait wait4bind reads one slot word (getprocinfo would also scan the pool).
        let fs = match ipc.dc().wait4bind(self.fs_nr, Timeout::NoWait) {
            Ok(ep) => ep,
            Err(Errno::EDVSAGAIN) => return Err(Errno::EDVSNODEV),
            Err(e) => return Err(e),
        };
        let stale = self.link.as_ref().is_some_and(|l| l.fs != fs);
        if stale && let Some(old) = self.link.take() {
            // The old grants name an FS that is gone; the buffers are ours to reuse.
            let _ = ipc.revoke(old.path_grant);
            let _ = ipc.release_buffer(old.path);
        }
        if self.link.is_none() {
            self.link = Some(make_link(ipc, fs)?);
        }
        self.link.as_ref().ok_or(Errno::EDVSNODEV)
    }

    fn get(&mut self, ipc: &mut dyn Ipc, client: Endpoint, r: &FtpRequest) -> Result<Message> {
        let st = self.lookup(ipc, client, r)?;
        if st.is_dir() {
            return Err(Errno::EDVSISDIR);
        }
        let mut n = 0usize;
        if r.len > 0 && r.offset < st.size {
            let fs = self.link(ipc)?.fs;
            let req = DataRequest {
                ino: st.ino,
                offset: r.offset,
                len: r.len,
                grant: r.data,
                grant_offset: 0,
                grantor: Grantor::Client(client),
                disk_grant: r.disk_data,
            };
            n = fs_call(ipc, fs, &mut req.encode(FS_READ))?.payload[0] as usize;
            if n > r.len {
                return Err(Errno::EDVSIO);
            }
        }
        let mut reply = Message::new(OK);
        reply.payload[0] = n as u64;
        reply.payload[1] = st.size;
        Ok(reply)
    }

    /// One chunk of an atomic put ([`FTP_PUT`]): the first begins it (FS makes the temporary),
    /// each writes into the temporary, the last has FS rename it over the target. Any error
    /// ends the put: FS removes the temporary (asked here; if FS is gone, it removes the
    /// temporary at its next mount).
    fn put(&mut self, ipc: &mut dyn Ipc, client: Endpoint, r: &FtpRequest) -> Result<Message> {
        let handle = if r.flags & PUT_FIRST != 0 {
            let mut m = self.path_request(ipc, client, r, FS_PUT_BEGIN)?;
            m.payload[2] = Grantor::Client(client).word();
            let fs = self.link(ipc)?.fs;
            decode_stat(&fs_call(ipc, fs, &mut m)?).ino
        } else {
            r.handle
        };
        if handle == 0 {
            return Err(Errno::EDVSBADVALUE);
        }
        if r.flags & PUT_ABORT != 0 {
            self.end_put(ipc, client, handle, FS_PUT_ABORT)?;
            return Ok(Message::new(OK));
        }
        match self.put_chunk(ipc, client, r, handle) {
            Ok(n) => {
                let mut reply = Message::new(OK);
                reply.payload[0] = n as u64;
                reply.payload[1] = u64::from(handle);
                Ok(reply)
            }
            Err(e) => {
                // The put is over; the handle may be unknown to FS by now (a failed commit
                // removes the temporary itself), which is no error here.
                let _ = self.end_put(ipc, client, handle, FS_PUT_ABORT);
                Err(e)
            }
        }
    }

    /// Write a put's chunk into its temporary and, for the last one, commit and sync.
    fn put_chunk(
        &mut self,
        ipc: &mut dyn Ipc,
        client: Endpoint,
        r: &FtpRequest,
        handle: u32,
    ) -> Result<usize> {
        let mut n = 0usize;
        if r.len > 0 {
            let fs = self.link(ipc)?.fs;
            let req = DataRequest {
                ino: handle,
                offset: r.offset,
                len: r.len,
                grant: r.data,
                grant_offset: 0,
                grantor: Grantor::Client(client),
                disk_grant: r.disk_data,
            };
            n = fs_call(ipc, fs, &mut req.encode(FS_PUT_WRITE))?.payload[0] as usize;
            // FS writes what fits and says how much: a short write means the disk is full.
            if n < r.len {
                return Err(Errno::EDVSNOSPC);
            }
        }
        if r.flags & PUT_LAST != 0 {
            self.end_put(ipc, client, handle, FS_PUT_COMMIT)?;
            self.sync(ipc)?;
        }
        Ok(n)
    }

    /// Commit or abort (`op`) the client's put `handle`.
    fn end_put(&mut self, ipc: &mut dyn Ipc, client: Endpoint, handle: u32, op: i32) -> Result<()> {
        let fs = self.link(ipc)?.fs;
        let mut m = Message::new(op);
        m.payload[0] = u64::from(handle);
        m.payload[1] = Grantor::Client(client).word();
        fs_call(ipc, fs, &mut m).map(drop)
    }

    fn ls(&mut self, ipc: &mut dyn Ipc, client: Endpoint, r: &FtpRequest) -> Result<Message> {
        let st = self.lookup(ipc, client, r)?;
        if !st.is_dir() {
            return Err(Errno::EDVSNOTDIR);
        }
        let fs = self.link(ipc)?.fs;
        let mut m = Message::new(FS_READDIR);
        m.payload[0] = u64::from(st.ino);
        m.payload[1] = r.offset;
        m.payload[2] = r.data.0;
        m.payload[3] = r.len.min(MAX_CHUNK) as u64;
        m.payload[4] = Grantor::Client(client).word();
        let got = fs_call(ipc, fs, &mut m)?;
        let bytes = usize::try_from(got.payload[1]).map_err(|_| Errno::EDVSIO)?;
        if bytes > r.len {
            return Err(Errno::EDVSIO);
        }
        let mut reply = Message::new(OK);
        reply.payload[..4].copy_from_slice(&got.payload[..4]);
        Ok(reply)
    }

    fn rm(&mut self, ipc: &mut dyn Ipc, client: Endpoint, r: &FtpRequest) -> Result<Message> {
        let st = self.lookup(ipc, client, r)?;
        let op = if st.is_dir() { FS_RMDIR } else { FS_UNLINK };
        let mut m = self.path_request(ipc, client, r, op)?;
        let fs = self.link(ipc)?.fs;
        fs_call(ipc, fs, &mut m)?;
        self.sync(ipc)?;
        Ok(Message::new(OK))
    }

    fn mkdir(&mut self, ipc: &mut dyn Ipc, client: Endpoint, r: &FtpRequest) -> Result<Message> {
        let mut m = self.path_request(ipc, client, r, FS_MKDIR)?;
        let fs = self.link(ipc)?.fs;
        fs_call(ipc, fs, &mut m)?;
        self.sync(ipc)?;
        Ok(Message::new(OK))
    }

    fn sync(&mut self, ipc: &mut dyn Ipc) -> Result<()> {
        let fs = self.link(ipc)?.fs;
        fs_call(ipc, fs, &mut Message::new(FS_SYNC)).map(drop)
    }

    /// The client's path copied into our path buffer, as an FS request of type `m_type`.
    fn path_request(
        &mut self,
        ipc: &mut dyn Ipc,
        client: Endpoint,
        r: &FtpRequest,
        m_type: i32,
    ) -> Result<Message> {
        let path = self.path(ipc, client, r)?;
        let l = self.link(ipc)?;
        let (buf, grant) = (l.path, l.path_grant);
        ipc.buffer(buf)?.write_at(0, path.as_bytes())?;
        let mut m = Message::new(m_type);
        let [g, len] = PathRef {
            grant,
            len: path.len(),
        }
        .words();
        m.payload[0] = g;
        m.payload[1] = len;
        Ok(m)
    }

    fn lookup(&mut self, ipc: &mut dyn Ipc, client: Endpoint, r: &FtpRequest) -> Result<Stat> {
        let mut m = self.path_request(ipc, client, r, FS_LOOKUP)?;
        let fs = self.link(ipc)?.fs;
        Ok(decode_stat(&fs_call(ipc, fs, &mut m)?))
    }
}

fn make_link(ipc: &mut dyn Ipc, fs: Endpoint) -> Result<Link> {
    let path = ipc.alloc_buffer(PATH_BUFFER)?;
    match ipc.grant(path, fs, 0, PATH_BUFFER, Access::READ) {
        Ok(path_grant) => Ok(Link {
            fs,
            path,
            path_grant,
        }),
        Err(e) => {
            let _ = ipc.release_buffer(path);
            Err(e)
        }
    }
}

/// One request to FS; its error reply as `Err`. An FS that is gone is `EDVSNODEV`.
fn fs_call(ipc: &mut dyn Ipc, fs: Endpoint, m: &mut Message) -> Result<Message> {
    match ipc.sendrec(fs, m, FS_TIMEOUT) {
        Ok(()) => {}
        Err(
            Errno::EDVSDEADSRCDST | Errno::EDVSDSTDIED | Errno::EDVSENDPOINT | Errno::EDVSNOTBIND,
        ) => {
            return Err(Errno::EDVSNODEV);
        }
        Err(e) => return Err(e),
    }
    reply_result(m)?;
    Ok(*m)
}

impl Handler for Ftp {
    fn handle(&mut self, ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        let client = m.m_source;
        match m.m_type {
            FTP_GET | FTP_PUT | FTP_LS | FTP_RM | FTP_MKDIR | FTP_STAT => {
                let r = FtpRequest::decode(m)?;
                match m.m_type {
                    FTP_GET => self.get(ipc, client, &r),
                    FTP_PUT => self.put(ipc, client, &r),
                    FTP_LS => self.ls(ipc, client, &r),
                    FTP_RM => self.rm(ipc, client, &r),
                    FTP_MKDIR => self.mkdir(ipc, client, &r),
                    _ => {
                        let st = self.lookup(ipc, client, &r)?;
                        Ok(crate::storage::fs::encode_stat(&st))
                    }
                }
            }
            FTP_SYNC => self.sync(ipc).map(|()| Message::new(OK)),
            FTP_HELLO => {
                let fs = self.link(ipc)?.fs;
                // FS_INFO names RDISK once FS has mounted its disk.
                let rdisk =
                    fs_call(ipc, fs, &mut Message::new(FS_INFO)).map_or(0, |m| m.payload[4]);
                let mut reply = Message::new(OK);
                reply.payload[0] = u64::from(fs as u32);
                reply.payload[1] = rdisk;
                Ok(reply)
            }
            _ => Err(Errno::EDVSBADREQUEST),
        }
    }
}

impl Server for Ftp {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> Result<()> {
        serve_requests(self, ipc)
    }

    fn layer(&self) -> u8 {
        2
    }
}
