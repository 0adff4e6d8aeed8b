//! `muk2 check --dc DC`: the self-check client. It binds a user slot in a running DC, as any
//! outside program would, and does `sendrec` to each expected server: one checked request, then
//! timed round trips. `muk2` with no arguments runs it as a separate process.

use crate::{Error, Result};
use crate::{hosting, output};
use clap::Args;
use m3ipc::{Dc, Endpoint, Errno, Proc, Timeout};
use muk::config::default_nr;
use muk::ftp_client::{ConnectOptions, FtpClient};
use muk::{ServerKind, protocol};
use std::time::{Duration, Instant};

/// Arguments of `muk2 check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The DC to check.
    #[arg(long)]
    pub dc: String,
    /// The servers to check, comma-separated, each `NAME` (at its well-known number) or
    /// `NAME:NR`. Default: every known server.
    #[arg(long, value_delimiter = ',', value_parser = parse_expect)]
    pub expect: Vec<Expected>,
    /// How long to wait for each server to be bound, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub wait_ms: u32,
    /// Timed round trips per server.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Also put a file through FTP and GET it back from the web server at this address.
    #[arg(long, value_name = "ADDR")]
    pub web: Option<std::net::SocketAddr>,
    /// Also fetch the page and the JSON of the IS server at this address.
    #[arg(long, value_name = "ADDR")]
    pub is: Option<std::net::SocketAddr>,
}

/// A server `check` expects: which, and at which slot (`None`: its well-known number).
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    kind: ServerKind,
    nr: Option<i32>,
}

impl Expected {
    /// `kind` at slot `nr`.
    pub fn at(kind: ServerKind, nr: i32) -> Expected {
        Expected { kind, nr: Some(nr) }
    }

    /// The `--expect` form of this entry.
    pub fn arg(&self) -> String {
        match self.nr {
            Some(nr) => format!("{}:{nr}", self.kind.name()),
            None => self.kind.name().to_string(),
        }
    }
}

fn parse_expect(s: &str) -> std::result::Result<Expected, String> {
    let (name, nr) = match s.split_once(':') {
        Some((name, nr)) => (
            name,
            Some(
                nr.parse::<i32>()
                    .map_err(|e| format!("bad slot number {nr:?}: {e}"))?,
            ),
        ),
        None => (s, None),
    };
    let kind = hosting::server_kind(name.trim()).map_err(|e| e.0)?;
    Ok(Expected { kind, nr })
}

/// The client's slot name (and its name at PM).
const CLIENT_NAME: &str = "muk2-check";

/// Longest one checked request may take before the server counts as not answering.
const ANSWER: Timeout = Timeout::Millis(5000);

/// Run the check; print one line per server; fail if any server fails.
pub fn run(args: &CheckArgs) -> Result<()> {
    let dc = Dc::open(&args.dc).map_err(|e| match e.errno() {
        // A DC shared with a group (`[dc] group`, `dvs dc create --group`) admits its members.
        Errno::EDVSACCES => Error(format!(
            "DC {}: permission denied ({e}): binding needs read and write access to its region \
             and pool files (shared with a group by `[dc] group` and `mode`, or `dvs dc create \
             --group G --mode 660`)",
            args.dc
        )),
        _ => Error::from(e),
    })?;
    let expected: Vec<Expected> = if args.expect.is_empty() {
        ServerKind::ALL
            .into_iter()
            .map(|kind| Expected { kind, nr: None })
            .collect()
    } else {
        args.expect.clone()
    };
    let client = bind_user(&dc)?;
    output::print(&format!(
        "self-check from process {} (endpoint {} in DC {}), {} round trips each:\n",
        std::process::id(),
        client.endpoint(),
        dc.name(),
        args.rounds
    ))?;
    let mut failed = 0;
    for e in &expected {
        if matches!(e.kind, ServerKind::Web | ServerKind::Is) {
            // Network servers answer HTTP, not messages: the booting muk2 fetches from them.
            continue;
        }
        let nr = e.nr.unwrap_or_else(|| default_nr(e.kind, dc.config().node));
        let name = e.kind.name();
        match check_one(&dc, &client, e.kind, nr, args) {
            Ok(rtt) => output::print(&format!(
                "  {name:<8} nr {nr:>3}  pid {:<7}  ok   round trip p50 {}, min {}\n",
                rtt.pid,
                human(rtt.p50),
                human(rtt.min)
            ))?,
            Err(why) => {
                failed += 1;
                output::print(&format!("  {name:<8} nr {nr:>3}  FAILED: {why}\n"))?;
            }
        }
    }
    // Leave PM's table as we found it; a PM that is gone or never had us is no failure here.
    if let Some(pm) = expected.iter().find(|e| e.kind == ServerKind::Pm) {
        let nr = pm
            .nr
            .unwrap_or_else(|| default_nr(pm.kind, dc.config().node));
        if let Ok(ep) = protocol::server_endpoint(&dc, nr) {
            let _ = protocol::pm_exit(&client, ep, ANSWER);
        }
    }
    let _ = client.unbind();
    if failed > 0 {
        return Err(Error(format!(
            "self-check failed for {failed} of {} servers",
            expected.len()
        )));
    }
    crate::http_check::check(&args.dc, args.web, args.is)
}

