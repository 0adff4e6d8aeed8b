//! Links between node daemons over loopback: frames in order both ways, every handshake
//! refusal named on both sides, a peer that restarts, and a silent link declared down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use m3cluster::peers::{DEAD_AFTER, Events, LinkError, PeerSpec, Peers};
use m3cluster::wire::{Command, DcEntry, Frame, Hello};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Log {
    seen: Mutex<Seen>,
    changed: Condvar,
}

#[derive(Default)]
struct Seen {
    up: Vec<u32>,
    down: Vec<(u32, String, Instant)>,
    frames: Vec<(u32, Frame)>,
    refused: Vec<String>,
}

impl Events for Log {
    fn up(&self, peer: u32) {
        self.seen.lock().unwrap().up.push(peer);
        self.changed.notify_all();
    }
    fn frame(&self, peer: u32, frame: Frame) {
        self.seen.lock().unwrap().frames.push((peer, frame));
        self.changed.notify_all();
    }
    fn down(&self, peer: u32, why: &str) {
        self.seen
            .lock()
            .unwrap()
            .down
            .push((peer, why.to_string(), Instant::now()));
        self.changed.notify_all();
    }
    fn refused(&self, _peer: Option<u32>, why: &str) {
        self.seen.lock().unwrap().refused.push(why.to_string());
        self.changed.notify_all();
    }
}

impl Log {
    /// Wait until `pred` holds (panics after 10 s, with what was seen).
    fn until(&self, what: &str, pred: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut s = self.seen.lock().unwrap();
        while !pred(&s) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}: up {:?}, down {:?}, refused {:?}, {} frames",
                s.up,
                s.down,
                s.refused,
                s.frames.len()
            );
            s = self.changed.wait_timeout(s, left).unwrap().0;
        }
    }
}

fn dc(nr_procs: u32) -> DcEntry {
    DcEntry {
        name: "links".into(),
        id: 2,
        nr_tasks: 4,
        nr_procs,
        nr_sysprocs: 8,
    }
}

const ANY_PORT: ([u8; 4], u16) = ([127, 0, 0, 1], 0);
/// An address nothing listens on, for peers this node never dials.
const NOWHERE: ([u8; 4], u16) = ([127, 0, 0, 1], 9);

fn node(
    id: u32,
    dcs: Vec<DcEntry>,
    peers: &[(u32, SocketAddr)],
    listen: SocketAddr,
) -> (Peers, Arc<Log>) {
    let log = Arc::new(Log::default());
    let specs: Vec<PeerSpec> = peers
        .iter()
        .map(|&(node, address)| PeerSpec { node, address })
        .collect();
    let p = Peers::start(Hello::new(id, None, dcs), listen, &specs, log.clone()).unwrap();
    (p, log)
}

/// Nodes 0 and 1, linked: 1 listens, 0 dials.
fn pair(dc0: DcEntry, dc1: DcEntry) -> (Peers, Arc<Log>, Peers, Arc<Log>) {
    let (p1, l1) = node(1, vec![dc1], &[(0, NOWHERE.into())], ANY_PORT.into());
    let (p0, l0) = node(0, vec![dc0], &[(1, p1.local_addr())], ANY_PORT.into());
    (p0, l0, p1, l1)
}

fn numbered(i: u64) -> Frame {
    let mut f = Frame::new(Command::Send, 2, 40, 7, i);
    f.msg.m_type = i as i32;
    f
}

#[test]
fn frames_flow_both_ways_in_order() {
    let (p0, l0, p1, l1) = pair(dc(16), dc(16));
    l0.until("node 0 up", |s| s.up == [1]);
    l1.until("node 1 up", |s| s.up == [0]);
    const N: u64 = 5000;
    let t = std::thread::spawn(move || {
        for i in 0..N {
            p1.send(0, &numbered(i)).unwrap();
        }
        p1
    });
    for i in 0..N {
        p0.send(1, &numbered(i)).unwrap();
    }
    let p1 = t.join().unwrap();
    for (log, from) in [(&l0, 1u32), (&l1, 0)] {
        log.until("every frame", |s| s.frames.len() == N as usize);
        let s = log.seen.lock().unwrap();
        for (i, (peer, f)) in s.frames.iter().enumerate() {
            assert_eq!((*peer, f.seq, f.msg.m_type), (from, i as u64, i as i32));
        }
    }
    // Heartbeats go both ways and are answered: a round trip is measured.
    let deadline = Instant::now() + Duration::from_secs(5);
    while p0.status()[0].rtt.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = &p0.status()[0];
    assert_eq!(
        (st.node, st.dials, st.frames_out, st.frames_in),
        (1, true, N, N)
    );
    assert!(st.since.is_some() && st.rtt.is_some(), "{st:?}");
    assert!(st.bytes_out >= N * m3cluster::wire::FRAME_SIZE as u64);
    assert!(!p1.status()[0].dials);
    assert!(l0.seen.lock().unwrap().down.is_empty());
}

