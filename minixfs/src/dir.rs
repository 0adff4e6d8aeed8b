//! Directories: files of 64-byte entries, a u32 inode number and a 60-byte name padded with
//! NULs (a 60-byte name has no NUL). Entry 0 is ".", entry 1 is "..". A free slot has inode 0
//! and is reused before the directory grows; directories never shrink and never have holes.
//!
//! Every write of an entry goes through [`FileSystem::add_entry`] or
//! [`FileSystem::set_entry_ino`], which keep the directory's index (`dir_index.rs`) coherent;
//! lookups and creates answer from the index, building it by one scan when it is missing.

use std::ops::ControlFlow;

use crate::device::BlockDevice;
use crate::dir_index::DirIndex;
use crate::error::{FsError, corrupt};
use crate::fs::{DirEntry, FileSystem};
use crate::inode::{Inode, ZONES_PER_BLOCK};
use crate::{BLOCK_SIZE, Ino};

/// Bytes of one directory entry.
pub const DIR_ENTRY_SIZE: usize = 64;
/// Longest name in bytes.
pub const NAME_LEN: usize = DIR_ENTRY_SIZE - 4;
/// Entries in one block.
pub const ENTRIES_PER_BLOCK: usize = BLOCK_SIZE / DIR_ENTRY_SIZE;

/// Checks a name the caller wants to look up: not empty, no '/', no NUL, at most 60 bytes.
pub fn check_lookup_name(name: &str) -> Result<(), FsError> {
    if name.len() > NAME_LEN {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name.bytes().any(|b| b == b'/' || b == 0) {
        return Err(FsError::InvalidName);
    }
    Ok(())
}

/// Checks a name for a new entry: as for lookup, and not "." or "..".
pub fn check_new_name(name: &str) -> Result<(), FsError> {
    check_lookup_name(name)?;
    if name == "." || name == ".." {
        return Err(FsError::InvalidName);
    }
    Ok(())
}

/// The name bytes of a raw entry (up to the first NUL).
fn entry_name(raw: &[u8]) -> &[u8] {
    let field = &raw[4..DIR_ENTRY_SIZE];
    let len = field.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
    &field[..len]
}

fn entry_ino(raw: &[u8]) -> Ino {
    u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])
}

/// Writes an entry (inode and NUL-padded name) into 64 bytes.
pub fn encode_entry(raw: &mut [u8], ino: Ino, name: &[u8]) {
    raw[0..4].copy_from_slice(&ino.to_le_bytes());
    raw[4..DIR_ENTRY_SIZE].fill(0);
    raw[4..4 + name.len()].copy_from_slice(name);
}

/// Where the last listing stopped, to resume the next page from: `marks` are (live entries
/// before, slot) pairs, at the first entry the listing returned and where it ended. Valid
/// while `changes` is the file system's count of directory changes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListCursor {
    dir: Ino,
    changes: u64,
    marks: [(usize, u64); 2],
}

impl ListCursor {
    /// The latest mark at or before live entry `start`.
    fn resume(&self, start: usize) -> Option<(usize, u64)> {
        self.marks
            .iter()
            .filter(|(live, _)| *live <= start)
            .max_by_key(|(live, slot)| (*live, *slot))
            .copied()
    }
}

impl<D: BlockDevice> FileSystem<D> {
    /// Number of entry slots of a directory (checked: its size is whole entries).
    fn dir_slots(&self, dir: Ino, inode: &Inode) -> Result<u64, FsError> {
        let size = u64::from(inode.size);
        if !size.is_multiple_of(DIR_ENTRY_SIZE as u64) || size < 2 * DIR_ENTRY_SIZE as u64 {
            return Err(corrupt!(
                "directory {dir}: size {size} is not whole entries (at least 2)"
            ));
        }
        // A directory has no holes, so it cannot have more blocks than the file system has
        // data zones; this also bounds every scan of a corrupt one.
        if size.div_ceil(BLOCK_SIZE as u64) > self.sb.data_zones() {
            return Err(corrupt!(
                "directory {dir}: size {size} needs more zones than exist"
            ));
        }
        Ok(size / DIR_ENTRY_SIZE as u64)
    }

