//! The proc table `muk2` prints after boot: one row per slot that is not free.

use m3ipc::{Dc, ProcInfo};

/// The table as text: a header, aligned rows, the legend.
pub fn render(dc: &Dc) -> String {
    let header = ["NR", "ENDPOINT", "NAME", "PID", "FLAGS", "SENT", "RECV"];
    let rows: Vec<[String; 7]> = dc
        .procs()
        .iter()
        .map(|p| {
            [
                p.nr.to_string(),
                p.endpoint.to_string(),
                if p.name.is_empty() {
                    "-".into()
                } else {
                    p.name.clone()
                },
                p.pid.to_string(),
                flags(p),
                p.sent.to_string(),
                p.received.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(String::from);
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            // NAME and FLAGS are text (left-aligned), the rest numbers.
            .map(|(i, (cell, w))| match i {
                2 | 4 => format!("{cell:<w$}"),
                _ => format!("{cell:>w$}"),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("FLAGS: {}, - none", ProcInfo::FLAG_LEGEND));
    out.push('\n');
    out
}

fn flags(p: &ProcInfo) -> String {
    let letters = p.flag_letters();
    if letters.is_empty() {
        "-".into()
    } else {
        letters
    }
}
