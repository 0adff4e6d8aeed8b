//! Loom models of the allocator's lock-free core (`alloc.rs`): chunk claim and return, the
//! bitmap and the count.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p m3ipc --release --lib loom_pool
//! ```
//!
//! Each model drives the real `alloc`/`free` on a pool of one or two chunks held in loom
//! atomics, with the large classes (4, 2 and 1 blocks per chunk) so that a chunk fills and
//! changes class within a few steps. Every thread marks the quarter-chunks its block covers in a
//! shared ownership table with a CAS from 0 (two blocks that overlap make a CAS fail) and clears
//! them before it frees. The checks: no overlap; an allocation never comes back `Lost` (a
//! reservation always finds its bit); one fails `Exhausted` only while the pool is really full;
//! and at the end every chunk is FREE with an empty bitmap (no leak). Lowering the count before
//! clearing the bit in `free` makes `loom_pool_free_races_alloc` fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::alloc::{self, BITMAP_WORDS, ChunkState, Chunks, Fail, PAGES_PER_CHUNK};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::thread;

/// Ownership is tracked per quarter chunk (a block of class 6).
const UNIT_PAGES: usize = PAGES_PER_CHUNK / 4;

struct Model {
    states: Vec<AtomicU64>,
    bitmaps: Vec<AtomicU64>,
    owners: Vec<AtomicUsize>,
}

impl Chunks for Model {
    fn nr_chunks(&self) -> usize {
        self.states.len()
    }
    fn state(&self, c: usize) -> Option<&AtomicU64> {
        self.states.get(c)
    }
    fn bitmap(&self, c: usize, w: usize) -> Option<&AtomicU64> {
        if w >= BITMAP_WORDS {
            return None;
        }
        self.bitmaps.get(c * BITMAP_WORDS + w)
    }
}

impl Model {
    fn new(chunks: usize) -> Arc<Model> {
        Arc::new(Model {
            states: (0..chunks).map(|_| AtomicU64::new(0)).collect(),
            bitmaps: (0..chunks * BITMAP_WORDS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            owners: (0..chunks * 4).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    /// The ownership units of block `i` of `class` in chunk `c`.
    fn units(c: usize, class: u32, i: usize) -> std::ops::Range<usize> {
        let first = c * PAGES_PER_CHUNK + (i << class);
        let pages = 1usize << class;
        first / UNIT_PAGES..(first + pages) / UNIT_PAGES
    }

    /// Allocate, check no other live block overlaps, and return the block.
    fn take(&self, tid: usize, class: u32) -> Result<(usize, usize), Fail> {
        let (c, i) = alloc::alloc(self, class, 0)?;
        for u in Model::units(c, class, i) {
            assert!(
                self.owners[u]
                    .compare_exchange(0, tid, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok(),
                "thread {tid}: block {i} of class {class} in chunk {c} overlaps a live block"
            );
        }
        Ok((c, i))
    }

    /// Stop using the block, then free it.
    fn give_back(&self, tid: usize, class: u32, (c, i): (usize, usize)) {
        for u in Model::units(c, class, i) {
            assert_eq!(self.owners[u].swap(0, Ordering::Relaxed), tid);
        }
        assert_eq!(alloc::free(self, c, class, i), Ok(()));
    }

    /// No leak: every chunk FREE, every bitmap empty.
    fn check_empty(&self) {
        for s in &self.states {
            assert_eq!(ChunkState(s.load(Ordering::Relaxed)), ChunkState::FREE);
        }
        for b in &self.bitmaps {
            assert_eq!(b.load(Ordering::Relaxed), 0);
        }
    }
}

fn builder(default_bound: usize) -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(default_bound);
    }
    b
}

/// Two threads allocate two blocks of one class in a one-chunk pool with room for exactly two:
/// both succeed, with different blocks, and the chunk returns to FREE after both frees.
#[test]
fn loom_pool_same_class_concurrent() {
    builder(3).check(|| {
        let m = Model::new(1);
        let handles: Vec<_> = (1..=2)
            .map(|tid| {
                let m = m.clone();
                thread::spawn(move || {
                    let b = m.take(tid, 7).expect("room for two blocks of class 7");
                    m.give_back(tid, 7, b);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        m.check_empty();
    });
}

/// Two classes compete for one chunk: whoever holds it keeps the other out (`Exhausted`), a
/// chunk that comes back FREE is claimed with an empty bitmap, and nothing overlaps or leaks.
#[test]
fn loom_pool_two_classes_share_a_chunk_in_turn() {
    builder(3).check(|| {
        let m = Model::new(1);
        let handles: Vec<_> = [(1, 8), (2, 6)]
            .into_iter()
            .map(|(tid, class)| {
                let m = m.clone();
                thread::spawn(move || match m.take(tid, class) {
                    Ok(b) => {
                        m.give_back(tid, class, b);
                        true
                    }
                    Err(f) => {
                        assert_eq!(f, Fail::Exhausted);
                        false
                    }
                })
            })
            .collect();
        let ok: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(ok.iter().any(|&b| b), "one of them must get the chunk");
        m.check_empty();
    });
}

/// A free of the only block races an allocation of the same size: the allocation gets the block
/// or finds the pool full, and never reserves a chunk whose bit is still set (`Lost`). The model
/// that catches a free lowering the count before clearing the bit.
#[test]
fn loom_pool_free_races_alloc() {
    builder(3).check(|| {
        let m = Model::new(1);
        let held = m.take(1, 8).expect("empty pool");
        let freer = {
            let m = m.clone();
            thread::spawn(move || m.give_back(1, 8, held))
        };
        let taker = {
            let m = m.clone();
            thread::spawn(move || match m.take(2, 8) {
                Ok(b) => m.give_back(2, 8, b),
                Err(f) => assert_eq!(f, Fail::Exhausted, "a reservation found no free bit"),
            })
        };
        freer.join().unwrap();
        taker.join().unwrap();
        m.check_empty();
    });
}

/// Two chunks, a free that returns one chunk and an allocation of another class: the returned
/// chunk is reclaimed cleanly in the new class or the other chunk is used.
#[test]
fn loom_pool_chunk_returns_and_changes_class() {
    builder(2).check(|| {
        let m = Model::new(2);
        let held = m.take(1, 8).expect("empty pool");
        let other = m.take(3, 8).expect("second chunk");
        let freer = {
            let m = m.clone();
            thread::spawn(move || m.give_back(1, 8, held))
        };
        let taker = {
            let m = m.clone();
            thread::spawn(move || match m.take(2, 7) {
                Ok(b) => m.give_back(2, 7, b),
                Err(f) => assert_eq!(f, Fail::Exhausted),
            })
        };
        freer.join().unwrap();
        taker.join().unwrap();
        m.give_back(3, 8, other);
        m.check_empty();
    });
}
