//! `dvs demo`: one m3ipc server and one client in two processes, in a private DC, with the
//! round-trip latency percentiles, the throughput and the CPUs each side ran on.

use crate::error::Result;
use crate::interrupt;
use crate::measure::Plan;
use crate::percentiles::Nanos;
use crate::pingpong::{self, Policy};
use crate::placement::Placement;
use crate::scratch_dc::ScratchDc;
use crate::table::print_text;
use clap::Args;
use std::fmt::Write;

/// Most round trips one run may make (the client keeps every sample in memory).
pub const MAX_COUNT: u64 = 10_000_000;

/// Arguments of `dvs demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Timed sendrec round trips (after a warm-up of a tenth of them, 100..=10000).
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
    let scratch = ScratchDc::create("demo")?;
    let plan = Plan::new(args.count);
    let config = scratch.dc().config().clone();
    let dc_name = scratch.name().to_string();
    let report = pingpong::run_pair(scratch.name(), &plan, args.policy, args.cpus)?;
    drop(scratch);

    let l = &report.latency;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "dvs demo in DC {dc_name}: {} sendrec round trips (after {} warm-up), policy {}, cpus {}",
        l.n,
        plan.warmup,
        args.policy.label(),
        args.cpus.label()
    );
    let _ = writeln!(
        out,
        "  server: nr {} on CPU {}   client: nr {} (user) on CPU {}",
        pingpong::SERVER_NR,
        report.server_cpus,
        pingpong::client_nr(&config),
        report.client_cpus
    );
    let _ = writeln!(
        out,
        "  latency: mean {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        Nanos(l.mean),
        Nanos(l.p50 as f64),
        Nanos(l.p90 as f64),
        Nanos(l.p99 as f64),
        Nanos(l.p999 as f64),
        Nanos(l.max as f64)
    );
    let _ = writeln!(
        out,
        "  throughput: {:.0} round trips/s ({} in {:.3} s)",
        report.throughput(),
        l.n,
        report.elapsed.as_secs_f64()
    );
    print_text(&out)
}
