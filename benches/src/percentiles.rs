//! Latency percentiles: the summary that `dvs demo` and `dvs bench` print.
//!
//! Percentiles use the nearest-rank method on the sorted samples: the p-th percentile is the
//! smallest sample such that at least p % of all samples are at or below it. So p50 of
//! `[1, 2, 3, 4]` is 2, and p100 is always the maximum.

use core::fmt;

/// Percentiles of a set of round-trip times, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Summary {
    /// Summarize `samples` (sorted in place). An empty slice gives all zeros.
    pub fn from_samples(samples: &mut [u64]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_unstable();
        let sum: u128 = samples.iter().map(|&s| s as u128).sum();
        Summary {
            n: samples.len() as u64,
            mean: sum as f64 / samples.len() as f64,
            p50: percentile(samples, 500),
            p90: percentile(samples, 900),
            p99: percentile(samples, 990),
            p999: percentile(samples, 999),
            max: samples[samples.len() - 1],
        }
    }
}

/// The percentile at `per_mille` (tenths of a percent, 1..=1000: 999 is p99.9) of `sorted`, by
/// nearest rank in exact integer arithmetic; 0 for an empty slice.
pub fn percentile(sorted: &[u64], per_mille: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len() as u128;
    let rank = (per_mille as u128 * n).div_ceil(1000);
    let rank = usize::try_from(rank).unwrap_or(usize::MAX);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A duration in nanoseconds, shown with a unit that keeps three significant digits:
/// `850 ns`, `4.21 µs`, `31.0 µs`, `1.20 ms`, `2.50 s`.
pub struct Nanos(pub f64);

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let scaled = |value: f64, unit: &str| {
            if value < 10.0 {
                format!("{value:.2} {unit}")
            } else if value < 100.0 {
                format!("{value:.1} {unit}")
            } else {
                format!("{value:.0} {unit}")
            }
        };
        let text = if ns < 1e3 {
            format!("{ns:.0} ns")
        } else if ns < 1e6 {
            scaled(ns / 1e3, "µs")
        } else if ns < 1e9 {
            scaled(ns / 1e6, "ms")
        } else {
            scaled(ns / 1e9, "s")
        };
        f.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v = [1, 2, 3, 4];
        assert_eq!(percentile(&v, 500), 2);
        assert_eq!(percentile(&v, 750), 3);
        assert_eq!(percentile(&v, 1000), 4);
        assert_eq!(percentile(&v, 1), 1);
        assert_eq!(percentile(&[], 500), 0);
        let big: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&big, 999), 999);
        assert_eq!(percentile(&big, 990), 990);
    }

    #[test]
    fn summary() {
        let mut v = vec![5, 1, 4, 2, 3];
        let s = Summary::from_samples(&mut v);
        assert_eq!((s.n, s.p50, s.max), (5, 3, 5));
        assert!((s.mean - 3.0).abs() < 1e-9);
        assert_eq!(Summary::from_samples(&mut []), Summary::default());
    }

    #[test]
    fn units() {
        assert_eq!(Nanos(850.0).to_string(), "850 ns");
        assert_eq!(Nanos(4210.0).to_string(), "4.21 µs");
        assert_eq!(Nanos(31_040.0).to_string(), "31.0 µs");
        assert_eq!(Nanos(1_200_000.0).to_string(), "1.20 ms");
        assert_eq!(Nanos(2.5e9).to_string(), "2.50 s");
    }
}
