//! The MINIX v3 superblock: 1024 bytes into the device (block 1), little-endian.
//!
//! | offset | field            | v3 value from `mkfs.minix -3`       |
//! |-------:|------------------|-------------------------------------|
//! |      0 | s_ninodes (u32)  | number of inodes                    |
//! |      6 | s_imap_blocks    | inode bitmap blocks (u16)           |
//! |      8 | s_zmap_blocks    | zone bitmap blocks (u16)            |
//! |     10 | s_firstdatazone  | first data zone (u16)               |
//! |     12 | s_log_zone_size  | 0: a zone is one block (u16)        |
//! |     16 | s_max_size (u32) | 0x7fffffff                          |
//! |     20 | s_zones (u32)    | zones (= blocks) of the file system |
//! |     24 | s_magic (u16)    | 0x4d5a                              |
//! |     28 | s_blocksize      | 1024 (u16)                          |
//! |     30 | s_disk_version   | 0 (u8)                              |
//!
//! v3 keeps no free counts or mount state here, so the superblock is written only by `format`.

use crate::BLOCK_SIZE;
use crate::error::{FsError, corrupt};
use crate::inode::{INODES_PER_BLOCK, MAX_FILE_BLOCKS};

/// The v3 magic number.
pub const MAGIC_V3: u16 = 0x4d5a;
/// The block that holds the superblock.
pub const SUPERBLOCK_BLOCK: u64 = 1;
/// Bits in one bitmap block.
pub const BITS_PER_BLOCK: u64 = BLOCK_SIZE as u64 * 8;
/// `s_max_size` as util-linux writes it for v3.
pub const MAX_SIZE_V3: u32 = 0x7fff_ffff;

