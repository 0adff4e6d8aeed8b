//! The rows as CSV: one line per scenario, times in nanoseconds.

use super::load::{self, Load};
use super::measure::Row;
use std::fmt::Write as _;

/// The header and one line per row; every line carries the run's load average at its start and
/// its end (empty when unknown).
pub fn render(rows: &[Row], run: &Load) -> String {
    let mut out = String::from(
        "group,scenario,placement,cpus,n,mean_ns,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,\
         msgs_per_s,mb_per_s,baseline,p50_ratio,note,load_start,load_end\n",
    );
    let (load_start, load_end) = (load::show(run.start), load::show(run.end));
    for r in rows {
        let l = &r.latency;
        let (ratio, base) = match &r.ratio {
            Some((x, b)) => (format!("{x:.4}"), b.id()),
            None => (String::new(), String::new()),
        };
        let mb = r.scenario.payload_bytes().map_or(String::new(), |b| {
            format!("{:.1}", r.msgs_per_s * b as f64 / 1e6)
        });
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.1},{},{},{},{},{},{:.0},{},{},{},{},{},{}",
            r.scenario.group().label(),
            r.scenario.name(),
            r.scenario.placement_label(),
            field(&r.scenario.cpus_text()),
            l.n,
            l.mean,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            r.msgs_per_s,
            mb,
            base,
            ratio,
            field(r.note.as_deref().unwrap_or("")),
            load_start,
            load_end,
        );
    }
    out
}

/// A text field, quoted when it holds a comma or a quote.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(field("1/0"), "1/0");
        assert_eq!(field("a, b"), "\"a, b\"");
        assert_eq!(field("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
