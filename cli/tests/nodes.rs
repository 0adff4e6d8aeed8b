//! Several nodes on one machine: each node is its own region directory (`M3IPC_SHM_DIR`) with
//! the DC created in it (same id and limits), and its own `dvs node run` daemon on loopback.
//! Endpoints are child processes (this test binary again, in the role `proc`, driven by
//! commands on its standard input) bound in one node's directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use m3ipc::message::notify_from;
use m3ipc::{ANY, Errno, Message, endpoint};
use std::time::{Duration, Instant};
use support::{DC, Ep, LONG, cluster, free_port};

#[test]
fn proc_child() {
    support::proc_child();
}

#[test]
fn every_call_crosses_three_nodes() {
    let nodes = cluster(3);
    let mut s = Ep::start(&nodes[0], 5);
    let mut c1 = Ep::start(&nodes[1], 6);
    let mut c2 = Ep::start(&nodes[2], 7);
    c1.sees(s.ep);
    c2.sees(s.ep);
    s.sees(c1.ep);
    s.sees(c2.ep);

    // sendrec + reply, from two nodes.
    s.cmd(&format!("recv {ANY}"));
    assert_eq!(
        c1.call(&format!("sendrec {} 1000", s.ep)),
        vec![0, s.ep, 1001]
    );
    assert_eq!(s.result(LONG), vec![0, c1.ep, 1000]);
    s.cmd(&format!("recv {ANY}"));
    assert_eq!(
        c2.call(&format!("sendrec {} 1100", s.ep)),
        vec![0, s.ep, 1101]
    );
    assert_eq!(s.result(LONG), vec![0, c2.ep, 1100]);

    // send completes only on delivery: blocked while the receiver has not received.
    c2.cmd(&format!("send {} 7", s.ep));
    c2.no_result_for(Duration::from_millis(400));
    assert_eq!(s.call(&format!("recv {ANY}")), vec![0, c2.ep, 7]);
    assert_eq!(c2.result(LONG), vec![0]);

    // notify and senda complete at once; the far receiver sees the remote source.
    assert_eq!(c1.call(&format!("notify {}", s.ep)), vec![0]);
    assert_eq!(
        s.call(&format!("recv {ANY}")),
        vec![0, c1.ep, notify_from(endpoint::nr(c1.ep))]
    );
    assert_eq!(c2.call(&format!("senda {} 9", s.ep)), vec![0]);
    assert_eq!(s.call(&format!("recv {ANY}")), vec![0, c2.ep, 9]);

    // receive(src) from a remote endpoint: c1's message waits while s takes c2's.
    c1.cmd(&format!("send {} 11", s.ep));
    std::thread::sleep(Duration::from_millis(100));
    c2.cmd(&format!("send {} 12", s.ep));
    assert_eq!(s.call(&format!("recv {}", c2.ep)), vec![0, c2.ep, 12]);
    assert_eq!(c2.result(LONG), vec![0]);
    c1.no_result_for(Duration::from_millis(100));
    assert_eq!(s.call(&format!("recv {ANY}")), vec![0, c1.ep, 11]);
    assert_eq!(c1.result(LONG), vec![0]);

    // The other way: node 0 to node 1.
    c1.cmd(&format!("recv {ANY}"));
    assert_eq!(
        s.call(&format!("sendrec {} 1200", c1.ep)),
        vec![0, c1.ep, 1201]
    );
    assert_eq!(c1.result(LONG), vec![0, s.ep, 1200]);

    // 1000 messages between one pair, in order.
    s.cmd(&format!("recvn {} 1000", c1.ep));
    assert_eq!(c1.call(&format!("sendn {} 1000", s.ep)), vec![0]);
    let l = s.line(LONG);
    assert_eq!(l, "RES 0 ordered");

    // The operator's view counts frames both ways.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = nodes[1].status().unwrap();
        let to0 = st.peers.iter().find(|p| p.node == 0).unwrap().clone();
        if to0.frames_out >= 1000 && to0.frames_in >= 1000 {
            break;
        }
        assert!(Instant::now() < deadline, "{to0:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_daemon_or_server_fails_the_callers() {
    let mut nodes = cluster(2);
    let mut s = Ep::start(&nodes[0], 5);
    let mut c = Ep::start(&nodes[1], 6);
    let mut c2 = Ep::start(&nodes[1], 8);
    c.sees(s.ep);
    s.sees(c.ep);

    // The peer daemon is SIGKILLed while callers wait (a sendrec, a held send): EDVSNOTCONN
    // within 1 s (and some slack for a loaded machine).
    c.cmd(&format!("sendrec {} 1000", s.ep));
    c2.cmd(&format!("send {} 5", s.ep));
    c.no_result_for(Duration::from_millis(300));
    let killed = Instant::now();
    nodes[0].kill_daemon();
    assert_eq!(c.result(LONG)[0], Errno::EDVSNOTCONN.code());
    assert_eq!(c2.result(LONG), vec![Errno::EDVSNOTCONN.code()]);
    let took = killed.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "learnt it after {took:?}"
    );

    // Restarted, it links again and the calls work.
    nodes[0].start_daemon();
    nodes[0].connected(1);
    nodes[1].connected(1);
    c.sees(s.ep);
    s.sees(c.ep);
    s.cmd(&format!("recv {ANY}"));
    assert_eq!(
        c.call(&format!("sendrec {} 1000", s.ep)),
        vec![0, s.ep, 1001]
    );
    assert_eq!(s.result(LONG), vec![0, c.ep, 1000]);

    // The remote server dies mid-sendrec (it took the request): EDVSDEADSRCDST.
    s.cmd(&format!("take {ANY}"));
    c.cmd(&format!("sendrec {} 1000", s.ep));
    assert_eq!(s.result(LONG), vec![0, c.ep, 1000]);
    drop(s);
    let r = c.result(LONG);
    assert_eq!(r[0], Errno::EDVSDEADSRCDST.code(), "{r:?}");
}

