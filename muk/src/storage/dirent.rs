//! A directory listing as FS and FTP write it into a client's granted buffer.
//!
//! Entries follow one another with no padding, each a 16-byte header, little-endian (`ino`:
//! u32, `mode`: u16, name length: u16, `size`: u64), then the name's bytes. The reply says how
//! many entries and bytes were written and whether more follow; the reader checks every length
//! against the bytes it got.

use m3ipc::{Errno, Result};

/// Bytes of an entry's header.
pub const HEADER: usize = 16;
/// Longest name an entry carries (MINIX v3: 60 bytes).
pub const NAME_MAX: usize = 60;

/// One listed entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Its inode.
    pub ino: u32,
    /// Its mode (type and permission bits, as MINIX stores them).
    pub mode: u16,
    /// Its size in bytes.
    pub size: u64,
    /// Its name.
    pub name: String,
}

impl Listed {
    /// Whether it is a directory (`S_IFDIR`).
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170_000 == 0o040_000
    }

    /// Bytes it takes in a listing.
    pub fn encoded_len(&self) -> usize {
        HEADER + self.name.len()
    }

    /// Append it to `out`; `EDVSNAMETOOLONG` when the name is longer than [`NAME_MAX`].
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let len = u16::try_from(self.name.len())
            .ok()
            .filter(|&l| usize::from(l) <= NAME_MAX)
            .ok_or(Errno::EDVSNAMETOOLONG)?;
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.mode.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        Ok(())
    }
}

/// Decode `count` entries from `bytes`; any entry that runs past the end, a name longer than
/// [`NAME_MAX`] or not UTF-8, or bytes left over, is `EDVSBADVALUE`.
pub fn decode(bytes: &[u8], count: usize) -> Result<Vec<Listed>> {
    let mut out = Vec::with_capacity(count.min(bytes.len() / HEADER));
    let mut at = 0usize;
    for _ in 0..count {
        let head = bytes.get(at..at + HEADER).ok_or(Errno::EDVSBADVALUE)?;
        let word = |r: std::ops::Range<usize>| head.get(r).ok_or(Errno::EDVSBADVALUE);
        let ino = u32::from_le_bytes(word(0..4)?.try_into().map_err(|_| Errno::EDVSBADVALUE)?);
        let mode = u16::from_le_bytes(word(4..6)?.try_into().map_err(|_| Errno::EDVSBADVALUE)?);
        let len = usize::from(u16::from_le_bytes(
            word(6..8)?.try_into().map_err(|_| Errno::EDVSBADVALUE)?,
        ));
        let size = u64::from_le_bytes(word(8..16)?.try_into().map_err(|_| Errno::EDVSBADVALUE)?);
        if len > NAME_MAX {
            return Err(Errno::EDVSBADVALUE);
        }
        at += HEADER;
        let name = bytes.get(at..at + len).ok_or(Errno::EDVSBADVALUE)?;
        let name = std::str::from_utf8(name).map_err(|_| Errno::EDVSBADVALUE)?;
        at += len;
        out.push(Listed {
            ino,
            mode,
            size,
            name: name.to_string(),
        });
    }
    if at != bytes.len() {
        return Err(Errno::EDVSBADVALUE);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_round_trip_and_bad_bytes_are_refused() {
        let entries = vec![
            Listed {
                ino: 1,
                mode: 0o040_755,
                size: 128,
                name: ".".into(),
            },
            Listed {
                ino: 9,
                mode: 0o100_644,
                size: u64::MAX,
                name: "é".repeat(30),
            },
        ];
        let mut bytes = Vec::new();
        for e in &entries {
            e.encode(&mut bytes).unwrap_or_default();
        }
        assert_eq!(bytes.len(), entries.iter().map(Listed::encoded_len).sum());
        assert_eq!(decode(&bytes, 2), Ok(entries.clone()));
        assert!(entries[0].is_dir() && !entries[1].is_dir());
        assert_eq!(decode(&bytes, 3), Err(Errno::EDVSBADVALUE));
        assert_eq!(decode(&bytes, 1), Err(Errno::EDVSBADVALUE));
        assert_eq!(
            decode(&bytes[..bytes.len() - 1], 2),
            Err(Errno::EDVSBADVALUE)
        );
        let mut long = bytes.clone();
        long[6] = 200;
        assert_eq!(decode(&long, 1), Err(Errno::EDVSBADVALUE));
        let too_long = Listed {
            name: "x".repeat(61),
            ..entries[0].clone()
        };
        assert_eq!(
            too_long.encode(&mut Vec::new()),
            Err(Errno::EDVSNAMETOOLONG)
        );
    }
}
