//! Frames: what follows the handshake on a connection.
//!
//! A frame is a 32-byte header, the 64-byte message, then `len` payload bytes:
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 2 | `cmd` | [`Command`] |
//! | 2 | 2 | `flags` | reserved, must be 0 |
//! | 4 | 4 | `dc` | the DC's id |
//! | 8 | 4 | `src` | source endpoint |
//! | 12 | 4 | `dst` | destination endpoint |
//! | 16 | 8 | `seq` | the sender's sequence number on this connection (an ack echoes its request's) |
//! | 24 | 4 | `rcode` | result of an ack: 0 or a negative EDVS number |
//! | 28 | 4 | `len` | payload bytes |
//! | 32 | 64 | message | the 64-byte message, as its raw bytes |
//!
//! Header fields are little-endian. The message travels as its raw bytes (the handshake has
//! checked that both nodes share a byte order). Each command says how long its payload may be
//! ([`Command::payload_rule`]); the decoder refuses a frame that breaks the rule before it reads
//! the payload, so a hostile length never makes it allocate.

use super::WireError;
use m3ipc::{Endpoint, Message};

/// Bytes of a frame header.
pub const HEADER_SIZE: usize = 32;
/// Bytes of a frame without payload: header and message.
pub const FRAME_SIZE: usize = HEADER_SIZE + m3ipc::message::MESSAGE_SIZE;
/// Bytes of one data chunk at most (a `vcopy` across nodes moves bytes in chunks of this size).
pub const MAX_CHUNK: usize = 1 << 20;
/// Bytes of a copy descriptor, which leads the payload of copy frames.
pub const COPY_DESC_SIZE: usize = 64;
/// Bytes of text at most (a goodbye's reason).
pub const MAX_TEXT: usize = 1024;
/// Bytes of payload at most, for any command.
pub const MAX_PAYLOAD: usize = COPY_DESC_SIZE + MAX_CHUNK;

/// What a frame asks for. An acknowledgement echoes the `seq` of the frame it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Command {
    /// Are you there? (`seq` is the probe's id.)
    Heartbeat = 1,
    /// Yes: answers a [`Command::Heartbeat`] with its `seq`.
    HeartbeatAck = 2,
    /// The sender closes the connection; the payload says why (UTF-8 text).
    Goodbye = 3,
    /// `send(dst, msg)` from the remote endpoint `src`: deliver, then ack.
    Send = 16,
    /// The [`Command::Send`] with this `seq` was received by `dst` (`rcode` 0) or failed.
    SendAck = 17,
    /// `sendrec(dst, msg)` from the remote endpoint `src`: deliver; the answer is a
    /// [`Command::Reply`].
    Sendrec = 18,
    /// The reply to a [`Command::Sendrec`] (`rcode` 0), or its failure (`rcode` < 0).
    Reply = 19,
    /// `notify(dst)` from `src`.
    Notify = 20,
    /// `senda(dst, msg)` from `src`: deliver, no answer.
    Senda = 21,
    /// `wakeup(dst)` from `src`.
    Wakeup = 22,
    /// The reply to the [`Command::Sendrec`] with this `seq` is a request of its own: the
    /// replier answered with a `sendrec` (`src` the replier, `dst` the client). Deliver it as
    /// the reply; the client's answer goes back as a [`Command::Reply`] whose `seq` is the
    /// payload (8 bytes, little endian).
    ReplyRequest = 23,
    /// `src` is now bound on the sending node; the payload is its name (UTF-8, may be empty).
    Bound = 32,
    /// `src` is no longer bound on the sending node; `rcode` says why.
    Unbound = 33,
    /// Ask for a copy between grants: the payload is the copy descriptor.
    CopyRequest = 48,
    /// Bytes of a copy: the copy descriptor, then up to [`MAX_CHUNK`] bytes.
    CopyData = 49,
    /// A copy, or one chunk of it, is done (`rcode` 0) or failed.
    CopyAck = 50,
}

/// How long a command's payload may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadRule {
    /// No payload.
    Empty,
    /// UTF-8 text of at most this many bytes.
    Text(usize),
    /// Between `min` and `max` bytes, inclusive.
    Bytes {
        /// Fewest bytes.
        min: usize,
        /// Most bytes.
        max: usize,
    },
}

