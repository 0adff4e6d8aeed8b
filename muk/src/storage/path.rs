//! Paths in requests: carried in a granted range of the requester's pool buffer, never in the
//! message (a path may be longer than a payload).
//!
//! A request names the path by [`PathRef`]: the grant (READ, issued to the server) and the
//! path's length in bytes; the path starts at offset 0 of the grant's range. Paths are absolute,
//! `/`-separated UTF-8 of at most [`PATH_MAX`] bytes with no NUL (except as the separator of the
//! two paths of a rename).

use m3ipc::{BufView, Errno, GrantId, Result};

/// Longest path a request may carry, in bytes (Linux's `PATH_MAX` less its NUL).
pub const PATH_MAX: usize = 4095;
/// The size of pool buffer a client allocates for paths (a whole page, the smallest buffer).
pub const PATH_BUFFER: usize = 4096;

/// Where a request's path lies: a grant to the server and the path's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathRef {
    /// The requester's grant (READ) whose range starts with the path.
    pub grant: GrantId,
    /// The path's length in bytes.
    pub len: usize,
}

impl PathRef {
    /// The two payload words: the grant id, then the length.
    pub fn words(&self) -> [u64; 2] {
        [self.grant.0, self.len as u64]
    }

    /// From two payload words; a length above [`PATH_MAX`] (or 2 × that plus one, for
    /// `pair`) is `EDVSNAMETOOLONG`.
    pub fn from_words(grant: u64, len: u64, pair: bool) -> Result<PathRef> {
        let max = if pair { 2 * PATH_MAX + 1 } else { PATH_MAX };
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= max)
            .ok_or(Errno::EDVSNAMETOOLONG)?;
        Ok(PathRef {
            grant: GrantId(grant),
            len,
        })
    }

    /// Read the path's bytes from `view` (the grant) and check them: `EDVSBADVALUE` when not
    /// UTF-8, `EDVSINVAL` when empty, not absolute or holding a NUL.
    pub fn read(&self, view: &BufView<'_>) -> Result<String> {
        let mut raw = vec![0u8; self.len];
        view.read_at(0, &mut raw)?;
        let s = String::from_utf8(raw).map_err(|_| Errno::EDVSBADVALUE)?;
        check(&s)?;
        Ok(s)
    }

    /// Read two NUL-separated paths (a rename's source and target).
    pub fn read_pair(&self, view: &BufView<'_>) -> Result<(String, String)> {
        let mut raw = vec![0u8; self.len];
        view.read_at(0, &mut raw)?;
        let s = String::from_utf8(raw).map_err(|_| Errno::EDVSBADVALUE)?;
        let (a, b) = s.split_once('\0').ok_or(Errno::EDVSINVAL)?;
        if a.len() > PATH_MAX || b.len() > PATH_MAX {
            return Err(Errno::EDVSNAMETOOLONG);
        }
        check(a)?;
        check(b)?;
        Ok((a.to_string(), b.to_string()))
    }
}

/// Check a path a client sends: absolute, at most [`PATH_MAX`] bytes, no NUL.
pub fn check(path: &str) -> Result<()> {
    if path.len() > PATH_MAX {
        return Err(Errno::EDVSNAMETOOLONG);
    }
    if !path.starts_with('/') || path.contains('\0') {
        return Err(Errno::EDVSINVAL);
    }
    Ok(())
}

/// Split an absolute path into its parent directory and its last name: `/a/b/` gives
/// (`/a`, `b`), `/x` gives (`/`, `x`). The root itself has no last name: (`/`, ``), which the
/// file system refuses as an invalid name.
pub fn split_parent(path: &str) -> (&str, &str) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => ("/", &trimmed[1..]),
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => ("/", trimmed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_and_are_checked() {
        assert_eq!(split_parent("/a/b/"), ("/a", "b"));
        assert_eq!(split_parent("/x"), ("/", "x"));
        assert_eq!(split_parent("/"), ("/", ""));
        assert_eq!(split_parent("//a//b"), ("//a/", "b"));
        assert_eq!(check("/ok"), Ok(()));
        assert_eq!(check("rel"), Err(Errno::EDVSINVAL));
        assert_eq!(check("/a\0b"), Err(Errno::EDVSINVAL));
        assert_eq!(check(&"/".repeat(5000)), Err(Errno::EDVSNAMETOOLONG));
        assert_eq!(
            PathRef::from_words(1, PATH_MAX as u64 + 1, false),
            Err(Errno::EDVSNAMETOOLONG)
        );
        assert!(PathRef::from_words(1, PATH_MAX as u64 + 1, true).is_ok());
        assert!(PathRef::from_words(1, u64::MAX, true).is_err());
    }
}
