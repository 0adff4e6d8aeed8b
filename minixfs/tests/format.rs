//! Acceptance 2: an image made by our formatter passes `fsck.minix -f`, matches the layout
//! `mkfs.minix -3` chooses byte for byte (apart from times), and `fsck.minix -l` sees the
//! files we wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use minixfs::{BLOCK_SIZE, FileDevice, FileSystem, FormatOptions, FsError, MemDevice, ROOT};
use support::{TempImage, assert_fsck_clean, fsck};

/// Blocks of the boot block, superblock and bitmaps of an image (inode table excluded).
fn metadata_head(image: &[u8]) -> (u16, u16, u16) {
    let sb = &image[BLOCK_SIZE..BLOCK_SIZE + 32];
    let u16_at = |at: usize| u16::from_le_bytes([sb[at], sb[at + 1]]);
    (u16_at(6), u16_at(8), u16_at(10))
}

#[test]
fn same_layout_as_mkfs_minix() {
    for blocks in [
        64u64, 100, 360, 1440, 2048, 8191, 8192, 8193, 20_000, 65_536, 100_000,
    ] {
        let theirs = TempImage::mkfs("layout", blocks);
        let theirs = std::fs::read(&theirs.path).unwrap();
        let ours = FileSystem::format(MemDevice::new(blocks), &FormatOptions::default())
            .unwrap()
            .into_device()
            .unwrap()
            .into_bytes();
        assert_eq!(ours.len(), theirs.len());
        // Superblock fields, bit for bit.
        assert_eq!(
            &ours[BLOCK_SIZE..BLOCK_SIZE + 32],
            &theirs[BLOCK_SIZE..BLOCK_SIZE + 32],
            "superblock, {blocks} blocks"
        );
        // Both bitmaps, padding bits included.
        let (imap, zmap, first) = metadata_head(&theirs);
        let maps = 2 * BLOCK_SIZE..(2 + imap as usize + zmap as usize) * BLOCK_SIZE;
        assert!(
            ours[maps.clone()] == theirs[maps],
            "bitmaps, {blocks} blocks"
        );
        // Root inode: mode, links, uid, gid, size equal; zones equal; times are each tool's own.
        let root = (2 + imap as usize + zmap as usize) * BLOCK_SIZE;
        assert_eq!(
            &ours[root..root + 12],
            &theirs[root..root + 12],
            "root inode head, {blocks} blocks"
        );
        assert_eq!(
            &ours[root + 24..root + 64],
            &theirs[root + 24..root + 64],
            "root inode zones, {blocks} blocks"
        );
        // Root directory block.
        let dir = first as usize * BLOCK_SIZE;
        assert_eq!(
            &ours[dir..dir + BLOCK_SIZE],
            &theirs[dir..dir + BLOCK_SIZE],
            "root directory, {blocks} blocks"
        );
    }
}

#[test]
fn own_format_passes_fsck_and_fsck_lists_our_files() {
    let img = TempImage::zeroed("own", 4096);
    let mut fs = FileSystem::format(
        FileDevice::open(&img.path).unwrap(),
        &FormatOptions::default(),
    )
    .unwrap();
    let docs = fs.mkdir(ROOT, "docs", 0o755).unwrap();
    let sub = fs.mkdir(docs, "sub", 0o700).unwrap();
    let f = fs.create(docs, "readme.txt", 0o644).unwrap();
    fs.write(f, 0, b"hello, minix\n").unwrap();
    let big = fs.create(sub, "big.bin", 0o600).unwrap();
    fs.write(big, 0, &vec![0x5au8; 300 * 1024]).unwrap();
    fs.create(ROOT, "empty", 0o644).unwrap();
    fs.into_device().unwrap();

    assert_fsck_clean(&img.path);
    let (code, text) = fsck(&img.path, &["-l", "-v"]);
    assert_eq!(code, 0, "{text}");
    for path in [
        "/docs:",
        "/docs/sub:",
        "/docs/readme.txt",
        "/docs/sub/big.bin",
        "/empty",
    ] {
        assert!(
            text.lines().any(|l| l.ends_with(path)),
            "fsck.minix -l does not list {path}:\n{text}"
        );
    }
    // fsck's own count: 3 regular files, 3 directories (root included).
    assert!(text.contains("     3 regular files"), "{text}");
    assert!(text.contains("     3 directories"), "{text}");
}

#[test]
fn format_options_and_info() {
    let fs =
        FileSystem::format(MemDevice::new(2048), &FormatOptions { inodes: Some(100) }).unwrap();
    let info = fs.info();
    assert_eq!(info.inodes, 112, "rounded up to whole inode blocks");
    assert_eq!(info.free_inodes, 111);
    assert_eq!(info.blocks, 2048);
    assert_eq!(info.max_file_size, 0x7fff_ffff);
    assert_eq!(info.name_len, 60);
    assert!(matches!(
        FileSystem::format(MemDevice::new(3), &FormatOptions::default()),
        Err(FsError::InvalidArgument(_))
    ));
}

#[test]
fn mkfs_image_mounts_with_its_numbers() {
    let img = TempImage::mkfs("numbers", 2048);
    let mut fs = FileSystem::mount(FileDevice::open(&img.path).unwrap()).unwrap();
    let info = fs.info();
    assert_eq!(
        (info.inodes, info.free_inodes, info.blocks),
        (688, 687, 2048)
    );
    assert_eq!(info.free_blocks, 2048 - 47 - 1);
    let root = fs.stat(ROOT).unwrap();
    assert!(root.is_dir() && root.nlinks == 2 && root.size == 128);
    let names: Vec<String> = fs
        .readdir(ROOT, 0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [".", ".."]);
}
