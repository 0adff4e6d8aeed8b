//! Buffers: allocation, validation of handles, ownership transfer, release, and returning the
//! buffers of a dead or unbound endpoint.
//!
//! A block's metadata word (see [`Meta`]) names its owner and generation. Allocation takes a
//! block from the allocator core, then publishes `OWNED(generation + 1, owner)`; release moves
//! the word back to `FREE` with one CAS (so of two releases, one wins and the other finds the
//! handle stale), then frees the block in the core. Giving is one CAS of the owner field.

use super::alloc::{self, CHUNK, CLASSES, ChunkState, Chunks, Fail, PAGE, PAGES_PER_CHUNK};
use super::file::{GRANTS, PoolFile};
use super::handle::{Handle, META_FREE, META_OWNED, Meta, next_gen};
use crate::endpoint::Endpoint;
use crate::errno::{Errno, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A DC's mapped pool.
pub(crate) struct Pool {
    pub(crate) file: PoolFile,
    /// Where this process starts looking for a chunk (private memory: a hint only).
    hint: AtomicUsize,
    /// Where this process starts looking for a free grant entry.
    pub(crate) grant_hint: AtomicUsize,
}

/// What the pool holds now (`dvs dc ls`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolInfo {
    /// Bytes of data in the pool.
    pub total_bytes: u64,
    /// Bytes of the blocks allocated now (each counted at its size class).
    pub used_bytes: u64,
    /// Buffers allocated now.
    pub buffers: u64,
    /// Chunks (1 MiB) that serve no size class now.
    pub free_chunks: u64,
    /// Live grants.
    pub grants: u64,
    /// Entries of the grant table.
    pub grant_slots: u64,
    /// Bytes copied by `vcopy` since the DC was created: the only copies the pool makes.
    pub copied_bytes: u64,
    /// `vcopy` calls that copied.
    pub copies: u64,
}

/// What one endpoint holds in the pool (`dvs ps`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Buffers it owns.
    pub buffers: u32,
    /// Their bytes, at size class.
    pub bytes: u64,
    /// Live grants it issued.
    pub grants: u32,
}

/// The size class of a buffer of `len` bytes.
fn class_of(len: usize) -> Result<u32> {
    if len == 0 || len > CHUNK {
        return Err(Errno::EDVSRANGE);
    }
    let pages = len.div_ceil(PAGE).next_power_of_two();
    Ok(pages.trailing_zeros())
}

impl Pool {
    pub(crate) fn new(file: PoolFile) -> Pool {
        let seed = std::process::id() as usize;
        Pool {
            file,
            hint: AtomicUsize::new(seed),
            grant_hint: AtomicUsize::new(seed.wrapping_mul(7919)),
        }
    }

    /// Allocate a buffer of at least `len` bytes for `owner`. Errors: `EDVSRANGE` (`len` 0 or
    /// above 1 MiB), `EDVSNOMEM` (no room), `EDVSAGAIN` (scribbled words).
    pub(crate) fn alloc(&self, owner: Endpoint, len: usize) -> Result<Handle> {
        let class = class_of(len)?;
        // Relaxed: a private hint.
        let start = self.hint.load(Ordering::Relaxed);
        let (c, i) = alloc::alloc(&self.file, class, start).map_err(|f| match f {
            Fail::Exhausted => Errno::EDVSNOMEM,
            Fail::Lost => Errno::EDVSAGAIN,
        })?;
        self.hint.store(c, Ordering::Relaxed);
        let pos = c * PAGES_PER_CHUNK + (i << class);
        let Some(word) = self.file.meta(pos) else {
            let _ = alloc::free(&self.file, c, class, i);
            return Err(Errno::EDVSAGAIN);
        };
        // The block is ours (its bit): nobody else writes this word until we publish it.
        // Relaxed load: the allocation's Acquire made the last release's store visible.
        let old = Meta(word.load(Ordering::Relaxed));
        let generation = next_gen(old.generation());
        // Release: the block is published after the allocator's words.
        word.store(
            Meta::new(META_OWNED, generation, class, owner).0,
            Ordering::Release,
        );
        Ok(Handle::new(pos as u32, class, generation))
    }

    /// The metadata word and data offset of `h`'s buffer, if `h` names an allocated buffer;
    /// else `EDVSBADF`.
    pub(crate) fn check(&self, h: Handle) -> Result<(Meta, usize)> {
        if !h.well_formed() {
            return Err(Errno::EDVSBADF);
        }
        let pos = h.pos() as usize;
        if pos >= self.file.geo.nr_pages() || !pos.is_multiple_of(1 << h.class()) {
            return Err(Errno::EDVSBADF);
        }
        let word = self.file.meta(pos).ok_or(Errno::EDVSBADF)?;
        // Acquire: the owner's writes to the buffer before it gave it (Release CAS) are
        // visible to the new owner that sees itself named here.
        let m = Meta(word.load(Ordering::Acquire));
        if !m.names(h) {
            return Err(Errno::EDVSBADF);
        }
        Ok((m, pos * PAGE))
    }

    /// The data offset of `h`'s buffer if `owner` owns it. Errors: `EDVSBADF`, `EDVSBADOWNER`.
    pub(crate) fn owned(&self, h: Handle, owner: Endpoint) -> Result<usize> {
        let (m, off) = self.check(h)?;
        if m.owner() != owner {
            return Err(Errno::EDVSBADOWNER);
        }
        Ok(off)
    }