/// Bind the first free user slot (users may only `sendrec`, which is all a client needs).
fn bind_user(dc: &Dc) -> Result<Proc> {
    let c = dc.config();
    let first_user = c.nr_sysprocs as i32 - c.nr_tasks as i32;
    for nr in first_user..c.nr_procs as i32 {
        match dc.bind_named(nr, CLIENT_NAME) {
            Ok(p) => return Ok(p),
            Err(Errno::EDVSSLOTUSED) => continue,
            Err(e) => {
                return Err(Error(format!(
                    "cannot bind a user slot in DC {}: {e}",
                    dc.name()
                )));
            }
        }
    }
    Err(Error(format!("DC {} has no free user slot", dc.name())))
}

struct RoundTrip {
    /// The process hosting the server.
    pid: u32,
    p50: Duration,
    min: Duration,
}

fn check_one(
    dc: &Dc,
    client: &Proc,
    kind: ServerKind,
    nr: i32,
    args: &CheckArgs,
) -> std::result::Result<RoundTrip, String> {
    let ep = match dc.wait4bind(nr, Timeout::Millis(args.wait_ms)) {
        Ok(ep) => ep,
        Err(Errno::EDVSTIMEDOUT) => {
            return Err(format!(
                "nothing bound at nr {nr} within {} ms (start it with `muk2 serve {} --dc {}`)",
                args.wait_ms,
                kind.name(),
                dc.name()
            ));
        }
        Err(e) => return Err(format!("waiting for nr {nr}: {e}")),
    };
    let bound = dc
        .getprocinfo(nr)
        .map_err(|e| format!("reading slot {nr}: {e}"))?;
    if bound.name != kind.name() {
        return Err(format!(
            "slot {nr} is bound by {:?} (pid {}), not by {}",
            bound.name,
            bound.pid,
            kind.name()
        ));
    }
    let mut times = Vec::with_capacity(args.rounds as usize);
    if kind == ServerKind::Ftp {
        // FTP is checked as its users reach it: through the m3ftp client library.
        let mut ftp = ftp_transfer(dc, nr, args)?;
        for _ in 0..args.rounds {
            let t = Instant::now();
            ftp.stat("/").map_err(|e| format!("FTP_STAT: {e}"))?;
            times.push(t.elapsed());
        }
    } else {
        first_probe(client, kind, ep, args)?;
        for _ in 0..args.rounds {
            let t = Instant::now();
            probe(client, kind, ep)?;
            times.push(t.elapsed());
        }
    }
    times.sort_unstable();
    Ok(RoundTrip {
        pid: bound.pid,
        p50: times[times.len() / 2],
        min: times[0],
    })
}

/// The checked request of the self-check: one that exercises what the server is for.
fn first_probe(
    client: &Proc,
    kind: ServerKind,
    ep: Endpoint,
    args: &CheckArgs,
) -> std::result::Result<(), String> {
    let me = std::process::id();
    match kind {
        // SYSTASK's process information about our own slot must name us.
        ServerKind::Systask => {
            let info = protocol::systask_procinfo(client, ep, client.nr(), ANSWER)
                .map_err(|e| format!("SYS_PROCINFO: {e}"))?;
            if info.endpoint != client.endpoint() || info.pid != me {
                return Err(format!(
                    "SYS_PROCINFO of our slot says endpoint {} pid {}, not {} pid {me}",
                    info.endpoint,
                    info.pid,
                    client.endpoint()
                ));
            }
        }
        // PM must give back the PID we register.
        ServerKind::Pm => {
            protocol::pm_register(client, ep, 0, CLIENT_NAME, ANSWER)
                .map_err(|e| format!("PM_REGISTER: {e}"))?;
            let pid = protocol::pm_getpid(client, ep, client.endpoint(), ANSWER)
                .map_err(|e| format!("PM_GETPID: {e}"))?;
            if pid != me {
                return Err(format!("PM_GETPID says pid {pid}, not {me}"));
            }
        }
        ServerKind::Echo | ServerKind::Rdisk | ServerKind::Ftp => probe(client, kind, ep)?,
        // They answer HTTP, not messages: `muk2` fetches from them itself.
        ServerKind::Web | ServerKind::Is => return Err("answers HTTP only".into()),
        // FS mounts once RDISK answers: give it the wait the servers get to be bound.
        ServerKind::Fs => {
            let until = Instant::now() + Duration::from_millis(u64::from(args.wait_ms));
            loop {
                match fs_info(client, ep) {
                    Err(Errno::EDVSNODEV) if Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(format!("FS_INFO: {e}")),
                    Ok(0) => return Err("FS_INFO says 0 blocks".into()),
                    Ok(_) => break,
                }
            }
        }
    }
    Ok(())
}

