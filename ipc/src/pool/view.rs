//! A process's view of one buffer: read and write it in place.
//!
//! A view never hands out a Rust reference into the pool (another process may write those
//! bytes at any time): bytes cross between the pool and private memory with `ptr::copy`, and
//! words are read in place with volatile loads. Every access checks again that the view is still
//! valid (the buffer still owned by the caller, or the grant still live), so a release, a give
//! or a revoke takes effect at the next access.

use super::buffers::Pool;
use super::handle::{Access, GrantId, Handle};
use crate::endpoint::Endpoint;
use crate::errno::{Errno, Result};

/// How the view was obtained.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// The caller owns the buffer.
    Owned(Handle),
    /// Through a grant of `grantor`.
    Granted { id: GrantId, grantor: Endpoint },
}

/// A buffer (or the granted range of one) as the calling endpoint sees it: obtained with
/// [`Proc::buffer`](crate::Proc::buffer) (owner: read-write) or
/// [`Proc::granted`](crate::Proc::granted) (grantee: the grant's rights and range).
///
/// Offsets are relative to the start of the view. Errors of every access: `EDVSBADF` or
/// `EDVSBADOWNER` (an owned buffer was released or given away), `EDVSPERM` (the grant was revoked
/// or lapsed), `EDVSACCES` (the right is missing), `EDVSRANGE` (outside the view), `EDVSALIGN`
/// (word accesses at an unaligned pool offset or of a length that is not a multiple of 8).
pub struct BufView<'a> {
    pool: &'a Pool,
    me: Endpoint,
    source: Source,
    /// Data offset of the view's first byte when it was made.
    base: usize,
    len: usize,
    access: Access,
}

impl core::fmt::Debug for BufView<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BufView")
            .field("source", &self.source)
            .field("pool_offset", &self.base)
            .field("len", &self.len)
            .field("access", &self.access)
            .finish()
    }
}

impl<'a> BufView<'a> {
    pub(crate) fn owned(pool: &'a Pool, me: Endpoint, h: Handle) -> Result<BufView<'a>> {
        let base = pool.owned(h, me)?;
        Ok(BufView {
            pool,
            me,
            source: Source::Owned(h),
            base,
            len: h.capacity(),
            access: Access::READ_WRITE,
        })
    }

    pub(crate) fn granted(
        pool: &'a Pool,
        me: Endpoint,
        grantor: Endpoint,
        id: GrantId,
    ) -> Result<BufView<'a>> {
        let u = pool.use_grant(id, grantor, Some(me), Access::NONE, 0, 0)?;
        Ok(BufView {
            pool,
            me,
            source: Source::Granted { id, grantor },
            base: u.data_off,
            len: u.entry.len,
            access: u.entry.rights,
        })
    }

    /// Bytes in the view: the buffer's capacity (its size class, at least the length asked
    /// for), or the granted range's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view has no bytes (never, for a valid view).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What the view may do: `READ_WRITE` for an owner, the grant's rights for a grantee.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The buffer's handle, for an owner's view.
    pub fn handle(&self) -> Option<Handle> {
        match self.source {
            Source::Owned(h) => Some(h),
            Source::Granted { .. } => None,
        }
    }

    /// Offset of the view's first byte in the pool's data: the same in every process, so two
    /// processes that see the same offset read the very same bytes (the proof that a transfer
    /// copied nothing).
    pub fn pool_offset(&self) -> u64 {
        self.base as u64
    }

