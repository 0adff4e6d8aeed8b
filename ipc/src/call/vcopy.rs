//! `vcopy`.

use super::vcopy_across::Named;
use crate::endpoint::{ANY, Endpoint, NONE, SELF};
use crate::errno::{Errno, Result};
use crate::mailbox::{EnvState, Phase, SYNC};
use crate::pool::VCOPY_SETTLE;
use crate::pool::{Access, CopyRef, MAX_BUFFER, Pool};
use crate::privilege::Call;
use crate::proc::{Proc, Role};
use crate::region::Region;
use crate::slot::{FLAG_RECEIVING, FLAG_SENDREC, FLAG_WAITING};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// One side of a copy, resolved.
struct Side {
    ep: Endpoint,
    /// The side's slot, when it is not the requester.
    slot: Option<usize>,
    what: CopyRef,
    off: usize,
}

/// The parties a `vcopy` holds in the receive half of their `sendrec` (slot, the state it
/// held, the hold state); dropping it lets them go.
struct Pinned<'r> {
    region: &'r Region,
    held: [Option<(usize, EnvState, EnvState)>; 2],
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        for &(i, awaiting, held) in self.held.iter().flatten() {
            if let Some(s) = self.region.slot(i) {
                // AcqRel (in `transition`): releases the copied bytes to whoever moves the
                // envelope on next (see `Proc::settle`). It fails only if a cleanup lifted the
                // hold meanwhile, having judged us dead.
                s.envelopes[SYNC].transition(held, awaiting);
            }
        }
    }
}

