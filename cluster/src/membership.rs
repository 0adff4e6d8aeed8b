//! Which nodes are in the cluster, kept in etcd: each daemon registers itself and watches the
//! others come and go, adding and removing its links ([`Peers::add_peer`],
//! [`Peers::remove_peer`]) as they do.
//!
//! - **Registration.** The daemon holds a lease of [`LEASE_TTL`] seconds, kept alive every
//!   [`KEEPALIVE_EVERY`], and puts its record ([`NodeRecord`]) at `/m3ipc/nodes/<id>` under
//!   that lease, in a transaction that succeeds only if the key is absent. A second daemon with
//!   the same node id is refused with the holder's name, address and PID (after waiting out
//!   one lease, so a daemon restarted after a crash takes its id back once the dead one's
//!   lease has expired). A daemon that dies loses its record within the lease's TTL; one that
//!   stops revokes its lease, and its record goes at once.
//! - **Watching.** The daemon reads every record, then watches `/m3ipc/nodes/` from the next
//!   revision: a put adds (or re-addresses) a peer, a delete removes it.
//! - **Errors.** On any etcd error the daemon logs it (once while it repeats), retries with
//!   backoff, keeps its lease if etcd still has it (else grants a new one and registers again),
//!   and re-reads the full set of records and reconciles its links with it, so no change is
//!   missed. The links themselves keep working while etcd is away.
//!
//! The etcd client is asynchronous: its runtime (tokio, current-thread) lives on this module's
//! one thread, and the rest of the daemon stays synchronous.

use crate::peers::{PeerSpec, Peers};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, LeaseKeeper,
    PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The lease's time to live, in seconds: a dead daemon's record goes within this.
pub const LEASE_TTL: i64 = 2;
/// How often the lease is renewed.
pub const KEEPALIVE_EVERY: Duration = Duration::from_millis(500);
/// Where the node records live.
pub const NODES_PREFIX: &str = "/m3ipc/nodes/";
/// The longest wait between two attempts to reach etcd.
const RETRY_MAX: Duration = Duration::from_secs(2);
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// How long [`Membership::start`] waits for its first registration before it goes on and keeps
/// trying in the background.
const FIRST_WAIT: Duration = Duration::from_secs(5);
/// A record larger than this is not one of ours.
const MAX_RECORD: usize = 1024;

/// A node's record in etcd: `key=value` lines.
///
/// ```text
/// node=3
/// name=host-a
/// listen=127.0.0.1:7003
/// pid=4242
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    /// The node id.
    pub node: u32,
    /// Its host name.
    pub name: String,
    /// Where its peers reach it.
    pub listen: SocketAddr,
    /// Its daemon's PID.
    pub pid: u32,
}

impl NodeRecord {
    /// The record's text.
    pub fn render(&self) -> String {
        format!(
            "node={}\nname={}\nlisten={}\npid={}\n",
            self.node,
            self.name.replace(['\n', '\r'], " "),
            self.listen,
            self.pid
        )
    }

    /// Parse a record's text (from etcd: untrusted). `None` if it is not a record: too long,
    /// or without a node id or listen address. Unknown keys are skipped.
    pub fn parse(text: &str) -> Option<NodeRecord> {
        if text.len() > MAX_RECORD {
            return None;
        }
        let (mut node, mut name, mut listen, mut pid) = (None, String::new(), None, 0);
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k {
                "node" => node = v.parse().ok(),
                "name" => name = v.to_string(),
                "listen" => listen = v.parse().ok(),
                "pid" => pid = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        Some(NodeRecord {
            node: node?,
            name,
            listen: listen?,
            pid,
        })
    }

    /// This host's name (`?` if it cannot be read).
    pub fn host_name() -> String {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "?".into())
    }
}

/// The key of node `node`'s record.
pub fn node_key(node: u32) -> String {
    format!("{NODES_PREFIX}{node}")
}

/// What the membership reports, for the daemon's status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipStatus {
    /// The etcd endpoints.
    pub endpoints: Vec<String>,
    /// Whether this node's record is in etcd now (as far as it knows).
    pub registered: bool,
    /// Its lease.
    pub lease: Option<i64>,
    /// The last etcd error.
    pub last_error: Option<String>,
}

/// The membership's thread: registered in etcd and watching the other nodes. [`Membership::stop`]
/// (or dropping it) revokes the lease and ends the thread.
pub struct Membership {
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<MembershipStatus>>,
    thread: Option<JoinHandle<()>>,
}

