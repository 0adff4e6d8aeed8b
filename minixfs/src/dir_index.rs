//! In-memory indexes of directories, so that a lookup or a create in a directory of 100 000
//! entries reads no directory block at all (a lookup) or one (a create), instead of scanning
//! the whole directory.
//!
//! A [`DirIndex`] holds, for one directory, every live name with its slot and inode, the free
//! slots (inode 0, past "." and "..") as runs, and the directory's slot count. It is built by
//! one scan the first time a directory is used, then kept coherent by the file system's own
//! changes: every write of a directory entry goes through `dir.rs` (add, free, repoint), which
//! tells the [`DirIndexes`]. An index whose slot count no longer matches its directory's size
//! is dropped and built again (a cheap check at every use).
//!
//! # Memory bound
//!
//! [`DirIndexes`] keeps indexes in least-recently-used order within a byte budget
//! ([`DEFAULT_DIR_INDEX_BYTES`], set by `FileSystem::with_dir_index_bytes`). Each index
//! counts [`NAME_COST`] + the name's length per name and [`RUN_COST`] per run of free slots
//! (estimates of the hash table's and B-tree's allocations), so the budget bounds the heap the
//! indexes hold to within a small factor. Using an index moves it to the back; adding one
//! evicts from the front until the total fits. An evicted directory is scanned again at its
//! next use. A directory whose index alone exceeds the budget is never kept: its build stops
//! as soon as it passes the budget, and each operation on it scans (as without an index).

use std::collections::{BTreeMap, HashMap};

use crate::Ino;

/// Default byte budget of all directory indexes together: 32 MiB, enough for a directory of
/// about 350 000 entries with 20-byte names.
pub const DEFAULT_DIR_INDEX_BYTES: usize = 32 << 20;
/// Bytes one name costs in an index, besides the name itself: the hash table's bucket (key
/// pointer, slot and inode), its control byte and spare capacity, and the allocation of the
/// name.
pub const NAME_COST: usize = 64;
/// Bytes one run of free slots costs in an index (a B-tree entry and its share of a node).
pub const RUN_COST: usize = 48;

/// Runs of free slots, `start -> end` (exclusive), never adjacent, never overlapping.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct FreeRuns {
    runs: BTreeMap<u64, u64>,
}

impl FreeRuns {
    /// Adds `slot` (no change if it is already free), merging it with its neighbours.
    fn insert(&mut self, slot: u64) {
        let before = self.runs.range(..=slot).next_back().map(|(&s, &e)| (s, e));
        if let Some((_, e)) = before
            && e > slot
        {
            return;
        }
        let mut start = slot;
        let mut end = slot + 1;
        if let Some((s, e)) = before
            && e == slot
        {
            start = s;
        }
        if let Some(e) = self.runs.remove(&end) {
            end = e;
        }
        self.runs.insert(start, end);
    }

    /// Removes `slot` if it is free, splitting its run.
    fn remove(&mut self, slot: u64) {
        let Some((s, e)) = self.runs.range(..=slot).next_back().map(|(&s, &e)| (s, e)) else {
            return;
        };
        if e <= slot {
            return;
        }
        self.runs.remove(&s);
        if s < slot {
            self.runs.insert(s, slot);
        }
        if slot + 1 < e {
            self.runs.insert(slot + 1, e);
        }
    }

    /// Whether `slot` is free.
    #[cfg(test)]
    fn contains(&self, slot: u64) -> bool {
        self.runs
            .range(..=slot)
            .next_back()
            .is_some_and(|(_, &e)| e > slot)
    }

    fn len(&self) -> usize {
        self.runs.len()
    }
}

/// The index of one directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DirIndex {
    /// Live name -> (slot, inode). For a name on disk twice (a damaged directory) the first.
    names: HashMap<Box<[u8]>, (u64, Ino)>,
    free: FreeRuns,
    /// Slots of the directory (its size / 64).
    slots: u64,
    /// Some name is on disk twice: freeing one must rebuild the index to find the other.
    duplicates: bool,
    /// Sum of `NAME_COST + len` over `names`.
    name_bytes: usize,
}

impl DirIndex {
    /// An empty index of a directory of `slots` slots; fill it with [`DirIndex::scanned`].
    pub fn new(slots: u64) -> Self {
        DirIndex {
            slots,
            ..DirIndex::default()
        }
    }

    /// Records entry `slot` as read by the build scan (slots in increasing order).
    pub fn scanned(&mut self, slot: u64, ino: Ino, name: &[u8]) {
        if ino == 0 {
            if slot >= 2 {
                self.free.insert(slot);
            }
        } else if self.names.contains_key(name) {
            self.duplicates = true;
        } else {
            self.insert_name(name, slot, ino);
        }
    }

