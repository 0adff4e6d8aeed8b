//! The links of one node to its peer nodes: one TCP connection per peer, both directions
//! multiplexed on it.
//!
//! Who dials: of two nodes, the one with the lower id dials the other and re-dials with backoff
//! when the connection breaks; the other only accepts. So a pair never holds two connections,
//! and a restarted node is found again without either side guessing.
//!
//! Each live connection has a writer and a reader thread. [`Peers::send`] encodes a frame into
//! the link's outgoing buffer and, when nobody is writing on the link, writes the buffer at once
//! on the caller's thread, without blocking: a call crosses to the peer with no thread hop on
//! the way out. What the socket does not take at once (its buffer is full) is left at the front
//! of the buffer for the writer thread, which writes blocking (for 2 s at most); a
//! frame handler that sends therefore never blocks on a peer that does not read, so two nodes
//! answering each other's calls cannot wait on each other's full sockets. One writer at a time
//! takes the whole buffer, so bytes leave in the order they were queued and frames that queue
//! up go out together. The writer thread also sends a heartbeat every [`HEARTBEAT_EVERY`]. The reader decodes frames and hands them to [`Events::frame`], answers
//! heartbeats, and declares the link down after [`DEAD_AFTER`] without a byte from the peer (a
//! peer whose machine vanished, or a cut cable, sends no RST). A link that goes down drops its
//! queued frames: nothing is resent on the next connection, so nothing is delivered twice; the
//! layer above fails the calls whose fate is unknown (`EDVSNOTCONN`).
//!
//! The peers are given at start ([`Peers::start`]), or change at run time
//! ([`Peers::start_dynamic`], [`Peers::add_peer`], [`Peers::remove_peer`]) as a membership
//! service (etcd) sees nodes come and go. A removed peer's link says goodbye and closes, and its
//! threads end. In a dynamic membership a lower-id node that is not a peer yet may connect: it
//! saw the membership change before this node did, and its connection is taken as a new link.
//!
//! Limits: at most [`MAX_QUEUED`] bytes wait per link (a sender waits for room); frame handlers
//! run on the reader thread and must not block for long.

use crate::handshake::{Accepted, HandshakeError, handshake, truncated};
use crate::wire::{Command, Frame, FrameDecoder, Hello, Incoming, MAX_PAYLOAD, WireError};
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// How often each side sends a heartbeat on an open link.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(200);
/// Silence after which a link is declared down: four heartbeats missed. Well under the 1 s in
/// which a caller blocked on a vanished node must learn it.
pub const DEAD_AFTER: Duration = Duration::from_millis(800);
/// Bytes that may wait to be written on one link; a sender waits for room beyond that.
pub const MAX_QUEUED: usize = 8 * MAX_PAYLOAD;
/// First and longest wait between two dials of an unreachable peer.
const REDIAL_FIRST: Duration = Duration::from_millis(50);
const REDIAL_MAX: Duration = Duration::from_secs(2);
/// How long one dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a write may block on a peer that stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the links report to the layer above. Called from the links' threads.
pub trait Events: Send + Sync + 'static {
    /// A connection to `peer` passed its handshake; frames from it follow.
    fn up(&self, _peer: u32) {}
    /// As [`Events::up`], with the peer's hello (the DCs it serves); calls [`Events::up`]
    /// unless overridden.
    fn up_with(&self, peer: u32, _hello: &Hello) {
        self.up(peer);
    }
    /// A frame from `peer` (never a heartbeat or a goodbye: the links take those). Runs on the
    /// link's reader thread: the next frame waits until it returns.
    fn frame(&self, peer: u32, frame: Frame);
    /// The connection to `peer` is gone (`why` says how); frames queued for it were dropped.
    fn down(&self, _peer: u32, _why: &str) {}
    /// A connection was refused in its handshake, by either side (`peer` when known).
    fn refused(&self, _peer: Option<u32>, _why: &str) {}
}

/// A peer node: its id and, for a peer this node dials, its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// The peer's node id.
    pub node: u32,
    /// Where it listens.
    pub address: SocketAddr,
}

