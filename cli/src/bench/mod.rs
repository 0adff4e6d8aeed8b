//! `dvs bench`: every scenario of the benchmark catalogue (`m3_benches::scenario`, the same
//! scenarios as `cargo bench -p m3-benches`) measured in one run, each operation timed and
//! kept in an HDR histogram; a percentile table with msgs/s, the ratio of each row's p50 to the
//! p50 of its baseline (measured in the same run) and the CPUs each side was pinned to; the
//! targets of the benchmark issue checked against the rows; a CSV file and an SVG plot. The
//! load average at the start and at the end is printed, written to the CSV, and warned about
//! when above 1.0 (see `load`).
//!
//! Each scenario's peer processes are `dvs` itself re-executed as `dvs __bench-peer ROLE ...`.

mod csv;
mod load;
mod measure;
mod svg;
mod targets;

use crate::error::{CliError, Result};
use crate::interrupt;
use crate::table::{Align, Table, print_text};
use clap::Args;
use m3_benches::percentiles::Nanos;
use m3_benches::{Group, Scenario, scenario};
use measure::{Budget, Row};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Most operations one scenario may time.
pub const MAX_COUNT: u64 = 10_000_000;

/// Arguments of `dvs bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A short run (a fraction of a second per scenario, under a minute in all).
    #[arg(long)]
    pub quick: bool,
    /// Directory for bench.csv and bench.svg (created if missing).
    #[arg(long, default_value = "dvs-bench")]
    pub out: PathBuf,
    /// Time at most this many operations per scenario (fewer if its time budget runs out).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
    pub count: Option<u64>,
    /// Only the scenarios whose id (GROUP/NAME/PLACEMENT, e.g. sendrec/fabric-adaptive/same-core)
    /// contains this text. Baselines of the chosen rows are measured too.
    #[arg(long)]
    pub only: Option<String>,
    /// Only the zero_copy group (the same as --only zero_copy/).
    #[arg(long, conflicts_with = "only")]
    pub zero_copy: bool,
}

/// Run the chosen scenarios, print the table and the targets, write the files.
pub fn run(args: &BenchArgs) -> Result<()> {
    interrupt::install();
    let two = scenario::two_cpus();
    if !two {
        eprintln!("dvs bench: this process may use one CPU only: different-core rows skipped");
    }
    let filter = if args.zero_copy {
        Some("zero_copy/".to_string())
    } else {
        args.only.clone()
    };
    let chosen = choose(two, filter.as_deref());
    if chosen.is_empty() {
        return Err(CliError::new(format!(
            "no scenario id contains {:?}",
            filter.unwrap_or_default()
        )));
    }
    // Make the output directory first, so that a bad path fails before minutes of measuring.
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::new(format!("{}: {e}", args.out.display())))?;
    let mut budget = if args.quick {
        Budget::QUICK
    } else {
        Budget::FULL
    };
    if let Some(c) = args.count {
        budget.count = c;
    }
    let start = load::now();
    eprintln!(
        "dvs bench: load average {} at the start",
        start.map_or("unknown".to_string(), |l| format!("{l:.2}"))
    );
    if let Some(w) = load::warning("start", start) {
        eprintln!("{w}");
    }
    let overhead = m3_benches::clock::overhead_ns();
    let (rows, skipped) = measure::measure_all(&chosen, &budget)?;
    let load = load::Load {
        start,
        end: load::now(),
    };
    let rows = measure::with_ratios(rows);
    let mut text = render(&rows);
    for (s, why) in &skipped {
        let _ = writeln!(text, "{}: skipped: {why}", s.id());
    }
    let _ = writeln!(
        text,
        "Timer: two time-stamp counter reads cost {overhead} ns here, included once in every \
         sample."
    );
    text.push_str(&targets::render(&rows, &skipped));
    let _ = writeln!(text, "{}", load.line());
    print_text(&text)?;
    for w in [
        load::warning("start", load.start),
        load::warning("end", load.end),
    ]
    .into_iter()
    .flatten()
    {
        eprintln!("{w}");
    }
    let csv_path = args.out.join("bench.csv");
    let svg_path = args.out.join("bench.svg");
    write(&csv_path, &csv::render(&rows, &load))?;
    write(&svg_path, &svg::render(&rows, &title()))?;
    eprintln!(
        "dvs bench: wrote {} and {}",
        csv_path.display(),
        svg_path.display()
    );
    Ok(())
}

