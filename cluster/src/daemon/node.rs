//! The daemon's shared state: its served DCs, its links, and which DCs each connected peer
//! serves. It receives the links' events and routes each frame to its DC.

use super::served::Served;
use super::status::{DcStatus, NodeStatus};
use crate::peers::{Events, LinkError, Peers, Tail};
use crate::wire::{Command, Frame, Hello};
use m3ipc::Errno;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::SystemTime;

pub(crate) struct Node {
    me: Weak<Node>,
    pub(crate) id: u32,
    served: Vec<Arc<Served>>,
    peers: RwLock<Option<Arc<Peers>>>,
    /// The DC names each connected peer serves (from its hello).
    peer_dcs: Mutex<HashMap<u32, Vec<String>>>,
    /// Sequence numbers of calls sent, never reused while the daemon runs: a late answer from
    /// an older connection matches nothing.
    seq: AtomicU64,
    pub(crate) stopping: AtomicBool,
}

impl Node {
    pub(crate) fn new(id: u32, served: Vec<Arc<Served>>) -> Arc<Node> {
        Arc::new_cyclic(|me| Node {
            me: me.clone(),
            id,
            served,
            peers: RwLock::new(None),
            peer_dcs: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
        })
    }

    pub(crate) fn weak(&self) -> Weak<Node> {
        self.me.clone()
    }

    pub(crate) fn served(&self) -> &[Arc<Served>] {
        &self.served
    }

    pub(crate) fn set_peers(&self, peers: Peers) -> Arc<Peers> {
        let peers = Arc::new(peers);
        *self.peers.write().unwrap_or_else(|e| e.into_inner()) = Some(peers.clone());
        peers
    }

    /// Take the links (to drop them: goodbye to every peer). Breaks the cycle links → events.
    pub(crate) fn take_peers(&self) -> Option<Arc<Peers>> {
        self.peers.write().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|p| p.local_addr())
    }

    pub(crate) fn next_seq(&self) -> u64 {
        // Relaxed: only uniqueness matters.
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Queue `frame` for `peer`.
    pub(crate) fn send(&self, peer: u32, frame: &Frame) -> Result<(), LinkError> {
        self.send_with_tail(peer, frame, Tail::EMPTY)
    }

    /// [`Node::send`] of `frame` and the payload bytes after it in `tail`
    /// ([`Peers::send_with_tail`]).
    pub(crate) fn send_with_tail(
        &self,
        peer: u32,
        frame: &Frame,
        tail: Tail<'_>,
    ) -> Result<(), LinkError> {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner()).clone();
        match peers {
            Some(p) => p.send_with_tail(peer, frame, tail),
            None => Err(LinkError::NotConnected {
                peer,
                why: format!("node {} is shutting down", self.id),
            }),
        }
    }

    /// The connected peers that serve DC `name`.
    pub(crate) fn peers_serving(&self, name: &str) -> Vec<u32> {
        lock(&self.peer_dcs)
            .iter()
            .filter(|(_, dcs)| dcs.iter().any(|d| d == name))
            .map(|(p, _)| *p)
            .collect()
    }

    fn serves(&self, peer: u32, name: &str) -> bool {
        lock(&self.peer_dcs)
            .get(&peer)
            .is_some_and(|dcs| dcs.iter().any(|d| d == name))
    }

    pub(crate) fn status(&self, listen: SocketAddr) -> NodeStatus {
        let peers = self
            .peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|p| p.status())
            .unwrap_or_default();
        NodeStatus {
            node: self.id,
            listen: self.local_addr().unwrap_or(listen),
            pid: std::process::id(),
            updated: SystemTime::now(),
            dcs: self
                .served
                .iter()
                .map(|s| DcStatus {
                    name: s.name.clone(),
                    proxy: s.proxy_ep,
                    local: s.local_count(),
                    remote: s.remote_count(),
                })
                .collect(),
            peers,
            membership: None,
        }
    }

    /// Answer a call frame that cannot be delivered with `why` (calls that expect no answer get
    /// none).
    pub(crate) fn refuse(&self, peer: u32, f: &Frame, why: Errno) {
        let cmd = match f.cmd {
            Command::Send => Command::SendAck,
            Command::Sendrec => Command::Reply,
            Command::CopyRequest => Command::CopyAck,
            // Not the answer to one of ours (a read's bytes): those are never answered.
            Command::CopyData
                if crate::wire::CopyDesc::decode(&f.payload)
                    .is_ok_and(|d| d.op == crate::wire::CopyOp::Write) =>
            {
                Command::CopyAck
            }
            _ => return,
        };
        let mut ans = Frame::new(cmd, f.dc, f.dst, f.src, f.seq);
        ans.rcode = why.code();
        let _ = self.send(peer, &ans);
    }
}

impl Events for Node {
    fn up_with(&self, peer: u32, hello: &Hello) {
        // A link may come up before `Peers::start` has returned its handle to us: wait for it
        // (briefly), or the full set of binds would be lost.
        let since = std::time::Instant::now();
        while self
            .peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
            && !self.stopping.load(Ordering::Relaxed)
            && since.elapsed() < std::time::Duration::from_secs(2)
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let names: Vec<String> = hello.dcs.iter().map(|d| d.name.clone()).collect();
        eprintln!(
            "m3node {}: node {peer} connected (serves {})",
            self.id,
            names.join(", ")
        );
        for s in &self.served {
            // Under the DC's announcement lock, so the full set and later changes are sent in
            // order, once each.
            let local = s.lock_local();
            lock(&self.peer_dcs).insert(peer, names.clone());
            if names.contains(&s.name) {
                s.announce_all(self, peer, &local);
            }
        }
    }

    fn frame(&self, peer: u32, frame: Frame) {
        let Some(s) = self.served.iter().find(|s| s.dcid == frame.dc) else {
            self.refuse(peer, &frame, Errno::EDVSNODCNODE);
            return;
        };
        if !self.serves(peer, &s.name) {
            self.refuse(peer, &frame, Errno::EDVSNODCNODE);
            return;
        }
        s.on_frame(self, peer, frame);
    }

    fn down(&self, peer: u32, why: &str) {
        eprintln!("m3node {}: node {peer} disconnected: {why}", self.id);
        lock(&self.peer_dcs).remove(&peer);
        for s in &self.served {
            s.node_down(peer);
        }
    }

    fn refused(&self, peer: Option<u32>, why: &str) {
        match peer {
            Some(p) => eprintln!("m3node {}: link to node {p} refused: {why}", self.id),
            None => eprintln!("m3node {}: a connection was refused: {why}", self.id),
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on one thread must not take the daemon's tables with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