#[test]
fn a_stale_remote_generation_is_refused() {
    let nodes = cluster(2);
    let s = Ep::start(&nodes[0], 5);
    let old = s.ep;
    let mut c = Ep::start(&nodes[1], 6);
    c.sees(old);
    drop(s);
    // The slot is released on node 0 and rebound at the next generation.
    let s = Ep::start(&nodes[0], 5);
    assert_ne!(s.ep, old);
    c.sees(s.ep);
    let r = c.call(&format!("sendrec {old} 1000"));
    assert_eq!(r[0], Errno::EDVSENDPOINT.code(), "{r:?}");
    let _ = s;
}

/// No daemon on the caller's node any more (SIGKILLed): the remote slots it owned are released
/// by the first caller's liveness check (`EDVSNOTCONN`); after that the endpoint is simply not
/// bound here (`EDVSENDPOINT`). `EDVSNOPROXY` (a remote slot still bound whose proxy is gone)
/// is the fabric's and is tested in `ipc/tests/remote.rs`: a dead daemon's slots are released
/// together, so it is not reached here.
#[test]
fn no_daemon_on_the_node() {
    let mut nodes = cluster(2);
    let s = Ep::start(&nodes[0], 5);
    let mut c = Ep::start(&nodes[1], 6);
    c.sees(s.ep);
    nodes[1].kill_daemon();
    let r = c.call(&format!("sendrec {} 1000", s.ep));
    assert_eq!(r[0], Errno::EDVSNOTCONN.code(), "{r:?}");
    assert_eq!(
        c.call(&format!("send {} 1", s.ep)),
        vec![Errno::EDVSENDPOINT.code()]
    );
    assert_eq!(
        c.call(&format!("notify {}", s.ep)),
        vec![Errno::EDVSENDPOINT.code()]
    );
    let _ = s;
}

/// A fake node 1 (the links of `m3cluster`, in this process) that serves only DC `other`.
struct FakePeer {
    frames: std::sync::Mutex<Vec<m3cluster::wire::Frame>>,
}

impl m3cluster::peers::Events for FakePeer {
    fn frame(&self, _peer: u32, frame: m3cluster::wire::Frame) {
        self.frames.lock().unwrap().push(frame);
    }
}

