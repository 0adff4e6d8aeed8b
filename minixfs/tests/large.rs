//! Acceptance 3: a 64 MiB file (direct, single and double indirect zones) written and read
//! back on an image made by `mkfs.minix -3`; fsck clean after writing, shrinking and removing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use minixfs::{FileDevice, FileSystem, ROOT};
use support::{TempImage, assert_fsck_clean, pattern};

const MIB: usize = 1 << 20;

#[test]
fn file_of_64_mib_round_trips() {
    let img = TempImage::mkfs("large", 70 * 1024);
    let mut fs = FileSystem::mount(FileDevice::open(&img.path).unwrap()).unwrap();
    let free_before = fs.info().free_blocks;
    let f = fs.create(ROOT, "big.bin", 0o644).unwrap();
    for chunk in 0..64u64 {
        let data = pattern(9, chunk * MIB as u64, MIB);
        assert_eq!(fs.write(f, chunk * MIB as u64, &data).unwrap(), MIB);
    }
    assert_eq!(fs.stat(f).unwrap().size, 64 * MIB as u64);
    // 65536 data zones, the single indirect block, the double indirect block and the 255
    // leaves under it that the last 65536 - 263 blocks need.
    assert_eq!(free_before - fs.info().free_blocks, 65_536 + 1 + 1 + 255);
    fs.sync().unwrap();
    assert_fsck_clean(&img.path);

    // Read it back after a remount with a small cache, so data comes from the image.
    let mut fs = FileSystem::mount(fs.into_device().unwrap())
        .unwrap()
        .with_cache_blocks(64);
    let f = fs.lookup("/big.bin").unwrap();
    let mut buf = vec![0u8; 4 * MIB];
    for chunk in 0..16u64 {
        let off = chunk * 4 * MIB as u64;
        assert_eq!(fs.read(f, off, &mut buf).unwrap(), 4 * MIB);
        assert!(buf == pattern(9, off, 4 * MIB), "bytes at {off}");
    }
    // Ranges across the ends of the direct zones, the single indirect block, one double
    // indirect leaf, and the end of the file.
    for (off, len) in [
        (7 * 1024 - 5, 10),
        (263 * 1024 - 100, 300),
        (519 * 1024 - 1, 2),
        (64 * MIB as u64 - 7, 100),
    ] {
        let mut b = vec![0u8; len];
        let n = fs.read(f, off, &mut b).unwrap();
        let want = (64 * MIB as u64 - off).min(len as u64) as usize;
        assert_eq!(n, want);
        assert!(b[..n] == pattern(9, off, n)[..], "bytes at {off}");
    }

    // Shrink into the single indirect range, then remove: every zone comes back.
    fs.truncate(f, 100 * 1024 + 3).unwrap();
    let mut tail = [1u8; 10];
    assert_eq!(fs.read(f, 100 * 1024 - 7, &mut tail).unwrap(), 10);
    assert!(tail == pattern(9, 100 * 1024 - 7, 10)[..]);
    fs.sync().unwrap();
    assert_fsck_clean(&img.path);
    fs.unlink(ROOT, "big.bin").unwrap();
    assert_eq!(fs.info().free_blocks, free_before);
    fs.into_device().unwrap();
    assert_fsck_clean(&img.path);
}
