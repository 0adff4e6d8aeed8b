//! `vcopy` when one side is an endpoint bound on another node (a remote slot here).
//!
//! Its grant lives in the pool of its own node, so the bytes cannot move inside this pool. The
//! requester grants the range of its own buffer to the DC's proxy for the one copy and asks
//! the proxy with a [`RemoteCopy`] (`remote_copy.rs`); the node daemons move the bytes in
//! chunks, several in flight, and the far node checks the remote grant exactly as a local
//! `vcopy` would (issued by that endpoint to the requester, READ for a source, WRITE for a
//! destination, range inside it).
//!
//! Limits, plainly: the local side must be a buffer the requester owns (a third party's grant,
//! or one of the requester's own grants, would need the proxy to act on a grant not issued to
//! it: `EDVSXDEV`); both sides remote is `EDVSXDEV` too. The remote party is not checked for
//! being blocked in a receive (its node does not report that); its grant is what authorises
//! the copy.

use crate::endpoint::{Endpoint, SELF};
use crate::errno::{Errno, Result};
use crate::pool::{Access, CopyRef};
use crate::proc::Proc;
use crate::remote_copy::{CopyDir, PROXY_OK, RemoteCopy, RemoteRoute};
use crate::wait::Timeout;

/// How long a copy across nodes may take (one chunk of at most 1 MiB, through two daemons).
const ACROSS_TIMEOUT: Timeout = Timeout::Millis(30_000);

/// One side of a `vcopy` as the caller named it.
pub(super) struct Named {
    pub(super) ep: Endpoint,
    pub(super) what: CopyRef,
    pub(super) off: usize,
}

impl Proc {
    /// If one side of a `vcopy` is a remote endpoint: its route, and whether it is the source.
    pub(super) fn remote_side(&self, src: Endpoint, dst: Endpoint) -> Option<(RemoteRoute, bool)> {
        let remote = |ep: Endpoint| {
            (ep != SELF && ep != self.ep)
                .then(|| self.dc.remote_route(ep))
                .flatten()
        };
        match (remote(src), remote(dst)) {
            (Some(r), _) => Some((r, true)),
            (None, Some(r)) => Some((r, false)),
            (None, None) => None,
        }
    }

    /// The `vcopy` of `len` bytes between `remote` (a grant of a remote endpoint to the caller)
    /// and `local` (a buffer of the caller's), through `route`'s proxy.
    pub(super) fn vcopy_across(
        &self,
        route: RemoteRoute,
        remote: Named,
        local: Named,
        remote_is_source: bool,
        len: usize,
    ) -> Result<()> {
        if self.dc.remote_route(local.ep).is_some() {
            return Err(Errno::EDVSXDEV);
        }
        if local.ep != SELF && local.ep != self.ep {
            return Err(Errno::EDVSXDEV);
        }
        let CopyRef::Grant(grant) = remote.what else {
            // A handle names a buffer of the requester's own, never a remote side's.
            return Err(Errno::EDVSPERM);
        };
        let CopyRef::Buffer(h) = local.what else {
            return Err(Errno::EDVSXDEV);
        };
        if len == 0 {
            return Ok(());
        }
        let (dir, access) = if remote_is_source {
            (CopyDir::In, Access::WRITE)
        } else {
            (CopyDir::Out, Access::READ)
        };
        let lent = self.grant(h, route.proxy, local.off, len, access)?;
        let req = RemoteCopy {
            dir,
            grantor: remote.ep,
            grant,
            offset: remote.off,
            len,
            local: lent,
            local_offset: 0,
        };
        let mut m = req.encode();
        let r = self.sendrec(route.proxy, &mut m, ACROSS_TIMEOUT);
        // The proxy has replied (or given up): nothing uses the loan any more.
        let _ = self.revoke(lent);
        r?;
        match m.m_type {
            PROXY_OK => Ok(()),
            code if code < 0 => Err(Errno::from_code(code).unwrap_or(Errno::EDVSGENERIC)),
            _ => Err(Errno::EDVSBADVALUE),
        }
    }
}
