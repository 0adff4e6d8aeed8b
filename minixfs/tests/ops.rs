//! The semantics of each operation: results, errors (and their errno), link counts,
//! holes, space exhaustion, persistence. `fsck.minix -f` checks the images that end dirty.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use minixfs::{
    BLOCK_SIZE, BlockDevice, DeviceError, FileDevice, FileSystem, FormatOptions, FsError,
    MemDevice, ROOT,
};
use support::{TempImage, assert_fsck_clean};

fn fresh(blocks: u64) -> FileSystem<MemDevice> {
    FileSystem::format(MemDevice::new(blocks), &FormatOptions::default()).unwrap()
}

fn errno<T: std::fmt::Debug>(r: Result<T, FsError>) -> i32 {
    match r {
        Err(e) => e.errno(),
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
    }
}

/// Syncs a file system on a MemDevice into a temporary image and runs fsck on it.
fn fsck_mem(fs: FileSystem<MemDevice>) {
    let bytes = fs.into_device().unwrap().into_bytes();
    let img = TempImage::with_bytes("ops", &bytes);
    assert_fsck_clean(&img.path);
}

#[test]
fn errno_values() {
    let all = [
        (FsError::NotFound, 2),
        (FsError::Exists, 17),
        (FsError::NotDir, 20),
        (FsError::IsDir, 21),
        (FsError::NotEmpty, 39),
        (FsError::NameTooLong, 36),
        (FsError::NoSpace, 28),
        (FsError::NoInodes, 28),
        (FsError::FileTooBig, 27),
        (FsError::InvalidName, 22),
        (FsError::Busy, 16),
        (FsError::InvalidArgument("x"), 22),
        (FsError::Corrupt("x".into()), 5),
        (FsError::Device(DeviceError::Io("x".into())), 5),
    ];
    for (e, n) in all {
        assert_eq!(e.errno(), n, "{e:?}");
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn names_and_lookup() {
    let mut fs = fresh(1024);
    let a = fs.mkdir(ROOT, "a", 0o755).unwrap();
    let f = fs.create(a, "f", 0o644).unwrap();
    assert_eq!(fs.lookup("/").unwrap(), ROOT);
    assert_eq!(fs.lookup("/a/f").unwrap(), f);
    assert_eq!(fs.lookup("//a///f").unwrap(), f);
    assert_eq!(fs.lookup("/a/./f").unwrap(), f);
    assert_eq!(fs.lookup("/a/../a/f").unwrap(), f);
    assert_eq!(
        fs.lookup("/..").unwrap(),
        ROOT,
        "the root's parent is the root"
    );
    assert_eq!(fs.lookup_in(a, "..").unwrap(), ROOT);
    assert_eq!(errno(fs.lookup("a/f")), 22);
    assert_eq!(errno(fs.lookup("/a/g")), 2);
    assert_eq!(errno(fs.lookup("/a/f/x")), 20);
    assert_eq!(errno(fs.lookup_in(f, "x")), 20);
    assert_eq!(errno(fs.lookup_in(a, &"x".repeat(61))), 36);

    assert_eq!(errno(fs.create(a, "f", 0o644)), 17);
    assert_eq!(errno(fs.mkdir(a, "f", 0o755)), 17);
    assert_eq!(errno(fs.create(a, &"x".repeat(61), 0o644)), 36);
    for bad in ["", ".", "..", "a/b", "nul\0"] {
        assert_eq!(errno(fs.create(a, bad, 0o644)), 22, "{bad:?}");
        assert_eq!(errno(fs.mkdir(a, bad, 0o755)), 22, "{bad:?}");
    }
    assert_eq!(errno(fs.create(f, "x", 0o644)), 20);
    let sixty = "s".repeat(60);
    let s = fs.create(a, &sixty, 0o600).unwrap();
    assert_eq!(fs.lookup_in(a, &sixty).unwrap(), s);
    assert_eq!(errno(fs.stat(0)), 22);
    assert_eq!(errno(fs.stat(u32::MAX)), 22);
    // A file removed since is not found through its old inode number.
    fs.unlink(a, "f").unwrap();
    assert_eq!(errno(fs.stat(f)), 2);
    assert_eq!(errno(fs.read(f, 0, &mut [0u8; 4])), 2);
    fsck_mem(fs);
}

#[test]
fn create_mkdir_stat_readdir() {
    let mut fs = fresh(1024);
    let before = fs.info();
    let d = fs.mkdir(ROOT, "d", 0o750).unwrap();
    let f = fs.create(d, "f", 0o640).unwrap();
    let st = fs.stat(d).unwrap();
    assert!(st.is_dir() && !st.is_file());
    assert_eq!(
        (st.mode, st.nlinks, st.size),
        (0o040750, 2, 3 * 64),
        ". .. f"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    assert!(
        st.mtime.abs_diff(now) < 5 && st.ctime.abs_diff(now) < 5,
        "real time stamps"
    );
    let st = fs.stat(f).unwrap();
    assert!(st.is_file());
    assert_eq!((st.mode, st.nlinks, st.size, st.ino), (0o100640, 1, 0, f));
    assert_eq!(
        fs.stat(ROOT).unwrap().nlinks,
        3,
        "the root counts the new directory's .."
    );
    let after = fs.info();
    assert_eq!(before.free_inodes - after.free_inodes, 2);
    assert_eq!(
        before.free_blocks - after.free_blocks,
        1,
        "one zone for d's entries"
    );

    let list = fs.readdir(d, 0, 10).unwrap();
    let names: Vec<(&str, u32)> = list.iter().map(|e| (e.name.as_str(), e.ino)).collect();
    assert_eq!(names, [(".", d), ("..", ROOT), ("f", f)]);
    // Paging counts live entries only.
    for i in 0..30 {
        fs.create(d, &format!("n{i:02}"), 0o644).unwrap();
    }
    fs.unlink(d, "n05").unwrap();
    let all: Vec<String> = fs
        .readdir(d, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(all.len(), 2 + 1 + 29);
    let mut paged = Vec::new();
    let mut start = 0;
    loop {
        let page = fs.readdir(d, start, 7).unwrap();
        if page.is_empty() {
            break;
        }
        start += page.len();
        paged.extend(page.into_iter().map(|e| e.name));
    }
    assert_eq!(paged, all);
    assert!(fs.readdir(d, 0, 0).unwrap().is_empty());
    assert_eq!(errno(fs.readdir(f, 0, 10)), 20);
    // A freed slot is reused before the directory grows.
    let size = fs.stat(d).unwrap().size;
    fs.create(d, "reuse", 0o644).unwrap();
    assert_eq!(fs.stat(d).unwrap().size, size);
    fsck_mem(fs);
}

#[test]
fn large_directories_use_indirect_zones() {
    let mut fs = fresh(4096);
    let d = fs.mkdir(ROOT, "many", 0o755).unwrap();
    // 16 entries per block: 150 entries need 10 blocks, past the 7 direct zones.
    for i in 0..150 {
        fs.create(d, &format!("entry-{i:03}"), 0o644).unwrap();
    }
    assert_eq!(fs.stat(d).unwrap().size, 152 * 64);
    for i in (0..150).step_by(7) {
        fs.lookup_in(d, &format!("entry-{i:03}")).unwrap();
    }
    assert_eq!(fs.readdir(d, 0, usize::MAX).unwrap().len(), 152);
    for i in 0..150 {
        fs.unlink(d, &format!("entry-{i:03}")).unwrap();
    }
    fs.rmdir(ROOT, "many").unwrap();
    fsck_mem(fs);
}

#[test]
fn unlink_and_rmdir_rules() {
    let mut fs = fresh(1024);
    let d = fs.mkdir(ROOT, "d", 0o755).unwrap();
    fs.mkdir(d, "sub", 0o755).unwrap();
    let f = fs.create(d, "f", 0o644).unwrap();
    fs.write(f, 0, &[7u8; 20_000]).unwrap();
    assert_eq!(errno(fs.unlink(d, "sub")), 21);
    assert_eq!(errno(fs.unlink(d, "nope")), 2);
    assert_eq!(errno(fs.rmdir(d, "f")), 20);
    assert_eq!(errno(fs.rmdir(ROOT, "d")), 39);
    assert_eq!(errno(fs.rmdir(d, ".")), 16);
    assert_eq!(errno(fs.rmdir(d, "..")), 16);
    assert_eq!(errno(fs.rmdir(ROOT, "nope")), 2);
    let free = fs.info().free_blocks;
    fs.unlink(d, "f").unwrap();
    assert_eq!(
        fs.info().free_blocks - free,
        21,
        "20 data zones and the indirect block back"
    );
    assert_eq!(fs.stat(d).unwrap().nlinks, 3);
    fs.rmdir(d, "sub").unwrap();
    assert_eq!(fs.stat(d).unwrap().nlinks, 2);
    fs.rmdir(ROOT, "d").unwrap();
    assert_eq!(fs.stat(ROOT).unwrap().nlinks, 2);
    assert_eq!(fs.readdir(ROOT, 0, 10).unwrap().len(), 2);
    fsck_mem(fs);
}

#[test]
fn rename_rules() {
    let mut fs = fresh(1024);
    let a = fs.mkdir(ROOT, "a", 0o755).unwrap();
    let b = fs.mkdir(ROOT, "b", 0o755).unwrap();
    let sub = fs.mkdir(a, "sub", 0o755).unwrap();
    let f = fs.create(a, "f", 0o644).unwrap();
    fs.write(f, 0, b"contents").unwrap();
    let g = fs.create(b, "g", 0o644).unwrap();
    fs.write(g, 0, &[1u8; 5000]).unwrap();

    assert_eq!(errno(fs.rename(ROOT, "a", a, "x")), 16, "into itself");
    assert_eq!(
        errno(fs.rename(ROOT, "a", sub, "x")),
        16,
        "into its own subdirectory"
    );
    assert_eq!(errno(fs.rename(a, ".", b, "x")), 16);
    assert_eq!(errno(fs.rename(a, "f", b, "..")), 16);
    assert_eq!(errno(fs.rename(a, "nope", b, "x")), 2);
    assert_eq!(
        errno(fs.rename(a, "f", ROOT, "b")),
        21,
        "file over a directory"
    );
    assert_eq!(
        errno(fs.rename(a, "sub", b, "g")),
        20,
        "directory over a file"
    );
    assert_eq!(
        errno(fs.rename(ROOT, "b", ROOT, "a")),
        39,
        "over a non-empty directory"
    );
    assert_eq!(errno(fs.rename(a, "f", b, &"x".repeat(61))), 36);
    fs.rename(a, "f", a, "f").unwrap();

    // A file replaces another: the old one is freed.
    let free = fs.info().free_blocks;
    fs.rename(a, "f", b, "g").unwrap();
    assert_eq!(fs.lookup("/b/g").unwrap(), f);
    assert_eq!(errno(fs.lookup("/a/f")), 2);
    assert_eq!(errno(fs.stat(g)), 2);
    assert_eq!(fs.info().free_blocks - free, 5);
    // A directory moves: its ".." and both parents' link counts follow.
    fs.rename(a, "sub", b, "moved").unwrap();
    assert_eq!(fs.lookup("/b/moved/..").unwrap(), b);
    assert_eq!(fs.stat(a).unwrap().nlinks, 2);
    assert_eq!(fs.stat(b).unwrap().nlinks, 3);
    // A directory replaces an empty one.
    let empty = fs.mkdir(ROOT, "empty", 0o755).unwrap();
    fs.rename(b, "moved", ROOT, "empty").unwrap();
    assert_eq!(fs.lookup("/empty").unwrap(), sub);
    assert_eq!(errno(fs.stat(empty)), 2);
    assert_eq!(fs.stat(ROOT).unwrap().nlinks, 2 + 3, "a, b, empty");
    assert_eq!(fs.stat(b).unwrap().nlinks, 2);
    // Same directory, new name.
    fs.rename(ROOT, "empty", ROOT, "renamed").unwrap();
    assert_eq!(fs.lookup("/renamed/..").unwrap(), ROOT);
    assert_eq!(fs.stat(ROOT).unwrap().nlinks, 5);
    let mut buf = [0u8; 8];
    assert_eq!(fs.read(f, 0, &mut buf).unwrap(), 8);
    assert_eq!(&buf, b"contents");
    fsck_mem(fs);
}

/// An atomic replace, as FS's put does it: a file written under a temporary name in the same
/// directory, renamed over an existing file. The old file's inode and all its zones (direct,
/// indirect and double-indirect) go back to the free maps, and fsck agrees.
#[test]
fn rename_over_a_file_frees_the_old_inode_and_zones() {
    let mut fs = fresh(8192);
    let d = fs.mkdir(ROOT, "d", 0o755).unwrap();
    let before = fs.info();
    let old = fs.create(d, "precious", 0o644).unwrap();
    // Past the direct and single-indirect zones of 1 KiB blocks.
    let old_data: Vec<u8> = (0..600 * BLOCK_SIZE).map(|i| (i % 253) as u8).collect();
    fs.write(old, 0, &old_data).unwrap();
    let temp = fs.create(d, "\u{1}tmp", 0o644).unwrap();
    let new_data = vec![7u8; 3 * BLOCK_SIZE + 5];
    fs.write(temp, 0, &new_data).unwrap();
    let mid = fs.info();
    fs.rename(d, "\u{1}tmp", d, "precious").unwrap();
    assert_eq!(fs.lookup("/d/precious").unwrap(), temp);
    assert_eq!(errno(fs.lookup_in(d, "\u{1}tmp")), 2);
    assert_eq!(errno(fs.stat(old)), 2, "the old inode is free");
    let after = fs.info();
    assert_eq!(after.free_inodes, mid.free_inodes + 1);
    assert!(
        after.free_blocks >= mid.free_blocks + 600,
        "{after:?} vs {mid:?}"
    );
    let mut back = vec![0u8; new_data.len() + 10];
    assert_eq!(fs.read(temp, 0, &mut back).unwrap(), new_data.len());
    assert_eq!(&back[..new_data.len()], &new_data[..]);
    // With the new file removed too, the counts are those of before either existed.
    fs.unlink(d, "precious").unwrap();
    let end = fs.info();
    assert_eq!(
        (end.free_blocks, end.free_inodes),
        (before.free_blocks, before.free_inodes)
    );
    assert_eq!(fs.readdir(d, 0, 10).unwrap().len(), 2);
    fsck_mem(fs);
}

#[test]
fn holes_offsets_and_truncate() {
    let mut fs = fresh(2048);
    let f = fs.create(ROOT, "f", 0o644).unwrap();
    let free = fs.info().free_blocks;
    // A write far out leaves a hole: only the written blocks (and the indirect one) are used.
    assert_eq!(fs.write(f, 100_000, b"tail").unwrap(), 4);
    assert_eq!(fs.stat(f).unwrap().size, 100_004);
    assert_eq!(free - fs.info().free_blocks, 2);
    let mut buf = vec![0xffu8; 100_004];
    assert_eq!(fs.read(f, 0, &mut buf).unwrap(), 100_004);
    assert!(buf[..100_000].iter().all(|&b| b == 0));
    assert_eq!(&buf[100_000..], b"tail");
    assert_eq!(fs.read(f, 100_004, &mut buf).unwrap(), 0);
    assert_eq!(fs.read(f, 1 << 40, &mut buf).unwrap(), 0);
    assert_eq!(fs.read(f, 100_002, &mut buf).unwrap(), 2);
    assert_eq!(fs.write(f, 0, &[]).unwrap(), 0);

    // Shrink into a block, grow again: the cut-off bytes read as zeros.
    fs.write(f, 0, &[9u8; 3000]).unwrap();
    fs.truncate(f, 1500).unwrap();
    fs.truncate(f, 4000).unwrap();
    let mut buf = vec![0xffu8; 4000];
    assert_eq!(fs.read(f, 0, &mut buf).unwrap(), 4000);
    assert!(buf[..1500].iter().all(|&b| b == 9) && buf[1500..].iter().all(|&b| b == 0));
    assert_eq!(free - fs.info().free_blocks, 2, "blocks 0 and 1 only");
    fs.truncate(f, 0).unwrap();
    assert_eq!(fs.info().free_blocks, free);

    // Limits and kinds.
    let max = fs.info().max_file_size;
    assert_eq!(errno(fs.write(f, max, b"x")), 27);
    assert_eq!(errno(fs.write(f, u64::MAX, b"x")), 27);
    assert_eq!(errno(fs.truncate(f, max + 1)), 27);
    assert_eq!(errno(fs.read(ROOT, 0, &mut buf)), 21);
    assert_eq!(errno(fs.write(ROOT, 0, b"x")), 21);
    assert_eq!(errno(fs.truncate(ROOT, 0)), 21);
    fsck_mem(fs);
}

#[test]
fn running_out_of_space_and_inodes() {
    let mut fs =
        FileSystem::format(MemDevice::new(300), &FormatOptions { inodes: Some(16) }).unwrap();
    let f = fs.create(ROOT, "fill", 0o644).unwrap();
    let free = fs.info().free_blocks as usize;
    let data = vec![3u8; 400 * BLOCK_SIZE];
    // The first write fills the disk and says how much fit; the next one gets ENOSPC.
    let n = fs.write(f, 0, &data).unwrap();
    assert!(
        n > 0 && n < data.len() && n.is_multiple_of(BLOCK_SIZE),
        "short write of {n}"
    );
    // Past 263 blocks: the single and double indirect blocks and one leaf hold no data.
    assert_eq!(n / BLOCK_SIZE, free - 3, "every other zone holds data");
    assert_eq!(fs.info().free_blocks, 0);
    assert_eq!(errno(fs.write(f, n as u64, b"more")), 28);
    assert_eq!(errno(fs.mkdir(ROOT, "d", 0o755)), 28);
    assert_eq!(fs.stat(f).unwrap().size, n as u64);
    let mut back = vec![0u8; n];
    assert_eq!(fs.read(f, 0, &mut back).unwrap(), n);
    assert!(back.iter().all(|&b| b == 3));
    fs.truncate(f, 0).unwrap();
    // Inodes: 16, the root and "fill" use two.
    for i in 0..14 {
        fs.create(ROOT, &format!("i{i}"), 0o644).unwrap();
    }
    assert_eq!(errno(fs.create(ROOT, "one-too-many", 0o644)), 28);
    assert!(matches!(
        fs.create(ROOT, "one-too-many", 0o644),
        Err(FsError::NoInodes)
    ));
    assert_eq!(fs.info().free_inodes, 0);
    fsck_mem(fs);
}

#[test]
fn changes_persist_across_remount_and_small_caches() {
    let img = TempImage::mkfs("persist", 4096);
    let mut fs = FileSystem::mount(FileDevice::open(&img.path).unwrap())
        .unwrap()
        .with_cache_blocks(1);
    let d = fs.mkdir(ROOT, "d", 0o755).unwrap();
    for i in 0..40u8 {
        let f = fs.create(d, &format!("f{i}"), 0o644).unwrap();
        fs.write(
            f,
            u64::from(i) * 1000,
            &vec![i; 3000 + usize::from(i) * 100],
        )
        .unwrap();
    }
    let mut fs = FileSystem::mount(fs.into_device().unwrap()).unwrap();
    for i in 0..40u8 {
        let f = fs.lookup(&format!("/d/f{i}")).unwrap();
        let len = 3000 + usize::from(i) * 100;
        let mut buf = vec![0u8; len];
        assert_eq!(fs.read(f, u64::from(i) * 1000, &mut buf).unwrap(), len);
        assert!(buf.iter().all(|&b| b == i));
    }
    drop(fs);
    assert_fsck_clean(&img.path);
}

/// A device that fails every operation after a number of successful ones.
struct FailingDevice {
    inner: MemDevice,
    budget: u32,
}

impl FailingDevice {
    fn spend(&mut self) -> Result<(), DeviceError> {
        if self.budget == 0 {
            return Err(DeviceError::Io("injected failure".into()));
        }
        self.budget -= 1;
        Ok(())
    }
}

impl BlockDevice for FailingDevice {
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn read_blocks(&mut self, first: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.spend()?;
        self.inner.read_blocks(first, buf)
    }
    fn write_blocks(&mut self, first: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.spend()?;
        self.inner.write_blocks(first, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.spend()
    }
}

#[test]
fn device_errors_are_reported_not_panics() {
    let image = fresh(512).into_device().unwrap();
    for budget in 0..40 {
        let dev = FailingDevice {
            inner: image.clone(),
            budget,
        };
        let Ok(mut fs) = FileSystem::mount(dev).map(|fs| fs.with_cache_blocks(8)) else {
            continue;
        };
        let r = (|| {
            let d = fs.mkdir(ROOT, "d", 0o755)?;
            let f = fs.create(d, "f", 0o644)?;
            fs.write(f, 0, &[1u8; 40_000])?;
            fs.read(f, 0, &mut [0u8; 40_000])?;
            fs.sync()
        })();
        if let Err(e) = r {
            assert!(matches!(e, FsError::Device(_)), "budget {budget}: {e:?}");
            assert_eq!(e.errno(), 5);
        }
    }
    let mut dev = MemDevice::new(4);
    assert!(matches!(
        dev.read_blocks(3, &mut [0u8; 2 * BLOCK_SIZE]),
        Err(DeviceError::OutOfRange { .. })
    ));
    assert!(matches!(
        dev.write_blocks(u64::MAX, &[0u8; BLOCK_SIZE]),
        Err(DeviceError::OutOfRange { .. })
    ));
    assert!(matches!(
        dev.read_blocks(0, &mut [0u8; 100]),
        Err(DeviceError::Io(_))
    ));
}

/// A MemDevice the test can look at while a FileSystem uses it.
#[derive(Clone)]
struct SharedDevice(std::rc::Rc<std::cell::RefCell<MemDevice>>);

impl BlockDevice for SharedDevice {
    fn block_count(&self) -> u64 {
        self.0.borrow().block_count()
    }
    fn read_blocks(&mut self, first: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.0.borrow_mut().read_blocks(first, buf)
    }
    fn write_blocks(&mut self, first: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.0.borrow_mut().write_blocks(first, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
}

#[test]
fn extents_name_the_bytes_on_the_device() {
    let dev = SharedDevice(std::rc::Rc::new(std::cell::RefCell::new(MemDevice::new(
        2048,
    ))));
    let mut fs = FileSystem::format(dev.clone(), &FormatOptions::default()).unwrap();
    let f = fs.create(ROOT, "f", 0o644).unwrap();
    let head: Vec<u8> = (0..3000u32).map(|i| (i % 13) as u8 + 1).collect();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8 + 1).collect();
    fs.write(f, 0, &head).unwrap(); // partial blocks: still only in the cache
    fs.write(f, 20_000, &body).unwrap(); // crosses into the indirect zones
    let size = 320_000u64;
    let mut want = vec![0u8; size as usize];
    want[..3000].copy_from_slice(&head);
    want[20_000..].copy_from_slice(&body);

    for (off, len) in [
        (0, size),
        (1, 5000),
        (2999, 30_000),
        (7 * 1024, 300 * 1024),
        (size - 10, 100),
    ] {
        let pieces = fs.extents(f, off, len).unwrap();
        let end = size.min(off + len);
        let mut at = off;
        for p in &pieces {
            assert_eq!(p.file_offset, at, "pieces follow each other");
            assert!(p.len > 0);
            let expect = &want[at as usize..(at + p.len) as usize];
            match p.device_offset {
                None => assert!(expect.iter().all(|&b| b == 0), "a hole where data is"),
                Some(d) => {
                    let image = dev.0.borrow();
                    assert!(
                        &image.as_bytes()[d as usize..(d + p.len) as usize] == expect,
                        "bytes at {at}"
                    );
                }
            }
            at += p.len;
        }
        assert_eq!(at, end);
    }
    // Contiguous zones make few pieces: head, hole, then the body in a handful of runs.
    let all = fs.extents(f, 0, size).unwrap();
    assert!(all.len() < 12, "{all:?}");
    assert_eq!(all[1].device_offset, None);
    assert!(fs.extents(f, size, 10).unwrap().is_empty());
    assert!(fs.extents(f, 0, 0).unwrap().is_empty());
    assert_eq!(errno(fs.extents(ROOT, 0, 10)), 21);
}

#[test]
fn sparse_files_reach_the_triple_indirect_zones() {
    let mut fs = fresh(2048);
    let f = fs.create(ROOT, "sparse", 0o644).unwrap();
    let free = fs.info().free_blocks;
    let max = fs.info().max_file_size;
    // Past 7 + 256 + 65536 blocks the triple indirect block is used; the last byte of the
    // largest file too.
    let places = [100 << 20, 1 << 30, max - 1];
    for (i, &at) in places.iter().enumerate() {
        assert_eq!(fs.write(f, at, &[i as u8 + 1]).unwrap(), 1);
    }
    assert_eq!(fs.stat(f).unwrap().size, max);
    // The first byte: triple, double, single indirect and data (4 zones); the others lie under
    // other entries of the triple block: double, single and data each (3 + 3).
    assert_eq!(free - fs.info().free_blocks, 10);
    for (i, &at) in places.iter().enumerate() {
        let mut b = [0u8; 3];
        let n = fs.read(f, at - 1, &mut b).unwrap();
        assert_eq!(&b[..n], &[0, i as u8 + 1, 0][..n]);
    }
    let mut buf = vec![1u8; 4096];
    assert_eq!(fs.read(f, 50 << 20, &mut buf).unwrap(), 4096);
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(errno(fs.write(f, max, b"x")), 27);
    // fsck walks the triple indirect tree too.
    let bytes = fs.into_device().unwrap().into_bytes();
    let img = TempImage::with_bytes("sparse", &bytes);
    assert_fsck_clean(&img.path);
    let mut fs = FileSystem::mount(MemDevice::from_bytes(bytes)).unwrap();
    fs.truncate(f, (1 << 30) + 1).unwrap();
    fs.truncate(f, 0).unwrap();
    assert_eq!(fs.info().free_blocks, free);
    fsck_mem(fs);
}
