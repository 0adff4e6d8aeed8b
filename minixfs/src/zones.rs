//! The block map of an inode: which zone holds each block of a file, through the 7 direct
//! zones and the single, double and triple indirect blocks; allocation and freeing of zones.
//!
//! The tree has a fixed depth, so walking it always ends; an indirect block that names
//! itself or a zone of another file is caught when a zone would be freed twice.

use crate::Ino;
use crate::device::BlockDevice;
use crate::error::{FsError, corrupt};
use crate::fs::FileSystem;
use crate::inode::{DIRECT_ZONES, Inode, ZONES_PER_BLOCK};

/// Where file block `fb` hangs: the inode's zone slot, then up to three indices into
/// indirect blocks (the first `depth` of `idx` are meaningful).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZonePath {
    /// Index into the inode's 10 zones.
    pub slot: usize,
    /// Indices into the indirect blocks, outermost first.
    pub idx: [usize; 3],
    /// Number of indirect levels (0 for a direct zone).
    pub depth: usize,
}

/// The path of file block `fb`, or `None` past what the tree can address.
pub fn zone_path(fb: u64) -> Option<ZonePath> {
    let n = ZONES_PER_BLOCK;
    if fb < DIRECT_ZONES as u64 {
        return Some(ZonePath {
            slot: fb as usize,
            idx: [0; 3],
            depth: 0,
        });
    }
    let mut r = fb - DIRECT_ZONES as u64;
    if r < n {
        return Some(ZonePath {
            slot: 7,
            idx: [r as usize, 0, 0],
            depth: 1,
        });
    }
    r -= n;
    if r < n * n {
        return Some(ZonePath {
            slot: 8,
            idx: [(r / n) as usize, (r % n) as usize, 0],
            depth: 2,
        });
    }
    r -= n * n;
    if r < n * n * n {
        return Some(ZonePath {
            slot: 9,
            idx: [
                (r / (n * n)) as usize,
                ((r / n) % n) as usize,
                (r % n) as usize,
            ],
            depth: 3,
        });
    }
    None
}

fn entry(block: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([
        block[4 * i],
        block[4 * i + 1],
        block[4 * i + 2],
        block[4 * i + 3],
    ])
}

fn set_entry(block: &mut [u8], i: usize, z: u32) {
    block[4 * i..4 * i + 4].copy_from_slice(&z.to_le_bytes());
}

impl<D: BlockDevice> FileSystem<D> {
    /// `z` if it is 0 (a hole) or a data zone; a clear error naming the inode otherwise.
    pub(crate) fn check_zone(&self, ino: Ino, z: u32) -> Result<u32, FsError> {
        if z != 0 && (z < u32::from(self.sb.first_data_zone) || z >= self.sb.zones) {
            return Err(corrupt!(
                "inode {ino}: zone {z} is outside the data zones {}..{}",
                self.sb.first_data_zone,
                self.sb.zones
            ));
        }
        Ok(z)
    }

    /// Entry `i` of indirect block `zone`, checked.
    fn indirect_entry(&mut self, ino: Ino, zone: u32, i: usize) -> Result<u32, FsError> {
        let z = entry(self.cache.get(&mut self.dev, u64::from(zone))?, i);
        self.check_zone(ino, z)
    }

    /// The indirect block that holds file block `fb`'s zone number, and the index in it;
    /// `None` when a zone on the way is a hole. For a direct block, `Some((0, slot))`.
    fn leaf_of(
        &mut self,
        ino: Ino,
        inode: &Inode,
        p: &ZonePath,
    ) -> Result<Option<(u32, usize)>, FsError> {
        if p.depth == 0 {
            return Ok(Some((0, p.slot)));
        }
        let mut z = self.check_zone(ino, inode.zones[p.slot])?;
        for level in 0..p.depth - 1 {
            if z == 0 {
                return Ok(None);
            }
            z = self.indirect_entry(ino, z, p.idx[level])?;
        }
        if z == 0 {
            return Ok(None);
        }
        Ok(Some((z, p.idx[p.depth - 1])))
    }

