//! A client's result, as it crosses from the client process to the parent: one line of text.
//!
//! The line is `dvs-report key=value ...`; the parent ignores every other line of the client's
//! output, so a client may print more for people.

use crate::error::{CliError, Result};
use crate::measure::Measured;
use crate::percentiles::Summary;
use crate::placement::CpuSet;
use std::collections::HashMap;
use std::time::Duration;

/// First word of the report line.
const TAG: &str = "dvs-report";

/// What one client measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunReport {
    /// Round-trip percentiles in nanoseconds.
    pub latency: Summary,
    /// Wall time of the timed round trips together.
    pub elapsed: Duration,
    /// CPUs the client was seen on.
    pub client_cpus: CpuSet,
    /// CPUs the server was seen on (as the server reported them).
    pub server_cpus: CpuSet,
}

impl RunReport {
    /// The report of a client's timed loop, with the server's CPUs as it reported them.
    pub fn new(mut measured: Measured, server_cpus: CpuSet) -> RunReport {
        RunReport {
            latency: Summary::from_samples(&mut measured.samples),
            elapsed: measured.elapsed,
            client_cpus: measured.cpus,
            server_cpus,
        }
    }

    /// Round trips per second over the timed loop.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.latency.n as f64 / secs
        } else {
            0.0
        }
    }

    /// The report as one line (no newline).
    pub fn to_line(self) -> String {
        let l = &self.latency;
        format!(
            "{TAG} n={} mean={:.1} p50={} p90={} p99={} p999={} max={} elapsed_ns={} \
             client_cpus={:#x} server_cpus={:#x}",
            l.n,
            l.mean,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            self.elapsed.as_nanos(),
            self.client_cpus.0,
            self.server_cpus.0,
        )
    }

    /// Find and read the report line in a client's output.
    pub fn parse(output: &str) -> Result<RunReport> {
        let line = output
            .lines()
            .find_map(|l| l.strip_prefix(TAG))
            .ok_or_else(|| CliError::new("the client printed no report"))?;
        let fields: HashMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let get = |key: &str| {
            fields
                .get(key)
                .copied()
                .ok_or_else(|| CliError::new(format!("the client's report lacks {key}")))
        };
        let int = |key: &str| -> Result<u64> {
            let v = get(key)?;
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.map_err(|_| CliError::new(format!("the client's report has {key}={v}")))
        };
        let mean = get("mean")?;
        let mean: f64 = mean
            .parse()
            .map_err(|_| CliError::new(format!("the client's report has mean={mean}")))?;
        Ok(RunReport {
            latency: Summary {
                n: int("n")?,
                mean,
                p50: int("p50")?,
                p90: int("p90")?,
                p99: int("p99")?,
                p999: int("p999")?,
                max: int("max")?,
            },
            elapsed: Duration::from_nanos(int("elapsed_ns")?),
            client_cpus: CpuSet(int("client_cpus")?),
            server_cpus: CpuSet(int("server_cpus")?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trip() {
        let r = RunReport {
            latency: Summary {
                n: 10,
                mean: 12.5,
                p50: 11,
                p90: 20,
                p99: 30,
                p999: 31,
                max: 40,
            },
            elapsed: Duration::from_nanos(125),
            client_cpus: CpuSet(0b10),
            server_cpus: CpuSet(0b01),
        };
        let text = format!("hello\n{}\n", r.to_line());
        assert_eq!(RunReport::parse(&text).unwrap_or_else(|e| panic!("{e}")), r);
        assert!(RunReport::parse("nothing").is_err());
        assert!(RunReport::parse("dvs-report n=1").is_err());
    }
}