#[test]
fn a_dc_mismatch_is_named_on_both_sides() {
    let (p0, l0, _p1, l1) = pair(dc(16), dc(8));
    let want = "DC \"links\" mismatch: nr_procs";
    l0.until("node 0's refusal", |s| {
        s.refused.iter().any(|r| r.contains(want))
    });
    l1.until("node 1's refusal", |s| {
        s.refused.iter().any(|r| r.contains(want))
    });
    assert!(l0.seen.lock().unwrap().up.is_empty());
    assert!(matches!(
        p0.send(1, &numbered(0)),
        Err(LinkError::NotConnected { .. })
    ));
    let why = p0.status()[0].last_error.clone().unwrap_or_default();
    assert!(why.contains("nr_procs is 16 here, 8 on the peer"), "{why}");
}

#[test]
fn a_node_that_is_not_a_peer_is_refused_with_the_reason() {
    // Node 2 lists no peer; node 0 dials it anyway.
    let (p2, l2) = node(2, vec![dc(16)], &[], ANY_PORT.into());
    let (_p0, l0) = node(0, vec![dc(16)], &[(2, p2.local_addr())], ANY_PORT.into());
    let want = "node 0 is not among the peers of node 2";
    l2.until("node 2's refusal", |s| {
        s.refused.iter().any(|r| r.contains(want))
    });
    l0.until("node 0 told why", |s| {
        s.refused
            .iter()
            .any(|r| r.contains("the peer refused this node") && r.contains(want))
    });
}

#[test]
fn a_node_id_clash_is_named() {
    // Node 0 dials what it thinks is node 1; another node 0 answers.
    let (other, l_other) = node(0, vec![dc(16)], &[], ANY_PORT.into());
    let (_p0, l0) = node(0, vec![dc(16)], &[(1, other.local_addr())], ANY_PORT.into());
    l0.until("the clash", |s| {
        s.refused
            .iter()
            .any(|r| r.contains("node id clash: both nodes are node 0"))
    });
    l_other.until("the clash, there too", |s| {
        s.refused.iter().any(|r| r.contains("node id clash"))
    });
}

#[test]
fn a_peer_that_restarts_is_dialled_again() {
    let (p0, l0, p1, l1) = pair(dc(16), dc(16));
    l0.until("up", |s| s.up.len() == 1);
    l1.until("up", |s| s.up.len() == 1);
    let addr = p1.local_addr();
    let stopped = Instant::now();
    p1.shutdown();
    l0.until("down", |s| s.down.len() == 1);
    {
        let s = l0.seen.lock().unwrap();
        let (peer, why, at) = &s.down[0];
        assert_eq!(*peer, 1);
        assert!(why.contains("node 1 is shutting down"), "{why}");
        assert!(at.duration_since(stopped) < Duration::from_secs(1));
    }
    assert!(matches!(
        p0.send(1, &numbered(0)),
        Err(LinkError::NotConnected { .. })
    ));

    let (p1, l1) = node(1, vec![dc(16)], &[(0, NOWHERE.into())], addr);
    l0.until("up again", |s| s.up.len() == 2);
    l1.until("up", |s| s.up.len() == 1);
    p0.send(1, &numbered(77)).unwrap();
    l1.until("the frame", |s| s.frames.len() == 1);
    assert_eq!(l1.seen.lock().unwrap().frames[0].1.seq, 77);
    drop(p1);
}

/// A TCP relay that forwards both ways until frozen; frozen, it holds its connections open and
/// forwards nothing, as a cut link does.
struct Relay {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
}

