//! Several nodes on one machine: each node is its own region directory (`M3IPC_SHM_DIR`) with
//! the DC created in it (same id and limits), and its own `dvs node run` daemon on loopback.
//! Endpoints are child processes (this test binary again, in the role `proc`, driven by
//! commands on its standard input) bound in one node's directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use m3cluster::daemon::status;
use m3ipc::message::notify_from;
use m3ipc::{ANY, Dc, Errno, Message, Timeout, endpoint};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const ROLE: &str = "DVS_TEST_NODE_ROLE";
const DC: &str = "nodes";
const DCID: &str = "7";
const LONG: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// The child: one endpoint, driven by commands, answering `RES rcode [m_source m_type]`.

fn res(r: m3ipc::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

#[test]
fn proc_child() {
    let Ok(nr) = std::env::var(ROLE) else { return };
    let dc = Dc::open(DC).unwrap();
    let p = dc.bind_named(nr.parse().unwrap(), "tproc").unwrap();
    println!("@@ READY {}", p.endpoint());
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let w: Vec<i32> = line
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or_else(|_| panic!("bad command {line:?}")))
            .collect();
        let out = match line.split_whitespace().next().unwrap_or("") {
            // Receive one message; a type in 1000..2000 is a request: reply type + 1.
            "recv" | "take" => {
                let mut m = Message::default();
                let r = p.receive(w[0], &mut m, Timeout::Millis(20_000));
                if r.is_ok() && (1000..2000).contains(&m.m_type) && line.starts_with("recv") {
                    p.reply(m.m_source, &Message::new(m.m_type + 1)).unwrap();
                }
                format!("{} {} {}", res(r), m.m_source, m.m_type)
            }
            // Receive w[1] messages from w[0]: their types must be 0, 1, 2, ...
            "recvn" => {
                let mut bad = None;
                for i in 0..w[1] {
                    let mut m = Message::default();
                    let r = p.receive(w[0], &mut m, Timeout::Millis(20_000));
                    if r.is_err() || m.m_type != i {
                        bad = Some(format!("{} at {i}: type {}", res(r), m.m_type));
                        break;
                    }
                }
                bad.unwrap_or_else(|| "0 ordered".into())
            }
            "send" => res(p.send(w[0], &Message::new(w[1]), Timeout::Millis(20_000))).to_string(),
            "sendn" => {
                let mut rc = 0;
                for i in 0..w[1] {
                    rc = res(p.send(w[0], &Message::new(i), Timeout::Millis(20_000)));
                    if rc != 0 {
                        break;
                    }
                }
                rc.to_string()
            }
            "sendrec" => {
                let mut m = Message::new(w[1]);
                let r = p.sendrec(w[0], &mut m, Timeout::Millis(20_000));
                format!("{} {} {}", res(r), m.m_source, m.m_type)
            }
            "notify" => res(p.notify(w[0])).to_string(),
            "senda" => res(p.senda(w[0], &Message::new(w[1]))).to_string(),
            "wait4bind" => match dc.wait4bind(w[0], Timeout::Millis(10_000)) {
                Ok(ep) => format!("0 {ep}"),
                Err(e) => e.code().to_string(),
            },
            _ => "unknown".into(),
        };
        println!("@@ RES {out}");
    }
    std::process::exit(0);
}

/// A running endpoint child.
struct Ep {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    ep: i32,
}