/// The fields of the superblock this library uses, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// Number of inodes (inode 1 is the root; 0 is never used).
    pub ninodes: u32,
    /// Blocks of the inode bitmap.
    pub imap_blocks: u16,
    /// Blocks of the zone bitmap.
    pub zmap_blocks: u16,
    /// First data zone; zones below it are metadata.
    pub first_data_zone: u16,
    /// log2(zone size / block size); always 0 here.
    pub log_zone_size: u16,
    /// Largest file size in bytes as the superblock says.
    pub max_size: u32,
    /// Number of zones (= blocks) of the file system.
    pub zones: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Superblock {
    /// First block of the inode bitmap.
    pub fn imap_start(&self) -> u64 {
        2
    }

    /// First block of the zone bitmap.
    pub fn zmap_start(&self) -> u64 {
        2 + u64::from(self.imap_blocks)
    }

    /// First block of the inode table.
    pub fn inode_table_start(&self) -> u64 {
        self.zmap_start() + u64::from(self.zmap_blocks)
    }

    /// Blocks of the inode table.
    pub fn inode_table_blocks(&self) -> u64 {
        u64::from(self.ninodes).div_ceil(INODES_PER_BLOCK as u64)
    }

    /// Number of data zones (bits 1..=data_zones of the zone bitmap).
    pub fn data_zones(&self) -> u64 {
        u64::from(self.zones) - u64::from(self.first_data_zone)
    }

    /// The largest file size: the smaller of `s_max_size` and what the zone tree can address.
    pub fn max_file_size(&self) -> u64 {
        u64::from(self.max_size).min(MAX_FILE_BLOCKS * BLOCK_SIZE as u64)
    }

    /// Decodes and validates the superblock block against a device of `dev_blocks` blocks.
    /// Every failure is a [`FsError::Corrupt`] that says which field is wrong.
    pub fn decode(block: &[u8], dev_blocks: u64) -> Result<Self, FsError> {
        if block.len() < 32 {
            return Err(corrupt!("superblock: short block"));
        }
        let magic = u16_at(block, 24);
        if magic != MAGIC_V3 {
            return Err(corrupt!(
                "superblock: magic {magic:#06x} is not MINIX v3 ({MAGIC_V3:#06x}); \
                 v1/v2 images are not supported"
            ));
        }
        let blocksize = u16_at(block, 28);
        if usize::from(blocksize) != BLOCK_SIZE {
            return Err(corrupt!(
                "superblock: block size {blocksize} unsupported (only {BLOCK_SIZE})"
            ));
        }
        let sb = Superblock {
            ninodes: u32_at(block, 0),
            imap_blocks: u16_at(block, 6),
            zmap_blocks: u16_at(block, 8),
            first_data_zone: u16_at(block, 10),
            log_zone_size: u16_at(block, 12),
            max_size: u32_at(block, 16),
            zones: u32_at(block, 20),
        };
        sb.validate(dev_blocks)?;
        Ok(sb)
    }

    /// Checks every field against the others and the device, in layout order.
    pub fn validate(&self, dev_blocks: u64) -> Result<(), FsError> {
        if self.log_zone_size != 0 {
            return Err(corrupt!(
                "superblock: zone size 2^{} blocks unsupported (only 1)",
                self.log_zone_size
            ));
        }
        if self.ninodes == 0 {
            return Err(corrupt!("superblock: zero inodes"));
        }
        if self.imap_blocks == 0 || self.zmap_blocks == 0 {
            return Err(corrupt!(
                "superblock: {} inode bitmap blocks, {} zone bitmap blocks (each needs at least 1)",
                self.imap_blocks,
                self.zmap_blocks
            ));
        }
        if u64::from(self.imap_blocks) * BITS_PER_BLOCK < u64::from(self.ninodes) + 1 {
            return Err(corrupt!(
                "superblock: {} inode bitmap blocks cannot hold {} inodes",
                self.imap_blocks,
                self.ninodes
            ));
        }
        let metadata_end = self.inode_table_start() + self.inode_table_blocks();
        if u64::from(self.first_data_zone) < metadata_end {
            return Err(corrupt!(
                "superblock: first data zone {} lies inside the metadata (which ends at block {})",
                self.first_data_zone,
                metadata_end
            ));
        }
        if u64::from(self.zones) <= u64::from(self.first_data_zone) {
            return Err(corrupt!(
                "superblock: {} zones leave no data zone after the first data zone {}",
                self.zones,
                self.first_data_zone
            ));
        }
        if u64::from(self.zones) > dev_blocks {
            return Err(corrupt!(
                "superblock: {} zones but the device has only {dev_blocks} blocks",
                self.zones
            ));
        }
        if u64::from(self.zmap_blocks) * BITS_PER_BLOCK < self.data_zones() + 1 {
            return Err(corrupt!(
                "superblock: {} zone bitmap blocks cannot hold {} data zones",
                self.zmap_blocks,
                self.data_zones()
            ));
        }
        if self.max_size == 0 {
            return Err(corrupt!("superblock: maximum file size is 0"));
        }
        Ok(())
    }

    /// Writes the superblock fields into the first 32 bytes of `block` (the rest untouched).
    pub fn encode(&self, block: &mut [u8]) {
        block[0..4].copy_from_slice(&self.ninodes.to_le_bytes());
        block[4..6].fill(0);
        block[6..8].copy_from_slice(&self.imap_blocks.to_le_bytes());
        block[8..10].copy_from_slice(&self.zmap_blocks.to_le_bytes());
        block[10..12].copy_from_slice(&self.first_data_zone.to_le_bytes());
        block[12..14].copy_from_slice(&self.log_zone_size.to_le_bytes());
        block[14..16].fill(0);
        block[16..20].copy_from_slice(&self.max_size.to_le_bytes());
        block[20..24].copy_from_slice(&self.zones.to_le_bytes());
        block[24..26].copy_from_slice(&MAGIC_V3.to_le_bytes());
        block[26..28].fill(0);
        block[28..30].copy_from_slice(&(BLOCK_SIZE as u16).to_le_bytes());
        block[30] = 0;
        block[31] = 0;
    }
}
