//! The `m3ftp` client as a library: talk to FTP (`m3ftpd`, slot 14) from a process outside
//! the unikernel.
//!
//! [`FtpClient::connect`] opens the DC, binds a free user slot, waits (bounded) for FTP to be
//! bound, allocates a path buffer and a 1 MiB data buffer in the DC's pool, grants the path
//! buffer to FTP and the data buffer to FS and RDISK (whose endpoints FTP names): FS reads and
//! writes the client's chunks in place, and RDISK copies a GET's or a PUT's whole blocks
//! between the disk and the buffer. Every transfer then moves at most 1 MiB a request through the data buffer; nothing but
//! grant ids and lengths travels in messages. Every request has a timeout, so a server that is
//! not there or stops answering is an error, never a hang.

mod error;

pub use error::{FtpError, explain};

use crate::server::ServerKind;
use crate::storage::dirent::{self, Listed};
use crate::storage::fs::decode_stat;
use crate::storage::ftp::{
    FTP_GET, FTP_HELLO, FTP_LS, FTP_MKDIR, FTP_PUT, FTP_RM, FTP_STAT, FTP_SYNC, FtpRequest,
    PUT_FIRST, PUT_LAST,
};
use crate::storage::path::{self, PATH_BUFFER, PathRef};
use crate::storage::{MAX_CHUNK, reply_result};
use m3ipc::{Access, Dc, Endpoint, Errno, GrantId, Handle, Message, Proc, Timeout};
use minixfs::Stat;
use std::io::{Read, Write};
use std::time::Duration;

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// FTP's slot.
    pub nr: i32,
    /// Longest wait for FTP to be bound.
    pub wait: Duration,
    /// Longest wait for one reply.
    pub timeout: Duration,
    /// The client slot's name (shown by `dvs ps`).
    pub name: String,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            nr: ServerKind::Ftp.default_nr(),
            wait: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
            name: "m3ftp".into(),
        }
    }
}

/// A connected client.
pub struct FtpClient {
    proc: Proc,
    dc: String,
    ftp: Endpoint,
    path_buf: Handle,
    path_grant: GrantId,
    data_buf: Handle,
    data_grant: GrantId,
    disk_grant: Option<GrantId>,
    /// Whether requests name `disk_grant` (see [`FtpClient::set_direct`]).
    direct: bool,
    timeout: Duration,
    chunk: Vec<u8>,
}

impl std::fmt::Debug for FtpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpClient")
            .field("dc", &self.dc)
            .field("endpoint", &self.proc.endpoint())
            .field("ftp", &self.ftp)
            .finish()
    }
}

/// Bind the first free user slot of `dc` under `name`.
pub fn bind_user(dc: &Dc, name: &str) -> Result<Proc, FtpError> {
    let c = dc.config();
    let first_user = c.nr_sysprocs as i32 - c.nr_tasks as i32;
    for nr in first_user..c.nr_procs as i32 {
        match dc.bind_named(nr, name) {
            Ok(p) => return Ok(p),
            Err(Errno::EDVSSLOTUSED) => continue,
            Err(e) => {
                return Err(FtpError::Setup(format!(
                    "cannot bind a user slot in DC {}: {e}",
                    dc.name()
                )));
            }
        }
    }
    Err(FtpError::Setup(format!(
        "DC {} has no free user slot",
        dc.name()
    )))
}

fn millis(d: Duration) -> Timeout {
    Timeout::Millis(u32::try_from(d.as_millis()).unwrap_or(u32::MAX - 1).max(1))
}

