//! The `web` group: our MUK2 web server (nr 22) against nginx, the same files over HTTP/1.1 on
//! loopback, driven by the load generator of this crate ([`crate::http_load`]).
//!
//! - [`WebLoad::Big`]: GETs of a 64 MiB file on one keep-alive connection (throughput).
//! - [`WebLoad::Small`]: GETs of 64 files of 4 KiB in turn over 16 keep-alive connections, one
//!   request in flight on each (requests per second).
//!
//! MUK2: a peer process hosting a default-like unikernel (SYSTASK, PM, echo, RDISK with a
//! memory disk, FS formatting it, FTP, web, IS) as coroutines of one scheduler thread; the
//! caller puts the files into its FS through the m3ftp client library first. nginx: one worker,
//! `sendfile on`, the same files in a directory on tmpfs ([`crate::nginx`]). The server is
//! pinned to the placement's server CPU, the caller (the load generator) to its client CPU.
//! At start every file is fetched once and checked byte for byte; timed requests check the
//! status and the length. The note of each row gives the CPU time of the server and of the
//! client per request (`/proc/PID/task/TID/schedstat`), which says where the time goes.

use crate::clock::Record;
use crate::error::{BenchError, Result, io};
use crate::ftp_get::pattern;
use crate::http_load::{Load, Target};
use crate::nginx::{Nginx, TmpDir};
use crate::peer::{self, Peer};
use crate::placement::{Placement, pin};
use crate::scratch::ScratchDc;
use crate::session::{Outcome, Session};
use m3ipc::Dc;
use muk::ftp_client::{ConnectOptions, FtpClient, FtpError};
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use muk::server::web::Web;
use muk::server::{ServerKind, ServerOptions};
use muk::{Host, Hosted, Runner};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Peer role: a MUK2 unikernel with the web server.
pub const HOST_ROLE: &str = "web-muk2";
/// The big file's size.
pub const BIG_BYTES: usize = 64 << 20;
/// Each small file's size.
pub const SMALL_BYTES: usize = 4 << 10;
/// How many small files the requests go round.
pub const SMALL_FILES: usize = 64;
/// Keep-alive connections of the small-file load.
pub const SMALL_CONNECTIONS: usize = 16;
/// The line after `READY` that gives the web server's port.
const PORT_TAG: &str = "PORT";
/// Longest the caller waits for FS to answer (it formats its disk first).
const START_WAIT: Duration = Duration::from_secs(20);

/// What the load asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebLoad {
    /// The 64 MiB file, one connection.
    Big,
    /// 4 KiB files, 16 connections.
    Small,
}

impl WebLoad {
    /// Its name in scenario ids.
    pub fn label(self) -> String {
        match self {
            WebLoad::Big => format!("get-{}M", BIG_BYTES >> 20),
            WebLoad::Small => format!("get-{}K-{SMALL_CONNECTIONS}conns", SMALL_BYTES >> 10),
        }
    }

    fn connections(self) -> usize {
        match self {
            WebLoad::Big => 1,
            WebLoad::Small => SMALL_CONNECTIONS,
        }
    }

    /// The files (path, bytes): each byte depends on its place in the set, so a file served
    /// for another is seen.
    pub fn files(self) -> Vec<Target> {
        match self {
            WebLoad::Big => vec![Target {
                path: "/big".into(),
                body: Arc::from(pattern(BIG_BYTES)),
            }],
            WebLoad::Small => {
                let all = pattern(SMALL_BYTES * SMALL_FILES);
                all.chunks(SMALL_BYTES)
                    .enumerate()
                    .map(|(i, c)| Target {
                        path: format!("/s/{i}"),
                        body: Arc::from(c),
                    })
                    .collect()
            }
        }
    }
}

/// Which server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebServer {
    /// The web server of a MUK2 unikernel.
    Muk2,
    /// nginx, one worker.
    Nginx,
}

impl WebServer {
    /// Its name in scenario ids.
    pub fn label(self) -> &'static str {
        match self {
            WebServer::Muk2 => "muk2-web",
            WebServer::Nginx => "nginx",
        }
    }
}

