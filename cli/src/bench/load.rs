//! The machine's load while `dvs bench` runs: the 1-minute load average from `/proc/loadavg`,
//! read at the start and at the end. Timings taken while other work competes for the CPUs are
//! not comparable with quiet ones, so a run says how loaded it was and warns above
//! [`QUIET_LIMIT`].

use std::path::Path;

/// The highest load average a run counts as quiet at.
pub const QUIET_LIMIT: f64 = 1.0;

/// Where the load is read (`DVS_BENCH_LOADAVG` names another file in the same format, for
/// tests).
fn source() -> std::path::PathBuf {
    std::env::var_os("DVS_BENCH_LOADAVG").map_or_else(|| "/proc/loadavg".into(), Into::into)
}

/// The 1-minute load average now, `None` if it cannot be read.
pub fn now() -> Option<f64> {
    read(&source())
}

fn read(path: &Path) -> Option<f64> {
    parse(&std::fs::read_to_string(path).ok()?)
}

/// The first field of a `/proc/loadavg` line.
fn parse(text: &str) -> Option<f64> {
    text.split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .filter(|l| l.is_finite() && *l >= 0.0)
}

/// The load average at the start and at the end of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Load {
    /// Before the first scenario.
    pub start: Option<f64>,
    /// After the last one.
    pub end: Option<f64>,
}

/// A load average as printed and written to the CSV (empty when unknown).
pub fn show(l: Option<f64>) -> String {
    l.map_or(String::new(), |l| format!("{l:.2}"))
}

/// The warning for a load average read `when` ("start", "end"), if it is above the limit.
pub fn warning(when: &str, l: Option<f64>) -> Option<String> {
    l.filter(|&l| l > QUIET_LIMIT).map(|l| {
        format!(
            "dvs bench: warning: load average {l:.2} at the {when}, above {QUIET_LIMIT:.1}: \
             other work competes for the CPUs, so these timings are not a quiet run's"
        )
    })
}

impl Load {
    /// The line the table ends with.
    pub fn line(&self) -> String {
        let at = |l: Option<f64>| l.map_or("unknown".to_string(), |l| format!("{l:.2}"));
        format!(
            "Load average (1 min, /proc/loadavg): {} at the start, {} at the end; quiet is at \
             most {QUIET_LIMIT:.1}.",
            at(self.start),
            at(self.end)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_field() {
        assert_eq!(parse("0.42 0.30 0.25 1/123 4567\n"), Some(0.42));
        assert_eq!(parse("3.5 1 1 1/1 1"), Some(3.5));
        assert_eq!(parse(""), None);
        assert_eq!(parse("busy 1 1"), None);
        assert_eq!(parse("-1 0 0"), None);
        assert_eq!(parse("NaN 0 0"), None);
    }

    #[test]
    fn warns_only_above_the_limit() {
        assert!(warning("start", Some(0.99)).is_none());
        assert!(warning("start", Some(1.0)).is_none());
        assert!(warning("start", None).is_none());
        let w = warning("end", Some(2.25)).unwrap_or_default();
        assert!(
            w.contains("2.25 at the end") && w.contains("above 1.0"),
            "{w}"
        );
    }

    #[test]
    fn the_line_says_both() {
        let l = Load {
            start: Some(0.5),
            end: None,
        };
        assert_eq!(
            l.line(),
            "Load average (1 min, /proc/loadavg): 0.50 at the start, unknown at the end; quiet \
             is at most 1.0."
        );
    }
}
