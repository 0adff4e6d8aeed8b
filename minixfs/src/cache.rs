//! A bounded write-back block cache with clock (second-chance) replacement.
//!
//! Metadata (inode table, directories, indirect blocks) and partial data blocks go through it.
//! Whole data blocks of large reads and writes bypass it (see `fs.rs`); those paths ask
//! [`BlockCache::contains`] so that a newer cached copy is never overtaken.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::BLOCK_SIZE;
use crate::device::BlockDevice;
use crate::error::FsError;

/// Default capacity in blocks (4 MiB).
pub const DEFAULT_CACHE_BLOCKS: usize = 4096;
/// The cache never shrinks below this many blocks.
pub const MIN_CACHE_BLOCKS: usize = 8;

/// Block numbers hash well enough by one multiplication (Fibonacci hashing); SipHash would
/// cost more than the lookup it guards.
#[derive(Default)]
pub struct BlockHasher(u64);

impl Hasher for BlockHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

struct Slot {
    block: u64,
    data: Box<[u8]>,
    dirty: bool,
    referenced: bool,
    in_use: bool,
}

/// The cache: slots, an index from block number to slot, and the clock hand.
pub struct BlockCache {
    slots: Vec<Slot>,
    index: HashMap<u64, usize, BuildHasherDefault<BlockHasher>>,
    hand: usize,
    capacity: usize,
}

impl BlockCache {
    /// An empty cache of `capacity` blocks (at least [`MIN_CACHE_BLOCKS`]).
    pub fn new(capacity: usize) -> Self {
        BlockCache {
            slots: Vec::new(),
            index: HashMap::default(),
            hand: 0,
            capacity: capacity.max(MIN_CACHE_BLOCKS),
        }
    }