/// Why a frame could not be queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// The node is not one of this node's peers.
    #[error("node {0} is not a peer of this node")]
    NoSuchPeer(u32),
    /// The peer is not connected now (the text says what happened last).
    #[error("node {peer} is not connected: {why}")]
    NotConnected {
        /// The peer.
        peer: u32,
        /// What happened last on the link.
        why: String,
    },
    /// The frame breaks the wire protocol's rules.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// One peer's link as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's node id.
    pub node: u32,
    /// Its address (the one dialled, or the one it came from).
    pub address: Option<SocketAddr>,
    /// Whether this node dials it.
    pub dials: bool,
    /// Since when it has been connected (None: not connected).
    pub since: Option<SystemTime>,
    /// Frames sent to it (heartbeats not counted).
    pub frames_out: u64,
    /// Bytes sent to it.
    pub bytes_out: u64,
    /// Frames received from it (heartbeats not counted).
    pub frames_in: u64,
    /// Bytes received from it.
    pub bytes_in: u64,
    /// Round trip of the last answered heartbeat.
    pub rtt: Option<Duration>,
    /// What ended the last connection or attempt.
    pub last_error: Option<String>,
}

/// The links of this node to its peers. Dropping it (or [`Peers::shutdown`]) says goodbye to
/// every peer and stops every thread.
pub struct Peers {
    shared: Arc<Shared>,
    local: SocketAddr,
}

struct Shared {
    hello: Hello,
    /// The links, in the order they were added. Read-locked on every send (find, clone the
    /// Arc, unlock): adding or removing a peer is rare, sending is not.
    links: RwLock<Vec<Arc<Link>>>,
    /// A connection from a lower-id node that is not a peer (yet) is accepted as a new link:
    /// with a dynamic membership it may simply be ahead of this node's view.
    open: bool,
    /// Nodes removed and not added back: not taken as strangers, or a removed dialler that
    /// still runs would come straight back.
    departed: Mutex<Vec<u32>>,
    events: Arc<dyn Events>,
    stopping: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Link {
    peer: u32,
    dial: Option<SocketAddr>,
    /// Removed by [`Peers::remove_peer`]: its threads end and it never connects again.
    removed: AtomicBool,
    state: Mutex<LinkState>,
    changed: Condvar,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    /// Microseconds of the last heartbeat round trip, plus one (0: none yet).
    rtt_us: AtomicU64,
}

#[derive(Default)]
struct LinkState {
    conn: Option<Conn>,
    /// Counts connections; a thread of an older one finds it changed and ends.
    generation: u64,
    out: Vec<u8>,
    address: Option<SocketAddr>,
    last_error: Option<String>,
    /// This node is shutting down: the writer half-closes once the goodbye is out.
    closing: bool,
    /// A thread is writing a batch taken from `out` (the writer, or a sender writing
    /// directly): nobody else writes until it puts back what the socket did not take.
    writing: bool,
}

struct Conn {
    generation: u64,
    stream: Arc<TcpStream>,
    since: SystemTime,
    heartbeat_seq: u64,
    heartbeat_sent: Option<(u64, Instant)>,
}

impl Peers {
    /// Listen on `listen` and link to `peers` as the node whose hello is `hello` (its node id
    /// and DCs). Returns at once; links come up in the background ([`Events::up`]).
    ///
    /// Errors: the listener cannot be bound; a peer has this node's id or is listed twice.
    pub fn start(
        hello: Hello,
        listen: SocketAddr,
        peers: &[PeerSpec],
        events: Arc<dyn Events>,
    ) -> io::Result<Peers> {
        Peers::start_in(hello, listen, peers, events, false)
    }

    /// As [`Peers::start`] for a membership that changes at run time ([`Peers::add_peer`],
    /// [`Peers::remove_peer`]), starting with no peer. A connection from a lower-id node that
    /// is not a peer yet is accepted as a new link: it learnt of this node before this node
    /// learnt of it.
    ///
    /// Errors: the listener cannot be bound.
    pub fn start_dynamic(
        hello: Hello,
        listen: SocketAddr,
        events: Arc<dyn Events>,
    ) -> io::Result<Peers> {
        Peers::start_in(hello, listen, &[], events, true)
    }

