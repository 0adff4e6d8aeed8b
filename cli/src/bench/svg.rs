//! The plot: one line per scenario, its p50, p90, p99, p99.9 and max on a logarithmic latency
//! axis, as a self-contained SVG file (written here, no plotting library).

use super::measure::Row;
use std::fmt::Write as _;

const WIDTH: f64 = 1100.0;
/// Right edge of the scenario labels.
const LABEL_RIGHT: f64 = 330.0;
const PLOT_LEFT: f64 = 345.0;
const PLOT_RIGHT: f64 = 1070.0;
const TOP: f64 = 64.0;
const ROW: f64 = 18.0;
const BOTTOM: f64 = 44.0;

/// The percentiles drawn, with their legend name and colour.
const MARKS: [(&str, &str); 4] = [
    ("p50", "#1f77b4"),
    ("p90", "#2ca02c"),
    ("p99", "#ff7f0e"),
    ("p99.9", "#d62728"),
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A decade's label: 1 ns, 10 ns, 100 ns, 1 µs, ...
fn decade_label(exp: i32) -> String {
    let units = ["ns", "µs", "ms", "s"];
    let unit = (exp / 3).clamp(0, 3);
    let value = 10f64.powi(exp - unit * 3);
    format!("{value} {}", units[unit as usize])
}

/// The log axis: decades `lo..=hi` of nanoseconds onto the plot's width.
struct Axis {
    lo: i32,
    hi: i32,
}

impl Axis {
    fn fit(rows: &[Row]) -> Axis {
        let smallest = rows.iter().map(|r| r.latency.p50.max(1)).min().unwrap_or(1);
        let largest = rows
            .iter()
            .map(|r| r.latency.max.max(1))
            .max()
            .unwrap_or(10);
        let lo = (smallest as f64).log10().floor() as i32;
        let hi = ((largest as f64).log10().ceil() as i32).max(lo + 1);
        Axis { lo, hi }
    }

    fn x(&self, ns: u64) -> f64 {
        let v = (ns.max(1) as f64).log10();
        let f = (v - self.lo as f64) / (self.hi - self.lo) as f64;
        PLOT_LEFT + f.clamp(0.0, 1.0) * (PLOT_RIGHT - PLOT_LEFT)
    }
}

/// The SVG document for `rows`, with `title` on top.
pub fn render(rows: &[Row], title: &str) -> String {
    let axis = Axis::fit(rows);
    let height = TOP + ROW * rows.len() as f64 + BOTTOM;
    let bottom = TOP + ROW * rows.len() as f64;
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // Legend.
    let mut lx = PLOT_LEFT;
    for (name, colour) in MARKS {
        let _ = writeln!(
            s,
            r#"<circle cx="{lx}" cy="42" r="4" fill="{colour}"/><text x="{}" y="46">{name}</text>"#,
            lx + 8.0
        );
        lx += 70.0;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{lx}" y1="37" x2="{lx}" y2="47" stroke="black" stroke-width="2"/><text x="{}" y="46">max</text><text x="{}" y="46" fill="#555">latency per operation, log scale</text>"##,
        lx + 6.0,
        lx + 60.0
    );
    // Row bands and labels.
    for (i, r) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        if i % 2 == 0 {
            let _ = writeln!(
                s,
                r##"<rect x="0" y="{y}" width="{WIDTH}" height="{ROW}" fill="#f3f3f3"/>"##
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{LABEL_RIGHT}" y="{}" text-anchor="end">{}</text>"#,
            y + ROW * 0.7,
            escape(&format!(
                "{}/{} {}",
                r.scenario.group().label(),
                r.scenario.name(),
                r.scenario.placement_label()
            ))
        );
    }
    // Decade grid lines and their labels.
    for exp in axis.lo..=axis.hi {
        let x = axis.x(10u64.saturating_pow(exp.max(0) as u32));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}" stroke="#bbb" stroke-width="1"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            bottom + 16.0,
            decade_label(exp)
        );
    }
    // Each row's percentiles.
    for (i, r) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64 + ROW / 2.0;
        let l = &r.latency;
        if l.n == 0 {
            continue;
        }
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" y1="{y}" x2="{:.1}" y2="{y}" stroke="#888" stroke-width="1.5"/>"##,
            axis.x(l.p50),
            axis.x(l.max)
        );
        let mx = axis.x(l.max);
        let _ = writeln!(
            s,
            r#"<line x1="{mx:.1}" y1="{}" x2="{mx:.1}" y2="{}" stroke="black" stroke-width="2"/>"#,
            y - 5.0,
            y + 5.0
        );
        for ((_, colour), v) in MARKS.iter().zip([l.p50, l.p90, l.p99, l.p999]).rev() {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{y}" r="4" fill="{colour}"/>"#,
                axis.x(v)
            );
        }
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">round trip (or operation) time</text>"##,
        (PLOT_LEFT + PLOT_RIGHT) / 2.0,
        bottom + 34.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use m3_benches::percentiles::Summary;
    use m3_benches::placement::Placement;
    use m3_benches::{Kind, Scenario};

    fn row(kind: Kind, p50: u64, max: u64) -> Row {
        Row {
            scenario: Scenario::new(kind, Placement::Same),
            latency: Summary {
                n: 10,
                mean: p50 as f64,
                p50,
                p90: p50 * 2,
                p99: p50 * 3,
                p999: p50 * 4,
                max,
            },
            msgs_per_s: 1.0,
            ratio: None,
            is_baseline: false,
            note: None,
        }
    }

    #[test]
    fn log_axis_and_document() {
        let rows = [
            row(Kind::RawSpin, 150, 9_000),
            row(Kind::Pipe, 5_000, 2_000_000),
        ];
        let a = Axis::fit(&rows);
        assert_eq!((a.lo, a.hi), (2, 7));
        assert!((a.x(100) - PLOT_LEFT).abs() < 1e-9);
        assert!((a.x(10_000_000) - PLOT_RIGHT).abs() < 1e-9);
        // Equal ratios are equal distances.
        assert!(((a.x(1_000) - a.x(100)) - (a.x(100_000) - a.x(10_000))).abs() < 1e-9);
        let svg = render(&rows, "a <title> & more");
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt;title&gt; &amp; more"));
        assert!(
            svg.contains("sendrec/raw-spin same-core") && svg.contains("sendrec/pipe same-core")
        );
        assert_eq!(svg.matches("<circle").count(), 4 + 2 * 4);
        assert_eq!(decade_label(2), "100 ns");
        assert_eq!(decade_label(4), "10 µs");
        assert_eq!(decade_label(9), "1 s");
    }
}