    /// Calls `f(slot, ino, name)` for every slot of the directory from slot `from` on, free
    /// ones too, until it breaks. Every inode number is checked against the inode count.
    fn scan_dir<T>(
        &mut self,
        dir: Ino,
        inode: &Inode,
        from: u64,
        mut f: impl FnMut(u64, Ino, &[u8]) -> ControlFlow<T>,
    ) -> Result<Option<T>, FsError> {
        let slots = self.dir_slots(dir, inode)?;
        let blocks = slots.div_ceil(ENTRIES_PER_BLOCK as u64);
        let mut zones = [0u32; ZONES_PER_BLOCK as usize];
        let mut fb = from / ENTRIES_PER_BLOCK as u64;
        while fb < blocks {
            let n = (blocks - fb).min(ZONES_PER_BLOCK) as usize;
            self.map_range(dir, inode, fb, &mut zones[..n])?;
            for (k, &z) in zones[..n].iter().enumerate() {
                let block_index = fb + k as u64;
                if z == 0 {
                    return Err(corrupt!("directory {dir}: hole at block {block_index}"));
                }
                let block = self.cache.get(&mut self.dev, u64::from(z))?;
                for e in 0..ENTRIES_PER_BLOCK {
                    let slot = block_index * ENTRIES_PER_BLOCK as u64 + e as u64;
                    if slot < from {
                        continue;
                    }
                    if slot >= slots {
                        break;
                    }
                    let raw = &block[e * DIR_ENTRY_SIZE..(e + 1) * DIR_ENTRY_SIZE];
                    let ino = entry_ino(raw);
                    if ino > self.sb.ninodes {
                        return Err(corrupt!(
                            "directory {dir}: entry {slot} names inode {ino}, beyond the {} inodes",
                            self.sb.ninodes
                        ));
                    }
                    if let ControlFlow::Break(t) = f(slot, ino, entry_name(raw)) {
                        return Ok(Some(t));
                    }
                }
            }
            fb += n as u64;
        }
        Ok(None)
    }

