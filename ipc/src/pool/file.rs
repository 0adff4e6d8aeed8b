//! The pool file: `m3ipc-pool-NAME` next to the region file, mapped shared by every process of
//! the DC.
//!
//! Layout, each part page-aligned: a header page; one state word per chunk; [`BITMAP_WORDS`]
//! bitmap words per chunk; one metadata word per page (the word of a block is the word of its
//! first page); the grant table ([`GRANTS`] entries of four words); the data, `nr_chunks` chunks
//! of 1 MiB. The header is validated field by field on open and the geometry is then kept in
//! private memory, so scribbles on the header move no bound. Everything else is read as
//! untrusted words.

use super::alloc::{BITMAP_WORDS, CHUNK, Chunks, PAGE, PAGES_PER_CHUNK};
use crate::region::{DcError, io_err, region_dir};
use memmap2::{MmapOptions, MmapRaw};
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `"M3IPC-PL"` in little-endian.
const MAGIC: u64 = u64::from_le_bytes(*b"M3IPC-PL");
/// Bumped whenever the meaning of the pool layout changes.
pub(crate) const POOL_VERSION: u32 = 1;
/// Prefix of pool file names.
pub const POOL_FILE_PREFIX: &str = "m3ipc-pool-";
/// Entries of the grant table.
pub const GRANTS: usize = 4096;
/// Words of one grant entry.
pub(crate) const GRANT_WORDS: usize = 4;
/// Largest pool: 16 GiB.
pub const MAX_POOL_BYTES: u64 = 16 << 30;

/// The header page.
#[repr(C)]
pub(crate) struct PoolHeader {
    magic: AtomicU64,
    version: AtomicU32,
    _pad: AtomicU32,
    nr_chunks: AtomicU64,
    total_len: AtomicU64,
    grants: AtomicU64,
    /// Bytes copied by `vcopy` (the only copies the pool makes).
    pub(crate) copied: AtomicU64,
    /// `vcopy` calls that copied.
    pub(crate) copies: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<PoolHeader>() <= PAGE);

/// Where each part lies, derived from the number of chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolGeometry {
    pub(crate) nr_chunks: usize,
    pub(crate) states: usize,
    pub(crate) bitmaps: usize,
    pub(crate) meta: usize,
    pub(crate) grants: usize,
    pub(crate) data: usize,
    pub(crate) total_len: usize,
}

const fn page_up(n: usize) -> usize {
    n.div_ceil(PAGE) * PAGE
}

impl PoolGeometry {
    pub(crate) fn of(nr_chunks: usize) -> PoolGeometry {
        let states = PAGE;
        let bitmaps = states + page_up(nr_chunks * 8);
        let meta = bitmaps + page_up(nr_chunks * BITMAP_WORDS * 8);
        let grants = meta + page_up(nr_chunks * PAGES_PER_CHUNK * 8);
        let data = grants + page_up(GRANTS * GRANT_WORDS * 8);
        PoolGeometry {
            nr_chunks,
            states,
            bitmaps,
            meta,
            grants,
            data,
            total_len: data + nr_chunks * CHUNK,
        }
    }

    /// Pages of data.
    pub(crate) fn nr_pages(&self) -> usize {
        self.nr_chunks * PAGES_PER_CHUNK
    }
}

/// The pool file's path for DC `name`.
pub(crate) fn path_of(name: &str) -> PathBuf {
    region_dir().join(format!("{POOL_FILE_PREFIX}{name}"))
}

/// A mapped pool file.
pub(crate) struct PoolFile {
    map: MmapRaw,
    pub(crate) geo: PoolGeometry,
}