impl Proc {
    /// `vcopy(src_ep, src + src_off, dst_ep, dst + dst_off, len)`: copy `len` bytes (at most
    /// 1 MiB) from a granted range of `src_ep`'s buffer to a granted range of `dst_ep`'s buffer,
    /// inside the pool. The caller (the requester) may be one of the two, or a third party (a
    /// server copying between a client's buffer and its own or a disk server's).
    ///
    /// Each side is named by a [`CopyRef`]: for a side other than the requester, a grant that
    /// side's endpoint issued to the requester, with READ for the source and WRITE for the
    /// destination; for the requester's own side, a handle of a buffer it owns or one of its own
    /// grants (as a range of its own buffer). Offsets are relative to the grant's range (or the
    /// buffer). Every side other than the requester must be blocked in a receive: a client in
    /// the receive half of its `sendrec` (its request taken, the reply not yet claimed), spinning
    /// or asleep, counts at once and is held there until the copy is done (a reply, its timeout
    /// or a cleanup waits for the copy); a party in a plain `receive` counts once it blocks
    /// (`FLAG_RECEIVING` with `FLAG_WAITING`). `vcopy` waits up to
    /// [`VCOPY_SETTLE`](crate::pool::VCOPY_SETTLE) for a party that is just entering one.
    ///
    /// Errors, in order: `EDVSDCNOTRUN`, `EDVSNOTBIND`, `EDVSBADCALL`, `EDVSTRAPDENIED`
    /// (caller not a system process), `EDVSNODEV` (no pool), `EDVSRANGE` (`len` above 1 MiB);
    /// for each endpoint: `EDVSENDPOINT` (ANY, NONE, stale, or `src_ep == dst_ep`),
    /// `EDVSRANGE`, `EDVSSRCDIED`/`EDVSDSTDIED` (not bound); `EDVSPROCSTS` (a party other than
    /// the requester is not blocked in a receive), `EDVSBUSY` (another `vcopy` holds it); then for each side, source first: `EDVSBADF`
    /// or `EDVSBADOWNER` (the requester's own handle), `EDVSPERM` (no live grant of that side's
    /// endpoint with this id: revoked, stale, forged, lapsed, or a handle where a grant is
    /// needed), `EDVSACCES` (granted to another endpoint, or without READ/WRITE), `EDVSRANGE`
    /// (outside the grant or buffer).
    ///
    /// Across nodes (one side an endpoint bound on another node of the DC): the bytes move
    /// through the node daemons, in chunks with several in flight; the remote side must be a
    /// grant of that endpoint to the caller and the local side a buffer the caller owns
    /// (`EDVSXDEV` otherwise, and for two remote sides); the far node checks the grant as
    /// above, and the link's errors apply (`EDVSNOTCONN`, `EDVSTIMEDOUT`). See
    /// `call/vcopy_across.rs`.
    ///
    /// Limit: a party that dies during the copy has its buffers returned to the pool by its
    /// cleanup, possibly while the bytes are copied: they then land in (or come from) a free
    /// block, never outside the pool. A client held longer than 100 ms past its own deadline
    /// (a requester stalled mid-copy) gives up: the rest of the copy then lands after it left.
    #[allow(clippy::too_many_arguments)] // The original call's parameters, one by one.
    pub fn vcopy(
        &self,
        src_ep: Endpoint,
        src: impl Into<CopyRef>,
        src_off: usize,
        dst_ep: Endpoint,
        dst: impl Into<CopyRef>,
        dst_off: usize,
        len: usize,
    ) -> Result<()> {
        self.caller(Call::Vcopy)?;
        self.require_sysproc()?;
        let pool = self.pool()?;
        if len > MAX_BUFFER {
            return Err(Errno::EDVSRANGE);
        }
        if let Some((route, remote_is_source)) = self.remote_side(src_ep, dst_ep) {
            let src = Named {
                ep: src_ep,
                what: src.into(),
                off: src_off,
            };
            let dst = Named {
                ep: dst_ep,
                what: dst.into(),
                off: dst_off,
            };
            let (remote, local) = if remote_is_source {
                (src, dst)
            } else {
                (dst, src)
            };
            return self.vcopy_across(route, remote, local, remote_is_source, len);
        }
        let src = self.side(src_ep, Role::Source, src.into(), src_off)?;
        let dst = self.side(dst_ep, Role::Destination, dst.into(), dst_off)?;
        if src.ep == dst.ep {
            return Err(Errno::EDVSENDPOINT);
        }
        // Held until the copy is done (dropping it lets the parties go).
        let _pinned = self.settle(&[src.slot, dst.slot])?;
        let from = self.range(pool, &src, Access::READ, len)?;
        let to = self.range(pool, &dst, Access::WRITE, len)?;
        if len == 0 {
            return Ok(());
        }
        let s = pool.file.data(from, len).ok_or(Errno::EDVSRANGE)?;
        let d = pool.file.data(to, len).ok_or(Errno::EDVSRANGE)?;
        // SAFETY: both ranges lie inside the pool's mapping (checked by `data`), which lives as
        // long as `pool`; `ptr::copy` allows them to overlap (two grants on one buffer). The
        // bytes are plain data that other processes may access at the same time.
        unsafe { core::ptr::copy(s, d, len) };
        let h = pool.file.header();
        // Relaxed: statistics.
        h.copied.fetch_add(len as u64, Ordering::Relaxed);
        h.copies.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Resolve one side's endpoint (SELF and the caller's own endpoint are the requester).
    fn side(&self, ep: Endpoint, role: Role, what: CopyRef, off: usize) -> Result<Side> {
        if ep == ANY || ep == NONE {
            return Err(Errno::EDVSENDPOINT);
        }
        if ep == SELF || ep == self.ep {
            return Ok(Side {
                ep: self.ep,
                slot: None,
                what,
                off,
            });
        }
        let peer = self.peer(ep, role, Errno::EDVSENDPOINT)?;
        Ok(Side {
            ep: peer.ep,
            slot: Some(peer.idx),
            what,
            off,
        })
    }

