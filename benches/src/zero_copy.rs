//! Moving a payload between two processes without copying it through the kernel:
//!
//! - by buffer handle: the client owns a pool buffer with the payload; each transfer gives the
//!   buffer to the server and sends its handle with `sendrec`; the server views it in place
//!   (reads its first and last word), gives it back and replies;
//! - by `vcopy`: the client grants the server read access to its buffer once; each transfer
//!   sends the grant with `sendrec`, and the server copies the payload into a buffer of its own
//!   with `vcopy` (one copy, user space to user space, no kernel) and replies.
//!
//! The Unix-socket baseline is [`crate::stream`] with the same payload size.

use crate::clock::{Record, timed_loop};
use crate::error::{BenchError, Result};
use crate::fabric::{SERVER_NR, STALL, bind_client, client_nr};
use crate::peer::{self, Peer};
use crate::placement::{Placement, pin};
use crate::scratch::ScratchDc;
use crate::session::Session;
use m3ipc::{ANY, Access, CopyRef, Dc, Endpoint, GrantId, Handle, Message, Proc, SELF, Timeout};
use std::time::Duration;

/// Peer role: the by-handle server.
pub const HANDLE_ROLE: &str = "zc-handle-server";
/// Peer role: the vcopy server.
pub const VCOPY_ROLE: &str = "zc-vcopy-server";
/// `m_type` of a transfer.
const XFER: i32 = 10;
/// `m_type` of a reply.
const DONE: i32 = 0;

/// How the payload moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Pool-buffer handle, given and given back.
    Handle,
    /// `vcopy` from the client's granted buffer into the server's.
    Vcopy,
}

fn parse_size(extra: &[String]) -> Result<usize> {
    extra
        .first()
        .and_then(|s| s.parse().ok())
        .filter(|&s| (8..=m3ipc::pool::MAX_BUFFER).contains(&s))
        .ok_or_else(|| BenchError::new(format!("bad size {extra:?}")))
}

/// Receive transfers forever and answer each with `handle`'s work done.
fn serve_loop(me: &Proc, mut handle: impl FnMut(&Message) -> Result<()>) -> Result<()> {
    let mut m = Message::default();
    loop {
        me.receive(ANY, &mut m, Timeout::Forever)?;
        if m.m_type == XFER {
            handle(&m)?;
        }
        me.reply(m.m_source, &Message::new(DONE))?;
    }
}

/// The by-handle peer role.
pub fn serve_handle(dc: &str, extra: &[String]) -> Result<()> {
    let size = parse_size(extra)?;
    let dc = Dc::open(dc)?;
    let me = dc.bind_named(SERVER_NR, "zc-handle")?;
    peer::ready()?;
    serve_loop(&me, |m| {
        let h = m.handle();
        let view = me.buffer(h)?;
        let last = size.min(view.len()).saturating_sub(8) & !7;
        std::hint::black_box(view.read_u64(0)? ^ view.read_u64(last)?);
        me.give(h, m.m_source)?;
        Ok(())
    })
}

/// The vcopy peer role.
pub fn serve_vcopy(dc: &str, extra: &[String]) -> Result<()> {
    let size = parse_size(extra)?;
    let dc = Dc::open(dc)?;
    let me = dc.bind_named(SERVER_NR, "zc-vcopy")?;
    let own = me.alloc_buffer(size)?;
    peer::ready()?;
    serve_loop(&me, |m| {
        // The client, in the receive half of its sendrec, is a valid party at once, spinning
        // or asleep (m3ipc's vcopy reads its envelope): no retry.
        me.vcopy(
            m.m_source,
            CopyRef::Grant(m.grant()),
            0,
            SELF,
            CopyRef::Buffer(own),
            0,
            size,
        )
        .map_err(BenchError::from)
    })
}

/// The client side, in the caller's process.
pub struct ZeroCopySession {
    way: Way,
    me: Proc,
    server: Endpoint,
    buffer: Handle,
    grant: GrantId,
    _peer: Peer,
    _dc: ScratchDc,
}

impl ZeroCopySession {
    /// Create a DC (with a pool), start the peer, allocate and fill the payload, pin the caller.
    pub fn start(way: Way, size: usize, placement: Placement) -> Result<ZeroCopySession> {
        let (server_cpu, client_cpu) = placement.cpus()?;
        let dc = ScratchDc::create()?;
        let role = match way {
            Way::Handle => HANDLE_ROLE,
            Way::Vcopy => VCOPY_ROLE,
        };
        let peer = Peer::spawn(
            role,
            &[
                dc.name().into(),
                peer::cpu_arg(server_cpu),
                size.to_string(),
            ],
        )?;
        let (me, server) = bind_client(dc.dc(), client_nr(dc.dc().config()), "zc-client")?;
        let buffer = me.alloc_buffer(size)?;
        me.buffer(buffer)?.fill(0, size, 0x5a)?;
        let grant = match way {
            Way::Vcopy => me.grant(buffer, server, 0, size, Access::READ)?,
            Way::Handle => GrantId(0),
        };
        if let Some(cpu) = client_cpu {
            pin(cpu)?;
        }
        Ok(ZeroCopySession {
            way,
            me,
            server,
            buffer,
            grant,
            _peer: peer,
            _dc: dc,
        })
    }
}

impl Session for ZeroCopySession {
    fn run(&mut self, n: u64, record: Record<'_>) -> Result<Duration> {
        let (me, server, h, g, way) = (&self.me, self.server, self.buffer, self.grant, self.way);
        let mut m = Message::default();
        timed_loop(n, record, || {
            m = Message::new(XFER);
            match way {
                Way::Handle => {
                    me.give(h, server)?;
                    m.put_handle(h);
                }
                Way::Vcopy => m.put_grant(g),
            }
            me.sendrec(server, &mut m, STALL)?;
            if m.m_type != DONE {
                return Err(BenchError::new(format!("the server answered {}", m.m_type)));
            }
            Ok(())
        })
    }
}
