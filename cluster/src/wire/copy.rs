//! The copy descriptor: the first [`COPY_DESC_SIZE`] bytes of the payload of `CopyRequest` and
//! `CopyData` frames.
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 4 | `op` | [`CopyOp`]: 1 read (bytes flow to the requester), 2 write, 3 write behind |
//! | 4 | 4 | `grantor` | the endpoint that issued the grant (bound on the receiving node) |
//! | 8 | 8 | `grant` | the grant id |
//! | 16 | 8 | `offset` | where in the grant's range this chunk starts |
//! | 24 | 4 | `len` | bytes of this chunk, 1 ..= [`MAX_CHUNK`] |
//! | 28 | 36 | reserved | zero |
//!
//! Little-endian. The frame's `src` is the grantee (the server, a remote slot on the grantor's
//! node), `dst` the grantor, `seq` the requester's number for this chunk, echoed by the answer:
//! `CopyData` with op read (the bytes) or `CopyAck` (a write done, or any failure). A chunk
//! written behind is not answered: its failure fails the grantor's next reply instead.

use super::WireError;
use super::frame::{COPY_DESC_SIZE, Command, MAX_CHUNK};
use m3ipc::{Endpoint, GrantId};

/// Which way one chunk moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CopyOp {
    /// From the grant to the requester.
    Read = 1,
    /// From the requester into the grant.
    Write = 2,
    /// From the requester into the grant, not answered: the requester went on as soon as the
    /// bytes were on the link. A failure fails the grantor's next reply from the requester's
    /// node instead (the grantor waits for one: its grant is in use by a request of its own).
    WriteBehind = 3,
}

impl CopyOp {
    /// Whether bytes flow into the grant.
    pub fn writes(self) -> bool {
        matches!(self, CopyOp::Write | CopyOp::WriteBehind)
    }
}

/// One chunk's descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyDesc {
    /// Which way.
    pub op: CopyOp,
    /// The grant's issuer.
    pub grantor: Endpoint,
    /// The grant.
    pub grant: GrantId,
    /// Offset in the grant's range.
    pub offset: u64,
    /// Bytes of this chunk.
    pub len: u32,
}

impl CopyDesc {
    /// The descriptor's bytes.
    pub fn encode(&self) -> [u8; COPY_DESC_SIZE] {
        let mut b = [0u8; COPY_DESC_SIZE];
        b[0..4].copy_from_slice(&(self.op as u32).to_le_bytes());
        b[4..8].copy_from_slice(&self.grantor.to_le_bytes());
        b[8..16].copy_from_slice(&self.grant.0.to_le_bytes());
        b[16..24].copy_from_slice(&self.offset.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Decode the descriptor leading `payload`, checked: a payload shorter than a descriptor,
    /// an unknown op, a length of 0 or above [`MAX_CHUNK`], or reserved bytes not zero is
    /// [`WireError::BadCopy`].
    pub fn decode(payload: &[u8]) -> Result<CopyDesc, WireError> {
        let b = payload.get(..COPY_DESC_SIZE).ok_or(WireError::BadCopy)?;
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[8..16]);
        let grant = u64::from_le_bytes(w);
        w.copy_from_slice(&b[16..24]);
        let offset = u64::from_le_bytes(w);
        let op = match u32_at(0) {
            1 => CopyOp::Read,
            2 => CopyOp::Write,
            3 => CopyOp::WriteBehind,
            _ => return Err(WireError::BadCopy),
        };
        let len = u32_at(24);
        if len == 0 || len as usize > MAX_CHUNK || b[28..].iter().any(|&x| x != 0) {
            return Err(WireError::BadCopy);
        }
        Ok(CopyDesc {
            op,
            grantor: u32_at(4) as i32,
            grant: GrantId(grant),
            offset,
            len,
        })
    }

    /// Whether a frame of `cmd` carrying this descriptor and `data` bytes after it is well
    /// formed: a `CopyRequest` asks for a read and carries nothing; a `CopyData` carries
    /// exactly `len` bytes.
    pub fn fits(&self, cmd: Command, data: usize) -> bool {
        match cmd {
            Command::CopyRequest => self.op == CopyOp::Read && data == 0,
            Command::CopyData => data == self.len as usize,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_round_trip_and_garbage_is_refused() {
        let d = CopyDesc {
            op: CopyOp::Write,
            grantor: -7,
            grant: GrantId(1 << 63 | 3),
            offset: 12345,
            len: MAX_CHUNK as u32,
        };
        let b = d.encode();
        assert_eq!(CopyDesc::decode(&b), Ok(d));
        assert!(d.fits(Command::CopyData, MAX_CHUNK));
        assert!(!d.fits(Command::CopyData, 1));
        assert!(!d.fits(Command::CopyRequest, 0));
        assert_eq!(CopyDesc::decode(&b[..10]), Err(WireError::BadCopy));
        let mut bad = b;
        bad[0] = 9;
        assert_eq!(CopyDesc::decode(&bad), Err(WireError::BadCopy));
        let mut bad = b;
        bad[40] = 1;
        assert_eq!(CopyDesc::decode(&bad), Err(WireError::BadCopy));
        let mut bad = b;
        bad[24..28].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(CopyDesc::decode(&bad), Err(WireError::BadCopy));
        bad[24..28].copy_from_slice(&(MAX_CHUNK as u32 + 1).to_le_bytes());
        assert_eq!(CopyDesc::decode(&bad), Err(WireError::BadCopy));
    }
}
