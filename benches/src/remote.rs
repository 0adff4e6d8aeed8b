//! The remote path: a client on node 1 calling a server on node 0 ([`crate::nodes`]: two
//! region directories, two node daemons, over loopback or a veth pair between two network
//! namespaces, [`Link`]).
//!
//! - [`Op::Sendrec`]: `sendrec` of a message (64 bytes) to an echo server process (the fabric
//!   server, wait policy Adaptive). Path: client → node 1's daemon → TCP → node 0's daemon →
//!   server, and the reply back the same way.
//! - [`Op::Get`]: an m3ftp GET of the 64 MiB file ([`crate::ftp_get`]) from RDISK, FS and FTP
//!   in one MUK2 unikernel on node 0; FTP writes into the client's granted buffer through the
//!   daemons (`muk::storage::write_granted`). At start the client puts the file and gets it
//!   back once, checked.
//!
//! The client must live in node 1's region directory, so it is a peer process too (the
//! *driver*): the caller asks it for a batch on its standard input, the driver times each
//! operation with the time-stamp counter and answers with the ticks and the batch's wall time
//! (one machine, one counter: the caller converts). The pipe is outside the timed operations.
//! The wake-ups of both daemons, the server and the client are counted over the session.

use crate::clock::{self, Record, ticks};
use crate::error::{BenchError, Result, io};
use crate::fabric::{self, bind_client, client_nr};
use crate::ftp_get::{self, Fetcher};
use crate::netns::Link;
use crate::nodes::TwoNodes;
use crate::peer::{self, Peer};
use crate::placement::{Placement, pin};
use crate::session::{Outcome, Session};
use crate::wakeups::{WakeCounter, Who};
use m3ipc::{Dc, Message};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

/// Peer role: the client on node 1 (the driver).
pub const CLIENT_ROLE: &str = "remote-client";
/// A batch request to the driver: `RUN N 0|1` (1: report each operation's ticks).
const RUN: &str = "RUN";
/// The driver's line of per-operation ticks.
const TICKS: &str = "TICKS";
/// The driver's last line of a batch: its wall time in nanoseconds.
const DONE: &str = "DONE";
/// A batch's operations at most (the caller's batches are smaller).
const MAX_BATCH: u64 = 10_000_000;

/// What the client on node 1 does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A message-sized `sendrec` to an echo server.
    Sendrec,
    /// A whole m3ftp GET of the 64 MiB file.
    Get,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::Sendrec => "sendrec",
            Op::Get => "get",
        }
    }
}

/// The echo server's client: bind a user slot, wait for the server's remote slot, check one
/// call's echo.
fn sendrec_op(dc_name: &str) -> Result<Box<dyn FnMut() -> Result<()>>> {
    let dc = Dc::open(dc_name)?;
    let (me, server) = bind_client(&dc, client_nr(dc.config()), "remote-client")?;
    let mut m = Message::new(1);
    m.payload[0] = 0x5eed;
    me.sendrec(server, &mut m, fabric::STALL)
        .map_err(|e| BenchError::from(e).context("the first remote sendrec"))?;
    if m.payload[0] != 0x5eed {
        return Err(BenchError::new("the remote server echoed another message"));
    }
    Ok(Box::new(move || {
        m.m_type = 1;
        me.sendrec(server, &mut m, fabric::STALL)
            .map_err(|e| BenchError::from(e).context("remote sendrec"))
    }))
}

fn parse_run(line: &str) -> Result<(u64, bool)> {
    let mut w = line.split_whitespace();
    let (tag, n, rec) = (w.next(), w.next(), w.next());
    let n = n
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|&n| n <= MAX_BATCH);
    match (tag, n, rec) {
        (Some(RUN), Some(n), Some("0")) => Ok((n, false)),
        (Some(RUN), Some(n), Some("1")) => Ok((n, true)),
        _ => Err(BenchError::new(format!("bad batch request {line:?}"))),
    }
}

/// The driver role: `DC CPU sendrec|get`. Sets up, says `READY`, then runs the batches asked
/// on its standard input until it closes.
pub fn serve_client(dc: &str, extra: &[String]) -> Result<()> {
    let mut op: Box<dyn FnMut() -> Result<()>> = match extra.first().map(String::as_str) {
        Some("sendrec") => sendrec_op(dc)?,
        Some("get") => {
            let mut f = Fetcher::prepare(dc)?;
            Box::new(move || f.get(None))
        }
        other => return Err(BenchError::new(format!("bad remote operation {other:?}"))),
    };
    peer::ready()?;
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut samples: Vec<u64> = Vec::new();
    for line in stdin.lock().lines() {
        let (n, record) = parse_run(&line.map_err(io("stdin"))?)?;
        samples.clear();
        let start = Instant::now();
        for _ in 0..n {
            let t0 = ticks();
            op()?;
            if record {
                samples.push(ticks().wrapping_sub(t0));
            }
        }
        let wall = start.elapsed();
        if record {
            let text: Vec<String> = samples.iter().map(u64::to_string).collect();
            writeln!(out, "{TICKS} {}", text.join(" ")).map_err(io("stdout"))?;
        }
        writeln!(out, "{DONE} {}", wall.as_nanos())
            .and_then(|()| out.flush())
            .map_err(io("stdout"))?;
    }
    Ok(())
}