/// The memory disk: the big file, its metadata, and room to spare.
fn disk_bytes() -> u64 {
    let file = BIG_BYTES as u64;
    file + file / 4 + (8 << 20)
}

/// The host role: the disk's size in bytes. Says `READY`, then `PORT N`.
pub fn serve_host(dc: &str, extra: &[String]) -> Result<()> {
    let disk = extra
        .first()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&b| b >= 1 << 20)
        .ok_or_else(|| BenchError::new(format!("bad disk size in {extra:?}")))?;
    let opts = ServerOptions {
        disk: DiskSpec::Memory(disk),
        format: FormatPolicy::Always,
        ..ServerOptions::default()
    };
    let hosted = |kind: ServerKind, server: Box<dyn muk::server::Server>| Hosted {
        name: kind.name().to_string(),
        nr: kind.default_nr(),
        stack_size: muk::host::DEFAULT_STACK,
        server,
    };
    let mut servers = Vec::new();
    for kind in [
        ServerKind::Systask,
        ServerKind::Pm,
        ServerKind::Echo,
        ServerKind::Rdisk,
        ServerKind::Fs,
        ServerKind::Ftp,
        ServerKind::Is,
    ] {
        let s = kind
            .build_with(&opts)
            .map_err(|e| BenchError::new(format!("{}: {e}", kind.name())))?;
        servers.push(hosted(kind, s));
    }
    let web = Web::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        "/",
        ServerKind::Fs.default_nr(),
    )
    .map_err(io("web: listen"))?;
    let port = web.local_addr().map_err(io("web: local address"))?.port();
    servers.push(hosted(ServerKind::Web, Box::new(web)));
    let dc = Dc::open(dc)?;
    let host = Host::start(&dc, servers, Runner::Coroutines)?;
    peer::sandbox_if_asked()?;
    peer::ready()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{PORT_TAG} {port}")
        .and_then(|()| out.flush())
        .map_err(io("stdout"))?;
    drop(out);
    let exits = host.join();
    Err(BenchError::new(format!("the unikernel stopped: {exits:?}")))
}

fn ftp_err(what: &str) -> impl FnOnce(FtpError) -> BenchError + '_ {
    move |e| BenchError::new(format!("m3ftp {what}: {e}"))
}

