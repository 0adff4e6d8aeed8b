//! On-disk inodes: 64 bytes each, 16 per block, in the inode table after the bitmaps.
//!
//! Layout (little-endian): mode u16, nlinks u16, uid u16, gid u16, size u32, atime u32,
//! mtime u32, ctime u32, then 10 zone numbers u32: 7 direct, single, double, triple indirect.

use crate::{BLOCK_SIZE, Ino};

/// Bytes of one inode.
pub const INODE_SIZE: usize = 64;
/// Inodes in one block.
pub const INODES_PER_BLOCK: usize = BLOCK_SIZE / INODE_SIZE;
/// Direct zone numbers in an inode.
pub const DIRECT_ZONES: usize = 7;
/// Zone numbers in one indirect block.
pub const ZONES_PER_BLOCK: u64 = (BLOCK_SIZE / 4) as u64;
/// Blocks one file can address through its direct, single, double and triple indirect zones.
pub const MAX_FILE_BLOCKS: u64 = DIRECT_ZONES as u64
    + ZONES_PER_BLOCK
    + ZONES_PER_BLOCK * ZONES_PER_BLOCK
    + ZONES_PER_BLOCK * ZONES_PER_BLOCK * ZONES_PER_BLOCK;

/// File type bits of `mode`.
pub const S_IFMT: u16 = 0o170000;
/// Directory type.
pub const S_IFDIR: u16 = 0o040000;
/// Regular file type.
pub const S_IFREG: u16 = 0o100000;
/// Permission bits (with set-id and sticky) a caller may give.
pub const PERM_BITS: u16 = 0o7777;

/// An inode as stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inode {
    /// Type and permission bits.
    pub mode: u16,
    /// Directory entries naming this inode (for a directory: 2 + subdirectories).
    pub nlinks: u16,
    /// Owner.
    pub uid: u16,
    /// Group.
    pub gid: u16,
    /// Size in bytes.
    pub size: u32,
    /// Last access.
    pub atime: u32,
    /// Last modification.
    pub mtime: u32,
    /// Last status change.
    pub ctime: u32,
    /// 7 direct zones, then single, double and triple indirect.
    pub zones: [u32; 10],
}

impl Inode {
    /// Decodes 64 bytes.
    pub fn decode(b: &[u8; INODE_SIZE]) -> Self {
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut zones = [0u32; 10];
        for (i, z) in zones.iter_mut().enumerate() {
            *z = u32_at(24 + 4 * i);
        }
        Inode {
            mode: u16_at(0),
            nlinks: u16_at(2),
            uid: u16_at(4),
            gid: u16_at(6),
            size: u32_at(8),
            atime: u32_at(12),
            mtime: u32_at(16),
            ctime: u32_at(20),
            zones,
        }
    }

    /// Encodes into 64 bytes.
    pub fn encode(&self, b: &mut [u8; INODE_SIZE]) {
        b[0..2].copy_from_slice(&self.mode.to_le_bytes());
        b[2..4].copy_from_slice(&self.nlinks.to_le_bytes());
        b[4..6].copy_from_slice(&self.uid.to_le_bytes());
        b[6..8].copy_from_slice(&self.gid.to_le_bytes());
        b[8..12].copy_from_slice(&self.size.to_le_bytes());
        b[12..16].copy_from_slice(&self.atime.to_le_bytes());
        b[16..20].copy_from_slice(&self.mtime.to_le_bytes());
        b[20..24].copy_from_slice(&self.ctime.to_le_bytes());
        for (i, z) in self.zones.iter().enumerate() {
            b[24 + 4 * i..28 + 4 * i].copy_from_slice(&z.to_le_bytes());
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    /// A fresh inode of the given type and permissions, all times `now`.
    pub fn new(kind: u16, perm: u16, now: u32) -> Self {
        Inode {
            mode: kind | (perm & PERM_BITS),
            nlinks: 1,
            atime: now,
            mtime: now,
            ctime: now,
            ..Inode::default()
        }
    }
}

/// Where inode `ino` lives: (block, byte offset in the block), given the inode table's start.
pub fn inode_position(table_start: u64, ino: Ino) -> (u64, usize) {
    let index = u64::from(ino) - 1;
    (
        table_start + index / INODES_PER_BLOCK as u64,
        (index % INODES_PER_BLOCK as u64) as usize * INODE_SIZE,
    )
}

/// Seconds since the epoch, as the 32-bit times of the inode.
pub fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let mut inode = Inode::new(S_IFREG, 0o644, 1_700_000_000);
        inode.size = 123_456;
        inode.zones = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0xdead_beef];
        let mut raw = [0u8; INODE_SIZE];
        inode.encode(&mut raw);
        assert_eq!(&raw[0..2], &0o100644u16.to_le_bytes());
        assert_eq!(&raw[60..64], &0xdead_beefu32.to_le_bytes());
        assert_eq!(Inode::decode(&raw), inode);
    }

    #[test]
    fn positions_follow_the_table() {
        assert_eq!(inode_position(10, 1), (10, 0));
        assert_eq!(inode_position(10, 16), (10, 15 * 64));
        assert_eq!(inode_position(10, 17), (11, 0));
    }
}
