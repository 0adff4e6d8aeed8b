//! `notify` between two processes: the latency of a notify until the receiver has it (as a
//! round trip: notify, and the peer notifies back), and a flood of notifies to a receiver that
//! takes them as fast as it can, where repeats coalesce.
//!
//! Both sides are system processes (only those may be notified); both wait adaptively.

use crate::clock::{Record, timed_loop};
use crate::error::{BenchError, Result};
use crate::fabric::{SERVER_NR, STALL, bind_client};
use crate::peer::{self, Peer};
use crate::placement::{Placement, pin};
use crate::scratch::ScratchDc;
use crate::session::{Outcome, Session};
use m3ipc::message::is_notify;
use m3ipc::{ANY, Dc, Endpoint, Message, Proc, Timeout};
use std::time::Duration;

/// Peer role: receive notifies (and echo them, or count them).
pub const ROLE: &str = "notify-server";
/// Slot of the notifying side (a system process).
const CLIENT_NR: i32 = 1;
/// `m_type` of the request asking how many notifies arrived.
const QUERY: i32 = 7;

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Notify, and wait for the peer's notify back: two notify → receive hops.
    RoundTrip,
    /// Notify as fast as possible; the peer receives what it can.
    Flood,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::RoundTrip => "echo",
            Mode::Flood => "count",
        }
    }
}

/// The peer role: receive forever; echo each notify (`echo`) or count it (`count`); answer a
/// query request with the count.
pub fn serve(dc: &str, extra: &[String]) -> Result<()> {
    let echo = match extra.first().map(String::as_str) {
        Some("echo") => true,
        Some("count") => false,
        other => return Err(BenchError::new(format!("bad mode {other:?}"))),
    };
    let dc = Dc::open(dc)?;
    let me = dc.bind_named(SERVER_NR, "notify-server")?;
    peer::ready()?;
    let mut received: u64 = 0;
    let mut m = Message::default();
    loop {
        me.receive(ANY, &mut m, Timeout::Forever)?;
        if is_notify(m.m_type) {
            received += 1;
            if echo {
                me.notify(m.m_source)?;
            }
        } else {
            let mut reply = Message::new(QUERY);
            reply.m1_mut().m1p3 = received;
            me.reply(m.m_source, &reply)?;
        }
    }
}

/// The notifying side, in the caller's process.
pub struct NotifySession {
    mode: Mode,
    me: Proc,
    server: Endpoint,
    sent: u64,
    _peer: Peer,
    _dc: ScratchDc,
}

impl NotifySession {
    /// Create a DC, start the peer, bind, pin the caller.
    pub fn start(mode: Mode, placement: Placement) -> Result<NotifySession> {
        let (server_cpu, client_cpu) = placement.cpus()?;
        let dc = ScratchDc::create()?;
        let peer = Peer::spawn(
            ROLE,
            &[
                dc.name().into(),
                peer::cpu_arg(server_cpu),
                mode.label().into(),
            ],
        )?;
        let (me, server) = bind_client(dc.dc(), CLIENT_NR, "notifier")?;
        if let Some(cpu) = client_cpu {
            pin(cpu)?;
        }
        Ok(NotifySession {
            mode,
            me,
            server,
            sent: 0,
            _peer: peer,
            _dc: dc,
        })
    }
}

impl Session for NotifySession {
    fn run(&mut self, n: u64, record: Record<'_>) -> Result<Duration> {
        let (me, server, sent) = (&self.me, self.server, &mut self.sent);
        let mut m = Message::default();
        match self.mode {
            Mode::RoundTrip => timed_loop(n, record, || {
                me.notify(server)?;
                me.receive(ANY, &mut m, STALL)?;
                if !is_notify(m.m_type) || m.m_source != server {
                    return Err(BenchError::new(format!(
                        "expected a notify from {server}, got type {} from {}",
                        m.m_type, m.m_source
                    )));
                }
                Ok(())
            }),
            Mode::Flood => timed_loop(n, record, || {
                *sent += 1;
                me.notify(server).map_err(BenchError::from)
            }),
        }
    }

    fn finish(self: Box<Self>) -> Result<Outcome> {
        if self.mode == Mode::RoundTrip {
            return Ok(Outcome::default());
        }
        // Let the receiver drain what is pending, then ask.
        std::thread::sleep(Duration::from_millis(20));
        let mut m = Message::new(QUERY);
        self.me.sendrec(self.server, &mut m, STALL)?;
        let received = m.m1().m1p3;
        Ok(Outcome {
            peer_samples: None,
            note: Some(format!(
                "{} notifies, {} receipts: {:.1} per receipt",
                self.sent,
                received,
                self.sent as f64 / received.max(1) as f64
            )),
        })
    }
}
