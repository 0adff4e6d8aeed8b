//! The lock-free core of the buffer allocator: chunk claim and return, the per-chunk bitmap and
//! the per-chunk count of blocks in use.
//!
//! The pool's data is cut into chunks of [`CHUNK`] bytes. A chunk is FREE, or serves one size
//! class (blocks of `4 KiB << class`, so 256 .. 1 blocks per chunk). Its state word holds the
//! class and the number of blocks *reserved* in it:
//!
//! - allocate: raise the count with one CAS (`(class, n) -> (class, n + 1)`, or `FREE ->
//!   (class, 1)` to claim a chunk), *then* set a free bit of the chunk's bitmap;
//! - free: clear the bit, *then* lower the count with one CAS (`(class, 1) -> FREE` returns the
//!   chunk).
//!
//! So the count is never below the number of set bits, a count of zero (FREE) means that no bit
//! is set, and a chunk that changes class starts with an empty bitmap. A reservation guarantees
//! a free bit exists (every other set bit is covered by another reservation), so the bit search
//! of an honest pool always succeeds; it is bounded anyway, and gives up with [`Fail::Lost`] when
//! the words say otherwise (a scribbled pool).
//!
//! Written against `crate::sync` atomics, so that `loom_tests.rs` model-checks it. The words are
//! in the shared pool file: every index is bounds-checked through [`Chunks`] and every loop is
//! bounded.

use crate::sync::atomic::{AtomicU64, Ordering};

/// Bytes of one chunk.
pub(crate) const CHUNK: usize = 1 << 20;
/// Bytes of one page, the smallest block.
pub(crate) const PAGE: usize = 4096;
/// Pages of one chunk.
pub(crate) const PAGES_PER_CHUNK: usize = CHUNK / PAGE;
/// Size classes: blocks of `PAGE << class` bytes, class `0..CLASSES` (4 KiB .. 1 MiB).
pub(crate) const CLASSES: u32 = 9;
/// Bitmap words of one chunk (one bit per block of the smallest class).
pub(crate) const BITMAP_WORDS: usize = PAGES_PER_CHUNK / 64;
/// Attempts of one CAS on a count before giving up. A CAS fails only when another process
/// changed the word meanwhile (made progress); the bound is for a hostile one that never stops.
const CAS_ATTEMPTS: usize = 1 << 16;
/// Passes over a chunk's bitmap in search of a free bit.
const BIT_PASSES: usize = 3;

/// Why an allocation or a free failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fail {
    /// No chunk of the class has room and no chunk is free.
    Exhausted,
    /// A reservation found no free bit, or a free found its bit clear or its count wrong: the
    /// words were scribbled on (or a CAS lost [`CAS_ATTEMPTS`] times in a row).
    Lost,
}

/// The chunk words an allocator works on (in the pool file, or in a loom model).
pub(crate) trait Chunks {
    /// Number of chunks.
    fn nr_chunks(&self) -> usize;
    /// Chunk `c`'s state word, `None` outside the table.
    fn state(&self, c: usize) -> Option<&AtomicU64>;
    /// Word `w` (`0..BITMAP_WORDS`) of chunk `c`'s bitmap, `None` outside the table.
    fn bitmap(&self, c: usize, w: usize) -> Option<&AtomicU64>;
}

/// Blocks of class `class` in one chunk.
pub(crate) const fn blocks(class: u32) -> usize {
    PAGES_PER_CHUNK >> class
}

/// A state word: class (stored as `class + 1`, 0 = FREE) and count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkState(pub(crate) u64);

impl ChunkState {
    /// A free chunk.
    pub(crate) const FREE: ChunkState = ChunkState(0);

    pub(crate) const fn new(class: u32, count: u32) -> ChunkState {
        ChunkState(((class as u64 + 1) << 32) | count as u64)
    }

    /// The class, `None` when free or corrupt (class field out of range).
    pub(crate) const fn class(self) -> Option<u32> {
        let c = (self.0 >> 32) as u32;
        if c == 0 || c > CLASSES || self.0 >> 40 != 0 {
            None
        } else {
            Some(c - 1)
        }
    }

    /// Blocks reserved.
    pub(crate) const fn count(self) -> u32 {
        self.0 as u32
    }
}

/// Allocate a block of `class`, looking first at chunks of that class, then at free chunks, each
/// pass starting at chunk `start` (a hint that spreads processes over the pool). Returns
/// `(chunk, block index in the chunk)`; the block's bit is set and counted.
pub(crate) fn alloc(t: &impl Chunks, class: u32, start: usize) -> Result<(usize, usize), Fail> {
    if class >= CLASSES {
        return Err(Fail::Lost);
    }
    let n = t.nr_chunks();
    if n == 0 {
        return Err(Fail::Exhausted);
    }
    let mut lost = false;
    for claim in [false, true] {
        for k in 0..n {
            let c = (start % n + k) % n;
            let reserved = if claim {
                claim_or_reserve(t, c, class)
            } else {
                reserve(t, c, class)
            };
            if !reserved {
                continue;
            }
            if let Some(i) = take_bit(t, c, class) {
                return Ok((c, i));
            }
            // Scribbled: give the reservation back and look elsewhere.
            lost = true;
            let _ = unreserve(t, c, class);
        }
    }
    Err(if lost { Fail::Lost } else { Fail::Exhausted })
}

