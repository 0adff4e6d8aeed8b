//! m3ftp PUT throughput of a 64 MiB file, the two paths in one run: through FS (FS copies the
//! client's chunk into its scratch buffer, the file system writes it to RDISK through its
//! staging buffer) and direct (FS allocates the zones, RDISK copies from the client's buffer
//! straight to the disk), alternating, under MUK2 and under MUK (threads).
//!
//! ```text
//! cargo run --release -p muk --example ftp_put [-- MIB [RUNS [fs|direct]]]
//! ```
//!
//! A third argument puts one way only (the other's column shows 0): to count each way's
//! instructions under `valgrind --tool=callgrind` (the servers run in this process).
//!
//! Each runner gets a fresh DC and a memory disk formatted by FS; the client (an outside
//! process: this binary re-executed in a role) puts the file `RUNS` times (default 3) each way,
//! the two ways alternating, and checks the bytes after the last put of each way by a GET.
//! The row shows each way's median and their ratio.

use m3ipc::{Dc, DcConfig};
use muk::ftp_client::{ConnectOptions, FtpClient};
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use muk::server::{ServerKind, ServerOptions};
use muk::{Host, Hosted, Runner};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn hosted(kind: ServerKind, disk_mib: u64) -> Result<Hosted, String> {
    let opts = ServerOptions {
        disk: DiskSpec::Memory(disk_mib << 20),
        format: FormatPolicy::Always,
        below_nr: None,
        ..Default::default()
    };
    Ok(Hosted {
        name: kind.name().to_string(),
        nr: kind.default_nr(),
        stack_size: muk::host::DEFAULT_STACK,
        server: kind.build_with(&opts)?,
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Die quietly of SIGPIPE, as `ls` does, when the output is a closed pipe (`| head -1`).
    // SAFETY: setting a signal's disposition touches no memory; no thread has started yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--client") {
        return client(&args[1..]);
    }
    let mib: u64 = args.first().map_or(Ok(64), |a| a.parse())?;
    let runs: usize = args.get(1).map_or(Ok(3), |a| a.parse())?;
    let only = args.get(2).cloned().unwrap_or_else(|| "both".into());
    if !["both", "fs", "direct"].contains(&only.as_str()) {
        return Err(format!("the third argument is fs or direct, not {only:?}").into());
    }
    let disk_mib = mib + mib / 4 + 8;
    println!("m3ftp PUT of a {mib} MiB file to a {disk_mib} MiB memory disk, median of {runs}");
    println!(
        "{:<16} {:>14} {:>14} {:>7}   runs (MB/s)",
        "runner", "through FS", "direct", "ratio"
    );
    for (name, runner) in [
        ("MUK2", Runner::Coroutines),
        ("MUK (threads)", Runner::Threads),
    ] {
        let (fs, direct) = measure(runner, mib, disk_mib, runs, &only)?;
        println!(
            "{name:<16} {:>9.0} MB/s {:>9.0} MB/s {:>6.2}x   fs {:?} direct {:?}",
            median(&fs),
            median(&direct),
            median(&direct) / median(&fs),
            fs.iter().map(|r| r.round()).collect::<Vec<_>>(),
            direct.iter().map(|r| r.round()).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Host the storage servers under `runner`, run the client; its rates through FS and direct.
fn measure(
    runner: Runner,
    mib: u64,
    disk_mib: u64,
    runs: usize,
    only: &str,
) -> Result<(Vec<f64>, Vec<f64>), Box<dyn std::error::Error>> {
    let name = format!("ftpput{}", std::process::id() % 100_000);
    let config = DcConfig {
        pool_bytes: 64 << 20,
        ..DcConfig::default()
    };
    let dc = Dc::create_with_free_id(&name, &config)?;
    let result = (|| -> Result<(Vec<f64>, Vec<f64>), Box<dyn std::error::Error>> {
        let servers = [ServerKind::Rdisk, ServerKind::Fs, ServerKind::Ftp]
            .iter()
            .map(|&k| hosted(k, disk_mib))
            .collect::<Result<Vec<_>, _>>()?;
        let host = Host::start(&dc, servers, runner)?;
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--client", &name, &mib.to_string(), &runs.to_string(), only])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let status = child.wait()?;
        host.stop();
        if !status.success() {
            return Err(format!("the client failed: {status}").into());
        }
        let parse = |part: Option<&str>| -> Result<Vec<f64>, String> {
            let v: Vec<f64> = part
                .unwrap_or("")
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| format!("the client said {line:?}"))?;
            if v.len() == runs {
                Ok(v)
            } else {
                Err(format!("the client said {line:?}"))
            }
        };
        let mut halves = line.trim().split('|');
        Ok((parse(halves.next())?, parse(halves.next())?))
    })();
    drop(dc);
    let _ = Dc::remove(&name);
    result
}

/// `--client DC MIB RUNS ONLY`: put the file each way (`ONLY`: both, fs or direct) `RUNS`
/// times, alternating; print the rates in MB/s as `THROUGH-FS... | DIRECT...` (0 for a way
/// not put).
fn client(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let dc = args.first().ok_or("no DC")?;
    let bytes = args.get(1).ok_or("no size")?.parse::<usize>()? << 20;
    let runs: usize = args.get(2).ok_or("no run count")?.parse()?;
    let only = args.get(3).map_or("both", String::as_str);
    let opts = ConnectOptions {
        wait: Duration::from_secs(10),
        ..ConnectOptions::default()
    };
    let mut ftp = FtpClient::connect(dc, &opts)?;
    let data: Vec<u8> = (0..bytes as u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
        .collect();
    // FS formats the disk at start: wait until it answers.
    let until = Instant::now() + Duration::from_secs(10);
    while ftp.stat("/").is_err() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut rates = [Vec::new(), Vec::new()];
    for run in 0..runs {
        for (way, direct) in [false, true].into_iter().enumerate() {
            if only == ["direct", "fs"][way] {
                rates[way].push(0.0);
                continue;
            }
            ftp.set_direct(direct);
            let start = Instant::now();
            ftp.put(
                &mut &data[..],
                bytes as u64,
                "memory",
                "/big",
                &mut |_, _| {},
            )?;
            rates[way].push(bytes as f64 / start.elapsed().as_secs_f64() / 1e6);
            if run + 1 == runs {
                let mut at = 0usize;
                let mut same = true;
                ftp.get_with(
                    "/big",
                    &mut |chunk| {
                        same &= data.get(at..at + chunk.len()) == Some(chunk);
                        at += chunk.len();
                        Ok(())
                    },
                    &mut |_, _| {},
                )?;
                if !same || at != bytes {
                    return Err(format!("the file read back differs (direct: {direct})").into());
                }
            }
        }
    }
    let text = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("{} | {}", text(&rates[0]), text(&rates[1]));
    Ok(())
}