    /// Make `to` the owner of `h`'s buffer, owned by `from`. Errors: `EDVSBADF`,
    /// `EDVSBADOWNER`.
    pub(crate) fn give(&self, h: Handle, from: Endpoint, to: Endpoint) -> Result<()> {
        let (m, _) = self.check(h)?;
        if m.owner() != from {
            return Err(Errno::EDVSBADOWNER);
        }
        let word = self.file.meta(h.pos() as usize).ok_or(Errno::EDVSBADF)?;
        let given = Meta::new(META_OWNED, m.generation(), m.class(), to);
        // AcqRel: Release publishes the giver's writes to the buffer to the new owner (whose
        // `check` acquires this word).
        word.compare_exchange(m.0, given.0, Ordering::AcqRel, Ordering::Relaxed)
            .map(drop)
            .map_err(|_| Errno::EDVSBADF)
    }

    /// Release `h`'s buffer, owned by `owner`. Errors: `EDVSBADF` (stale, as on a second
    /// release), `EDVSBADOWNER`, `EDVSAGAIN` (the allocator's words were scribbled on; the
    /// buffer is gone from its owner anyway).
    pub(crate) fn release(&self, h: Handle, owner: Endpoint) -> Result<()> {
        let (m, _) = self.check(h)?;
        if m.owner() != owner {
            return Err(Errno::EDVSBADOWNER);
        }
        self.free_block(h.pos() as usize, m)
    }

    /// Free the block at page `pos` whose word was `m` (OWNED).
    fn free_block(&self, pos: usize, m: Meta) -> Result<()> {
        let word = self.file.meta(pos).ok_or(Errno::EDVSBADF)?;
        let freed = Meta::new(META_FREE, m.generation(), m.class(), 0);
        // AcqRel: one of two racing releases wins; the Acquire orders the owner's last use of
        // the data before the block goes back (the allocator's Release CAS then publishes it).
        if word
            .compare_exchange(m.0, freed.0, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Err(Errno::EDVSBADF);
        }
        let class = m.class();
        let c = pos / PAGES_PER_CHUNK;
        let i = (pos % PAGES_PER_CHUNK) >> class;
        alloc::free(&self.file, c, class, i).map_err(|_| Errno::EDVSAGAIN)
    }

    /// Call `f(pos, meta)` for every block of every classed chunk. Bounded by the pages.
    fn each_block(&self, mut f: impl FnMut(usize, Meta)) {
        for c in 0..self.file.geo.nr_chunks {
            let Some(state) = self.file.state(c) else {
                break;
            };
            // Relaxed: a snapshot for a scan.
            let Some(class) = ChunkState(state.load(Ordering::Relaxed)).class() else {
                continue;
            };
            for i in 0..alloc::blocks(class) {
                let pos = c * PAGES_PER_CHUNK + (i << class);
                if let Some(w) = self.file.meta(pos) {
                    // Acquire: pairs with the allocation's Release store.
                    let m = Meta(w.load(Ordering::Acquire));
                    if m.state() == META_OWNED && m.class() == class {
                        f(pos, m);
                    }
                }
            }
        }
    }

    /// Return every buffer `ep` owns and revoke every grant it issued (cleanup of a dead or
    /// unbound endpoint). Idempotent; bounded by the pages and the grant table. Returns how many
    /// buffers it freed.
    pub(crate) fn release_owner(&self, ep: Endpoint) -> usize {
        let mut mine = Vec::new();
        self.each_block(|pos, m| {
            if m.owner() == ep {
                mine.push((pos, m));
            }
        });
        let freed = mine
            .into_iter()
            .filter(|&(pos, m)| self.free_block(pos, m).is_ok())
            .count();
        self.revoke_all_of(ep);
        freed
    }

    /// What the pool holds now.
    pub(crate) fn info(&self) -> PoolInfo {
        let mut info = PoolInfo {
            total_bytes: (self.file.geo.nr_chunks * CHUNK) as u64,
            grant_slots: GRANTS as u64,
            ..PoolInfo::default()
        };
        for c in 0..self.file.geo.nr_chunks {
            let Some(state) = self.file.state(c) else {
                break;
            };
            let s = ChunkState(state.load(Ordering::Relaxed));
            match s.class() {
                Some(class) => {
                    let n = (s.count() as usize).min(alloc::blocks(class));
                    info.buffers += n as u64;
                    info.used_bytes += (n * (PAGE << class)) as u64;
                }
                None if s == ChunkState::FREE => info.free_chunks += 1,
                None => {}
            }
        }
        info.grants = self.live_grants(|_| ()).len() as u64;
        let h = self.file.header();
        info.copied_bytes = h.copied.load(Ordering::Relaxed);
        info.copies = h.copies.load(Ordering::Relaxed);
        info
    }

    /// What each endpoint holds, in one scan of the blocks and the grants.
    pub(crate) fn holdings(&self) -> HashMap<Endpoint, Holdings> {
        let mut map: HashMap<Endpoint, Holdings> = HashMap::new();
        self.each_block(|_, m| {
            let e = map.entry(m.owner()).or_default();
            e.buffers += 1;
            if m.class() < CLASSES {
                e.bytes += (PAGE << m.class()) as u64;
            }
        });
        for grantor in self.live_grants(|g| g.grantor) {
            map.entry(grantor).or_default().grants += 1;
        }
        map
    }
}
