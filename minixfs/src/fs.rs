//! The file system: mount, and every operation of the public API.
//!
//! Errors are checked in a fixed order, as MINIX does: the arguments (inode numbers, names),
//! then the inodes they name (kind, state), then the operation's own conditions (exists, empty,
//! space). Nothing is changed on disk before every check that can fail without a device error
//! has passed.

use crate::bitmap::Bitmap;
use crate::cache::{BlockCache, DEFAULT_CACHE_BLOCKS};
use crate::device::BlockDevice;
use crate::dir::{
    DIR_ENTRY_SIZE, ListCursor, NAME_LEN, check_lookup_name, check_new_name, encode_entry,
};
use crate::dir_index::{DEFAULT_DIR_INDEX_BYTES, DirIndexes};
use crate::error::{FsError, corrupt};
pub use crate::format::FormatOptions;
use crate::format::{layout, write_fresh};
use crate::inode::{INODE_SIZE, Inode, S_IFDIR, S_IFMT, S_IFREG, inode_position, now};
use crate::superblock::{SUPERBLOCK_BLOCK, Superblock};
use crate::{BLOCK_SIZE, Ino, ROOT};

/// What `stat` reports about an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Inode number.
    pub ino: Ino,
    /// File type and permission bits (S_IFREG 0o100000, S_IFDIR 0o040000).
    pub mode: u16,
    /// Number of directory entries naming the inode (a directory: 2 + its subdirectories).
    pub nlinks: u16,
    /// Owner.
    pub uid: u16,
    /// Group.
    pub gid: u16,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, seconds since the epoch.
    pub mtime: u32,
    /// Last access, seconds since the epoch.
    pub atime: u32,
    /// Last status change, seconds since the epoch.
    pub ctime: u32,
}

impl Stat {
    /// Whether the inode is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
    /// Whether the inode is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
}

/// One live directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The inode the entry names.
    pub ino: Ino,
    /// The name (at most 60 bytes; bytes that are not UTF-8 are shown as U+FFFD).
    pub name: String,
}

/// Size and usage of a mounted file system.
#[derive(Debug, Clone, Copy)]
pub struct FsInfo {
    /// Number of blocks (zones) of the file system, metadata included.
    pub blocks: u64,
    /// Free data zones.
    pub free_blocks: u64,
    /// Number of inodes.
    pub inodes: u32,
    /// Free inodes.
    pub free_inodes: u32,
    /// Largest file size in bytes.
    pub max_file_size: u64,
    /// Longest name in bytes.
    pub name_len: usize,
}

/// A mounted MINIX v3 file system; owns the device and a block cache.
///
/// Changes live in the cache and the in-memory bitmaps until [`FileSystem::sync`] (or
/// [`FileSystem::into_device`]); dropping a `FileSystem` without either discards them.
pub struct FileSystem<D: BlockDevice> {
    pub(crate) dev: D,
    pub(crate) cache: BlockCache,
    pub(crate) sb: Superblock,
    pub(crate) imap: Bitmap,
    pub(crate) zmap: Bitmap,
    /// Indexes of the directories in use (`dir_index.rs`).
    pub(crate) dirs: DirIndexes,
    /// Changes to directory entries so far (a listing cursor is valid while it stands).
    pub(crate) dir_changes: u64,
    /// Where the last listing stopped.
    pub(crate) listing: Option<ListCursor>,
}

/// Blocks mapped per step of a large read or write (bounds the zone list kept in memory).
const MAP_CHUNK: usize = 1024;

impl<D: BlockDevice> FileSystem<D> {
    /// Writes a fresh, empty file system over the whole device (the layout `mkfs.minix -3`
    /// chooses), then mounts it.
    pub fn format(mut dev: D, opts: &FormatOptions) -> Result<Self, FsError> {
        let sb = layout(dev.block_count(), opts)?;
        write_fresh(&mut dev, &sb, now())?;
        Self::mount(dev)
    }

