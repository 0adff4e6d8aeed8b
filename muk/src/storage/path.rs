//! Paths in requests: carried in a granted range of the requester's pool buffer, never in the
//! message (a path may be longer than a payload).
//!
//! A request names the path by [`PathRef`]: the grant (READ, issued to the server) and the
//! path's length in bytes; the path starts at offset 0 of the grant's range. Paths are absolute,
//! `/`-separated UTF-8 of at most [`PATH_MAX`] bytes with no control character (no NUL, newline,
//! tab, escape, DEL, ...; a NUL only as the separator of the two paths of a rename). [`check`]
//! is the one validation every client and server applies.
//!
//! Because no path may hold a control character, names that start with one are free for the
//! servers' own use: FS names a put's temporary file [`PUT_TEMP_PREFIX`] followed by a number
//! ([`is_put_temp`]), which no request can name, create or list.

use crate::ipc::Ipc;
use m3ipc::{BufView, Endpoint, Errno, GrantId, Result};

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
    /// UTF-8, `EDVSINVAL` when empty, not absolute or holding a control character.
    pub fn read(&self, view: &BufView<'_>) -> Result<String> {
        let mut raw = vec![0u8; self.len];
        view.read_at(0, &mut raw)?;
        parse(raw)
    }

    /// As [`PathRef::read`], from the grant `grantor` issued this server, wherever the
    /// grantor is bound ([`super::read_granted`]).
    pub fn fetch(&self, ipc: &mut dyn Ipc, grantor: Endpoint) -> Result<String> {
        let mut raw = vec![0u8; self.len];
        super::read_granted(ipc, grantor, self.grant, 0, &mut raw)?;
        parse(raw)
    }

    /// Read two NUL-separated paths (a rename's source and target).
    pub fn read_pair(&self, view: &BufView<'_>) -> Result<(String, String)> {
        let mut raw = vec![0u8; self.len];
        view.read_at(0, &mut raw)?;
        parse_pair(raw)
    }

    /// As [`PathRef::read_pair`], wherever the grantor is bound.
    pub fn fetch_pair(&self, ipc: &mut dyn Ipc, grantor: Endpoint) -> Result<(String, String)> {
        let mut raw = vec![0u8; self.len];
        super::read_granted(ipc, grantor, self.grant, 0, &mut raw)?;
        parse_pair(raw)
    }
}

/// A path's bytes, checked (see [`PathRef::read`]).
fn parse(raw: Vec<u8>) -> Result<String> {
    let s = String::from_utf8(raw).map_err(|_| Errno::EDVSBADVALUE)?;
    check(&s)?;
    Ok(s)
}

/// Two NUL-separated paths' bytes, checked (see [`PathRef::read_pair`]).
fn parse_pair(raw: Vec<u8>) -> Result<(String, String)> {
    let s = String::from_utf8(raw).map_err(|_| Errno::EDVSBADVALUE)?;
    let (a, b) = s.split_once('\0').ok_or(Errno::EDVSINVAL)?;
    if a.len() > PATH_MAX || b.len() > PATH_MAX {
        return Err(Errno::EDVSNAMETOOLONG);
    }
    check(a)?;
    check(b)?;
    Ok((a.to_string(), b.to_string()))
}

/// The start of the name of a put's temporary file (see [`crate::storage::fs::FS_PUT_BEGIN`]):
/// U+0001 makes it a name no path can hold ([`check`] refuses control characters).
pub const PUT_TEMP_PREFIX: &str = "\u{1}m3put-";

/// Whether a directory entry's name is a put's temporary file.
pub fn is_put_temp(name: &str) -> bool {
    name.starts_with(PUT_TEMP_PREFIX)
}

/// What is wrong with a path, in words a user can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathProblem {
    /// Longer than [`PATH_MAX`] bytes.
    TooLong,
    /// Does not start with `/`.
    Relative,
    /// Holds a control character (a NUL, newline, tab, escape, DEL, ...).
    ControlChar,
}

impl PathProblem {
    /// The error code a server answers with.
    pub fn errno(self) -> Errno {
        match self {
            PathProblem::TooLong => Errno::EDVSNAMETOOLONG,
            PathProblem::Relative | PathProblem::ControlChar => Errno::EDVSINVAL,
        }
    }

    /// What is wrong, for a message.
    pub fn explain(self) -> &'static str {
        match self {
            PathProblem::TooLong => "path too long (at most 4095 bytes)",
            PathProblem::Relative => "remote paths must be absolute (start with /, as in /b)",
            PathProblem::ControlChar => {
                "names may not contain control characters (newline, tab, escape, ...)"
            }
        }
    }
}

/// Check a path: absolute, at most [`PATH_MAX`] bytes, no control character. The problem
/// found first (length, then the leading `/`, then the characters).
pub fn problem(path: &str) -> Option<PathProblem> {
    if path.len() > PATH_MAX {
        Some(PathProblem::TooLong)
    } else if !path.starts_with('/') {
        Some(PathProblem::Relative)
    } else if path.chars().any(char::is_control) {
        Some(PathProblem::ControlChar)
    } else {
        None
    }
}

/// Check a path a client sends ([`problem`]): `EDVSNAMETOOLONG` when too long, `EDVSINVAL`
/// when relative or holding a control character.
pub fn check(path: &str) -> Result<()> {
    problem(path).map_or(Ok(()), |p| Err(p.errno()))
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
        for bad in ["/a\nb", "/\t", "/x\u{1b}[31m", "/del\u{7f}", "/c1\u{85}"] {
            assert_eq!(problem(bad), Some(PathProblem::ControlChar), "{bad:?}");
            assert_eq!(check(bad), Err(Errno::EDVSINVAL));
        }
        assert_eq!(problem("b"), Some(PathProblem::Relative));
        assert_eq!(problem("/ünï cödé ok"), None);
        assert!(is_put_temp(&format!("{PUT_TEMP_PREFIX}7")));
        assert_eq!(
            check(&format!("/{PUT_TEMP_PREFIX}7")),
            Err(Errno::EDVSINVAL)
        );
        assert_eq!(check(&"/".repeat(5000)), Err(Errno::EDVSNAMETOOLONG));
        assert_eq!(
            PathRef::from_words(1, PATH_MAX as u64 + 1, false),
            Err(Errno::EDVSNAMETOOLONG)
        );
        assert!(PathRef::from_words(1, PATH_MAX as u64 + 1, true).is_ok());
        assert!(PathRef::from_words(1, u64::MAX, true).is_err());
    }
}
