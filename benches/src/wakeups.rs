//! Counting the wake-ups on a path: the voluntary context switches (a thread blocked, then was
//! woken) of every thread of the processes involved, read from `/proc` before and after, per
//! operation, per process and per thread name. Preemptions (involuntary switches) are counted
//! apart: they are the scheduler's doing, not the path's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Whose switches are counted.
#[derive(Clone, Debug)]
pub enum Who {
    /// Every thread of this process.
    Process(u32),
    /// The calling thread only (the benchmark's caller, whose other threads are not on the path).
    ThisThread,
}

/// One thread's counters: its name, voluntary and involuntary switches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Thread {
    name: String,
    voluntary: u64,
    involuntary: u64,
}

impl Who {
    /// The `/proc` directories of its threads now, keyed by thread id.
    fn thread_dirs(&self) -> Vec<(u64, PathBuf)> {
        match self {
            Who::ThisThread => vec![(0, PathBuf::from("/proc/thread-self"))],
            Who::Process(pid) => std::fs::read_dir(format!("/proc/{pid}/task"))
                .map(|dir| {
                    dir.filter_map(|e| e.ok())
                        .filter_map(|e| {
                            let tid = e.file_name().to_str()?.parse().ok()?;
                            Some((tid, e.path()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Its threads alive now (a thread that ended is lost).
    fn threads(&self) -> HashMap<u64, Thread> {
        self.thread_dirs()
            .into_iter()
            .map(|(tid, dir)| (tid, read_thread(&dir)))
            .collect()
    }
}

/// One thread's name and counters from its `/proc` directory (zeros if it is gone).
fn read_thread(dir: &Path) -> Thread {
    let text = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
    let (voluntary, involuntary) = parse_switches(&text);
    let name = text
        .lines()
        .find_map(|l| l.strip_prefix("Name:"))
        .map_or_else(|| "?".to_string(), |n| n.trim().to_string());
    Thread {
        name,
        voluntary,
        involuntary,
    }
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

/// The counters of some processes' threads at a start, to report per operation later.
#[derive(Debug)]
pub struct WakeCounter {
    who: Vec<(String, Who, HashMap<u64, Thread>)>,
}

impl WakeCounter {
    /// Take the starting counts of `who` (each with its name in the report).
    pub fn start(who: Vec<(String, Who)>) -> WakeCounter {
        WakeCounter {
            who: who
                .into_iter()
                .map(|(name, w)| {
                    let now = w.threads();
                    (name, w, now)
                })
                .collect(),
        }
    }

    /// `wake-ups per operation T (name a [thread x, ...], ...); preemptions P` over `ops`
    /// operations since the start (a thread started since counts from zero); `None` without
    /// operations. Threads of one name are summed, the busiest named first.
    pub fn report(&self, ops: u64) -> Option<String> {
        if ops == 0 {
            return None;
        }
        let per = |n: u64| n as f64 / ops as f64;
        let (mut total, mut preempted) = (0u64, 0u64);
        let mut parts = Vec::new();
        for (label, w, before) in &self.who {
            let mut by_name: Vec<(String, u64)> = Vec::new();
            let mut sum = 0u64;
            for (tid, t) in w.threads() {
                let t0 = before.get(&tid).cloned().unwrap_or_default();
                let dv = t.voluntary.saturating_sub(t0.voluntary);
                preempted += t.involuntary.saturating_sub(t0.involuntary);
                sum += dv;
                match by_name.iter_mut().find(|(n, _)| *n == t.name) {
                    Some((_, v)) => *v += dv,
                    None => by_name.push((t.name, dv)),
                }
            }
            total += sum;
            by_name.retain(|&(_, v)| per(v) >= 0.01);
            by_name.sort_by_key(|t| std::cmp::Reverse(t.1));
            let threads = if by_name.len() > 1 {
                let list: Vec<String> = by_name
                    .iter()
                    .map(|(n, v)| format!("{n} {:.2}", per(*v)))
                    .collect();
                format!(" [{}]", list.join(", "))
            } else {
                String::new()
            };
            parts.push(format!("{label} {:.2}{threads}", per(sum)));
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
