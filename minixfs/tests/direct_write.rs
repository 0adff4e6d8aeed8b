//! Writes whose data goes to the device directly: `write_extents` allocates the zones and says
//! where they lie, the data is put there behind the file system's back (as RDISK copies from
//! a client's grant), `commit_write` sets the size. The file must then read back as written,
//! through the indirect and double-indirect zones, and `fsck.minix -f` must find no error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use minixfs::{
    BLOCK_SIZE, BlockDevice, DeviceError, FileSystem, FormatOptions, FsError, ROOT,
    device::check_range,
};
use std::cell::RefCell;
use std::rc::Rc;
use support::{TempImage, assert_fsck_clean, pattern};

/// A memory device the test can also write behind the file system's back; it counts the
/// blocks it was told to forget.
#[derive(Clone)]
struct Shared {
    bytes: Rc<RefCell<Vec<u8>>>,
    forgotten: Rc<RefCell<u64>>,
}

impl Shared {
    fn new(blocks: u64) -> Shared {
        Shared {
            bytes: Rc::new(RefCell::new(vec![0; blocks as usize * BLOCK_SIZE])),
            forgotten: Rc::new(RefCell::new(0)),
        }
    }

    /// Put `data` at byte `at` of the device, as a server copying straight to it would.
    fn put(&self, at: u64, data: &[u8]) {
        let at = at as usize;
        self.bytes.borrow_mut()[at..at + data.len()].copy_from_slice(data);
    }
}

impl BlockDevice for Shared {
    fn block_count(&self) -> u64 {
        (self.bytes.borrow().len() / BLOCK_SIZE) as u64
    }

    fn read_blocks(&mut self, first: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let at = check_range(first, buf.len(), self.block_count())? as usize;
        buf.copy_from_slice(&self.bytes.borrow()[at..at + buf.len()]);
        Ok(())
    }

    fn write_blocks(&mut self, first: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let at = check_range(first, buf.len(), self.block_count())? as usize;
        self.bytes.borrow_mut()[at..at + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }

    fn forget_copies(&mut self, _first: u64, count: u64) {
        *self.forgotten.borrow_mut() += count;
    }
}

/// Write `data` at `off` the direct way: whole blocks to the device behind the file system's
/// back, a last partial block through `write`, then commit. Returns the bytes written.
fn direct_write(fs: &mut FileSystem<Shared>, dev: &Shared, ino: u32, off: u64, data: &[u8]) -> u64 {
    let pieces = fs.write_extents(ino, off, data.len() as u64).unwrap();
    let mut done = 0u64;
    for p in &pieces {
        let at = (p.file_offset - off) as usize;
        dev.put(p.device_offset.unwrap(), &data[at..at + p.len as usize]);
        done += p.len;
    }
    let whole = data.len() as u64 / BLOCK_SIZE as u64 * BLOCK_SIZE as u64;
    if done == whole && whole < data.len() as u64 {
        done += fs.write(ino, off + whole, &data[whole as usize..]).unwrap() as u64;
    }
    fs.commit_write(ino, off + done).unwrap();
    done
}

fn read_all(fs: &mut FileSystem<Shared>, ino: u32) -> Vec<u8> {
    let size = fs.stat(ino).unwrap().size as usize;
    let mut out = vec![0u8; size];
    assert_eq!(fs.read(ino, 0, &mut out).unwrap(), size);
    out
}

#[test]
fn direct_writes_read_back_and_pass_fsck() {
    let dev = Shared::new(4096);
    let mut fs = FileSystem::format(dev.clone(), &FormatOptions::default()).unwrap();
    let ino = fs.create(ROOT, "f", 0o644).unwrap();
    let bs = BLOCK_SIZE as u64;
    let mut model = pattern(1, 0, 5000);
    // Cached, partly written blocks first: the direct write must win over them.
    assert_eq!(fs.write(ino, 0, &model).unwrap(), 5000);
    let over = pattern(2, 0, 3 * BLOCK_SIZE + 500);
    assert_eq!(
        direct_write(&mut fs, &dev, ino, bs, &over),
        over.len() as u64
    );
    model.resize(model.len().max(BLOCK_SIZE + over.len()), 0);
    model[BLOCK_SIZE..BLOCK_SIZE + over.len()].copy_from_slice(&over);
    assert_eq!(read_all(&mut fs, ino), model);
    assert!(*dev.forgotten.borrow() >= 3);

    // Past a hole, across the single-indirect zones into the double-indirect ones (7 direct
    // zones, 256 per indirect block).
    let far = 250 * bs;
    let big = pattern(3, 0, 100 * BLOCK_SIZE + 17);
    assert_eq!(
        direct_write(&mut fs, &dev, ino, far, &big),
        big.len() as u64
    );
    model.resize(far as usize, 0);
    model.extend_from_slice(&big);
    assert_eq!(read_all(&mut fs, ino), model);

    // Zones allocated for a copy that failed go back.
    let free = fs.info().free_blocks;
    let end = fs.stat(ino).unwrap().size;
    let pieces = fs
        .write_extents(ino, end.div_ceil(bs) * bs, 40 * bs)
        .unwrap();
    assert_eq!(pieces.iter().map(|p| p.len).sum::<u64>(), 40 * bs);
    assert!(fs.info().free_blocks < free);
    fs.abort_write(ino).unwrap();
    assert_eq!(fs.info().free_blocks, free);
    assert_eq!(read_all(&mut fs, ino), model);

    // Not at a block boundary: refused, nothing changed.
    assert!(matches!(
        fs.write_extents(ino, 5, 4096),
        Err(FsError::InvalidArgument(_))
    ));
    assert_eq!(read_all(&mut fs, ino), model);

    fs.sync().unwrap();
    let img = TempImage::with_bytes("direct", &dev.bytes.borrow());
    assert_fsck_clean(&img.path);
}

#[test]
fn a_full_disk_gives_the_blocks_that_fit() {
    let dev = Shared::new(300);
    let mut fs = FileSystem::format(dev.clone(), &FormatOptions::default()).unwrap();
    let ino = fs.create(ROOT, "f", 0o644).unwrap();
    let free = fs.info().free_blocks;
    let data = pattern(4, 0, (free as usize + 50) * BLOCK_SIZE);
    let wrote = direct_write(&mut fs, &dev, ino, 0, &data);
    assert!(wrote > 0 && wrote < data.len() as u64, "{wrote}");
    assert_eq!(read_all(&mut fs, ino), data[..wrote as usize]);
    let other = fs.create(ROOT, "g", 0o644).unwrap();
    assert!(matches!(
        fs.write_extents(other, 0, 4096),
        Err(FsError::NoSpace)
    ));
    fs.sync().unwrap();
    let img = TempImage::with_bytes("direct-full", &dev.bytes.borrow());
    assert_fsck_clean(&img.path);
}