impl Relay {
    fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind(SocketAddr::from(ANY_PORT)).unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                for (mut a, mut b) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let f = f.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 65536];
                        while let Ok(n) = a.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            while f.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            if b.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        });
        Relay { addr, frozen }
    }
}

#[test]
fn a_silent_link_is_declared_down_within_a_second() {
    let (p1, l1) = node(1, vec![dc(16)], &[(0, NOWHERE.into())], ANY_PORT.into());
    let relay = Relay::start(p1.local_addr());
    let (p0, l0) = node(0, vec![dc(16)], &[(1, relay.addr)], ANY_PORT.into());
    l0.until("up", |s| s.up.len() == 1);
    l1.until("up", |s| s.up.len() == 1);

    let cut = Instant::now();
    relay.frozen.store(true, Ordering::Relaxed);
    l0.until("node 0 sees the silence", |s| !s.down.is_empty());
    l1.until("node 1 sees the silence", |s| !s.down.is_empty());
    for log in [&l0, &l1] {
        let s = log.seen.lock().unwrap();
        let (_, why, at) = &s.down[0];
        assert!(why.contains("nothing from node"), "{why}");
        let after = at.duration_since(cut);
        assert!(
            after >= DEAD_AFTER - Duration::from_millis(250),
            "{after:?}"
        );
        assert!(
            after < Duration::from_secs(1) + Duration::from_millis(500),
            "{after:?}"
        );
    }
    assert!(matches!(
        p0.send(1, &numbered(1)),
        Err(LinkError::NotConnected { .. })
    ));

    relay.frozen.store(false, Ordering::Relaxed);
    l0.until("up again through the relay", |s| s.up.len() >= 2);
    p0.send(1, &numbered(9)).unwrap();
    l1.until("the frame", |s| s.frames.iter().any(|(_, f)| f.seq == 9));
}

fn dynamic(id: u32) -> (Peers, Arc<Log>) {
    let log = Arc::new(Log::default());
    let p = Peers::start_dynamic(
        Hello::new(id, None, vec![dc(16)]),
        ANY_PORT.into(),
        log.clone(),
    )
    .unwrap();
    (p, log)
}

#[test]
fn peers_are_added_and_removed_at_run_time() {
    let (p0, l0) = dynamic(0);
    let (p1, l1) = dynamic(1);
    let (p2, l2) = dynamic(2);
    assert_eq!(p0.send(1, &numbered(0)), Err(LinkError::NoSuchPeer(1)));
    // Node 0 learns of 1 and 2 first and dials them; they take it as a new link although
    // they have not learnt of node 0 yet.
    let spec = |node, p: &Peers| PeerSpec {
        node,
        address: p.local_addr(),
    };
    p0.add_peer(&spec(1, &p1)).unwrap();
    p0.add_peer(&spec(2, &p2)).unwrap();
    // Adding again changes nothing.
    p0.add_peer(&spec(1, &p1)).unwrap();
    l0.until("node 0 linked to both", |s| s.up.len() == 2);
    l1.until("node 1 took node 0", |s| s.up == [0]);
    l2.until("node 2 took node 0", |s| s.up == [0]);
    assert!(p0.add_peer(&spec(0, &p0)).is_err(), "itself");
    // Node 1 learns of node 2 and dials it; node 2 learns of node 1 (it does not dial).
    p1.add_peer(&spec(2, &p2)).unwrap();
    p2.add_peer(&spec(1, &p1)).unwrap();
    l2.until("node 2 took node 1", |s| s.up.len() == 2);
    p2.send(1, &numbered(7)).unwrap();
    l1.until("a frame from node 2", |s| {
        s.frames.iter().any(|(p, f)| *p == 2 && f.seq == 7)
    });
    let mut nodes: Vec<u32> = p2.status().iter().map(|s| s.node).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, [0, 1]);

    // Node 2 drops node 0: the link says goodbye, `down` fires on both sides, sends fail.
    assert!(p2.remove_peer(0));
    assert!(!p2.remove_peer(0), "removed once");
    l2.until("node 2 saw node 0 go", |s| s.down.iter().any(|d| d.0 == 0));
    l0.until("node 0 was told", |s| {
        s.down
            .iter()
            .any(|(p, why, _)| *p == 2 && why.contains("node 0 left the cluster"))
    });
    assert_eq!(p2.send(0, &numbered(1)), Err(LinkError::NoSuchPeer(0)));
    assert!(p2.status().iter().all(|s| s.node != 0));
    // Node 0 drops node 2 too: its dialler ends and never comes back.
    assert!(p0.remove_peer(2));
    std::thread::sleep(Duration::from_millis(500));
    assert!(p0.status().iter().all(|s| s.node != 2));
    assert!(
        p2.status().iter().all(|s| s.node != 0),
        "node 0 dialled again"
    );
    // The link between 1 and 2 carried on.
    assert!(p1.is_connected(2) && p2.is_connected(1));
    // Node 0 dialled node 2 until it dropped it, and was refused: a removed node is no
    // stranger to take.
    assert!(
        l2.seen
            .lock()
            .unwrap()
            .up
            .iter()
            .filter(|&&p| p == 0)
            .count()
            == 1
    );
    // Each adds the other back: linked again.
    p2.add_peer(&spec(0, &p0)).unwrap();
    p0.add_peer(&spec(2, &p2)).unwrap();
    l2.until("node 0 back at node 2", |s| {
        s.up.iter().filter(|&&p| p == 0).count() == 2
    });
    // Node 1 moved (as its record would say): node 0 drops the old link and dials the new
    // address.
    let moved = PeerSpec {
        node: 1,
        address: NOWHERE.into(),
    };
    p0.add_peer(&moved).unwrap();
    l1.until("node 1 lost node 0", |s| s.down.iter().any(|d| d.0 == 0));
    let st: Vec<_> = p0.status().into_iter().filter(|s| s.node == 1).collect();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].address, Some(moved.address));
}