#[test]
fn a_call_for_a_dc_the_node_does_not_serve_is_nodcnode() {
    use m3cluster::peers::{PeerSpec, Peers};
    use m3cluster::wire::{Command as Cmd, DcEntry, Frame, Hello};
    // Node 0: a real daemon serving DC `nodes`, whose peer 1 is the fake.
    let fake_port = free_port();
    let mut nodes = cluster(1);
    let node = &mut nodes[0];
    node.kill_daemon();
    let port = free_port();
    std::fs::write(
        &node.config,
        format!(
            "node = 0\nlisten = \"127.0.0.1:{port}\"\ndcs = [\"{DC}\"]\n\
             [[peer]]\nnode = 1\naddress = \"127.0.0.1:{fake_port}\"\n"
        ),
    )
    .unwrap();
    node.start_daemon();
    let events = std::sync::Arc::new(FakePeer {
        frames: std::sync::Mutex::new(Vec::new()),
    });
    let other = DcEntry {
        name: "other".into(),
        id: 9,
        nr_tasks: 34,
        nr_procs: 221,
        nr_sysprocs: 64,
    };
    let peers = Peers::start(
        Hello::new(1, None, vec![other]),
        ([127, 0, 0, 1], fake_port).into(),
        &[PeerSpec {
            node: 0,
            address: ([127, 0, 0, 1], port).into(),
        }],
        events.clone(),
    )
    .unwrap();
    let deadline = Instant::now() + LONG;
    while !peers.is_connected(0) {
        assert!(Instant::now() < deadline, "the daemon never dialled");
        std::thread::sleep(Duration::from_millis(20));
    }
    // DC 9 is not served there; DC 7 is, but this node did not say it serves it.
    for (dc, seq) in [(9, 1), (7, 2)] {
        let mut f = Frame::new(Cmd::Sendrec, dc, endpoint::make(1, 5), 6, seq);
        f.msg = Message::new(1000);
        peers.send(0, &f).unwrap();
    }
    let deadline = Instant::now() + LONG;
    loop {
        let got: Vec<(u64, i32, Cmd)> = events
            .frames
            .lock()
            .unwrap()
            .iter()
            .map(|f| (f.seq, f.rcode, f.cmd))
            .collect();
        if got.len() >= 2 {
            let code = Errno::EDVSNODCNODE.code();
            assert_eq!(got, vec![(1, code, Cmd::Reply), (2, code, Cmd::Reply)]);
            break;
        }
        assert!(Instant::now() < deadline, "no answer: {got:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The daemon of the callers' own node is SIGKILLed while they wait (a `sendrec`, a held
/// `send`): their liveness check finds the proxy dead, `EDVSNOTCONN` within about a second.
/// Restarted, the daemon mirrors the endpoints again and calls cross once more; nothing of the
/// failed calls is delivered late (the new calls use other types).
#[test]
fn the_callers_daemon_killed_and_restarted() {
    let mut nodes = cluster(2);
    let mut s = Ep::start(&nodes[0], 5);
    let mut c = Ep::start(&nodes[1], 6);
    let mut c2 = Ep::start(&nodes[1], 8);
    c.sees(s.ep);
    c2.sees(s.ep);
    s.sees(c.ep);
    c.cmd(&format!("sendrec {} 1000", s.ep));
    c2.cmd(&format!("send {} 5", s.ep));
    c.no_result_for(Duration::from_millis(300));
    let killed = Instant::now();
    nodes[1].kill_daemon();
    assert_eq!(c.result(LONG)[0], Errno::EDVSNOTCONN.code());
    assert_eq!(c2.result(LONG), vec![Errno::EDVSNOTCONN.code()]);
    let took = killed.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "learnt it after {took:?}"
    );

    nodes[1].start_daemon();
    nodes[1].connected(1);
    nodes[0].connected(1);
    c.sees(s.ep);
    c2.sees(s.ep);
    s.sees(c.ep);
    s.sees(c2.ep);
    s.cmd(&format!("recv {ANY}"));
    assert_eq!(
        c.call(&format!("sendrec {} 1002", s.ep)),
        vec![0, s.ep, 1003]
    );
    assert_eq!(s.result(LONG), vec![0, c.ep, 1002]);
    s.cmd(&format!("recv {ANY}"));
    assert_eq!(c2.call(&format!("send {} 6", s.ep)), vec![0]);
    assert_eq!(s.result(LONG), vec![0, c2.ep, 6]);
    // Nothing else is queued for s (the calls that failed were not delivered).
    s.cmd(&format!("recv {ANY}"));
    s.no_result_for(Duration::from_millis(500));
    assert_eq!(c.call(&format!("notify {}", s.ep)), vec![0]);
    assert_eq!(
        s.result(LONG),
        vec![0, c.ep, notify_from(endpoint::nr(c.ep))]
    );
}

/// `vcopy` between a grant of an endpoint on node 1 and a buffer of a server on node 0, both
/// ways, at sizes up to 1 MiB (one call): the bytes cross the daemons intact.
#[test]
fn vcopy_crosses_nodes() {
    let nodes = cluster(2);
    let mut s = Ep::start(&nodes[0], 5);
    let mut c = Ep::start(&nodes[1], 6);
    c.sees(s.ep);
    s.sees(c.ep);
    for len in [1, 4096, 300_000, 1 << 20] {
        s.cmd("copyback");
        c.cmd(&format!("lend {} {len}", s.ep));
        assert_eq!(s.result(LONG), vec![0, 0, 1], "server side, {len} bytes");
        assert_eq!(c.result(LONG), vec![0, 1], "client side, {len} bytes");
    }
}

/// A write into a remote grant completes for the server once its bytes are on the link
/// (written behind); when the far node refuses it (here: the grant is read-only), the client's
/// reply is replaced by that error, so it never takes missing data for a good reply.
#[test]
fn a_refused_write_behind_fails_the_clients_reply() {
    let nodes = cluster(2);
    let mut s = Ep::start(&nodes[0], 5);
    let mut c = Ep::start(&nodes[1], 6);
    c.sees(s.ep);
    s.sees(c.ep);
    s.cmd("copyback");
    c.cmd(&format!("lend {} 4096 1", s.ep));
    // The read succeeds and matches; the write is accepted on the server's node.
    assert_eq!(s.result(LONG), vec![0, 0, 1]);
    assert_eq!(c.result(LONG)[0], Errno::EDVSACCES.code());
    // The next round trip is not affected.
    s.cmd("copyback");
    c.cmd(&format!("lend {} 4096", s.ep));
    assert_eq!(s.result(LONG), vec![0, 0, 1]);
    assert_eq!(c.result(LONG), vec![0, 1]);
}

/// `wakeup` of a remote endpoint: its `receive(ANY)` on its own node returns `EDVSWOKENUP`,
/// and a later `receive` still gets the messages sent after.
#[test]
fn a_wakeup_crosses_nodes() {
    let nodes = cluster(2);
    let mut s = Ep::start(&nodes[0], 5);
    let mut c = Ep::start(&nodes[1], 6);
    c.sees(s.ep);
    s.sees(c.ep);
    s.cmd(&format!("recv {ANY}"));
    s.no_result_for(Duration::from_millis(200));
    assert_eq!(c.call(&format!("wakeup {}", s.ep)), vec![0]);
    assert_eq!(s.result(LONG)[0], Errno::EDVSWOKENUP.code());
    s.cmd(&format!("recv {ANY}"));
    assert_eq!(c.call(&format!("send {} 7", s.ep)), vec![0]);
    assert_eq!(s.result(LONG), vec![0, c.ep, 7]);
}

/// A server answers its remote client's pending `sendrec` with a `sendrec` of its own: the
/// request is the client's reply (as on one node), and the client's `reply` must then end the
/// server's wait.
/// The server's node sends that reply as a `ReplyRequest`, so the client's node delivers it
/// as a `sendrec` of the server's remote slot, whose answer goes back as a `Reply`.
#[test]
fn a_sendrec_as_the_answer_to_a_remote_client() {
    let nodes = cluster(2);
    let mut s = Ep::start(&nodes[0], 5);
    let mut c = Ep::start(&nodes[1], 6);
    c.sees(s.ep);
    s.sees(c.ep);
    c.cmd(&format!("sendrec {} 1000", s.ep));
    assert_eq!(s.call(&format!("take {ANY}")), vec![0, c.ep, 1000]);
    s.cmd(&format!("sendrec {} 1500", c.ep));
    assert_eq!(c.result(LONG), vec![0, s.ep, 1500]);
    assert_eq!(c.call(&format!("reply {} 1501", s.ep)), vec![0]);
    assert_eq!(s.result(LONG), vec![0, c.ep, 1501]);
}
