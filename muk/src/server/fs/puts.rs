//! Atomic puts: the temporary files of puts under way, who writes each, and their end.
//!
//! A put writes a temporary file in its target's directory, named [`PUT_TEMP_PREFIX`] and a
//! number (a name no request can hold), and renames it over the target when the last chunk is
//! in: the target is either the old file or the whole new one, never a mix. A put that fails
//! removes its temporary. So does a writer that goes away mid-put: FS knows each temporary's
//! writer endpoint and, while puts are under way, asks the fabric at least every
//! [`PUT_REAP_MS`](crate::storage::fs::PUT_REAP_MS) whether it is still bound
//! (`wait4unbind` without waiting: a slot whose process died is freed by the check). A
//! polled check is simple and robust: it needs nothing from the writer, and a writer killed
//! by SIGKILL is seen as surely as one that unbinds. Temporaries an FS left behind when it
//! stopped mid-put are removed at the next mount ([`Puts::sweep`]).

use super::Mounted;
use crate::storage::fs::{FILE_MODE, MAX_PUTS, MAX_PUTS_PER_WRITER, fs_errno};
use crate::storage::path::{PUT_TEMP_PREFIX, is_put_temp, split_parent};
use m3ipc::{Endpoint, Errno, Result};
use minixfs::{FsError, Ino};
use std::collections::HashSet;

/// Entries read from a directory at a time by the sweep.
const SWEEP_BATCH: usize = 256;

/// One put under way.
#[derive(Debug)]
struct Put {
    /// The temporary file (the put's handle).
    ino: Ino,
    /// The directory of the temporary and the target.
    dir: Ino,
    /// The temporary's name in it.
    temp: String,
    /// The target's name in it.
    target: String,
    /// The writer.
    owner: Endpoint,
}

/// The puts under way on one mounted file system.
#[derive(Debug, Default)]
pub(super) struct Puts {
    open: Vec<Put>,
    /// The number of the next temporary's name.
    next: u64,
}

impl Puts {
    /// Whether no put is under way.
    pub(super) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Begin a put of `path` for `owner`: create its temporary. Returns the handle.
    pub(super) fn begin(
        &mut self,
        fs: &mut Mounted<'_, '_>,
        path: &str,
        owner: Endpoint,
    ) -> Result<Ino> {
        let (parent, name) = split_parent(path);
        if name.is_empty() || name == "." || name == ".." {
            return Err(Errno::EDVSINVAL);
        }
        let dir = fs.lookup(parent).map_err(|e| fs_errno(&e))?;
        match fs.lookup_in(dir, name) {
            Ok(ino) if fs.stat(ino).map_err(|e| fs_errno(&e))?.is_dir() => {
                return Err(Errno::EDVSISDIR);
            }
            Ok(_) | Err(FsError::NotFound) => {}
            Err(e) => return Err(fs_errno(&e)),
        }
        let own = self.open.iter().filter(|p| p.owner == owner).count();
        if self.open.len() >= MAX_PUTS || own >= MAX_PUTS_PER_WRITER {
            return Err(Errno::EDVSAGAIN);
        }
        // A name taken (by a temporary the sweep could not remove) is skipped; bounded.
        for _ in 0..16 {
            let temp = format!("{PUT_TEMP_PREFIX}{:x}", self.next);
            self.next += 1;
            match fs.create(dir, &temp, FILE_MODE) {
                Ok(ino) => {
                    self.open.push(Put {
                        ino,
                        dir,
                        temp,
                        target: name.to_string(),
                        owner,
                    });
                    return Ok(ino);
                }
                Err(FsError::Exists) => continue,
                Err(e) => return Err(fs_errno(&e)),
            }
        }
        Err(Errno::EDVSIO)
    }

    /// The index of `owner`'s put with handle `ino` (`EDVSBADVALUE`: none).
    fn find(&self, ino: Ino, owner: Endpoint) -> Result<usize> {
        self.open
            .iter()
            .position(|p| p.ino == ino && p.owner == owner)
            .ok_or(Errno::EDVSBADVALUE)
    }

    /// Check that `ino` is the handle of a put of `owner`.
    pub(super) fn check(&self, ino: Ino, owner: Endpoint) -> Result<()> {
        self.find(ino, owner).map(drop)
    }

    /// Finish `owner`'s put `ino`: rename its temporary over the target. On failure the
    /// temporary is removed. Returns the file's inode.
    pub(super) fn commit(
        &mut self,
        fs: &mut Mounted<'_, '_>,
        ino: Ino,
        owner: Endpoint,
    ) -> Result<Ino> {
        let put = self.open.swap_remove(self.find(ino, owner)?);
        match fs.rename(put.dir, &put.temp, put.dir, &put.target) {
            Ok(()) => Ok(put.ino),
            Err(e) => {
                let _ = fs.unlink(put.dir, &put.temp);
                Err(fs_errno(&e))
            }
        }
    }

    /// Abandon `owner`'s put `ino`: remove its temporary.
    pub(super) fn abort(
        &mut self,
        fs: &mut Mounted<'_, '_>,
        ino: Ino,
        owner: Endpoint,
    ) -> Result<()> {
        let put = self.open.swap_remove(self.find(ino, owner)?);
        fs.unlink(put.dir, &put.temp).map_err(|e| fs_errno(&e))
    }

    /// Remove the temporaries of writers `gone` says are gone. Returns how many.
    pub(super) fn reap(
        &mut self,
        fs: &mut Mounted<'_, '_>,
        mut gone: impl FnMut(Endpoint) -> bool,
    ) -> usize {
        let mut removed = 0;
        let mut i = 0;
        while i < self.open.len() {
            if gone(self.open[i].owner) {
                let put = self.open.swap_remove(i);
                if let Err(e) = fs.unlink(put.dir, &put.temp) {
                    crate::diag!("fs: cannot remove the temporary of an abandoned put: {e}");
                }
                removed += 1;
            } else {
                i += 1;
            }
        }
        removed
    }

    /// Remove every put temporary in the file system (at mount: none is under way), walking
    /// the whole directory tree. Returns how many were removed; errors are reported and the
    /// walk goes on (a sweep never stops a mount).
    pub(super) fn sweep(fs: &mut Mounted<'_, '_>) -> usize {
        let mut removed = 0;
        let mut seen = HashSet::new();
        let mut dirs = vec![minixfs::ROOT];
        // Bounded: each directory is visited once, and there are finitely many inodes.
        while let Some(dir) = dirs.pop() {
            if !seen.insert(dir) {
                continue;
            }
            let mut temps = Vec::new();
            let mut start = 0;
            loop {
                let batch = match fs.readdir(dir, start, SWEEP_BATCH) {
                    Ok(b) => b,
                    Err(e) => {
                        crate::diag!("fs: cannot read directory {dir} for put temporaries: {e}");
                        break;
                    }
                };
                start += batch.len();
                let last = batch.len() < SWEEP_BATCH;
                for e in batch {
                    if is_put_temp(&e.name) {
                        temps.push(e.name);
                    } else if e.name != "."
                        && e.name != ".."
                        && fs.stat(e.ino).is_ok_and(|s| s.is_dir())
                    {
                        dirs.push(e.ino);
                    }
                }
                if last {
                    break;
                }
            }
            for t in temps {
                match fs.unlink(dir, &t) {
                    Ok(()) => removed += 1,
                    Err(e) => crate::diag!("fs: cannot remove put temporary {t:?}: {e}"),
                }
            }
        }
        removed
    }
}