impl FtpClient {
    /// Connect to FTP in the DC named `dc`.
    pub fn connect(dc: &str, opts: &ConnectOptions) -> Result<FtpClient, FtpError> {
        let dcr = Dc::open(dc).map_err(|e| FtpError::Dc {
            dc: dc.to_string(),
            why: e.to_string(),
        })?;
        let proc = bind_user(&dcr, &opts.name)?;
        let ftp = match dcr.wait4bind(opts.nr, millis(opts.wait)) {
            Ok(ep) => ep,
            Err(Errno::EDVSTIMEDOUT | Errno::EDVSAGAIN) => {
                return Err(FtpError::NoServer {
                    dc: dc.to_string(),
                    nr: opts.nr,
                    waited: opts.wait,
                });
            }
            Err(e) => {
                return Err(FtpError::Setup(format!(
                    "waiting for FTP at nr {}: {e}",
                    opts.nr
                )));
            }
        };
        let setup = |e: Errno| {
            FtpError::Setup(match e {
                Errno::EDVSNODEV => format!("DC {dc} has no buffer pool"),
                Errno::EDVSNOMEM => format!("the buffer pool of DC {dc} is full"),
                e => format!("cannot set up buffers in DC {dc}: {e}"),
            })
        };
        let timeout = millis(opts.timeout);
        // FTP names FS; a unikernel that is still booting may not have it yet: ask again
        // within the same wait.
        let until = std::time::Instant::now() + opts.wait;
        let hello = loop {
            let mut m = Message::new(FTP_HELLO);
            match proc
                .sendrec(ftp, &mut m, timeout)
                .and_then(|()| reply_result(&m))
            {
                Err(Errno::EDVSNODEV) if std::time::Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                r => break r.map(|()| m),
            }
        };
        let (fs, rdisk) = match hello {
            Ok(m) => (
                m.payload[0] as u32 as Endpoint,
                (m.payload[1] >> 32 == 1).then_some(m.payload[1] as u32 as Endpoint),
            ),
            Err(Errno::EDVSTIMEDOUT) => {
                return Err(FtpError::Timeout {
                    op: "connect",
                    path: dc.to_string(),
                    after: opts.timeout,
                });
            }
            Err(errno) => {
                return Err(FtpError::Remote {
                    op: "connect",
                    path: format!("to DC {dc}"),
                    errno,
                });
            }
        };
        let path_buf = proc.alloc_buffer(PATH_BUFFER).map_err(setup)?;
        let data_buf = proc.alloc_buffer(MAX_CHUNK).map_err(setup)?;
        let path_grant = proc
            .grant(path_buf, ftp, 0, PATH_BUFFER, Access::READ)
            .map_err(setup)?;
        let data_grant = proc
            .grant(data_buf, fs, 0, MAX_CHUNK, Access::READ_WRITE)
            .map_err(setup)?;
        // RDISK may copy a GET's blocks straight into the buffer and a PUT's straight out of
        // it; without this grant FS copies them (an RDISK we cannot grant to is no error).
        let disk_grant = rdisk.and_then(|ep| {
            proc.grant(data_buf, ep, 0, MAX_CHUNK, Access::READ_WRITE)
                .ok()
        });
        Ok(FtpClient {
            proc,
            dc: dc.to_string(),
            ftp,
            path_buf,
            path_grant,
            data_buf,
            data_grant,
            disk_grant,
            direct: true,
            timeout: opts.timeout,
            chunk: vec![0; MAX_CHUNK],
        })
    }

    /// Whether RDISK may move whole blocks straight between the disk and this client's
    /// buffer (on by default, when RDISK could be granted the buffer). Off, FS copies every
    /// byte: the path before the direct one, kept for comparisons.
    pub fn set_direct(&mut self, on: bool) {
        self.direct = on;
    }

    /// The client's own endpoint.
    pub fn endpoint(&self) -> Endpoint {
        self.proc.endpoint()
    }

    /// The FTP server's endpoint.
    pub fn server(&self) -> Endpoint {
        self.ftp
    }

