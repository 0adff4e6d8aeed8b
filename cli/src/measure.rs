//! The timed loop of every client: warm up, then time each round trip with [`Instant`].
//!
//! Reading the clock twice per round trip costs some tens of nanoseconds on these machines; every
//! mechanism pays it alike, so ratios between them stay fair.

use crate::error::Result;
use crate::placement::CpuSet;
use std::time::{Duration, Instant};

/// How many round trips a client makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Timed round trips.
    pub count: u64,
    /// Untimed round trips before them.
    pub warmup: u64,
    /// Stop early when this much time has passed since the start: a quarter of it at most for
    /// the warm-up, and at least one timed round trip is always made. `None`: no limit.
    pub budget: Option<Duration>,
}

impl Plan {
    /// `count` timed round trips after the default warm-up ([`warmup_for`]), with no time limit.
    pub fn new(count: u64) -> Plan {
        Plan {
            count,
            warmup: warmup_for(count),
            budget: None,
        }
    }
}

/// The default warm-up for `count` timed round trips: a tenth of them, within 100..=10 000.
pub fn warmup_for(count: u64) -> u64 {
    (count / 10).clamp(100, 10_000)
}

/// What a client's timed loop measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measured {
    /// Each timed round trip, in nanoseconds, in the order made.
    pub samples: Vec<u64>,
    /// Wall time of the timed round trips together.
    pub elapsed: Duration,
    /// CPUs the client was seen on (sampled every 1024 round trips).
    pub cpus: CpuSet,
}

/// Run `plan` with `round_trip` as one round trip; the first error stops the loop.
pub fn run(plan: &Plan, mut round_trip: impl FnMut() -> Result<()>) -> Result<Measured> {
    let start = Instant::now();
    let deadline = plan.budget.map(|b| start + b);
    let warm_deadline = plan.budget.map(|b| start + b / 4);
    let mut cpus = CpuSet::default();
    cpus.insert_current();
    for _ in 0..plan.warmup {
        round_trip()?;
        if warm_deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    let mut samples = Vec::with_capacity(usize::try_from(plan.count).unwrap_or(0));
    let begin = Instant::now();
    for i in 0..plan.count {
        let t0 = Instant::now();
        round_trip()?;
        let t1 = Instant::now();
        samples.push(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX));
        if i % 1024 == 0 {
            cpus.insert_current();
        }
        if deadline.is_some_and(|d| t1 >= d) {
            break;
        }
    }
    let elapsed = begin.elapsed();
    cpus.insert_current();
    Ok(Measured {
        samples,
        elapsed,
        cpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_budget() {
        let mut calls = 0;
        let m = run(&Plan::new(50), || {
            calls += 1;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((calls, m.samples.len()), (150, 50));

        let slow = Plan {
            count: 1_000,
            warmup: 1_000,
            budget: Some(Duration::from_millis(20)),
        };
        let m = run(&slow, || {
            std::thread::sleep(Duration::from_millis(1));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!m.samples.is_empty() && m.samples.len() < 100);
    }
}
