//! The one decoder of everything a peer sends: bytes in, a hello then whole frames out.
//!
//! Every length is checked against its bound before the decoder waits for (or allocates) the
//! bytes it announces: a hello's DC count against [`m3ipc::MAX_DCS`], a frame's payload against
//! its command's rule (at most [`MAX_PAYLOAD`]). So the buffer never holds more than one
//! largest frame plus one read, whatever the peer sends.

use super::frame::{FRAME_SIZE, HEADER_SIZE, Header};
use super::{Frame, Hello, MAX_PAYLOAD, WireError};
use std::io::{self, Read};

/// Bytes asked of the socket per read when no frame in progress needs more.
const READ_CHUNK: usize = 64 * 1024;

/// A payload at least this long is read straight into its frame's own buffer once its header is
/// in, instead of through the decoder's buffer: a copy chunk is received with one copy (the
/// kernel's), not three.
const DIRECT_PAYLOAD: usize = 64 * 1024;

/// What the decoder has taken from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// The peer's hello: always first, exactly once.
    Hello(Hello),
    /// A frame.
    Frame(Frame),
}

/// A large frame whose header is in and whose payload is being received into its own buffer.
#[derive(Debug)]
struct LargeFrame {
    header: Header,
    msg: [u8; FRAME_SIZE - HEADER_SIZE],
    /// The payload, `header.len` bytes; those before `filled` are received.
    payload: Vec<u8>,
    filled: usize,
}

/// Turns the bytes of one direction of a connection into a [`Hello`] and then [`Frame`]s.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Received bytes are `buf[start..end]`; `buf[end..]` is room already initialised, kept so
    /// that a read does not zero its target again.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    large: Option<LargeFrame>,
    hello_seen: bool,
    failed: bool,
}

impl FrameDecoder {
    /// A decoder at the start of a stream (it expects the hello first).
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Bytes received and not yet returned as a hello or a frame.
    pub fn buffered(&self) -> usize {
        let large = self.large.as_ref().map_or(0, |l| FRAME_SIZE + l.filled);
        self.end - self.start + large
    }

