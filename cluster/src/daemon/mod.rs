//! The node daemon: it makes calls cross nodes.
//!
//! One daemon per node (`dvs node run --config node.toml`). For each DC of its configuration it
//! opens the DC's region (which must exist on this node: `dvs dc create` first, with the same id
//! and limits on every node, and this node's id as `--node`), binds the DC's proxy slot (at
//! [`NodeConfig::proxy_nr`]) and then:
//!
//! - **announces local binds**: the DC's pump thread rescans the slot table whenever the DC's
//!   bind events move ([`m3ipc::Dc::bind_events`], and at least once a second) and sends
//!   `Bound{src = endpoint, name}` / `Unbound{src}` to every connected peer that serves the DC;
//!   a link that comes up gets the full set. A local caller's own endpoint is also announced
//!   just before its first call is forwarded, on the same link, so the far side always knows
//!   the source of a call it receives.
//! - **mirrors the peers' binds** into remote slots ([`m3ipc::Proc::bind_remote`], at the
//!   remote generation). `Unbound` unbinds the remote slot (its waiters get the local dead-peer
//!   errors) once the calls queued before it are made; a link that goes down drops the remote
//!   slots of that node (their waiters get `EDVSNOTCONN`). An `nr` bound here and announced by
//!   a peer (or by two peers) is a conflict: the remote one is refused and logged.
//! - **forwards outgoing calls** (`remote_ep.rs`): the pump sleeps on the proxy's doorbell,
//!   which every remote slot shares. When it rings, it takes the calls made to each remote
//!   slot ([`m3ipc::Proc::take_held`]) and writes them to the link on its own thread (the link
//!   writes without blocking when nobody else writes, see `peers.rs`): one wake-up from the
//!   caller's ring to the socket. Held `send`s and pending `sendrec`s wait in a table by
//!   sequence number until the far side answers (`SendAck`, `Reply`); the link's reader thread
//!   finishes them (`Held::complete`, or a `reply` as the remote slot). A link that goes down
//!   fails every one of its pending calls with `EDVSNOTCONN`. Nothing is ever resent, so
//!   nothing is delivered twice. A local `wakeup` of a remote endpoint is forwarded.
//! - **delivers incoming calls**: the link's reader thread makes each call of a remote
//!   endpoint as its remote slot without waiting ([`m3ipc::Proc::start_call`]: `send`,
//!   `sendrec`, `notify`, `senda`), one synchronous call per remote endpoint at a time and
//!   the rest queued behind it, so per-pair order is kept. The outcome rings the proxy's
//!   doorbell; the pump polls it and answers `Send` with `SendAck{rcode}` once the destination
//!   received it and `Sendrec` with `Reply` (a server that answers with a `sendrec` of its own
//!   gets its request to the client as a `ReplyRequest`, whose answer comes back as a
//!   `Reply`). A frame for a DC this node does not serve (or the peer did not say it serves)
//!   is answered with `EDVSNODCNODE`.
//! - **moves bytes for grants across nodes** (`copies.rs`): a server that must read or write
//!   the grant of a client bound on another node asks the proxy (one `sendrec` carrying an
//!   [`m3ipc::remote_copy::RemoteCopy`]); the daemon sends the chunks (`CopyRequest` to read,
//!   `CopyData` to write, 256 KiB each, all in flight at once) to the client's node, whose
//!   reader thread uses the grant as the server's remote slot and answers (`CopyData`,
//!   `CopyAck`).
//!
//! The running daemon rewrites a status file in the region directory every second
//! ([`status`]); `dvs node status` prints it.
//!
//! The peers are a static list ([`NodeConfig::peers`]), or come and go through etcd
//! ([`NodeConfig::etcd`], [`crate::membership`]): the daemon registers itself under a lease and
//! links to every node registered.
//!
//! **Limits.** One pump per DC looks at every remote slot when the doorbell rings: a cost in
//! remote slots per ring. Binds are announced on each link separately, so a third node may
//! see a call naming an endpoint before that endpoint's `Bound` (no order across links); etcd
//! keeps the membership only, not the binds.

mod copies;
mod node;
mod remote_ep;
mod served;
pub mod status;

use crate::config::NodeConfig;
use crate::membership::{Membership, NodeRecord, StatusHandle};
use crate::peers::Peers;
use crate::wire::{DcEntry, Hello};
use m3ipc::Dc;
use node::Node;
use served::Served;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the status file is rewritten.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Why the daemon could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A running node daemon. [`Daemon::stop`] (or dropping it) stops it in order.
pub struct Daemon {
    node: Arc<Node>,
    threads: Vec<JoinHandle<()>>,
    status_path: PathBuf,
    membership: Option<Membership>,
}

