//! The progress bar of a long transfer, on stderr.

use std::io::Write;
use std::time::{Duration, Instant};

/// Transfers above this many bytes show a bar: 4 MiB.
pub const THRESHOLD: u64 = 4 << 20;
/// Least time between two redraws.
const EVERY: Duration = Duration::from_millis(100);
/// Width of the bar in characters.
const WIDTH: usize = 30;

/// A bar drawn on stderr with carriage returns, or nothing.
pub struct Progress {
    on: bool,
    what: String,
    start: Instant,
    last: Option<Instant>,
    drawn: bool,
}

impl Progress {
    /// A bar for `what`, shown when `wanted` (stderr is a terminal, or `--progress`); whether
    /// the transfer is large enough is decided on the first update, when its size is known.
    pub fn new(wanted: bool, what: &str) -> Progress {
        Progress {
            on: wanted,
            what: what.to_string(),
            start: Instant::now(),
            last: None,
            drawn: false,
        }
    }

    /// `done` of `total` bytes moved.
    pub fn update(&mut self, done: u64, total: u64) {
        if !self.on || total <= THRESHOLD {
            return;
        }
        let now = Instant::now();
        if done < total && self.last.is_some_and(|t| now - t < EVERY) {
            return;
        }
        self.last = Some(now);
        let filled = (done.min(total) as f64 / total as f64 * WIDTH as f64) as usize;
        let secs = (now - self.start).as_secs_f64().max(1e-6);
        let line = format!(
            "\r{} [{}{}] {:>3}% {:.1}/{:.1} MiB {:.0} MB/s",
            self.what,
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            done.saturating_mul(100) / total.max(1),
            done as f64 / 1048576.0,
            total as f64 / 1048576.0,
            done as f64 / secs / 1e6
        );
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes()).and_then(|()| err.flush());
        self.drawn = true;
    }

    /// End the bar's line, if one was drawn.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
