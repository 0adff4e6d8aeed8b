//! Grants, in the style of MINIX safecopies: the owner of a buffer allows one endpoint READ
//! and/or WRITE on a byte range of it, and may revoke that.
//!
//! The grant table lies in the pool file: [`GRANTS`] entries of four words. Word 0 is the
//! control word (grantor endpoint, generation, state, rights); words 1..4 are the buffer handle,
//! the grantee and the range. An issuer claims a free entry with one CAS (`FREE -> FILLING` at the
//! next generation), writes the other words, then publishes `LIVE`. A reader reads the control
//! word, the other words, then the control word again, and takes the entry only if it did not
//! change (a seqlock): an entry revoked and issued again meanwhile has a new generation.
//!
//! A grant lapses when its buffer is released or given away (use is refused with `EDVSPERM`);
//! the entry of a lapsed grant is taken back by the next issue that finds it.

use super::buffers::Pool;
use super::file::GRANTS;
use super::handle::{Access, GEN_MASK, GrantId, Handle, next_gen};
use crate::endpoint::Endpoint;
use crate::errno::{Errno, Result};
use std::sync::atomic::{Ordering, fence};

const G_FREE: u64 = 0;
const G_FILLING: u64 = 1;
const G_LIVE: u64 = 2;

/// A control word: grantor in bits 0..32, generation in 32..56, state in 56..60, rights in
/// 60..64.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Control(u64);

impl Control {
    const fn new(state: u64, generation: u32, rights: Access, grantor: Endpoint) -> Control {
        Control(
            (grantor as u32 as u64)
                | ((generation as u64 & GEN_MASK) << 32)
                | ((state & 0xf) << 56)
                | ((rights.0 as u64 & 0xf) << 60),
        )
    }
    const fn grantor(self) -> Endpoint {
        self.0 as u32 as i32
    }
    const fn generation(self) -> u32 {
        ((self.0 >> 32) & GEN_MASK) as u32
    }
    const fn state(self) -> u64 {
        (self.0 >> 56) & 0xf
    }
    const fn rights(self) -> Access {
        Access((self.0 >> 60) as u8)
    }
}

/// A live grant, as read from the table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) id: GrantId,
    pub(crate) grantor: Endpoint,
    pub(crate) grantee: Endpoint,
    pub(crate) handle: Handle,
    pub(crate) offset: usize,
    pub(crate) len: usize,
    pub(crate) rights: Access,
}

/// A grant checked for one use: where its bytes lie in the pool's data.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GrantUse {
    /// Data offset of the byte at the use's offset.
    pub(crate) data_off: usize,
    /// The grant.
    pub(crate) entry: Entry,
}

impl Pool {
    /// Read entry `g` if it is live, consistently.
    fn read_grant(&self, g: usize) -> Option<Entry> {
        let f = &self.file;
        let c0 = f.grant_word(g, 0)?;
        // Acquire: the issuer's words, written before its Release store of LIVE, are visible.
        let before = Control(c0.load(Ordering::Acquire));
        if before.state() != G_LIVE {
            return None;
        }
        // Relaxed: checked against the control word below.
        let handle = Handle(f.grant_word(g, 1)?.load(Ordering::Relaxed));
        let grantee = f.grant_word(g, 2)?.load(Ordering::Relaxed) as u32 as i32;
        let range = f.grant_word(g, 3)?.load(Ordering::Relaxed);
        // Acquire fence: if any word above came from a later issuer (whose Release fence
        // follows its CAS of the control word), the reload below sees that CAS.
        fence(Ordering::Acquire);
        if Control(c0.load(Ordering::Relaxed)) != before {
            return None;
        }
        Some(Entry {
            id: GrantId::new(g as u32, before.generation()),
            grantor: before.grantor(),
            grantee,
            handle,
            offset: range as u32 as usize,
            len: (range >> 32) as usize,
            rights: before.rights(),
        })
    }

    /// Whether entry `e` lapsed: its buffer is no longer its grantor's, or its range is not
    /// inside the buffer.
    fn lapsed(&self, e: &Entry) -> bool {
        self.owned(e.handle, e.grantor).is_err()
            || e.offset
                .checked_add(e.len)
                .is_none_or(|end| end > e.handle.capacity())
    }