    /// Mounts the file system on `dev`: reads and validates the superblock (a clear
    /// [`FsError::Corrupt`] for a bad one), loads both bitmaps and checks the root inode.
    pub fn mount(mut dev: D) -> Result<Self, FsError> {
        let blocks = dev.block_count();
        if blocks < 2 {
            return Err(corrupt!("device of {blocks} blocks has no superblock"));
        }
        let mut block = vec![0u8; BLOCK_SIZE];
        dev.read_blocks(SUPERBLOCK_BLOCK, &mut block)?;
        let sb = Superblock::decode(&block, blocks)?;
        let imap = Bitmap::load(
            &mut dev,
            sb.imap_start(),
            usize::from(sb.imap_blocks),
            u64::from(sb.ninodes) + 1,
        )?;
        let zmap = Bitmap::load(
            &mut dev,
            sb.zmap_start(),
            usize::from(sb.zmap_blocks),
            sb.data_zones() + 1,
        )?;
        let mut fs = FileSystem {
            dev,
            cache: BlockCache::new(DEFAULT_CACHE_BLOCKS),
            sb,
            imap,
            zmap,
            dirs: DirIndexes::new(DEFAULT_DIR_INDEX_BYTES),
            dir_changes: 0,
            listing: None,
        };
        let root = fs.load_inode(ROOT).map_err(|e| match e {
            FsError::NotFound => corrupt!("root inode 1 is not in use"),
            other => other,
        })?;
        if !root.is_dir() {
            return Err(corrupt!(
                "root inode 1 is not a directory (mode {:o})",
                root.mode
            ));
        }
        fs.dir_slots_of(ROOT, &root)?;
        Ok(fs)
    }

    /// Sets the block cache's capacity in blocks (at least 8; default 4096 = 4 MiB).
    pub fn with_cache_blocks(mut self, n: usize) -> Self {
        self.cache.set_capacity(n);
        self
    }

    /// Sets the memory budget of the directory indexes in bytes (default 32 MiB): the
    /// indexes of the directories used most recently are kept within it, and a directory whose
    /// index was dropped is scanned once at its next use. A directory whose index alone needs
    /// more is scanned at every lookup and create.
    pub fn with_dir_index_bytes(mut self, bytes: usize) -> Self {
        self.dirs.set_budget(bytes);
        self
    }

    /// Directories indexed now, and the bytes their indexes count against the budget.
    pub fn dir_index_usage(&self) -> (usize, usize) {
        (self.dirs.len(), self.dirs.used())
    }

    /// Checks that the index of every directory indexed now agrees with the directory on
    /// disk (names, slots, inodes, free slots and size): `Corrupt` naming the first
    /// difference. A self-check for tests; it reads every indexed directory.
    pub fn check_dir_indexes(&mut self) -> Result<(), FsError> {
        let mut dirs: Vec<Ino> = self.dirs.indexed().collect();
        dirs.sort_unstable();
        for dir in dirs {
            let inode = self.load_dir(dir)?;
            let fresh = self.scan_index(dir, &inode)?;
            let Some(held) = self.dirs.peek(dir) else {
                continue;
            };
            if let Some(diff) = held.difference(&fresh) {
                return Err(corrupt!("directory {dir}: its index differs: {diff}"));
            }
        }
        Ok(())
    }

    /// Size and usage.
    pub fn info(&self) -> FsInfo {
        FsInfo {
            blocks: u64::from(self.sb.zones),
            free_blocks: self.zmap.free_count(),
            inodes: self.sb.ninodes,
            free_inodes: self.imap.free_count() as u32,
            max_file_size: self.sb.max_file_size(),
            name_len: NAME_LEN,
        }
    }

    // ---- inodes ------------------------------------------------------------------------

    /// Reads inode `ino` without checking that it is in use.
    fn read_inode_raw(&mut self, ino: Ino) -> Result<Inode, FsError> {
        let (block, at) = inode_position(self.sb.inode_table_start(), ino);
        let data = self.cache.get(&mut self.dev, block)?;
        let mut raw = [0u8; INODE_SIZE];
        raw.copy_from_slice(&data[at..at + INODE_SIZE]);
        Ok(Inode::decode(&raw))
    }