    /// Add received bytes.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if let Some(l) = &mut self.large {
            let n = (l.payload.len() - l.filled).min(bytes.len());
            l.payload[l.filled..l.filled + n].copy_from_slice(&bytes[..n]);
            l.filled += n;
            bytes = &bytes[n..];
        }
        if bytes.is_empty() {
            return;
        }
        self.compact();
        let room = self.room(bytes.len());
        room[..bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// One `read` from `r`: into the payload of the large frame in progress, or into the
    /// buffer, at least what the item in progress still needs, at most that or 64 KiB,
    /// whichever is more. Returns the bytes read (0: end of stream).
    ///
    /// Errors: those of `r` (`Interrupted` and `WouldBlock` included: the caller decides).
    pub fn read_from<R: Read>(&mut self, r: &mut R) -> io::Result<usize> {
        if let Some(l) = &mut self.large
            && l.filled < l.payload.len()
        {
            let n = r.read(&mut l.payload[l.filled..])?;
            l.filled += n;
            return Ok(n);
        }
        self.compact();
        let want = self.needed().max(READ_CHUNK);
        let n = r.read(self.room(want))?;
        self.end += n;
        Ok(n)
    }

    /// `want` bytes of room after the received bytes (zeroed only the first time the buffer
    /// grows that far).
    fn room(&mut self, want: usize) -> &mut [u8] {
        if self.buf.len() < self.end + want {
            self.buf.resize(self.end + want, 0);
        }
        &mut self.buf[self.end..self.end + want]
    }

    /// The next whole item, `Ok(None)` until its bytes are all in.
    ///
    /// Errors: a [`WireError`] naming what is malformed; the stream is then refused for good
    /// ([`WireError::Poisoned`] on later calls) and its connection must be closed.
    pub fn next_item(&mut self) -> Result<Option<Incoming>, WireError> {
        if self.failed {
            return Err(WireError::Poisoned);
        }
        let r = self.next_inner();
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn next_inner(&mut self) -> Result<Option<Incoming>, WireError> {
        if let Some(l) = &self.large {
            if l.filled < l.payload.len() {
                return Ok(None);
            }
            let Some(l) = self.large.take() else {
                return Ok(None);
            };
            return Ok(Some(Incoming::Frame(
                l.header.into_frame(&l.msg, l.payload)?,
            )));
        }
        let avail = &self.buf[self.start..self.end];
        if !self.hello_seen {
            let Some(len) = Hello::wire_len(avail)? else {
                return Ok(None);
            };
            if avail.len() < len {
                return Ok(None);
            }
            let hello = Hello::decode(&avail[..len])?;
            self.start += len;
            self.hello_seen = true;
            return Ok(Some(Incoming::Hello(hello)));
        }
        let Some(head) = avail.first_chunk::<HEADER_SIZE>() else {
            return Ok(None);
        };
        let header = Header::decode(head)?;
        // Header::decode checked len against the command's rule, so this is at most
        // FRAME_SIZE + MAX_PAYLOAD.
        let total = FRAME_SIZE + header.len;
        debug_assert!(header.len <= MAX_PAYLOAD);
        if avail.len() < total {
            if header.len >= DIRECT_PAYLOAD
                && let Some(msg) = avail
                    .get(HEADER_SIZE..FRAME_SIZE)
                    .and_then(|m| m.first_chunk::<{ FRAME_SIZE - HEADER_SIZE }>())
            {
                // The rest of the payload goes straight into the frame's buffer.
                let part = &avail[FRAME_SIZE..];
                let mut payload = vec![0; header.len];
                payload[..part.len()].copy_from_slice(part);
                self.large = Some(LargeFrame {
                    header,
                    msg: *msg,
                    filled: part.len(),
                    payload,
                });
                self.start = self.end;
            }
            return Ok(None);
        }
        let msg = &avail[HEADER_SIZE..FRAME_SIZE];
        let payload = avail[FRAME_SIZE..total].to_vec();
        let frame = header.into_frame(msg, payload)?;
        self.start += total;
        Ok(Some(Incoming::Frame(frame)))
    }

    /// Bytes still missing from the item in progress (0 when unknown or none).
    fn needed(&self) -> usize {
        if let Some(l) = &self.large {
            return l.payload.len() - l.filled;
        }
        let avail = &self.buf[self.start..self.end];
        let whole = if !self.hello_seen {
            match Hello::wire_len(avail) {
                Ok(Some(len)) => len,
                _ => super::HELLO_FIXED,
            }
        } else {
            match avail.first_chunk::<HEADER_SIZE>().map(Header::decode) {
                Some(Ok(h)) => FRAME_SIZE + h.len,
                _ => FRAME_SIZE,
            }
        };
        whole.saturating_sub(avail.len())
    }

    /// Drop consumed bytes once they are the larger part of the buffer.
    fn compact(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > READ_CHUNK && self.start * 2 >= self.end {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{COPY_DESC_SIZE, Command, DcEntry};
    use super::*;

    fn hello() -> Hello {
        Hello::new(
            1,
            None,
            vec![DcEntry {
                name: "DC0".into(),
                id: 0,
                nr_tasks: 34,
                nr_procs: 221,
                nr_sysprocs: 64,
            }],
        )
    }

    fn stream(frames: &[Frame]) -> Vec<u8> {
        let mut out = Vec::new();
        hello().encode(&mut out).unwrap_or_else(|e| panic!("{e}"));
        for f in frames {
            f.encode(&mut out).unwrap_or_else(|e| panic!("{e}"));
        }
        out
    }

    fn frames() -> Vec<Frame> {
        let mut send = Frame::new(Command::Send, 0, 5, 7, 1);
        send.msg.m_type = 42;
        send.msg.payload[3] = 0xdead_beef;
        let mut bye = Frame::new(Command::Goodbye, 0, 0, 0, 2);
        bye.payload = b"node id clash".to_vec();
        let mut data = Frame::new(Command::CopyData, 0, 5, 7, 3);
        data.payload = (0..COPY_DESC_SIZE + 300_000).map(|i| i as u8).collect();
        vec![send, bye, data, Frame::new(Command::Heartbeat, 0, 0, 0, 4)]
    }

    fn drain(d: &mut FrameDecoder) -> Vec<Incoming> {
        let mut out = Vec::new();
        while let Some(i) = d.next_item().unwrap_or_else(|e| panic!("{e}")) {
            out.push(i);
        }
        out
    }

    #[test]
    fn a_stream_decodes_whole_and_byte_by_byte() {
        let fs = frames();
        let bytes = stream(&fs);
        let mut want = vec![Incoming::Hello(hello())];
        want.extend(fs.into_iter().map(Incoming::Frame));

        let mut whole = FrameDecoder::new();
        whole.feed(&bytes);
        assert_eq!(drain(&mut whole), want);
        assert_eq!(whole.buffered(), 0);

        let mut bytewise = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &bytes {
            bytewise.feed(std::slice::from_ref(b));
            got.extend(drain(&mut bytewise));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn read_from_takes_what_a_reader_gives() {
        let fs = frames();
        let bytes = stream(&fs);
        let mut reader = io::Cursor::new(bytes);
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        loop {
            let n = d.read_from(&mut reader).unwrap_or_else(|e| panic!("{e}"));
            got.extend(drain(&mut d));
            if n == 0 {
                break;
            }
        }
        assert_eq!(got.len(), 1 + fs.len());
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn a_hostile_length_is_refused_before_its_bytes_arrive() {
        let mut bytes = stream(&[]);
        let mut f = Vec::new();
        Frame::new(Command::Send, 0, 1, 2, 3)
            .encode(&mut f)
            .unwrap_or_else(|e| panic!("{e}"));
        f[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&f[..HEADER_SIZE]);
        let mut d = FrameDecoder::new();
        d.feed(&bytes);
        assert!(matches!(d.next_item(), Ok(Some(Incoming::Hello(_)))));
        assert_eq!(
            d.next_item(),
            Err(WireError::BadPayload {
                cmd: Command::Send,
                len: u32::MAX as usize
            })
        );
        assert_eq!(d.next_item(), Err(WireError::Poisoned));
    }

    #[test]
    fn unknown_commands_flags_and_bad_text_are_refused() {
        for (at, bytes, want) in [
            (0usize, [0x99u8, 0x00], WireError::UnknownCommand(0x99)),
            (2, [0x01, 0x00], WireError::BadFlags(1)),
        ] {
            let mut s = stream(&[Frame::new(Command::Send, 0, 1, 2, 3)]);
            let h = s.len() - FRAME_SIZE;
            s[h + at..h + at + 2].copy_from_slice(&bytes);
            let mut d = FrameDecoder::new();
            d.feed(&s);
            assert!(matches!(d.next_item(), Ok(Some(Incoming::Hello(_)))));
            assert_eq!(d.next_item(), Err(want));
        }
        let mut bye = Frame::new(Command::Goodbye, 0, 0, 0, 0);
        bye.payload = b"ok".to_vec();
        let mut s = stream(&[bye]);
        let n = s.len();
        s[n - 1] = 0xff;
        let mut d = FrameDecoder::new();
        d.feed(&s);
        assert!(matches!(d.next_item(), Ok(Some(Incoming::Hello(_)))));
        assert_eq!(d.next_item(), Err(WireError::BadText(Command::Goodbye)));
    }

    #[test]
    fn the_buffer_stays_bounded_over_a_long_stream() {
        let mut d = FrameDecoder::new();
        d.feed(&stream(&[]));
        assert!(matches!(d.next_item(), Ok(Some(Incoming::Hello(_)))));
        let mut one = Vec::new();
        let mut f = Frame::new(Command::CopyData, 0, 1, 2, 0);
        f.payload = vec![7; MAX_PAYLOAD];
        f.encode(&mut one).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..20 {
            // Feed in pieces that never line up with frame boundaries.
            for piece in one.chunks(333_333) {
                d.feed(piece);
                while let Some(i) = d.next_item().unwrap_or_else(|e| panic!("{e}")) {
                    assert!(matches!(i, Incoming::Frame(_)));
                }
                assert!(d.buf.len() <= 2 * (FRAME_SIZE + MAX_PAYLOAD) + READ_CHUNK);
                assert!(
                    d.large
                        .as_ref()
                        .is_none_or(|l| l.payload.len() <= MAX_PAYLOAD)
                );
            }
        }
    }
}
