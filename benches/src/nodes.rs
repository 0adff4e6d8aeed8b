//! Two nodes of one DC on this machine: each node is a region directory of its own
//! (`M3IPC_SHM_DIR` of the processes on it) and a node daemon ([`m3cluster::daemon`]), run as a
//! peer process pinned with its node's side. The daemons carry calls and grant copies between
//! the nodes over TCP, on the [`Link`] asked: loopback (both listen on `127.0.0.1`), or a veth
//! pair between two network namespaces ([`crate::netns`]: each node's daemon and every peer of
//! that node run in the node's namespace and listen on its veth address).
//!
//! Node 0 is the server's node, node 1 the client's. Dropping [`TwoNodes`] kills the daemons
//! and removes both directories (the regions, the pools, the status files), on success and on
//! error alike. The namespaces are the run's ([`NsPair::shared`]), deleted when it exits.

use crate::error::{BenchError, Result, io};
use crate::netns::{self, Link, NETNS_ENV, NsPair};
use crate::peer::{self, Peer};
use m3cluster::config::NodeConfig;
use m3cluster::daemon::{Daemon, status};
use m3ipc::{Dc, DcConfig};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Peer role: a node daemon that first creates the DC on its node.
pub const DAEMON_ROLE: &str = "node-daemon";
/// The DC's id on both nodes (the directories are private: no other DC can hold it).
const DCID: u32 = 9;
/// Longest the links between the daemons take to come up (the status file is rewritten each
/// second).
const CONNECT_WAIT: Duration = Duration::from_secs(20);

/// A daemon's standard error, in its node's directory.
const DAEMON_LOG: &str = "daemon.log";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The daemon role: `CONFIG CPU DC NODE`. Creates the DC (a fixed id, node `NODE`) in this
/// process's region directory, starts the daemon, and serves until its input closes or it is
/// killed.
pub fn serve_daemon(config: &str, extra: &[String]) -> Result<()> {
    let [dc, node] = extra else {
        return Err(BenchError::new(format!("expected DC NODE, got {extra:?}")));
    };
    let node: u32 = node
        .parse()
        .map_err(|_| BenchError::new(format!("bad node {node:?}")))?;
    let config = NodeConfig::load(Path::new(config))
        .map_err(|e| BenchError::new(format!("node config: {e}")))?;
    let c = DcConfig {
        dcid: DCID,
        node,
        ..DcConfig::default()
    };
    let _dc = Dc::create(dc, &c)?;
    let daemon =
        Daemon::start(&config).map_err(|e| BenchError::new(format!("node daemon: {e}")))?;
    peer::ready()?;
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    daemon.stop();
    Ok(())
}

/// The end of the daemon log in `dir`, for an error message.
fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join(DAEMON_LOG)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    format!(
        "daemon log: {}",
        if tail.is_empty() { "(empty)" } else { &tail }
    )
}

/// The environment of a process on a node: its region directory, and its namespace if any.
fn node_env<'a>(dir: &'a Path, ns: Option<&'a Path>) -> Vec<(&'static str, &'a Path)> {
    let mut env = vec![("M3IPC_SHM_DIR", dir)];
    if let Some(ns) = ns {
        env.push((NETNS_ENV, ns));
    }
    env
}

/// The two region directories; removed on drop.
#[derive(Debug)]
struct Dirs([PathBuf; 2]);

impl Drop for Dirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Two nodes with their daemons connected, and the DC created on both.
#[derive(Debug)]
pub struct TwoNodes {
    // Dropped before the directories: the daemons die, then their regions go, then the
    // namespaces (if any).
    daemons: [Peer; 2],
    dirs: Dirs,
    dc: String,
    /// The namespace paths of nodes 0 and 1 over a veth pair (none over loopback).
    ns_paths: Option<[PathBuf; 2]>,
    _ns: Option<Arc<NsPair>>,
}

/// A free port of `ip` (an address of the calling thread's namespace).
fn free_port(ip: IpAddr) -> Result<u16> {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io(format!("a free port of {ip}")))
}