#[test]
fn a_static_node_refuses_a_stranger_even_with_a_lower_id() {
    let (p1, l1) = node(1, vec![dc(16)], &[], ANY_PORT.into());
    let (p0, _l0) = dynamic(0);
    p0.add_peer(&PeerSpec {
        node: 1,
        address: p1.local_addr(),
    })
    .unwrap();
    l1.until("node 1's refusal", |s| {
        s.refused
            .iter()
            .any(|r| r.contains("node 0 is not among the peers of node 1"))
    });
    assert!(p1.status().is_empty());
}

/// Frames whose payload ends in a [`Tail`] (bytes sent from where they lie, as a copy chunk
/// from a pool buffer): far more than the socket takes at once, so most tails are cut where the
/// socket stops and their rest is copied into the link's buffer. Every frame arrives whole, in
/// order, with small frames between them.
#[test]
fn frames_with_tails_arrive_whole_and_in_order() {
    use m3cluster::peers::Tail;
    use m3cluster::wire::{COPY_DESC_SIZE, MAX_CHUNK};
    let (p0, l0, _p1, l1) = pair(dc(16), dc(16));
    l0.until("node 0 up", |s| s.up == [1]);
    const N: u64 = 64;
    let bytes = |i: u64| -> Vec<u8> {
        (0..MAX_CHUNK - i as usize)
            .map(|j| (j as u64 * 31 + i) as u8)
            .collect()
    };
    for i in 0..N {
        let body = bytes(i);
        let mut f = Frame::new(Command::CopyData, 2, 40, 7, 2 * i);
        f.payload = vec![i as u8; COPY_DESC_SIZE];
        // SAFETY: `body` lives, unchanged, until after the call.
        let tail = unsafe { Tail::new(body.as_ptr(), body.len()) };
        p0.send_with_tail(1, &f, tail).unwrap();
        p0.send(1, &numbered(2 * i + 1)).unwrap();
    }
    l1.until("every frame", |s| s.frames.len() == 2 * N as usize);
    let s = l1.seen.lock().unwrap();
    for (k, (_, f)) in s.frames.iter().enumerate() {
        let k = k as u64;
        assert_eq!(f.seq, k);
        if k.is_multiple_of(2) {
            let i = k / 2;
            assert_eq!(f.cmd, Command::CopyData);
            assert_eq!(
                f.payload[..COPY_DESC_SIZE],
                vec![i as u8; COPY_DESC_SIZE][..]
            );
            assert!(
                f.payload[COPY_DESC_SIZE..] == bytes(i)[..],
                "frame {k}'s tail differs"
            );
        } else {
            assert_eq!(f.cmd, Command::Send);
        }
    }
}
