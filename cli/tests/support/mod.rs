//! Helpers shared by the multi-node tests: endpoint children (this test binary again, in the
//! role `proc`, driven by commands on its standard input) and nodes (a region directory with the
//! DC in it and a `dvs node run` daemon).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use m3cluster::daemon::status;
use m3ipc::{ANY, Access, Dc, GrantId, Message, SELF, Timeout};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

pub const ROLE: &str = "DVS_TEST_NODE_ROLE";
pub const DC: &str = "nodes";
pub const DCID: &str = "7";
pub const LONG: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// The child: one endpoint, driven by commands, answering `RES rcode [m_source m_type]`.

fn res(r: m3ipc::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

fn pattern1(i: usize) -> u8 {
    (i * 7 + 1) as u8
}

fn pattern2(i: usize) -> u8 {
    (i * 3 + 5) as u8
}

/// The child role: when this test binary runs as an endpoint child (its test `proc_child`
/// calls this), bind slot `$DVS_TEST_NODE_ROLE` and serve commands until stdin closes.
pub fn proc_child() {
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
            // Serve w[0] requests: the i-th must carry sequence number i (payload[0]); a lost,
            // repeated or reordered request is reported.
            "serven" => {
                let mut bad = None;
                for i in 0..w[0] as u64 {
                    let mut m = Message::default();
                    let r = p.receive(ANY, &mut m, Timeout::Millis(20_000));
                    if r.is_err() || m.payload[0] != i {
                        bad = Some(format!("{} at {i}: seq {}", res(r), m.payload[0]));
                        break;
                    }
                    m.m_type += 1;
                    if let Err(e) = p.reply(m.m_source, &m) {
                        bad = Some(format!("{} at {i}: reply", e.code()));
                        break;
                    }
                }
                bad.unwrap_or_else(|| "0 served".into())
            }
            // Make w[1] sendrecs to w[0], numbered in payload[0]: each answer must be its own.
            "sendrecn" => {
                let mut out = "0".to_string();
                for i in 0..w[1] as u64 {
                    let mut m = Message::new(1000);
                    m.payload[0] = i;
                    let r = p.sendrec(w[0], &mut m, Timeout::Millis(20_000));
                    if r.is_err() || m.payload[0] != i || m.m_type != 1001 {
                        out = format!("{} at {i}: seq {}", res(r), m.payload[0]);
                        break;
                    }
                }
                out
            }
            "reply" => res(p.reply(w[0], &Message::new(w[1]))).to_string(),
            "notify" => res(p.notify(w[0])).to_string(),
            "wakeup" => res(p.wakeup(w[0])).to_string(),
            // Lend w[1] bytes (pattern 1) to w[0] by a READ+WRITE grant in a sendrec; after
            // the reply the buffer must hold pattern 2: "rc 1" when it does.
            "lend" => {
                let len = w[1] as usize;
                let h = p.alloc_buffer(len).unwrap();
                let bytes: Vec<u8> = (0..len).map(pattern1).collect();
                p.buffer(h).unwrap().write_at(0, &bytes).unwrap();
                // w[2] = 1: lend it read-only (the server's write back must fail).
                let access = if w.get(2) == Some(&1) {
                    Access::READ
                } else {
                    Access::READ_WRITE
                };
                let g = p.grant(h, w[0], 0, len, access).unwrap();
                let mut m = Message::new(3000);
                m.payload[0] = g.0;
                m.payload[1] = len as u64;
                let r = p.sendrec(w[0], &mut m, Timeout::Millis(20_000));
                let mut back = vec![0u8; len];
                p.buffer(h).unwrap().read_at(0, &mut back).unwrap();
                let good = back.iter().enumerate().all(|(i, b)| *b == pattern2(i));
                p.release_buffer(h).unwrap();
                format!("{} {}", res(r), u8::from(good))
            }
            // Take a `lend` request: vcopy its grant into a buffer of ours (must read pattern
            // 1), write pattern 2 back by vcopy, reply. "rc_in rc_out 1" when the bytes match.
            "copyback" => {
                let mut m = Message::default();
                let r = p.receive(ANY, &mut m, Timeout::Millis(20_000));
                if r.is_err() {
                    format!("{} 0 0", res(r))
                } else {
                    let (client, g, len) =
                        (m.m_source, GrantId(m.payload[0]), m.payload[1] as usize);
                    let h = p.alloc_buffer(len).unwrap();
                    let rin = p.vcopy(client, g, 0, SELF, h, 0, len);
                    let mut got = vec![0u8; len];
                    p.buffer(h).unwrap().read_at(0, &mut got).unwrap();
                    let good = got.iter().enumerate().all(|(i, b)| *b == pattern1(i));
                    let bytes: Vec<u8> = (0..len).map(pattern2).collect();
                    p.buffer(h).unwrap().write_at(0, &bytes).unwrap();
                    let rout = p.vcopy(SELF, h, 0, client, g, 0, len);
                    p.release_buffer(h).unwrap();
                    p.reply(client, &Message::new(0)).unwrap();
                    format!("{} {} {}", res(rin), res(rout), u8::from(good))
                }
            }
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
pub struct Ep {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// Its endpoint.
    pub ep: i32,
}

impl Ep {
    /// Start slot `nr`'s child in `node`.
    pub fn start(node: &Node, nr: i32) -> Ep {
        let mut child = node
            .command(std::env::current_exe().unwrap())
            .args(["--exact", "proc_child", "--nocapture", "--test-threads=1"])
            .env(ROLE, nr.to_string())
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
    pub fn line(&self, within: Duration) -> String {
        self.lines
            .recv_timeout(within)
            .unwrap_or_else(|e| panic!("no line from endpoint {} within {within:?}: {e}", self.ep))
    }

    pub fn cmd(&mut self, c: &str) {
        writeln!(self.stdin, "{c}").unwrap();
    }

    /// The next result: its numbers.
    #[track_caller]
    pub fn result(&self, within: Duration) -> Vec<i32> {
        let l = self.line(within);
        let rest = l
            .strip_prefix("RES ")
            .unwrap_or_else(|| panic!("not a result: {l}"));
        rest.split_whitespace()
            .map(|v| v.parse().unwrap_or(i32::MIN))
            .collect()
    }

    #[track_caller]
    pub fn call(&mut self, c: &str) -> Vec<i32> {
        self.cmd(c);
        self.result(LONG)
    }

    /// Wait until `ep` is bound (as a remote slot) in this endpoint's node.
    #[track_caller]
    pub fn sees(&mut self, ep: i32) {
        let deadline = Instant::now() + LONG;
        // wait4bind returns when the slot is bound, at whatever generation.
        while self.call(&format!("wait4bind {ep}")) != vec![0, ep] {
            assert!(Instant::now() < deadline, "{ep} never bound");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[track_caller]
    pub fn no_result_for(&self, d: Duration) {
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

pub struct Node {
    /// Its node id.
    pub id: u32,
    /// Its region directory.
    pub dir: PathBuf,
    /// Its `node.toml`.
    pub config: PathBuf,
    /// The running daemon.
    pub daemon: Option<Child>,
    /// A prefix its processes run under (`ip netns exec NS`), empty on loopback.
    pub prefix: Vec<String>,
}

pub fn dvs(dir: &PathBuf, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dvs"))
        .args(args)
        .env("M3IPC_SHM_DIR", dir)
        .output()
        .unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    /// A command running `program` in this node: under its prefix, with its region directory.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => Command::new(program),
        };
        c.env("M3IPC_SHM_DIR", &self.dir);
        c
    }

    /// Start its daemon.
    pub fn start_daemon(&mut self) {
        let child = self
            .command(env!("CARGO_BIN_EXE_dvs"))
            .args(["node", "run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("daemon.log")).unwrap())
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    /// SIGKILL its daemon.
    pub fn kill_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// What its daemon last reported.
    pub fn status(&self) -> Option<status::NodeStatus> {
        status::read(&self.dir.join(status::FILE_NAME)).ok()
    }

    /// Wait until this node's daemon reports every peer connected.
    pub fn connected(&self, peers: usize) {
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
/// A fresh region directory `/dev/shm/NAME` holding the test DC as node `id` sees it.
pub fn node_region(name: &str, id: u32) -> PathBuf {
    let dir = PathBuf::from(format!("/dev/shm/{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dvs(
        &dir,
        &["dc", "create", DC, "--id", DCID, "--node", &id.to_string()],
    );
    assert!(out.status.success(), "{out:?}");
    dir
}

pub fn cluster(n: u32) -> Vec<Node> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let tag = COUNT.fetch_add(1, Ordering::Relaxed);
    let mut nodes: Vec<Node> = (0..n)
        .map(|id| {
            let dir = node_region(&format!("m3nodes-{}-{tag}-{id}", std::process::id()), id);
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
                prefix: Vec::new(),
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