    /// Send one request for `path` and return the reply (its error as `Err`).
    fn call(
        &mut self,
        op: &'static str,
        m_type: i32,
        path: &str,
        offset: u64,
        len: usize,
        flags: u64,
    ) -> Result<Message, FtpError> {
        let remote = |errno| FtpError::Remote {
            op,
            path: path.to_string(),
            errno,
        };
        path::check(path).map_err(remote)?;
        self.proc
            .buffer(self.path_buf)
            .and_then(|v| v.write_at(0, path.as_bytes()))
            .map_err(|e| FtpError::Setup(format!("writing the path buffer: {e}")))?;
        let req = FtpRequest {
            path: PathRef {
                grant: self.path_grant,
                len: path.len(),
            },
            data: self.data_grant,
            offset,
            len,
            flags,
            disk_data: self.disk_grant.filter(|_| self.direct),
        };
        let mut m = req.encode(m_type);
        match self.proc.sendrec(self.ftp, &mut m, millis(self.timeout)) {
            Ok(()) => {}
            Err(Errno::EDVSTIMEDOUT) => {
                return Err(FtpError::Timeout {
                    op,
                    path: path.to_string(),
                    after: self.timeout,
                });
            }
            Err(
                Errno::EDVSDEADSRCDST
                | Errno::EDVSDSTDIED
                | Errno::EDVSENDPOINT
                | Errno::EDVSNOTBIND,
            ) => {
                return Err(FtpError::Gone {
                    op,
                    path: path.to_string(),
                });
            }
            Err(e) => return Err(remote(e)),
        }
        reply_result(&m).map_err(remote)?;
        Ok(m)
    }

    /// A remote path's attributes.
    pub fn stat(&mut self, path: &str) -> Result<Stat, FtpError> {
        let m = self.call("stat", FTP_STAT, path, 0, 0, 0)?;
        Ok(decode_stat(&m))
    }

