//! Many client processes calling one server: the caller is the server (it receives and replies
//! as fast as it can, and that is timed: requests served per second), the clients are peer
//! processes calling `sendrec` in a loop and timing each round trip themselves (the latency a
//! client sees, queueing behind the others included).
//!
//! A client keeps a round trip's time only when the server answered it inside a timed batch
//! (the reply's type says so), so start-up and warm-up do not count. At the end each client is
//! answered STOP and prints its samples (in counter ticks; the parent converts them: one
//! machine, one counter).

use crate::clock::{self, Record, ticks, timed_loop};
use crate::error::{BenchError, Result};
use crate::fabric::{SERVER_NR, STALL, bind_client, client_nr};
use crate::peer::{self, Peer};
use crate::placement::{Placement, pin};
use crate::scratch::ScratchDc;
use crate::session::{Outcome, Session};
use m3ipc::{ANY, Dc, Message, Proc, Timeout, WaitPolicy};
use std::io::Write;
use std::time::Duration;

/// Peer role: one client.
pub const ROLE: &str = "fan-client";
/// Reply type: answered inside a timed batch, keep the sample.
const TIMED: i32 = 1;
/// Reply type: answered outside one (warm-up), drop it.
const UNTIMED: i32 = 2;
/// Reply type: the run is over, report and exit.
const STOP: i32 = 3;
/// Samples a client keeps at most.
const MAX_SAMPLES: usize = 2_000_000;
/// First word of a client's report line.
const TAG: &str = "SAMPLES";

/// The client peer role: `DC CPU NR`.
pub fn serve(dc: &str, extra: &[String]) -> Result<()> {
    let nr: i32 = extra
        .first()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError::new(format!("bad slot {extra:?}")))?;
    let dc = Dc::open(dc)?;
    let (me, server) = bind_client(&dc, nr, "fan-client")?;
    peer::ready()?;
    let mut samples: Vec<u64> = Vec::new();
    // An hour: the server only leaves a request waiting while the parent is between scenarios.
    let patience = Timeout::Millis(3_600_000);
    loop {
        let mut m = Message::new(1);
        let t0 = ticks();
        me.sendrec(server, &mut m, patience)?;
        let dt = ticks().wrapping_sub(t0);
        match m.m_type {
            TIMED if samples.len() < MAX_SAMPLES => samples.push(dt),
            STOP => break,
            _ => {}
        }
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let text: Vec<String> = samples.iter().map(u64::to_string).collect();
    writeln!(out, "{TAG} {}", text.join(" "))
        .and_then(|()| out.flush())
        .map_err(crate::error::io("stdout"))
}

/// The server side, in the caller's process, with its clients.
pub struct FanInSession {
    // Dropped first: the clients die before the server unbinds, so none reports it dead.
    peers: Vec<Peer>,
    me: Proc,
    _dc: ScratchDc,
}

impl FanInSession {
    /// Create a DC, bind the server, start `clients` client peers (all on the placement's
    /// client CPU), pin the caller to the server CPU.
    pub fn start(clients: usize, placement: Placement) -> Result<FanInSession> {
        let (server_cpu, client_cpu) = placement.cpus()?;
        clock::ns_per_tick();
        let dc = ScratchDc::create()?;
        let first = client_nr(dc.dc().config());
        let me = dc.dc().bind_named(SERVER_NR, "fan-server")?;
        me.set_wait_policy(WaitPolicy::Adaptive);
        let mut peers = Vec::with_capacity(clients);
        for i in 0..clients {
            peers.push(Peer::spawn(
                ROLE,
                &[
                    dc.name().into(),
                    peer::cpu_arg(client_cpu),
                    (first + i as i32).to_string(),
                ],
            )?);
        }
        if let Some(cpu) = server_cpu {
            pin(cpu)?;
        }
        Ok(FanInSession { peers, me, _dc: dc })
    }
}

impl Session for FanInSession {
    fn run(&mut self, n: u64, record: Record<'_>) -> Result<Duration> {
        let me = &self.me;
        let reply = Message::new(if record.is_some() { TIMED } else { UNTIMED });
        let mut m = Message::default();
        // The server's own per-request times mean little (a request is often already
        // waiting); the clients' samples are the latency.
        timed_loop(n, None, || {
            me.receive(ANY, &mut m, STALL)?;
            me.reply(m.m_source, &reply).map_err(BenchError::from)
        })
    }

    fn finish(mut self: Box<Self>) -> Result<Outcome> {
        let stop = Message::new(STOP);
        let mut stopped = std::collections::HashSet::new();
        let mut m = Message::default();
        // Each client has (or soon has) one request waiting; answer every one STOP once.
        let mut budget = self.peers.len() * 4 + 16;
        while stopped.len() < self.peers.len() && budget > 0 {
            budget -= 1;
            self.me.receive(ANY, &mut m, STALL)?;
            self.me.reply(m.m_source, &stop)?;
            stopped.insert(m.m_source);
        }
        if stopped.len() < self.peers.len() {
            // A client that was never answered STOP would not report: do not wait for it.
            return Err(BenchError::new(format!(
                "only {} of {} clients could be stopped",
                stopped.len(),
                self.peers.len()
            )));
        }
        let mut samples = Vec::new();
        for p in &mut self.peers {
            let line = p.read_line()?;
            let nums = line
                .strip_prefix(TAG)
                .ok_or_else(|| BenchError::new("a client sent no samples"))?;
            samples.extend(
                nums.split_whitespace()
                    .filter_map(|s| s.parse::<u64>().ok())
                    .map(clock::to_ns),
            );
        }
        Ok(Outcome {
            peer_samples: Some(samples),
            note: None,
        })
    }
}