/// The scenarios whose id contains `filter` (all without one), with the baselines they need,
/// in catalogue order.
fn choose(two_cpus: bool, filter: Option<&str>) -> Vec<Scenario> {
    let all: Vec<Scenario> = Group::ALL
        .iter()
        .flat_map(|&g| scenario::group(g, two_cpus))
        .collect();
    let wanted = |s: &Scenario| filter.is_none_or(|f| s.id().contains(f));
    all.iter()
        .filter(|s| wanted(s) || all.iter().any(|o| wanted(o) && o.baseline() == Some(**s)))
        .copied()
        .collect()
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| CliError::new(format!("{}: {e}", path.display())))
}

/// The plot's title: what ran where.
fn title() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "dvs bench: latency percentiles per scenario ({} CPUs, Linux {}, {})",
        m3_benches::placement::allowed_cpus().map_or(0, |c| c.len()),
        kernel.trim(),
        host.trim()
    )
}

fn render(rows: &[Row]) -> String {
    let mut table = Table::new(&[
        ("SCENARIO", Align::Left),
        ("PLACEMENT", Align::Left),
        ("CPU C/S", Align::Left),
        ("N", Align::Right),
        ("P50", Align::Right),
        ("P90", Align::Right),
        ("P99", Align::Right),
        ("P99.9", Align::Right),
        ("MAX", Align::Right),
        ("MSGS/S", Align::Right),
        ("VS BASE", Align::Right),
        ("BASELINE", Align::Left),
    ]);
    for r in rows {
        let l = &r.latency;
        let (ratio, base) = match (&r.ratio, r.is_baseline) {
            (Some((x, b)), _) => (format!("{x:.2}x"), b.name()),
            (None, true) => ("base".into(), String::new()),
            (None, false) => ("-".into(), String::new()),
        };
        table.push(vec![
            format!("{}/{}", r.scenario.group().label(), r.scenario.name()),
            r.scenario.placement_label().into(),
            r.scenario.cpus_text(),
            l.n.to_string(),
            Nanos(l.p50 as f64).to_string(),
            Nanos(l.p90 as f64).to_string(),
            Nanos(l.p99 as f64).to_string(),
            Nanos(l.p999 as f64).to_string(),
            Nanos(l.max as f64).to_string(),
            format!("{:.0}", r.msgs_per_s),
            ratio,
            base,
        ]);
    }
    let mut out = table.render();
    let _ = writeln!(
        out,
        "VS BASE: p50 over the p50 of the BASELINE row (same placement unless the name says), \
         same run; below 1 is faster. CPU C/S: the CPUs the client and the server were pinned to."
    );
    for r in rows {
        if let Some(note) = &r.note {
            let _ = writeln!(out, "{}: {note}", r.scenario.id());
        }
        if let Some(b) = r.scenario.payload_bytes() {
            let _ = writeln!(
                out,
                "{}: {:.0} MB/s",
                r.scenario.id(),
                r.msgs_per_s * b as f64 / 1e6
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choosing_brings_baselines_along() {
        let chosen = choose(true, Some("sendrec/fabric-adaptive/same-core"));
        let ids: Vec<String> = chosen.iter().map(|s| s.id()).collect();
        assert_eq!(
            ids,
            [
                "sendrec/fabric-adaptive/same-core",
                "sendrec/raw-futex/same-core"
            ]
        );
        assert!(choose(true, Some("no-such")).is_empty());
        // `--only remote` brings the two remote rows and their TCP baselines, on loopback and
        // over veth.
        let remote: Vec<String> = choose(true, Some("remote"))
            .iter()
            .map(|s| s.id())
            .collect();
        assert_eq!(remote.len(), 8, "{remote:?}");
        assert!(remote.iter().any(|id| id == "remote/m3-sendrec-64B/veth"));
        assert!(
            remote
                .iter()
                .any(|id| id == "remote/tcp-ping-pong-64B/veth")
        );
        assert!(
            remote
                .iter()
                .any(|id| id == "remote/m3-sendrec-64B/loopback")
        );
        assert!(remote.iter().all(|id| id.starts_with("remote/")));
        assert!(
            remote
                .iter()
                .any(|id| id.starts_with("remote/tcp-ping-pong-64B/"))
        );
        assert!(
            remote
                .iter()
                .any(|id| id.starts_with("remote/tcp-stream-64M/"))
        );
        // `--only web` brings the MUK2 web rows and their nginx baselines, both placements.
        let web: Vec<String> = choose(true, Some("web/muk2"))
            .iter()
            .map(|s| s.id())
            .collect();
        assert_eq!(web.len(), 8, "{web:?}");
        assert_eq!(
            web.iter().filter(|id| id.starts_with("web/nginx-")).count(),
            4
        );
        let all = choose(true, None);
        assert!(all.len() > 30 && all.iter().all(|s| s.id().contains('/')));
    }
}
