//! Measuring the chosen scenarios: each is started (its peers spawned once), warmed up, then
//! timed in batches until its operation count or its time budget is reached; every operation's
//! time goes into an HDR histogram (3 significant digits, 1 ns to 1 hour).

use crate::error::{CliError, Result};
use crate::interrupt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use m3_benches::Scenario;
use m3_benches::percentiles::Summary;
use std::time::{Duration, Instant};

/// Largest value the histograms hold: one hour in nanoseconds.
const HIGHEST: u64 = 3_600_000_000_000;
/// A batch shorter than this doubles the next one (fewer returns to the loop).
const SHORT_BATCH: Duration = Duration::from_millis(20);
/// Largest batch.
const MAX_BATCH: u64 = 1 << 16;

/// How long each scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Timed operations at most.
    pub count: u64,
    /// Untimed warm-up first, this long.
    pub warmup: Duration,
    /// Stop timing after this long (at least one operation is timed).
    pub time: Duration,
}

impl Budget {
    /// `--quick`: about half a second a scenario.
    pub const QUICK: Budget = Budget {
        count: 20_000,
        warmup: Duration::from_millis(50),
        time: Duration::from_millis(400),
    };
    /// The default.
    pub const FULL: Budget = Budget {
        count: 200_000,
        warmup: Duration::from_millis(300),
        time: Duration::from_secs(3),
    };
}

/// One measured scenario.
#[derive(Clone, Debug)]
pub struct Row {
    /// What ran.
    pub scenario: Scenario,
    /// Its latency percentiles (ns).
    pub latency: Summary,
    /// Operations per second over the timed batches.
    pub msgs_per_s: f64,
    /// p50 over its baseline's p50, and the baseline.
    pub ratio: Option<(f64, Scenario)>,
    /// Whether another row takes this one as its baseline.
    pub is_baseline: bool,
    /// What the session said beside the numbers.
    pub note: Option<String>,
}

/// A scenario this machine cannot run, and why (nginx not installed).
pub type Skipped = (Scenario, String);

/// Measure every scenario in order, skipping those this machine cannot run (returned apart,
/// with the reason); stop at the first failure or at Ctrl-C.
pub fn measure_all(scenarios: &[Scenario], budget: &Budget) -> Result<(Vec<Row>, Vec<Skipped>)> {
    let bar = ProgressBar::new(scenarios.len() as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed}] {msg}") {
        bar.set_style(style);
    }
    let mut rows = Vec::with_capacity(scenarios.len());
    let mut skipped = Vec::new();
    for s in scenarios {
        if let Some(why) = s.unavailable() {
            eprintln!("dvs bench: {}: skipped: {why}", s.id());
            skipped.push((*s, why));
            bar.inc(1);
            continue;
        }
        if bar.is_hidden() {
            eprintln!("dvs bench: {} ...", s.id());
        }
        bar.set_message(s.id());
        // After Ctrl-C the peers die first (the terminal signals the whole process group):
        // what fails then is the interruption, not the scenario.
        let row = measure_one(s, budget).map_err(|e| {
            if interrupt::requested() {
                CliError::interrupted()
            } else {
                e.context(s.id())
            }
        });
        match row {
            Ok(r) => rows.push(r),
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((rows, skipped))
}

fn grow(chunk: u64, took: Duration) -> u64 {
    if took < SHORT_BATCH {
        (chunk * 2).min(MAX_BATCH)
    } else if took > SHORT_BATCH * 5 {
        (chunk / 2).max(1)
    } else {
        chunk
    }
}

fn measure_one(s: &Scenario, budget: &Budget) -> Result<Row> {
    let fail = |e: m3_benches::BenchError| CliError::new(e.to_string());
    let mut session = s.start().map_err(fail)?;
    let mut hist = new_histogram()?;
    let mut chunk: u64 = 1;
    let warm_start = Instant::now();
    while !s.warmed_by_start() && warm_start.elapsed() < budget.warmup {
        check_interrupt()?;
        let took = session.run(chunk, None).map_err(fail)?;
        chunk = grow(chunk, took);
    }
    let (mut done, mut busy) = (0u64, Duration::ZERO);
    let start = Instant::now();
    while done < budget.count && (done == 0 || start.elapsed() < budget.time) {
        check_interrupt()?;
        let n = chunk.min(budget.count - done);
        let mut record = |ns: u64| hist.saturating_record(ns.max(1));
        let took = session.run(n, Some(&mut record)).map_err(fail)?;
        busy += took;
        done += n;
        chunk = grow(chunk, took);
    }
    let outcome = session.finish().map_err(fail)?;
    if let Some(samples) = outcome.peer_samples {
        hist.reset();
        for ns in samples {
            hist.saturating_record(ns.max(1));
        }
    }
    Ok(Row {
        scenario: *s,
        latency: summary(&hist),
        msgs_per_s: if busy.is_zero() {
            0.0
        } else {
            done as f64 / busy.as_secs_f64()
        },
        ratio: None,
        is_baseline: false,
        note: outcome.note,
    })
}

fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIGHEST, 3).map_err(|e| CliError::new(format!("histogram: {e}")))
}

fn check_interrupt() -> Result<()> {
    if interrupt::requested() {
        Err(CliError::interrupted())
    } else {
        Ok(())
    }
}

/// The percentiles of `h` (all zeros when empty).
pub fn summary(h: &Histogram<u64>) -> Summary {
    if h.is_empty() {
        return Summary::default();
    }
    Summary {
        n: h.len(),
        mean: h.mean(),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
    }
}

/// Fill in each row's ratio to its baseline and whether it is one.
pub fn with_ratios(mut rows: Vec<Row>) -> Vec<Row> {
    let found: Vec<(Scenario, u64)> = rows.iter().map(|r| (r.scenario, r.latency.p50)).collect();
    for r in &mut rows {
        r.ratio = r.scenario.baseline().and_then(|b| {
            let (_, p50) = found.iter().find(|(s, _)| *s == b)?;
            (*p50 > 0).then(|| (r.latency.p50 as f64 / *p50 as f64, b))
        });
        r.is_baseline = found.iter().any(|(s, _)| s.baseline() == Some(r.scenario));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_histogram() {
        let mut h = new_histogram().unwrap_or_else(|e| panic!("{e}"));
        for v in 1..=1000u64 {
            h.saturating_record(v * 100);
        }
        let s = summary(&h);
        assert_eq!(s.n, 1000);
        // Three significant digits.
        assert!((49_900..=50_100).contains(&s.p50), "{s:?}");
        assert!((98_900..=99_100).contains(&s.p99), "{s:?}");
        assert!((99_900..=100_100).contains(&s.max), "{s:?}");
        assert_eq!(
            summary(&new_histogram().unwrap_or_else(|e| panic!("{e}"))).n,
            0
        );
    }

    #[test]
    fn batches_grow_and_shrink() {
        assert_eq!(grow(4, Duration::from_millis(1)), 8);
        assert_eq!(grow(MAX_BATCH, Duration::ZERO), MAX_BATCH);
        assert_eq!(grow(4, Duration::from_millis(50)), 4);
        assert_eq!(grow(4, Duration::from_secs(1)), 2);
        assert_eq!(grow(1, Duration::from_secs(1)), 1);
    }
}