    /// Wait (at most [`VCOPY_SETTLE`]) until every party in `slots` blocks in a receive, else
    /// `EDVSPROCSTS`; pin those waiting in the receive half of a `sendrec` for the copy.
    ///
    /// A client in the receive half of its `sendrec` says so in its synchronous envelope
    /// (`AwaitReply`) from the moment its request is taken, spinning or asleep: that, not the
    /// flags it publishes only once it sleeps, is what counts, so a spinning client is a valid
    /// party at once. We hold it there with one CAS (`AwaitReply` to the hold state, see
    /// `EnvState::held_by`) until the copy ends. Every way out of `AwaitReply` is a CAS on that
    /// word expecting `AwaitReply` (the client's withdraw on timeout, a reply's claim, a
    /// cleanup's `Failed`), and those expecting `Replying` leave a live holder's hold alone
    /// (`cleanup::release`; `Outgoing::expire` for up to 100 ms past the client's deadline, so
    /// that a stalled holder or a forged word never hangs it): while we hold it, the client
    /// cannot leave.
    /// A reply meanwhile waits for the hold to end (`Proc::claim_reply`). Orderings: the hold
    /// CAS is AcqRel like every envelope transition; the CAS that ends it (AcqRel, in
    /// `Pinned::drop`) releases the copied bytes, so the reply's claim (Acquire) and then the
    /// client's Acquire load of `Replied` (or its withdraw CAS) see them before the client
    /// returns. A client that dies during the copy is the documented limit of [`Proc::vcopy`].
    ///
    /// A party in a plain `receive` counts by its flags (RECEIVING with WAITING, published
    /// when it blocks), a snapshot as in the original; so does a client still in the send half
    /// of its `sendrec` (SENDREC with WAITING: as in MINIX, a `sendrec` blocks receiving too),
    /// and an endpoint whose runtime shows its `sendrec` in its flags (`call/hosted.rs`). A party another `vcopy` holds is
    /// `EDVSBUSY`, as the original's ONCOPY.
    fn settle(&self, slots: &[Option<usize>]) -> Result<Pinned<'_>> {
        let region = self.region();
        let mut pinned = Pinned {
            region,
            held: [None; 2],
        };
        let mut ready = [false; 2];
        let mut deadline = None;
        for spins in 0u32.. {
            for (k, &slot) in slots.iter().enumerate().take(2) {
                if ready[k] {
                    continue;
                }
                let Some(i) = slot else {
                    ready[k] = true;
                    continue;
                };
                let s = region.slot(i).ok_or(Errno::EDVSRANGE)?;
                let env = &s.envelopes[SYNC];
                let st = env.load();
                match st.phase() {
                    Phase::AwaitReply => {
                        let held = st.held_by(self.idx as u16);
                        if env.transition(st, held) {
                            pinned.held[k] = Some((i, st, held));
                            ready[k] = true;
                        }
                    }
                    Phase::Replying if st.holder().is_some() => return Err(Errno::EDVSBUSY),
                    _ => {
                        // Relaxed: a snapshot, as the original's check of the party's flags.
                        // SENDREC: an endpoint whose runtime blocks its calls itself (MUK2's
                        // coroutines, `call/hosted.rs`) shows its `sendrec` only there.
                        let f = s.flags.load(Ordering::Relaxed);
                        ready[k] =
                            f & FLAG_WAITING != 0 && f & (FLAG_RECEIVING | FLAG_SENDREC) != 0;
                    }
                }
            }
            if ready.iter().all(|&r| r) {
                return Ok(pinned);
            }
            let now = Instant::now();
            let end = *deadline.get_or_insert(now + VCOPY_SETTLE);
            if now >= end {
                return Err(Errno::EDVSPROCSTS);
            }
            if spins < 64 {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        Err(Errno::EDVSPROCSTS)
    }

    /// The data offset of `[side.off, side.off + len)` of one side, checked for `need`.
    fn range(&self, pool: &Pool, side: &Side, need: Access, len: usize) -> Result<usize> {
        let end = side.off.checked_add(len).ok_or(Errno::EDVSRANGE)?;
        match (side.what, side.slot) {
            (CopyRef::Buffer(h), None) => {
                let base = pool.owned(h, self.ep)?;
                if end > h.capacity() {
                    return Err(Errno::EDVSRANGE);
                }
                Ok(base + side.off)
            }
            (CopyRef::Buffer(_), Some(_)) => Err(Errno::EDVSPERM),
            (CopyRef::Grant(id), None) => Ok(pool
                .use_grant(id, self.ep, None, need, side.off, len)?
                .data_off),
            (CopyRef::Grant(id), Some(_)) => Ok(pool
                .use_grant(id, side.ep, Some(self.ep), need, side.off, len)?
                .data_off),
        }
    }
}