    fn start_in(
        hello: Hello,
        listen: SocketAddr,
        peers: &[PeerSpec],
        events: Arc<dyn Events>,
        open: bool,
    ) -> io::Result<Peers> {
        let mut links: Vec<Arc<Link>> = Vec::new();
        for p in peers {
            if p.node == hello.node || links.iter().any(|l| l.peer == p.node) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("peer node {} is this node or listed twice", p.node),
                ));
            }
            links.push(Arc::new(Link::new(
                p.node,
                (hello.node < p.node).then_some(p.address),
            )));
        }
        let listener = TcpListener::bind(listen)?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            hello,
            links: RwLock::new(links),
            open,
            departed: Mutex::new(Vec::new()),
            events,
            stopping: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        shared.spawn(move || accept_loop(&s, listener));
        for link in shared.snapshot() {
            if link.dial.is_some() {
                let s = shared.clone();
                shared.spawn(move || dial_loop(&s, &link));
            }
        }
        Ok(Peers { shared, local })
    }

    /// Link to `peer` from now on (the lower id dials). Adding a peer that is already one
    /// changes nothing, unless this node dials it and its address changed: then the old link
    /// is removed first (as by [`Peers::remove_peer`]).
    ///
    /// Errors: `peer` is this node.
    pub fn add_peer(&self, peer: &PeerSpec) -> io::Result<()> {
        let s = &self.shared;
        if peer.node == s.hello.node {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("node {} is this node", peer.node),
            ));
        }
        let dial = (s.hello.node < peer.node).then_some(peer.address);
        if let Some(old) = s.link(peer.node) {
            if old.dial == dial {
                return Ok(());
            }
            self.remove_peer(peer.node);
        }
        lock(&s.departed).retain(|&n| n != peer.node);
        let link = Arc::new(Link::new(peer.node, dial));
        {
            let mut links = s.links.write().unwrap_or_else(|e| e.into_inner());
            if s.stopping.load(Ordering::Relaxed) || links.iter().any(|l| l.peer == peer.node) {
                // Stopping, or a connection from it came in meanwhile: that link serves.
                return Ok(());
            }
            links.push(link.clone());
        }
        if link.dial.is_some() {
            let s2 = s.clone();
            s.spawn(move || dial_loop(&s2, &link));
        }
        Ok(())
    }

    /// Stop linking to `node`: say goodbye on its connection (its queued frames first, for up
    /// to 300 ms), close it ([`Events::down`] fires if it was up) and end its threads; sends to
    /// it fail with [`LinkError::NoSuchPeer`] from now on, and its connections are refused
    /// until it is added again. Whether it was a peer.
    pub fn remove_peer(&self, node: u32) -> bool {
        let s = &self.shared;
        let link = {
            let mut links = s.links.write().unwrap_or_else(|e| e.into_inner());
            let Some(i) = links.iter().position(|l| l.peer == node) else {
                return false;
            };
            let link = links.remove(i);
            let mut departed = lock(&s.departed);
            if !departed.contains(&node) {
                departed.push(node);
            }
            link
        };
        // Relaxed: the flag is read under the link's state lock or after its condvar wakes
        // (both order it); a thread that misses it once sees it on its next turn.
        link.removed.store(true, Ordering::Relaxed);
        let why = format!("node {node} left the cluster");
        s.close_link(&link, &why);
        true
    }
    /// The address this node listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Queue `frame` for `peer`. Returns once it is in the link's buffer (waiting for room
    /// while [`MAX_QUEUED`] bytes wait); the writer sends it soon after.
    ///
    /// Errors: [`LinkError::NoSuchPeer`]; [`LinkError::NotConnected`] (also when the link goes
    /// down while this waits for room); [`LinkError::Wire`] for a frame the protocol forbids.
    pub fn send(&self, peer: u32, frame: &Frame) -> Result<(), LinkError> {
        self.send_with_tail(peer, frame, Tail::EMPTY)
    }

    /// [`Peers::send`] of `frame` whose payload goes on with the bytes of `tail`: they go from
    /// where they lie to the socket (a copy chunk from a pool buffer, without a copy of our
    /// own), or are copied into the link's buffer if the socket does not take them now.
    pub fn send_with_tail(
        &self,
        peer: u32,
        frame: &Frame,
        tail: Tail<'_>,
    ) -> Result<(), LinkError> {
        let link = self.shared.link(peer).ok_or(LinkError::NoSuchPeer(peer))?;
        let link = &*link;
        let mut st = lock(&link.state);
        loop {
            if st.conn.is_none() || self.shared.stopping.load(Ordering::Relaxed) {
                return Err(LinkError::NotConnected {
                    peer,
                    why: st
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "not connected yet".into()),
                });
            }
            if st.out.len() < MAX_QUEUED {
                break;
            }
            st = wait(&link.changed, st, HEARTBEAT_EVERY);
        }
        // Checked before anything is queued: a frame the peer would refuse is never sent.
        let head = frame.encode_head_with_tail(tail.len)?;
        link.frames_out.fetch_add(1, Ordering::Relaxed);
        let conn = st.conn.as_ref().map(|c| (c.stream.clone(), c.generation));
        let (Some((stream, generation)), false, false) = (conn, st.writing, st.closing) else {
            // The one writing takes it after its batch (the writer thread loops; a direct
            // writer hands leftovers to the writer thread).
            st.out.extend_from_slice(&head);
            st.out.extend_from_slice(&frame.payload);
            tail.append_from(0, &mut st.out);
            drop(st);
            link.changed.notify_all();
            return Ok(());
        };
        st.writing = true;
        let mut earlier = std::mem::take(&mut st.out);
        drop(st);
        // The payload goes from the frame to the socket, not through the buffer.
        let parts = [
            Tail::of(&earlier),
            Tail::of(&head),
            Tail::of(&frame.payload),
            tail,
        ];
        let written = send_now(&stream, &parts);
        let mut st = lock(&link.state);
        st.writing = false;
        match written {
            Ok(n) => {
                link.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                let total: usize = parts.iter().map(|p| p.len).sum();
                if n < total {
                    // The socket is full: the rest goes first, on the writer thread.
                    let later = std::mem::take(&mut st.out);
                    let mut skip = n;
                    for p in &parts {
                        let from = skip.min(p.len);
                        skip -= from;
                        p.append_from(from, &mut st.out);
                    }
                    st.out.extend_from_slice(&later);
                } else if st.out.is_empty() {
                    // Keep the buffer's capacity for the next frames.
                    earlier.clear();
                    st.out = earlier;
                }
                let leftover = !st.out.is_empty();
                drop(st);
                if leftover {
                    link.changed.notify_all();
                }
            }
            Err(e) => {
                drop(st);
                self.shared.teardown(
                    link,
                    generation,
                    &format!("write to node {}: {e}", link.peer),
                );
            }
        }
        Ok(())
    }

    /// Whether `peer` is connected now.
    pub fn is_connected(&self, peer: u32) -> bool {
        self.shared
            .link(peer)
            .is_some_and(|l| lock(&l.state).conn.is_some())
    }

    /// Every peer's link, in the order they were given or added.
    pub fn status(&self) -> Vec<PeerStatus> {
        self.shared
            .snapshot()
            .iter()
            .map(|l| {
                let st = lock(&l.state);
                let rtt = l.rtt_us.load(Ordering::Relaxed);
                PeerStatus {
                    node: l.peer,
                    address: st.address,
                    dials: l.dial.is_some(),
                    since: st.conn.as_ref().map(|c| c.since),
                    frames_out: l.frames_out.load(Ordering::Relaxed),
                    bytes_out: l.bytes_out.load(Ordering::Relaxed),
                    frames_in: l.frames_in.load(Ordering::Relaxed),
                    bytes_in: l.bytes_in.load(Ordering::Relaxed),
                    rtt: (rtt > 0).then(|| Duration::from_micros(rtt - 1)),
                    last_error: st.last_error.clone(),
                }
            })
            .collect()
    }

    /// Say goodbye to every peer (its queued frames first, for up to 200 ms), close every link
    /// and stop every thread.
    pub fn shutdown(self) {
        // Drop does the work.
    }

    fn stop(&self) {
        let s = &self.shared;
        if s.stopping.swap(true, Ordering::Relaxed) {
            return;
        }
        let why = s.goodbye();
        for link in s.snapshot() {
            s.close_link(&link, &why);
        }
        // Wake the acceptor, which sleeps in accept().
        let _ = TcpStream::connect_timeout(&self.local, Duration::from_millis(200));
        let threads = std::mem::take(&mut *lock(&s.threads));
        for t in threads {
            let _ = t.join();
        }
        // Threads started while we joined (a late handshake) see `stopping` and end at once.
        let late = std::mem::take(&mut *lock(&s.threads));
        for t in late {
            let _ = t.join();
        }
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Link {
    fn new(peer: u32, dial: Option<SocketAddr>) -> Link {
        Link {
            peer,
            dial,
            removed: AtomicBool::new(false),
            state: Mutex::new(LinkState {
                address: dial,
                ..LinkState::default()
            }),
            changed: Condvar::new(),
            frames_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            rtt_us: AtomicU64::new(0),
        }
    }
}

impl Shared {
    fn goodbye(&self) -> String {
        format!("node {} is shutting down", self.hello.node)
    }

    fn link(&self, peer: u32) -> Option<Arc<Link>> {
        self.links
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|l| l.peer == peer)
            .cloned()
    }

    fn snapshot(&self) -> Vec<Arc<Link>> {
        self.links.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Say goodbye on `link` (its queued frames first, for up to 300 ms), then close it.
    fn close_link(&self, link: &Link, why: &str) {
        let mut bye = Frame::new(Command::Goodbye, 0, 0, 0, 0);
        bye.payload = truncated(why).into_bytes();
        let mut st = lock(&link.state);
        // The writer sends the goodbye, then half-closes; the peer reads it, closes its
        // side, and our reader's end of stream ends the connection. A close with unread
        // bytes would send a reset instead, which may destroy the goodbye on its way.
        if st.conn.is_some() && bye.encode(&mut st.out).is_ok() {
            st.closing = true;
            link.changed.notify_all();
            let until = Instant::now() + Duration::from_millis(300);
            while st.conn.is_some() && Instant::now() < until {
                st = wait(&link.changed, st, Duration::from_millis(10));
            }
        }
        let generation = st.generation;
        drop(st);
        self.teardown(link, generation, why);
        link.changed.notify_all();
    }

    fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        match std::thread::Builder::new()
            .name("m3cluster-link".into())
            .spawn(f)
        {
            Ok(h) => {
                let mut threads = lock(&self.threads);
                // Forget threads that ended (links removed, handshakes done), so a daemon
                // whose membership changes for long does not pile up their handles.
                threads.retain(|h| !h.is_finished());
                threads.push(h);
            }
            // Out of threads: the link stays down and its status says why.
            Err(e) => self
                .events
                .refused(None, &format!("cannot start a thread: {e}")),
        }
    }

    /// Make `stream` the live connection of link `i`, replacing any older one.
    fn install(self: &Arc<Self>, link: &Arc<Link>, stream: TcpStream, accepted: Accepted) {
        let (Ok(reader), Ok(writer)) = (stream.try_clone(), stream.try_clone()) else {
            return;
        };
        let mut st = lock(&link.state);
        if self.stopping.load(Ordering::Relaxed) || link.removed.load(Ordering::Relaxed) {
            return;
        }
        let replaced = st.conn.take();
        if let Some(old) = &replaced {
            let _ = old.stream.shutdown(Shutdown::Both);
        }
        st.generation += 1;
        let generation = st.generation;
        st.out.clear();
        st.address = stream.peer_addr().ok().or(st.address);
        st.last_error = None;
        st.closing = false;
        st.conn = Some(Conn {
            generation,
            stream: Arc::new(stream),
            since: SystemTime::now(),
            heartbeat_seq: 0,
            heartbeat_sent: None,
        });
        drop(st);
        link.changed.notify_all();
        if replaced.is_some() {
            self.events.down(link.peer, "replaced by a new connection");
        }
        self.events.up_with(link.peer, &accepted.hello);
        let (s, l) = (self.clone(), link.clone());
        self.spawn(move || write_loop(&s, &l, generation, writer));
        let (s, l) = (self.clone(), link.clone());
        self.spawn(move || read_loop(&s, &l, generation, reader, accepted.decoder));
    }

    /// Close connection `generation` of `link` if it is still the live one.
    fn teardown(&self, link: &Link, generation: u64, why: &str) {
        let mut st = lock(&link.state);
        let live = st.conn.as_ref().is_some_and(|c| c.generation == generation);
        if !live {
            return;
        }
        if let Some(c) = st.conn.take() {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        st.out.clear();
        st.last_error = Some(why.to_string());
        drop(st);
        link.changed.notify_all();
        self.events.down(link.peer, why);
    }
}

/// Write as much of `parts`, one after the other, as the socket takes now, without blocking;
/// the count written.
fn send_now(stream: &TcpStream, parts: &[Tail<'_>; 4]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let total: usize = parts.iter().map(|p| p.len).sum();
    let mut done = 0;
    while done < total {
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 4];
        let mut used = 0;
        let mut skip = done;
        for p in parts {
            let from = skip.min(p.len);
            skip -= from;
            if from < p.len {
                iov[used] = libc::iovec {
                    // `from < len`: inside the part (Tail's contract).
                    iov_base: p.ptr.wrapping_add(from).cast_mut().cast(),
                    iov_len: p.len - from,
                };
                used += 1;
            }
        }
        // SAFETY: all-zero is a valid `msghdr` (no name, no control data); the fields set
        // below point at `iov`, which lives until the call returns.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = used;
        // SAFETY: each iovec lies inside one part, which is valid for reads for the duration
        // of the call (a slice we borrow, or a `Tail`, whose maker promised it), and the
        // kernel only reads from them (sendmsg does not write through `iov_base`); `msg` is
        // valid as argued above; the descriptor belongs to `stream`, which outlives the call.
        // MSG_DONTWAIT makes this one call non-blocking without touching the descriptor's
        // flags (the reader and writer threads share it); MSG_NOSIGNAL turns a closed peer
        // into EPIPE instead of a SIGPIPE.
        let n = unsafe {
            libc::sendmsg(
                stream.as_raw_fd(),
                &msg,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            // Non-negative and at most the bytes offered: the cast is exact.
            done += n as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => break,
            _ => return Err(e),
        }
    }
    Ok(done)
}

/// Bytes that end a frame's payload and that we read without holding them as a slice: a
/// range of shared memory (a pool buffer another process may write at any time, so never a
/// Rust reference), valid for reads while `'a` lasts. Sent from where they lie.
#[derive(Clone, Copy, Debug)]
pub struct Tail<'a> {
    ptr: *const u8,
    len: usize,
    _lent: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> Tail<'a> {
    /// No bytes.
    pub const EMPTY: Tail<'static> = Tail {
        ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
        len: 0,
        _lent: std::marker::PhantomData,
    };

    /// The `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads of `len` bytes for all of `'a` (inside one live mapping
    /// or allocation). The bytes may change meanwhile (shared memory): what is sent is what
    /// they hold when they are read, with no other effect.
    pub unsafe fn new(ptr: *const u8, len: usize) -> Tail<'a> {
        Tail {
            ptr,
            len,
            _lent: std::marker::PhantomData,
        }
    }

    /// The bytes of a slice.
    fn of(bytes: &'a [u8]) -> Tail<'a> {
        // SAFETY: a slice is valid for reads of its length while it is borrowed.
        unsafe { Tail::new(bytes.as_ptr(), bytes.len()) }
    }

    /// Bytes in the tail.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append the bytes from `from` on to `out`.
    fn append_from(&self, from: usize, out: &mut Vec<u8>) {
        let n = self.len.saturating_sub(from);
        if n == 0 {
            return;
        }
        out.reserve(n);
        let old = out.len();
        // SAFETY: `from + n == len`, so the source lies in the tail, valid for reads (its
        // contract); `reserve` made room for `n` bytes after `old` in `out`, which is private
        // memory and so cannot overlap it; the copy initialises `old..old + n`.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.add(from), out.as_mut_ptr().add(old), n);
            out.set_len(old + n);
        }
    }
}