impl Ep {
    fn start(node: &Node, nr: i32) -> Ep {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "proc_child", "--nocapture", "--test-threads=1"])
            .env(ROLE, nr.to_string())
            .env("M3IPC_SHM_DIR", &node.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // The harness may print "test proc_child ... " first on the line.
                if let Some(i) = line.find("@@ ") {
                    let _ = tx.send(line[i + 3..].to_string());
                }
            }
        });
        let mut e = Ep {
            child,
            stdin,
            lines,
            ep: 0,
        };
        let ready = e.line(LONG);
        e.ep = ready.strip_prefix("READY ").unwrap().parse().unwrap();
        e
    }

    #[track_caller]
    fn line(&self, within: Duration) -> String {
        self.lines
            .recv_timeout(within)
            .unwrap_or_else(|e| panic!("no line from endpoint {} within {within:?}: {e}", self.ep))
    }

    fn cmd(&mut self, c: &str) {
        writeln!(self.stdin, "{c}").unwrap();
    }

    /// The next result: its numbers.
    #[track_caller]
    fn result(&self, within: Duration) -> Vec<i32> {
        let l = self.line(within);
        let rest = l
            .strip_prefix("RES ")
            .unwrap_or_else(|| panic!("not a result: {l}"));
        rest.split_whitespace()
            .map(|v| v.parse().unwrap_or(i32::MIN))
            .collect()
    }

    #[track_caller]
    fn call(&mut self, c: &str) -> Vec<i32> {
        self.cmd(c);
        self.result(LONG)
    }

    /// Wait until `ep` is bound (as a remote slot) in this endpoint's node.
    #[track_caller]
    fn sees(&mut self, ep: i32) {
        let deadline = Instant::now() + LONG;
        // wait4bind returns when the slot is bound, at whatever generation.
        while self.call(&format!("wait4bind {ep}")) != vec![0, ep] {
            assert!(Instant::now() < deadline, "{ep} never bound");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[track_caller]
    fn no_result_for(&self, d: Duration) {
        if let Ok(l) = self.lines.recv_timeout(d) {
            panic!("endpoint {} answered early: {l}", self.ep);
        }
    }
}

impl Drop for Ep {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes: a region directory, the DC in it, a daemon.

static COUNT: AtomicU32 = AtomicU32::new(0);

struct Node {
    id: u32,
    dir: PathBuf,
    config: PathBuf,
    daemon: Option<Child>,
}

fn dvs(dir: &PathBuf, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dvs"))
        .args(args)
        .env("M3IPC_SHM_DIR", dir)
        .output()
        .unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    fn start_daemon(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_dvs"))
            .args(["node", "run", "--config"])
            .arg(&self.config)
            .env("M3IPC_SHM_DIR", &self.dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("daemon.log")).unwrap())
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    fn kill_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    fn status(&self) -> Option<status::NodeStatus> {
        status::read(&self.dir.join(status::FILE_NAME)).ok()
    }

    /// Wait until this node's daemon reports every peer connected.
    fn connected(&self, peers: usize) {
        let deadline = Instant::now() + LONG;
        loop {
            if let Some(st) = self.status()
                && st.pid == self.daemon.as_ref().map_or(0, Child::id)
                && st.peers.len() == peers
                && st.peers.iter().all(|p| p.since.is_some())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never connected",
                self.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            // SIGTERM: the daemon stops in order.
            // SAFETY: kill(2) on our own child's PID.
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while d.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        if std::thread::panicking() {
            // What the daemon said helps to understand a failure.
            let log = std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
            eprintln!("--- node {} daemon log:\n{log}", self.id);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `n` nodes, each with the DC and a running daemon, all connected.
fn cluster(n: u32) -> Vec<Node> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let tag = COUNT.fetch_add(1, Ordering::Relaxed);
    let mut nodes: Vec<Node> = (0..n)
        .map(|id| {
            let dir = PathBuf::from(format!(
                "/dev/shm/m3nodes-{}-{tag}-{id}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let out = dvs(
                &dir,
                &["dc", "create", DC, "--id", DCID, "--node", &id.to_string()],
            );
            assert!(out.status.success(), "{out:?}");
            let mut text = format!(
                "node = {id}\nlisten = \"127.0.0.1:{}\"\ndcs = [\"{DC}\"]\n",
                ports[id as usize]
            );
            for p in (0..n).filter(|&p| p != id) {
                text += &format!(
                    "[[peer]]\nnode = {p}\naddress = \"127.0.0.1:{}\"\n",
                    ports[p as usize]
                );
            }
            let config = dir.join("node.toml");
            std::fs::write(&config, text).unwrap();
            Node {
                id,
                dir,
                config,
                daemon: None,
            }
        })
        .collect();
    for node in &mut nodes {
        node.start_daemon();
    }
    for node in &nodes {
        node.connected(n as usize - 1);
    }
    nodes
}

// ---------------------------------------------------------------------------------------------

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
