//! `muk2 run --config FILE` and `muk2 serve NAME --dc DC`: host servers until SIGINT, SIGTERM
//! or SIGHUP.

use crate::hosting::{self, CreatedDc, Watched};
use crate::signals::{self, Event, Signals};
use crate::{Error, Result, sandbox, table};
use clap::Args;
use m3cluster::daemon::Daemon;
use m3ipc::Dc;
use muk::config::{Config, ServerSpec, default_nr};
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use muk::server::{ServerKind, ServerOptions};
use muk::{Host, Runner};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `muk2 run`: create the config's DC, host its servers, stop on SIGINT/SIGTERM/SIGHUP, remove
/// the DC.
pub fn run(path: &Path, threads: bool, isolate: bool) -> Result<()> {
    let config = Config::load(path).map_err(|e| Error(format!("{}: {e}", path.display())))?;
    let runner = if threads {
        Runner::Threads
    } else {
        config.runner
    };
    if isolate {
        return crate::isolate::run(config, runner);
    }
    if let Some(i) = &config.isolate {
        return Err(Error(format!(
            "{}: [isolate] names interface {:?} to move into the unikernel's network namespace, \
             which only `muk2 run --isolate` has",
            path.display(),
            i.interface
        )));
    }
    if config.cluster.is_some() && sandbox::enabled() {
        // The node daemon's links need socket, connect, accept and threads started at any time:
        // far outside the sandbox's list. Said, not silently dropped.
        muk::diag!(
            "muk2: [cluster]: the sandbox is off (the node daemon in this process needs sockets \
             and threads)"
        );
        sandbox::set_enabled(false);
    }
    // Before any thread exists, so that all of them inherit the mask.
    let signals = Signals::block()?;
    let created = CreatedDc::create(&config.dc)?;
    host(&config, runner, &signals, created)
}

/// The body of `muk2 run` once its DC exists (here, or under `--isolate` in the child of the
/// process that created it): host the servers until a stop signal, then remove the DC.
pub fn host(
    config: &Config,
    runner: Runner,
    signals: &Signals,
    mut created: CreatedDc,
) -> Result<()> {
    let dc = created.dc();
    let mut servers = config
        .servers
        .iter()
        .map(hosting::hosted)
        .collect::<Result<Vec<_>>>()?;
    servers.extend(sandbox::test_server()?);
    servers.extend(crate::isolate::probe_server()?);
    let host = Host::start(dc, servers, runner)?;
    let watched = Watched::new(host)?;
    // The node daemon, once the servers are bound: the peers learn them at the first link.
    let daemon = match &config.cluster {
        None => None,
        Some(node) => match Daemon::start(node) {
            Ok(d) => Some(d),
            Err(e) => {
                let exits = watched.stop();
                drop(created);
                let _ = hosting::check_exits(&exits);
                return Err(Error(format!("[cluster]: the node daemon: {e}")));
            }
        },
    };
    sandbox::lock_down(Some(&mut created), &[])?;
    let dc = created.dc();
    let info = dc.info();
    let external = config.external();
    let mut text = format!(
        "muk2: {} on DC {} (dcid {}, node {}), region {}\n",
        hosting::runner_name(runner),
        dc.name(),
        info.config.dcid,
        info.config.node,
        dc.path().display()
    );
    text.push_str(&table::render(dc));
    if let (Some(d), Some(node)) = (&daemon, &config.cluster) {
        let peers: Vec<String> = node
            .peers
            .iter()
            .map(|p| format!("node {} at {}", p.node, p.address))
            .collect();
        text.push_str(&format!(
            "node daemon: node {}, listening on {}, proxy slot {}, peers: {}\n",
            node.node,
            d.local_addr().unwrap_or(node.listen),
            node.proxy_nr(dc.name(), info.config.nr_tasks),
            if peers.is_empty() {
                "none".to_string()
            } else {
                peers.join(", ")
            }
        ));
    }
    if !external.is_empty() {
        let names: Vec<String> = external
            .iter()
            .map(|k| format!("{} (nr {})", k.name(), default_nr(*k, config.dc.node)))
            .collect();
        let elsewhere = if daemon.is_some() {
            " or on another node"
        } else {
            ""
        };
        text.push_str(&format!(
            "expected from outside: {} (muk2 serve NAME --dc {}{elsewhere})\n",
            names.join(", "),
            dc.name()
        ));
    }
    text.push_str(&crate::http_check::urls());
    text.push_str("running; stop with SIGINT or SIGTERM\n");
    print_flush(&text);
    // Servers first (FS writes its last changes back, perhaps to an RDISK on another node,
    // through the daemon), then the daemon (goodbyes, remote slots dropped, proxy unbound),
    // then the DC.
    let outcome = serve_until_signal(signals, watched);
    if let Some(d) = daemon {
        d.stop();
    }
    drop(created);
    let sig = outcome?;
    muk::diag!(
        "muk2: {}: servers stopped, DC {} removed",
        signals::name(sig),
        config.dc.name
    );
    Ok(())
}

