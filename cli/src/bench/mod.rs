//! `dvs bench`: in one run, round-trip latency of the m3ipc `sendrec` next to the raw baselines it
//! must be judged against, on different cores and on one core.
//!
//! Cases: raw spin ping-pong ([`raw_spin`]), raw futex ping-pong ([`raw_futex`]), and m3ipc with
//! `WaitPolicy::Adaptive` and `WaitPolicy::Block` ([`crate::pingpong`]); each side of each case is
//! its own process. These machines are shared and noisy, so absolute numbers mean little alone
//! (DESIGN.md section 10): every m3ipc row carries the ratio of its median to the median of the
//! matching baseline measured in the same run: raw spin for different cores (the floor with no
//! system call), raw futex for one core (where a wakeup through the kernel is unavoidable).

mod ball;
pub mod raw_futex;
pub mod raw_spin;
mod shm;
pub mod zero_copy;

use crate::demo::MAX_COUNT;
use crate::error::{CliError, Result};
use crate::interrupt;
use crate::measure::Plan;
use crate::percentiles::Nanos;
use crate::pingpong::{self, Policy};
use crate::placement::{Placement, allowed_cpus};
use crate::report::RunReport;
use crate::scratch_dc::ScratchDc;
use crate::table::{Align, Table, print_text};
use clap::Args;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// Time budget of raw spinning on one core: each round trip waits for a scheduler time slice, so
/// the full count would take minutes.
pub const SPIN_SAME_CORE_BUDGET: Duration = Duration::from_secs(1);

/// Arguments of `dvs bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Timed round trips per case (after a warm-up of a tenth of them, 100..=10000).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
    pub count: u64,
    /// Also write the rows to this CSV file.
    #[arg(long, conflicts_with = "zero_copy")]
    pub csv: Option<PathBuf>,
    /// Instead: move 4K, 64K and 1M payloads between two processes by pool-buffer handle and
    /// over a Unix socket, and compare their throughput (at most 20000 transfers or 3 s a case).
    #[arg(long)]
    pub zero_copy: bool,
}

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// Two processes spinning on a shared cache line.
    RawSpin,
    /// Futex wait/wake on a shared word.
    RawFutex,
    /// m3ipc `sendrec` with this wait policy on both sides.
    M3ipc(Policy),
}

impl Mechanism {
    /// Name used in tables and CSV files.
    pub fn label(self) -> String {
        match self {
            Mechanism::RawSpin => "raw-spin".into(),
            Mechanism::RawFutex => "raw-futex".into(),
            Mechanism::M3ipc(p) => format!("m3ipc-{}", p.label()),
        }
    }
}

/// One row of the table: a mechanism at a placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// What is measured.
    pub mechanism: Mechanism,
    /// Where the two sides run.
    pub placement: Placement,
}

impl Case {
    /// The baseline this case is compared with: raw spin across cores, raw futex on one core.
    /// `None` for the raw cases.
    pub fn baseline(self) -> Option<Case> {
        match self.mechanism {
            Mechanism::M3ipc(_) => Some(Case {
                mechanism: match self.placement {
                    Placement::Same => Mechanism::RawFutex,
                    _ => Mechanism::RawSpin,
                },
                placement: self.placement,
            }),
            _ => None,
        }
    }

    /// The measurement plan of this case for `count` round trips.
    pub fn plan(self, count: u64) -> Plan {
        let spin_same = self.mechanism == Mechanism::RawSpin && self.placement == Placement::Same;
        Plan {
            budget: spin_same.then_some(SPIN_SAME_CORE_BUDGET),
            ..Plan::new(count)
        }
    }

    fn run(self, dc: &str, plan: &Plan) -> Result<RunReport> {
        match self.mechanism {
            Mechanism::RawSpin => raw_spin::run(plan, self.placement),
            Mechanism::RawFutex => raw_futex::run(plan, self.placement),
            Mechanism::M3ipc(policy) => pingpong::run_pair(dc, plan, policy, self.placement),
        }
    }
}

/// A measured case and its ratio to its baseline.
#[derive(Clone, Debug)]
struct Row {
    case: Case,
    report: RunReport,
    /// p50 over the baseline's p50, with the baseline.
    ratio: Option<(f64, Case)>,
    /// Whether some other case uses this one as its baseline.
    is_baseline: bool,
}