    /// Fetch the file at `remote`, handing each chunk to `sink` in order; `progress` sees the
    /// bytes so far and the file's size after each chunk. Returns the bytes fetched.
    pub fn get_with(
        &mut self,
        remote: &str,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), FtpError>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, FtpError> {
        let mut offset = 0u64;
        loop {
            let m = self.call("get", FTP_GET, remote, offset, MAX_CHUNK, 0)?;
            let (n, size) = (m.payload[0], m.payload[1]);
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n <= MAX_CHUNK)
                .ok_or_else(|| FtpError::Protocol(format!("a chunk of {n} bytes")))?;
            if n == 0 {
                if offset < size {
                    return Err(FtpError::Protocol(format!(
                        "the file ended at {offset} of {size} bytes"
                    )));
                }
                return Ok(offset);
            }
            let chunk = &mut self.chunk[..n];
            self.proc
                .buffer(self.data_buf)
                .and_then(|v| v.read_at(0, chunk))
                .map_err(|e| FtpError::Setup(format!("reading the data buffer: {e}")))?;
            sink(chunk)?;
            offset += n as u64;
            progress(offset, size);
            if offset >= size {
                return Ok(offset);
            }
        }
    }

    /// Fetch `remote` into `out` (`local` names it in errors).
    pub fn get(
        &mut self,
        remote: &str,
        out: &mut dyn Write,
        local: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, FtpError> {
        let mut sink = |b: &[u8]| {
            out.write_all(b).map_err(|why| FtpError::Local {
                path: local.to_string(),
                why,
            })
        };
        let n = self.get_with(remote, &mut sink, progress)?;
        out.flush().map_err(|why| FtpError::Local {
            path: local.to_string(),
            why,
        })?;
        Ok(n)
    }

    /// Store `size` bytes read from `input` (`local` names it in errors) as `remote`,
    /// replacing what was there; the server syncs after the last chunk. Returns the bytes
    /// stored.
    pub fn put(
        &mut self,
        input: &mut dyn Read,
        size: u64,
        local: &str,
        remote: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, FtpError> {
        let mut offset = 0u64;
        loop {
            let want = usize::try_from((size - offset).min(MAX_CHUNK as u64)).unwrap_or(MAX_CHUNK);
            let chunk = &mut self.chunk[..want];
            input.read_exact(chunk).map_err(|why| FtpError::Local {
                path: local.to_string(),
                why,
            })?;
            self.proc
                .buffer(self.data_buf)
                .and_then(|v| v.write_at(0, chunk))
                .map_err(|e| FtpError::Setup(format!("writing the data buffer: {e}")))?;
            let mut flags = 0;
            if offset == 0 {
                flags |= PUT_FIRST;
            }
            if offset + want as u64 >= size {
                flags |= PUT_LAST;
            }
            let m = self.call("put", FTP_PUT, remote, offset, want, flags)?;
            if m.payload[0] != want as u64 {
                return Err(FtpError::Protocol(format!(
                    "{} of {want} bytes written at {offset}",
                    m.payload[0]
                )));
            }
            offset += want as u64;
            progress(offset, size);
            if offset >= size {
                return Ok(offset);
            }
        }
    }

    /// List the directory `dir` (`.` and `..` included), in pages of up to 1 MiB.
    pub fn ls(&mut self, dir: &str) -> Result<Vec<Listed>, FtpError> {
        self.ls_in_pages(dir, MAX_CHUNK)
    }

    /// List the directory `dir` in pages of at most `page_bytes` (at most 1 MiB): one
    /// request per page, each starting at the entry after the last one received.
    pub fn ls_in_pages(&mut self, dir: &str, page_bytes: usize) -> Result<Vec<Listed>, FtpError> {
        let page_bytes = page_bytes.min(MAX_CHUNK);
        let mut out = Vec::new();
        // Each round lists at least one entry or ends: bounded by the directory's size.
        loop {
            let m = self.call("ls", FTP_LS, dir, out.len() as u64, page_bytes, 0)?;
            let (count, bytes, more) = (m.payload[0], m.payload[1], m.payload[2]);
            let bytes = usize::try_from(bytes)
                .ok()
                .filter(|&b| b <= page_bytes)
                .ok_or_else(|| FtpError::Protocol(format!("a listing of {bytes} bytes")))?;
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            let raw = &mut self.chunk[..bytes];
            self.proc
                .buffer(self.data_buf)
                .and_then(|v| v.read_at(0, raw))
                .map_err(|e| FtpError::Setup(format!("reading the data buffer: {e}")))?;
            let entries = dirent::decode(raw, count)
                .map_err(|_| FtpError::Protocol("a malformed listing".into()))?;
            let got = entries.len();
            out.extend(entries);
            if more == 0 {
                return Ok(out);
            }
            if got == 0 {
                // Stopping here would return a listing cut short without saying so.
                return Err(FtpError::Protocol(format!(
                    "a listing page of {page_bytes} bytes holds no entry of {dir}"
                )));
            }
        }
    }

    /// Remove a file or an empty directory.
    pub fn rm(&mut self, path: &str) -> Result<(), FtpError> {
        self.call("rm", FTP_RM, path, 0, 0, 0).map(drop)
    }

    /// Make a directory.
    pub fn mkdir(&mut self, path: &str) -> Result<(), FtpError> {
        self.call("mkdir", FTP_MKDIR, path, 0, 0, 0).map(drop)
    }

    /// Have the file system write everything back to its disk.
    pub fn sync(&mut self) -> Result<(), FtpError> {
        self.call("sync", FTP_SYNC, "/", 0, 0, 0).map(drop)
    }
}

impl Drop for FtpClient {
    fn drop(&mut self) {
        let _ = self.proc.revoke(self.path_grant);
        let _ = self.proc.revoke(self.data_grant);
        if let Some(g) = self.disk_grant {
            let _ = self.proc.revoke(g);
        }
        let _ = self.proc.release_buffer(self.path_buf);
        let _ = self.proc.release_buffer(self.data_buf);
    }
}