// SAFETY: a `Tail` is a shared borrow of bytes that are only ever read through it; sending it to
// or sharing it with another thread is as safe as doing so with a `&[u8]` for the same `'a`.
unsafe impl Send for Tail<'_> {}
// SAFETY: as for `Send`: reads only.
unsafe impl Sync for Tail<'_> {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in an event handler must not take the links down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>, d: Duration) -> MutexGuard<'a, T> {
    match cv.wait_timeout(g, d) {
        Ok((g, _)) => g,
        Err(e) => e.into_inner().0,
    }
}

fn accept_loop(s: &Arc<Shared>, listener: TcpListener) {
    for stream in listener.incoming() {
        if s.stopping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else {
            // Out of descriptors, most likely: give the others a moment to close some.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let s2 = s.clone();
        // The handshake runs on its own thread, so a peer that stalls in it delays no other.
        s.spawn(move || accept_one(&s2, stream));
    }
}

fn accept_one(s: &Arc<Shared>, mut stream: TcpStream) {
    // Only peers with a lower id dial this node (see the module docs): those it does not dial.
    // In an open membership, also a lower-id node that is not a peer yet.
    let is_peer = |n: u32| match s.link(n) {
        Some(l) => l.dial.is_none(),
        None => s.open && n < s.hello.node && !lock(&s.departed).contains(&n),
    };
    match handshake(&mut stream, &s.hello, is_peer) {
        Ok(acc) => {
            let node = acc.hello.node;
            let link = s.link(node).or_else(|| {
                if !s.open || node >= s.hello.node || lock(&s.departed).contains(&node) {
                    return None;
                }
                let mut links = s.links.write().unwrap_or_else(|e| e.into_inner());
                if let Some(l) = links.iter().find(|l| l.peer == node) {
                    return Some(l.clone());
                }
                let l = Arc::new(Link::new(node, None));
                links.push(l.clone());
                Some(l)
            });
            if let Some(link) = link {
                s.install(&link, stream, acc);
            }
        }
        Err(HandshakeError::Io(_)) if s.stopping.load(Ordering::Relaxed) => {}
        Err(e) => s.events.refused(None, &e.to_string()),
    }
}

fn dial_loop(s: &Arc<Shared>, link: &Arc<Link>) {
    let Some(addr) = link.dial else { return };
    let mut backoff = REDIAL_FIRST;
    let ended = || s.stopping.load(Ordering::Relaxed) || link.removed.load(Ordering::Relaxed);
    while !ended() {
        {
            let mut st = lock(&link.state);
            while st.conn.is_some() && !ended() {
                st = wait(&link.changed, st, HEARTBEAT_EVERY);
            }
        }
        if ended() {
            return;
        }
        let attempt = TcpStream::connect_timeout(&addr, DIAL_TIMEOUT)
            .map_err(HandshakeError::Io)
            .and_then(|mut stream| {
                handshake(&mut stream, &s.hello, |n| n == link.peer).map(|acc| (stream, acc))
            });
        match attempt {
            Ok((stream, acc)) => {
                backoff = REDIAL_FIRST;
                s.install(link, stream, acc);
            }
            Err(e) => {
                let why = e.to_string();
                lock(&link.state).last_error = Some(why.clone());
                if !matches!(e, HandshakeError::Io(_)) {
                    s.events.refused(Some(link.peer), &why);
                }
                let mut st = lock(&link.state);
                let until = Instant::now() + backoff;
                while !ended() && Instant::now() < until {
                    st = wait(
                        &link.changed,
                        st,
                        until.saturating_duration_since(Instant::now()),
                    );
                }
                backoff = (backoff * 2).min(REDIAL_MAX);
            }
        }
    }
}

fn write_loop(s: &Arc<Shared>, link: &Link, generation: u64, mut stream: TcpStream) {
    if let Err(e) = stream.set_write_timeout(Some(WRITE_TIMEOUT)) {
        s.teardown(link, generation, &format!("socket: {e}"));
        return;
    }
    let mut batch = Vec::new();
    let mut next_heartbeat = Instant::now();
    loop {
        let mut st = lock(&link.state);
        loop {
            if st.conn.as_ref().is_none_or(|c| c.generation != generation) {
                return;
            }
            if st.closing && st.out.is_empty() {
                let _ = stream.shutdown(Shutdown::Write);
                return;
            }
            if Instant::now() >= next_heartbeat && !st.closing {
                let Some(conn) = st.conn.as_mut() else { return };
                conn.heartbeat_seq += 1;
                let seq = conn.heartbeat_seq;
                conn.heartbeat_sent = Some((seq, Instant::now()));
                // A heartbeat always encodes (no payload).
                let _ = Frame::new(Command::Heartbeat, 0, 0, 0, seq).encode(&mut st.out);
                next_heartbeat = Instant::now() + HEARTBEAT_EVERY;
            }
            if !st.out.is_empty() && !st.writing {
                break;
            }
            let left = next_heartbeat.saturating_duration_since(Instant::now());
            st = wait(&link.changed, st, left);
        }
        batch.clear();
        std::mem::swap(&mut batch, &mut st.out);
        st.writing = true;
        drop(st);
        // Senders waiting for room may go on.
        link.changed.notify_all();
        let r = stream.write_all(&batch);
        lock(&link.state).writing = false;
        if let Err(e) = r {
            s.teardown(
                link,
                generation,
                &format!("write to node {}: {e}", link.peer),
            );
            return;
        }
        link.bytes_out
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
}

fn read_loop(
    s: &Arc<Shared>,
    link: &Link,
    generation: u64,
    mut stream: TcpStream,
    mut decoder: FrameDecoder,
) {
    if let Err(e) = stream.set_read_timeout(Some(HEARTBEAT_EVERY / 2)) {
        s.teardown(link, generation, &format!("socket: {e}"));
        return;
    }
    let mut last_heard = Instant::now();
    loop {
        loop {
            match decoder.next_item() {
                Ok(None) => break,
                Ok(Some(Incoming::Frame(f))) => {
                    if let Some(why) = take_frame(s, link, generation, f) {
                        s.teardown(link, generation, &why);
                        return;
                    }
                }
                Ok(Some(Incoming::Hello(_))) => {
                    s.teardown(link, generation, "a second hello");
                    return;
                }
                Err(e) => {
                    s.teardown(link, generation, &format!("from node {}: {e}", link.peer));
                    return;
                }
            }
        }
        match decoder.read_from(&mut stream) {
            Ok(0) => {
                let why = if s.stopping.load(Ordering::Relaxed) {
                    s.goodbye()
                } else {
                    format!("node {} closed the connection", link.peer)
                };
                s.teardown(link, generation, &why);
                return;
            }
            Ok(n) => {
                last_heard = Instant::now();
                link.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let live = lock(&link.state)
                    .conn
                    .as_ref()
                    .is_some_and(|c| c.generation == generation);
                if !live {
                    return;
                }
                if last_heard.elapsed() >= DEAD_AFTER {
                    let why = format!(
                        "nothing from node {} for {} ms",
                        link.peer,
                        last_heard.elapsed().as_millis()
                    );
                    s.teardown(link, generation, &why);
                    return;
                }
            }
            Err(e) => {
                s.teardown(
                    link,
                    generation,
                    &format!("read from node {}: {e}", link.peer),
                );
                return;
            }
        }
    }
}

/// Handle one received frame; `Some(why)` ends the connection.
fn take_frame(s: &Shared, link: &Link, generation: u64, f: Frame) -> Option<String> {
    match f.cmd {
        Command::Heartbeat => {
            let mut st = lock(&link.state);
            if st.conn.as_ref().is_some_and(|c| c.generation == generation) {
                // An ack always encodes (no payload).
                let _ = Frame::new(Command::HeartbeatAck, 0, 0, 0, f.seq).encode(&mut st.out);
                drop(st);
                link.changed.notify_all();
            }
            None
        }
        Command::HeartbeatAck => {
            let mut st = lock(&link.state);
            if let Some(c) = st.conn.as_mut().filter(|c| c.generation == generation)
                && let Some((seq, at)) = c.heartbeat_sent
                && seq == f.seq
            {
                c.heartbeat_sent = None;
                let us = at.elapsed().as_micros().min(u64::MAX as u128 - 1) as u64;
                link.rtt_us.store(us + 1, Ordering::Relaxed);
            }
            None
        }
        Command::Goodbye => Some(format!(
            "node {} said goodbye: {}",
            link.peer,
            String::from_utf8_lossy(&f.payload)
        )),
        _ => {
            link.frames_in.fetch_add(1, Ordering::Relaxed);
            s.events.frame(link.peer, f);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lower_id_dials() {
        let l = Link::new(5, Some(([127, 0, 0, 1], 1).into()));
        assert!(l.dial.is_some());
        assert_eq!(lock(&l.state).address, l.dial);
    }

    #[test]
    fn a_peer_with_our_id_is_refused_at_start() {
        struct Nothing;
        impl Events for Nothing {
            fn frame(&self, _: u32, _: Frame) {}
        }
        let hello = Hello::new(1, None, vec![]);
        let spec = PeerSpec {
            node: 1,
            address: ([127, 0, 0, 1], 9).into(),
        };
        let r = Peers::start(
            hello,
            ([127, 0, 0, 1], 0).into(),
            &[spec],
            Arc::new(Nothing),
        );
        assert!(r.is_err());
    }
}