/// FS_INFO: the file system's size in blocks.
fn fs_info(client: &Proc, fs: Endpoint) -> m3ipc::Result<u64> {
    let mut m = m3ipc::Message::new(muk::storage::fs::FS_INFO);
    protocol::call(client, fs, &mut m, ANSWER)?;
    Ok(m.payload[0])
}

/// Bytes the self-check puts and gets through FTP.
const TRANSFER: usize = 8 << 20;

/// Put a file through FTP from this process, get it back, compare, remove it; print the
/// throughput. Returns the connected client for the timed round trips.
fn ftp_transfer(dc: &Dc, nr: i32, args: &CheckArgs) -> std::result::Result<FtpClient, String> {
    let opts = ConnectOptions {
        nr,
        wait: Duration::from_millis(u64::from(args.wait_ms)),
        name: "muk2-check-ftp".into(),
        ..ConnectOptions::default()
    };
    let mut ftp = FtpClient::connect(dc.name(), &opts).map_err(|e| e.to_string())?;
    let data: Vec<u8> = (0..TRANSFER as u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
        .collect();
    let remote = format!("/muk2-check-{}.bin", std::process::id());
    let until = Instant::now() + Duration::from_millis(u64::from(args.wait_ms));
    let put_time = loop {
        let t = Instant::now();
        match ftp.put(
            &mut &data[..],
            data.len() as u64,
            "memory",
            &remote,
            &mut |_, _| {},
        ) {
            // FS is still mounting its disk.
            Err(e) if e.errno() == Some(Errno::EDVSNODEV) && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.to_string()),
            Ok(_) => break t.elapsed(),
        }
    };
    let mut back = Vec::with_capacity(TRANSFER);
    let t = Instant::now();
    ftp.get(&remote, &mut back, "memory", &mut |_, _| {})
        .map_err(|e| e.to_string())?;
    let get_time = t.elapsed();
    if back != data {
        return Err(format!(
            "got {} bytes back from {remote}, not the {} put",
            back.len(),
            data.len()
        ));
    }
    ftp.rm(&remote).map_err(|e| e.to_string())?;
    let rate = |d: Duration| TRANSFER as f64 / d.as_secs_f64() / 1e6;
    output::print(&format!(
        "  m3ftp: put {} MiB in {:.1} ms ({:.0} MB/s), got it back in {:.1} ms ({:.0} MB/s), bytes identical\n",
        TRANSFER >> 20,
        put_time.as_secs_f64() * 1e3,
        rate(put_time),
        get_time.as_secs_f64() * 1e3,
        rate(get_time)
    ))
    .map_err(|e| e.0)?;
    Ok(ftp)
}

/// One timed request to `kind` at `ep`, with its reply checked.
fn probe(client: &Proc, kind: ServerKind, ep: Endpoint) -> std::result::Result<(), String> {
    match kind {
        ServerKind::Systask => protocol::systask_procinfo(client, ep, client.nr(), ANSWER)
            .map(drop)
            .map_err(|e| format!("SYS_PROCINFO: {e}")),
        ServerKind::Pm => protocol::pm_getpid(client, ep, client.endpoint(), ANSWER)
            .map(drop)
            .map_err(|e| format!("PM_GETPID: {e}")),
        ServerKind::Rdisk => match muk::storage::rdisk::geometry(client, ep, ANSWER) {
            Ok(0) => Err("RD_GEOMETRY says 0 blocks".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("RD_GEOMETRY: {e}")),
        },
        ServerKind::Fs => fs_info(client, ep)
            .map(drop)
            .map_err(|e| format!("FS_INFO: {e}")),
        // Reached through the client library instead (see `check_one`).
        ServerKind::Ftp | ServerKind::Web | ServerKind::Is => Ok(()),
        ServerKind::Echo => {
            let sent = ECHO_PAYLOAD;
            let got = protocol::echo_ping(client, ep, sent, ANSWER)
                .map_err(|e| format!("ECHO_ECHO: {e}"))?;
            if got == sent {
                Ok(())
            } else {
                Err("ECHO_ECHO returned another payload".into())
            }
        }
    }
}

/// What the check sends to echo: distinct words, so that a mangled reply shows.
const ECHO_PAYLOAD: [u64; 7] = [1, 2, 3, 5, 8, 13, 0x6d75_6b32];

/// A duration with a unit that keeps three significant digits.
fn human(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.2} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}