impl Membership {
    /// Register `me` in etcd at `endpoints` and keep `peers` linked to the registered nodes.
    /// Returns once registered, or after a few seconds of trying (it goes on in the background,
    /// and the status says why).
    ///
    /// Errors: another live daemon holds this node id (the message names its address), or the
    /// thread or its runtime cannot start.
    pub fn start(
        endpoints: &[String],
        me: NodeRecord,
        peers: Arc<Peers>,
    ) -> Result<Membership, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(MembershipStatus {
            endpoints: endpoints.to_vec(),
            ..MembershipStatus::default()
        }));
        let (tx, rx) = mpsc::channel();
        let mut watcher = Watcher {
            endpoints: endpoints.to_vec(),
            value: me.render(),
            me,
            peers,
            stop: stop.clone(),
            status: status.clone(),
            lease: None,
            known: BTreeMap::new(),
            logged: None,
            first: Some(tx),
        };
        let thread = std::thread::Builder::new()
            .name("m3node-etcd".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        watcher.started(Err(format!("etcd: cannot start a runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(watcher.run());
            })
            .map_err(|e| format!("etcd: cannot start a thread: {e}"))?;
        let mut m = Membership {
            stop,
            status,
            thread: Some(thread),
        };
        match rx.recv_timeout(FIRST_WAIT) {
            Ok(Err(e)) => {
                m.stop_inner();
                Err(e)
            }
            // Registered, or still trying (the thread logs why).
            _ => Ok(m),
        }
    }

    /// What the membership reports now.
    pub fn status(&self) -> MembershipStatus {
        lock(&self.status).clone()
    }

    /// A handle that reads the status from another thread.
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle(self.status.clone())
    }

    /// Revoke the lease (this node's record goes at once) and end the thread.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        // Relaxed: the thread polls the flag; nothing else is published through it.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Reads a [`Membership`]'s status from any thread.
#[derive(Clone)]
pub struct StatusHandle(Arc<Mutex<MembershipStatus>>);

impl StatusHandle {
    /// The status now.
    pub fn get(&self) -> MembershipStatus {
        lock(&self.0).clone()
    }
}

/// Why a session with etcd ended.
enum Failure {
    /// Try again (the text says what went wrong).
    Retry(String),
    /// Another daemon holds this node id: give up if this is the first registration.
    Taken(String),
}

impl From<etcd_client::Error> for Failure {
    fn from(e: etcd_client::Error) -> Failure {
        Failure::Retry(e.to_string())
    }
}

struct Watcher {
    endpoints: Vec<String>,
    me: NodeRecord,
    value: String,
    peers: Arc<Peers>,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<MembershipStatus>>,
    /// The lease this node holds (it may have expired while etcd was away).
    lease: Option<i64>,
    /// The peers as last seen in etcd.
    known: BTreeMap<u32, SocketAddr>,
    /// The error last logged, so a repeating one is logged once.
    logged: Option<String>,
    /// Told the outcome of the first registration.
    first: Option<mpsc::Sender<Result<(), String>>>,
}

impl Watcher {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn started(&mut self, r: Result<(), String>) {
        if let Some(tx) = self.first.take() {
            let _ = tx.send(r);
        }
    }

    fn log(&mut self, what: &str) {
        eprintln!("m3node {}: etcd: {what}", self.me.node);
    }

