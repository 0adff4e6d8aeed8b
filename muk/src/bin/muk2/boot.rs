//! `muk2` with no arguments: boot the embedded default config in a private DC, show it, check
//! it from another process, take it down.

use crate::check::Expected;
use crate::hosting::{self, CreatedDc, Watched};
use crate::run::print_flush;
use crate::signals::{self, Event, Signals};
use crate::{Error, Result, sandbox, table};
use muk::Host;
use muk::config::Config;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Names of the private DCs: this prefix and the PID.
const PRIVATE_PREFIX: &str = "muk2-";

/// Longest the self-check client may run: only a hang reaches it.
const CHECK_LIMIT: Duration = Duration::from_secs(60);

/// Boot, print, self-check, stop, remove.
pub fn run() -> Result<()> {
    let mut config =
        Config::default_config().map_err(|e| Error(format!("the embedded config: {e}")))?;
    // A private DC: two `muk2` runs at once never meet.
    config.dc.name = format!("{PRIVATE_PREFIX}{}", std::process::id());
    hosting::remove_stale(PRIVATE_PREFIX);
    let signals = Signals::block()?;
    let boot_start = Instant::now();
    let mut created = CreatedDc::create(&config.dc)?;
    let dc = created.dc();
    let servers = config
        .servers
        .iter()
        .map(hosting::hosted)
        .collect::<Result<Vec<_>>>()?;
    let host = Host::start(dc, servers, config.runner)?;
    let boot_time = boot_start.elapsed();
    let watched = Watched::new(host)?;
    let info = dc.info();
    print_flush(&format!(
        "muk2: {} booted DC {} (dcid {}, node {}) with {} servers in {:.2} ms\n{}\n",
        hosting::runner_name(config.runner),
        dc.name(),
        info.config.dcid,
        info.config.node,
        config.servers.len(),
        boot_time.as_secs_f64() * 1e3,
        table::render(dc)
    ));
    // The footprint once every server waits for work (FS has formatted and mounted its disk).
    let settled = Instant::now();
    while settled.elapsed() < Duration::from_secs(2)
        && !config.servers.iter().all(|s| {
            dc.getprocinfo(s.nr)
                .is_ok_and(|i| i.flags & m3ipc::FLAG_RECEIVING != 0)
        })
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    print_flush(&format!("muk2: {}\n", resident()));
    print_flush(&crate::http_check::urls());
    let expect: Vec<String> = config
        .servers
        .iter()
        .map(|s| Expected::at(s.kind, s.nr).arg())
        .collect();
    let name = dc.name().to_string();
    // The self-check client is started before the sandbox closes in (it could not be after).
    let checked = self_check(&signals, &name, &expect.join(","), |child| {
        sandbox::lock_down(Some(&mut created), &[child])
    });
    let exits = watched.stop();
    drop(created);
    checked?;
    hosting::check_exits(&exits)?;
    print_flush(&format!(
        "muk2: servers stopped, DC {} removed\n",
        config.dc.name
    ));
    Ok(())
}

/// The resident memory now, from /proc/self/status: `VmRSS` and its parts (private anonymous
/// memory, mapped files such as the program and libc, shared memory such as the DC's region and
/// pool). Printed after boot, so that a change that grows the footprint shows.
fn resident() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    let mb = |k: Option<u64>| k.map_or("?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
    format!(
        "resident memory after boot {} MB (VmRSS: anonymous {}, files {}, shared {})",
        mb(kib("VmRSS")),
        mb(kib("RssAnon")),
        mb(kib("RssFile")),
        mb(kib("RssShmem"))
    )
}

/// Run `muk2 check` as a child process (an outside client, not a thread of ours) and wait for
/// it, or for SIGINT/SIGTERM.
fn self_check(
    signals: &Signals,
    dc: &str,
    expect: &str,
    started: impl FnOnce(u32) -> Result<()>,
) -> Result<()> {
    let exe = std::env::current_exe()
        .map_err(|e| Error(format!("cannot find the muk2 executable: {e}")))?;
    let mut cmd = Command::new(&exe);
    cmd.args(["check", "--dc", dc, "--expect", expect])
        .stdin(Stdio::null());
    // The HTTP checks run in the client too: the unikernel, under its sandbox, opens no
    // connection of its own.
    for (flag, server) in [("--web", "web"), ("--is", "is")] {
        if let Some(a) = muk::sockets::announced(server) {
            cmd.args([flag, &a.to_string()]);
        }
    }
    // SAFETY: the closure runs in the child between fork and exec and makes one prctl call,
    // which is async-signal-safe; it changes only the child's own attributes. The parent-death
    // signal survives exec, so a `muk2` killed mid-check leaves no client behind (it is sent
    // when this, the main, thread exits: it outlives the child in every other case).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error(format!("cannot start {}: {e}", exe.display())))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel::<std::io::Result<ExitStatus>>();
    // The wait happens on a thread that wakes us, so that a signal can end our wait too.
    sandbox::spawn_started("muk2-check-wait", move || {
        let mut child = child;
        let _ = tx.send(child.wait());
        signals::wake_main();
    })?;
    let kill = || {
        // SAFETY: kill has no memory effects; `pid` is our child, not yet reaped (the waiting
        // thread reaps it), so the pid cannot have been reused.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        let _ = rx.recv();
    };
    if let Err(e) = started(pid) {
        kill();
        return Err(e);
    }
    let kill = || {
        // SAFETY: kill has no memory effects; `pid` is our child, not yet reaped (the waiting
        // thread reaps it), so the pid cannot have been reused.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        let _ = rx.recv();
    };
    let deadline = Instant::now() + CHECK_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match signals.wait(Some(left))? {
            Event::Wake => match rx.try_recv() {
                Ok(Ok(status)) if status.success() => return Ok(()),
                Ok(Ok(status)) => {
                    return Err(Error(format!("the self-check client failed ({status})")));
                }
                Ok(Err(e)) => return Err(Error(format!("waiting for the self-check: {e}"))),
                // Someone else's SIGUSR1.
                Err(_) => {}
            },
            Event::Stop(sig) => {
                kill();
                return Err(Error(format!("stopped by {}", signals::name(sig))));
            }
            Event::Timeout => {
                kill();
                return Err(Error(format!(
                    "the self-check did not finish within {} s",
                    CHECK_LIMIT.as_secs()
                )));
            }
        }
    }
}
