//! Counting the wake-ups on a path: the voluntary context switches (a thread blocked, then was
//! woken) of every thread of the processes involved, read from `/proc` before and after, per
//! operation. Preemptions (involuntary switches) are counted apart: they are the scheduler's
//! doing, not the path's.

use std::path::{Path, PathBuf};

/// Whose switches are counted.
#[derive(Clone, Debug)]
pub enum Who {
    /// Every thread of this process.
    Process(u32),
    /// The calling thread only (the benchmark's caller, whose other threads are not on the path).
    ThisThread,
}

impl Who {
    /// The `status` files of its threads now.
    fn status_files(&self) -> Vec<PathBuf> {
        match self {
            Who::ThisThread => vec![PathBuf::from("/proc/thread-self/status")],
            Who::Process(pid) => std::fs::read_dir(format!("/proc/{pid}/task"))
                .map(|dir| {
                    dir.filter_map(|e| e.ok())
                        .map(|e| e.path().join("status"))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// (voluntary, involuntary) switches of its threads alive now; a thread that ended is lost.
    fn switches(&self) -> (u64, u64) {
        self.status_files()
            .iter()
            .map(|p| thread_switches(p))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    }
}

/// The two counters of one thread's status file (zeros if it is gone).
fn thread_switches(path: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_switches(&text)
}

fn parse_switches(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        field("voluntary_ctxt_switches:"),
        field("nonvoluntary_ctxt_switches:"),
    )
}

/// The counters of some processes at a start, to report per operation later.
#[derive(Debug)]
pub struct WakeCounter {
    who: Vec<(String, Who, (u64, u64))>,
}

impl WakeCounter {
    /// Take the starting counts of `who` (each with its name in the report).
    pub fn start(who: Vec<(String, Who)>) -> WakeCounter {
        WakeCounter {
            who: who
                .into_iter()
                .map(|(name, w)| {
                    let now = w.switches();
                    (name, w, now)
                })
                .collect(),
        }
    }

    /// `wake-ups per op: T (name a, ...); preemptions per op: P` over `ops` operations since
    /// the start; `None` without operations.
    pub fn report(&self, ops: u64) -> Option<String> {
        if ops == 0 {
            return None;
        }
        let per = |n: u64| n as f64 / ops as f64;
        let (mut total, mut preempted) = (0u64, 0u64);
        let mut parts = Vec::new();
        for (name, w, (v0, i0)) in &self.who {
            let (v, i) = w.switches();
            let (dv, di) = (v.saturating_sub(*v0), i.saturating_sub(*i0));
            total += dv;
            preempted += di;
            parts.push(format!("{name} {:.2}", per(dv)));
        }
        Some(format!(
            "wake-ups per operation {:.2} ({}); preemptions {:.2}; over {ops} operations",
            per(total),
            parts.join(", "),
            per(preempted)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_status_file() {
        let text = "Name:\tx\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(parse_switches(text), (12, 3));
        assert_eq!(parse_switches("garbage"), (0, 0));
    }

    #[test]
    fn counts_a_sleeping_thread() {
        let c = WakeCounter::start(vec![("me".into(), Who::ThisThread)]);
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let text = c.report(10).unwrap_or_default();
        // Twenty sleeps are at least twenty switches: two or more per operation.
        let per: f64 = text
            .split_whitespace()
            .nth(3)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(per >= 2.0, "{text}");
        assert!(c.report(0).is_none());
    }
}
