//! One DC served by the daemon: its proxy slot, the local binds it announced, the remote slots
//! it mirrors, the calls waiting for the far side's answer, and the pump: the one thread per DC
//! that sleeps on the proxy's doorbell (which every remote slot shares), and when it rings
//! forwards the calls made to remote slots and answers the incoming calls that ended
//! (`remote_ep.rs`). It also announces local binds.

use super::copies::{self, ChunkServed, CopyWorkers, Waiting};
use super::node::{Node, lock};
use super::remote_ep::{Pumped, RemoteEp};
use crate::wire::{Command, CopyDesc, CopyOp, Frame};
use m3ipc::{Dc, Endpoint, Errno, Held, Proc, SlotState, endpoint};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// How long the pump sleeps at most between two looks (the doorbell bounds it anyway); also
/// the pace of the liveness checks of the calls it makes.
const PUMP_SLEEP: Duration = Duration::from_millis(10);
/// A full rescan of the slot table at least this often (a bind event lost to a scribbled
/// doorbell word, a local process that died without unbinding).
const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// A call sent to a peer, waiting for its answer.
pub(crate) enum Pending {
    /// A `send`: its sender stays blocked until the `SendAck`.
    Send { peer: u32, held: Held },
    /// A `sendrec`: `client` waits for the reply that remote slot `via` gives it.
    Sendrec {
        peer: u32,
        via: i32,
        client: Endpoint,
    },
}

impl Pending {
    fn peer(&self) -> u32 {
        match self {
            Pending::Send { peer, .. } | Pending::Sendrec { peer, .. } => *peer,
        }
    }
}

/// A local endpoint as announced: its endpoint and name.
pub(crate) type LocalSet = HashMap<i32, (Endpoint, String)>;

pub(crate) struct Served {
    me: Weak<Served>,
    pub(crate) name: String,
    pub(crate) dcid: u32,
    pub(crate) dc: Dc,
    pub(crate) proxy_ep: Endpoint,
    proxy: Mutex<Option<Proc>>,
    /// The local binds announced to the peers. Its lock also orders announcements.
    local: Mutex<LocalSet>,
    /// Remote slots by `nr`.
    remotes: Mutex<HashMap<i32, Arc<RemoteEp>>>,
    pending: Mutex<HashMap<u64, Pending>>,
    /// Chunks of copies against remote grants, waiting for their answers (`copies.rs`).
    copies: Mutex<HashMap<u64, Waiting>>,
    /// The threads that run those copies.
    pub(crate) copy_workers: CopyWorkers,
    /// Local grantors whose grant a chunk written behind failed to reach (`copies.rs`): their
    /// next reply from a remote server fails with the error instead.
    poisoned: Mutex<HashMap<Endpoint, Errno>>,
}

/// Grantors remembered as poisoned at most (one whose reply never comes is forgotten when
/// the table is full).
const MAX_POISONED: usize = 1024;