    /// Makes sure `dir` has an index (building it by one scan); false when its index does
    /// not fit the budget, so that the caller scans instead.
    fn ensure_index(&mut self, dir: Ino, inode: &Inode) -> Result<bool, FsError> {
        let slots = self.dir_slots(dir, inode)?;
        if self.dirs.get(dir, slots).is_some() {
            return Ok(true);
        }
        let budget = self.dirs.budget();
        let mut index = DirIndex::new(slots);
        let over = self.scan_dir(dir, inode, 0, |slot, ino, name| {
            index.scanned(slot, ino, name);
            if index.bytes() > budget {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(over.is_none() && self.dirs.insert(dir, index))
    }

    /// The index `dir`'s entries on disk give now, built regardless of the budget.
    pub(crate) fn scan_index(&mut self, dir: Ino, inode: &Inode) -> Result<DirIndex, FsError> {
        let mut index = DirIndex::new(self.dir_slots(dir, inode)?);
        self.scan_dir(dir, inode, 0, |slot, ino, name| {
            index.scanned(slot, ino, name);
            ControlFlow::<()>::Continue(())
        })?;
        Ok(index)
    }

    /// The slot and inode of `name` in the directory.
    pub(crate) fn find_entry(
        &mut self,
        dir: Ino,
        inode: &Inode,
        name: &str,
    ) -> Result<Option<(u64, Ino)>, FsError> {
        let name = name.as_bytes();
        if self.ensure_index(dir, inode)? {
            return Ok(self.dirs.peek(dir).and_then(|i| i.get(name)));
        }
        self.scan_dir(dir, inode, 0, |slot, ino, n| {
            if ino != 0 && n == name {
                ControlFlow::Break((slot, ino))
            } else {
                ControlFlow::Continue(())
            }
        })
    }

    /// Whether the directory has no entries but "." and "..".
    pub(crate) fn dir_is_empty(&mut self, dir: Ino, inode: &Inode) -> Result<bool, FsError> {
        // An index at hand answers; a directory about to be removed is not worth indexing.
        let slots = self.dir_slots(dir, inode)?;
        if let Some(index) = self.dirs.get(dir, slots) {
            return Ok(index.children() == 0);
        }
        let found = self.scan_dir(dir, inode, 0, |_, ino, n| {
            if ino != 0 && n != b"." && n != b".." {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(found.is_none())
    }

    /// Live entries `start..start + max` (counting live entries only, "." and ".." included).
    /// A listing read page by page resumes where the previous page of the same directory
    /// began or ended, if no directory changed since, so it reads the directory once.
    pub(crate) fn list_dir(
        &mut self,
        dir: Ino,
        inode: &Inode,
        start: usize,
        max: usize,
    ) -> Result<Vec<DirEntry>, FsError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let (mut live, from) = self
            .listing
            .filter(|c| c.dir == dir && c.changes == self.dir_changes)
            .and_then(|c| c.resume(start))
            .unwrap_or((0, 0));
        let mut first = None;
        let mut end = from;
        self.scan_dir(dir, inode, from, |slot, ino, n| {
            end = slot + 1;
            if ino == 0 {
                return ControlFlow::Continue(());
            }
            if live >= start {
                first.get_or_insert((live, slot));
                out.push(DirEntry {
                    ino,
                    name: String::from_utf8_lossy(n).into_owned(),
                });
            }
            live += 1;
            if out.len() >= max {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        self.listing = Some(ListCursor {
            dir,
            changes: self.dir_changes,
            marks: [first.unwrap_or((live, end)), (live, end)],
        });
        Ok(out)
    }

    /// The raw 64 bytes of entry `slot`, to change.
    fn entry_mut(&mut self, dir: Ino, inode: &Inode, slot: u64) -> Result<&mut [u8], FsError> {
        let fb = slot / ENTRIES_PER_BLOCK as u64;
        let z = self.map_block(dir, inode, fb)?;
        if z == 0 {
            return Err(corrupt!("directory {dir}: hole at block {fb}"));
        }
        let at = (slot % ENTRIES_PER_BLOCK as u64) as usize * DIR_ENTRY_SIZE;
        let block = self.cache.get_mut(&mut self.dev, u64::from(z))?;
        Ok(&mut block[at..at + DIR_ENTRY_SIZE])
    }

    /// Points entry `slot` at `ino`, keeping its name (0 frees the slot).
    pub(crate) fn set_entry_ino(
        &mut self,
        dir: Ino,
        inode: &Inode,
        slot: u64,
        ino: Ino,
    ) -> Result<(), FsError> {
        let raw = self.entry_mut(dir, inode, slot)?;
        let mut name = [0u8; NAME_LEN];
        let len = entry_name(raw).len();
        name[..len].copy_from_slice(entry_name(raw));
        raw[0..4].copy_from_slice(&ino.to_le_bytes());
        self.dir_changes += 1;
        if ino == 0 {
            self.dirs.freed(dir, slot, &name[..len]);
        } else {
            self.dirs.repointed(dir, slot, &name[..len], ino);
        }
        Ok(())
    }

    /// Adds `name -> ino` in the first free slot, or at the end (growing the directory by a
    /// zeroed block when needed). `inode` (the directory's) is changed in memory; the caller
    /// stores it.
    pub(crate) fn add_entry(
        &mut self,
        dir: Ino,
        inode: &mut Inode,
        name: &str,
        ino: Ino,
    ) -> Result<(), FsError> {
        let free = if self.ensure_index(dir, inode)? {
            self.dirs.peek(dir).and_then(|i| i.first_free())
        } else {
            self.scan_dir(dir, inode, 0, |slot, e, _| {
                if e == 0 && slot >= 2 {
                    ControlFlow::Break(slot)
                } else {
                    ControlFlow::Continue(())
                }
            })?
        };
        self.dir_changes += 1;
        if let Some(slot) = free {
            let raw = self.entry_mut(dir, inode, slot)?;
            if entry_ino(raw) != 0 {
                // Only a change behind our back (the image written by another) gets here.
                self.dirs.forget(dir);
                return Err(corrupt!(
                    "directory {dir}: slot {slot} was indexed as free but is in use"
                ));
            }
            encode_entry(raw, ino, name.as_bytes());
            self.dirs.added(dir, slot, ino, name.as_bytes());
            return Ok(());
        }
        let slot = u64::from(inode.size) / DIR_ENTRY_SIZE as u64;
        let new_size = u64::from(inode.size) + DIR_ENTRY_SIZE as u64;
        if new_size > self.sb.max_file_size() {
            return Err(FsError::FileTooBig);
        }
        let fb = slot / ENTRIES_PER_BLOCK as u64;
        let (z, fresh) = self.zone_for_write(dir, inode, fb)?;
        let block = if fresh {
            self.cache.zeroed_mut(&mut self.dev, u64::from(z))?
        } else {
            self.cache.get_mut(&mut self.dev, u64::from(z))?
        };
        let at = (slot % ENTRIES_PER_BLOCK as u64) as usize * DIR_ENTRY_SIZE;
        encode_entry(&mut block[at..at + DIR_ENTRY_SIZE], ino, name.as_bytes());
        inode.size = new_size as u32;
        self.dirs.added(dir, slot, ino, name.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_new_name("a").is_ok());
        assert!(check_new_name(&"x".repeat(60)).is_ok());
        assert!(matches!(
            check_new_name(&"x".repeat(61)),
            Err(FsError::NameTooLong)
        ));
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(
                matches!(check_new_name(bad), Err(FsError::InvalidName)),
                "{bad:?}"
            );
        }
        assert!(check_lookup_name("..").is_ok());
    }

    #[test]
    fn entries_encode_with_and_without_nul() {
        let mut raw = [0xffu8; 64];
        encode_entry(&mut raw, 7, b"hello");
        assert_eq!(entry_ino(&raw), 7);
        assert_eq!(entry_name(&raw), b"hello");
        let long = [b'y'; 60];
        encode_entry(&mut raw, 9, &long);
        assert_eq!(entry_name(&raw), &long[..]);
    }
}