    /// Grant `grantee` `rights` on `[offset, offset + len)` of `h`, owned by `owner`. Errors:
    /// `EDVSBADF`, `EDVSBADOWNER`, `EDVSINVAL` (no right, or unknown bits), `EDVSRANGE` (empty
    /// range or outside the buffer), `EDVSNOSPC` (the table is full).
    pub(crate) fn grant(
        &self,
        owner: Endpoint,
        h: Handle,
        grantee: Endpoint,
        offset: usize,
        len: usize,
        rights: Access,
    ) -> Result<GrantId> {
        self.owned(h, owner)?;
        if rights == Access::NONE || !Access::READ_WRITE.allows(rights) {
            return Err(Errno::EDVSINVAL);
        }
        if len == 0 || offset.checked_add(len).is_none_or(|end| end > h.capacity()) {
            return Err(Errno::EDVSRANGE);
        }
        // Relaxed: a private hint.
        let start = self.grant_hint.load(Ordering::Relaxed);
        for k in 0..GRANTS {
            let g = (start.wrapping_add(k)) % GRANTS;
            let Some(c0) = self.file.grant_word(g, 0) else {
                continue;
            };
            // Relaxed: what to CAS from; the CAS decides.
            let cur = Control(c0.load(Ordering::Relaxed));
            let reusable = match cur.state() {
                G_FREE => true,
                G_LIVE => self.read_grant(g).is_some_and(|e| self.lapsed(&e)),
                _ => false,
            };
            if !reusable {
                continue;
            }
            let generation = next_gen(cur.generation());
            let filling = Control::new(G_FILLING, generation, Access::NONE, owner);
            // Acquire: a former holder's words are behind us; then a Release fence, so that a
            // reader that sees any of the words below also sees this claim (see `read_grant`).
            if c0
                .compare_exchange(cur.0, filling.0, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            fence(Ordering::Release);
            let words = [
                h.0,
                grantee as u32 as u64,
                (offset as u64) | ((len as u64) << 32),
            ];
            for (w, v) in (1..).zip(words) {
                if let Some(word) = self.file.grant_word(g, w) {
                    // Relaxed: published by the Release store of LIVE below.
                    word.store(v, Ordering::Relaxed);
                }
            }
            let live = Control::new(G_LIVE, generation, rights, owner);
            // Release: the words above are visible to whoever acquires LIVE. A CAS, so that a
            // cleanup that revoked the claim meanwhile (the owner judged dead) wins.
            if c0
                .compare_exchange(filling.0, live.0, Ordering::Release, Ordering::Relaxed)
                .is_err()
            {
                return Err(Errno::EDVSPERM);
            }
            self.grant_hint.store(g + 1, Ordering::Relaxed);
            return Ok(GrantId::new(g as u32, generation));
        }
        Err(Errno::EDVSNOSPC)
    }

    /// Revoke grant `id`, issued by `owner`. Errors: `EDVSPERM` (no live grant of `owner`:
    /// already revoked, stale, forged).
    pub(crate) fn revoke(&self, owner: Endpoint, id: GrantId) -> Result<()> {
        if !id.well_formed() || id.index() >= GRANTS {
            return Err(Errno::EDVSPERM);
        }
        let c0 = self.file.grant_word(id.index(), 0).ok_or(Errno::EDVSPERM)?;
        // Relaxed: the CAS decides.
        let cur = Control(c0.load(Ordering::Relaxed));
        if cur.state() != G_LIVE || cur.generation() != id.generation() || cur.grantor() != owner {
            return Err(Errno::EDVSPERM);
        }
        let free = Control::new(G_FREE, cur.generation(), Access::NONE, 0);
        // AcqRel: a use that started before sees LIVE, one that starts after sees FREE.
        c0.compare_exchange(cur.0, free.0, Ordering::AcqRel, Ordering::Relaxed)
            .map(drop)
            .map_err(|_| Errno::EDVSPERM)
    }

    /// Check grant `id` for a use by `user` needing `need` on `[off, off + len)` of the granted
    /// range, `grantor` being the endpoint named as its issuer. In order: `EDVSPERM` (no live
    /// grant of `grantor` with this id, or it lapsed), `EDVSACCES` (granted to another endpoint,
    /// or without `need`), `EDVSRANGE` (outside the grant). `user` `None`: the grantor uses its
    /// own grant as a range of its own buffer (grantee and rights are not checked).
    pub(crate) fn use_grant(
        &self,
        id: GrantId,
        grantor: Endpoint,
        user: Option<Endpoint>,
        need: Access,
        off: usize,
        len: usize,
    ) -> Result<GrantUse> {
        if !id.well_formed() || id.index() >= GRANTS {
            return Err(Errno::EDVSPERM);
        }
        let e = self.read_grant(id.index()).ok_or(Errno::EDVSPERM)?;
        if e.id != id || e.grantor != grantor {
            return Err(Errno::EDVSPERM);
        }
        if user.is_some_and(|u| e.grantee != u || !e.rights.allows(need)) {
            return Err(Errno::EDVSACCES);
        }
        if off.checked_add(len).is_none_or(|end| end > e.len) {
            return Err(Errno::EDVSRANGE);
        }
        if self.lapsed(&e) {
            return Err(Errno::EDVSPERM);
        }
        let base = self.owned(e.handle, grantor).map_err(|_| Errno::EDVSPERM)?;
        Ok(GrantUse {
            data_off: base + e.offset + off,
            entry: e,
        })
    }

    /// Revoke every grant `ep` issued, live or half-issued (cleanup).
    pub(crate) fn revoke_all_of(&self, ep: Endpoint) {
        for g in 0..GRANTS {
            let Some(c0) = self.file.grant_word(g, 0) else {
                break;
            };
            // Relaxed: the CAS decides.
            let cur = Control(c0.load(Ordering::Relaxed));
            if cur.state() == G_FREE || cur.grantor() != ep {
                continue;
            }
            let free = Control::new(G_FREE, cur.generation(), Access::NONE, 0);
            // AcqRel, as `revoke`.
            let _ = c0.compare_exchange(cur.0, free.0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// `f` of every live grant that has not lapsed.
    pub(crate) fn live_grants<T>(&self, f: impl Fn(&Entry) -> T) -> Vec<T> {
        (0..GRANTS)
            .filter_map(|g| self.read_grant(g))
            .filter(|e| !self.lapsed(e))
            .map(|e| f(&e))
            .collect()
    }
}
