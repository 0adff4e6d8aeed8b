//! Process ↔ process `sendrec` through the fabric: a server peer (a plain fabric process, or a
//! MUK2 unikernel hosting one server coroutine) and the caller as the client.
//!
//! The server binds slot [`SERVER_NR`] (a system process, as PM is) and echoes every request;
//! the client binds the first user slot, so it may only `sendrec`, like any user process.

use crate::clock::{Record, timed_loop};
use crate::error::{BenchError, Result};
use crate::hosted::Ponger;
use crate::peer::{self, Peer};
use crate::placement::{Placement, pin};
use crate::scratch::ScratchDc;
use crate::session::Session;
use m3ipc::{ANY, Dc, DcConfig, Endpoint, Message, Proc, Timeout, WaitPolicy};
use muk::{Host, Hosted, Runner};
use std::time::Duration;

/// Peer role: a fabric server process.
pub const SERVER_ROLE: &str = "fabric-server";
/// Peer role: a MUK2 unikernel hosting the server as a coroutine.
pub const MUK2_ROLE: &str = "muk2-server";
/// Slot of the server.
pub const SERVER_NR: i32 = 0;
/// Longest a client waits for one answer (a dead server).
pub const STALL: Timeout = Timeout::Millis(10_000);
/// The pause before each request of an `asleep` scenario: long enough for every spin to end,
/// so that each request finds the server side asleep (MUK2: every coroutine blocked and the
/// scheduler asleep on its doorbell).
pub const ASLEEP_PAUSE: Duration = Duration::from_millis(1);

/// The first user slot of a DC with `config`: the client's.
pub fn client_nr(config: &DcConfig) -> i32 {
    config.nr_sysprocs as i32 - config.nr_tasks as i32
}

/// Name of a wait policy on command lines and in tables.
pub fn policy_label(p: WaitPolicy) -> &'static str {
    match p {
        WaitPolicy::Adaptive => "adaptive",
        WaitPolicy::Block => "block",
        WaitPolicy::Spin => "spin",
    }
}

fn parse_policy(s: &str) -> Result<WaitPolicy> {
    match s {
        "adaptive" => Ok(WaitPolicy::Adaptive),
        "block" => Ok(WaitPolicy::Block),
        "spin" => Ok(WaitPolicy::Spin),
        _ => Err(BenchError::new(format!("unknown policy {s:?}"))),
    }
}

/// The fabric server role: echo every request, forever (the parent kills it).
pub fn serve(dc: &str, extra: &[String]) -> Result<()> {
    let policy = parse_policy(extra.first().map_or("", String::as_str))?;
    let dc = Dc::open(dc)?;
    let me = dc.bind_named(SERVER_NR, "bench-server")?;
    me.set_wait_policy(policy);
    peer::ready()?;
    let mut m = Message::default();
    loop {
        me.receive(ANY, &mut m, Timeout::Forever)?;
        me.reply(m.m_source, &m)?;
    }
}

/// The MUK2 server role: a unikernel with one echo server, until killed.
pub fn serve_muk2(dc: &str) -> Result<()> {
    let dc = Dc::open(dc)?;
    let host = Host::start(
        &dc,
        vec![Hosted {
            name: "pong".into(),
            nr: SERVER_NR,
            stack_size: 64 * 1024,
            server: Box::new(Ponger { cpu: None }),
        }],
        Runner::Coroutines,
    )?;
    peer::sandbox_if_asked()?;
    peer::ready()?;
    let exits = host.join();
    Err(BenchError::new(format!("the unikernel stopped: {exits:?}")))
}

/// Which server a [`FabricSession`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// A plain fabric process with this wait policy (the client uses it too).
    Process(WaitPolicy),
    /// A MUK2 coroutine in a unikernel process (the client waits adaptively).
    Muk2,
}

/// The client side, in the caller's process.
pub struct FabricSession {
    pause: Duration,
    me: Proc,
    server: Endpoint,
    m: Message,
    _peer: Peer,
    _dc: ScratchDc,
}

impl FabricSession {
    /// Create a DC, start the server peer, bind the client, pin the caller.
    pub fn start(kind: ServerKind, placement: Placement) -> Result<FabricSession> {
        FabricSession::start_paused(kind, placement, Duration::ZERO)
    }

    /// [`FabricSession::start`], the client sleeping `pause` before each request (not timed).
    pub fn start_paused(
        kind: ServerKind,
        placement: Placement,
        pause: Duration,
    ) -> Result<FabricSession> {
        let (server_cpu, client_cpu) = placement.cpus()?;
        let dc = ScratchDc::create()?;
        let cpu = peer::cpu_arg(server_cpu);
        let (peer, policy) = match kind {
            ServerKind::Process(p) => (
                Peer::spawn(
                    SERVER_ROLE,
                    &[dc.name().into(), cpu, policy_label(p).into()],
                )?,
                p,
            ),
            ServerKind::Muk2 => (
                Peer::spawn(MUK2_ROLE, &[dc.name().into(), cpu])?,
                WaitPolicy::Adaptive,
            ),
        };
        let (me, server) = bind_client(dc.dc(), client_nr(dc.dc().config()), "bench-client")?;
        me.set_wait_policy(policy);
        if let Some(cpu) = client_cpu {
            pin(cpu)?;
        }
        Ok(FabricSession {
            pause,
            me,
            server,
            m: Message::new(1),
            _peer: peer,
            _dc: dc,
        })
    }
}

impl FabricSession {
    /// The client's slot.
    pub fn client_nr(&self) -> i32 {
        self.me.nr()
    }
}

/// Bind slot `nr` of `dc` and wait for the server's endpoint.
pub fn bind_client(dc: &Dc, nr: i32, name: &str) -> Result<(Proc, Endpoint)> {
    let me = dc
        .bind_named(nr, name)
        .map_err(|e| BenchError::from(e).context(format!("bind {nr}")))?;
    let server = dc
        .wait4bind(SERVER_NR, Timeout::Millis(10_000))
        .map_err(|e| BenchError::from(e).context("waiting for the server"))?;
    Ok((me, server))
}

impl Session for FabricSession {
    /// With a pause, the batch's time is that of its requests alone (the pauses left out).
    fn run(&mut self, n: u64, mut record: Record<'_>) -> Result<Duration> {
        let (me, server, m) = (&self.me, self.server, &mut self.m);
        let mut call = || {
            m.m_type = 1;
            me.sendrec(server, m, STALL)
                .map_err(|e| BenchError::from(e).context("sendrec"))
        };
        if self.pause.is_zero() {
            return timed_loop(n, record, call);
        }
        let mut busy = Duration::ZERO;
        for _ in 0..n {
            std::thread::sleep(self.pause);
            busy += match record {
                Some(ref mut rec) => {
                    let mut each = |ns| rec(ns);
                    timed_loop(1, Some(&mut each), &mut call)?
                }
                None => timed_loop(1, None, &mut call)?,
            };
        }
        Ok(busy)
    }
}