impl TwoNodes {
    /// Make the directories (under this process's region directory) and, over a veth pair,
    /// the namespaces; write the node configs, start node 0's daemon pinned to `cpus[0]` and
    /// node 1's to `cpus[1]`, and wait until both links are up.
    pub fn start(cpus: [Option<usize>; 2], link: Link) -> Result<TwoNodes> {
        let tag = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let base = m3ipc::region_dir();
        let dirs = Dirs([0, 1].map(|id| base.join(format!("m3bench-node{id}-{tag}"))));
        let dc = format!("r{tag}");
        let ns = match link {
            Link::Loopback => None,
            Link::Veth => Some(NsPair::shared()?),
        };
        let ns_paths = match &ns {
            Some(pair) => Some([pair.path(0)?, pair.path(1)?]),
            None => None,
        };
        // Over veth each node's port is a free one of its address, asked in its namespace (the
        // pair is the run's: an earlier session's connections may linger there).
        let mut addrs = Vec::with_capacity(2);
        for id in 0..2 {
            addrs.push(match &ns_paths {
                None => format!("127.0.0.1:{}", free_port(Ipv4Addr::LOCALHOST.into())?),
                Some(paths) => {
                    let ip = NsPair::addr(id);
                    let port = netns::in_namespace(&paths[id], || free_port(ip.into()))?;
                    format!("{ip}:{port}")
                }
            });
        }
        let mut configs = Vec::with_capacity(2);
        for id in 0..2 {
            let dir = &dirs.0[id];
            std::fs::create_dir_all(dir).map_err(io(format!("{}", dir.display())))?;
            let config = dir.join("node.toml");
            let text = format!(
                "node = {id}\nlisten = \"{}\"\ndcs = [\"{dc}\"]\n[[peer]]\nnode = {}\n\
                 address = \"{}\"\n",
                addrs[id],
                1 - id,
                addrs[1 - id]
            );
            std::fs::write(&config, text).map_err(io(format!("{}", config.display())))?;
            configs.push(config);
        }
        // The daemons' logs (links up and down) stay in their directories; an error quotes them.
        let spawn = |id: usize| {
            Peer::spawn_logged(
                DAEMON_ROLE,
                &[
                    configs[id].display().to_string(),
                    peer::cpu_arg(cpus[id]),
                    dc.clone(),
                    id.to_string(),
                ],
                &node_env(&dirs.0[id], ns_paths.as_ref().map(|p| p[id].as_path())),
                &dirs.0[id].join(DAEMON_LOG),
            )
            .map_err(|e| e.context(log_tail(&dirs.0[id])))
        };
        let daemons = [spawn(0)?, spawn(1)?];
        let nodes = TwoNodes {
            daemons,
            dirs,
            dc,
            ns_paths,
            _ns: ns,
        };
        for id in 0..2 {
            nodes.await_link(id)?;
        }
        Ok(nodes)
    }

    /// Wait until node `id`'s daemon reports its peer connected.
    fn await_link(&self, id: usize) -> Result<()> {
        let file = self.dirs.0[id].join(status::FILE_NAME);
        let until = Instant::now() + CONNECT_WAIT;
        loop {
            if let Ok(st) = status::read(&file)
                && !st.peers.is_empty()
                && st.peers.iter().all(|p| p.since.is_some())
            {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(BenchError::new(format!(
                    "node {id}'s daemon did not reach the other within {} s; {}",
                    CONNECT_WAIT.as_secs(),
                    log_tail(&self.dirs.0[id])
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The DC's name (the same on both nodes).
    pub fn dc(&self) -> &str {
        &self.dc
    }

    /// Start a peer on node `id` (its `M3IPC_SHM_DIR` is the node's directory; over a veth
    /// pair it runs in the node's namespace).
    pub fn spawn(&self, id: usize, role: &str, args: &[String]) -> Result<Peer> {
        let dir = self
            .dirs
            .0
            .get(id)
            .ok_or_else(|| BenchError::new(format!("no node {id}")))?;
        let ns = self.ns_paths.as_ref().map(|p| p[id.min(1)].as_path());
        Peer::spawn_with_env(role, args, &node_env(dir, ns))
    }

    /// The daemons' process ids, node 0 first (to count their wake-ups).
    pub fn daemon_pids(&self) -> [u32; 2] {
        [self.daemons[0].pid(), self.daemons[1].pid()]
    }
}