    async fn run(&mut self) {
        let mut backoff = RETRY_FIRST;
        while !self.stopping() {
            let began = Instant::now();
            match self.session().await {
                Ok(()) => break,
                Err(Failure::Taken(why)) if self.first.is_some() => {
                    // Logged too: `start` may have stopped waiting for this answer.
                    self.log(&why);
                    lock(&self.status).last_error = Some(why.clone());
                    self.started(Err(why));
                    return;
                }
                Err(Failure::Taken(why) | Failure::Retry(why)) => {
                    {
                        let mut st = lock(&self.status);
                        st.registered = false;
                        st.last_error = Some(why.clone());
                    }
                    if self.logged.as_ref() != Some(&why) {
                        self.log(&format!("{why} (retrying)"));
                        self.logged = Some(why);
                    }
                }
            }
            // A session that ran for a while starts the backoff over.
            if began.elapsed() > RETRY_MAX {
                backoff = RETRY_FIRST;
            }
            let until = Instant::now() + backoff;
            while Instant::now() < until && !self.stopping() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
        self.revoke().await;
    }

    async fn connect(&self) -> Result<Client, Failure> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(2));
        Ok(Client::connect(&self.endpoints, Some(options)).await?)
    }

    /// Revoke the lease on the way out (best effort, briefly): the record goes at once.
    async fn revoke(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let attempt = async {
            let mut c = self.connect().await.ok()?;
            c.lease_revoke(lease).await.ok()
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), attempt).await;
    }

    /// Connect, register, read every record, then follow the changes until an error or stop.
    async fn session(&mut self) -> Result<(), Failure> {
        let mut client = self.connect().await?;
        let lease = match self.lease {
            Some(id)
                if client
                    .lease_time_to_live(id, None)
                    .await
                    .is_ok_and(|r| r.ttl() > 0) =>
            {
                id
            }
            _ => {
                let id = client.lease_grant(LEASE_TTL, None).await?.id();
                self.lease = Some(id);
                id
            }
        };
        let (mut keeper, mut acks) = client.lease_keep_alive(lease).await?;
        self.register(&mut client, &mut keeper, lease).await?;
        {
            let mut st = lock(&self.status);
            st.registered = true;
            st.lease = Some(lease);
        }
        self.logged = None;
        self.log(&format!(
            "registered as {} (lease {lease:x})",
            node_key(self.me.node)
        ));
        self.started(Ok(()));

        let all = client
            .get(NODES_PREFIX, Some(GetOptions::new().with_prefix()))
            .await?;
        let revision = all.header().map_or(0, |h| h.revision());
        self.reconcile(all.kvs());
        let mut watch = client
            .watch(
                NODES_PREFIX,
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await?;

        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut next_keepalive = Instant::now();
        let mut last_ack = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if self.stopping() {
                        return Ok(());
                    }
                    if last_ack.elapsed() > Duration::from_secs(LEASE_TTL as u64) {
                        return Err(Failure::Retry(format!(
                            "the lease was not renewed for {} ms",
                            last_ack.elapsed().as_millis()
                        )));
                    }
                    if Instant::now() >= next_keepalive {
                        keeper.keep_alive().await?;
                        next_keepalive = Instant::now() + KEEPALIVE_EVERY;
                    }
                }
                ack = acks.message() => match ack? {
                    Some(a) if a.ttl() > 0 => last_ack = Instant::now(),
                    _ => {
                        self.lease = None;
                        return Err(Failure::Retry(format!("lease {lease:x} expired")));
                    }
                },
                changes = watch.message() => {
                    let Some(changes) = changes? else {
                        return Err(Failure::Retry("the watch ended".into()));
                    };
                    if changes.canceled() {
                        return Err(Failure::Retry(format!(
                            "the watch was cancelled: {}",
                            changes.cancel_reason()
                        )));
                    }
                    for ev in changes.events() {
                        let Some(kv) = ev.kv() else { continue };
                        match ev.event_type() {
                            EventType::Put => self.put(kv),
                            EventType::Delete => {
                                if self.delete(kv) {
                                    return Err(Failure::Retry(
                                        "this node's record was deleted".into(),
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Put this node's record under `lease` unless another lease holds the key. A holder is
    /// waited for during one lease's time (it may be a dead daemon's record, about to expire).
    async fn register(
        &mut self,
        client: &mut Client,
        keeper: &mut LeaseKeeper,
        lease: i64,
    ) -> Result<(), Failure> {
        let key = node_key(self.me.node);
        let deadline = Instant::now() + Duration::from_secs(LEASE_TTL as u64 + 1);
        loop {
            let put = TxnOp::put(
                key.clone(),
                self.value.clone(),
                Some(PutOptions::new().with_lease(lease)),
            );
            let txn = Txn::new()
                .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
                .and_then([put.clone()])
                .or_else([TxnOp::get(key.clone(), None)]);
            let r = client.txn(txn).await?;
            if r.succeeded() {
                return Ok(());
            }
            let held = r.op_responses().into_iter().find_map(|o| match o {
                TxnOpResponse::Get(g) => g.kvs().first().cloned(),
                _ => None,
            });
            match held {
                // Ours already (etcd kept the lease while we were away): bring it up to date.
                Some(kv) if kv.lease() == lease => {
                    if kv.value() != self.value.as_bytes() {
                        client
                            .put(
                                key.clone(),
                                self.value.clone(),
                                Some(PutOptions::new().with_lease(lease)),
                            )
                            .await?;
                    }
                    return Ok(());
                }
                Some(kv) if Instant::now() >= deadline || self.stopping() => {
                    let holder = std::str::from_utf8(kv.value())
                        .ok()
                        .and_then(NodeRecord::parse)
                        .map_or_else(
                            || "a record this daemon cannot read".to_string(),
                            |h| format!("{} at {} (pid {})", h.name, h.listen, h.pid),
                        );
                    return Err(Failure::Taken(format!(
                        "node {} is already registered in etcd ({key}) by {holder}: another \
                         daemon with this node id is running; stop it or give this node another \
                         id",
                        self.me.node
                    )));
                }
                // Held by another lease: wait for it to expire (keeping ours alive), or give
                // up at the deadline.
                Some(_) => {
                    keeper.keep_alive().await?;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                // Deleted since: try again at once.
                None => {}
            }
        }
    }

    /// The peer in record `kv`, unless it is not a record or is this node.
    fn peer_of(&self, kv: &KeyValue) -> Option<PeerSpec> {
        let id = key_node(kv.key())?;
        let rec = NodeRecord::parse(std::str::from_utf8(kv.value()).ok()?)?;
        (rec.node == id && id != self.me.node).then_some(PeerSpec {
            node: id,
            address: rec.listen,
        })
    }

    fn add(&mut self, p: PeerSpec) {
        if self.known.get(&p.node) == Some(&p.address) {
            return;
        }
        match self.peers.add_peer(&p) {
            Ok(()) => {
                self.known.insert(p.node, p.address);
            }
            Err(e) => self.log(&format!("node {}: {e}", p.node)),
        }
    }

    fn put(&mut self, kv: &KeyValue) {
        match self.peer_of(kv) {
            Some(p) => self.add(p),
            None if key_node(kv.key()) != Some(self.me.node) => {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                self.log(&format!("{key}: not a node record, skipped"));
            }
            None => {}
        }
    }

    /// Drop the peer whose record `kv` was deleted; whether it was this node's own record.
    fn delete(&mut self, kv: &KeyValue) -> bool {
        let Some(id) = key_node(kv.key()) else {
            return false;
        };
        if id == self.me.node {
            return true;
        }
        // Also a node whose record was never seen, but which linked to this one first.
        self.known.remove(&id);
        self.peers.remove_peer(id);
        false
    }

    /// Make the links match the full set of records `kvs`.
    fn reconcile(&mut self, kvs: &[KeyValue]) {
        let now: Vec<PeerSpec> = kvs.iter().filter_map(|kv| self.peer_of(kv)).collect();
        let gone: Vec<u32> = self
            .known
            .keys()
            .filter(|n| !now.iter().any(|p| p.node == **n))
            .copied()
            .collect();
        for n in gone {
            self.known.remove(&n);
            self.peers.remove_peer(n);
        }
        for p in now {
            self.add(p);
        }
    }
}

/// The node id in a record's key (`None` for a key that is not a node's, or an id out of the
/// range the wire protocol allows).
fn key_node(key: &[u8]) -> Option<u32> {
    std::str::from_utf8(key)
        .ok()?
        .strip_prefix(NODES_PREFIX)?
        .parse()
        .ok()
        .filter(|&id| id < crate::wire::MAX_NODES)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_garbage_is_no_record() {
        let r = NodeRecord {
            node: 3,
            name: "host\na".into(),
            listen: ([127, 0, 0, 1], 7003).into(),
            pid: 42,
        };
        let back = NodeRecord::parse(&r.render());
        assert_eq!(
            back,
            Some(NodeRecord {
                name: "host a".into(),
                ..r
            })
        );
        assert_eq!(NodeRecord::parse("name=x\nlisten=1.2.3.4:5\n"), None);
        assert_eq!(NodeRecord::parse("node=1\nlisten=nowhere\n"), None);
        assert_eq!(NodeRecord::parse(&"x".repeat(5000)), None);
        assert_eq!(key_node(b"/m3ipc/nodes/17"), Some(17));
        assert_eq!(key_node(b"/m3ipc/nodes/x"), None);
        assert_eq!(
            key_node(format!("/m3ipc/nodes/{}", crate::wire::MAX_NODES).as_bytes()),
            None
        );
        assert_eq!(key_node(b"/other/17"), None);
        assert_eq!(node_key(5), "/m3ipc/nodes/5");
    }
}
