//! A directory of 100 000 entries (6.4 MB: double indirect zones) on an image made by
//! `mkfs.minix -3 -i 110000`: every create costs the same number of device reads however large
//! the directory already is (the directory index answers; no scan), every name is found, a
//! listing read page by page returns each entry once, removing and re-creating reuses the
//! freed slots, and `fsck.minix -f` is clean.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;

use minixfs::{BlockDevice, DeviceError, FileDevice, FileSystem, ROOT};
use support::{TempImage, assert_fsck_clean};

/// A device that counts the read calls made to it.
struct Counting {
    dev: FileDevice,
    reads: u64,
}

impl BlockDevice for Counting {
    fn block_count(&self) -> u64 {
        self.dev.block_count()
    }
    fn read_blocks(&mut self, first: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.reads += 1;
        self.dev.read_blocks(first, buf)
    }
    fn write_blocks(&mut self, first: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.dev.write_blocks(first, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.dev.flush()
    }
}

const FILES: u32 = 100_000;
const WINDOW: u32 = 10_000;

fn name(k: u32) -> String {
    format!("file-{k:06}")
}

#[test]
fn directory_of_100_000_entries() {
    let img = TempImage::mkfs_with("bigdir", 40 * 1024, &["-i", "110000"]);
    let dev = Counting {
        dev: FileDevice::open(&img.path).unwrap(),
        reads: 0,
    };
    let mut fs = FileSystem::mount(dev).unwrap();
    let d = fs.mkdir(ROOT, "big", 0o755).unwrap();
    // Device reads per window of creates: the first and the last must cost alike.
    let mut per_window = Vec::new();
    for w in 0..FILES / WINDOW {
        let before = fs_reads(&mut fs);
        for k in w * WINDOW..(w + 1) * WINDOW {
            fs.create(d, &name(k), 0o644).unwrap();
        }
        per_window.push(fs_reads(&mut fs) - before);
    }
    eprintln!("device reads per {WINDOW} creates: {per_window:?}");
    let first = per_window[0];
    let last = *per_window.last().unwrap();
    assert!(
        last <= first * 2 + 16,
        "creates got dearer as the directory grew: {per_window:?}"
    );
    assert!(last < u64::from(WINDOW), "{per_window:?}");
    // Without an index (a budget of 0) each create scans the 6 000-block directory through
    // the 4 096-block cache: a few creates then read more than all the indexed ones did.
    let mut fs = fs.with_dir_index_bytes(0);
    let before = fs_reads(&mut fs);
    for k in 0..4 {
        fs.create(d, &format!("unindexed-{k}"), 0o644).unwrap();
    }
    let unindexed = fs_reads(&mut fs) - before;
    eprintln!("device reads for 4 creates without an index: {unindexed}");
    assert!(unindexed > last, "{unindexed} vs {last}");
    for k in 0..4 {
        fs.unlink(d, &format!("unindexed-{k}")).unwrap();
    }
    let mut fs = fs.with_dir_index_bytes(32 << 20);
    // Four slots more, free again.
    let slots = u64::from(FILES + 2 + 4);
    assert_eq!(fs.stat(d).unwrap().size, slots * 64);

    // Lookups of every name, then a listing page by page.
    for k in (0..FILES).step_by(7) {
        fs.lookup_in(d, &name(k)).unwrap();
    }
    let listed = list_paged(&mut fs, d, 1000);
    assert_eq!(listed.len(), FILES as usize + 2);
    let unique: HashSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "an entry listed twice");

    // Freed slots are reused before the directory grows.
    for k in (0..FILES).step_by(1000) {
        fs.unlink(d, &name(k)).unwrap();
    }
    for k in 0..FILES / 1000 {
        fs.create(d, &format!("again-{k}"), 0o644).unwrap();
    }
    assert_eq!(fs.stat(d).unwrap().size, slots * 64, "freed slots reused");
    fs.check_dir_indexes().unwrap();
    fs.into_device().unwrap();
    assert_fsck_clean(&img.path);

    // After a remount (no index yet), the same entries.
    let mut fs = FileSystem::mount(FileDevice::open(&img.path).unwrap()).unwrap();
    let d = fs.lookup("/big").unwrap();
    assert!(fs.lookup_in(d, &name(0)).is_err());
    fs.lookup_in(d, &name(FILES - 1)).unwrap();
    fs.lookup_in(d, "again-7").unwrap();
    assert_eq!(list_paged(&mut fs, d, 4096).len(), FILES as usize + 2);
}

fn fs_reads(fs: &mut FileSystem<Counting>) -> u64 {
    // The device is the file system's; a sync leaves the count alone (it only writes).
    fs.sync().unwrap();
    device_reads(fs)
}

fn device_reads(fs: &FileSystem<Counting>) -> u64 {
    fs.device().reads
}

fn list_paged(fs: &mut FileSystem<impl BlockDevice>, d: u32, page: usize) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        let batch = fs.readdir(d, names.len(), page).unwrap();
        let last = batch.len() < page;
        names.extend(batch.into_iter().map(|e| e.name));
        if last {
            return names;
        }
    }
}