/// The caller's side: the nodes, the server on node 0, the driver on node 1.
pub struct RemoteSession {
    // Dropped in order: the client, the server, then the daemons and the directories.
    client: Peer,
    _server: Peer,
    _nodes: TwoNodes,
    ops: u64,
    wakeups: WakeCounter,
}

impl RemoteSession {
    /// Start both nodes (node 0's daemon and server on the placement's server CPU, node 1's
    /// daemon and the client on its client CPU) linked over `link`, set the client up, pin the
    /// caller.
    pub fn start(op: Op, link: Link, placement: Placement) -> Result<RemoteSession> {
        let (server_cpu, client_cpu) = placement.cpus()?;
        clock::ns_per_tick();
        let nodes = TwoNodes::start([server_cpu, client_cpu], link)?;
        let dc = nodes.dc().to_string();
        let cpu = peer::cpu_arg(server_cpu);
        let server = match op {
            Op::Sendrec => nodes.spawn(
                0,
                fabric::SERVER_ROLE,
                &[dc.clone(), cpu, "adaptive".into()],
            )?,
            Op::Get => nodes.spawn(
                0,
                ftp_get::HOST_ROLE,
                &[
                    dc.clone(),
                    cpu,
                    "muk2".into(),
                    "inside".into(),
                    ftp_get::disk_bytes().to_string(),
                ],
            )?,
        };
        let client = nodes.spawn(
            1,
            CLIENT_ROLE,
            &[dc, peer::cpu_arg(client_cpu), op.label().into()],
        )?;
        if let Some(cpu) = client_cpu {
            pin(cpu)?;
        }
        let [d0, d1] = nodes.daemon_pids();
        let wakeups = WakeCounter::start(vec![
            ("daemon-0".into(), Who::Process(d0)),
            ("daemon-1".into(), Who::Process(d1)),
            ("server".into(), Who::Process(server.pid())),
            ("client".into(), Who::Process(client.pid())),
        ]);
        Ok(RemoteSession {
            client,
            _server: server,
            _nodes: nodes,
            ops: 0,
            wakeups,
        })
    }

    fn line(&mut self, tag: &str) -> Result<String> {
        let line = self.client.read_line()?;
        line.strip_prefix(tag)
            .map(str::to_string)
            .ok_or_else(|| BenchError::new(format!("the remote client said {line:?}")))
    }
}

impl Session for RemoteSession {
    fn run(&mut self, n: u64, record: Record<'_>) -> Result<Duration> {
        let input = self.client.stdin()?;
        writeln!(input, "{RUN} {n} {}", u8::from(record.is_some()))
            .and_then(|()| input.flush())
            .map_err(io("the remote client's input"))?;
        if let Some(rec) = record {
            let text = self.line(TICKS)?;
            let mut seen = 0u64;
            for t in text.split_whitespace() {
                let t: u64 = t
                    .parse()
                    .map_err(|_| BenchError::new(format!("bad ticks {t:?}")))?;
                rec(clock::to_ns(t));
                seen += 1;
            }
            if seen != n {
                return Err(BenchError::new(format!(
                    "the remote client timed {seen} of {n} operations"
                )));
            }
        }
        let wall: u64 = self
            .line(DONE)?
            .trim()
            .parse()
            .map_err(|_| BenchError::new("bad batch time from the remote client"))?;
        self.ops += n;
        Ok(Duration::from_nanos(wall))
    }

    fn finish(self: Box<Self>) -> Result<Outcome> {
        Ok(Outcome {
            peer_samples: None,
            note: self.wakeups.report(self.ops),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_requests_are_checked() {
        assert_eq!(parse_run("RUN 5 1").ok(), Some((5, true)));
        assert_eq!(parse_run("RUN 0 0").ok(), Some((0, false)));
        for bad in [
            "RUN 5",
            "RUN x 1",
            "RUN 5 2",
            "GO 5 1",
            "",
            "RUN 99999999999 0",
        ] {
            assert!(parse_run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_refuse_bad_arguments_before_touching_a_dc() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let refused = |r: Result<()>, what: &str| {
            assert!(r.as_ref().is_err_and(|e| e.0.contains(what)), "{r:?}");
        };
        refused(serve_client("nodc", &args(&["put"])), "remote operation");
        refused(
            crate::nodes::serve_daemon("no.toml", &args(&["dc"])),
            "DC NODE",
        );
        refused(
            crate::nodes::serve_daemon("no.toml", &args(&["dc", "x"])),
            "bad node",
        );
        refused(crate::tcp::serve("-", &args(&["udp"])), "TCP mode");
    }
}