impl Served {
    pub(crate) fn new(name: String, dc: Dc, proxy: Proc) -> Arc<Served> {
        let dcid = dc.config().dcid;
        let local = scan(&dc);
        Arc::new_cyclic(|me| Served {
            me: me.clone(),
            name,
            dcid,
            proxy_ep: proxy.endpoint(),
            dc,
            proxy: Mutex::new(Some(proxy)),
            local: Mutex::new(local),
            remotes: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            copies: Mutex::new(HashMap::new()),
            copy_workers: CopyWorkers::new(),
            poisoned: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn weak(&self) -> Weak<Served> {
        self.me.clone()
    }

    pub(crate) fn lock_local(&self) -> MutexGuard<'_, LocalSet> {
        lock(&self.local)
    }

    pub(crate) fn local_count(&self) -> usize {
        lock(&self.local).len()
    }

    pub(crate) fn remote_count(&self) -> usize {
        lock(&self.remotes).len()
    }

    fn frame(&self, cmd: Command, src: Endpoint, dst: Endpoint, seq: u64) -> Frame {
        Frame::new(cmd, self.dcid, src, dst, seq)
    }

    fn bound_frame(&self, ep: Endpoint, name: &str) -> Frame {
        let mut f = self.frame(Command::Bound, ep, 0, 0);
        f.payload = name.as_bytes().to_vec();
        f
    }

    /// Send every local bind to `peer` (its link just came up). The caller holds `local`.
    pub(crate) fn announce_all(&self, node: &Node, peer: u32, local: &LocalSet) {
        for (ep, name) in local.values() {
            let _ = node.send(peer, &self.bound_frame(*ep, name));
        }
    }

    /// Rescan the slot table and announce what changed to the peers serving the DC.
    fn rescan(&self, node: &Node) {
        let now = scan(&self.dc);
        let mut local = lock(&self.local);
        let peers = node.peers_serving(&self.name);
        let gone: Vec<(i32, Endpoint)> = local
            .iter()
            .filter(|(nr, (ep, _))| now.get(nr).is_none_or(|(e, _)| e != ep))
            .map(|(nr, (ep, _))| (*nr, *ep))
            .collect();
        for (nr, ep) in gone {
            local.remove(&nr);
            let f = self.frame(Command::Unbound, ep, 0, 0);
            for &p in &peers {
                let _ = node.send(p, &f);
            }
        }
        for (nr, (ep, name)) in now {
            if local.contains_key(&nr) {
                continue;
            }
            let f = self.bound_frame(ep, &name);
            for &p in &peers {
                let _ = node.send(p, &f);
            }
            local.insert(nr, (ep, name));
        }
    }

    /// Before a call from local `src` is forwarded: make sure the peers know `src` (a process
    /// that binds and calls at once may be faster than the pump). Same link, so the `Bound`
    /// arrives first.
    pub(crate) fn announce_source(&self, node: &Node, src: Endpoint) {
        let nr = endpoint::nr(src);
        let mut local = lock(&self.local);
        if local.get(&nr).is_some_and(|(ep, _)| *ep == src) {
            return;
        }
        let Ok(info) = self.dc.getprocinfo(nr) else {
            return;
        };
        if info.state != SlotState::Bound
            || info.endpoint != src
            || info.node.is_some()
            || info.proxy
        {
            return;
        }
        let peers = node.peers_serving(&self.name);
        if let Some((old, _)) = local.remove(&nr) {
            let f = self.frame(Command::Unbound, old, 0, 0);
            for &p in &peers {
                let _ = node.send(p, &f);
            }
        }
        let f = self.bound_frame(src, &info.name);
        for &p in &peers {
            let _ = node.send(p, &f);
        }
        local.insert(nr, (src, info.name));
    }

    /// Remember a forwarded call until its answer comes.
    pub(crate) fn add_pending(&self, seq: u64, p: Pending) {
        lock(&self.pending).insert(seq, p);
    }

    /// Forget a forwarded call whose frame could not be sent.
    pub(crate) fn take_pending(&self, seq: u64) -> Option<Pending> {
        lock(&self.pending).remove(&seq)
    }

    /// The proxy's handle (`None` once closed). Held briefly: the pump sleeps holding it.
    pub(crate) fn proxy_lock(&self) -> MutexGuard<'_, Option<Proc>> {
        lock(&self.proxy)
    }

    /// Remember a chunk of a copy until its answer comes.
    pub(crate) fn add_copy(&self, seq: u64, w: Waiting) {
        lock(&self.copies).insert(seq, w);
    }

    /// Take the chunk `seq` if it waits on `peer`.
    pub(crate) fn take_copy_if(&self, seq: u64, peer: u32) -> Option<Waiting> {
        let mut t = lock(&self.copies);
        match t.get(&seq) {
            Some(w) if w.peer == peer => t.remove(&seq),
            _ => None,
        }
    }

    /// A frame from `peer` for this DC (on the link's reader thread, in order).
    pub(crate) fn on_frame(&self, node: &Node, peer: u32, f: Frame) {
        match f.cmd {
            Command::Bound => self.remote_bound(node, peer, &f),
            Command::Unbound => self.remote_unbound(peer, f.src),
            // A chunk of a copy against a grant of ours, or the answer to one of our chunks
            // (a read's bytes come back as CopyData with op read).
            Command::CopyData | Command::CopyAck
                if f.cmd == Command::CopyAck
                    || CopyDesc::decode(&f.payload).is_ok_and(|d| d.op == CopyOp::Read) =>
            {
                self.copy_answer(peer, f)
            }
            Command::Send
            | Command::Sendrec
            | Command::Notify
            | Command::Senda
            | Command::CopyRequest
            | Command::CopyData => {
                let nr = endpoint::nr(f.src);
                let r = lock(&self.remotes)
                    .get(&nr)
                    .filter(|r| r.node == peer && r.ep == f.src)
                    .cloned();
                let behind = (f.cmd == Command::CopyData)
                    .then(|| CopyDesc::decode(&f.payload).ok())
                    .flatten()
                    .filter(|d| d.op == CopyOp::WriteBehind);
                match r {
                    Some(r) if matches!(f.cmd, Command::CopyRequest | Command::CopyData) => {
                        match r.serve_copy(self.dcid, &f) {
                            Some(ChunkServed::Answer(a)) => {
                                let _ = node.send(peer, &a);
                            }
                            Some(ChunkServed::Poison(grantor, e)) => self.poison(grantor, e),
                            Some(ChunkServed::Done) => {}
                            None => {
                                if let Some(d) = behind {
                                    self.poison(d.grantor, Errno::EDVSSRCDIED);
                                }
                            }
                        }
                    }
                    Some(r) => r.deliver(node, self, f),
                    // The source is not (or no longer) bound there as far as we know.
                    None => match behind {
                        Some(d) => self.poison(d.grantor, Errno::EDVSSRCDIED),
                        None => node.refuse(peer, &f, Errno::EDVSSRCDIED),
                    },
                }
            }
            Command::SendAck => {
                let p = {
                    let mut pending = lock(&self.pending);
                    match pending.get(&f.seq) {
                        Some(Pending::Send { peer: p, .. }) if *p == peer => pending.remove(&f.seq),
                        _ => None,
                    }
                };
                if let Some(Pending::Send { held, .. }) = p {
                    // EDVSPROCSTS: the sender gave up meanwhile; nothing to do.
                    let _ = if f.rcode == 0 {
                        held.complete()
                    } else {
                        held.fail(errno(f.rcode))
                    };
                }
            }
            Command::Reply | Command::ReplyRequest => {
                let p = {
                    let mut pending = lock(&self.pending);
                    match pending.get(&f.seq) {
                        Some(Pending::Sendrec { peer: p, .. }) if *p == peer => {
                            pending.remove(&f.seq)
                        }
                        _ => None,
                    }
                };
                let Some(Pending::Sendrec { via, client, .. }) = p else {
                    return;
                };
                // A remote slot already gone has failed its client itself.
                let Some(r) = lock(&self.remotes).get(&via).cloned() else {
                    return;
                };
                // A chunk written behind into the client's grant failed: the reply would claim
                // data the client does not have.
                if let Some(e) = self.take_poison(client) {
                    r.reply(client, Err(e));
                    return;
                }
                let ask = <[u8; 8]>::try_from(f.payload.as_slice()).ok();
                match (f.cmd, ask) {
                    (Command::ReplyRequest, Some(seq)) => {
                        r.reply_request(node, self, client, f.msg, u64::from_le_bytes(seq))
                    }
                    // The decoder keeps a ReplyRequest's payload at 8 bytes.
                    (Command::ReplyRequest, None) => r.reply(client, Err(Errno::EDVSBADVALUE)),
                    _ if f.rcode == 0 => r.reply(client, Ok(f.msg)),
                    _ => r.reply(client, Err(errno(f.rcode))),
                }
            }
            Command::Wakeup => {
                if let Some(p) = lock(&self.proxy).as_ref() {
                    let _ = p.wakeup(f.dst);
                }
            }
            // Heartbeats and goodbyes never get here.
            _ => {}
        }
    }

    fn remote_bound(&self, node: &Node, peer: u32, f: &Frame) {
        let name = String::from_utf8_lossy(&f.payload).into_owned();
        let (nr, generation) = (endpoint::nr(f.src), endpoint::generation(f.src));
        let old = {
            let mut rs = lock(&self.remotes);
            match rs.get(&nr) {
                Some(r) if r.node == peer && r.ep == f.src => return,
                Some(r) if r.node != peer => {
                    eprintln!(
                        "m3node {}: DC {}: node {peer} announces nr {nr}, which node {} holds: \
                         refused",
                        node.id, self.name, r.node
                    );
                    return;
                }
                Some(_) => rs.remove(&nr),
                None => None,
            }
        };
        // A newer binding replaces an older one of the same node (its Unbound was lost).
        if let Some(old) = old {
            old.unbind_now();
        }
        let bound = {
            let proxy = lock(&self.proxy);
            let Some(proxy) = proxy.as_ref() else { return };
            proxy.bind_remote(nr, generation, peer, &name)
        };
        match bound {
            Ok(proc) => {
                lock(&self.remotes).insert(nr, Arc::new(RemoteEp::new(proc, peer)));
                // Calls may be waiting already.
                self.wake_pump();
            }
            Err(Errno::EDVSSLOTUSED) => eprintln!(
                "m3node {}: DC {}: node {peer} announces nr {nr} ({name:?}), which is bound on \
                 this node: refused (an nr may be bound on one node of a DC at a time)",
                node.id, self.name
            ),
            Err(e) => eprintln!(
                "m3node {}: DC {}: cannot mirror endpoint {} of node {peer}: {e}",
                node.id, self.name, f.src
            ),
        }
    }

    fn remote_unbound(&self, peer: u32, ep: Endpoint) {
        let nr = endpoint::nr(ep);
        let r = {
            let rs = lock(&self.remotes);
            match rs.get(&nr) {
                Some(r) if r.node == peer && r.ep == ep => r.clone(),
                _ => return,
            }
        };
        // With calls still queued it stays until the pump has made them.
        if r.unbind() == Pumped::Gone {
            self.forget(nr, &r);
        }
    }

    /// A chunk written behind into `grantor`'s grant failed with `e` (see `copies.rs`).
    fn poison(&self, grantor: Endpoint, e: Errno) {
        let mut p = lock(&self.poisoned);
        if p.len() >= MAX_POISONED && !p.contains_key(&grantor) {
            p.clear();
        }
        p.insert(grantor, e);
    }

    /// Whether remote endpoint `ep` waits here for a local server's reply (see
    /// [`RemoteEp::awaits_local_reply`]).
    pub(crate) fn awaits_local_reply(&self, ep: Endpoint) -> bool {
        let r = lock(&self.remotes)
            .get(&endpoint::nr(ep))
            .filter(|r| r.ep == ep)
            .cloned();
        r.is_some_and(|r| r.awaits_local_reply())
    }

    /// The error a chunk written behind left for `client`'s reply, taken.
    fn take_poison(&self, client: Endpoint) -> Option<Errno> {
        let mut p = lock(&self.poisoned);
        if p.is_empty() {
            return None;
        }
        p.remove(&client)
    }

    /// `client` makes a new call across: a poison left by a request it gave up on (its
    /// timeout) is not this call's.
    pub(crate) fn clear_poison(&self, client: Endpoint) {
        let mut p = lock(&self.poisoned);
        if !p.is_empty() {
            p.remove(&client);
        }
    }

    /// Forget remote slot `r` at `nr` (if it is still the one there).
    fn forget(&self, nr: i32, r: &Arc<RemoteEp>) {
        let mut rs = lock(&self.remotes);
        if rs.get(&nr).is_some_and(|x| Arc::ptr_eq(x, r)) {
            rs.remove(&nr);
        }
    }

    /// Make the pump look now (a remote slot was added, or work waits).
    fn wake_pump(&self) {
        if let Some(p) = lock(&self.proxy).as_ref() {
            let _ = p.waker().wake();
        }
    }

    /// The link to `peer` went down: fail its pending calls and drop its remote slots (their
    /// waiters get `EDVSNOTCONN`).
    pub(crate) fn node_down(&self, peer: u32) {
        copies::fail_peer(&self.copies, peer);
        let failed: Vec<Pending> = {
            let mut pending = lock(&self.pending);
            let seqs: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.peer() == peer)
                .map(|(s, _)| *s)
                .collect();
            seqs.iter().filter_map(|s| pending.remove(s)).collect()
        };
        for p in failed {
            if let Pending::Send { held, .. } = p {
                let _ = held.fail(Errno::EDVSNOTCONN);
            }
            // A pending sendrec's client waits on a remote slot of that node: dropping the
            // slot below fails it with EDVSNOTCONN.
        }
        let gone: Vec<Arc<RemoteEp>> = {
            let mut rs = lock(&self.remotes);
            let nrs: Vec<i32> = rs
                .iter()
                .filter(|(_, r)| r.node == peer)
                .map(|(n, _)| *n)
                .collect();
            nrs.iter().filter_map(|n| rs.remove(n)).collect()
        };
        for r in gone {
            r.drop_slot();
        }
    }

