//! `muk2`: boot the MUK2 unikernel (or MUK, its thread baseline) on an M3-IPC DC.
//!
//! ```text
//! muk2                                   boot the embedded default config in a private DC,
//!                                        print the proc table, self-check, exit
//! muk2 run --config FILE [--threads]     create the config's DC, host its servers until
//!     [--isolate]                        SIGINT/SIGTERM/SIGHUP, then unbind and remove the DC;
//!                                        with [cluster], run the node daemon for it too;
//!                                        --isolate: in namespaces of its own (`isolate`)
//! muk2 serve NAME --dc DC [--nr N]       run one server as its own process in an existing DC
//!     [--image F | --memory-mib N] [--format P]   (RDISK's disk, FS's format policy)
//! muk2 check --dc DC [--expect LIST]     sendrec to each server from this (external) process
//! muk2 sandbox-profile                   the system calls allowed after boot
//! ```
//!
//! The default boot, `run` and `serve` install a seccomp allowlist after boot (`sandbox`);
//! `--no-sandbox` leaves it out.
//!
//! Errors are printed as `muk2: MESSAGE`, with exit code 1 (2 for a bad command line, from
//! clap). Region files live in `$M3IPC_SHM_DIR`, or `/dev/shm` when it is unset.

// A binary's root resolves modules beside itself (src/bin/); they live in src/bin/muk2/.
#[path = "muk2/boot.rs"]
mod boot;
#[path = "muk2/check.rs"]
mod check;
#[path = "muk2/hosting.rs"]
mod hosting;
#[path = "muk2/http_check.rs"]
mod http_check;
#[path = "muk2/isolate.rs"]
mod isolate;
#[path = "muk2/output.rs"]
mod output;
#[path = "muk2/run.rs"]
mod run;
#[path = "muk2/sandbox.rs"]
mod sandbox;
#[path = "muk2/signals.rs"]
mod signals;
#[path = "muk2/table.rs"]
mod table;

use clap::{Parser, Subcommand};
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

/// MUK2, the multiserver unikernel on M3-IPC: servers as coroutines in one process.
#[derive(Debug, Parser)]
#[command(
    name = "muk2",
    version,
    about = concat!(
        env!("CARGO_PKG_DESCRIPTION"),
        "\n\nWith no command, muk2 boots the embedded default config (every server inside) in \
         a private DC, prints the proc table, self-checks every server from a separate client \
         process (with an m3ftp put and get), removes the DC and exits: 0 when every check \
         passed, 1 otherwise."
    ),
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Do not install the seccomp allowlist after boot (the default boot, `run`, `serve`); see
    /// `muk2 sandbox-profile`.
    #[arg(long, global = true)]
    no_sandbox: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the config's DC, host its servers until SIGINT, SIGTERM or SIGHUP, then remove the
    /// DC.
    ///
    /// Servers the config leaves out are expected from outside (`muk2 serve NAME --dc DC`, or
    /// another node: with a `[cluster]` section the node daemon runs in this process, and the
    /// sandbox is off).
    Run {
        /// The TOML config (see `muk2 default-config`).
        #[arg(long, short)]
        config: PathBuf,
        /// Run every server on its own OS thread (MUK) instead of as coroutines (MUK2).
        #[arg(long)]
        threads: bool,
        /// Run the unikernel in new user, mount, PID, IPC, UTS and network (loopback only)
        /// namespaces, in a root that holds only its DC's files and its disk images; this
        /// process stays outside to remove the DC and release dead clients' slots.
        #[arg(long)]
        isolate: bool,
    },
    /// Run one server as its own process in an existing DC, until SIGINT, SIGTERM or SIGHUP.
    Serve {
        /// The server: systask, pm, echo, rdisk, fs or ftp.
        name: String,
        /// The DC to serve in.
        #[arg(long)]
        dc: String,
        /// Its slot (default: its well-known number).
        #[arg(long, allow_negative_numbers = true)]
        nr: Option<i32>,
        /// Its stack in KiB (16..=65536).
        #[arg(
            long,
            default_value_t = (muk::host::DEFAULT_STACK / 1024) as u32,
            value_parser = clap::value_parser!(u32).range(
                (muk::host::MIN_STACK / 1024) as i64..=muk::config::MAX_STACK_KIB as i64
            )
        )]
        stack_kib: u32,
        /// Run it on an OS thread (MUK) instead of a coroutine (MUK2).
        #[arg(long)]
        threads: bool,
        /// The storage servers' settings.
        #[command(flatten)]
        storage: run::StorageArgs,
    },
    /// Check from this process that each server of a running DC answers a sendrec.
    Check(check::CheckArgs),
    /// Print the embedded default config (a starting point for `muk2 run --config`).
    DefaultConfig,
    /// Print the sandbox's allowlist: the system calls a booted unikernel may make.
    SandboxProfile,
    /// Wait for standard input to close, then remove the DC (the sandbox's helper).
    #[command(hide = true)]
    RemoveDcAtEof {
        /// The DC to remove.
        dc: String,
    },
}

/// Why `muk2` failed: printed as `muk2: MESSAGE`, exit code 1.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error {
    /// The same error with `context` in front.
    pub fn context(self, context: impl fmt::Display) -> Error {
        Error(format!("{context}: {}", self.0))
    }
}

macro_rules! from_display {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error(e.to_string())
            }
        }
    )*};
}
from_display!(
    m3ipc::DcError,
    m3ipc::Errno,
    muk::HostError,
    std::io::Error,
    String
);

/// The result of a `muk2` command.
pub type Result<T> = std::result::Result<T, Error>;

fn main() -> ExitCode {
    // SIGPIPE stays ignored, as Rust's runtime set it (not in the mask of `signals` either): a
    // closed output ends the printing (`output`, `muk::diag!`), never the servers. See `output`.
    let cli = Cli::parse();
    sandbox::set_enabled(!cli.no_sandbox);
    let result = match cli.command {
        None => boot::run(),
        Some(Command::Run {
            config,
            threads,
            isolate,
        }) => run::run(&config, threads, isolate),
        Some(Command::Serve {
            name,
            dc,
            nr,
            stack_kib,
            threads,
            storage,
        }) => run::serve(&name, &dc, nr, stack_kib, threads, &storage),
        Some(Command::Check(args)) => check::run(&args),
        Some(Command::DefaultConfig) => output::print(muk::config::DEFAULT_TOML),
        Some(Command::SandboxProfile) => sandbox::print_profile(),
        Some(Command::RemoveDcAtEof { dc }) => sandbox::remove_dc_at_eof(&dc),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            muk::diag!("muk2: {e}");
            ExitCode::FAILURE
        }
    }
}
