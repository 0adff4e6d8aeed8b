//! The formatter: the same layout `mkfs.minix -3` from util-linux chooses for a device.
//!
//! Block 0 is the (empty) boot block, block 1 the superblock, then the inode bitmap, the zone
//! bitmap, the inode table and the data zones. Inode 1 is the root directory, with "." and
//! ".." in the first data zone.

use crate::bitmap::Bitmap;
use crate::device::BlockDevice;
use crate::dir::{DIR_ENTRY_SIZE, encode_entry};
use crate::error::FsError;
use crate::inode::{INODE_SIZE, INODES_PER_BLOCK, Inode, S_IFDIR, inode_position};
use crate::superblock::{BITS_PER_BLOCK, MAX_SIZE_V3, SUPERBLOCK_BLOCK, Superblock};
use crate::{BLOCK_SIZE, ROOT};

/// Options of [`FileSystem::format`](crate::FileSystem::format).
#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    /// Number of inodes; by default what util-linux picks (a third of the blocks for devices
    /// up to 512 Mi blocks), rounded up to fill whole inode blocks.
    pub inodes: Option<u32>,
}

/// The superblock `mkfs.minix -3` would write for a device of `blocks` blocks.
pub fn layout(blocks: u64, opts: &FormatOptions) -> Result<Superblock, FsError> {
    // Zone numbers are 32-bit; a larger device is formatted over its first 2^32-1 blocks.
    let zones = blocks.min(u64::from(u32::MAX));
    let wanted = match opts.inodes {
        Some(0) => {
            return Err(FsError::InvalidArgument(
                "a file system needs at least one inode",
            ));
        }
        Some(n) => u64::from(n),
        None if zones > 2048 * 1024 => zones / 16,
        None if zones > 512 * 1024 => zones / 8,
        None => (zones / 3).max(1),
    };
    let per_block = INODES_PER_BLOCK as u64;
    let ninodes = wanted.div_ceil(per_block) * per_block;
    let imap_blocks = (ninodes + 1).div_ceil(BITS_PER_BLOCK);
    let inode_blocks = ninodes / per_block;
    // The zone bitmap covers the data zones, whose number depends on its own size.
    let mut zmap_blocks = 1u64;
    loop {
        let first = 2 + imap_blocks + zmap_blocks + inode_blocks;
        let need = zones
            .saturating_sub(first)
            .saturating_add(1)
            .div_ceil(BITS_PER_BLOCK)
            .max(1);
        if need <= zmap_blocks {
            break;
        }
        zmap_blocks = need;
    }
    let first_data_zone = 2 + imap_blocks + zmap_blocks + inode_blocks;
    if first_data_zone >= zones {
        return Err(FsError::InvalidArgument(
            "device too small for the inode table and one data zone",
        ));
    }
    let (Ok(ninodes), Ok(imap_blocks), Ok(zmap_blocks), Ok(first_data_zone), Ok(zones)) = (
        u32::try_from(ninodes),
        u16::try_from(imap_blocks),
        u16::try_from(zmap_blocks),
        u16::try_from(first_data_zone),
        u32::try_from(zones),
    ) else {
        return Err(FsError::InvalidArgument(
            "too many inodes: the metadata must end below block 65536",
        ));
    };
    let sb = Superblock {
        ninodes,
        imap_blocks,
        zmap_blocks,
        first_data_zone,
        log_zone_size: 0,
        max_size: MAX_SIZE_V3,
        zones,
    };
    sb.validate(blocks)?;
    Ok(sb)
}

/// Writes a fresh file system with layout `sb` on `dev`: zeroed metadata, superblock,
/// bitmaps, and the root directory (mode 040755, times `now`).
pub fn write_fresh<D: BlockDevice>(dev: &mut D, sb: &Superblock, now: u32) -> Result<(), FsError> {
    // Zero the boot block, superblock, bitmaps and inode table in large runs.
    let metadata_blocks = u64::from(sb.first_data_zone);
    let chunk = vec![0u8; 256 * BLOCK_SIZE];
    let mut b = 0;
    while b < metadata_blocks {
        let n = (metadata_blocks - b).min(256) as usize;
        dev.write_blocks(b, &chunk[..n * BLOCK_SIZE])?;
        b += n as u64;
    }

    let mut block = vec![0u8; BLOCK_SIZE];
    sb.encode(&mut block);
    dev.write_blocks(SUPERBLOCK_BLOCK, &block)?;

    let mut imap = Bitmap::fresh(
        sb.imap_start(),
        usize::from(sb.imap_blocks),
        u64::from(sb.ninodes) + 1,
    );
    let mut zmap = Bitmap::fresh(
        sb.zmap_start(),
        usize::from(sb.zmap_blocks),
        sb.data_zones() + 1,
    );
    let root_bit = imap.alloc();
    let root_zone_bit = zmap.alloc();
    if root_bit != Some(u64::from(ROOT)) || root_zone_bit != Some(1) {
        return Err(FsError::InvalidArgument(
            "fresh bitmaps did not start empty",
        ));
    }
    imap.write_back(dev)?;
    zmap.write_back(dev)?;

    let root_zone = u32::from(sb.first_data_zone);
    let mut root = Inode::new(S_IFDIR, 0o755, now);
    root.nlinks = 2;
    root.size = 2 * DIR_ENTRY_SIZE as u32;
    root.zones[0] = root_zone;
    let (iblock, at) = inode_position(sb.inode_table_start(), ROOT);
    block.fill(0);
    let mut raw = [0u8; INODE_SIZE];
    root.encode(&mut raw);
    block[at..at + INODE_SIZE].copy_from_slice(&raw);
    dev.write_blocks(iblock, &block)?;

    block.fill(0);
    encode_entry(&mut block[..DIR_ENTRY_SIZE], ROOT, b".");
    encode_entry(&mut block[DIR_ENTRY_SIZE..2 * DIR_ENTRY_SIZE], ROOT, b"..");
    dev.write_blocks(u64::from(root_zone), &block)?;
    dev.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_mkfs_for_2048_blocks() {
        // `mkfs.minix -3` on 2048 blocks: 688 inodes, firstdatazone 47.
        let sb = layout(2048, &FormatOptions::default()).unwrap();
        assert_eq!(
            (
                sb.ninodes,
                sb.imap_blocks,
                sb.zmap_blocks,
                sb.first_data_zone
            ),
            (688, 1, 1, 47)
        );
        assert_eq!(sb.zones, 2048);
    }

    #[test]
    fn tiny_devices_are_refused() {
        assert!(matches!(
            layout(4, &FormatOptions::default()),
            Err(FsError::InvalidArgument(_))
        ));
        assert!(matches!(
            layout(100, &FormatOptions { inodes: Some(0) }),
            Err(FsError::InvalidArgument(_))
        ));
        assert!(matches!(
            layout(
                100_000,
                &FormatOptions {
                    inodes: Some(u32::MAX)
                }
            ),
            Err(FsError::InvalidArgument(_))
        ));
    }
}