    /// The pump's look at every remote slot; whether one has more to take at once.
    fn pump_all(&self, node: &Node, tick: bool) -> bool {
        let all: Vec<(i32, Arc<RemoteEp>)> = lock(&self.remotes)
            .iter()
            .map(|(n, r)| (*n, r.clone()))
            .collect();
        let mut more = false;
        for (nr, r) in all {
            match r.pump(node, self, tick) {
                Pumped::Idle => {}
                Pumped::More => more = true,
                Pumped::Gone => self.forget(nr, &r),
            }
        }
        more
    }

    /// The daemon stops: drop every remote slot, then unbind the proxy.
    pub(crate) fn close(&self) {
        self.copy_workers.close();
        let gone: Vec<Arc<RemoteEp>> = lock(&self.remotes).drain().map(|(_, r)| r).collect();
        for r in gone {
            r.drop_slot();
        }
        lock(&self.pending).clear();
        if let Some(p) = lock(&self.proxy).take() {
            let _ = p.unbind();
        }
    }
}

/// The local endpoints of `dc` worth announcing: bound, alive, neither remote nor the proxy.
fn scan(dc: &Dc) -> LocalSet {
    dc.procs()
        .into_iter()
        .filter(|p| p.state == SlotState::Bound && p.owner_alive && p.node.is_none() && !p.proxy)
        .map(|p| (p.nr, (p.endpoint, p.name)))
        .collect()
}