/// Run every case and print the table (and write the CSV file if asked).
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.zero_copy {
        return zero_copy::run(args.count);
    }
    interrupt::install();
    let placements = if allowed_cpus()?.len() >= 2 {
        vec![Placement::Different, Placement::Same]
    } else {
        eprintln!("dvs bench: this process may use one CPU only: different-core cases skipped");
        vec![Placement::Same]
    };
    let mechanisms = [
        Mechanism::RawSpin,
        Mechanism::RawFutex,
        Mechanism::M3ipc(Policy::Adaptive),
        Mechanism::M3ipc(Policy::Block),
    ];
    let cases: Vec<Case> = mechanisms
        .iter()
        .flat_map(|&mechanism| {
            placements.iter().map(move |&placement| Case {
                mechanism,
                placement,
            })
        })
        .collect();

    // Open the CSV file first, so that a bad path fails before minutes of measuring.
    let csv_file = match &args.csv {
        Some(path) => Some((
            path,
            std::fs::File::create(path)
                .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?,
        )),
        None => None,
    };
    let measured = match measure_all(&cases, args.count) {
        Ok(m) => m,
        Err(e) => {
            if let Some((path, file)) = csv_file {
                drop(file);
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    let rows = with_ratios(&measured);
    print_text(&render(&rows, args.count))?;
    if let Some((path, mut file)) = csv_file {
        file.write_all(csv(&rows).as_bytes())
            .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// Run every case in a private DC, in order; stop at the first failure or at Ctrl-C.
fn measure_all(cases: &[Case], count: u64) -> Result<Vec<(Case, RunReport)>> {
    let scratch = ScratchDc::create("bench")?;
    let mut measured = Vec::new();
    for &case in cases {
        if interrupt::requested() {
            return Err(CliError::interrupted());
        }
        let what = format!("{} {}", case.mechanism.label(), case.placement.label());
        eprintln!("dvs bench: {what} ...");
        let report = case
            .run(scratch.name(), &case.plan(count))
            .map_err(|e| e.context(&what))?;
        measured.push((case, report));
    }
    Ok(measured)
}

fn with_ratios(measured: &[(Case, RunReport)]) -> Vec<Row> {
    let p50_of = |case: Case| {
        measured
            .iter()
            .find(|(c, _)| *c == case)
            .map(|(_, r)| r.latency.p50)
    };
    measured
        .iter()
        .map(|&(case, report)| Row {
            case,
            report,
            ratio: case.baseline().and_then(|base| {
                let b = p50_of(base).filter(|&p| p > 0)?;
                Some((report.latency.p50 as f64 / b as f64, base))
            }),
            is_baseline: measured
                .iter()
                .any(|(other, _)| other.baseline() == Some(case)),
        })
        .collect()
}

fn render(rows: &[Row], count: u64) -> String {
    let mut table = Table::new(&[
        ("CASE", Align::Left),
        ("PLACEMENT", Align::Left),
        ("N", Align::Right),
        ("P50", Align::Right),
        ("P90", Align::Right),
        ("P99", Align::Right),
        ("P99.9", Align::Right),
        ("MAX", Align::Right),
        ("P50/BASE", Align::Right),
        ("CPU C/S", Align::Left),
    ]);
    for row in rows {
        let l = &row.report.latency;
        let ratio = match (row.ratio, row.is_baseline) {
            (Some((r, _)), _) => format!("{r:.2}x"),
            (None, true) => "base".into(),
            (None, false) => "-".into(),
        };
        table.push(vec![
            row.case.mechanism.label(),
            row.case.placement.label().into(),
            l.n.to_string(),
            Nanos(l.p50 as f64).to_string(),
            Nanos(l.p90 as f64).to_string(),
            Nanos(l.p99 as f64).to_string(),
            Nanos(l.p999 as f64).to_string(),
            Nanos(l.max as f64).to_string(),
            ratio,
            format!("{}/{}", row.report.client_cpus, row.report.server_cpus),
        ]);
    }
    let mut out = table.render();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "P50/BASE: p50 over the p50 of raw-spin (different cores) or raw-futex (same core), \
         same run. CPU C/S: CPUs the client/server ran on."
    );
    for row in rows.iter().filter(|r| r.report.latency.n < count) {
        let _ = writeln!(
            out,
            "{} {}: stopped after {} s with {} of {} round trips: spinning on a shared core \
             waits for the scheduler.",
            row.case.mechanism.label(),
            row.case.placement.label(),
            SPIN_SAME_CORE_BUDGET.as_secs(),
            row.report.latency.n,
            count
        );
    }
    out
}

fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "case,placement,n,mean_ns,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,\
         throughput_per_s,p50_ratio,baseline,client_cpus,server_cpus\n",
    );
    for row in rows {
        let l = &row.report.latency;
        let (ratio, base) = match row.ratio {
            Some((r, b)) => (
                format!("{r:.4}"),
                format!("{} {}", b.mechanism.label(), b.placement.label()),
            ),
            None => (String::new(), String::new()),
        };
        // CPU lists use ';' so that they stay one field.
        let _ = writeln!(
            out,
            "{},{},{},{:.1},{},{},{},{},{},{:.0},{},{},{},{}",
            row.case.mechanism.label(),
            row.case.placement.label(),
            l.n,
            l.mean,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            row.report.throughput(),
            ratio,
            base,
            row.report.client_cpus.to_string().replace(',', ";"),
            row.report.server_cpus.to_string().replace(',', ";"),
        );
    }
    out
}
