//! The hidden roles a `dvs demo` or `dvs bench` run re-executes `dvs` in: their common arguments
//! and start-up.
//!
//! Each measurement has two sides in two processes: a *server* that answers and a *client* that
//! asks and times. The parent starts both as `dvs __KIND-server TARGET ...` and
//! `dvs __KIND-client TARGET ...`, where TARGET is a DC name or a shared-memory file, and reads the
//! client's [`RunReport`](crate::report::RunReport) from its standard output.

use crate::error::{CliError, Result};
use crate::measure::Plan;
use crate::placement;
use clap::Args;
use std::time::Duration;

/// Longest a server waits for the next request before it gives up (a parent that vanished).
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);
/// Longest a client waits for one answer before it gives up (a server that vanished).
pub const STALL_LIMIT: Duration = Duration::from_secs(10);

/// Arguments of every server role.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The DC name or shared-memory file to serve on.
    pub target: String,
    /// Pin to this CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
}

/// Arguments of every client role.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The DC name or shared-memory file to ask on.
    pub target: String,
    /// Timed round trips.
    #[arg(long)]
    pub count: u64,
    /// Untimed round trips first.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Stop early once this many milliseconds have passed (warm-up included).
    #[arg(long)]
    pub budget_ms: Option<u64>,
    /// Pin to this CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
}

impl ServerArgs {
    /// The command line of a server role `subcommand` with these arguments.
    pub fn to_args(&self, subcommand: &str) -> Vec<String> {
        let mut v = vec![subcommand.to_string(), self.target.clone()];
        if let Some(cpu) = self.cpu {
            v.extend(["--cpu".to_string(), cpu.to_string()]);
        }
        v
    }
}

impl ClientArgs {
    /// The client arguments for `plan` on `target`, pinned to `cpu`.
    pub fn new(target: &str, plan: &Plan, cpu: Option<usize>) -> ClientArgs {
        ClientArgs {
            target: target.to_string(),
            count: plan.count,
            warmup: plan.warmup,
            budget_ms: plan.budget.map(|b| b.as_millis() as u64),
            cpu,
        }
    }

    /// The command line of a client role `subcommand` with these arguments.
    pub fn to_args(&self, subcommand: &str) -> Vec<String> {
        let mut v = vec![
            subcommand.to_string(),
            self.target.clone(),
            "--count".into(),
            self.count.to_string(),
            "--warmup".into(),
            self.warmup.to_string(),
        ];
        if let Some(ms) = self.budget_ms {
            v.extend(["--budget-ms".to_string(), ms.to_string()]);
        }
        if let Some(cpu) = self.cpu {
            v.extend(["--cpu".to_string(), cpu.to_string()]);
        }
        v
    }

    /// The measurement plan these arguments describe.
    pub fn plan(&self) -> Plan {
        Plan {
            count: self.count,
            warmup: self.warmup,
            budget: self.budget_ms.map(Duration::from_millis),
        }
    }
}

/// Start-up of every role: die with the parent (so that a killed `dvs demo` leaves no process
/// spinning), then pin to `cpu` if asked.
pub fn start(cpu: Option<usize>) -> Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes the signal number as its one argument and changes only this
    // process's own attributes.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if rc != 0 {
        return Err(CliError::new(format!(
            "prctl(PR_SET_PDEATHSIG): {}",
            std::io::Error::last_os_error()
        )));
    }
    match cpu {
        Some(cpu) => placement::pin(cpu),
        None => Ok(()),
    }
}
