//! Copies against a remote grant: how a server reaches the granted buffer of a client bound on
//! another node of the DC.
//!
//! A grant lives in the pool of the node where its grantor is bound; on the other nodes that
//! grantor is a remote slot, which owns nothing in the local pool. A server that must read or
//! write such a grant asks the DC's proxy (its node daemon) with one `sendrec` carrying a
//! [`RemoteCopy`]: "copy `len` bytes between offset `offset` of the grant `grant` that remote
//! endpoint `grantor` issued to me and offset `local_offset` of the grant `local` that I issued
//! to you". The daemon moves the bytes through the grantor's node, whose daemon uses the grant
//! as the server's remote slot there (the grant names the server as grantee, so the far side's
//! own checks apply unchanged), and replies `OK` or a negative EDVS code: the grant's errors
//! from the far side (`EDVSPERM`, `EDVSACCES`, `EDVSRANGE`), `EDVSNOTCONN` when the link went,
//! `EDVSTIMEDOUT` when no answer came in time.
//!
//! [`Dc::remote_route`] tells a server whether an endpoint is remote and which proxy serves it.
//! `ipc` only defines the request; the daemon (crate `m3cluster`) serves it.

use crate::dc::Dc;
use crate::endpoint::{self, Endpoint};
use crate::errno::{Errno, Result};
use crate::message::Message;
use crate::pool::{GrantId, MAX_BUFFER};
use crate::remote;
use crate::slot::SlotState;

/// Request to the proxy: copy from the remote grant into the requester's local grant.
pub const PROXY_COPY_IN: i32 = 0x0701;
/// Request to the proxy: copy from the requester's local grant into the remote grant.
pub const PROXY_COPY_OUT: i32 = 0x0702;
/// The proxy's `OK` reply.
pub const PROXY_OK: i32 = 0;

/// Which way a [`RemoteCopy`] moves bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyDir {
    /// From the remote grant into the local one ([`PROXY_COPY_IN`]).
    In,
    /// From the local grant into the remote one ([`PROXY_COPY_OUT`]).
    Out,
}

/// One copy request to the proxy. Payload words: `[0]` the remote grantor's endpoint, `[1]`
/// its grant id, `[2]` the offset in that grant, `[3]` the length (1 ..= 1 MiB), `[4]` the
/// requester's grant to the proxy, `[5]` the offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteCopy {
    /// Which way.
    pub dir: CopyDir,
    /// The remote endpoint that issued `grant` to the requester.
    pub grantor: Endpoint,
    /// The remote grant.
    pub grant: GrantId,
    /// Offset in the remote grant's range.
    pub offset: usize,
    /// Bytes to copy, at most [`MAX_BUFFER`].
    pub len: usize,
    /// The requester's grant of a local buffer to the proxy (WRITE for `In`, READ for `Out`).
    pub local: GrantId,
    /// Offset in the local grant's range.
    pub local_offset: usize,
}

impl RemoteCopy {
    /// The request message.
    pub fn encode(&self) -> Message {
        let mut m = Message::new(match self.dir {
            CopyDir::In => PROXY_COPY_IN,
            CopyDir::Out => PROXY_COPY_OUT,
        });
        m.payload[0] = u64::from(self.grantor as u32);
        m.payload[1] = self.grant.0;
        m.payload[2] = self.offset as u64;
        m.payload[3] = self.len as u64;
        m.payload[4] = self.local.0;
        m.payload[5] = self.local_offset as u64;
        m
    }