/// Put `files` into the FS of `dc` through FTP (waiting for FS to come up).
fn put_files(dc: &str, files: &[Target]) -> Result<()> {
    let opts = ConnectOptions {
        wait: START_WAIT,
        name: "bench-web-put".into(),
        ..ConnectOptions::default()
    };
    let mut client = FtpClient::connect(dc, &opts).map_err(ftp_err("connect"))?;
    let until = Instant::now() + START_WAIT;
    while let Err(e) = client.stat("/") {
        if Instant::now() >= until {
            return Err(ftp_err("stat /")(e));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut dirs: Vec<&str> = files
        .iter()
        .filter_map(|f| f.path.rsplit_once('/').map(|(d, _)| d))
        .filter(|d| !d.is_empty())
        .collect();
    dirs.dedup();
    for d in dirs {
        client.mkdir(d).map_err(ftp_err("mkdir"))?;
    }
    for f in files {
        client
            .put(
                &mut &f.body[..],
                f.body.len() as u64,
                "memory",
                &f.path,
                &mut |_, _| {},
            )
            .map_err(ftp_err("put"))?;
    }
    Ok(())
}

/// The server side of a session, stopped when dropped.
enum Running {
    Muk2 {
        // Dropped in order: the unikernel, then its DC.
        peer: Peer,
        _dc: ScratchDc,
    },
    Nginx(Nginx),
}

impl Running {
    /// The processes whose threads do the server's work.
    fn pids(&self) -> Vec<u32> {
        match self {
            Running::Muk2 { peer, .. } => vec![peer.pid()],
            Running::Nginx(n) => {
                let mut v = vec![n.pid()];
                v.extend(children(n.pid()));
                v
            }
        }
    }
}

/// The children of `pid` (nginx's worker), from `/proc`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The CPU time (ns) every thread of `pid` has run, from `schedstat`.
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// The calling thread's CPU time (ns).
fn my_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One server under one load, the caller as the client.
pub struct WebSession {
    // Dropped in order: the connections, then the server.
    load: Load,
    server: Running,
    requests: u64,
    cpu_start: (u64, u64),
    wall: Duration,
}

impl WebSession {
    /// Start `server` on the placement's server CPU with the files of `load`, pin the caller to
    /// its client CPU, connect, fetch every file once (checked).
    pub fn start(server: WebServer, load: WebLoad, placement: Placement) -> Result<WebSession> {
        let (server_cpu, client_cpu) = placement.cpus()?;
        let files = load.files();
        let (running, port) = match server {
            WebServer::Muk2 => {
                let dc = ScratchDc::create()?;
                let mut peer = Peer::spawn(
                    HOST_ROLE,
                    &[
                        dc.name().into(),
                        peer::cpu_arg(server_cpu),
                        disk_bytes().to_string(),
                    ],
                )?;
                let line = peer.read_line()?;
                let port: u16 = line
                    .strip_prefix(PORT_TAG)
                    .and_then(|p| p.trim().parse().ok())
                    .ok_or_else(|| BenchError::new(format!("the web host said {line:?}")))?;
                put_files(dc.name(), &files)?;
                (Running::Muk2 { peer, _dc: dc }, port)
            }
            WebServer::Nginx => {
                let dir = TmpDir::create()?;
                for f in &files {
                    dir.put(&format!("www{}", f.path), &f.body)?;
                }
                let n = Nginx::start(dir, server_cpu)?;
                let port = n.port();
                (Running::Nginx(n), port)
            }
        };
        if let Some(cpu) = client_cpu {
            pin(cpu)?;
        }
        let mut l = Load::connect(
            SocketAddr::from(([127, 0, 0, 1], port)),
            load.connections(),
            files,
        )?;
        l.check_all()
            .map_err(|e| e.context(format!("{} check", server.label())))?;
        let cpu_start = (running.pids().into_iter().map(cpu_ns).sum(), my_cpu_ns());
        Ok(WebSession {
            load: l,
            server: running,
            requests: 0,
            cpu_start,
            wall: Duration::ZERO,
        })
    }
}

impl Session for WebSession {
    fn run(&mut self, n: u64, record: Record<'_>) -> Result<Duration> {
        let took = self.load.run(n, record)?;
        self.requests += n;
        self.wall += took;
        Ok(took)
    }

    fn finish(self: Box<Self>) -> Result<Outcome> {
        let server: u64 = self.server.pids().into_iter().map(cpu_ns).sum();
        let client = my_cpu_ns();
        let note = (self.requests > 0).then(|| {
            let per = |ns: u64| ns as f64 / self.requests as f64 / 1e3;
            let busy = |ns: u64| 100.0 * ns as f64 / self.wall.as_nanos().max(1) as f64;
            let (s, c) = (
                server.saturating_sub(self.cpu_start.0),
                client.saturating_sub(self.cpu_start.1),
            );
            format!(
                "CPU per request: server {:.1} us, client {:.1} us (busy {:.0}% and {:.0}% of the \
                 batches' wall time, warm-up included)",
                per(s),
                per(c),
                busy(s),
                busy(c)
            )
        });
        Ok(Outcome {
            peer_samples: None,
            note,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_differ_and_have_their_sizes() {
        let small = WebLoad::Small.files();
        assert_eq!(small.len(), SMALL_FILES);
        assert!(small.iter().all(|f| f.body.len() == SMALL_BYTES));
        assert_ne!(small[0].body, small[1].body);
        assert_eq!(small[5].path, "/s/5");
        assert_eq!(WebLoad::Big.files()[0].body.len(), BIG_BYTES);
        assert!(disk_bytes() > BIG_BYTES as u64);
    }

    #[test]
    fn the_host_refuses_a_bad_disk_before_touching_a_dc() {
        let r = serve_host("nodc", &["12".to_string()]);
        assert!(r.is_err_and(|e| e.0.contains("disk")));
    }
}
