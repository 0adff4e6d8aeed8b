//! RDISK (slot 3): a block device of [`BLOCK_SIZE`]-byte blocks over an image file or memory.
//!
//! Block data moves by grant: the requester grants RDISK a range of one of its pool buffers
//! (WRITE for a read, READ for a write) and names it in a [`BlockRequest`]; RDISK copies the
//! blocks straight between the device and that range. At most [`MAX_BLOCKS`] blocks (1 MiB) a
//! request, so a reader fetches up to 1 MiB per round trip.
//!
//! Errors: `EDVSBADVALUE` (a count of 0 or above [`MAX_BLOCKS`], an offset that does not fit),
//! `EDVSRANGE` (blocks outside the device, or a range outside the grant), the grant's own
//! errors (`EDVSPERM`, `EDVSACCES`, ...), `EDVSIO` (the image file failed).

use super::{Grantor, MAX_CHUNK, reply_result, word_len};
use m3ipc::{Endpoint, GrantId, Message, Proc, Result, Timeout};

/// Block size of the device: that of the file system on it.
pub const BLOCK_SIZE: usize = minixfs::BLOCK_SIZE;
/// Most blocks one request moves: 1 MiB.
pub const MAX_BLOCKS: usize = MAX_CHUNK / BLOCK_SIZE;

/// The device's size. Request: empty. Reply: `payload[0]` = blocks, `payload[1]` = block size.
pub const RD_GEOMETRY: i32 = 0x0401;
/// Read blocks into a granted range. Request: a [`BlockRequest`] whose grant gives RDISK WRITE.
/// Reply: empty.
pub const RD_READ: i32 = 0x0402;
/// Write blocks from a granted range. Request: a [`BlockRequest`] whose grant gives RDISK READ.
/// Reply: empty.
pub const RD_WRITE: i32 = 0x0403;
/// Make earlier writes durable (`fsync` of an image file). Request and reply: empty.
pub const RD_FLUSH: i32 = 0x0404;

/// The arguments of [`RD_READ`] and [`RD_WRITE`]: `payload[0]` = first block, `[1]` = block
/// count, `[2]` = the grant to RDISK, `[3]` = byte offset in the grant's range, `[4]` = who
/// issued the grant ([`Grantor`]: the requester, or a client FS reads a file for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRequest {
    /// First block.
    pub first: u64,
    /// Number of blocks, 1..=[`MAX_BLOCKS`].
    pub count: usize,
    /// The requester's grant to RDISK.
    pub grant: GrantId,
    /// Where in the grant's range the first block goes (or comes from).
    pub offset: usize,
    /// Who issued the grant.
    pub grantor: Grantor,
}

impl BlockRequest {
    /// The request message of type `m_type` ([`RD_READ`] or [`RD_WRITE`]).
    pub fn encode(&self, m_type: i32) -> Message {
        let mut m = Message::new(m_type);
        m.payload[0] = self.first;
        m.payload[1] = self.count as u64;
        m.payload[2] = self.grant.0;
        m.payload[3] = self.offset as u64;
        m.payload[4] = self.grantor.word();
        m
    }

    /// Decode and check a request: a count of 0 or above [`MAX_BLOCKS`], or an offset above
    /// 1 MiB, is `EDVSBADVALUE`.
    pub fn decode(m: &Message) -> Result<BlockRequest> {
        let count = word_len(m.payload[1], MAX_BLOCKS)?;
        if count == 0 {
            return Err(m3ipc::Errno::EDVSBADVALUE);
        }
        Ok(BlockRequest {
            first: m.payload[0],
            count,
            grant: GrantId(m.payload[2]),
            offset: word_len(m.payload[3], MAX_CHUNK)?,
            grantor: Grantor::from_word(m.payload[4])?,
        })
    }

    /// Bytes the request moves.
    pub fn bytes(&self) -> usize {
        self.count * BLOCK_SIZE
    }
}

/// [`RD_GEOMETRY`] from an outside process: the device's block count.
pub fn geometry(p: &Proc, rdisk: Endpoint, t: Timeout) -> Result<u64> {
    let mut m = Message::new(RD_GEOMETRY);
    p.sendrec(rdisk, &mut m, t)?;
    reply_result(&m)?;
    if m.payload[1] != BLOCK_SIZE as u64 {
        return Err(m3ipc::Errno::EDVSBADVALUE);
    }
    Ok(m.payload[0])
}

/// [`RD_READ`] or [`RD_WRITE`] (`m_type`) from an outside process.
pub fn transfer(
    p: &Proc,
    rdisk: Endpoint,
    m_type: i32,
    req: &BlockRequest,
    t: Timeout,
) -> Result<()> {
    let mut m = req.encode(m_type);
    p.sendrec(rdisk, &mut m, t)?;
    reply_result(&m)
}

/// [`RD_FLUSH`] from an outside process.
pub fn flush(p: &Proc, rdisk: Endpoint, t: Timeout) -> Result<()> {
    let mut m = Message::new(RD_FLUSH);
    p.sendrec(rdisk, &mut m, t)?;
    reply_result(&m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use m3ipc::Errno;

    #[test]
    fn block_requests_round_trip_and_are_checked() {
        let r = BlockRequest {
            first: 77,
            count: MAX_BLOCKS,
            grant: GrantId(1 << 63 | 5),
            offset: 0,
            grantor: Grantor::Client(7),
        };
        assert_eq!(BlockRequest::decode(&r.encode(RD_READ)), Ok(r));
        let mut m = r.encode(RD_READ);
        m.payload[1] = 0;
        assert_eq!(BlockRequest::decode(&m), Err(Errno::EDVSBADVALUE));
        m.payload[1] = MAX_BLOCKS as u64 + 1;
        assert_eq!(BlockRequest::decode(&m), Err(Errno::EDVSBADVALUE));
        m.payload[1] = 1;
        m.payload[3] = u64::MAX;
        assert_eq!(BlockRequest::decode(&m), Err(Errno::EDVSBADVALUE));
    }
}
