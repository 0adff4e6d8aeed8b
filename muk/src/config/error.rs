//! What a config can get wrong, and where.

use super::*;

/// A config that cannot be used: what is wrong and, when known, on which line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line of the offending value in the file, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The ways a config can be wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("cannot read {path}: {why}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        why: String,
    },
    /// Not TOML, a missing or unknown key, or a value of the wrong type.
    #[error("{0}")]
    Syntax(String),
    /// A server name this crate does not know.
    #[error("unknown server {name:?} (known: {known})")]
    UnknownServer {
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// The same server listed twice.
    #[error("server {name:?} is listed twice (first on line {first_line})")]
    DuplicateServer {
        /// The server.
        name: String,
        /// Line of its first entry.
        first_line: usize,
    },
    /// Two servers on one slot.
    #[error("servers {first:?} and {second:?} both use nr {nr}")]
    DuplicateNr {
        /// The slot.
        nr: i64,
        /// The server listed first.
        first: String,
        /// The server listed second.
        second: String,
    },
    /// A slot outside the DC's system-process slots (or not an `i32` at all).
    #[error(
        "server {name:?}: nr {nr} is not a system-process slot of this DC (servers need nr {lo}..={hi})"
    )]
    NrOutOfRange {
        /// The server.
        name: String,
        /// The nr given.
        nr: i64,
        /// Smallest allowed.
        lo: i32,
        /// Largest allowed.
        hi: i32,
    },
    /// `nr = -1`: HARDWARE is never bindable.
    #[error("server {name:?}: nr -1 is HARDWARE, which no process can bind")]
    HardwareNr {
        /// The server.
        name: String,
    },
    /// A stack below [`MIN_STACK`] or above [`MAX_STACK_KIB`].
    #[error("server {name:?}: stack_kib {kib} is outside {min}..={max}")]
    Stack {
        /// The server.
        name: String,
        /// The size given.
        kib: i64,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// `node` outside 0..[`NODES`].
    #[error("node {0} is out of range (0..={max})", max = NODES - 1)]
    Node(i64),
    /// `dcid` outside 0..[`DCS`].
    #[error("dcid {0} is out of range (0..={max})", max = DCS - 1)]
    Dcid(i64),
    /// The DC name is empty, too long or has other characters than `[A-Za-z0-9._-]`.
    #[error("DC name {name:?} is {why}")]
    DcName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The DC limits are inconsistent.
    #[error(
        "bad DC limits (procs {procs}, tasks {tasks}, sysprocs {sysprocs}): need procs >= 1, \
         tasks <= 35, tasks < sysprocs <= tasks + procs, tasks + procs <= 1024"
    )]
    Limits {
        /// Process slots.
        procs: i64,
        /// Task slots.
        tasks: i64,
        /// System-process slots.
        sysprocs: i64,
    },
    /// A file mode above 0o777 or without the owner's read and write.
    #[error("mode {0:#o} must be at most 0o777 and include 0o600 (0o660 shares with the group)")]
    Mode(i64),
    /// An empty group name.
    #[error("group must not be empty")]
    Group,
    /// No `[[server]]` entry.
    #[error("no server to host: list at least one [[server]]")]
    NoServers,
    /// The `[cluster]` section is wrong, or disagrees with the rest (the text names the key).
    #[error("[cluster] {0}")]
    Cluster(String),
    /// The `[isolate]` section is wrong (the text names the key).
    #[error("[isolate] {0}")]
    Isolate(String),
    /// A storage setting that is wrong or given to a server that does not take it.
    #[error("server {name:?}: {why}")]
    Storage {
        /// The server.
        name: String,
        /// What is wrong.
        why: String,
    },
}