impl Daemon {
    /// Open every DC of `config`, bind their proxy slots, start the links to the peers and the
    /// threads that serve the DCs. Returns once all of that is done; links come up in the
    /// background.
    ///
    /// Errors: a DC's region is missing or cannot be opened, its proxy slot cannot be bound
    /// (another daemon runs: `EDVSPROXYRUN`), the listen address cannot be bound, or (with
    /// etcd) another live daemon is registered with this node id. The text names the DC, the
    /// address or the holder.
    pub fn start(config: &NodeConfig) -> Result<Daemon, StartError> {
        let mut served = Vec::new();
        let mut entries = Vec::new();
        for name in &config.dcs {
            let dc = Dc::open(name).map_err(|e| {
                StartError(format!(
                    "DC {name:?}: {e} (create it on this node first: dvs dc create {name} \
                     --node {} with the same id and limits as on the other nodes)",
                    config.node
                ))
            })?;
            let c = dc.config().clone();
            if c.node != config.node {
                return Err(StartError(format!(
                    "DC {name:?} was created for node {} but this is node {} (dvs dc create \
                     {name} --node {})",
                    c.node, config.node, config.node
                )));
            }
            let nr = config.proxy_nr(name, c.nr_tasks);
            let proxy = dc.bind_proxy(nr, "m3proxy").map_err(|e| {
                StartError(format!("DC {name:?}: binding the proxy slot {nr}: {e}"))
            })?;
            entries.push(DcEntry {
                name: name.clone(),
                id: c.dcid,
                nr_tasks: c.nr_tasks,
                nr_procs: c.nr_procs,
                nr_sysprocs: c.nr_sysprocs,
            });
            served.push(Served::new(name.clone(), dc, proxy));
        }
        let node = Node::new(config.node, served);
        let hello = Hello::new(config.node, None, entries);
        let peers = if config.etcd.is_empty() {
            Peers::start(hello, config.listen, &config.peers, node.clone())
        } else {
            Peers::start_dynamic(hello, config.listen, node.clone())
        }
        .map_err(|e| StartError(format!("listen on {}: {e}", config.listen)))?;
        let local = peers.local_addr();
        let peers = node.set_peers(peers);
        // From here on, an error drops the daemon, which stops what started.
        let mut daemon = Daemon {
            node: node.clone(),
            threads: Vec::new(),
            status_path: status::path(),
            membership: None,
        };
        if !config.etcd.is_empty() {
            let me = NodeRecord {
                node: config.node,
                name: NodeRecord::host_name(),
                listen: local,
                pid: std::process::id(),
            };
            let m = Membership::start(&config.etcd, me, peers).map_err(StartError)?;
            daemon.membership = Some(m);
        } else {
            drop(peers);
        }
        for s in node.served() {
            let (n, s) = (node.clone(), s.clone());
            daemon
                .threads
                .push(spawn("m3node-pump", move || served::pump(&n, &s))?);
        }
        let n = node.clone();
        let listen = config.listen;
        let path = daemon.status_path.clone();
        let membership = daemon.membership.as_ref().map(Membership::status_handle);
        daemon.threads.push(spawn("m3node-status", move || {
            status_loop(&n, listen, &path, membership.as_ref())
        })?);
        Ok(daemon)
    }

    /// The address the links listen on.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.node.local_addr()
    }

    /// Stop in order: the pumps end, every peer gets a goodbye and the links close, every
    /// remote slot is dropped (its waiters get `EDVSNOTCONN`), the proxy slots unbind, and the
    /// status file is removed.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if self.node.stopping.swap(true, Ordering::Relaxed) {
            return;
        }
        // First out of etcd (the record goes at once, the peers drop this node), and the
        // membership's hold on the links goes with it.
        if let Some(m) = self.membership.take() {
            m.stop();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Goodbye to the peers; their links' `down` drops their remote slots.
        drop(self.node.take_peers());
        for s in self.node.served() {
            s.close();
        }
        let _ = std::fs::remove_file(&self.status_path);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StartError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| StartError(format!("cannot start a thread: {e}")))
}

fn status_loop(
    node: &Node,
    listen: std::net::SocketAddr,
    path: &std::path::Path,
    membership: Option<&StatusHandle>,
) {
    let mut warned = false;
    while !node.stopping.load(Ordering::Relaxed) {
        let mut st = node.status(listen);
        st.membership = membership.map(StatusHandle::get);
        if let Err(e) = status::write(path, &st)
            && !warned
        {
            warned = true;
            eprintln!("m3node {}: cannot write {}: {e}", node.id, path.display());
        }
        let mut slept = Duration::ZERO;
        while slept < STATUS_EVERY && !node.stopping.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            slept += Duration::from_millis(50);
        }
    }
}