    /// Zone numbers of file blocks `first..first + out.len()` (0 for holes), each indirect
    /// block read once per run of entries rather than once per block.
    pub(crate) fn map_range(
        &mut self,
        ino: Ino,
        inode: &Inode,
        first: u64,
        out: &mut [u32],
    ) -> Result<(), FsError> {
        let mut i = 0;
        while i < out.len() {
            let fb = first + i as u64;
            let p = zone_path(fb).ok_or(FsError::FileTooBig)?;
            if p.depth == 0 {
                out[i] = self.check_zone(ino, inode.zones[p.slot])?;
                i += 1;
                continue;
            }
            let at = p.idx[p.depth - 1];
            let take = (ZONES_PER_BLOCK as usize - at).min(out.len() - i);
            match self.leaf_of(ino, inode, &p)? {
                None => out[i..i + take].fill(0),
                Some((leaf, _)) => {
                    let block = self.cache.get(&mut self.dev, u64::from(leaf))?;
                    for (k, o) in out[i..i + take].iter_mut().enumerate() {
                        *o = entry(block, at + k);
                    }
                    for &z in &out[i..i + take] {
                        self.check_zone(ino, z)?;
                    }
                }
            }
            i += take;
        }
        Ok(())
    }

    /// The zone of one file block (0 for a hole).
    pub(crate) fn map_block(&mut self, ino: Ino, inode: &Inode, fb: u64) -> Result<u32, FsError> {
        let mut z = [0u32; 1];
        self.map_range(ino, inode, fb, &mut z)?;
        Ok(z[0])
    }

    /// Allocates a data zone; it is not initialised (the caller zeroes or overwrites it).
    pub(crate) fn alloc_zone(&mut self) -> Result<u32, FsError> {
        let bit = self.zmap.alloc().ok_or(FsError::NoSpace)?;
        // bit i is zone first_data_zone + i - 1; bits stay below data_zones + 1, so this fits.
        Ok((u64::from(self.sb.first_data_zone) + bit - 1) as u32)
    }

    /// Frees a data zone and drops any cached copy of it.
    pub(crate) fn free_zone(&mut self, ino: Ino, z: u32) -> Result<(), FsError> {
        self.check_zone(ino, z)?;
        let bit = u64::from(z) - u64::from(self.sb.first_data_zone) + 1;
        self.zmap.free(bit, || format!("inode {ino}: zone {z}"))?;
        self.cache.forget(u64::from(z));
        Ok(())
    }

    /// A fresh indirect block of zeros.
    fn alloc_indirect(&mut self) -> Result<u32, FsError> {
        let z = self.alloc_zone()?;
        self.cache.zeroed_mut(&mut self.dev, u64::from(z))?;
        Ok(z)
    }

    /// The zone of file block `fb`, allocating it (and indirect blocks on the way) if it is
    /// a hole. Returns the zone and whether it is new (its contents are then undefined).
    /// `inode` is changed in memory; the caller stores it.
    pub(crate) fn zone_for_write(
        &mut self,
        ino: Ino,
        inode: &mut Inode,
        fb: u64,
    ) -> Result<(u32, bool), FsError> {
        let p = zone_path(fb).ok_or(FsError::FileTooBig)?;
        let top = self.check_zone(ino, inode.zones[p.slot])?;
        if p.depth == 0 {
            if top != 0 {
                return Ok((top, false));
            }
            let z = self.alloc_zone()?;
            inode.zones[p.slot] = z;
            return Ok((z, true));
        }
        let mut parent = top;
        if parent == 0 {
            parent = self.alloc_indirect()?;
            inode.zones[p.slot] = parent;
        }
        for level in 0..p.depth {
            let i = p.idx[level];
            let child = self.indirect_entry(ino, parent, i)?;
            if child != 0 {
                if level == p.depth - 1 {
                    return Ok((child, false));
                }
                parent = child;
                continue;
            }
            let is_data = level == p.depth - 1;
            let z = if is_data {
                self.alloc_zone()?
            } else {
                self.alloc_indirect()?
            };
            set_entry(self.cache.get_mut(&mut self.dev, u64::from(parent))?, i, z);
            if is_data {
                return Ok((z, true));
            }
            parent = z;
        }
        Err(corrupt!("inode {ino}: block map walk did not end"))
    }

