//! Where the two sides of a ping-pong run: choosing CPUs, pinning to them, and recording which
//! CPUs a side was seen on.
//!
//! On these machines the placement changes everything (docs/ARCHITECTURE.md section 5): spinning across two
//! cores costs about 120 ns a round trip, a futex wake across cores about 30 µs, a futex wake on
//! one core about 5 µs. So every measurement says where it ran.

use crate::error::{BenchError, Result};
use core::fmt;

/// Where the server and the client of a ping-pong run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Placement {
    /// Both pinned to the first CPU this process may use (CPU 0 on most machines).
    Same,
    /// Server pinned to the first allowed CPU, client to the second (CPU 0 and CPU 1).
    Different,
    /// Not pinned: the scheduler decides, and may move them.
    Any,
}

impl Placement {
    /// The CPUs to pin the server and the client to (`None`: not pinned).
    ///
    /// Errors: `Different` when this process may run on one CPU only.
    pub fn cpus(self) -> Result<(Option<usize>, Option<usize>)> {
        match self {
            Placement::Any => Ok((None, None)),
            Placement::Same => {
                let first = allowed_cpus()?.first().copied();
                Ok((first, first))
            }
            Placement::Different => match allowed_cpus()?[..] {
                [a, b, ..] => Ok((Some(a), Some(b))),
                _ => Err(BenchError::new(
                    "placement 'different' needs two CPUs, but this process may use only one",
                )),
            },
        }
    }

    /// Name used in tables and CSV files.
    pub fn label(self) -> &'static str {
        match self {
            Placement::Same => "same-core",
            Placement::Different => "different-cores",
            Placement::Any => "any",
        }
    }
}

/// The CPUs this process could run on when it first asked, ascending: placements choose among
/// these, even after the caller pinned itself to one of them for an earlier scenario.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    static FIRST: std::sync::OnceLock<Result<Vec<usize>>> = std::sync::OnceLock::new();
    FIRST.get_or_init(current_affinity).clone()
}

/// The CPUs the calling thread may run on now, ascending.
pub fn current_affinity() -> Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array, for which all zeros is a valid (empty) value.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t and the size passed is its size.
    let rc = unsafe { libc::sched_getaffinity(0, core::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Err(BenchError::new(format!(
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        )));
    }
    let bits = core::mem::size_of_val(&set) * 8;
    // SAFETY: every `cpu` is below the number of bits in `set`.
    Ok((0..bits)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pin the calling process (its current thread, the only one) to `cpu`.
pub fn pin(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is a plain bit array, for which all zeros is a valid (empty) value.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    if cpu >= core::mem::size_of_val(&set) * 8 {
        return Err(BenchError::new(format!("CPU {cpu} is out of range")));
    }
    // SAFETY: `cpu` is below the number of bits in `set` (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t and the size passed is its size; pid 0 is the caller.
    let rc = unsafe { libc::sched_setaffinity(0, core::mem::size_of_val(&set), &set) };
    if rc != 0 {
        return Err(BenchError::new(format!(
            "cannot pin to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// The CPU the caller runs on now, if the kernel says.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes no arguments and only reads per-thread state.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

/// The set of CPUs (0..64) a process was seen running on, as a bit mask. CPUs from 64 up are
/// not recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(pub u64);

impl CpuSet {
    /// Add `cpu` to the set (ignored from 64 up).
    pub fn insert(&mut self, cpu: usize) {
        if cpu < 64 {
            self.0 |= 1 << cpu;
        }
    }

    /// Add the CPU the caller runs on now.
    pub fn insert_current(&mut self) {
        if let Some(cpu) = current_cpu() {
            self.insert(cpu);
        }
    }
}

impl fmt::Display for CpuSet {
    /// `0`, `0,1`, or `?` for an empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpus: Vec<String> = (0..64)
            .filter(|&c| self.0 & (1 << c) != 0)
            .map(|c: u32| c.to_string())
            .collect();
        let text = if cpus.is_empty() {
            "?".to_string()
        } else {
            cpus.join(",")
        };
        f.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_set_display() {
        let mut s = CpuSet::default();
        assert_eq!(s.to_string(), "?");
        s.insert(1);
        s.insert(0);
        s.insert(70);
        assert_eq!(s.to_string(), "0,1");
    }
}
