//! m3ftp GET throughput of a 64 MiB file, in one run: everything inside MUK2 (RDISK, FS, FTP
//! as coroutines of one process), everything inside MUK (one OS thread per server), and MUK2
//! with RDISK outside (its own process). The numbers of the storage issue's closing note.
//!
//! ```text
//! cargo run --release -p muk --example ftp_get [-- MIB [RUNS]]
//! ```
//!
//! Each layout gets a fresh DC and a memory disk formatted by FS; the client (an outside
//! process: this binary re-executed in a role) puts the file once, then gets it `RUNS` times
//! (default 3) into memory, checking the bytes of the first; the row shows the median.

use m3ipc::{Dc, DcConfig};
use muk::ftp_client::{ConnectOptions, FtpClient};
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use muk::server::{ServerKind, ServerOptions};
use muk::{Host, Hosted, Runner};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One deployment to measure.
struct Layout {
    name: &'static str,
    runner: Runner,
    rdisk_outside: bool,
}

const LAYOUTS: [Layout; 3] = [
    Layout {
        name: "MUK2, all inside",
        runner: Runner::Coroutines,
        rdisk_outside: false,
    },
    Layout {
        name: "MUK (threads), all inside",
        runner: Runner::Threads,
        rdisk_outside: false,
    },
    Layout {
        name: "MUK2, RDISK outside",
        runner: Runner::Coroutines,
        rdisk_outside: true,
    },
];

fn hosted(kind: ServerKind, disk_mib: u64) -> Hosted {
    let opts = ServerOptions {
        disk: DiskSpec::Memory(disk_mib << 20),
        format: FormatPolicy::Always,
        below_nr: None,
    };
    Hosted {
        name: kind.name().to_string(),
        nr: kind.default_nr(),
        stack_size: muk::host::DEFAULT_STACK,
        server: match kind.build_with(&opts) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        },
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        return role(&args[1..]);
    }
    let mib: u64 = args.first().map_or(Ok(64), |a| a.parse())?;
    let runs: usize = args.get(1).map_or(Ok(3), |a| a.parse())?;
    let disk_mib = mib + mib / 4 + 8;
    println!(
        "m3ftp GET of a {mib} MiB file from a {disk_mib} MiB memory disk, median of {runs} runs"
    );
    println!("{:<28} {:>10} {:>30}", "layout", "median", "runs (MB/s)");
    for layout in &LAYOUTS {
        let rates = measure(layout, mib, disk_mib, runs)?;
        let mut sorted = rates.clone();
        sorted.sort_by(f64::total_cmp);
        let runs_text: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "{:<28} {:>7.0} MB/s {:>30}",
            layout.name,
            sorted[sorted.len() / 2],
            runs_text.join(" ")
        );
    }
    Ok(())
}

/// A child process of this binary in a role; killed on drop.
struct Role(Child);

impl Role {
    fn start(
        args: &[&str],
    ) -> Result<(Role, BufReader<std::process::ChildStdout>), Box<dyn std::error::Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--role")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok((Role(child), out))
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        // Closing its stdin tells a server role to stop; a client has ended already.
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn measure(
    layout: &Layout,
    mib: u64,
    disk_mib: u64,
    runs: usize,
) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let name = format!("ftpget{}", std::process::id() % 100_000);
    let config = DcConfig {
        pool_bytes: 64 << 20,
        ..DcConfig::default()
    };
    let dc = Dc::create_with_free_id(&name, &config)?;
    let result = (|| {
        let mut kinds = vec![ServerKind::Fs, ServerKind::Ftp];
        let mut outside = None;
        if layout.rdisk_outside {
            let (r, mut out) = Role::start(&["rdisk", &name, &disk_mib.to_string()])?;
            let mut line = String::new();
            out.read_line(&mut line)?;
            if line.trim() != "READY" {
                return Err(format!("the RDISK process said {line:?}").into());
            }
            outside = Some(r);
        } else {
            kinds.insert(0, ServerKind::Rdisk);
        }
        let servers = kinds.iter().map(|&k| hosted(k, disk_mib)).collect();
        let host = Host::start(&dc, servers, layout.runner)?;
        let (client, mut out) =
            Role::start(&["client", &name, &mib.to_string(), &runs.to_string()])?;
        let mut line = String::new();
        out.read_line(&mut line)?;
        drop(client);
        host.stop();
        drop(outside);
        let rates: Vec<f64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| format!("the client said {line:?}"))?;
        if rates.len() != runs {
            return Err(format!("the client said {line:?}").into());
        }
        Ok(rates)
    })();
    drop(dc);
    let _ = Dc::remove(&name);
    result
}

/// Roles: `rdisk DC DISK_MIB` (host RDISK until stdin closes), `client DC MIB RUNS` (put,
/// then time the gets; print the rates in MB/s on one line).
fn role(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let dc = Dc::open(&args[1])?;
    match args[0].as_str() {
        "rdisk" => {
            let host = Host::start(
                &dc,
                vec![hosted(ServerKind::Rdisk, args[2].parse()?)],
                Runner::Coroutines,
            )?;
            println!("READY");
            std::io::stdout().flush()?;
            let mut rest = String::new();
            let _ = std::io::stdin().read_line(&mut rest);
            host.stop();
            Ok(())
        }
        "client" => {
            let bytes = args[2].parse::<usize>()? << 20;
            let runs: usize = args[3].parse()?;
            let opts = ConnectOptions {
                wait: Duration::from_secs(10),
                ..ConnectOptions::default()
            };
            let mut ftp = FtpClient::connect(&args[1], &opts)?;
            let data: Vec<u8> = (0..bytes as u64)
                .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
                .collect();
            // FS formats the disk at start: wait until it answers.
            let until = Instant::now() + Duration::from_secs(10);
            while ftp.stat("/").is_err() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
            ftp.put(
                &mut &data[..],
                bytes as u64,
                "memory",
                "/big",
                &mut |_, _| {},
            )?;
            let mut rates = Vec::new();
            for run in 0..runs {
                let mut at = 0usize;
                let mut same = true;
                let start = Instant::now();
                let got = ftp.get_with(
                    "/big",
                    &mut |chunk| {
                        if run == 0 {
                            same &= data.get(at..at + chunk.len()) == Some(chunk);
                        }
                        at += chunk.len();
                        Ok(())
                    },
                    &mut |_, _| {},
                )?;
                let took = start.elapsed();
                if got != bytes as u64 || !same {
                    return Err(format!("got {got} bytes, same: {same}").into());
                }
                rates.push(bytes as f64 / took.as_secs_f64() / 1e6);
            }
            let line: Vec<String> = rates.iter().map(|r| format!("{r:.1}")).collect();
            println!("{}", line.join(" "));
            Ok(())
        }
        other => Err(format!("unknown role {other}").into()),
    }
}
