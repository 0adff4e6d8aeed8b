//! The servers a unikernel hosts, with the original's well-known slot numbers.
//!
//! Each server is written once against [`Ipc`] and runs under both runners.

use crate::ipc::Ipc;
use m3ipc::{ANY, Errno, Message, Result, Timeout};
use std::time::{Duration, Instant};

pub mod echo;
pub mod pm;
pub mod systask;

/// A server: its loop, run on a coroutine (MUK2) or a thread (MUK).
pub trait Server: Send {
    /// Serve until the host stops (`EDVSSHUTDOWN` from a blocking call) or a fatal error.
    fn serve(&mut self, ipc: &mut dyn Ipc) -> Result<()>;
}

/// The servers this crate knows, by the name a config uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// SYSTASK: the kernel-call server.
    Systask,
    /// PM: the process manager.
    Pm,
    /// A small echo/sink server for tests and benchmarks.
    Echo,
}

impl ServerKind {
    /// Every known server, in boot order.
    pub const ALL: [ServerKind; 3] = [ServerKind::Systask, ServerKind::Pm, ServerKind::Echo];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Systask => "systask",
            ServerKind::Pm => "pm",
            ServerKind::Echo => "echo",
        }
    }

    /// The server of that name, if there is one.
    pub fn from_name(name: &str) -> Option<ServerKind> {
        ServerKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// A fresh instance of this server, ready to be hosted.
    pub fn build(self) -> Box<dyn Server> {
        match self {
            ServerKind::Systask => Box::new(systask::Systask::new()),
            ServerKind::Pm => Box::new(pm::Pm::new()),
            ServerKind::Echo => Box::new(echo::Echo::new()),
        }
    }

    /// The original's well-known slot number (SYSTASK `-2`, PM `0`); echo uses 20.
    pub fn default_nr(self) -> i32 {
        match self {
            ServerKind::Systask => -2,
            ServerKind::Pm => 0,
            ServerKind::Echo => 20,
        }
    }
}

/// What a request-serving server does with each request, and periodically.
pub(crate) trait Handler {
    /// The reply to request `m` (`m.m_source` is the client, stamped by the fabric). An `Err`
    /// becomes an error reply, except `EDVSSHUTDOWN`, which ends the loop.
    fn handle(&mut self, ipc: &mut dyn Ipc, m: &Message) -> Result<Message>;

    /// How often [`Handler::tick`] runs, busy or idle; `None`: never.
    fn tick_every(&self) -> Option<Duration> {
        None
    }

    /// Periodic work (PM's sweep for dead clients).
    fn tick(&mut self, _ipc: &mut dyn Ipc) {}
}

/// The loop every server of this crate runs: receive from anyone, answer every request, never
/// stop on a client's mistake.
///
/// Ends with `Ok` when the host stops (`EDVSSHUTDOWN`), with `Err` when the server can no longer
/// serve (its slot or the DC is gone). Everything received is answered, notifications included
/// (their types are unknown requests): a `reply` reaches only a client waiting in `sendrec` to
/// us, so the answer to a real notification fails harmlessly, while a request that merely looks
/// like one (a client chooses its `m_type`) still gets its error reply. A reply that fails (the
/// client died or gave up) is dropped: the server stays healthy.
pub(crate) fn serve_requests(h: &mut impl Handler, ipc: &mut dyn Ipc) -> Result<()> {
    let every = h.tick_every();
    let mut next_tick = every.map(|d| Instant::now() + d);
    let mut m = Message::default();
    loop {
        if ipc.stopping() {
            return Ok(());
        }
        // With a tick, wait no longer than until it is due, so an idle server still ticks.
        let timeout = match next_tick {
            None => Timeout::Forever,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now()).as_millis();
                Timeout::Millis(u32::try_from(left).unwrap_or(u32::MAX).max(1))
            }
        };
        match ipc.receive(ANY, &mut m, timeout) {
            Ok(()) => {
                let reply = match h.handle(ipc, &m) {
                    Ok(r) => r,
                    Err(Errno::EDVSSHUTDOWN) => return Ok(()),
                    Err(e) => crate::protocol::error_reply(e),
                };
                // The client may have died or timed out meanwhile: its problem, not ours.
                let _ = ipc.reply(m.m_source, &reply);
            }
            Err(Errno::EDVSSHUTDOWN) => return Ok(()),
            // Nothing came, someone woke us, or a peer went away: serve on.
            Err(
                Errno::EDVSTIMEDOUT
                | Errno::EDVSAGAIN
                | Errno::EDVSWOKENUP
                | Errno::EDVSSRCDIED
                | Errno::EDVSDEADSRCDST
                | Errno::EDVSENDPOINT,
            ) => {}
            // Our slot, our rights or the DC are gone: nothing more can be served.
            Err(e) => return Err(e),
        }
        if let (Some(at), Some(d)) = (next_tick, every)
            && Instant::now() >= at
        {
            h.tick(ipc);
            next_tick = Some(Instant::now() + d);
        }
    }
}
