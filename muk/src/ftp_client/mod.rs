//! The `m3ftp` client as a library: talk to FTP (`m3ftpd`, slot 14) from a process outside
//! the unikernel.
//!
//! [`FtpClient::connect`] opens the DC, binds a free user slot, waits (bounded) for FTP to be
//! bound, allocates a path buffer and a 1 MiB data buffer in the DC's pool, grants the path
//! buffer to FTP and the data buffer to FS and RDISK (whose endpoints FTP names): FS reads and
//! writes the client's chunks in place, and RDISK copies a GET's or a PUT's whole blocks
//! between the disk and the buffer. Every transfer then moves at most 1 MiB a request through the data buffer; nothing but
//! grant ids and lengths travels in messages. A GET of 3 MiB or more runs over three endpoints
//! of the client, so three requests are in flight ([`FtpClient::get_with`]): such a client
//! holds three user slots from its first large GET on. A put is atomic ([`FtpClient::put`]): the
//! server replaces the remote file only once the whole new one is in, so a failed put says
//! `nothing was changed`. Remote paths are checked before anything is sent
//! ([`crate::storage::path::problem`]). Every request has a timeout, so a server that is
//! not there or stops answering is an error, never a hang.

mod error;
mod get;

pub use error::{FtpError, explain};

use crate::server::ServerKind;
use crate::storage::dirent::{self, Listed};
use crate::storage::fs::decode_stat;
use crate::storage::ftp::{
    FTP_GET, FTP_HELLO, FTP_LS, FTP_MKDIR, FTP_PUT, FTP_RM, FTP_STAT, FTP_SYNC, FtpRequest,
    PUT_ABORT, PUT_FIRST, PUT_LAST, SAME_PATH,
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
    /// How this client connected: the other lanes of a GET connect the same way.
    opts: ConnectOptions,
    /// The other lanes of a large GET ([`FtpClient::get_with`]), made on first need.
    lanes: Vec<FtpClient>,
    /// The path of this endpoint's last request if it was a GET that succeeded: FTP then has
    /// it, and the next GET of it says [`SAME_PATH`].
    last_get: Option<String>,
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

/// The numbers of one request besides its path.
#[derive(Clone, Copy, Debug, Default)]
struct Args {
    offset: u64,
    len: usize,
    flags: u64,
    handle: u32,
}

/// Read into `buf` until it is full or the input ends; the bytes read.
fn fill(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    // Each round reads at least one byte or ends.
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
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
            let g = proc
                .grant(data_buf, ep, 0, MAX_CHUNK, Access::READ_WRITE)
                .ok()?;
            // Introduce ourselves to RDISK before FS names our grant to it. In a DC spanning
            // nodes, RDISK's node learns our binding from our node's daemon, on the link to
            // RDISK's node; FS's request naming our grant may come by another link (FS on a
            // third node) and overtake it, and an RDISK that does not know us yet would look
            // for the grant on its own node. This call travels behind the announcement on the
            // same link: once RDISK answers, it knows us. Any failure: FS copies instead.
            match crate::storage::rdisk::geometry(&proc, ep, timeout) {
                Ok(_) => Some(g),
                Err(_) => {
                    let _ = proc.revoke(g);
                    None
                }
            }
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
            opts: opts.clone(),
            lanes: Vec::new(),
            last_get: None,
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

    /// Send one request for `path` and return the reply (its error as `Err`). A path that no
    /// server would take is refused here, saying why.
    fn call(
        &mut self,
        op: &'static str,
        m_type: i32,
        path: &str,
        args: Args,
    ) -> Result<Message, FtpError> {
        let remote = |errno| FtpError::Remote {
            op,
            path: path.to_string(),
            errno,
        };
        if let Some(problem) = path::problem(path) {
            return Err(FtpError::BadPath {
                op,
                path: path.to_string(),
                problem,
            });
        }
        self.proc
            .buffer(self.path_buf)
            .and_then(|v| v.write_at(0, path.as_bytes()))
            .map_err(|e| FtpError::Setup(format!("writing the path buffer: {e}")))?;
        // A GET of the path of this endpoint's last successful GET: FTP may use its copy
        // instead of reading the path buffer (a round trip over the link for a client on
        // another node). Any other request, or a failure, forgets it.
        let same = m_type == FTP_GET && self.last_get.as_deref() == Some(path);
        self.last_get = None;
        let req = FtpRequest {
            path: PathRef {
                grant: self.path_grant,
                len: path.len(),
            },
            data: self.data_grant,
            offset: args.offset,
            len: args.len,
            flags: args.flags | if same { SAME_PATH } else { 0 },
            handle: args.handle,
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
        if m_type == FTP_GET {
            self.last_get = Some(path.to_string());
        }
        Ok(m)
    }

    /// A remote path's attributes.
    pub fn stat(&mut self, path: &str) -> Result<Stat, FtpError> {
        let m = self.call("stat", FTP_STAT, path, Args::default())?;
        Ok(decode_stat(&m))
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
    /// stored. The put is atomic: until the last chunk is in, `remote` is the old file (or
    /// absent), and a put that fails leaves it so.
    pub fn put(
        &mut self,
        input: &mut dyn Read,
        size: u64,
        local: &str,
        remote: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, FtpError> {
        self.put_from(input, Some(size), local, remote, progress)
    }

    /// [`FtpClient::put`] of everything `input` gives until it ends (standard input: the size
    /// is not known ahead; `progress` sees 0 as the total).
    pub fn put_stream(
        &mut self,
        input: &mut dyn Read,
        local: &str,
        remote: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, FtpError> {
        self.put_from(input, None, local, remote, progress)
    }

    /// A put of `size` bytes, or (`None`) of all `input` has. With a size, the chunk that
    /// reaches it is the last; without one, the client reads a chunk ahead to know which is.
    fn put_from(
        &mut self,
        input: &mut dyn Read,
        size: Option<u64>,
        local: &str,
        remote: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, FtpError> {
        if let Some(problem) = path::problem(remote) {
            return Err(FtpError::BadPath {
                op: "put",
                path: remote.to_string(),
                problem,
            });
        }
        if remote.ends_with('/') {
            return Err(FtpError::DirTarget {
                path: remote.to_string(),
            });
        }
        let mut cur = std::mem::take(&mut self.chunk);
        let mut ahead = Vec::new();
        let r = self.put_chunks(input, size, local, remote, progress, &mut cur, &mut ahead);
        self.chunk = cur;
        r
    }

    /// The chunks of [`FtpClient::put_from`], read into `cur` (and `ahead`, without a size).
    /// A local failure after the first chunk abandons the put on the server.
    #[allow(clippy::too_many_arguments)] // the put's inputs and its two reused buffers
    fn put_chunks(
        &mut self,
        input: &mut dyn Read,
        size: Option<u64>,
        local: &str,
        remote: &str,
        progress: &mut dyn FnMut(u64, u64),
        cur: &mut Vec<u8>,
        ahead: &mut Vec<u8>,
    ) -> Result<u64, FtpError> {
        let local_err = |why| FtpError::Local {
            path: local.to_string(),
            why,
        };
        let short = |at: u64, size: u64| {
            local_err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("ended at {at} of {size} bytes"),
            ))
        };
        let want =
            |offset: u64| size.map_or(MAX_CHUNK, |s| (s - offset).min(MAX_CHUNK as u64) as usize);
        cur.resize(MAX_CHUNK, 0);
        let mut n = fill(input, &mut cur[..want(0)]).map_err(local_err)?;
        if let Some(s) = size.filter(|_| n < want(0)) {
            return Err(short(n as u64, s));
        }
        let mut offset = 0u64;
        let mut handle = 0u32;
        loop {
            // Whether this chunk is the last: by the size, or by reading the next one first.
            let mut next = 0usize;
            let last = match size {
                Some(s) => offset + n as u64 >= s,
                None if n < MAX_CHUNK => true,
                None => {
                    ahead.resize(MAX_CHUNK, 0);
                    match fill(input, ahead) {
                        Ok(m) => next = m,
                        Err(why) => return Err(self.abort_put(remote, handle, local_err(why))),
                    }
                    next == 0
                }
            };
            self.proc
                .buffer(self.data_buf)
                .and_then(|v| v.write_at(0, &cur[..n]))
                .map_err(|e| FtpError::Setup(format!("writing the data buffer: {e}")))?;
            let mut flags = 0;
            if offset == 0 {
                flags |= PUT_FIRST;
            }
            if last {
                flags |= PUT_LAST;
            }
            let args = Args {
                offset,
                len: n,
                flags,
                handle,
            };
            // On an error reply the server has ended the put already.
            let m = self.call("put", FTP_PUT, remote, args)?;
            if m.payload[0] != n as u64 {
                let e = FtpError::Protocol(format!(
                    "{} of {n} bytes written at {offset}",
                    m.payload[0]
                ));
                return Err(self.abort_put(remote, handle, e));
            }
            handle = m.payload[1] as u32;
            offset += n as u64;
            progress(offset, size.unwrap_or(0));
            if last {
                return Ok(offset);
            }
            if size.is_some() {
                n = match fill(input, &mut cur[..want(offset)]) {
                    Ok(got) => got,
                    Err(why) => return Err(self.abort_put(remote, handle, local_err(why))),
                };
                if let Some(s) = size.filter(|_| n < want(offset)) {
                    let e = short(offset + n as u64, s);
                    return Err(self.abort_put(remote, handle, e));
                }
            } else {
                std::mem::swap(cur, ahead);
                n = next;
            }
        }
    }

    /// Tell the server to abandon the put `handle` (best effort: were the request lost, FS
    /// removes the temporary once this client is gone); returns `e`.
    fn abort_put(&mut self, remote: &str, handle: u32, e: FtpError) -> FtpError {
        if handle != 0 {
            let args = Args {
                flags: PUT_ABORT,
                handle,
                ..Args::default()
            };
            let _ = self.call("put", FTP_PUT, remote, args);
        }
        e
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
        let mut next = 0u64;
        // Each round moves `next` on or ends: bounded by the directory's size.
        loop {
            let args = Args {
                offset: next,
                len: page_bytes,
                ..Args::default()
            };
            let m = self.call("ls", FTP_LS, dir, args)?;
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
            // Where to go on: past the listed entries and the hidden ones (put temporaries).
            let resume = m.payload[3];
            if resume <= next {
                return Err(FtpError::Protocol(format!(
                    "the listing of {dir} did not move on from entry {next}"
                )));
            }
            next = resume;
        }
    }

    /// Remove a file or an empty directory.
    pub fn rm(&mut self, path: &str) -> Result<(), FtpError> {
        self.call("rm", FTP_RM, path, Args::default()).map(drop)
    }

    /// Make a directory.
    pub fn mkdir(&mut self, path: &str) -> Result<(), FtpError> {
        self.call("mkdir", FTP_MKDIR, path, Args::default())
            .map(drop)
    }

    /// Have the file system write everything back to its disk.
    pub fn sync(&mut self) -> Result<(), FtpError> {
        self.call("sync", FTP_SYNC, "/", Args::default()).map(drop)
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
