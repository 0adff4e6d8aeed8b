//! The inode and zone bitmaps, held in memory from mount to sync.
//!
//! Bit 0 of each map is reserved (always set); bit `i` stands for inode `i`, or for zone
//! `first_data_zone + i - 1`. Bits past the last inode or zone are set, as `mkfs.minix` does,
//! so that nothing ever allocates them. Allocation is first-fit from where the last one ended.

use crate::BLOCK_SIZE;
use crate::device::BlockDevice;
use crate::error::FsError;

/// A bitmap of `bits` meaningful bits (bit 0 included) over whole blocks.
#[derive(Debug)]
pub struct Bitmap {
    bytes: Vec<u8>,
    /// Bits 1..bits are allocatable.
    bits: u64,
    /// Clear bits among 1..bits.
    free: u64,
    /// Where the next search starts.
    hint: u64,
    /// First block of the map on the device.
    first_block: u64,
    /// Which of the map's blocks changed since the last write-back.
    dirty: Vec<bool>,
}

impl Bitmap {
    /// Reads `blocks` blocks at `first_block`; bits `1..bits` are the allocatable ones.
    pub fn load<D: BlockDevice>(
        dev: &mut D,
        first_block: u64,
        blocks: usize,
        bits: u64,
    ) -> Result<Self, FsError> {
        let mut bytes = vec![0u8; blocks * BLOCK_SIZE];
        dev.read_blocks(first_block, &mut bytes)?;
        let mut map = Bitmap {
            bytes,
            bits,
            free: 0,
            hint: 1,
            first_block,
            dirty: vec![false; blocks],
        };
        map.free = (1..bits).filter(|&b| !map.is_set(b)).count() as u64;
        Ok(map)
    }

    /// A fresh map with only bit 0 and the bits past `bits` set.
    pub fn fresh(first_block: u64, blocks: usize, bits: u64) -> Self {
        let mut map = Bitmap {
            bytes: vec![0u8; blocks * BLOCK_SIZE],
            bits,
            free: bits.saturating_sub(1),
            hint: 1,
            first_block,
            dirty: vec![true; blocks],
        };
        map.set_raw(0);
        for b in bits..(blocks * BLOCK_SIZE * 8) as u64 {
            map.set_raw(b);
        }
        map
    }

    fn set_raw(&mut self, bit: u64) {
        self.bytes[(bit / 8) as usize] |= 1 << (bit % 8);
    }

    /// Whether `bit` is set; bits outside the map count as set.
    pub fn is_set(&self, bit: u64) -> bool {
        match self.bytes.get((bit / 8) as usize) {
            Some(byte) => byte & (1 << (bit % 8)) != 0,
            None => true,
        }
    }

    fn touch(&mut self, bit: u64) {
        let block = (bit / 8) as usize / BLOCK_SIZE;
        if let Some(d) = self.dirty.get_mut(block) {
            *d = true;
        }
    }

    /// Allocatable bits still clear.
    pub fn free_count(&self) -> u64 {
        self.free
    }

    /// Sets and returns the first clear bit at or after the hint (wrapping), or `None` if full.
    pub fn alloc(&mut self) -> Option<u64> {
        if self.free == 0 {
            return None;
        }
        let bit = self
            .find_clear(self.hint, self.bits)
            .or_else(|| self.find_clear(1, self.hint))?;
        self.set_raw(bit);
        self.touch(bit);
        self.free -= 1;
        self.hint = bit + 1;
        Some(bit)
    }

    /// First clear bit in `from..to`, skipping full bytes.
    fn find_clear(&self, from: u64, to: u64) -> Option<u64> {
        let mut bit = from.max(1);
        while bit < to {
            let byte = self.bytes[(bit / 8) as usize];
            if byte == 0xff {
                bit = (bit / 8 + 1) * 8;
                continue;
            }
            if byte & (1 << (bit % 8)) == 0 {
                return Some(bit);
            }
            bit += 1;
        }
        None
    }

    /// Clears `bit`. A bit that is out of range or already clear means the image is
    /// inconsistent (a zone or inode freed twice); `what` names it in the error (made only
    /// then: a truncate frees thousands of zones).
    pub fn free(&mut self, bit: u64, what: impl Fn() -> String) -> Result<(), FsError> {
        if bit == 0 || bit >= self.bits {
            return Err(FsError::Corrupt(format!(
                "{}: bitmap bit {bit} out of range",
                what()
            )));
        }
        if !self.is_set(bit) {
            return Err(FsError::Corrupt(format!(
                "{} is already free (freed twice?)",
                what()
            )));
        }
        self.bytes[(bit / 8) as usize] &= !(1 << (bit % 8));
        self.touch(bit);
        self.free += 1;
        if bit < self.hint {
            self.hint = bit;
        }
        Ok(())
    }

    /// Writes the changed blocks of the map back to the device.
    pub fn write_back<D: BlockDevice>(&mut self, dev: &mut D) -> Result<(), FsError> {
        for i in 0..self.dirty.len() {
            if self.dirty[i] {
                let bytes = &self.bytes[i * BLOCK_SIZE..(i + 1) * BLOCK_SIZE];
                dev.write_blocks(self.first_block + i as u64, bytes)?;
                self.dirty[i] = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_from_the_hint_and_reuse_after_free() {
        let mut map = Bitmap::fresh(2, 1, 20);
        assert_eq!(map.free_count(), 19);
        assert_eq!(map.alloc(), Some(1));
        assert_eq!(map.alloc(), Some(2));
        assert_eq!(map.alloc(), Some(3));
        map.free(2, || "zone".into()).unwrap();
        assert_eq!(map.alloc(), Some(2));
        assert_eq!(map.alloc(), Some(4));
        assert!(map.free(4, || "zone".into()).is_ok());
        assert!(matches!(
            map.free(4, || "zone".into()),
            Err(FsError::Corrupt(_))
        ));
        assert!(matches!(
            map.free(0, || "zone".into()),
            Err(FsError::Corrupt(_))
        ));
        assert!(matches!(
            map.free(20, || "zone".into()),
            Err(FsError::Corrupt(_))
        ));
    }

    #[test]
    fn full_map_says_none_and_padding_is_set() {
        let mut map = Bitmap::fresh(2, 1, 10);
        for want in 1..10 {
            assert_eq!(map.alloc(), Some(want));
        }
        assert_eq!(map.alloc(), None);
        assert!(map.is_set(10) && map.is_set(8191) && map.is_set(0));
    }
}
