//! The errors of the library: one for the block device, one for file-system operations.

/// A device error: out of range, or an I/O failure with a message.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The request touches blocks past the end of the device.
    #[error("blocks {first}..{} are outside the device ({blocks} blocks)", first.saturating_add(*count))]
    OutOfRange {
        /// First block of the request.
        first: u64,
        /// Number of blocks requested.
        count: u64,
        /// Number of blocks on the device.
        blocks: u64,
    },
    /// The device failed (an I/O error, a lost server, a buffer that is not a whole block).
    #[error("device I/O error: {0}")]
    Io(String),
}

/// A file-system error. Each maps to one positive POSIX errno, see [`FsError::errno`].
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// No entry of that name (ENOENT).
    #[error("no such file or directory")]
    NotFound,
    /// The name is already taken (EEXIST).
    #[error("file exists")]
    Exists,
    /// A directory was expected (ENOTDIR).
    #[error("not a directory")]
    NotDir,
    /// A non-directory was expected (EISDIR).
    #[error("is a directory")]
    IsDir,
    /// The directory still has entries (ENOTEMPTY).
    #[error("directory not empty")]
    NotEmpty,
    /// A name longer than 60 bytes (ENAMETOOLONG).
    #[error("file name too long (at most 60 bytes)")]
    NameTooLong,
    /// No free zone left (ENOSPC).
    #[error("no space left on device")]
    NoSpace,
    /// No free inode left (ENOSPC).
    #[error("no free inodes left on device")]
    NoInodes,
    /// The file would exceed the largest file size (EFBIG).
    #[error("file too large")]
    FileTooBig,
    /// An empty name, ".", "..", or a name with '/' or NUL where a new name is needed (EINVAL).
    #[error("invalid file name")]
    InvalidName,
    /// The operation would break the tree: rmdir of the root, moving a directory into itself (EBUSY).
    #[error("resource busy")]
    Busy,
    /// A bad argument from the caller (EINVAL).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The image is inconsistent: bad superblock, bad inode, zone out of range, ... (EIO).
    #[error("corrupt file system: {0}")]
    Corrupt(String),
    /// The block device failed (EIO).
    #[error(transparent)]
    Device(#[from] DeviceError),
}

impl FsError {
    /// The positive POSIX errno of this error (ENOENT = 2, EEXIST = 17, EIO = 5 for
    /// corruption and device errors, ...). A server negates it for its reply.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => 2,
            FsError::Exists => 17,
            FsError::NotDir => 20,
            FsError::IsDir => 21,
            FsError::NotEmpty => 39,
            FsError::NameTooLong => 36,
            FsError::NoSpace | FsError::NoInodes => 28,
            FsError::FileTooBig => 27,
            FsError::InvalidName | FsError::InvalidArgument(_) => 22,
            FsError::Busy => 16,
            FsError::Corrupt(_) | FsError::Device(_) => 5,
        }
    }
}

/// Shorthand for a [`FsError::Corrupt`] with a formatted message.
#[allow(unused_macros)]
macro_rules! corrupt {
    ($($arg:tt)*) => { $crate::error::FsError::Corrupt(format!($($arg)*)) };
}
#[allow(unused_imports)]
pub(crate) use corrupt;
