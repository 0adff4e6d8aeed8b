//! The buffer calls: allocate, view, give, release a pool buffer; issue, revoke and use grants.
//!
//! Every endpoint may make them (they are not in the original's call table, so `CallSet` does
//! not gate them); each checks, in order: the DC runs (`EDVSDCNOTRUN`), the caller is bound
//! (`EDVSNOTBIND`), the DC has a pool (`EDVSNODEV`), then its own arguments.

use crate::endpoint::Endpoint;
use crate::errno::{Errno, Result};
use crate::pool::{Access, BufView, GrantId, Handle, Pool};
use crate::proc::{Proc, Role};

impl Proc {
    /// The common checks of the buffer calls; the pool.
    pub(crate) fn pool(&self) -> Result<&Pool> {
        self.bound()?;
        self.region().pool.as_ref().ok_or(Errno::EDVSNODEV)
    }

    /// Allocate a pool buffer of at least `len` bytes (rounded up to a power of two from 4 KiB
    /// to 1 MiB), owned by the caller. Its contents are whatever the last owner left.
    ///
    /// Errors: the common ones, `EDVSRANGE` (`len` 0 or above 1 MiB), `EDVSNOMEM` (no room for
    /// that size), `EDVSAGAIN` (the pool's words were scribbled on).
    pub fn alloc_buffer(&self, len: usize) -> Result<Handle> {
        self.pool()?.alloc(self.ep, len)
    }

    /// A read-write view of a buffer the caller owns, to read and write it in place.
    ///
    /// Errors: the common ones, `EDVSBADF` (no such buffer: stale, released or forged handle),
    /// `EDVSBADOWNER` (another endpoint owns it).
    pub fn buffer(&self, h: Handle) -> Result<BufView<'_>> {
        BufView::owned(self.pool()?, self.ep, h)
    }

    /// Give a buffer the caller owns to endpoint `to`, which becomes its owner (typically, then
    /// send `to` the handle in a message). The caller's grants on it lapse.
    ///
    /// Errors: the common ones, peer errors for `to` (`EDVSENDPOINT` for ANY/NONE/self or a
    /// stale endpoint, `EDVSRANGE`, `EDVSDSTDIED` when unbound), `EDVSBADF`, `EDVSBADOWNER`.
    pub fn give(&self, h: Handle, to: Endpoint) -> Result<()> {
        let pool = self.pool()?;
        let peer = self.peer(to, Role::Destination, Errno::EDVSENDPOINT)?;
        pool.give(h, self.ep, peer.ep)
    }

    /// Release a buffer the caller owns back to the pool. A second release of the same handle
    /// fails with `EDVSBADF`.
    ///
    /// Errors: the common ones, `EDVSBADF`, `EDVSBADOWNER`, `EDVSAGAIN` (the pool's words were
    /// scribbled on; the buffer is released anyway).
    pub fn release_buffer(&self, h: Handle) -> Result<()> {
        self.pool()?.release(h, self.ep)
    }

    /// Grant endpoint `grantee` `access` on `[offset, offset + len)` of a buffer the caller
    /// owns. The grant lasts until revoked, until the buffer is released or given away, or
    /// until the caller unbinds or dies.
    ///
    /// Errors: the common ones, peer errors for `grantee` (as [`Proc::give`]), `EDVSBADF`,
    /// `EDVSBADOWNER`, `EDVSINVAL` (no right, or unknown bits), `EDVSRANGE` (empty or outside
    /// the buffer), `EDVSNOSPC` (all [`GRANTS`](crate::pool::GRANTS) grants of the DC in use).
    pub fn grant(
        &self,
        h: Handle,
        grantee: Endpoint,
        offset: usize,
        len: usize,
        access: Access,
    ) -> Result<GrantId> {
        let pool = self.pool()?;
        let peer = self.peer(grantee, Role::Destination, Errno::EDVSENDPOINT)?;
        pool.grant(self.ep, h, peer.ep, offset, len, access)
    }

    /// Revoke a grant the caller issued. Uses that start afterwards fail with `EDVSPERM`.
    ///
    /// Errors: the common ones, `EDVSPERM` (no live grant of the caller with this id: already
    /// revoked, stale or forged).
    pub fn revoke(&self, id: GrantId) -> Result<()> {
        self.pool()?.revoke(self.ep, id)
    }

    /// A view of the range `grantor` granted the caller with `id`, with the grant's rights
    /// (read-only for a READ grant): read and write it in place.
    ///
    /// Errors: the common ones, `EDVSPERM` (no live grant of `grantor` with this id: revoked,
    /// stale, forged, or its buffer was released or given away), `EDVSACCES` (granted to
    /// another endpoint).
    pub fn granted(&self, grantor: Endpoint, id: GrantId) -> Result<BufView<'_>> {
        BufView::granted(self.pool()?, self.ep, grantor, id)
    }
}
