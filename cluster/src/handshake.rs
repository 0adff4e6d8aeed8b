//! The handshake on a fresh connection, before any call travels on it.
//!
//! 1. Each side writes its [`Hello`] at once, then reads the other's.
//! 2. Each side checks the other's hello ([`Hello::check_peer`], and whether that node is one of
//!    its peers), then writes its verdict as its first frame: a [`Command::Heartbeat`] to accept,
//!    or a [`Command::Goodbye`] whose text names the mismatch, and then closes.
//! 3. Each side reads the other's verdict.
//!
//! So both operators read the same reason for a refusal, whichever side found it, and neither
//! side sends a call on a connection the other has not accepted.

use crate::wire::{Command, Frame, FrameDecoder, Hello, Incoming, WireError};
use std::io::{self, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// This side refused the peer; the reason was sent to it.
    #[error("refused the peer: {0}")]
    Refused(String),
    /// The peer refused this side.
    #[error("the peer refused this node: {0}")]
    RefusedByPeer(String),
    /// The peer sent something that is not a handshake.
    #[error("malformed handshake: {0}")]
    Wire(#[from] WireError),
    /// The connection failed or timed out.
    #[error("connection failed during the handshake: {0}")]
    Io(#[from] io::Error),
}

/// A connection the handshake accepted: the peer's hello, and the decoder holding whatever
/// the peer sent after its verdict.
#[derive(Debug)]
pub struct Accepted {
    /// The peer's hello.
    pub hello: Hello,
    /// The stream's decoder, positioned after the peer's verdict.
    pub decoder: FrameDecoder,
}

/// Run the handshake on `stream` as the node whose hello is `ours`. `is_peer` says whether a
/// node id is one this node talks to (a node that is not is refused).
///
/// Errors: [`HandshakeError`]; on every error but `Io` the reason was written to the peer.
pub fn handshake(
    stream: &mut TcpStream,
    ours: &Hello,
    is_peer: impl Fn(u32) -> bool,
) -> Result<Accepted, HandshakeError> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    stream.set_nodelay(true)?;
    let mut out = Vec::new();
    ours.encode(&mut out)?;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    stream.write_all(&out)?;

    let mut decoder = FrameDecoder::new();
    let theirs = match next_item(stream, &mut decoder, deadline)? {
        Incoming::Hello(h) => h,
        // The decoder returns a hello first or an error; a frame here is impossible.
        Incoming::Frame(f) => return Err(WireError::BadHello(format!("{:?} first", f.cmd)).into()),
    };

    let verdict = match ours.check_peer(&theirs) {
        Err(m) => Err(m.to_string()),
        Ok(()) if !is_peer(theirs.node) => Err(format!(
            "node {} is not among the peers of node {}",
            theirs.node, ours.node
        )),
        Ok(()) => Ok(()),
    };
    let mut first = Frame::new(Command::Heartbeat, 0, 0, 0, 0);
    if let Err(why) = &verdict {
        first.cmd = Command::Goodbye;
        first.payload = truncated(why).into_bytes();
    }
    out.clear();
    first.encode(&mut out)?;
    let written = stream.write_all(&out);
    if let Err(why) = verdict {
        // Our reason stands even when the peer, refusing too, closed before it arrived.
        return Err(HandshakeError::Refused(why));
    }
    written?;

    match next_item(stream, &mut decoder, deadline)? {
        Incoming::Frame(f) if f.cmd == Command::Heartbeat => Ok(Accepted {
            hello: theirs,
            decoder,
        }),
        Incoming::Frame(f) if f.cmd == Command::Goodbye => Err(HandshakeError::RefusedByPeer(
            String::from_utf8_lossy(&f.payload).into_owned(),
        )),
        Incoming::Frame(f) => Err(WireError::BadHello(format!(
            "a {:?} frame before the peer's verdict",
            f.cmd
        ))
        .into()),
        Incoming::Hello(_) => Err(WireError::BadHello("a second hello".into()).into()),
    }
}

/// A reason cut to fit a goodbye frame.
pub(crate) fn truncated(why: &str) -> String {
    let max = crate::wire::MAX_TEXT;
    if why.len() <= max {
        return why.to_string();
    }
    let mut end = max;
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    why[..end].to_string()
}

/// Read until the decoder yields an item or `deadline` passes.
fn next_item(
    stream: &mut TcpStream,
    decoder: &mut FrameDecoder,
    deadline: Instant,
) -> Result<Incoming, HandshakeError> {
    loop {
        if let Some(item) = decoder.next_item()? {
            return Ok(item);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(
                io::Error::new(io::ErrorKind::TimedOut, "no handshake from the peer").into(),
            );
        }
        stream.set_read_timeout(Some(left))?;
        match decoder.read_from(stream) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection",
                )
                .into());
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(
                    io::Error::new(io::ErrorKind::TimedOut, "no handshake from the peer").into(),
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
}
