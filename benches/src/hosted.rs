//! Two servers of one host talking by `sendrec`: under MUK2 both are coroutines of one
//! scheduler thread (a rendezvous is a direct hand-off), under MUK each is an OS thread blocking
//! through the fabric. The same server code runs under both runners.
//!
//! The timed side is a server too (`Pinger`): it runs the batches the session asks for over a
//! channel and sends back the wall time and the samples.

use crate::clock::{self, timed_loop};
use crate::error::{BenchError, Result};
use crate::placement::{Placement, pin};
use crate::scratch::ScratchDc;
use crate::session::Session;
use m3ipc::{ANY, Errno, Message, Timeout, WaitPolicy};
use muk::{Host, Hosted, Ipc, Runner, Server};
use std::sync::mpsc;
use std::time::Duration;

/// Slot of the echo server.
const PONG_NR: i32 = 5;
/// Slot of the timed server.
const PING_NR: i32 = 6;
/// Longest the session waits for one batch.
const BATCH_LIMIT: Duration = Duration::from_secs(120);

/// Replies to every message with the message itself: the smallest server, so that what is
/// measured is the IPC. Pins its thread to `cpu` first, if given.
pub struct Ponger {
    /// CPU to pin the serving thread to.
    pub cpu: Option<usize>,
}

impl Server for Ponger {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        if let Some(cpu) = self.cpu {
            pin(cpu).map_err(|_| Errno::EDVSINVAL)?;
        }
        let mut m = Message::default();
        loop {
            match ipc.receive(ANY, &mut m, Timeout::Forever) {
                Ok(()) => {
                    let _ = ipc.reply(m.m_source, &m);
                }
                Err(Errno::EDVSSHUTDOWN) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// A batch: how many round trips, and whether to time each.
type Command = (u64, bool);
/// A batch's result: wall time and samples (ns), or why it failed.
type Answer = core::result::Result<(Duration, Vec<u64>), Errno>;

/// The timed server: runs batches of `sendrec` to the echo server on command.
struct Pinger {
    cpu: Option<usize>,
    commands: mpsc::Receiver<Command>,
    answers: mpsc::Sender<Answer>,
}

impl Server for Pinger {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        if let Some(cpu) = self.cpu {
            pin(cpu).map_err(|_| Errno::EDVSINVAL)?;
        }
        let dst = ipc.dc().getprocinfo(PONG_NR)?.endpoint;
        let mut m = Message::new(1);
        // Blocking on the channel stops this runner's thread: under MUK2 that is the whole
        // scheduler, which is right, nothing else is to run between batches. A closed channel
        // ends the session.
        while let Ok((n, timed)) = self.commands.recv() {
            let mut samples = Vec::new();
            let mut rec = |ns| samples.push(ns);
            let wall = timed_loop(n, timed.then_some(&mut rec as &mut dyn FnMut(u64)), || {
                ipc.sendrec(dst, &mut m, Timeout::Forever)
            });
            let answer = wall.map(|w| (w, samples));
            let failed = answer.is_err();
            if self.answers.send(answer).is_err() || failed {
                break;
            }
        }
        Ok(())
    }
}

/// The session: a host with the echo server and the timed server.
pub struct HostedSession {
    commands: Option<mpsc::Sender<Command>>,
    answers: mpsc::Receiver<Answer>,
    host: Option<Host>,
    _dc: ScratchDc,
}

impl HostedSession {
    /// Host both servers under `runner` (MUK threads use `policy`). Under MUK each thread is
    /// pinned (echo server to the placement's server CPU, timed server to its client CPU);
    /// under MUK2 the one scheduler thread is pinned to the client CPU.
    pub fn start(
        runner: Runner,
        policy: WaitPolicy,
        placement: Placement,
    ) -> Result<HostedSession> {
        // Calibrate the clock before the servers run, not inside a batch.
        clock::ns_per_tick();
        let (server_cpu, client_cpu) = placement.cpus()?;
        let dc = ScratchDc::create()?;
        let (ctx, crx) = mpsc::channel();
        let (atx, arx) = mpsc::channel();
        let pong_cpu = match runner {
            Runner::Threads => server_cpu,
            Runner::Coroutines => None,
        };
        let hosted = |name: &str, nr, server: Box<dyn Server>| Hosted {
            name: name.into(),
            nr,
            stack_size: 64 * 1024,
            server,
        };
        let host = Host::start_with(
            dc.dc(),
            vec![
                hosted("pong", PONG_NR, Box::new(Ponger { cpu: pong_cpu })),
                hosted(
                    "ping",
                    PING_NR,
                    Box::new(Pinger {
                        cpu: client_cpu,
                        commands: crx,
                        answers: atx,
                    }),
                ),
            ],
            runner,
            policy,
        )?;
        Ok(HostedSession {
            commands: Some(ctx),
            answers: arx,
            host: Some(host),
            _dc: dc,
        })
    }
}

impl Session for HostedSession {
    fn run(&mut self, n: u64, record: clock::Record<'_>) -> Result<Duration> {
        let tx = self
            .commands
            .as_ref()
            .ok_or_else(|| BenchError::new("session over"))?;
        tx.send((n, record.is_some()))
            .map_err(|_| BenchError::new("the timed server is gone"))?;
        let (wall, samples) = self
            .answers
            .recv_timeout(BATCH_LIMIT)
            .map_err(|_| BenchError::new("the timed server did not answer"))?
            .map_err(|e| BenchError::from(e).context("sendrec"))?;
        if let Some(rec) = record {
            samples.into_iter().for_each(rec);
        }
        Ok(wall)
    }
}

impl Drop for HostedSession {
    fn drop(&mut self) {
        // Close the channel first (the timed server returns), then stop the echo server.
        self.commands = None;
        if let Some(host) = self.host.take() {
            host.stop();
        }
    }
}