    /// Inode `ino` as a caller names it: in range (else `InvalidArgument`), in use (else
    /// `NotFound`, e.g. a file removed since), and sane (else `Corrupt`).
    pub(crate) fn load_inode(&mut self, ino: Ino) -> Result<Inode, FsError> {
        if ino == 0 || ino > self.sb.ninodes {
            return Err(FsError::InvalidArgument("inode number out of range"));
        }
        if !self.imap.is_set(u64::from(ino)) {
            return Err(FsError::NotFound);
        }
        let inode = self.read_inode_raw(ino)?;
        if inode.mode == 0 || inode.nlinks == 0 {
            return Err(corrupt!(
                "inode {ino} is marked in use but is empty (mode {:o}, {} links)",
                inode.mode,
                inode.nlinks
            ));
        }
        if u64::from(inode.size) > self.sb.max_file_size() {
            return Err(corrupt!(
                "inode {ino}: size {} beyond the largest file {}",
                inode.size,
                self.sb.max_file_size()
            ));
        }
        Ok(inode)
    }

    /// Inode `ino` named by a directory entry: a free inode there means corruption.
    fn load_entry_inode(&mut self, dir: Ino, ino: Ino) -> Result<Inode, FsError> {
        self.load_inode(ino).map_err(|e| match e {
            FsError::NotFound => corrupt!("directory {dir} names inode {ino}, which is free"),
            other => other,
        })
    }

    /// A directory inode (else `NotDir`).
    fn load_dir(&mut self, ino: Ino) -> Result<Inode, FsError> {
        let inode = self.load_inode(ino)?;
        if !inode.is_dir() {
            return Err(FsError::NotDir);
        }
        Ok(inode)
    }

    /// A regular file's inode (`IsDir` for a directory, `InvalidArgument` for other kinds).
    pub(crate) fn load_regular(&mut self, ino: Ino) -> Result<Inode, FsError> {
        let inode = self.load_inode(ino)?;
        if inode.is_dir() {
            return Err(FsError::IsDir);
        }
        if !inode.is_file() {
            return Err(FsError::InvalidArgument("not a regular file"));
        }
        Ok(inode)
    }

    /// Stores inode `ino` (in the cache; written back at sync).
    pub(crate) fn store_inode(&mut self, ino: Ino, inode: &Inode) -> Result<(), FsError> {
        let (block, at) = inode_position(self.sb.inode_table_start(), ino);
        let data = self.cache.get_mut(&mut self.dev, block)?;
        let mut raw = [0u8; INODE_SIZE];
        inode.encode(&mut raw);
        data[at..at + INODE_SIZE].copy_from_slice(&raw);
        Ok(())
    }

    /// Allocates and stores a fresh inode.
    fn alloc_inode(&mut self, inode: &Inode) -> Result<Ino, FsError> {
        let bit = self.imap.alloc().ok_or(FsError::NoInodes)?;
        let ino = bit as Ino;
        self.store_inode(ino, inode)?;
        Ok(ino)
    }

    /// Frees inode `ino` and all its zones; the inode is zeroed (fsck wants free inodes clear).
    fn free_inode(&mut self, ino: Ino, inode: &mut Inode) -> Result<(), FsError> {
        if inode.is_dir() {
            // The number may come back as a new directory: its old index must not.
            self.dirs.forget(ino);
            self.dir_changes += 1;
        }
        self.free_blocks_from(ino, inode, 0)?;
        self.store_inode(ino, &Inode::default())?;
        self.imap.free(u64::from(ino), || format!("inode {ino}"))
    }

    /// Drops one link of `ino`; frees it when none is left.
    fn drop_link(&mut self, ino: Ino, inode: &mut Inode) -> Result<(), FsError> {
        inode.nlinks = inode.nlinks.saturating_sub(1);
        inode.ctime = now();
        if inode.nlinks == 0 {
            self.free_inode(ino, inode)
        } else {
            self.store_inode(ino, inode)
        }
    }

