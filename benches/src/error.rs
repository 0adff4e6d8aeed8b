//! The one error type of the benchmarks: a message saying what failed.

use core::fmt;

/// Why a scenario could not be measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchError(pub String);

impl BenchError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> BenchError {
        BenchError(message.into())
    }

    /// The same error with `context` in front of its message.
    pub fn context(self, context: impl fmt::Display) -> BenchError {
        BenchError(format!("{context}: {}", self.0))
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

impl From<m3ipc::Errno> for BenchError {
    fn from(e: m3ipc::Errno) -> BenchError {
        BenchError(e.to_string())
    }
}

impl From<m3ipc::DcError> for BenchError {
    fn from(e: m3ipc::DcError) -> BenchError {
        BenchError(e.to_string())
    }
}

impl From<muk::HostError> for BenchError {
    fn from(e: muk::HostError) -> BenchError {
        BenchError(e.to_string())
    }
}

/// An I/O error, with what was being done.
pub fn io(what: impl fmt::Display) -> impl FnOnce(std::io::Error) -> BenchError {
    move |e| BenchError(format!("{what}: {e}"))
}

/// The result of a benchmark step.
pub type Result<T> = core::result::Result<T, BenchError>;
