//! `dvs node run|status`: the node daemon that extends this node's DCs over other nodes, and
//! what it reports (see `m3cluster::daemon`).

use crate::error::{CliError, Result};
use crate::table::{Align, Table, print_text};
use clap::Subcommand;
use m3cluster::config::NodeConfig;
use m3cluster::daemon::{Daemon, status};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// The `dvs node` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run this node's daemon in the foreground: bind each configured DC's proxy slot, link to
    /// the peer nodes, and carry calls across. The DCs must exist on this node (`dvs dc create
    /// NAME --node ID`, same id and limits on every node). SIGINT or SIGTERM stops it in order:
    /// goodbye to the peers, remote slots dropped, proxy slots unbound.
    Run {
        /// The node's configuration (node id, listen address, DCs, peers).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Find the peer nodes through etcd at these endpoints (comma-separated) instead of
        /// the file's `[[peer]]` list: this node registers itself under a lease and links to
        /// every node registered. Replaces the file's `etcd` key.
        #[arg(long, value_name = "URL[,URL...]", value_delimiter = ',')]
        etcd: Vec<String>,
    },
    /// Show the links of the daemon running on this node (its status file in the region
    /// directory, rewritten every second).
    Status,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Run a `dvs node` subcommand.
pub fn run(cmd: &NodeCommand) -> Result<()> {
    match cmd {
        NodeCommand::Run { config, etcd } => run_daemon(config, etcd),
        NodeCommand::Status => show_status(),
    }
}

fn run_daemon(path: &std::path::Path, etcd: &[String]) -> Result<()> {
    let mut config = NodeConfig::load(path).map_err(|e| CliError::new(e.to_string()))?;
    if !etcd.is_empty() {
        config
            .use_etcd(etcd, "--etcd")
            .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    }
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; it is a
        // plain `extern "C"` function that lives as long as the program.
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
    let daemon = Daemon::start(&config).map_err(|e| CliError::new(e.to_string()))?;
    let addr = daemon.local_addr().unwrap_or(config.listen);
    println!(
        "node {} serving {} on {addr}",
        config.node,
        config.dcs.join(", ")
    );
    while !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("m3node {}: stopping", config.node);
    daemon.stop();
    Ok(())
}

fn ago(t: SystemTime) -> String {
    let s = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, s / 60 % 60),
    }
}

fn show_status() -> Result<()> {
    let path = status::path();
    let st = status::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CliError::new(format!(
                "no node daemon runs here ({} does not exist)",
                path.display()
            ))
        } else {
            CliError::new(format!("{}: {e}", path.display()))
        }
    })?;
    let age = SystemTime::now()
        .duration_since(st.updated)
        .unwrap_or_default();
    let mut text = format!(
        "node {} listening on {} (pid {})",
        st.node, st.listen, st.pid
    );
    if age > Duration::from_secs(5) {
        text += &format!(
            ": STALE, last written {} ago (the daemon is not running?)",
            ago(st.updated)
        );
    }
    text.push('\n');
    for d in &st.dcs {
        text += &format!(
            "DC {}: proxy {}, {} local endpoints announced, {} remote slots\n",
            d.name, d.proxy, d.local, d.remote
        );
    }
    let mut t = Table::new(&[
        ("PEER", Align::Right),
        ("ADDRESS", Align::Left),
        ("STATE", Align::Left),
        ("SINCE", Align::Right),
        ("FRAMES_OUT", Align::Right),
        ("BYTES_OUT", Align::Right),
        ("FRAMES_IN", Align::Right),
        ("BYTES_IN", Align::Right),
        ("RTT_US", Align::Right),
        ("LAST_ERROR", Align::Left),
    ]);
    for p in &st.peers {
        t.push(vec![
            p.node.to_string(),
            p.address.map_or_else(|| "-".into(), |a| a.to_string()),
            if p.since.is_some() {
                "connected"
            } else {
                "down"
            }
            .into(),
            p.since.map_or_else(|| "-".into(), ago),
            p.frames_out.to_string(),
            p.bytes_out.to_string(),
            p.frames_in.to_string(),
            p.bytes_in.to_string(),
            p.rtt
                .map_or_else(|| "-".into(), |d| d.as_micros().to_string()),
            p.last_error.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    text += &t.render();
    if let Some(m) = &st.membership {
        text += &format!(
            "etcd {}: {}, lease {}, last error: {}\n",
            m.endpoints.join(","),
            if m.registered {
                "registered"
            } else {
                "NOT registered"
            },
            m.lease.map_or_else(|| "-".into(), |l| format!("{l:x}")),
            m.last_error.as_deref().unwrap_or("-")
        );
    }
    print_text(&text)
}