    fn dir_slots_of(&mut self, dir: Ino, inode: &Inode) -> Result<(), FsError> {
        // Scanning for a name that cannot exist checks sizes, holes and inode numbers.
        self.find_entry(dir, inode, "/").map(|_| ())
    }

    // ---- names -------------------------------------------------------------------------

    /// The inode of an absolute path ('/'-separated; empty components and "." are skipped,
    /// ".." goes up). `/` is the root.
    pub fn lookup(&mut self, path: &str) -> Result<Ino, FsError> {
        if !path.starts_with('/') {
            return Err(FsError::InvalidArgument("path must be absolute"));
        }
        let mut ino = ROOT;
        for name in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            ino = self.lookup_in(ino, name)?;
        }
        Ok(ino)
    }

    /// The inode of `name` in directory `dir` ("." and ".." included).
    pub fn lookup_in(&mut self, dir: Ino, name: &str) -> Result<Ino, FsError> {
        let dir_inode = self.load_dir(dir)?;
        check_lookup_name(name)?;
        match self.find_entry(dir, &dir_inode, name)? {
            Some((_, ino)) if !self.imap.is_set(u64::from(ino)) => Err(corrupt!(
                "directory {dir}: \"{name}\" names inode {ino}, which is free"
            )),
            Some((_, ino)) => Ok(ino),
            None => Err(FsError::NotFound),
        }
    }

    /// Checks `dir` and `name` for a new entry; returns the directory's inode.
    fn prepare_new_entry(&mut self, dir: Ino, name: &str) -> Result<Inode, FsError> {
        let dir_inode = self.load_dir(dir)?;
        check_new_name(name)?;
        if self.find_entry(dir, &dir_inode, name)?.is_some() {
            return Err(FsError::Exists);
        }
        Ok(dir_inode)
    }

    /// Creates an empty regular file `name` in `dir`; `mode` gives the permission bits.
    pub fn create(&mut self, dir: Ino, name: &str, mode: u16) -> Result<Ino, FsError> {
        let mut dir_inode = self.prepare_new_entry(dir, name)?;
        let t = now();
        let ino = self.alloc_inode(&Inode::new(S_IFREG, mode, t))?;
        if let Err(e) = self.add_entry(dir, &mut dir_inode, name, ino) {
            // Store the directory (it may hold a new zone) and give the inode back.
            self.store_inode(dir, &dir_inode)?;
            let mut inode = Inode::new(S_IFREG, mode, t);
            self.free_inode(ino, &mut inode)?;
            return Err(e);
        }
        dir_inode.mtime = t;
        dir_inode.ctime = t;
        self.store_inode(dir, &dir_inode)?;
        Ok(ino)
    }

    /// Creates directory `name` in `dir` with "." and ".."; `mode` gives the permission bits.
    pub fn mkdir(&mut self, dir: Ino, name: &str, mode: u16) -> Result<Ino, FsError> {
        let mut dir_inode = self.prepare_new_entry(dir, name)?;
        if dir_inode.nlinks == u16::MAX {
            return Err(FsError::InvalidArgument("too many subdirectories"));
        }
        let t = now();
        let mut inode = Inode::new(S_IFDIR, mode, t);
        inode.nlinks = 2;
        let ino = self.alloc_inode(&inode)?;
        let zone = match self.alloc_zone() {
            Ok(z) => z,
            Err(e) => {
                self.free_inode(ino, &mut inode)?;
                return Err(e);
            }
        };
        inode.zones[0] = zone;
        inode.size = 2 * DIR_ENTRY_SIZE as u32;
        let block = self.cache.zeroed_mut(&mut self.dev, u64::from(zone))?;
        encode_entry(&mut block[..DIR_ENTRY_SIZE], ino, b".");
        encode_entry(&mut block[DIR_ENTRY_SIZE..2 * DIR_ENTRY_SIZE], dir, b"..");
        self.store_inode(ino, &inode)?;
        if let Err(e) = self.add_entry(dir, &mut dir_inode, name, ino) {
            self.store_inode(dir, &dir_inode)?;
            self.free_inode(ino, &mut inode)?;
            return Err(e);
        }
        dir_inode.nlinks += 1;
        dir_inode.mtime = t;
        dir_inode.ctime = t;
        self.store_inode(dir, &dir_inode)?;
        Ok(ino)
    }

    /// Removes the entry `name` of a non-directory; frees the file when it was the last link.
    pub fn unlink(&mut self, dir: Ino, name: &str) -> Result<(), FsError> {
        let mut dir_inode = self.load_dir(dir)?;
        check_lookup_name(name)?;
        let (slot, ino) = self
            .find_entry(dir, &dir_inode, name)?
            .ok_or(FsError::NotFound)?;
        let mut inode = self.load_entry_inode(dir, ino)?;
        if inode.is_dir() {
            return Err(FsError::IsDir);
        }
        self.set_entry_ino(dir, &dir_inode, slot, 0)?;
        let t = now();
        dir_inode.mtime = t;
        dir_inode.ctime = t;
        self.store_inode(dir, &dir_inode)?;
        self.drop_link(ino, &mut inode)
    }

    /// Removes the empty directory `name` from `dir`.
    pub fn rmdir(&mut self, dir: Ino, name: &str) -> Result<(), FsError> {
        let mut dir_inode = self.load_dir(dir)?;
        check_lookup_name(name)?;
        if name == "." || name == ".." {
            return Err(FsError::Busy);
        }
        let (slot, ino) = self
            .find_entry(dir, &dir_inode, name)?
            .ok_or(FsError::NotFound)?;
        let mut inode = self.load_entry_inode(dir, ino)?;
        if !inode.is_dir() {
            return Err(FsError::NotDir);
        }
        if ino == ROOT {
            return Err(FsError::Busy);
        }
        if !self.dir_is_empty(ino, &inode)? {
            return Err(FsError::NotEmpty);
        }
        self.set_entry_ino(dir, &dir_inode, slot, 0)?;
        let t = now();
        dir_inode.nlinks = dir_inode.nlinks.saturating_sub(1);
        dir_inode.mtime = t;
        dir_inode.ctime = t;
        self.store_inode(dir, &dir_inode)?;
        self.free_inode(ino, &mut inode)
    }

    /// Whether directory `ino` is `ancestor` or lies below it (walking ".." up to the root,
    /// at most as many steps as there are inodes).
    fn is_within(&mut self, ino: Ino, ancestor: Ino) -> Result<bool, FsError> {
        let mut cur = ino;
        for _ in 0..=self.sb.ninodes {
            if cur == ancestor {
                return Ok(true);
            }
            if cur == ROOT {
                return Ok(false);
            }
            let inode = self.load_entry_inode(cur, cur)?;
            let parent = match self.find_entry(cur, &inode, "..")? {
                Some((_, p)) => p,
                None => return Err(corrupt!("directory {cur} has no \"..\"")),
            };
            let parent_inode = self.load_entry_inode(cur, parent)?;
            if !parent_inode.is_dir() {
                return Err(corrupt!(
                    "directory {cur}: \"..\" is inode {parent}, not a directory"
                ));
            }
            cur = parent;
        }
        Err(corrupt!(
            "directory {ino}: \"..\" chain does not reach the root (a loop)"
        ))
    }

    /// Renames `from` in `from_dir` to `to` in `to_dir`, replacing an existing `to` of the
    /// same kind (a directory only if it is empty).
    pub fn rename(
        &mut self,
        from_dir: Ino,
        from: &str,
        to_dir: Ino,
        to: &str,
    ) -> Result<(), FsError> {
        let mut src_dir = self.load_dir(from_dir)?;
        let mut dst_dir = self.load_dir(to_dir)?;
        check_lookup_name(from)?;
        check_lookup_name(to)?;
        if from == "." || from == ".." || to == "." || to == ".." {
            return Err(FsError::Busy);
        }
        let (src_slot, ino) = self
            .find_entry(from_dir, &src_dir, from)?
            .ok_or(FsError::NotFound)?;
        let mut inode = self.load_entry_inode(from_dir, ino)?;
        let moving_dir = inode.is_dir();
        if moving_dir && to_dir != from_dir && self.is_within(to_dir, ino)? {
            return Err(FsError::Busy);
        }
        let target = self.find_entry(to_dir, &dst_dir, to)?;
        let mut target_inode = None;
        if let Some((_, t)) = target {
            if t == ino {
                return Ok(()); // the same file under both names: nothing to do
            }
            let ti = self.load_entry_inode(to_dir, t)?;
            match (moving_dir, ti.is_dir()) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) if !self.dir_is_empty(t, &ti)? => return Err(FsError::NotEmpty),
                _ => {}
            }
            target_inode = Some((t, ti));
        }
        if moving_dir && to_dir != from_dir && target.is_none() && dst_dir.nlinks == u16::MAX {
            return Err(FsError::InvalidArgument("too many subdirectories"));
        }

        let t = now();
        // The new name first (the only step that may need space), then the old one goes.
        match target {
            Some((slot, _)) => self.set_entry_ino(to_dir, &dst_dir, slot, ino)?,
            None => {
                if let Err(e) = self.add_entry(to_dir, &mut dst_dir, to, ino) {
                    // The directory may hold a new zone even so: keep it recorded.
                    self.store_inode(to_dir, &dst_dir)?;
                    return Err(e);
                }
            }
        }
        if to_dir == from_dir {
            src_dir = dst_dir; // one directory: carry on with the newest copy only
        }
        self.set_entry_ino(from_dir, &src_dir, src_slot, 0)?;
        // Link counts of the parents, in the one copy that stands for each directory.
        let mut dst_links = if to_dir == from_dir {
            src_dir.nlinks
        } else {
            dst_dir.nlinks
        };
        if moving_dir && to_dir != from_dir {
            // The moved directory's ".." now names its new parent.
            if let Some((dotdot, _)) = self.find_entry(ino, &inode, "..")? {
                self.set_entry_ino(ino, &inode, dotdot, to_dir)?;
            }
            src_dir.nlinks = src_dir.nlinks.saturating_sub(1);
            dst_links = dst_links.saturating_add(1);
        }
        if let Some((tino, mut ti)) = target_inode {
            if ti.is_dir() {
                // The replaced directory's ".." no longer counts for its parent.
                dst_links = dst_links.saturating_sub(1);
                self.free_inode(tino, &mut ti)?;
            } else {
                self.drop_link(tino, &mut ti)?;
            }
        }
        inode.ctime = t;
        self.store_inode(ino, &inode)?;
        src_dir.mtime = t;
        src_dir.ctime = t;
        if to_dir == from_dir {
            src_dir.nlinks = dst_links;
        } else {
            dst_dir.nlinks = dst_links;
            dst_dir.mtime = t;
            dst_dir.ctime = t;
            self.store_inode(to_dir, &dst_dir)?;
        }
        self.store_inode(from_dir, &src_dir)
    }

    // ---- data --------------------------------------------------------------------------

    /// Reads up to `buf.len()` bytes at `off`; fewer at the end of the file, 0 at or past it.
    /// Holes read as zeros. Runs of whole blocks in contiguous zones move in one device call.
    pub fn read(&mut self, ino: Ino, off: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        let mut inode = self.load_regular(ino)?;
        let size = u64::from(inode.size);
        if off >= size || buf.is_empty() {
            return Ok(0);
        }
        let len = (size - off).min(buf.len() as u64) as usize;
        let buf = &mut buf[..len];
        let bs = BLOCK_SIZE as u64;
        let first_fb = off / bs;
        let last_fb = (off + len as u64 - 1) / bs;
        let mut zones = vec![0u32; MAP_CHUNK.min((last_fb - first_fb + 1) as usize)];
        let mut fb = first_fb;
        while fb <= last_fb {
            let n = ((last_fb - fb + 1) as usize).min(zones.len());
            self.map_range(ino, &inode, fb, &mut zones[..n])?;
            let mut k = 0;
            while k < n {
                let block_fb = fb + k as u64;
                let block_start = block_fb * bs;
                // The part of this block the caller wants, in file and buffer coordinates.
                let from = off.max(block_start);
                let to = (off + len as u64).min(block_start + bs);
                let out = &mut buf[(from - off) as usize..(to - off) as usize];
                let z = zones[k];
                if z == 0 {
                    out.fill(0);
                    k += 1;
                    continue;
                }
                let whole = from == block_start && to == block_start + bs;
                if whole && !self.cache.contains(u64::from(z)) {
                    // A run of whole, uncached, contiguous blocks: one device read.
                    let mut run = 1;
                    while k + run < n
                        && Some(zones[k + run]) == z.checked_add(run as u32)
                        && (block_fb + run as u64 + 1) * bs <= off + len as u64
                        && !self.cache.contains(u64::from(z) + run as u64)
                    {
                        run += 1;
                    }
                    let at = (block_start - off) as usize;
                    self.dev
                        .read_blocks(u64::from(z), &mut buf[at..at + run * BLOCK_SIZE])?;
                    k += run;
                    continue;
                }
                let data = self.cache.get(&mut self.dev, u64::from(z))?;
                let inner = (from - block_start) as usize;
                out.copy_from_slice(&data[inner..inner + out.len()]);
                k += 1;
            }
            fb += n as u64;
        }
        // relatime: note the access only when it is older than the last change.
        if inode.atime < inode.mtime {
            inode.atime = now();
            self.store_inode(ino, &inode)?;
        }
        Ok(len)
    }

    /// Writes `data` at `off`, growing the file (a gap before `off` becomes a hole). On a full
    /// disk it writes what fits and returns that count (`NoSpace` if nothing fit).
    pub fn write(&mut self, ino: Ino, off: u64, data: &[u8]) -> Result<usize, FsError> {
        let mut inode = self.load_regular(ino)?;
        if data.is_empty() {
            return Ok(0);
        }
        let end = off
            .checked_add(data.len() as u64)
            .ok_or(FsError::FileTooBig)?;
        if end > self.sb.max_file_size() {
            return Err(FsError::FileTooBig);
        }
        let (written, result) = self.write_blocks_of(ino, &mut inode, off, data);
        if written > 0 {
            let new_end = off + written as u64;
            if new_end > u64::from(inode.size) {
                inode.size = new_end as u32;
            }
            let t = now();
            inode.mtime = t;
            inode.ctime = t;
        }
        // Stored even on error: zones allocated so far are recorded in the inode.
        self.store_inode(ino, &inode)?;
        match result {
            Err(FsError::NoSpace) if written > 0 => Ok(written),
            Err(e) => Err(e),
            Ok(()) => Ok(written),
        }
    }

    /// The body of `write`: returns the bytes written and how it ended.
    fn write_blocks_of(
        &mut self,
        ino: Ino,
        inode: &mut Inode,
        off: u64,
        data: &[u8],
    ) -> (usize, Result<(), FsError>) {
        let bs = BLOCK_SIZE as u64;
        let end = off + data.len() as u64;
        let mut pos = off;
        let mut zones: Vec<u32> = Vec::new();
        while pos < end {
            let fb = pos / bs;
            let inner = (pos % bs) as usize;
            if inner == 0 && end - pos >= bs {
                // Whole blocks: map (allocating) a run of contiguous zones, write it at once.
                let max_run = (((end - pos) / bs) as usize).min(MAP_CHUNK);
                zones.clear();
                let mut failure = None;
                for k in 0..max_run {
                    match self.zone_for_write(ino, inode, fb + k as u64) {
                        Ok((z, _)) => {
                            if let Some(&last) = zones.last()
                                && Some(z) != last.checked_add(1)
                            {
                                // Not contiguous: write this run, start the next one at z.
                                zones.push(z);
                                break;
                            }
                            zones.push(z);
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                // `zones` may end with the first zone of the next run; it is mapped already.
                let mut run = zones.len();
                if run >= 2 && Some(zones[run - 1]) != zones[run - 2].checked_add(1) {
                    run -= 1;
                }
                if run > 0 {
                    let at = (pos - off) as usize;
                    let first = u64::from(zones[0]);
                    for b in first..first + run as u64 {
                        self.cache.forget(b);
                    }
                    if let Err(e) = self
                        .dev
                        .write_blocks(first, &data[at..at + run * BLOCK_SIZE])
                    {
                        return ((pos - off) as usize, Err(e.into()));
                    }
                    pos += run as u64 * bs;
                }
                if let Some(e) = failure {
                    return ((pos - off) as usize, Err(e));
                }
                continue;
            }
            // A partial block through the cache.
            let n = (bs as usize - inner).min((end - pos) as usize);
            let step = (|| {
                let (z, fresh) = self.zone_for_write(ino, inode, fb)?;
                let block = if fresh {
                    self.cache.zeroed_mut(&mut self.dev, u64::from(z))?
                } else {
                    self.cache.get_mut(&mut self.dev, u64::from(z))?
                };
                let at = (pos - off) as usize;
                block[inner..inner + n].copy_from_slice(&data[at..at + n]);
                Ok(())
            })();
            if let Err(e) = step {
                return ((pos - off) as usize, Err(e));
            }
            pos += n as u64;
        }
        ((pos - off) as usize, Ok(()))
    }

    /// Sets the file's size: shrinking frees the zones past the end and zeroes the rest of the
    /// last block; growing leaves a hole.
    pub fn truncate(&mut self, ino: Ino, len: u64) -> Result<(), FsError> {
        let mut inode = self.load_regular(ino)?;
        if len > self.sb.max_file_size() {
            return Err(FsError::FileTooBig);
        }
        let bs = BLOCK_SIZE as u64;
        if len < u64::from(inode.size) {
            let keep = len.div_ceil(bs);
            self.free_blocks_from(ino, &mut inode, keep)?;
            if !len.is_multiple_of(bs) {
                // Bytes past the new end must read as zeros if the file grows again.
                let z = self.map_block(ino, &inode, len / bs)?;
                if z != 0 {
                    let block = self.cache.get_mut(&mut self.dev, u64::from(z))?;
                    block[(len % bs) as usize..].fill(0);
                }
            }
        }
        inode.size = len as u32;
        let t = now();
        inode.mtime = t;
        inode.ctime = t;
        self.store_inode(ino, &inode)
    }

    /// Live entries of a directory, "." and ".." included, skipping the first `start` live
    /// entries and returning at most `max`.
    pub fn readdir(
        &mut self,
        dir: Ino,
        start: usize,
        max: usize,
    ) -> Result<Vec<DirEntry>, FsError> {
        let inode = self.load_dir(dir)?;
        self.list_dir(dir, &inode, start, max)
    }

    /// The inode's attributes.
    pub fn stat(&mut self, ino: Ino) -> Result<Stat, FsError> {
        let i = self.load_inode(ino)?;
        Ok(Stat {
            ino,
            mode: i.mode,
            nlinks: i.nlinks,
            uid: i.uid,
            gid: i.gid,
            size: u64::from(i.size),
            mtime: i.mtime,
            atime: i.atime,
            ctime: i.ctime,
        })
    }

    /// Writes every change (dirty cache blocks, bitmaps) to the device and flushes it.
    pub fn sync(&mut self) -> Result<(), FsError> {
        self.cache.flush(&mut self.dev)?;
        self.imap.write_back(&mut self.dev)?;
        self.zmap.write_back(&mut self.dev)?;
        self.dev.flush()?;
        Ok(())
    }

    /// The device, borrowed (e.g. to read its counters); changes not synced are not on it.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Syncs, then gives the device back.
    pub fn into_device(mut self) -> Result<D, FsError> {
        self.sync()?;
        Ok(self.dev)
    }
}