/// The storage settings of `muk2 serve` (as the config's keys of the same names).
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// rdisk: serve this image file (read and written in place).
    #[arg(long, conflicts_with = "memory_mib")]
    pub image: Option<PathBuf>,
    /// rdisk: serve a zero-filled memory disk of this many MiB (default 64).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=muk::config::MAX_MEMORY_MIB))]
    pub memory_mib: Option<u64>,
    /// fs: never, if-blank (default) or always format the disk at start.
    #[arg(long, value_parser = ["never", "if-blank", "always"])]
    pub format: Option<String>,
    /// fs: the slot of its RDISK; ftp: the slot of its FS (default: the well-known one).
    #[arg(long, allow_negative_numbers = true)]
    pub below_nr: Option<i32>,
}

impl StorageArgs {
    /// The options for a server of `kind`; a setting meant for another server is an error.
    fn options(&self, kind: ServerKind) -> Result<ServerOptions> {
        let mut o = ServerOptions::default();
        let only = |flag: &str, k: ServerKind| {
            Err(Error(format!(
                "{flag} is a setting of {}, not of {}",
                k.name(),
                kind.name()
            )))
        };
        if self.image.is_some() || self.memory_mib.is_some() {
            if kind != ServerKind::Rdisk {
                return only("--image/--memory-mib", ServerKind::Rdisk);
            }
            o.disk = match (&self.image, self.memory_mib) {
                (Some(path), _) => DiskSpec::Image(path.clone()),
                (None, Some(mib)) => DiskSpec::Memory(mib << 20),
                (None, None) => DiskSpec::default(),
            };
        }
        if let Some(f) = &self.format {
            if kind != ServerKind::Fs {
                return only("--format", ServerKind::Fs);
            }
            o.format = FormatPolicy::from_name(f).unwrap_or_default();
        }
        if self.below_nr.is_some() && !matches!(kind, ServerKind::Fs | ServerKind::Ftp) {
            return only("--below-nr", ServerKind::Fs);
        }
        o.below_nr = self.below_nr;
        Ok(o)
    }
}

/// `muk2 serve`: one server in an existing DC until SIGINT/SIGTERM/SIGHUP.
pub fn serve(
    name: &str,
    dc_name: &str,
    nr: Option<i32>,
    stack_kib: u32,
    threads: bool,
    storage: &StorageArgs,
) -> Result<()> {
    let kind = hosting::server_kind(name)?;
    let options = storage.options(kind)?;
    let runner = if threads {
        Runner::Threads
    } else {
        Runner::Coroutines
    };
    let signals = Signals::block()?;
    let dc = Dc::open(dc_name)?;
    let c = dc.config();
    let nr = nr.unwrap_or_else(|| default_nr(kind, c.node));
    // A server receives, which only system-process slots may do: refuse others before binding.
    let system = -(c.nr_tasks as i32)..c.nr_sysprocs as i32 - c.nr_tasks as i32;
    if !system.contains(&nr) || nr == m3ipc::HARDWARE {
        return Err(Error(format!(
            "nr {nr} is not a system-process slot of DC {dc_name} (servers need nr {}..={}, not -1)",
            system.start,
            system.end - 1
        )));
    }
    let spec = ServerSpec {
        kind,
        nr,
        stack_size: stack_kib as usize * 1024,
        options,
    };
    let host = Host::start(&dc, vec![hosting::hosted(&spec)?], runner)?;
    let watched = Watched::new(host)?;
    sandbox::lock_down(None, &[])?;
    print_flush(&format!(
        "muk2: {name} serving at nr {nr} in DC {dc_name} under {}; stop with SIGINT or SIGTERM\n",
        hosting::runner_name(runner)
    ));
    let sig = serve_until_signal(&signals, watched)?;
    muk::diag!("muk2: {}: {name} stopped", signals::name(sig));
    Ok(())
}

/// Sleep until SIGINT/SIGTERM/SIGHUP (then stop the servers and return the signal) or until the
/// servers end on their own (an error: nobody asked them to).
fn serve_until_signal(signals: &Signals, watched: Watched) -> Result<libc::c_int> {
    loop {
        match signals.wait(None) {
            Ok(Event::Stop(sig)) => {
                let exits = watched.stop();
                return hosting::check_exits(&exits).map(|()| sig);
            }
            Ok(Event::Wake) => {
                // SIGUSR1 from the watch thread, or from someone else: look before leaving.
                if let Some(exits) = watched.ended() {
                    hosting::check_exits(&exits)?;
                    return Err(Error(
                        "every server returned before a stop was asked".into(),
                    ));
                }
            }
            Ok(Event::Timeout) => {}
            Err(e) => {
                watched.stop();
                return Err(Error(format!("waiting for signals: {e}")));
            }
        }
    }
}

/// Print and flush, so that a parent reading our output through a pipe sees it at once; a
/// closed output is not an error (the servers keep running).
pub fn print_flush(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