    /// Frees every zone holding file blocks `from..` (and indirect blocks left empty).
    /// `inode` is changed in memory; the caller stores it.
    pub(crate) fn free_blocks_from(
        &mut self,
        ino: Ino,
        inode: &mut Inode,
        from: u64,
    ) -> Result<(), FsError> {
        for slot in 0..DIRECT_ZONES {
            if slot as u64 >= from && inode.zones[slot] != 0 {
                let z = inode.zones[slot];
                inode.zones[slot] = 0;
                self.free_zone(ino, z)?;
            }
        }
        let n = ZONES_PER_BLOCK;
        let mut start = DIRECT_ZONES as u64;
        for (slot, span) in [(7usize, n), (8, n * n), (9, n * n * n)] {
            let depth = slot - 6;
            let z = self.check_zone(ino, inode.zones[slot])?;
            if z != 0 && from < start + span {
                let rel = from.saturating_sub(start);
                if self.free_indirect(ino, z, depth, rel)? {
                    inode.zones[slot] = 0;
                }
            }
            start += span;
        }
        Ok(())
    }

    /// Frees the blocks `from..` (relative to this subtree) under indirect block `zone` of
    /// `depth` levels; frees `zone` itself and returns true when `from` is 0.
    fn free_indirect(
        &mut self,
        ino: Ino,
        zone: u32,
        depth: usize,
        from: u64,
    ) -> Result<bool, FsError> {
        let mut entries = [0u32; ZONES_PER_BLOCK as usize];
        {
            let block = self.cache.get(&mut self.dev, u64::from(zone))?;
            for (i, e) in entries.iter_mut().enumerate() {
                *e = entry(block, i);
            }
        }
        let span = ZONES_PER_BLOCK.pow(depth as u32 - 1);
        let mut changed = false;
        for (i, e) in entries.iter_mut().enumerate() {
            let child = self.check_zone(ino, *e)?;
            let child_start = i as u64 * span;
            if child == 0 || child_start + span <= from {
                continue;
            }
            let freed = if depth == 1 {
                self.free_zone(ino, child)?;
                true
            } else {
                self.free_indirect(ino, child, depth - 1, from.saturating_sub(child_start))?
            };
            if freed {
                *e = 0;
                changed = true;
            }
        }
        if from == 0 {
            self.free_zone(ino, zone)?;
            return Ok(true);
        }
        if changed {
            let block = self.cache.get_mut(&mut self.dev, u64::from(zone))?;
            for (i, e) in entries.iter().enumerate() {
                set_entry(block, i, *e);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cross_each_boundary() {
        assert_eq!(
            zone_path(6).unwrap(),
            ZonePath {
                slot: 6,
                idx: [0; 3],
                depth: 0
            }
        );
        assert_eq!(
            zone_path(7).unwrap(),
            ZonePath {
                slot: 7,
                idx: [0, 0, 0],
                depth: 1
            }
        );
        assert_eq!(
            zone_path(262).unwrap(),
            ZonePath {
                slot: 7,
                idx: [255, 0, 0],
                depth: 1
            }
        );
        assert_eq!(
            zone_path(263).unwrap(),
            ZonePath {
                slot: 8,
                idx: [0, 0, 0],
                depth: 2
            }
        );
        assert_eq!(
            zone_path(263 + 257).unwrap(),
            ZonePath {
                slot: 8,
                idx: [1, 1, 0],
                depth: 2
            }
        );
        let t = 263 + 65536;
        assert_eq!(
            zone_path(t).unwrap(),
            ZonePath {
                slot: 9,
                idx: [0, 0, 0],
                depth: 3
            }
        );
        assert_eq!(zone_path(t + 65536 + 256 + 1).unwrap().idx, [1, 1, 1]);
        assert!(zone_path(t + (1 << 24)).is_none());
    }
}
