//! `vcopy`.

use crate::endpoint::{ANY, Endpoint, NONE, SELF};
use crate::errno::{Errno, Result};
use crate::pool::VCOPY_SETTLE;
use crate::pool::{Access, CopyRef, MAX_BUFFER, Pool};
use crate::privilege::Call;
use crate::proc::{Proc, Role};
use crate::slot::{FLAG_RECEIVING, FLAG_SENDREC, FLAG_WAITING, Slot};
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
    /// buffer). Every side other than the requester must be blocked in a receive (as a client in
    /// `sendrec` is), seen in its slot's flags as `FLAG_RECEIVING` (or `FLAG_SENDREC`) with
    /// `FLAG_WAITING`; `vcopy`
    /// waits up to [`VCOPY_SETTLE`](crate::pool::VCOPY_SETTLE) for a party that is just entering one.
    ///
    /// Errors, in order: `EDVSDCNOTRUN`, `EDVSNOTBIND`, `EDVSBADCALL`, `EDVSTRAPDENIED`
    /// (caller not a system process), `EDVSNODEV` (no pool), `EDVSRANGE` (`len` above 1 MiB);
    /// for each endpoint: `EDVSENDPOINT` (ANY, NONE, stale, or `src_ep == dst_ep`),
    /// `EDVSRANGE`, `EDVSSRCDIED`/`EDVSDSTDIED` (not bound); `EDVSPROCSTS` (a party other than
    /// the requester is not blocked in a receive); then for each side, source first: `EDVSBADF`
    /// or `EDVSBADOWNER` (the requester's own handle), `EDVSPERM` (no live grant of that side's
    /// endpoint with this id: revoked, stale, forged, lapsed, or a handle where a grant is
    /// needed), `EDVSACCES` (granted to another endpoint, or without READ/WRITE), `EDVSRANGE`
    /// (outside the grant or buffer).
    ///
    /// Limit: a party that dies during the copy has its buffers returned to the pool by its
    /// cleanup, possibly while the bytes are copied: they then land in (or come from) a free
    /// block, never outside the pool.
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
        let src = self.side(src_ep, Role::Source, src.into(), src_off)?;
        let dst = self.side(dst_ep, Role::Destination, dst.into(), dst_off)?;
        if src.ep == dst.ep {
            return Err(Errno::EDVSENDPOINT);
        }
        self.settle(&[src.slot, dst.slot])?;
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
    /// `EDVSPROCSTS`.
    fn settle(&self, slots: &[Option<usize>]) -> Result<()> {
        let blocked = |s: &Slot| {
            // Relaxed: a snapshot, as the original's check of the party's flags.
            let f = s.flags.load(Ordering::Relaxed);
            f & FLAG_WAITING != 0 && f & (FLAG_RECEIVING | FLAG_SENDREC) != 0
        };
        let region = self.region();
        let mut deadline = None;
        for spins in 0u32.. {
            let all = slots
                .iter()
                .flatten()
                .all(|&i| region.slot(i).is_some_and(blocked));
            if all {
                return Ok(());
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
