//! `server_requests`: arbitrary request messages to SYSTASK, PM, echo, RDISK, FS and FTP,
//! in-process.
//!
//! One DC per process (`fz-srv`, an 8 MiB pool) hosts the six servers under the MUK2 runner
//! (coroutines on one thread), RDISK on a 2 MiB memory disk that FS formats. Two clients are
//! bound in this process: a system process and a user. The input is a script of requests, each
//! from either client to one server: a request type (one of the protocols' codes, or any
//! number), seven arbitrary payload words, and optionally a path buffer and a data buffer
//! that the client fills, grants (to the server addressed or to another, with arbitrary rights
//! and range) and names in chosen payload words, as the protocols expect.
//!
//! Every request must be answered (an error reply is fine) within 10 s; after the script
//! every server must still answer a request that always succeeds (or, for FS and FTP, at least
//! answer). Requests that wait on purpose (echo's slow and timeout probes) are left out. State
//! carries over between inputs (files FS made, PM's registry), as in a server's real life.

use crate::shm;
use arbitrary::{Arbitrary, Unstructured};
use m3ipc::pool::{Access, Handle};
use m3ipc::{Dc, DcConfig, Endpoint, Errno, Message, Proc, Timeout};
use muk::host::DEFAULT_STACK;
use muk::protocol::*;
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use muk::server::{ServerKind, ServerOptions};
use muk::storage::fs::*;
use muk::storage::ftp::*;
use muk::storage::rdisk::*;
use muk::{Host, Hosted, Runner};
use std::sync::Mutex;

const NAME: &str = "fz-srv";
/// How long a client waits for a reply: far beyond any answer; no reply is a hang.
const ANSWER: Timeout = Timeout::Millis(10_000);
/// Most requests of one script.
const MAX_REQUESTS: usize = 24;
/// The client that is a system process, and the user one.
const SYS_CLIENT: i32 = 22;
const USER_CLIENT: i32 = 30;

/// Every request code of the protocols (the probes that wait on purpose left out).
const CODES: [i32; 31] = [
    SYS_PROCINFO,
    SYS_BIND,
    SYS_VCOPY,
    PM_REGISTER,
    PM_EXIT,
    PM_GETPID,
    PM_GETEP,
    PM_COUNT,
    ECHO_ECHO,
    ECHO_SINK,
    RD_GEOMETRY,
    RD_READ,
    RD_WRITE,
    RD_FLUSH,
    FS_LOOKUP,
    FS_OPEN,
    FS_CREATE,
    FS_READ,
    FS_WRITE,
    FS_TRUNCATE,
    FS_UNLINK,
    FS_MKDIR,
    FS_RMDIR,
    FS_READDIR,
    FS_STAT,
    FS_RENAME,
    FS_SYNC,
    FS_INFO,
    FTP_GET,
    FTP_PUT,
    FTP_LS,
];
/// The rest of FTP's codes (the array above is what `arbitrary` picks from by index).
const MORE_CODES: [i32; 5] = [FTP_RM, FTP_MKDIR, FTP_STAT, FTP_SYNC, FTP_HELLO];

/// A server.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum To {
    /// SYSTASK.
    Systask,
    /// PM.
    Pm,
    /// echo.
    Echo,
    /// RDISK.
    Rdisk,
    /// FS.
    Fs,
    /// FTP.
    Ftp,
}

impl To {
    fn kind(self) -> ServerKind {
        match self {
            To::Systask => ServerKind::Systask,
            To::Pm => ServerKind::Pm,
            To::Echo => ServerKind::Echo,
            To::Rdisk => ServerKind::Rdisk,
            To::Fs => ServerKind::Fs,
            To::Ftp => ServerKind::Ftp,
        }
    }
}

/// A request type.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Code {
    /// One of the protocols' codes, by index.
    Known(u8),
    /// Any number.
    Raw(i32),
}