impl PoolFile {
    /// Create the pool file of DC `name` with `bytes` of data (a multiple of 1 MiB, checked by
    /// `DcConfig::validate`). A file left by a create that died is replaced: the caller has just
    /// created the region file exclusively, so no live DC uses it.
    pub(crate) fn create(name: &str, bytes: u64, mode: u32) -> Result<PoolFile, DcError> {
        let path = path_of(name);
        let geo = PoolGeometry::of((bytes / CHUNK as u64) as usize);
        let _ = std::fs::remove_file(&path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(io_err(&path))?;
        let made = (|| {
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(io_err(&path))?;
            file.set_len(geo.total_len as u64).map_err(io_err(&path))?;
            let map = MmapOptions::new()
                .len(geo.total_len)
                .map_raw(&file)
                .map_err(io_err(&path))?;
            let pool = PoolFile { map, geo };
            // A fresh, zero-filled file: every chunk FREE, every bitmap empty, every block and
            // grant free at generation 0. Relaxed: the region's Release store of its state
            // publishes the pool with the region.
            let h = pool.header();
            h.version.store(POOL_VERSION, Ordering::Relaxed);
            h.nr_chunks.store(geo.nr_chunks as u64, Ordering::Relaxed);
            h.total_len.store(geo.total_len as u64, Ordering::Relaxed);
            h.grants.store(GRANTS as u64, Ordering::Relaxed);
            h.magic.store(MAGIC, Ordering::Relaxed);
            Ok(pool)
        })();
        if made.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        made
    }

    /// Open and validate the pool file of DC `name`, which its region says holds `bytes`.
    pub(crate) fn open(name: &str, bytes: u64) -> Result<PoolFile, DcError> {
        let path = path_of(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    DcError::NotFound(
                        format!("{name} (its pool file {})", path.display()),
                        region_dir().display().to_string(),
                    )
                } else {
                    io_err(&path)(e)
                }
            })?;
        let geo = PoolGeometry::of((bytes / CHUNK as u64) as usize);
        let len = file.metadata().map_err(io_err(&path))?.len();
        let bad = |what, found: String, expected: String| DcError::BadHeader {
            path: path.display().to_string(),
            what,
            found,
            expected,
        };
        if len != geo.total_len as u64 {
            return Err(bad(
                "pool file length",
                len.to_string(),
                geo.total_len.to_string(),
            ));
        }
        let map = MmapOptions::new()
            .len(geo.total_len)
            .map_raw(&file)
            .map_err(io_err(&path))?;
        let pool = PoolFile { map, geo };
        let h = pool.header();
        let magic = h.magic.load(Ordering::Relaxed);
        if magic != MAGIC {
            return Err(bad(
                "pool magic",
                format!("{magic:#x}"),
                format!("{MAGIC:#x}"),
            ));
        }
        let version = h.version.load(Ordering::Relaxed);
        if version != POOL_VERSION {
            return Err(bad(
                "pool layout version",
                version.to_string(),
                POOL_VERSION.to_string(),
            ));
        }
        for (what, found, expected) in [
            (
                "pool chunks",
                h.nr_chunks.load(Ordering::Relaxed),
                geo.nr_chunks as u64,
            ),
            (
                "pool length",
                h.total_len.load(Ordering::Relaxed),
                geo.total_len as u64,
            ),
            (
                "pool grants",
                h.grants.load(Ordering::Relaxed),
                GRANTS as u64,
            ),
        ] {
            if found != expected {
                return Err(bad(what, found.to_string(), expected.to_string()));
            }
        }
        Ok(pool)
    }

    pub(crate) fn header(&self) -> &PoolHeader {
        // SAFETY: the mapping is at least one page (the header page is part of every geometry),
        // page-aligned, and lives as long as `self`; `PoolHeader` holds only atomics, valid for
        // any bit pattern and shareable with writers in other processes.
        unsafe { &*(self.map.as_ptr() as *const PoolHeader) }
    }

    /// The word at byte offset `off`, which must lie in the part `[start, start + words * 8)`.
    fn word(&self, start: usize, words: usize, i: usize) -> Option<&AtomicU64> {
        if i >= words {
            return None;
        }
        let off = start + i * 8;
        debug_assert!(off + 8 <= self.geo.data);
        // SAFETY: `i < words` and every part lies before `geo.data <= geo.total_len`, the
        // mapping's length, so the word is inside the mapping; `start` is page-aligned, so the
        // word is 8-aligned. `AtomicU64` is valid for any bit pattern and may be shared with
        // writers in other processes; the mapping lives as long as `self`.
        Some(unsafe { &*(self.map.as_ptr().add(off) as *const AtomicU64) })
    }

    /// The metadata word of page `pos`.
    pub(crate) fn meta(&self, pos: usize) -> Option<&AtomicU64> {
        self.word(self.geo.meta, self.geo.nr_pages(), pos)
    }

    /// Word `w` of grant entry `g`.
    pub(crate) fn grant_word(&self, g: usize, w: usize) -> Option<&AtomicU64> {
        if w >= GRANT_WORDS || g >= GRANTS {
            return None;
        }
        self.word(self.geo.grants, GRANTS * GRANT_WORDS, g * GRANT_WORDS + w)
    }

    /// A pointer to `len` bytes of data at data offset `off`, if they lie inside the data.
    pub(crate) fn data(&self, off: usize, len: usize) -> Option<*mut u8> {
        let end = off.checked_add(len)?;
        if end > self.geo.nr_chunks * CHUNK {
            return None;
        }
        // SAFETY: `off + len <= nr_chunks * CHUNK`, and the data part is the last
        // `nr_chunks * CHUNK` bytes of the mapping, so the pointer stays inside the mapping.
        Some(unsafe { self.map.as_mut_ptr().add(self.geo.data + off) })
    }
}

impl Chunks for PoolFile {
    fn nr_chunks(&self) -> usize {
        self.geo.nr_chunks
    }

    fn state(&self, c: usize) -> Option<&AtomicU64> {
        self.word(self.geo.states, self.geo.nr_chunks, c)
    }

    fn bitmap(&self, c: usize, w: usize) -> Option<&AtomicU64> {
        if w >= BITMAP_WORDS || c >= self.geo.nr_chunks {
            return None;
        }
        self.word(
            self.geo.bitmaps,
            self.geo.nr_chunks * BITMAP_WORDS,
            c * BITMAP_WORDS + w,
        )
    }
}

/// Remove DC `name`'s pool file, if any.
pub(crate) fn remove(name: &str) {
    let _ = std::fs::remove_file(path_of(name));
}