impl Command {
    /// Every command, in wire order.
    pub const ALL: [Command; 16] = [
        Command::Heartbeat,
        Command::HeartbeatAck,
        Command::Goodbye,
        Command::Send,
        Command::SendAck,
        Command::Sendrec,
        Command::Reply,
        Command::Notify,
        Command::Senda,
        Command::Wakeup,
        Command::ReplyRequest,
        Command::Bound,
        Command::Unbound,
        Command::CopyRequest,
        Command::CopyData,
        Command::CopyAck,
    ];

    /// The command numbered `code`, if there is one.
    pub fn from_code(code: u16) -> Option<Command> {
        Command::ALL.iter().copied().find(|c| *c as u16 == code)
    }

    /// How long this command's payload may be.
    pub const fn payload_rule(self) -> PayloadRule {
        match self {
            Command::Goodbye => PayloadRule::Text(MAX_TEXT),
            Command::Bound => PayloadRule::Text(m3ipc::MAX_NAME),
            Command::CopyRequest => PayloadRule::Bytes {
                min: COPY_DESC_SIZE,
                max: COPY_DESC_SIZE,
            },
            Command::CopyData => PayloadRule::Bytes {
                min: COPY_DESC_SIZE,
                max: MAX_PAYLOAD,
            },
            Command::ReplyRequest => PayloadRule::Bytes { min: 8, max: 8 },
            _ => PayloadRule::Empty,
        }
    }
}

/// One frame, decoded or to be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What it asks for.
    pub cmd: Command,
    /// The DC's id.
    pub dc: u32,
    /// Source endpoint.
    pub src: Endpoint,
    /// Destination endpoint.
    pub dst: Endpoint,
    /// The sender's sequence number (an ack echoes its request's).
    pub seq: u64,
    /// An ack's result: 0 or a negative EDVS number.
    pub rcode: i32,
    /// The message.
    pub msg: Message,
    /// The payload; its length obeys [`Command::payload_rule`].
    pub payload: Vec<u8>,
}

/// A frame header, decoded and checked, before its payload has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    pub cmd: Command,
    pub dc: u32,
    pub src: Endpoint,
    pub dst: Endpoint,
    pub seq: u64,
    pub rcode: i32,
    pub len: usize,
}

impl Frame {
    /// A frame with an empty message and no payload.
    pub fn new(cmd: Command, dc: u32, src: Endpoint, dst: Endpoint, seq: u64) -> Frame {
        Frame {
            cmd,
            dc,
            src,
            dst,
            seq,
            rcode: 0,
            msg: Message::default(),
            payload: Vec::new(),
        }
    }

    /// Bytes this frame takes on the wire.
    pub fn wire_len(&self) -> usize {
        FRAME_SIZE + self.payload.len()
    }

    /// Append the frame's bytes to `out`. Frames that queue up are encoded one after the other
    /// into one buffer and written together.
    ///
    /// Errors: [`WireError::BadPayload`] when the payload breaks the command's rule (the peer
    /// would refuse it); nothing is appended then.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let head = self.encode_head()?;
        out.reserve(self.wire_len());
        out.extend_from_slice(&head);
        out.extend_from_slice(&self.payload);
        Ok(())
    }

    /// The frame's bytes before its payload (header and message), for a writer that sends the
    /// payload from where it lies. Errors as [`Frame::encode`].
    pub fn encode_head(&self) -> Result<[u8; FRAME_SIZE], WireError> {
        self.encode_head_with_tail(0)
    }

    /// [`Frame::encode_head`] of this frame with `tail` more payload bytes that the sender
    /// adds after [`Frame::payload`] (not a text payload's).
    pub fn encode_head_with_tail(&self, tail: usize) -> Result<[u8; FRAME_SIZE], WireError> {
        let len = self
            .payload
            .len()
            .checked_add(tail)
            .ok_or(WireError::BadPayload {
                cmd: self.cmd,
                len: usize::MAX,
            })?;
        check_payload(self.cmd, len)?;
        if let PayloadRule::Text(_) = self.cmd.payload_rule() {
            if tail > 0 {
                return Err(WireError::BadText(self.cmd));
            }
            std::str::from_utf8(&self.payload).map_err(|_| WireError::BadText(self.cmd))?;
        }
        let mut head = [0u8; FRAME_SIZE];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            head[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&(self.cmd as u16).to_le_bytes());
        put(&0u16.to_le_bytes());
        put(&self.dc.to_le_bytes());
        put(&self.src.to_le_bytes());
        put(&self.dst.to_le_bytes());
        put(&self.seq.to_le_bytes());
        put(&self.rcode.to_le_bytes());
        // check_payload bounded the length by MAX_PAYLOAD, which fits in a u32.
        put(&(len as u32).to_le_bytes());
        put(bytemuck::bytes_of(&self.msg));
        Ok(head)
    }
}

