//! `dvs`: the operator's command for M3-IPC distributed containers (DCs).
//!
//! ```text
//! dvs dc create NAME [--id N --node N --procs N --tasks N --sysprocs N --mode OCTAL --pool-size SIZE]
//! dvs dc rm NAME
//! dvs dc ls
//! dvs ps NAME
//! dvs demo [--count N] [--policy adaptive|block|spin] [--cpus same|different|any]
//! dvs node run --config node.toml [--etcd URL[,URL...]]
//! dvs node status
//! dvs bench [--quick] [--out DIR] [--count N] [--only TEXT | --zero-copy]
//! ```
//!
//! Region files live in `$M3IPC_SHM_DIR`, or `/dev/shm` when it is unset. Errors are printed as
//! `dvs: MESSAGE` with a non-zero exit code (130 after Ctrl-C).
//!
//! `demo` and `bench` run the peers of a measurement in their own processes: `dvs` re-executes
//! itself as `dvs __bench-peer ROLE ...` (see `m3_benches::peer`).

mod bench;
mod dc_cmd;
mod demo;
mod error;
mod interrupt;
mod node_cmd;
mod ps;
mod table;

use clap::{Parser, Subcommand};
use error::Result;
use std::process::ExitCode;

/// The operator's command for M3-IPC distributed containers.
#[derive(Debug, Parser)]
#[command(name = "dvs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, remove and list DCs.
    #[command(subcommand)]
    Dc(dc_cmd::DcCommand),
    /// Show the bound slots of a DC (read-only).
    #[command(after_help = format!("FLAGS: {}; - none.", ps::LEGEND))]
    Ps {
        /// The DC's name.
        name: String,
    },
    /// Run an m3ipc server process and a client, and show round-trip latency.
    Demo(demo::DemoArgs),
    /// Measure every benchmark scenario (MUK2, MUK, the fabric, raw spin/futex, pipes, sockets,
    /// notify, zero-copy, fan-in) in one run: a percentile table with ratios to same-run
    /// baselines, the targets, and bench.csv and bench.svg in --out.
    #[command(
        after_help = "Exit status: 0 once every chosen scenario was measured and the \
        files written, even when a target's MET column says NO (a missed target is reported, \
        not a failure: these machines are shared and noisy); non-zero when a scenario could \
        not run, on a bad argument, or 130 after Ctrl-C."
    )]
    Bench(bench::BenchArgs),
    /// Run this node's daemon (a DC over several nodes), or show its links.
    #[command(subcommand)]
    Node(node_cmd::NodeCommand),
}

impl Command {
    fn run(&self) -> Result<()> {
        match self {
            Command::Dc(cmd) => dc_cmd::run(cmd),
            Command::Ps { name } => ps::run(name),
            Command::Demo(args) => demo::run(args),
            Command::Bench(args) => bench::run(args),
            Command::Node(cmd) => node_cmd::run(cmd),
        }
    }
}

fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's start-up default): `demo` and `bench` own DCs and peer
    // processes that a death by SIGPIPE would leave behind. Everything goes to standard output
    // through `table::print_text`, for which a closed pipe (`dvs ps DC | head -1`) ends the
    // printing and nothing else.
    // A peer of a measurement: not a command of its own, and not shown by --help.
    let args: Vec<String> = std::env::args().collect();
    if let Some(code) = m3_benches::peer::dispatch(&args) {
        return code;
    }
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dvs: {e}");
            ExitCode::from(e.code)
        }
    }
}