    /// Decode and check a request: an unknown `m_type` is `EDVSBADREQUEST`; a grantor that is
    /// not an endpoint, a length of 0 or above 1 MiB, or an offset that does not fit is
    /// `EDVSBADVALUE`.
    pub fn decode(m: &Message) -> Result<RemoteCopy> {
        let dir = match m.m_type {
            PROXY_COPY_IN => CopyDir::In,
            PROXY_COPY_OUT => CopyDir::Out,
            _ => return Err(Errno::EDVSBADREQUEST),
        };
        let word = |w: u64, max: usize| {
            usize::try_from(w)
                .ok()
                .filter(|&v| v <= max)
                .ok_or(Errno::EDVSBADVALUE)
        };
        // An endpoint travels as its 32 bits; anything wider is garbage.
        let grantor = u32::try_from(m.payload[0]).map_err(|_| Errno::EDVSBADVALUE)? as i32;
        let len = word(m.payload[3], MAX_BUFFER)?;
        if len == 0 {
            return Err(Errno::EDVSBADVALUE);
        }
        Ok(RemoteCopy {
            dir,
            grantor,
            grant: GrantId(m.payload[1]),
            // Offsets within a grant of one buffer: at most 1 MiB.
            offset: word(m.payload[2], MAX_BUFFER)?,
            len,
            local: GrantId(m.payload[4]),
            local_offset: word(m.payload[5], MAX_BUFFER)?,
        })
    }
}

/// Where a remote endpoint lives: its node and the proxy that serves it here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteRoute {
    /// The node the endpoint is bound on.
    pub node: u32,
    /// The DC's proxy on this node, to which a [`RemoteCopy`] goes.
    pub proxy: Endpoint,
}

impl Dc {
    /// Whether `ep` is a remote slot bound now at exactly this endpoint, and if so its node
    /// and the proxy serving it; `None` for a local endpoint, an unbound or stale one, or a
    /// remote slot no proxy serves. A few loads, no system call: servers ask it per request.
    pub fn remote_route(&self, ep: Endpoint) -> Option<RemoteRoute> {
        let region = &self.region;
        let idx = region.geo.index(endpoint::nr(ep))?;
        let slot = region.slot(idx)?;
        let w = slot.owner();
        if w.state() != SlotState::Bound || endpoint::make(w.generation(), endpoint::nr(ep)) != ep {
            return None;
        }
        let node = remote::word(slot).node()?;
        if !remote::served(region, slot, w) {
            return None;
        }
        // `served` checked that `bell_at` names the bound proxy slot.
        let at = slot.bell_at.load(std::sync::atomic::Ordering::Relaxed);
        let pidx = usize::try_from(at).ok()?.checked_sub(1)?;
        let pw = region.slot(pidx)?.owner();
        Some(RemoteRoute {
            node,
            proxy: endpoint::make(pw.generation(), region.geo.nr(pidx)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_are_checked() {
        let r = RemoteCopy {
            dir: CopyDir::Out,
            grantor: -3,
            grant: GrantId(1 << 63 | 9),
            offset: 4096,
            len: MAX_BUFFER,
            local: GrantId(5),
            local_offset: 0,
        };
        assert_eq!(RemoteCopy::decode(&r.encode()), Ok(r));
        let i = RemoteCopy {
            dir: CopyDir::In,
            grantor: 77,
            ..r
        };
        assert_eq!(RemoteCopy::decode(&i.encode()), Ok(i));
        let mut m = r.encode();
        m.payload[3] = 0;
        assert_eq!(RemoteCopy::decode(&m), Err(Errno::EDVSBADVALUE));
        m.payload[3] = MAX_BUFFER as u64 + 1;
        assert_eq!(RemoteCopy::decode(&m), Err(Errno::EDVSBADVALUE));
        let mut m = r.encode();
        m.payload[0] = u64::MAX;
        assert_eq!(RemoteCopy::decode(&m), Err(Errno::EDVSBADVALUE));
        let mut m = r.encode();
        m.payload[5] = u64::MAX;
        assert_eq!(RemoteCopy::decode(&m), Err(Errno::EDVSBADVALUE));
        assert_eq!(
            RemoteCopy::decode(&Message::new(0x0703)),
            Err(Errno::EDVSBADREQUEST)
        );
    }
}
