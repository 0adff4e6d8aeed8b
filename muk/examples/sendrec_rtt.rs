//! Round trip of `sendrec` between two servers of one host, under MUK2 (coroutines) and MUK
//! (threads), in one run: the numbers of the MUK2 issue's closing note.
//!
//! ```text
//! cargo run --release -p muk --example sendrec_rtt [-- ROUNDS [muk2|muk]]
//! taskset -c 0 cargo run --release -p muk --example sendrec_rtt   # everything on one core
//! ```
//!
//! Each round trip is timed with the CPU's time-stamp counter (calibrated against the clock
//! over the whole run), because reading the clock itself costs ~25 ns here; two counter reads
//! still cost ~20 ns, which every percentile includes: "net p50" subtracts their median,
//! measured in the same run. The mean is that of a separate batch with nothing but the calls in
//! its loop, timed once.

mod ponger;

use m3ipc::{Dc, DcConfig, Errno, Message, Timeout, WaitPolicy};
use muk::{Host, Hosted, Ipc, Runner, Server};
use ponger::Ponger;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Per-round-trip ticks, the timed run's wall time and ticks, and an untimed batch's wall time.
type Sample = (Vec<u64>, Duration, u64, Duration);

struct Pinger {
    rounds: usize,
    out: mpsc::Sender<Sample>,
}

fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions; it only reads the time-stamp counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Instant::now().elapsed().as_nanos() as u64
    }
}

impl Server for Pinger {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        let dst = ipc.dc().getprocinfo(5)?.endpoint;
        let mut m = Message::new(1);
        for _ in 0..self.rounds / 10 {
            ipc.sendrec(dst, &mut m, Timeout::Forever)?;
        }
        // The batch mean, with nothing but the calls in the loop.
        let w0 = Instant::now();
        for _ in 0..self.rounds {
            ipc.sendrec(dst, &mut m, Timeout::Forever)?;
        }
        let batch = w0.elapsed();
        // Percentiles: each call between two reads of the time-stamp counter.
        let mut t = Vec::with_capacity(self.rounds);
        let (w0, c0) = (Instant::now(), ticks());
        for _ in 0..self.rounds {
            let a = ticks();
            ipc.sendrec(dst, &mut m, Timeout::Forever)?;
            t.push(ticks() - a);
        }
        let (wall, cycles) = (w0.elapsed(), ticks() - c0);
        let _ = self.out.send((t, wall, cycles, batch));
        loop {
            match ipc.sleep(Duration::from_secs(3600)) {
                Err(Errno::EDVSSHUTDOWN) => return Ok(()),
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
    }
}

fn measure(
    runner: Runner,
    policy: WaitPolicy,
    rounds: usize,
) -> Result<Sample, Box<dyn std::error::Error>> {
    let name = format!("rtt{}", std::process::id());
    let dc = Dc::create_with_free_id(&name, &DcConfig::default())?;
    let (tx, rx) = mpsc::channel();
    let hosted = |name: &str, nr, server: Box<dyn Server>| Hosted {
        name: name.into(),
        nr,
        stack_size: 64 * 1024,
        server,
    };
    let host = Host::start_with(
        &dc,
        vec![
            hosted("pong", 5, Box::new(Ponger)),
            hosted("ping", 6, Box::new(Pinger { rounds, out: tx })),
        ],
        runner,
        policy,
    );
    let r = match host {
        Ok(host) => {
            let r = rx.recv_timeout(Duration::from_secs(120));
            host.stop();
            r.map_err(|e| e.into())
        }
        Err(e) => Err(e.into()),
    };
    drop(dc);
    let _ = Dc::remove(&name);
    r
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`.
    let cpus = unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set);
        libc::CPU_COUNT(&set)
    };
    println!("sendrec round trip between two servers, {rounds} rounds, {cpus} CPU(s) allowed");
    println!(
        "{:<24} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>9}",
        "runner", "p50 ns", "net p50", "p90 ns", "p99 ns", "p99.9 ns", "max ns", "mean ns"
    );
    // What two reads of the time-stamp counter around nothing cost: every percentile below
    // includes it once; "net p50" subtracts its median.
    let overhead = {
        let mut t: Vec<u64> = (0..100_000)
            .map(|_| {
                let a = ticks();
                std::hint::black_box(());
                ticks() - a
            })
            .collect();
        t.sort_unstable();
        t[t.len() / 2]
    };
    let only = std::env::args().nth(2);
    let mut p50s = Vec::new();
    for (label, runner, policy) in [
        (
            "MUK2 (coroutines)",
            Runner::Coroutines,
            WaitPolicy::Adaptive,
        ),
        (
            "MUK (threads, adaptive)",
            Runner::Threads,
            WaitPolicy::Adaptive,
        ),
        ("MUK (threads, block)", Runner::Threads, WaitPolicy::Block),
    ] {
        if only
            .as_deref()
            .is_some_and(|o| !label.to_lowercase().starts_with(o))
        {
            continue;
        }
        let (mut t, wall, cycles, batch) = measure(runner, policy, rounds)?;
        let ns_per_tick = wall.as_nanos() as f64 / cycles.max(1) as f64;
        t.sort_unstable();
        let at = |q: f64| {
            let i = ((t.len() as f64 * q) as usize).min(t.len() - 1);
            (t[i] as f64 * ns_per_tick) as u64
        };
        let mean = batch.as_nanos() as f64 / rounds as f64;
        let net = (t[t.len() / 2].saturating_sub(overhead) as f64 * ns_per_tick) as u64;
        println!(
            "{label:<24} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>9.0}",
            at(0.5),
            net,
            at(0.9),
            at(0.99),
            at(0.999),
            at(1.0),
            mean
        );
        p50s.push(at(0.5).max(1));
    }
    if let [muk2, adaptive, block] = p50s[..] {
        println!(
            "MUK2 p50 is {:.1}x faster than MUK adaptive, {:.1}x faster than MUK block",
            adaptive as f64 / muk2 as f64,
            block as f64 / muk2 as f64
        );
    }
    Ok(())
}