/// Whether `len` payload bytes obey `cmd`'s rule.
fn check_payload(cmd: Command, len: usize) -> Result<(), WireError> {
    let ok = match cmd.payload_rule() {
        PayloadRule::Empty => len == 0,
        PayloadRule::Text(max) => len <= max,
        PayloadRule::Bytes { min, max } => (min..=max).contains(&len),
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::BadPayload { cmd, len })
    }
}

impl Header {
    /// Decode and check the header in `b` (at least [`HEADER_SIZE`] bytes).
    pub(super) fn decode(b: &[u8; HEADER_SIZE]) -> Result<Header, WireError> {
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let code = u16_at(0);
        let cmd = Command::from_code(code).ok_or(WireError::UnknownCommand(code))?;
        let flags = u16_at(2);
        if flags != 0 {
            return Err(WireError::BadFlags(flags));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[16..24]);
        // A u32 always fits in usize on the 32- and 64-bit targets this crate builds for.
        let len = u32_at(28) as usize;
        check_payload(cmd, len)?;
        Ok(Header {
            cmd,
            dc: u32_at(4),
            src: u32_at(8) as i32,
            dst: u32_at(12) as i32,
            seq: u64::from_le_bytes(seq),
            rcode: u32_at(24) as i32,
            len,
        })
    }

    /// The frame, given its message bytes and payload.
    pub(super) fn into_frame(self, msg: &[u8], payload: Vec<u8>) -> Result<Frame, WireError> {
        if let PayloadRule::Text(_) = self.cmd.payload_rule() {
            std::str::from_utf8(&payload).map_err(|_| WireError::BadText(self.cmd))?;
        }
        Ok(Frame {
            cmd: self.cmd,
            dc: self.dc,
            src: self.src,
            dst: self.dst,
            seq: self.seq,
            rcode: self.rcode,
            // `msg` is MESSAGE_SIZE bytes (the decoder's slice), and any 64 bytes are a message.
            msg: bytemuck::pod_read_unaligned(msg),
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_round_trips_its_code() {
        for c in Command::ALL {
            assert_eq!(Command::from_code(c as u16), Some(c));
        }
        assert_eq!(Command::from_code(0), None);
        assert_eq!(Command::from_code(0xffff), None);
    }

    #[test]
    fn encode_refuses_a_payload_its_command_forbids() {
        let mut f = Frame::new(Command::Send, 0, 1, 2, 3);
        f.payload = vec![1];
        let mut out = Vec::new();
        assert_eq!(
            f.encode(&mut out),
            Err(WireError::BadPayload {
                cmd: Command::Send,
                len: 1
            })
        );
        assert!(out.is_empty());
        let mut g = Frame::new(Command::Goodbye, 0, 1, 2, 3);
        g.payload = vec![0xff, 0xfe];
        assert_eq!(
            g.encode(&mut out),
            Err(WireError::BadText(Command::Goodbye))
        );
        let mut c = Frame::new(Command::CopyData, 0, 1, 2, 3);
        c.payload = vec![0; COPY_DESC_SIZE - 1];
        assert!(c.encode(&mut out).is_err());
        c.payload = vec![0; MAX_PAYLOAD + 1];
        assert!(c.encode(&mut out).is_err());
        c.payload = vec![0; MAX_PAYLOAD];
        assert!(c.encode(&mut out).is_ok());
        assert_eq!(out.len(), FRAME_SIZE + MAX_PAYLOAD);
    }

    #[test]
    fn header_fields_are_little_endian_at_their_offsets() {
        let mut f = Frame::new(Command::SendAck, 7, -2, 0x1234, 0x0102_0304_0506_0708);
        f.rcode = -109;
        let mut out = Vec::new();
        f.encode(&mut out)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&out[0..2], &17u16.to_le_bytes());
        assert_eq!(&out[2..4], &[0, 0]);
        assert_eq!(&out[4..8], &7u32.to_le_bytes());
        assert_eq!(&out[8..12], &(-2i32).to_le_bytes());
        assert_eq!(&out[12..16], &0x1234i32.to_le_bytes());
        assert_eq!(&out[16..24], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&out[24..28], &(-109i32).to_le_bytes());
        assert_eq!(&out[28..32], &0u32.to_le_bytes());
        assert_eq!(out.len(), FRAME_SIZE);
    }
}