    /// Check the view is still valid for `need` on `[off, off + len)`; the data offset of `off`.
    fn at(&self, need: Access, off: usize, len: usize) -> Result<usize> {
        if !self.access.allows(need) {
            return Err(Errno::EDVSACCES);
        }
        if off.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(Errno::EDVSRANGE);
        }
        match self.source {
            Source::Owned(h) => {
                if self.pool.owned(h, self.me)? != self.base {
                    return Err(Errno::EDVSBADF);
                }
            }
            Source::Granted { id, grantor } => {
                let u = self
                    .pool
                    .use_grant(id, grantor, Some(self.me), need, off, len)?;
                if u.data_off != self.base + off {
                    return Err(Errno::EDVSPERM);
                }
            }
        }
        Ok(self.base + off)
    }

    /// Copy `data` into the view at `off` (needs WRITE).
    pub fn write_at(&self, off: usize, data: &[u8]) -> Result<()> {
        let at = self.at(Access::WRITE, off, data.len())?;
        let dst = self
            .pool
            .file
            .data(at, data.len())
            .ok_or(Errno::EDVSRANGE)?;
        // SAFETY: `dst` points to `data.len()` bytes inside the pool's mapping (checked by
        // `data`), which lives as long as `self.pool`. `data` is private memory, so the two do
        // not overlap. Other processes may access the same bytes concurrently: the pool is
        // shared memory whose contents are untrusted bytes, never Rust values.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// Copy `out.len()` bytes of the view at `off` into `out` (needs READ).
    pub fn read_at(&self, off: usize, out: &mut [u8]) -> Result<()> {
        let at = self.at(Access::READ, off, out.len())?;
        let src = self.pool.file.data(at, out.len()).ok_or(Errno::EDVSRANGE)?;
        // SAFETY: as in `write_at`, with the roles swapped: `src` lies in the mapping, `out` is
        // private memory.
        unsafe { core::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Call `f` with the address of `len` bytes of the view at `off` (needs READ), to hand
    /// them to the kernel (an iovec of `sendmsg`) without a copy. The address is valid for
    /// reads of `len` bytes until `f` returns (the view keeps the pool mapped). The bytes are
    /// shared memory that other processes may write at any time: read them only through raw
    /// pointers or the kernel, never as a Rust reference.
    pub fn with_raw<R>(&self, off: usize, len: usize, f: impl FnOnce(*const u8) -> R) -> Result<R> {
        let at = self.at(Access::READ, off, len)?;
        let src = self.pool.file.data(at, len).ok_or(Errno::EDVSRANGE)?;
        Ok(f(src.cast_const()))
    }

    /// Append `len` bytes of the view at `off` to `out` (needs READ): [`BufView::read_at`]
    /// without zeroing the room first, for a large chunk bound for a socket.
    pub fn append_to(&self, off: usize, len: usize, out: &mut Vec<u8>) -> Result<()> {
        let at = self.at(Access::READ, off, len)?;
        let src = self.pool.file.data(at, len).ok_or(Errno::EDVSRANGE)?;
        out.reserve(len);
        let old = out.len();
        // SAFETY: `reserve` made room for `len` more bytes after `old`, so the destination is
        // valid for `len` writes; `src` lies in the mapping (checked by `data`) and `out` is
        // private memory, so they do not overlap. The copy initialises exactly
        // `old..old + len`, which makes the new length sound.
        unsafe {
            core::ptr::copy_nonoverlapping(src, out.as_mut_ptr().add(old), len);
            out.set_len(old + len);
        }
        Ok(())
    }

    /// Fill `len` bytes at `off` with `byte` (needs WRITE).
    pub fn fill(&self, off: usize, len: usize, byte: u8) -> Result<()> {
        let at = self.at(Access::WRITE, off, len)?;
        let dst = self.pool.file.data(at, len).ok_or(Errno::EDVSRANGE)?;
        // SAFETY: `dst` points to `len` bytes inside the mapping (checked by `data`).
        unsafe { core::ptr::write_bytes(dst, byte, len) };
        Ok(())
    }

    /// Read the little-endian word at `off` in place (needs READ; `pool_offset() + off` a
    /// multiple of 8).
    pub fn read_u64(&self, off: usize) -> Result<u64> {
        self.fold_words(off, 8, 0, |_, w| w)
    }

    /// Fold `f` over the little-endian words of `[off, off + len)` in place, without copying
    /// the bytes out (needs READ; `len` and the pool offset of byte `off`,
    /// [`pool_offset`](Self::pool_offset) + `off`, multiples of 8, else `EDVSALIGN`: a grant may
    /// start at any byte). One validity check for the whole range, then volatile loads.
    pub fn fold_words(
        &self,
        off: usize,
        len: usize,
        init: u64,
        mut f: impl FnMut(u64, u64) -> u64,
    ) -> Result<u64> {
        if !len.is_multiple_of(8) {
            return Err(Errno::EDVSALIGN);
        }
        let at = self.at(Access::READ, off, len)?;
        // A grant's range may start anywhere: the words must be aligned in the pool itself.
        if !at.is_multiple_of(8) {
            return Err(Errno::EDVSALIGN);
        }
        let src = self.pool.file.data(at, len).ok_or(Errno::EDVSRANGE)? as *const u64;
        let mut acc = init;
        for i in 0..len / 8 {
            // SAFETY: word `i` lies inside the `len` bytes at `src`, inside the mapping; the
            // data part is page-aligned and `at` a multiple of 8 (checked), so the word is
            // aligned. A volatile load of plain bytes another process may write.
            let w = unsafe { core::ptr::read_volatile(src.add(i)) };
            acc = f(acc, u64::from_le(w));
        }
        Ok(acc)
    }

    /// A checksum of `[off, off + len)` computed in place ([`checksum_words`] of the words).
    pub fn checksum(&self, off: usize, len: usize) -> Result<u64> {
        self.fold_words(off, len, CHECKSUM_SEED, checksum_step)
    }
}

const CHECKSUM_SEED: u64 = 0xcbf2_9ce4_8422_2325;

fn checksum_step(acc: u64, w: u64) -> u64 {
    (acc.rotate_left(5) ^ w).wrapping_mul(0x0000_0100_0000_01b3)
}

/// The checksum [`BufView::checksum`] computes, over bytes in private memory (a length that is
/// not a multiple of 8 is padded with zeros).
pub fn checksum_words(bytes: &[u8]) -> u64 {
    bytes.chunks(8).fold(CHECKSUM_SEED, |acc, c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        checksum_step(acc, u64::from_le_bytes(w))
    })
}