/// A buffer the client fills, grants and names in the request.
#[derive(Arbitrary, Clone, Debug)]
pub struct Granted {
    /// Its contents (a path, a path pair, data); at most 4 KiB used.
    pub bytes: Vec<u8>,
    /// Its size beyond the contents, in KiB (a data buffer up to 64 KiB).
    pub extra_kib: u8,
    /// Who gets the grant (`None`: the server addressed).
    pub to: Option<To>,
    /// The rights: READ, WRITE, both, or none (the low two bits).
    pub access: u8,
    /// The payload word that gets the grant id (modulo 7).
    pub word: u8,
    /// Put the contents' length in the next word (as a path's length).
    pub len_word: bool,
}

/// One request.
#[derive(Arbitrary, Clone, Debug)]
pub struct Request {
    /// The server.
    pub to: To,
    /// From the system client (else the user one).
    pub from_system: bool,
    /// The request type.
    pub code: Code,
    /// The payload.
    pub payload: [u64; 7],
    /// A path or data buffer.
    pub path: Option<Granted>,
    /// Another buffer.
    pub data: Option<Granted>,
}

struct World {
    dc: Dc,
    host: Option<Host>,
    system: Proc,
    user: Proc,
}

static WORLD: Mutex<Option<World>> = Mutex::new(None);

