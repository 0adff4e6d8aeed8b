//! The one error type of the command: a message for the operator and an exit code.

use core::fmt;

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why a `dvs` command failed: printed as `dvs: MESSAGE`, then the process exits with `code`.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong, in words for the operator.
    pub message: String,
    /// The process exit code (never 0).
    pub code: u8,
}

impl CliError {
    /// A failure with exit code 1.
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            code: 1,
        }
    }

    /// The run was stopped by Ctrl-C.
    pub fn interrupted() -> CliError {
        CliError {
            message: "interrupted".into(),
            code: EXIT_INTERRUPTED,
        }
    }

    /// The same error with `context` in front of its message.
    pub fn context(self, context: impl fmt::Display) -> CliError {
        CliError {
            message: format!("{context}: {}", self.message),
            code: self.code,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<m3ipc::DcError> for CliError {
    fn from(e: m3ipc::DcError) -> CliError {
        CliError::new(e.to_string())
    }
}

impl From<m3ipc::Errno> for CliError {
    fn from(e: m3ipc::Errno) -> CliError {
        CliError::new(e.to_string())
    }
}

/// The result of a `dvs` command.
pub type Result<T> = core::result::Result<T, CliError>;
