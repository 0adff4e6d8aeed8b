//! m3ftp GET of a 64 MiB file from a memory disk through FTP, FS and RDISK, the storage path of
//! the original system (430-530 MB/s there), in three deployments:
//!
//! - everything in MUK2: RDISK, FS and FTP as coroutines of one unikernel process;
//! - everything in MUK: the same three servers, one OS thread each (fabric policy Adaptive);
//! - RDISK outside: FS and FTP in a MUK2 unikernel, RDISK a unikernel process of its own.
//!
//! The servers are peer processes pinned to the server CPU (both of them, when RDISK is
//! outside); the caller is the m3ftp client ([`muk::ftp_client`]), pinned to the client CPU. At
//! start the client puts the file once and gets it back once, checking every byte; each timed
//! operation is then one whole GET into the client's memory.

use crate::clock::{Record, timed_loop};
use crate::error::{BenchError, Result};
use crate::peer::{self, Peer};
use crate::placement::{Placement, pin};
use crate::scratch::ScratchDc;
use crate::session::Session;
use m3ipc::Dc;
use muk::ftp_client::{ConnectOptions, FtpClient, FtpError};
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use muk::server::{ServerKind, ServerOptions};
use muk::{Host, Hosted, Runner};
use std::time::{Duration, Instant};

/// Peer role: a unikernel with the storage servers (RDISK included or not).
pub const HOST_ROLE: &str = "ftp-host";
/// Peer role: RDISK alone, as a MUK2 unikernel process of its own.
pub const RDISK_ROLE: &str = "ftp-rdisk";
/// Size of the file a GET fetches.
pub const FILE_BYTES: usize = 64 << 20;
/// The file's path on the server.
const REMOTE: &str = "/big";
/// Longest the client waits for the servers to come up (FS formats its disk first).
const START_WAIT: Duration = Duration::from_secs(20);

/// Where the storage servers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Deployment {
    /// RDISK, FS and FTP as coroutines of one MUK2 unikernel.
    Muk2,
    /// RDISK, FS and FTP as threads of one MUK process.
    Muk,
    /// FS and FTP in MUK2, RDISK a process of its own.
    RdiskOutside,
}

impl Deployment {
    /// Its name in scenario ids.
    pub fn label(self) -> &'static str {
        match self {
            Deployment::Muk2 => "muk2-all-inside",
            Deployment::Muk => "muk-threads-all-inside",
            Deployment::RdiskOutside => "muk2-rdisk-outside",
        }
    }
}

/// The memory disk's size: the file, its metadata, and room to spare.
pub fn disk_bytes() -> u64 {
    let file = FILE_BYTES as u64;
    file + file / 4 + (8 << 20)
}

/// One hosted storage server with a memory disk of `disk` bytes, formatted at start.
fn storage_server(kind: ServerKind, disk: u64) -> Result<Hosted> {
    let opts = ServerOptions {
        disk: DiskSpec::Memory(disk),
        format: FormatPolicy::Always,
        ..ServerOptions::default()
    };
    Ok(Hosted {
        name: kind.name().to_string(),
        nr: kind.default_nr(),
        stack_size: muk::host::DEFAULT_STACK,
        server: kind
            .build_with(&opts)
            .map_err(|e| BenchError::new(format!("{}: {e}", kind.name())))?,
    })
}

fn parse_disk(extra: &[String], at: usize) -> Result<u64> {
    extra
        .get(at)
        .and_then(|s| s.parse().ok())
        .filter(|&b: &u64| b >= 1 << 20)
        .ok_or_else(|| BenchError::new(format!("bad disk size in {extra:?}")))
}

/// Host `servers` in `dc` under `runner`, say ready, and serve until killed.
fn host_until_killed(dc: &str, servers: Vec<Hosted>, runner: Runner) -> Result<()> {
    let dc = Dc::open(dc)?;
    let host = Host::start(&dc, servers, runner)?;
    peer::sandbox_if_asked()?;
    peer::ready()?;
    let exits = host.join();
    Err(BenchError::new(format!("the unikernel stopped: {exits:?}")))
}

/// The host role: `muk2|muk`, `inside|outside` (RDISK), the disk's size in bytes.
pub fn serve_host(dc: &str, extra: &[String]) -> Result<()> {
    let runner = match extra.first().map(String::as_str) {
        Some("muk2") => Runner::Coroutines,
        Some("muk") => Runner::Threads,
        other => return Err(BenchError::new(format!("bad runner {other:?}"))),
    };
    let rdisk_inside = match extra.get(1).map(String::as_str) {
        Some("inside") => true,
        Some("outside") => false,
        other => return Err(BenchError::new(format!("bad RDISK place {other:?}"))),
    };
    let disk = parse_disk(extra, 2)?;
    let mut kinds = vec![ServerKind::Fs, ServerKind::Ftp];
    if rdisk_inside {
        kinds.insert(0, ServerKind::Rdisk);
    }
    let servers = kinds
        .into_iter()
        .map(|k| storage_server(k, disk))
        .collect::<Result<Vec<_>>>()?;
    host_until_killed(dc, servers, runner)
}

/// The RDISK role: the disk's size in bytes.
pub fn serve_rdisk(dc: &str, extra: &[String]) -> Result<()> {
    let disk = parse_disk(extra, 0)?;
    host_until_killed(
        dc,
        vec![storage_server(ServerKind::Rdisk, disk)?],
        Runner::Coroutines,
    )
}

