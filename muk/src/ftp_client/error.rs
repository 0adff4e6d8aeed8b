//! What can go wrong for an `m3ftp` client, each with a message a user can act on.

use crate::storage::path::PathProblem;
use m3ipc::Errno;
use std::fmt;
use std::time::Duration;

/// An `m3ftp` failure.
#[derive(Debug)]
pub enum FtpError {
    /// The DC cannot be opened (no such DC, no permission, not an M3-IPC region).
    Dc {
        /// The DC's name.
        dc: String,
        /// Why.
        why: String,
    },
    /// Nothing is bound at FTP's slot within the wait.
    NoServer {
        /// The DC.
        dc: String,
        /// FTP's slot.
        nr: i32,
        /// How long the client waited.
        waited: Duration,
    },
    /// The client could not set itself up (no free user slot, the pool is full or absent).
    Setup(String),
    /// A remote path no server would take (checked before anything is sent).
    BadPath {
        /// The operation.
        op: &'static str,
        /// The path as given.
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A put's remote path ends with `/`: it names a directory, not the file to write.
    DirTarget {
        /// The path as given.
        path: String,
    },
    /// The server answered a request with an error.
    Remote {
        /// The operation (`get`, `put`, ...).
        op: &'static str,
        /// The remote path.
        path: String,
        /// The server's error.
        errno: Errno,
    },
    /// The server did not answer within the request timeout.
    Timeout {
        /// The operation.
        op: &'static str,
        /// The remote path.
        path: String,
        /// The timeout.
        after: Duration,
    },
    /// The server process went away during the request.
    Gone {
        /// The operation.
        op: &'static str,
        /// The remote path.
        path: String,
    },
    /// A local file could not be read or written.
    Local {
        /// The local path.
        path: String,
        /// The OS error.
        why: std::io::Error,
    },
    /// The server's reply does not make sense (a bug or a hostile server).
    Protocol(String),
}

/// What an error code from the storage servers means, in words.
pub fn explain(e: Errno) -> String {
    match e {
        Errno::EDVSNOENT => "no such file or directory".into(),
        Errno::EDVSNOSPC => "no space left on the server's disk".into(),
        Errno::EDVSNAMETOOLONG => {
            "name too long (a MINIX v3 file name has at most 60 bytes, a path 4095)".into()
        }
        Errno::EDVSEXIST => "already exists".into(),
        Errno::EDVSISDIR => "is a directory".into(),
        Errno::EDVSNOTDIR => "not a directory".into(),
        Errno::EDVSNOTEMPTY => "directory not empty".into(),
        Errno::EDVSFBIG => "file too large for the file system".into(),
        Errno::EDVSBUSY => "refused: it would break the directory tree".into(),
        Errno::EDVSINVAL => "invalid name or argument".into(),
        Errno::EDVSNODEV => {
            "the file system is not available (FS is not running, or its disk did not mount)".into()
        }
        Errno::EDVSIO => "I/O error on the server (a corrupt image or a failing disk)".into(),
        Errno::EDVSAGAIN => "the server is busy (too many puts under way); try again".into(),
        e => format!("{} ({})", e.description(), e.name()),
    }
}

/// What a failed put left behind, for its message. A put is atomic (written to a temporary
/// file, renamed over the target at the end), so the target is either untouched or wholly
/// replaced; only when the failure may have come after the rename is it not known which.
fn put_outcome(op: &str, errno: Option<Errno>) -> &'static str {
    match (op, errno) {
        ("put", Some(Errno::EDVSIO | Errno::EDVSNODEV) | None) => {
            "; the file is either unchanged or wholly replaced"
        }
        ("put", Some(_)) => "; nothing was changed",
        _ => "",
    }
}

impl fmt::Display for FtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FtpError::Dc { dc, why } => write!(f, "cannot open DC {dc:?}: {why}"),
            FtpError::NoServer { dc, nr, waited } => write!(
                f,
                "no FTP server in DC {dc:?}: nothing bound at nr {nr} within {} ms \
                 (is muk2 running with the ftp server?)",
                waited.as_millis()
            ),
            FtpError::Setup(why) => f.write_str(why),
            FtpError::BadPath {
                op,
                path,
                problem: PathProblem::Relative,
            } => write!(
                f,
                "{op} {path}: remote paths must be absolute (start with /, as in /{path})"
            ),
            FtpError::BadPath { op, path, problem } => {
                // Debug shows a control character as an escape, not raw.
                write!(f, "{op} {path:?}: {}", problem.explain())
            }
            FtpError::DirTarget { path } => write!(
                f,
                "put {path}: names a directory; give the file's name (as in {path}FILE)"
            ),
            FtpError::Remote { op, path, errno } => {
                write!(
                    f,
                    "{op} {path}: {}{}",
                    explain(*errno),
                    put_outcome(op, Some(*errno))
                )
            }
            FtpError::Timeout { op, path, after } => write!(
                f,
                "{op} {path}: the FTP server did not answer within {} s{}",
                after.as_secs(),
                put_outcome(op, None)
            ),
            FtpError::Gone { op, path } => {
                write!(
                    f,
                    "{op} {path}: the FTP server went away{}",
                    put_outcome(op, None)
                )
            }
            FtpError::Local { path, why } => write!(f, "{path}: {why}"),
            FtpError::Protocol(why) => write!(f, "bad reply from the FTP server: {why}"),
        }
    }
}

impl std::error::Error for FtpError {}

impl FtpError {
    /// The same error reported as part of operation `op` (a `get` that begins with a `stat`).
    pub fn during(self, op: &'static str) -> FtpError {
        match self {
            FtpError::Remote { path, errno, .. } => FtpError::Remote { op, path, errno },
            FtpError::Timeout { path, after, .. } => FtpError::Timeout { op, path, after },
            FtpError::Gone { path, .. } => FtpError::Gone { op, path },
            FtpError::BadPath { path, problem, .. } => FtpError::BadPath { op, path, problem },
            e => e,
        }
    }

    /// The server's error code, for a [`FtpError::Remote`].
    pub fn errno(&self) -> Option<Errno> {
        match self {
            FtpError::Remote { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}