/// The error number a peer sent (an unknown one reads as `EDVSGENERIC`).
pub(crate) fn errno(code: i32) -> Errno {
    Errno::from_code(code).unwrap_or(Errno::EDVSGENERIC)
}

/// The pump of one DC: sleeps on the proxy's doorbell and, when it rings, forwards the calls
/// made to remote slots, answers the incoming calls that ended, and takes the copy requests
/// made to the proxy; announces local binds. Ends when the daemon stops.
pub(crate) fn pump(node: &Node, s: &Served) {
    let Some(bell) = lock(&s.proxy).as_ref().map(|p| p.bell_watch()) else {
        return;
    };
    let mut seen_binds = None;
    let mut seen_rings = None;
    let mut last_full = Instant::now();
    let mut last_tick = Instant::now();
    while !node.stopping.load(Ordering::Relaxed) {
        let binds = s.dc.bind_events();
        if seen_binds != Some(binds) || last_full.elapsed() >= RESCAN_EVERY {
            if last_full.elapsed() >= RESCAN_EVERY {
                s.dc.reap_dead();
                last_full = Instant::now();
            }
            seen_binds = Some(binds);
            s.rescan(node);
        }
        let rings = bell.rings();
        let tick = last_tick.elapsed() >= PUMP_SLEEP;
        let mut more = false;
        if seen_rings != Some(rings) || tick {
            seen_rings = Some(rings);
            if tick {
                last_tick = Instant::now();
            }
            more = s.pump_all(node, tick);
            s.take_copy_requests(node);
        }
        if !more {
            bell.wait(rings, PUMP_SLEEP);
        }
    }
}