fn start() -> Result<World, String> {
    shm::remove_dc(NAME);
    let config = DcConfig {
        dcid: 4,
        node: 0,
        nr_procs: 32,
        nr_tasks: 4,
        nr_sysprocs: 28,
        mode: 0o600,
        pool_bytes: 8 << 20,
    };
    let dc = Dc::create(NAME, &config).map_err(|e| e.to_string())?;
    let opts = ServerOptions {
        disk: DiskSpec::Memory(2 << 20),
        format: FormatPolicy::IfBlank,
        below_nr: None,
        ..ServerOptions::default()
    };
    let mut servers = Vec::new();
    for to in [To::Systask, To::Pm, To::Echo, To::Rdisk, To::Fs, To::Ftp] {
        let k = to.kind();
        servers.push(Hosted {
            name: k.name().to_string(),
            nr: k.default_nr(),
            stack_size: DEFAULT_STACK,
            server: k.build_with(&opts)?,
        });
    }
    let host = Host::start(&dc, servers, Runner::Coroutines).map_err(|e| e.to_string())?;
    let system = dc.bind(SYS_CLIENT).map_err(|e| e.to_string())?;
    let user = dc.bind(USER_CLIENT).map_err(|e| e.to_string())?;
    let w = World {
        dc,
        host: Some(host),
        system,
        user,
    };
    // FS mounts once RDISK answers: wait (bounded) until it does, so that inputs meet a
    // mounted file system.
    for _ in 0..500 {
        let mut m = Message::new(FS_INFO);
        if w.call(To::Fs, true, &mut m).is_ok() && m.m_type == OK {
            return Ok(w);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err("FS did not mount its memory disk within 5 s".into())
}

impl World {
    fn server(&self, to: To) -> Result<Endpoint, Errno> {
        server_endpoint(&self.dc, to.kind().default_nr())
    }

    fn client(&self, system: bool) -> &Proc {
        if system { &self.system } else { &self.user }
    }

    /// `sendrec` to a server; `Err` only when the call itself failed (no reply).
    fn call(&self, to: To, system: bool, m: &mut Message) -> Result<(), Errno> {
        let ep = self.server(to)?;
        self.client(system).sendrec(ep, m, ANSWER)
    }
}

/// Run one input.
pub fn run(data: &[u8]) {
    shm::private_dir();
    let mut guard = WORLD.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        match start() {
            Ok(w) => *guard = Some(w),
            Err(e) => panic!("server_requests: cannot start the servers: {e}"),
        }
    }
    let Some(w) = guard.as_ref() else { return };
    let mut u = Unstructured::new(data);
    for _ in 0..MAX_REQUESTS {
        if u.is_empty() {
            break;
        }
        let Ok(req) = Request::arbitrary(&mut u) else {
            break;
        };
        let t = std::time::Instant::now();
        let reply = request(w, &req);
        if crate::trace() {
            eprintln!("{req:?} -> {reply} ({:?})", t.elapsed());
        }
    }
    alive(w);
}

/// Send one request; the server must answer. Returns the reply's type.
fn request(w: &World, req: &Request) -> i32 {
    let p = w.client(req.from_system);
    let mut m = Message::new(match req.code {
        Code::Known(i) => {
            let i = usize::from(i) % (CODES.len() + MORE_CODES.len());
            CODES
                .get(i)
                .copied()
                .unwrap_or_else(|| MORE_CODES[i - CODES.len()])
        }
        Code::Raw(t) => t,
    });
    // Requests that wait on purpose would only slow the fuzzer down.
    if matches!(m.m_type, ECHO_SLOW | ECHO_TIMEOUT_PROBE) {
        m.m_type = ECHO_ECHO;
    }
    m.payload = req.payload;
    let mut buffers: Vec<Handle> = Vec::new();
    for g in [&req.path, &req.data].into_iter().flatten() {
        if let Some(h) = grant(w, p, req.to, g, &mut m) {
            buffers.push(h);
        }
    }
    let ty = m.m_type;
    match w.call(req.to, req.from_system, &mut m) {
        Ok(()) => {}
        // Refused by the fabric before it reached the server (privileges, bad message type):
        // not the server's doing.
        Err(
            Errno::EDVSCALLDENIED
            | Errno::EDVSTRAPDENIED
            | Errno::EDVSBADCALL
            | Errno::EDVSPERM
            | Errno::EDVSINVAL
            | Errno::EDVSBADVALUE,
        ) => {}
        Err(e) => panic!("{:?} did not answer request {ty:#x}: {e}", req.to),
    }
    for h in buffers {
        let _ = p.release_buffer(h);
    }
    m.m_type
}

/// Fill a buffer, grant it and name it in `m`; the buffer's handle (to release afterwards).
fn grant(w: &World, p: &Proc, to: To, g: &Granted, m: &mut Message) -> Option<Handle> {
    let bytes = &g.bytes[..g.bytes.len().min(4096)];
    let len = (bytes.len() + usize::from(g.extra_kib % 65) * 1024).max(1);
    let h = p.alloc_buffer(len).ok()?;
    if let Ok(view) = p.buffer(h) {
        let _ = view.write_at(0, bytes);
    }
    let grantee = w.server(g.to.unwrap_or(to)).ok()?;
    let access = Access(g.access & 3);
    match p.grant(h, grantee, 0, len, access) {
        Ok(id) => {
            let word = usize::from(g.word % 7);
            m.payload[word] = id.0;
            if g.len_word && word < 6 {
                m.payload[word + 1] = bytes.len() as u64;
            }
        }
        Err(_) => {
            let _ = p.release_buffer(h);
            return None;
        }
    }
    Some(h)
}

/// Every server still answers.
fn alive(w: &World) {
    let checks: [(To, i32, bool); 6] = [
        (To::Systask, SYS_PROCINFO, true),
        (To::Pm, PM_COUNT, true),
        (To::Echo, ECHO_ECHO, true),
        (To::Rdisk, RD_GEOMETRY, true),
        // FS and FTP may have been told to do impossible things to a disk a request
        // scribbled on: an answer is what counts.
        (To::Fs, FS_INFO, false),
        (To::Ftp, FTP_HELLO, false),
    ];
    for (to, ty, must_succeed) in checks {
        let mut m = Message::new(ty);
        if let Err(e) = w.call(to, true, &mut m) {
            panic!("{to:?} no longer answers ({ty:#x}): {e}");
        }
        if must_succeed {
            assert_eq!(m.m_type, OK, "{to:?} failed the health request {ty:#x}");
        }
    }
}

/// Stop the servers (for tests that want the host gone before the process ends).
pub fn stop() {
    let mut guard = WORLD.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(mut w) = guard.take()
        && let Some(host) = w.host.take()
    {
        let _ = host.stop();
    }
    shm::remove_dc(NAME);
}
