//! An outside process calling a server: a MUK2 server (a coroutine of a unikernel process)
//! against a plain fabric server process, in one run, same placement. The numbers of the MUK2
//! issue's closing note for "an external process does sendrec to a MUK2 server".
//!
//! ```text
//! cargo run --release -p muk --example outside_rtt [-- ROUNDS]
//! ```
//!
//! Every side is its own process (this binary re-executed in a role), pinned to a stated CPU.
//! Two rhythms: back to back (the server may still be spinning when the next request comes),
//! and with a 1 ms pause before each request, so that every request finds the server side
//! asleep (for MUK2: every coroutine blocked and the scheduler asleep on its doorbell). The two
//! servers take turns, three runs each per row, and each row shows the run with the median p50.

mod ponger;

use m3ipc::{ANY, Dc, DcConfig, Message, Timeout};
use muk::{Host, Hosted, Runner};
use ponger::Ponger;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER_NR: i32 = 5;
const CLIENT_NR: i32 = 100;
/// Runs of each server per row (the row shows the median one).
const REPEAT: usize = 3;

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes inside it; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Roles: `fabric-server DC CPU`, `muk2-server DC CPU`, `client DC CPU ROUNDS PAUSE_US`.
fn role(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let dc = Dc::open(&args[1])?;
    pin(args[2].parse()?);
    match args[0].as_str() {
        "fabric-server" => {
            let p = dc.bind_named(SERVER_NR, "fabric")?;
            println!("READY");
            let mut m = Message::default();
            loop {
                match p.receive(ANY, &mut m, Timeout::Forever) {
                    Ok(()) => {
                        let _ = p.reply(m.m_source, &m);
                    }
                    Err(_) => return Ok(()),
                }
            }
        }
        "muk2-server" => {
            let host = Host::start(
                &dc,
                vec![
                    Hosted {
                        name: "pong".into(),
                        nr: SERVER_NR,
                        stack_size: 64 * 1024,
                        server: Box::new(Ponger),
                    },
                    Hosted {
                        name: "idle".into(),
                        nr: SERVER_NR + 1,
                        stack_size: 64 * 1024,
                        server: Box::new(Ponger),
                    },
                ],
                Runner::Coroutines,
            )?;
            println!("READY");
            // Until the orchestrator kills us.
            let _ = host.join();
            Ok(())
        }
        "client" => {
            let rounds: usize = args[3].parse()?;
            let pause = Duration::from_micros(args[4].parse()?);
            let p = dc.bind(CLIENT_NR)?;
            let server = dc.wait4bind(SERVER_NR, Timeout::Millis(5_000))?;
            let mut m = Message::new(1);
            for _ in 0..rounds / 10 {
                p.sendrec(server, &mut m, Timeout::Millis(5_000))?;
            }
            let mut t = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
                let t0 = Instant::now();
                p.sendrec(server, &mut m, Timeout::Millis(5_000))?;
                t.push(t0.elapsed().as_nanos() as u64);
            }
            if let Ok(info) = dc.getprocinfo(SERVER_NR) {
                eprintln!(
                    "  (server received {}, {} of them handed straight into its inbox)",
                    info.received, info.received_direct
                );
            }
            t.sort_unstable();
            let at = |q: f64| t[((t.len() as f64 * q) as usize).min(t.len() - 1)];
            println!("RESULT {} {} {} {}", at(0.5), at(0.9), at(0.99), at(1.0));
            Ok(())
        }
        other => Err(format!("unknown role {other}").into()),
    }
}

fn spawn(args: &[&str]) -> Result<(Child, BufReader<std::process::ChildStdout>), std::io::Error> {
    let mut c = Command::new(std::env::current_exe()?)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()?;
    let out = c.stdout.take().ok_or(std::io::ErrorKind::BrokenPipe)?;
    Ok((c, BufReader::new(out)))
}

fn line(r: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut s = String::new();
    let _ = r.read_line(&mut s);
    s
}

/// One scenario: the server role on `server_cpu`, a client on `client_cpu`; its percentiles.
fn scenario(
    dc: &str,
    server: &str,
    server_cpu: usize,
    client_cpu: usize,
    rounds: usize,
    pause_us: u64,
) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let (mut s, mut so) = spawn(&[server, dc, &server_cpu.to_string()])?;
    if !line(&mut so).starts_with("READY") {
        let _ = s.kill();
        return Err(format!("{server} did not start").into());
    }
    let (mut c, mut co) = spawn(&[
        "client",
        dc,
        &client_cpu.to_string(),
        &rounds.to_string(),
        &pause_us.to_string(),
    ])?;
    let result = line(&mut co);
    let _ = c.wait();
    let _ = s.kill();
    let _ = s.wait();
    // A killed server's slots are reaped by the next binder; do it now.
    Dc::open(dc)?.reap_dead();
    let nums: Vec<u64> = result
        .strip_prefix("RESULT ")
        .ok_or_else(|| format!("client failed: {result:?}"))?
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    Ok(nums)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .first()
        .is_some_and(|a| a.contains('-') || a == "client")
    {
        return role(&args);
    }
    let rounds: usize = args
        .first()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let name = format!("ortt{}", std::process::id());
    let dc = Dc::create_with_free_id(&name, &DcConfig::default())?;
    println!("outside process -> server, sendrec round trip (ns), {rounds} rounds per row");
    println!(
        "{:<24} {:<10} {:>6} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "server", "cpus", "pause", "p50", "p90", "p99", "max", "p50 ratio"
    );
    let mut failed = None;
    for (cpus, sc, cc) in [("different", 1, 0), ("same", 0, 0)] {
        for pause in [0u64, 1000] {
            let r = rounds / if pause > 0 { 10 } else { 1 };
            // The two servers take turns, REPEAT times each, so that a change in the machine
            // (these are shared guests) falls on both; each row is the run with the median p50.
            let mut runs: [Vec<Vec<u64>>; 2] = [Vec::new(), Vec::new()];
            for _ in 0..REPEAT {
                for (i, server) in ["fabric-server", "muk2-server"].into_iter().enumerate() {
                    match scenario(&name, server, sc, cc, r, pause) {
                        Ok(v) if v.len() == 4 => runs[i].push(v),
                        Ok(v) => failed = Some(format!("{server}: bad result {v:?}")),
                        Err(e) => failed = Some(format!("{server}: {e}")),
                    }
                }
            }
            let mut base = 0;
            for (label, mut rows) in ["fabric process", "MUK2 coroutine"].into_iter().zip(runs) {
                rows.sort_by_key(|v| v[0]);
                let Some(v) = rows.get(rows.len() / 2) else {
                    continue;
                };
                if base == 0 {
                    base = v[0].max(1);
                }
                println!(
                    "{label:<24} {cpus:<10} {:>4}us {:>8} {:>8} {:>8} {:>10} {:>9.2}x",
                    pause,
                    v[0],
                    v[1],
                    v[2],
                    v[3],
                    v[0] as f64 / base as f64
                );
            }
        }
    }
    drop(dc);
    let _ = Dc::remove(&name);
    match failed {
        Some(f) => Err(f.into()),
        None => Ok(()),
    }
}
