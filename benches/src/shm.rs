//! The shared page of the raw baselines: a 4 KiB file in the region directory, mapped shared by
//! the server and the client, whose words sit one per cache line.

use crate::error::{BenchError, Result};
use memmap2::{MmapOptions, MmapRaw};
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64};

/// Size of the page.
const PAGE: usize = 4096;
/// Size of a cache line: each word has one to itself.
const LINE: usize = 64;
/// Number of cache lines in the page.
pub const LINES: usize = PAGE / LINE;

/// The file behind a shared page; the file is removed when this is dropped.
#[derive(Debug)]
pub struct ShmFile {
    path: PathBuf,
}

impl ShmFile {
    /// Create `dir/name` (exclusively, mode 0600), a page of zeros.
    pub fn create(dir: &Path, name: &str) -> Result<ShmFile> {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| BenchError::new(format!("{}: {e}", path.display())))?;
        let shm = ShmFile { path };
        file.set_len(PAGE as u64)
            .map_err(|e| BenchError::new(format!("{}: {e}", shm.path.display())))?;
        Ok(shm)
    }

    /// The file's path, for the children's command lines.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A shared page, mapped.
#[derive(Debug)]
pub struct SharedPage {
    map: MmapRaw,
}

impl SharedPage {
    /// Map the page file at `path`.
    pub fn open(path: &str) -> Result<SharedPage> {
        let fail = |e: std::io::Error| BenchError::new(format!("{path}: {e}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(fail)?;
        let len = file.metadata().map_err(fail)?.len();
        if len < PAGE as u64 {
            return Err(BenchError::new(format!(
                "{path}: {len} bytes, expected {PAGE}"
            )));
        }
        let map = MmapOptions::new().len(PAGE).map_raw(&file).map_err(fail)?;
        Ok(SharedPage { map })
    }

    /// The 32-bit word at the start of cache line `line` (taken modulo [`LINES`]).
    pub fn u32_at(&self, line: usize) -> &AtomicU32 {
        let off = (line % LINES) * LINE;
        // SAFETY: `off + 4 <= PAGE`, the length of the mapping, which is page-aligned, so the
        // word is inside it and 4-byte aligned. It lives as long as `self`. An atomic is valid
        // for any bit pattern and may be shared with writers in other processes.
        unsafe { &*(self.map.as_ptr().add(off) as *const AtomicU32) }
    }

    /// The 64-bit word at the start of cache line `line` (taken modulo [`LINES`]).
    pub fn u64_at(&self, line: usize) -> &AtomicU64 {
        let off = (line % LINES) * LINE;
        // SAFETY: as in `u32_at`: inside the page-aligned mapping, 8-byte aligned, any bit
        // pattern valid, shareable across processes, living as long as `self`.
        unsafe { &*(self.map.as_ptr().add(off) as *const AtomicU64) }
    }
}
