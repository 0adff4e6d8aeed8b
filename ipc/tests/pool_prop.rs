//! Acceptance 4: a proptest of the buffer allocator through the public calls.
//!
//! Random sequences of allocations (every size class), releases, gives between three endpoints,
//! stale releases and unbinds run against a 4 MiB pool, next to a model of the allocator's
//! rule: a buffer of class k fits when some chunk serves class k with room, or some chunk is
//! free. After every step: the live buffers never overlap, the pool's use is exactly the model's,
//! and an allocation fails with `EDVSNOMEM` exactly when the model has no room. At the end,
//! unbinding everyone leaves the pool empty (no leak).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::{DcConfig, Errno, Handle, Proc};
use proptest::prelude::*;
use std::collections::HashMap;
use support::TestDc;

const CHUNKS: u64 = 4;
const CHUNK: u64 = 1 << 20;
const NRS: [i32; 3] = [1, 2, 8];

#[derive(Clone, Debug)]
enum Op {
    /// Endpoint `who` allocates `len` bytes.
    Alloc { who: usize, len: usize },
    /// The owner of live buffer `k` (modulo their number) releases it.
    Release { k: usize },
    /// The owner of live buffer `k` gives it to endpoint `to`.
    Give { k: usize, to: usize },
    /// Release a handle already released (must be refused).
    Stale { k: usize },
    /// Endpoint `who` unbinds and binds again: its buffers return.
    Rebind { who: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..=8u32, 0..4096usize).prop_map(|(who, class, extra)| Op::Alloc {
            who,
            len: ((4096usize << class) - extra).max(1),
        }),
        3 => any::<usize>().prop_map(|k| Op::Release { k }),
        2 => (any::<usize>(), 0..3usize).prop_map(|(k, to)| Op::Give { k, to }),
        1 => any::<usize>().prop_map(|k| Op::Stale { k }),
        1 => (0..3usize).prop_map(|who| Op::Rebind { who }),
    ]
}

/// A live buffer: its handle, owner index, pool offset and capacity.
#[derive(Clone, Copy, Debug)]
struct Live {
    h: Handle,
    owner: usize,
    off: u64,
    cap: u64,
}

fn class_of(cap: u64) -> u32 {
    (cap / 4096).trailing_zeros()
}

/// The model's verdict: does a buffer of `cap` bytes fit next to `live`?
fn fits(live: &[Live], cap: u64) -> bool {
    let mut chunks: HashMap<u64, (u64, u64)> = HashMap::new();
    for b in live {
        let e = chunks.entry(b.off / CHUNK).or_insert((b.cap, 0));
        assert_eq!(e.0, b.cap, "a chunk serves one size class at a time");
        e.1 += 1;
    }
    (chunks.len() as u64) < CHUNKS || chunks.values().any(|&(c, n)| c == cap && n < CHUNK / cap)
}

fn check(t: &TestDc, live: &[Live]) -> Result<(), TestCaseError> {
    let mut spans: Vec<(u64, u64)> = live.iter().map(|b| (b.off, b.off + b.cap)).collect();
    spans.sort();
    for w in spans.windows(2) {
        prop_assert!(w[0].1 <= w[1].0, "overlap: {:?}", w);
    }
    let info = t.dc.pool_info().unwrap();
    prop_assert_eq!(info.used_bytes, live.iter().map(|b| b.cap).sum::<u64>());
    prop_assert_eq!(info.buffers, live.len() as u64);
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let t = TestDc::with(
        'p',
        &DcConfig {
            nr_tasks: 4,
            nr_procs: 16,
            nr_sysprocs: 10,
            pool_bytes: CHUNKS * CHUNK,
            ..DcConfig::default()
        },
    );
    let mut procs: Vec<Proc> = NRS.iter().map(|&nr| t.dc.bind(nr).unwrap()).collect();
    let mut live: Vec<Live> = Vec::new();
    let mut dead: Vec<(Handle, usize)> = Vec::new();
    for op in ops {
        match op {
            Op::Alloc { who, len } => {
                let cap = (len.div_ceil(4096).next_power_of_two() * 4096) as u64;
                let room = fits(&live, cap);
                match procs[who].alloc_buffer(len) {
                    Ok(h) => {
                        prop_assert!(room, "allocated {len} bytes where the model has no room");
                        prop_assert_eq!(h.capacity() as u64, cap);
                        prop_assert_eq!(class_of(cap), class_of(h.capacity() as u64));
                        let off = procs[who].buffer(h).unwrap().pool_offset();
                        prop_assert_eq!(off % cap, 0, "blocks are aligned to their size");
                        live.push(Live {
                            h,
                            owner: who,
                            off,
                            cap,
                        });
                    }
                    Err(e) => {
                        prop_assert_eq!(e, Errno::EDVSNOMEM);
                        prop_assert!(!room, "refused {len} bytes where the model has room");
                    }
                }
            }
            Op::Release { k } if !live.is_empty() => {
                let b = live.remove(k % live.len());
                procs[b.owner].release_buffer(b.h).unwrap();
                dead.push((b.h, b.owner));
            }
            Op::Give { k, to } if !live.is_empty() => {
                let i = k % live.len();
                let b = live[i];
                let r = procs[b.owner].give(b.h, procs[to].endpoint());
                if b.owner == to {
                    prop_assert_eq!(r, Err(Errno::EDVSENDPOINT));
                } else {
                    r.unwrap();
                    prop_assert_eq!(procs[b.owner].buffer(b.h).unwrap_err(), Errno::EDVSBADOWNER);
                    prop_assert_eq!(procs[to].buffer(b.h).unwrap().pool_offset(), b.off);
                    live[i].owner = to;
                }
            }
            Op::Stale { k } if !dead.is_empty() => {
                let (h, owner) = dead[k % dead.len()];
                prop_assert_eq!(procs[owner].release_buffer(h), Err(Errno::EDVSBADF));
            }
            Op::Rebind { who } => {
                // Unbind (drop), then bind the same nr again at a new generation.
                let last = procs.len() - 1;
                drop(procs.swap_remove(who));
                procs.push(t.dc.bind(NRS[who]).unwrap());
                procs.swap(who, last);
                for b in live.iter().filter(|b| b.owner == who) {
                    dead.push((b.h, who));
                }
                live.retain(|b| b.owner != who);
            }
            _ => {}
        }
        check(&t, &live)?;
    }
    drop(procs);
    prop_assert_eq!(t.dc.pool_info().unwrap().used_bytes, 0, "leak after unbind");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn allocator_matches_the_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
