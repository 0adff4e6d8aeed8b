//! `dvs`: the operator's command for M3-IPC distributed containers (DCs).
//!
//! ```text
//! dvs dc create NAME [--id N --node N --procs N --tasks N --sysprocs N --mode OCTAL --pool-size SIZE]
//! dvs dc rm NAME
//! dvs dc ls
//! dvs ps NAME
//! dvs demo [--count N] [--policy adaptive|block|spin] [--cpus same|different|any]
//! dvs bench [--count N] [--csv FILE]
//! dvs bench --zero-copy [--count N]
//! ```
//!
//! Region files live in `$M3IPC_SHM_DIR`, or `/dev/shm` when it is unset. Errors are printed as
//! `dvs: MESSAGE` with a non-zero exit code (130 after Ctrl-C).
//!
//! `demo` and `bench` run each side of a measurement in its own process: `dvs` re-executes itself
//! in hidden roles (`__demo-server`, `__spin-client`, ...), see [`role`].

mod bench;
mod child;
mod dc_cmd;
mod demo;
mod error;
mod interrupt;
mod measure;
mod percentiles;
mod pingpong;
mod placement;
mod ps;
mod report;
mod role;
mod scratch_dc;
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
    /// Run an m3ipc server and client in two processes and show round-trip latency.
    Demo(demo::DemoArgs),
    /// Compare m3ipc round trips with raw spin and futex ping-pong, in one run (or, with
    /// --zero-copy, payloads by pool-buffer handle with a Unix socket).
    Bench(bench::BenchArgs),
    #[command(name = pingpong::SERVER_CMD, hide = true)]
    PingServer(pingpong::PingServerArgs),
    #[command(name = pingpong::CLIENT_CMD, hide = true)]
    PingClient(pingpong::PingClientArgs),
    #[command(name = bench::raw_spin::SERVER_CMD, hide = true)]
    SpinServer(role::ServerArgs),
    #[command(name = bench::raw_spin::CLIENT_CMD, hide = true)]
    SpinClient(role::ClientArgs),
    #[command(name = bench::raw_futex::SERVER_CMD, hide = true)]
    FutexServer(role::ServerArgs),
    #[command(name = bench::raw_futex::CLIENT_CMD, hide = true)]
    FutexClient(role::ClientArgs),
    #[command(name = bench::zero_copy::HANDLE_SERVER_CMD, hide = true)]
    ZcHandleServer(bench::zero_copy::ZcServerArgs),
    #[command(name = bench::zero_copy::HANDLE_CLIENT_CMD, hide = true)]
    ZcHandleClient(bench::zero_copy::ZcClientArgs),
    #[command(name = bench::zero_copy::SOCKET_SERVER_CMD, hide = true)]
    ZcSocketServer(bench::zero_copy::ZcServerArgs),
    #[command(name = bench::zero_copy::SOCKET_CLIENT_CMD, hide = true)]
    ZcSocketClient(bench::zero_copy::ZcClientArgs),
}

impl Command {
    /// How errors of this command are prefixed: `dvs`, or `dvs ROLE` in a hidden role.
    fn prefix(&self) -> String {
        let role = match self {
            Command::PingServer(_) => pingpong::SERVER_CMD,
            Command::PingClient(_) => pingpong::CLIENT_CMD,
            Command::SpinServer(_) => bench::raw_spin::SERVER_CMD,
            Command::SpinClient(_) => bench::raw_spin::CLIENT_CMD,
            Command::FutexServer(_) => bench::raw_futex::SERVER_CMD,
            Command::FutexClient(_) => bench::raw_futex::CLIENT_CMD,
            Command::ZcHandleServer(_) => bench::zero_copy::HANDLE_SERVER_CMD,
            Command::ZcHandleClient(_) => bench::zero_copy::HANDLE_CLIENT_CMD,
            Command::ZcSocketServer(_) => bench::zero_copy::SOCKET_SERVER_CMD,
            Command::ZcSocketClient(_) => bench::zero_copy::SOCKET_CLIENT_CMD,
            _ => return "dvs".into(),
        };
        format!("dvs {role}")
    }

    fn run(&self) -> Result<()> {
        match self {
            Command::Dc(cmd) => dc_cmd::run(cmd),
            Command::Ps { name } => ps::run(name),
            Command::Demo(args) => demo::run(args),
            Command::Bench(args) => bench::run(args),
            Command::PingServer(args) => pingpong::serve(args),
            Command::PingClient(args) => pingpong::client(args),
            Command::SpinServer(args) => bench::raw_spin::serve(args),
            Command::SpinClient(args) => bench::raw_spin::client(args),
            Command::FutexServer(args) => bench::raw_futex::serve(args),
            Command::FutexClient(args) => bench::raw_futex::client(args),
            Command::ZcHandleServer(args) => bench::zero_copy::handle_serve(args),
            Command::ZcHandleClient(args) => bench::zero_copy::handle_client(args),
            Command::ZcSocketServer(args) => bench::zero_copy::socket_serve(args),
            Command::ZcSocketClient(args) => bench::zero_copy::socket_client(args),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", cli.command.prefix());
            ExitCode::from(e.code)
        }
    }
}