    /// Changes the capacity; extra blocks are dropped at the next [`BlockCache::flush`].
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(MIN_CACHE_BLOCKS);
    }

    /// Whether `block` is cached.
    pub fn contains(&self, block: u64) -> bool {
        self.index.contains_key(&block)
    }

    /// Finds a slot for a new block: a fresh one while under capacity, else the clock's
    /// victim (written back first if dirty).
    fn victim<D: BlockDevice>(&mut self, dev: &mut D) -> Result<usize, FsError> {
        if self.slots.len() < self.capacity {
            self.slots.push(Slot {
                block: 0,
                data: vec![0u8; BLOCK_SIZE].into_boxed_slice(),
                dirty: false,
                referenced: false,
                in_use: false,
            });
            return Ok(self.slots.len() - 1);
        }
        // Two sweeps clear every reference bit, so the third finds a victim.
        for _ in 0..3 * self.slots.len() {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let slot = &mut self.slots[i];
            if !slot.in_use {
                return Ok(i);
            }
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            if slot.dirty {
                dev.write_blocks(slot.block, &slot.data)?;
                slot.dirty = false;
            }
            self.index.remove(&slot.block);
            slot.in_use = false;
            return Ok(i);
        }
        Err(FsError::Corrupt("block cache: no victim found".into()))
    }

    /// The slot of `block`, reading it from the device if `fill` and it is not cached,
    /// or zeroing it if not `fill`.
    fn slot<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        block: u64,
        fill: bool,
    ) -> Result<usize, FsError> {
        if let Some(&i) = self.index.get(&block) {
            self.slots[i].referenced = true;
            if !fill {
                self.slots[i].data.fill(0);
            }
            return Ok(i);
        }
        let i = self.victim(dev)?;
        let slot = &mut self.slots[i];
        if fill {
            dev.read_blocks(block, &mut slot.data)?;
        } else {
            slot.data.fill(0);
        }
        slot.block = block;
        slot.dirty = false;
        slot.referenced = true;
        slot.in_use = true;
        self.index.insert(block, i);
        Ok(i)
    }

    /// The contents of `block`.
    pub fn get<D: BlockDevice>(&mut self, dev: &mut D, block: u64) -> Result<&[u8], FsError> {
        let i = self.slot(dev, block, true)?;
        Ok(&self.slots[i].data)
    }

    /// The contents of `block`, to change (it will be written back).
    pub fn get_mut<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        block: u64,
    ) -> Result<&mut [u8], FsError> {
        let i = self.slot(dev, block, true)?;
        self.slots[i].dirty = true;
        Ok(&mut self.slots[i].data)
    }

    /// `block` filled with zeros without reading it (a freshly allocated zone), to change.
    pub fn zeroed_mut<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        block: u64,
    ) -> Result<&mut [u8], FsError> {
        let i = self.slot(dev, block, false)?;
        self.slots[i].dirty = true;
        Ok(&mut self.slots[i].data)
    }

    /// Writes `block` back now if it is cached and dirty (it stays cached, clean).
    pub fn write_back<D: BlockDevice>(&mut self, dev: &mut D, block: u64) -> Result<(), FsError> {
        if let Some(&i) = self.index.get(&block) {
            let slot = &mut self.slots[i];
            if slot.dirty {
                dev.write_blocks(block, &slot.data)?;
                slot.dirty = false;
            }
        }
        Ok(())
    }

    /// Drops `block` without writing it back (it was freed, or written around the cache).
    pub fn forget(&mut self, block: u64) {
        if let Some(i) = self.index.remove(&block) {
            let slot = &mut self.slots[i];
            slot.in_use = false;
            slot.dirty = false;
            slot.referenced = false;
        }
    }

    /// Writes every dirty block back, in block order, contiguous runs in one device call.
    pub fn flush<D: BlockDevice>(&mut self, dev: &mut D) -> Result<(), FsError> {
        let mut dirty: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.in_use && s.dirty)
            .map(|(i, s)| (s.block, i))
            .collect();
        dirty.sort_unstable();
        let mut run: Vec<u8> = Vec::new();
        let mut k = 0;
        while k < dirty.len() {
            let first = dirty[k].0;
            let mut end = k + 1;
            while end < dirty.len() && dirty[end].0 == first + (end - k) as u64 && end - k < 256 {
                end += 1;
            }
            if end - k == 1 {
                dev.write_blocks(first, &self.slots[dirty[k].1].data)?;
            } else {
                run.clear();
                for &(_, i) in &dirty[k..end] {
                    run.extend_from_slice(&self.slots[i].data);
                }
                dev.write_blocks(first, &run)?;
            }
            for &(_, i) in &dirty[k..end] {
                self.slots[i].dirty = false;
            }
            k = end;
        }
        self.shrink_to_capacity();
        Ok(())
    }

    /// After a flush every block is clean: drop slots beyond the capacity.
    fn shrink_to_capacity(&mut self) {
        while self.slots.len() > self.capacity {
            if let Some(slot) = self.slots.pop()
                && slot.in_use
            {
                self.index.remove(&slot.block);
            }
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    #[test]
    fn write_back_on_eviction_and_flush() {
        let mut dev = MemDevice::new(64);
        let mut cache = BlockCache::new(MIN_CACHE_BLOCKS);
        for b in 0..32u64 {
            cache.get_mut(&mut dev, b).unwrap()[0] = b as u8 + 1;
        }
        // The early blocks were evicted, so they reached the device already.
        assert_eq!(dev.as_bytes()[0], 1);
        cache.flush(&mut dev).unwrap();
        for b in 0..32usize {
            assert_eq!(dev.as_bytes()[b * BLOCK_SIZE], b as u8 + 1);
        }
        assert!(cache.slots.len() <= MIN_CACHE_BLOCKS);
    }

    #[test]
    fn forget_drops_dirty_data_and_zeroed_does_not_read() {
        let mut dev = MemDevice::new(4);
        dev.write_blocks(2, &[7u8; BLOCK_SIZE]).unwrap();
        let mut cache = BlockCache::new(16);
        assert_eq!(cache.get(&mut dev, 2).unwrap()[5], 7);
        assert!(
            cache
                .zeroed_mut(&mut dev, 2)
                .unwrap()
                .iter()
                .all(|&b| b == 0)
        );
        cache.get_mut(&mut dev, 1).unwrap()[0] = 9;
        cache.forget(1);
        cache.flush(&mut dev).unwrap();
        assert_eq!(dev.as_bytes()[BLOCK_SIZE], 0);
        assert_eq!(dev.as_bytes()[2 * BLOCK_SIZE], 0);
    }

    #[test]
    fn device_errors_are_values() {
        let mut dev = MemDevice::new(4);
        let mut cache = BlockCache::new(16);
        assert!(matches!(cache.get(&mut dev, 4), Err(FsError::Device(_))));
        assert!(!cache.contains(4));
    }
}