    fn insert_name(&mut self, name: &[u8], slot: u64, ino: Ino) {
        if self.names.insert(name.into(), (slot, ino)).is_none() {
            self.name_bytes += NAME_COST + name.len();
        }
    }

    /// Bytes this index counts against the budget.
    pub fn bytes(&self) -> usize {
        self.name_bytes + self.free.len() * RUN_COST
    }

    /// Slots of the directory it describes.
    #[cfg(test)]
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// The slot and inode of `name`.
    pub fn get(&self, name: &[u8]) -> Option<(u64, Ino)> {
        self.names.get(name).copied()
    }

    /// The lowest free slot, if any (where a new entry goes).
    pub fn first_free(&self) -> Option<u64> {
        self.free.runs.first_key_value().map(|(&s, _)| s)
    }

    /// Live entries other than "." and "..".
    pub fn children(&self) -> usize {
        let dots = [&b"."[..], b".."]
            .iter()
            .filter(|n| self.names.contains_key(**n))
            .count();
        self.names.len() - dots
    }

    /// Every live name with its slot and inode (in no order).
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], u64, Ino)> {
        self.names.iter().map(|(n, &(s, i))| (&n[..], s, i))
    }

    /// How this index differs from `other` (the first difference found), or `None`.
    pub fn difference(&self, other: &DirIndex) -> Option<String> {
        if self.slots != other.slots {
            return Some(format!(
                "{} slots, the disk has {}",
                self.slots, other.slots
            ));
        }
        let show = |n: &[u8]| String::from_utf8_lossy(n).into_owned();
        for (name, slot, ino) in self.entries() {
            match other.get(name) {
                Some(x) if x == (slot, ino) => {}
                Some((s, i)) => {
                    return Some(format!(
                        "{:?} at slot {slot} -> inode {ino}, on disk slot {s} -> inode {i}",
                        show(name)
                    ));
                }
                None => return Some(format!("{:?} is not on disk", show(name))),
            }
        }
        if let Some((name, _, _)) = other.entries().find(|(n, _, _)| self.get(n).is_none()) {
            return Some(format!("{:?} is on disk but not indexed", show(name)));
        }
        if self.free != other.free {
            return Some(format!(
                "free slots {:?}, on disk {:?}",
                self.free.runs, other.free.runs
            ));
        }
        if self.bytes() != other.bytes() || self.duplicates != other.duplicates {
            return Some("its byte count or duplicate flag".into());
        }
        None
    }

    /// `name -> ino` was written at `slot`: a free slot, or the one just past the end (the
    /// directory grew by one entry).
    fn added(&mut self, slot: u64, ino: Ino, name: &[u8]) {
        if slot >= self.slots {
            self.slots = slot + 1;
        } else {
            self.free.remove(slot);
        }
        self.insert_name(name, slot, ino);
    }

    /// Entry `slot`, which held `name`, was freed. False when the index can no longer tell
    /// (a duplicate name may now be the visible one): the caller drops it.
    fn freed(&mut self, slot: u64, name: &[u8]) -> bool {
        if self.duplicates {
            return false;
        }
        if let Some(&(s, _)) = self.names.get(name)
            && s == slot
        {
            self.names.remove(name);
            self.name_bytes -= NAME_COST + name.len();
        }
        if slot >= 2 {
            self.free.insert(slot);
        }
        true
    }

    /// Entry `slot`, holding `name`, now names `ino`.
    fn repointed(&mut self, slot: u64, name: &[u8], ino: Ino) {
        match self.names.get_mut(name) {
            Some(v) if v.0 == slot => v.1 = ino,
            Some(_) => {}
            None => {
                // The slot was free (its name is a leftover): it is live again.
                self.free.remove(slot);
                self.insert_name(name, slot, ino);
            }
        }
    }
}

/// The indexes of the directories in use, least recently used first, within a byte budget.
#[derive(Debug)]
pub struct DirIndexes {
    dirs: HashMap<Ino, (DirIndex, u64)>,
    /// Use stamp -> directory, oldest first.
    order: BTreeMap<u64, Ino>,
    stamp: u64,
    used: usize,
    budget: usize,
}

impl DirIndexes {
    /// No indexes, and a budget of `budget` bytes.
    pub fn new(budget: usize) -> Self {
        DirIndexes {
            dirs: HashMap::new(),
            order: BTreeMap::new(),
            stamp: 0,
            used: 0,
            budget,
        }
    }

