//! `minixfs_image`: arbitrary bytes as a MINIX v3 image, mounted, then looked through and
//! changed.
//!
//! The input (cut to whole 1 KiB blocks, at most [`MAX_IMAGE`]) is the device. A mount must
//! succeed or fail with an error; a mounted image is walked (every directory listed, every
//! entry stat'ed, files read at their start and end and their extents mapped, paths looked up),
//! then changed (a directory and a file made, written, truncated, renamed, removed) and synced.
//! Every call must return a value or an error, never panic or hang, and a bounded walk must
//! stay bounded whatever the image claims (sizes, link counts, directory lengths).
//!
//! Seeds (`fuzz/corpus/minixfs_image/`) are small valid images from `mkfs.minix -3` and from
//! our formatter, some with files in them; `seeds::minixfs_images` rebuilds them.

use minixfs::{BLOCK_SIZE, FileSystem, Ino, MemDevice, ROOT};

/// Largest image a run mounts: 1 MiB (1024 blocks).
pub const MAX_IMAGE: usize = 1 << 20;
/// Most inodes the walk visits.
const MAX_VISITS: usize = 64;
/// Deepest directory the walk enters.
const MAX_DEPTH: usize = 6;
/// Bytes read at each end of a file.
const READ: usize = 8 * BLOCK_SIZE;

/// Run one input.
pub fn run(data: &[u8]) {
    let image = data[..data.len().min(MAX_IMAGE)].to_vec();
    let Ok(fs) = FileSystem::mount(MemDevice::from_bytes(image)) else {
        return;
    };
    // A small cache, so that eviction and write-back run too.
    let mut fs = fs.with_cache_blocks(8);
    let _ = fs.info();
    let mut visits = 0;
    walk(&mut fs, ROOT, 0, &mut visits);
    for path in [
        "/",
        "/a",
        "/a/b",
        "/..",
        "/./a/../a",
        "//x",
        "/a/b/c/d/e/f/g",
    ] {
        if let Ok(ino) = fs.lookup(path) {
            let _ = fs.stat(ino);
        }
    }
    change(&mut fs);
    let _ = fs.sync();
    let _ = fs.into_device();
}

/// List `dir`, stat and read what it holds, and enter its subdirectories (bounded).
fn walk(fs: &mut FileSystem<MemDevice>, dir: Ino, depth: usize, visits: &mut usize) {
    let Ok(entries) = fs.readdir(dir, 0, MAX_VISITS) else {
        return;
    };
    for e in entries {
        if *visits >= MAX_VISITS {
            return;
        }
        *visits += 1;
        if e.name == "." || e.name == ".." {
            continue;
        }
        let _ = fs.lookup_in(dir, &e.name);
        let Ok(st) = fs.stat(e.ino) else { continue };
        if st.is_dir() {
            if depth < MAX_DEPTH {
                walk(fs, e.ino, depth + 1, visits);
            }
        } else {
            let mut buf = vec![0u8; READ];
            let _ = fs.read(e.ino, 0, &mut buf);
            let _ = fs.read(e.ino, st.size.saturating_sub(READ as u64 / 2), &mut buf);
            let _ = fs.read(e.ino, u64::MAX - 1, &mut buf);
            let _ = fs.extents(e.ino, 0, 1 << 20);
        }
    }
}

/// Make, write, rename and remove things; each step may fail on a damaged image.
fn change(fs: &mut FileSystem<MemDevice>) {
    let _ = fs.mkdir(ROOT, "fz-dir", 0o755);
    let Ok(dir) = fs.lookup("/fz-dir") else {
        return;
    };
    let Ok(f) = fs.create(dir, "fz-file", 0o644) else {
        return;
    };
    let data = vec![0x3cu8; 3 * BLOCK_SIZE + 100];
    let _ = fs.write(f, 0, &data);
    let _ = fs.write(f, 12 * BLOCK_SIZE as u64, &data);
    let _ = fs.truncate(f, BLOCK_SIZE as u64 + 7);
    let mut back = vec![0u8; 2 * BLOCK_SIZE];
    let _ = fs.read(f, 0, &mut back);
    let _ = fs.rename(dir, "fz-file", ROOT, "fz-moved");
    let _ = fs.unlink(ROOT, "fz-moved");
    let _ = fs.rmdir(ROOT, "fz-dir");
    // Whatever the image held: remove the first few entries of the root.
    if let Ok(entries) = fs.readdir(ROOT, 2, 4) {
        for e in entries {
            if fs.unlink(ROOT, &e.name).is_err() {
                let _ = fs.rmdir(ROOT, &e.name);
            }
        }
    }
}