/// Raise the count of chunk `c` if it serves `class` and has room.
fn reserve(t: &impl Chunks, c: usize, class: u32) -> bool {
    let Some(word) = t.state(c) else { return false };
    for _ in 0..CAS_ATTEMPTS {
        // Relaxed: only a hint of what to CAS from.
        let s = ChunkState(word.load(Ordering::Relaxed));
        if s.class() != Some(class) || s.count() == 0 || s.count() as usize >= blocks(class) {
            return false;
        }
        // Acquire: synchronizes with the Release CAS of the free that made room, so that its
        // bit clear (made before it) is visible to our bit search.
        if word
            .compare_exchange(s.0, s.0 + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
    }
    false
}

/// Claim chunk `c` for `class` if it is free.
fn claim_free(t: &impl Chunks, c: usize, class: u32) -> bool {
    let Some(word) = t.state(c) else { return false };
    // Acquire: synchronizes with the Release CAS that returned the chunk, so every bit clear
    // of its former blocks is visible: the bitmap reads empty.
    word.compare_exchange(
        ChunkState::FREE.0,
        ChunkState::new(class, 1).0,
        Ordering::Acquire,
        Ordering::Relaxed,
    )
    .is_ok()
}

/// Claim chunk `c` if free; a claim lost to an allocator of our class leaves room in it for us,
/// and a chunk that came back FREE meanwhile is tried again (a few times: a bound).
fn claim_or_reserve(t: &impl Chunks, c: usize, class: u32) -> bool {
    for _ in 0..4 {
        if claim_free(t, c, class) || reserve(t, c, class) {
            return true;
        }
        // Relaxed: only whether to try again.
        if t.state(c)
            .is_none_or(|w| w.load(Ordering::Relaxed) != ChunkState::FREE.0)
        {
            return false;
        }
    }
    false
}

/// Set a clear bit among chunk `c`'s blocks of `class`; the caller holds a reservation.
fn take_bit(t: &impl Chunks, c: usize, class: u32) -> Option<usize> {
    let nb = blocks(class);
    for _ in 0..BIT_PASSES {
        for w in 0..nb.div_ceil(64) {
            let word = t.bitmap(c, w)?;
            let mask = if nb - w * 64 >= 64 {
                u64::MAX
            } else {
                (1u64 << (nb - w * 64)) - 1
            };
            // Relaxed: the reservation's Acquire already made the frees we rely on visible;
            // a stale set bit only makes us look further.
            let free = !word.load(Ordering::Relaxed) & mask;
            if free == 0 {
                continue;
            }
            let bit = 1u64 << free.trailing_zeros();
            // Relaxed: the bit is ours if it was clear; the count orders it for frees.
            if word.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
                return Some(w * 64 + free.trailing_zeros() as usize);
            }
        }
    }
    None
}

/// Free block `i` of class `class` in chunk `c`: clear its bit, then lower the count.
pub(crate) fn free(t: &impl Chunks, c: usize, class: u32, i: usize) -> Result<(), Fail> {
    if class >= CLASSES || i >= blocks(class) {
        return Err(Fail::Lost);
    }
    let word = t.bitmap(c, i / 64).ok_or(Fail::Lost)?;
    let bit = 1u64 << (i % 64);
    // Relaxed: the Release CAS on the count below publishes this clear.
    if word.fetch_and(!bit, Ordering::Relaxed) & bit == 0 {
        return Err(Fail::Lost);
    }
    unreserve(t, c, class)
}

/// Lower chunk `c`'s count; the last block returns the chunk (`(class, 1) -> FREE`).
fn unreserve(t: &impl Chunks, c: usize, class: u32) -> Result<(), Fail> {
    let word = t.state(c).ok_or(Fail::Lost)?;
    for _ in 0..CAS_ATTEMPTS {
        let s = ChunkState(word.load(Ordering::Relaxed));
        if s.class() != Some(class) || s.count() == 0 {
            return Err(Fail::Lost);
        }
        let next = if s.count() == 1 {
            ChunkState::FREE
        } else {
            ChunkState(s.0 - 1)
        };
        // Release: our bit clear (and our last use of the block) happens before whoever
        // acquires this count next.
        if word
            .compare_exchange(s.0, next.0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(Fail::Lost)
}