    /// The budget in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Changes the budget, evicting until the indexes fit.
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
        self.evict_to(budget);
    }

    /// Bytes the indexes count now (at most the budget).
    pub fn used(&self) -> usize {
        self.used
    }

    /// Directories indexed now.
    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    /// Whether no directory is indexed.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The index of `dir` if it describes `slots` slots (else it is stale and dropped); marks
    /// it the most recently used.
    pub fn get(&mut self, dir: Ino, slots: u64) -> Option<&DirIndex> {
        let stale = self.dirs.get(&dir)?.0.slots != slots;
        if stale {
            self.forget(dir);
            return None;
        }
        self.touch(dir);
        self.dirs.get(&dir).map(|(i, _)| i)
    }

    /// The directories indexed now.
    pub fn indexed(&self) -> impl Iterator<Item = Ino> + '_ {
        self.dirs.keys().copied()
    }

    /// The index of `dir` without checking or touching it.
    pub fn peek(&self, dir: Ino) -> Option<&DirIndex> {
        self.dirs.get(&dir).map(|(i, _)| i)
    }

    fn touch(&mut self, dir: Ino) {
        self.stamp += 1;
        let stamp = self.stamp;
        if let Some((_, s)) = self.dirs.get_mut(&dir) {
            self.order.remove(s);
            *s = stamp;
            self.order.insert(stamp, dir);
        }
    }

    /// Keeps `index` as `dir`'s, evicting older ones to fit; an index larger than the whole
    /// budget is not kept (false).
    pub fn insert(&mut self, dir: Ino, index: DirIndex) -> bool {
        self.forget(dir);
        let bytes = index.bytes();
        if bytes > self.budget {
            return false;
        }
        self.evict_to(self.budget - bytes);
        self.stamp += 1;
        self.order.insert(self.stamp, dir);
        self.dirs.insert(dir, (index, self.stamp));
        self.used += bytes;
        true
    }

    /// Drops `dir`'s index (the directory was freed, or its index went stale).
    pub fn forget(&mut self, dir: Ino) {
        if let Some((index, stamp)) = self.dirs.remove(&dir) {
            self.order.remove(&stamp);
            self.used -= index.bytes();
        }
    }

    /// Evicts least recently used indexes until at most `bytes` are used.
    fn evict_to(&mut self, bytes: usize) {
        while self.used > bytes {
            let Some((_, dir)) = self.order.pop_first() else {
                break;
            };
            if let Some((index, _)) = self.dirs.remove(&dir) {
                self.used -= index.bytes();
            }
        }
    }

    /// Applies a change to `dir`'s index (if it has one), keeping the byte count and budget.
    fn change(&mut self, dir: Ino, f: impl FnOnce(&mut DirIndex) -> bool) {
        let Some((index, _)) = self.dirs.get_mut(&dir) else {
            return;
        };
        let before = index.bytes();
        let keep = f(index);
        let after = index.bytes();
        self.used = self.used - before + after;
        if !keep || after > self.budget {
            self.forget(dir);
            return;
        }
        self.touch(dir);
        if self.used > self.budget {
            // Evict others first: this one is the most recently used now.
            self.evict_to(self.budget);
        }
    }

    /// `name -> ino` was written at `slot` of `dir` (a free slot, or appended).
    pub fn added(&mut self, dir: Ino, slot: u64, ino: Ino, name: &[u8]) {
        self.change(dir, |i| {
            i.added(slot, ino, name);
            true
        });
    }

    /// Entry `slot` of `dir`, holding `name`, was freed.
    pub fn freed(&mut self, dir: Ino, slot: u64, name: &[u8]) {
        self.change(dir, |i| i.freed(slot, name));
    }

    /// Entry `slot` of `dir`, holding `name`, now names `ino`.
    pub fn repointed(&mut self, dir: Ino, slot: u64, name: &[u8], ino: Ino) {
        self.change(dir, |i| {
            i.repointed(slot, name, ino);
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(entries: &[(Ino, &str)]) -> DirIndex {
        let mut i = DirIndex::new(entries.len() as u64);
        for (slot, (ino, name)) in entries.iter().enumerate() {
            i.scanned(slot as u64, *ino, name.as_bytes());
        }
        i
    }

    #[test]
    fn free_runs_merge_and_split() {
        let mut f = FreeRuns::default();
        for s in [5, 7, 6, 2, 3, 10] {
            f.insert(s);
        }
        assert_eq!(
            f.runs.iter().map(|(&s, &e)| (s, e)).collect::<Vec<_>>(),
            [(2, 4), (5, 8), (10, 11)]
        );
        f.insert(6); // already free: no change
        assert_eq!(f.len(), 3);
        f.remove(6);
        assert!(!f.contains(6) && f.contains(5) && f.contains(7));
        f.remove(2);
        f.remove(10);
        f.remove(99); // not free: no change
        assert_eq!(
            f.runs.iter().map(|(&s, &e)| (s, e)).collect::<Vec<_>>(),
            [(3, 4), (5, 6), (7, 8)]
        );
    }

    #[test]
    fn scan_then_changes_track_names_and_free_slots() {
        let mut i = index_of(&[(1, "."), (1, ".."), (0, "old"), (5, "a"), (0, ""), (6, "b")]);
        assert_eq!(i.get(b"a"), Some((3, 5)));
        assert_eq!(
            i.get(b"old"),
            None,
            "a free slot's leftover name is no entry"
        );
        assert_eq!(i.first_free(), Some(2));
        assert_eq!(i.children(), 2);
        i.added(2, 7, b"c");
        assert_eq!(i.first_free(), Some(4));
        i.added(6, 8, b"d"); // appended
        assert_eq!(i.slots(), 7);
        assert!(i.freed(3, b"a"));
        assert_eq!(i.get(b"a"), None);
        assert_eq!(i.first_free(), Some(3));
        i.repointed(5, b"b", 9);
        assert_eq!(i.get(b"b"), Some((5, 9)));
        let want = index_of(&[
            (1, "."),
            (1, ".."),
            (7, "c"),
            (0, "a"),
            (0, ""),
            (9, "b"),
            (8, "d"),
        ]);
        assert_eq!(i.difference(&want), None);
        assert_eq!(i, want);
    }

    #[test]
    fn duplicates_make_a_free_drop_the_index() {
        let mut i = index_of(&[(1, "."), (1, ".."), (4, "x"), (5, "x")]);
        assert_eq!(
            i.get(b"x"),
            Some((2, 4)),
            "the first one, as a scan finds it"
        );
        assert!(!i.freed(2, b"x"));
    }

    #[test]
    fn differences_are_named() {
        let a = index_of(&[(1, "."), (1, ".."), (4, "x")]);
        let b = index_of(&[(1, "."), (1, ".."), (5, "x")]);
        assert!(a.difference(&b).unwrap().contains("\"x\""));
        let c = index_of(&[(1, "."), (1, ".."), (0, "x")]);
        assert!(a.difference(&c).is_some());
        assert!(c.difference(&a).is_some());
        assert!(a.difference(&index_of(&[(1, "."), (1, "..")])).is_some());
    }

    #[test]
    fn the_budget_evicts_least_recently_used() {
        let one = index_of(&[(1, "."), (1, ".."), (4, "x")]);
        let size = one.bytes();
        let mut all = DirIndexes::new(2 * size);
        assert!(all.insert(10, one.clone()));
        assert!(all.insert(11, one.clone()));
        assert_eq!(all.used(), 2 * size);
        assert!(all.get(10, 3).is_some()); // 10 is now the most recent
        assert!(all.insert(12, one.clone()));
        assert_eq!(all.len(), 2);
        assert!(all.peek(11).is_none(), "the least recently used went");
        assert!(all.peek(10).is_some() && all.peek(12).is_some());
        // A stale slot count drops the index.
        assert!(all.get(12, 4).is_none());
        assert_eq!((all.len(), all.used()), (1, size));
        // Growing past the budget evicts the others, then the grown one if it alone is over.
        all.insert(12, one.clone());
        all.added(12, 3, 9, &[b'n'; 60]);
        assert!(all.peek(10).is_none());
        assert_eq!(all.peek(12).map(DirIndex::slots), Some(4));
        assert!(all.used() <= all.budget());
        let mut big = DirIndex::new(2);
        for k in 0..100u32 {
            big.scanned(u64::from(k), k + 1, format!("n{k}").as_bytes());
        }
        assert!(
            !all.insert(13, big),
            "an index over the whole budget is not kept"
        );
        assert!(all.used() <= all.budget());
        all.set_budget(0);
        assert!(all.is_empty() && all.used() == 0);
    }

    #[test]
    fn changes_to_unindexed_directories_are_ignored() {
        let mut all = DirIndexes::new(1 << 20);
        all.added(5, 2, 3, b"x");
        all.freed(5, 2, b"x");
        all.repointed(5, 2, b"x", 4);
        assert!(all.is_empty());
    }
}