/// The file's bytes: a pattern whose every byte depends on its offset, so that a chunk in the
/// wrong place is seen.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
        .collect()
}

fn ftp_err(what: &str) -> impl FnOnce(FtpError) -> BenchError + '_ {
    move |e| BenchError::new(format!("m3ftp {what}: {e}"))
}

/// The client side, in the caller's process. Fields drop in order: the client (its grants and
/// buffers) before the servers, the servers before the DC.
pub struct FtpGetSession {
    fetcher: Fetcher,
    _host: Peer,
    _rdisk: Option<Peer>,
    _dc: ScratchDc,
}

impl FtpGetSession {
    /// Start the servers of `deployment` on the placement's server CPU, pin the caller to its
    /// client CPU, put the file and get it back once, checked.
    pub fn start(deployment: Deployment, placement: Placement) -> Result<FtpGetSession> {
        let (server_cpu, client_cpu) = placement.cpus()?;
        let dc = ScratchDc::create()?;
        let cpu = peer::cpu_arg(server_cpu);
        let disk = disk_bytes().to_string();
        // RDISK first, so that FS finds it when it formats the disk.
        let rdisk = match deployment {
            Deployment::RdiskOutside => Some(Peer::spawn(
                RDISK_ROLE,
                &[dc.name().into(), cpu.clone(), disk.clone()],
            )?),
            Deployment::Muk2 | Deployment::Muk => None,
        };
        let (runner, place) = match deployment {
            Deployment::Muk2 => ("muk2", "inside"),
            Deployment::Muk => ("muk", "inside"),
            Deployment::RdiskOutside => ("muk2", "outside"),
        };
        let host = Peer::spawn(
            HOST_ROLE,
            &[dc.name().into(), cpu, runner.into(), place.into(), disk],
        )?;
        if let Some(cpu) = client_cpu {
            pin(cpu)?;
        }
        let fetcher = Fetcher::prepare(dc.name())?;
        Ok(FtpGetSession {
            fetcher,
            _host: host,
            _rdisk: rdisk,
            _dc: dc,
        })
    }
}

/// An m3ftp client that put the file and fetches it (also the client of the remote GET, on
/// another node).
pub struct Fetcher {
    client: FtpClient,
}

impl Fetcher {
    /// Connect to FTP in `dc` (waiting for the servers to come up), put the file and get it
    /// back once, every byte checked.
    pub fn prepare(dc: &str) -> Result<Fetcher> {
        let opts = ConnectOptions {
            wait: START_WAIT,
            name: "bench-m3ftp".into(),
            ..ConnectOptions::default()
        };
        let mut client = FtpClient::connect(dc, &opts).map_err(ftp_err("connect"))?;
        // FS formats the disk at start: wait (bounded) until it answers.
        let until = Instant::now() + START_WAIT;
        while let Err(e) = client.stat("/") {
            if Instant::now() >= until {
                return Err(ftp_err("stat /")(e));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let data = pattern(FILE_BYTES);
        client
            .put(
                &mut &data[..],
                FILE_BYTES as u64,
                "memory",
                REMOTE,
                &mut |_, _| {},
            )
            .map_err(ftp_err("put"))?;
        let mut fetcher = Fetcher { client };
        fetcher.get(Some(&data))?;
        Ok(fetcher)
    }

    /// One whole GET into memory; with `expect`, every byte checked against it (else the
    /// length only).
    pub fn get(&mut self, expect: Option<&[u8]>) -> Result<()> {
        let mut at = 0usize;
        let mut same = true;
        let got = self
            .client
            .get_with(
                REMOTE,
                &mut |chunk| {
                    if let Some(e) = expect {
                        same &= e.get(at..at + chunk.len()) == Some(chunk);
                    }
                    at += chunk.len();
                    Ok(())
                },
                &mut |_, _| {},
            )
            .map_err(ftp_err("get"))?;
        if got != FILE_BYTES as u64 || !same {
            return Err(BenchError::new(format!(
                "m3ftp get: {got} of {FILE_BYTES} bytes, {}",
                if same { "same bytes" } else { "other bytes" }
            )));
        }
        Ok(())
    }
}

impl Session for FtpGetSession {
    fn run(&mut self, n: u64, record: Record<'_>) -> Result<Duration> {
        timed_loop(n, record, || self.fetcher.get(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_shows_misplaced_chunks() {
        let p = pattern(1 << 16);
        assert_eq!(p.len(), 1 << 16);
        assert_ne!(p[..4096], p[4096..8192]);
        assert!(disk_bytes() > FILE_BYTES as u64);
    }

    #[test]
    fn roles_refuse_bad_arguments_before_touching_a_dc() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let refused = |r: Result<()>, what: &str| {
            assert!(r.as_ref().is_err_and(|e| e.0.contains(what)), "{r:?}");
        };
        refused(
            serve_host("nodc", &args(&["uk", "inside", "99999999"])),
            "runner",
        );
        refused(
            serve_host("nodc", &args(&["muk2", "beside", "99999999"])),
            "RDISK",
        );
        refused(serve_host("nodc", &args(&["muk", "inside", "12"])), "disk");
        refused(serve_rdisk("nodc", &args(&[])), "disk");
    }
}
