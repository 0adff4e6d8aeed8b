//! `dvs demo`: one m3ipc server process and this process as its client, in a private DC, with
//! the round-trip latency percentiles, the throughput and the CPUs each side was pinned to.
//! The scenario is the benchmarks' fabric `sendrec` (`m3_benches::fabric`).

use crate::error::{CliError, Result};
use crate::interrupt;
use crate::table::print_text;
use clap::{Args, ValueEnum};
use m3_benches::clock::overhead_ns;
use m3_benches::fabric::{FabricSession, SERVER_NR, ServerKind};
use m3_benches::percentiles::{Nanos, Summary};
use m3_benches::placement::Placement;
use m3_benches::session::Session;
use m3ipc::WaitPolicy;
use std::fmt::Write;

/// Most round trips one run may make (every sample is kept in memory).
pub const MAX_COUNT: u64 = 10_000_000;

/// How both sides wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// Spin briefly while the peer runs on another CPU, then sleep (the library's default).
    #[default]
    Adaptive,
    /// Sleep on the futex doorbell at once.
    Block,
    /// Spin until done: fastest across idle cores, disastrous when both share one.
    Spin,
}

impl Policy {
    fn wait_policy(self) -> WaitPolicy {
        match self {
            Policy::Adaptive => WaitPolicy::Adaptive,
            Policy::Block => WaitPolicy::Block,
            Policy::Spin => WaitPolicy::Spin,
        }
    }
}

/// Arguments of `dvs demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Timed sendrec round trips, 1..=10000000 (after a warm-up of a tenth as many, at least
    /// 100 and at most 10000).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
    pub count: u64,
    /// How both sides wait.
    #[arg(long, value_enum, default_value_t)]
    pub policy: Policy,
    /// Where the server and the client run: both on the first CPU, on the first two CPUs, or
    /// wherever the scheduler puts them.
    #[arg(long, value_enum, default_value_t = Placement::Different)]
    pub cpus: Placement,
}

/// Run the demo and print its report.
pub fn run(args: &DemoArgs) -> Result<()> {
    interrupt::install();
    if args.policy == Policy::Spin && args.cpus != Placement::Different {
        eprintln!(
            "dvs: warning: with --policy spin, two processes on one core wait for each other's \
             time slice: expect milliseconds per round trip"
        );
    }
    let fail = |e: m3_benches::BenchError| CliError::new(e.to_string());
    let (server_cpu, client_cpu) = args.cpus.cpus().map_err(fail)?;
    let warmup = (args.count / 10).clamp(100, 10_000);
    let mut session =
        FabricSession::start(ServerKind::Process(args.policy.wait_policy()), args.cpus)
            .map_err(fail)?;
    session.run(warmup, None).map_err(fail)?;
    if interrupt::requested() {
        return Err(CliError::interrupted());
    }
    let mut samples = Vec::with_capacity(usize::try_from(args.count).unwrap_or(0));
    let mut record = |ns| samples.push(ns);
    let elapsed = session.run(args.count, Some(&mut record)).map_err(fail)?;
    let client_nr = session.client_nr();
    drop(session);
    let l = Summary::from_samples(&mut samples);
    let cpu = |c: Option<usize>| c.map_or_else(|| "any".to_string(), |c| c.to_string());
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "dvs demo: {} sendrec round trips (after {warmup} warm-up), policy {}, cpus {}",
        l.n,
        m3_benches::fabric::policy_label(args.policy.wait_policy()),
        args.cpus.label()
    );
    let _ = writeln!(
        out,
        "  server: nr {SERVER_NR} on CPU {}   client: nr {client_nr} (user) on CPU {}",
        cpu(server_cpu),
        cpu(client_cpu)
    );
    let _ = writeln!(
        out,
        "  latency: mean {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (timer: {} ns each)",
        Nanos(l.mean),
        Nanos(l.p50 as f64),
        Nanos(l.p90 as f64),
        Nanos(l.p99 as f64),
        Nanos(l.p999 as f64),
        Nanos(l.max as f64),
        overhead_ns()
    );
    let secs = elapsed.as_secs_f64();
    let _ = writeln!(
        out,
        "  throughput: {:.0} round trips/s ({} in {secs:.3} s)",
        if secs > 0.0 { l.n as f64 / secs } else { 0.0 },
        l.n,
    );
    print_text(&out)
}
