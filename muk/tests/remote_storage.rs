#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Grants across nodes: two nodes on loopback, each its own region directory
//! (`M3IPC_SHM_DIR`) and node daemon (this test binary again, in the role `daemon`).
//!
//! - A server hosted under MUK2 on node 0 reads and writes the granted buffer of a client on
//!   node 1 through `muk::storage::{read_granted, write_granted}` (the remote path: the daemons
//!   move the bytes), several MiB each way, bytes checked, and a forged grant is refused.
//! - `m3ftp --dc DC put/get` from node 1 against `muk2 run --config` (RDISK on an image, FS,
//!   FTP) on node 0: identical bytes, `fsck.minix -f` clean; an `m3ftp` SIGKILLed mid-put
//!   leaves the servers healthy (a later put works).
//! - The same without a separate daemon: two `muk2 run --config` with a `[cluster]` section,
//!   RDISK alone on node 1, FS and FTP on node 0 (FS finds RDISK through the remote slot); an
//!   `m3ftp` on node 0 puts and gets a few MiB, and both stop in order, `fsck.minix -f` clean.
//! - Three nodes: FS and FTP on node 0 (`muk2 run` with `[cluster]`), RDISK on node 2 (`muk2
//!   serve rdisk`, its own daemon), `m3ftp` on node 1 (its own daemon): put and get, identical
//!   bytes, `fsck.minix -f` clean. `M3_REMOTE_FTP_MIB` sets the size of the m3ftp tests' file.

mod support;

use m3cluster::config::NodeConfig;
use m3cluster::daemon::{Daemon, status};
use m3ipc::{ANY, Access, Dc, DcConfig, Errno, GrantId, Message, Timeout};
use muk::host::DEFAULT_STACK;
use muk::ipc::Ipc;
use muk::storage::{read_granted, write_granted};
use muk::{Host, Hosted, Runner, Server};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use support::disk::{M3FTP, MUK2, Scratch, fsck_clean};

const ROLE: &str = "MUK_TEST_REMOTE_ROLE";
const LONG: Duration = Duration::from_secs(30);
/// The grant server's slot (a system process) and its requests.
const SERVER_NR: i32 = 5;
const CHECK: i32 = 1000;
const FILL: i32 = 1001;
const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Roles.

/// The bytes of pattern `seed` at `i`.
fn pattern(seed: u64, i: usize) -> u8 {
    let x =
        (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (x >> 29) as u8 ^ (x >> 7) as u8
}

/// Serves CHECK (read the client's grant: payload grant, offset, len, seed; reply 0 when the
/// bytes are pattern `seed`, 1 when not, or the error) and FILL (write pattern `seed` there).
struct GrantServer;

impl Server for GrantServer {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        loop {
            let mut m = Message::default();
            match ipc.receive(ANY, &mut m, Timeout::Forever) {
                Ok(()) => {}
                Err(Errno::EDVSSHUTDOWN) => return Ok(()),
                Err(e) => return Err(e),
            }
            let (grant, off, len, seed) = (
                GrantId(m.payload[0]),
                m.payload[1] as usize,
                m.payload[2] as usize,
                m.payload[3],
            );
            let mut buf = vec![0u8; len];
            let r = match m.m_type {
                CHECK => read_granted(ipc, m.m_source, grant, off, &mut buf).map(|()| {
                    i32::from(!buf.iter().enumerate().all(|(i, &b)| b == pattern(seed, i)))
                }),
                FILL => {
                    for (i, b) in buf.iter_mut().enumerate() {
                        *b = pattern(seed, i);
                    }
                    write_granted(ipc, m.m_source, grant, off, &buf).map(|()| 0)
                }
                _ => Err(Errno::EDVSBADREQUEST),
            };
            let code = r.unwrap_or_else(|e| e.code());
            let _ = ipc.reply(m.m_source, &Message::new(code));
        }
    }
}

fn role_daemon(config: &str) {
    let c = NodeConfig::load(Path::new(config)).unwrap();
    let d = Daemon::start(&c).unwrap();
    println!("@@ READY");
    // Until the parent closes our standard input.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    d.stop();
}

fn role_server(dc: &str) {
    let dc = Dc::open(dc).unwrap();
    let host = Host::start(
        &dc,
        vec![Hosted {
            name: "grants".into(),
            nr: SERVER_NR,
            stack_size: DEFAULT_STACK,
            server: Box::new(GrantServer),
        }],
        Runner::Coroutines,
    )
    .unwrap();
    println!("@@ READY");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(host.stop());
}

fn role_client(dc: &str) {
    let dc = Dc::open(dc).unwrap();
    let p = muk::ftp_client::bind_user(&dc, "gclient").unwrap();
    let server = dc
        .wait4bind(SERVER_NR, Timeout::Millis(20_000))
        .expect("the server's remote slot");
    let call = |t: i32, g: GrantId, off: usize, len: usize, seed: u64| {
        let mut m = Message::new(t);
        m.payload[0] = g.0;
        m.payload[1] = off as u64;
        m.payload[2] = len as u64;
        m.payload[3] = seed;
        // A write into our grant is written behind: when our node refuses it, our sendrec
        // fails with that error instead of taking the server's reply.
        match p.sendrec(server, &mut m, Timeout::Millis(30_000)) {
            Ok(()) => m.m_type,
            Err(e) => e.code(),
        }
    };
    let h = p.alloc_buffer(MIB).unwrap();
    let g = p.grant(h, server, 0, MIB, Access::READ_WRITE).unwrap();
    let view = p.buffer(h).unwrap();
    let mut moved = 0usize;
    // Whole buffers and ranges at odd offsets, 8 rounds each way.
    for round in 0..8u64 {
        let (off, len) = if round % 2 == 0 {
            (0, MIB)
        } else {
            (123 + round as usize, MIB - 1000)
        };
        // Client -> server: the server checks the bytes it reads.
        let seed = 100 + round;
        let bytes: Vec<u8> = (0..len).map(|i| pattern(seed, i)).collect();
        view.write_at(off, &bytes).unwrap();
        assert_eq!(
            call(CHECK, g, off, len, seed),
            0,
            "round {round}: server read wrong bytes"
        );
        assert_eq!(
            call(CHECK, g, off, len, seed + 1),
            1,
            "round {round}: check proves nothing"
        );
        // Server -> client: we check what it wrote.
        let seed = 200 + round;
        view.fill(0, MIB, 0).unwrap();
        assert_eq!(call(FILL, g, off, len, seed), 0, "round {round}");
        let mut back = vec![0u8; len];
        view.read_at(off, &mut back).unwrap();
        assert!(
            back.iter().enumerate().all(|(i, &b)| b == pattern(seed, i)),
            "round {round}: the server wrote wrong bytes"
        );
        let mut before = [0u8; 1];
        if off > 0 {
            view.read_at(off - 1, &mut before).unwrap();
            assert_eq!(before[0], 0, "round {round}: written before the range");
        }
        moved += 2 * len;
    }
    // The far side's checks hold: a range past the grant, a forged grant, a revoked one.
    assert_eq!(call(CHECK, g, MIB - 10, 20, 1), Errno::EDVSRANGE.code());
    assert_eq!(
        call(CHECK, GrantId(g.0 ^ 0x55), 0, 10, 1),
        Errno::EDVSPERM.code()
    );
    p.revoke(g).unwrap();
    assert_eq!(call(FILL, g, 0, 10, 1), Errno::EDVSPERM.code());
    println!("@@ OK {moved}");
}

fn role_mkdc(name: &str, dcid: u32, node: u32) {
    let c = DcConfig {
        dcid,
        node,
        ..DcConfig::default()
    };
    Dc::create(name, &c).unwrap();
    println!("@@ READY");
}

#[test]
fn child_main() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let args: Vec<String> = role.split(' ').map(String::from).collect();
    match args[0].as_str() {
        "daemon" => role_daemon(&args[1]),
        "server" => role_server(&args[1]),
        "client" => role_client(&args[1]),
        "mkdc" => role_mkdc(&args[1], args[2].parse().unwrap(), args[3].parse().unwrap()),
        r => panic!("unknown role {r}"),
    }
    std::process::exit(0);
}

// ---------------------------------------------------------------------------------------------
// The parent's side.

/// A child in a role (or another program), its `@@ ` lines; killed on drop.
struct Kid {
    child: Child,
    lines: Receiver<String>,
}

impl Kid {
    fn role(dir: &Path, role: &str) -> Kid {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["--exact", "child_main", "--nocapture", "--test-threads=1"])
            .env(ROLE, role);
        let name = role.split(' ').next().unwrap_or("child");
        Kid::spawn(c, dir, &format!("{name}.log"))
    }

    fn spawn(mut c: Command, dir: &Path, log: &str) -> Kid {
        let mut child = c
            .env("M3IPC_SHM_DIR", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join(log)).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let l = line
                    .find("@@ ")
                    .map_or(line.clone(), |i| line[i + 3..].to_string());
                let _ = tx.send(l);
            }
        });
        Kid { child, lines }
    }

    /// Wait for a line holding `needle`; the line.
    #[track_caller]
    fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(e) => panic!("no line with {needle:?} within {within:?}: {e}"),
            }
        }
    }

    /// Close its standard input (the roles' "stop") and wait for it to end.
    fn finish(mut self) -> std::process::ExitStatus {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + LONG;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "a child did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Two or three nodes: their region directories, under `/dev/shm`, and node configs for DC
/// `dc` (every node a peer of every other).
struct Nodes {
    dirs: Vec<PathBuf>,
    configs: Vec<PathBuf>,
    /// Where each node listens.
    ports: Vec<u16>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nodes {
    fn new(s: &Scratch, dc: &str) -> Nodes {
        Nodes::several(s, dc, 2)
    }

    fn several(s: &Scratch, dc: &str, n: usize) -> Nodes {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut nodes = Nodes {
            dirs: Vec::new(),
            configs: Vec::new(),
            ports,
        };
        for id in 0..n {
            let dir = PathBuf::from(format!(
                "/dev/shm/m3remote-{}-{}-{id}",
                std::process::id(),
                s.dir().file_name().unwrap().to_string_lossy()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let config = dir.join("node.toml");
            let mut text = format!(
                "node = {id}\nlisten = \"127.0.0.1:{}\"\ndcs = [\"{dc}\"]\n",
                nodes.ports[id]
            );
            text += &nodes.peers(id, "peer");
            std::fs::write(&config, text).unwrap();
            nodes.dirs.push(dir);
            nodes.configs.push(config);
        }
        nodes
    }

    /// The `[[TABLE]]` entries of node `id`'s peers: every other node.
    fn peers(&self, id: usize, table: &str) -> String {
        (0..self.ports.len())
            .filter(|&p| p != id)
            .map(|p| {
                format!(
                    "[[{table}]]\nnode = {p}\naddress = \"127.0.0.1:{}\"\n",
                    self.ports[p]
                )
            })
            .collect()
    }

    fn daemon(&self, id: usize) -> Kid {
        let k = Kid::role(
            &self.dirs[id],
            &format!("daemon {}", self.configs[id].display()),
        );
        k.wait_for("READY", LONG);
        k
    }

    /// Wait until node `id`'s daemon reports every other node connected.
    fn connected(&self, id: usize) {
        let deadline = Instant::now() + LONG;
        loop {
            if let Ok(st) = status::read(&self.dirs[id].join(status::FILE_NAME))
                && st.peers.iter().all(|p| p.since.is_some())
                && st.peers.len() == self.dirs.len() - 1
            {
                return;
            }
            assert!(Instant::now() < deadline, "node {id} never connected");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A `[cluster]` section for node `id` (its peers every other node).
    fn cluster_section(&self, id: usize) -> String {
        format!(
            "[cluster]\nnode = {id}\nlisten = \"127.0.0.1:{}\"\n{}",
            self.ports[id],
            self.peers(id, "cluster.peer")
        )
    }

    /// The bytes node `id`'s daemon has sent to and received from each peer: `(peer, out,
    /// in)`, as its status file says. The file is rewritten every second: this waits, up to
    /// 5 s, until the totals over all peers both reach `at_least`.
    fn link_bytes(&self, id: usize, at_least: u64) -> Vec<(u32, u64, u64)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let links: Vec<(u32, u64, u64)> = status::read(&self.dirs[id].join(status::FILE_NAME))
                .map(|st| {
                    st.peers
                        .iter()
                        .map(|p| (p.node, p.bytes_out, p.bytes_in))
                        .collect()
                })
                .unwrap_or_default();
            let out: u64 = links.iter().map(|l| l.1).sum();
            let inn: u64 = links.iter().map(|l| l.2).sum();
            if out.min(inn) >= at_least || Instant::now() >= deadline {
                return links;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self, id: usize, name: &str) -> String {
        std::fs::read_to_string(self.dirs[id].join(name)).unwrap_or_default()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for id in 0..self.dirs.len() {
                for log in [
                    "daemon.log",
                    "muk2.log",
                    "server.log",
                    "client.log",
                    "rdisk.log",
                    "m3ftp.log",
                ] {
                    let text = self.log(id, log);
                    if !text.is_empty() {
                        eprintln!("--- node {id} {log}:\n{text}");
                    }
                }
            }
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[test]
fn a_server_reads_and_writes_a_remote_clients_grant() {
    let s = Scratch::new("muk-remote-grant");
    let dc = format!("rg{}", std::process::id());
    let nodes = Nodes::new(&s, &dc);
    for id in 0..2 {
        Kid::role(&nodes.dirs[id], &format!("mkdc {dc} 11 {id}")).wait_for("READY", LONG);
    }
    let d0 = Kid::role(
        &nodes.dirs[0],
        &format!("daemon {}", nodes.configs[0].display()),
    );
    let d1 = Kid::role(
        &nodes.dirs[1],
        &format!("daemon {}", nodes.configs[1].display()),
    );
    d0.wait_for("READY", LONG);
    d1.wait_for("READY", LONG);
    nodes.connected(0);
    nodes.connected(1);
    let server = Kid::role(&nodes.dirs[0], &format!("server {dc}"));
    server.wait_for("READY", LONG);
    let client = Kid::role(&nodes.dirs[1], &format!("client {dc}"));
    let ok = client.wait_for("OK", Duration::from_secs(120));
    let moved: usize = ok.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(moved >= 14 * MIB, "{ok}");
    assert!(client.finish().success());
    assert!(server.finish().success());
    drop((d0, d1));
}

/// `m3ftp --dc DC ARGS` on node `dir`.
fn m3ftp(dir: &Path, dc: &str, args: &[&str]) -> std::process::Output {
    Command::new(M3FTP)
        .args(["--dc", dc, "--wait-ms", "20000"])
        .args(args)
        .env("M3IPC_SHM_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `m3ftp put LOCAL /big`, then `get /big BACK`, from node `dir`: how long each took.
#[track_caller]
fn put_and_get(dir: &Path, dc: &str, local: &Path, back: &Path) -> (Duration, Duration) {
    let t = Instant::now();
    m3ftp_ok(dir, dc, &["put", local.to_str().unwrap(), "/big"]);
    let put = t.elapsed();
    let t = Instant::now();
    m3ftp_ok(dir, dc, &["get", "/big", back.to_str().unwrap()]);
    (put, t.elapsed())
}

#[track_caller]
fn m3ftp_ok(dir: &Path, dc: &str, args: &[&str]) {
    let out = m3ftp(dir, dc, args);
    assert!(
        out.status.success(),
        "m3ftp {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The size of the file `remote_storage_m3ftp` moves: `M3_REMOTE_FTP_MIB` MiB (64 by default).
fn ftp_mib() -> usize {
    std::env::var("M3_REMOTE_FTP_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

#[test]
fn m3ftp_on_node_1_against_muk2_storage_on_node_0() {
    let s = Scratch::new("muk-remote-ftp");
    let mib = ftp_mib();
    let image = s.mkfs("disk.img", (mib as u64 * 2 + 16).max(64));
    let dc = format!("rf{}", std::process::id());
    let nodes = Nodes::new(&s, &dc);
    // Node 0: MUK2 creates the DC (id 12) and hosts RDISK, FS, FTP.
    let config = s.path("muk.toml");
    std::fs::write(
        &config,
        format!(
            "[dc]\nname = \"{dc}\"\nnode = 0\ndcid = 12\n[[server]]\nname = \"rdisk\"\n\
             image = \"{}\"\n[[server]]\nname = \"fs\"\nformat = \"never\"\n[[server]]\n\
             name = \"ftp\"\n",
            image.display()
        ),
    )
    .unwrap();
    let mut c = Command::new(MUK2);
    c.args(["run", "--config", config.to_str().unwrap()]);
    let muk2 = Kid::spawn(c, &nodes.dirs[0], "muk2.log");
    muk2.wait_for("running; stop with", LONG);
    // Node 1: the same DC, created empty.
    Kid::role(&nodes.dirs[1], &format!("mkdc {dc} 12 1")).wait_for("READY", LONG);
    let _d0 = nodes.daemon(0);
    let _d1 = nodes.daemon(1);
    nodes.connected(0);
    nodes.connected(1);

    let (local, data) = s.random_file("big", mib * MIB, 77);
    let back = s.path("back");
    let (put, get) = put_and_get(&nodes.dirs[1], &dc, &local, &back);
    eprintln!("remote m3ftp of {mib} MiB: put {put:?}, get {get:?}");
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the bytes came back different"
    );

    // An m3ftp killed mid-put: the servers stay healthy, a later put and get work.
    let mut c = Command::new(M3FTP);
    c.args([
        "--dc",
        &dc,
        "--wait-ms",
        "20000",
        "put",
        local.to_str().unwrap(),
        "/killed",
    ]);
    let victim = Kid::spawn(c, &nodes.dirs[1], "m3ftp.log");
    std::thread::sleep(Duration::from_millis(300));
    victim.signal(libc::SIGKILL);
    drop(victim);
    let (small, small_data) = s.random_file("small", 3 * MIB + 12345, 78);
    m3ftp_ok(
        &nodes.dirs[1],
        &dc,
        &["put", small.to_str().unwrap(), "/after"],
    );
    let back2 = s.path("back2");
    m3ftp_ok(
        &nodes.dirs[1],
        &dc,
        &["get", "/after", back2.to_str().unwrap()],
    );
    assert!(std::fs::read(&back2).unwrap() == small_data);

    // MUK2 stops in order (SIGTERM), then the image is checked.
    muk2.signal(libc::SIGTERM);
    assert!(muk2.finish().success(), "{}", nodes.log(0, "muk2.log"));
    fsck_clean(&image);
}

#[test]
fn muk2_run_with_a_cluster_section_spans_two_nodes() {
    let s = Scratch::new("muk-cluster-run");
    let image = s.mkfs("disk.img", 32);
    let dc = format!("rc{}", std::process::id());
    let nodes = Nodes::new(&s, &dc);
    let muk2_run = |id: usize, servers: &str| {
        let config = s.path(&format!("muk{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "[dc]\nname = \"{dc}\"\ndcid = 13\n{servers}{}",
                nodes.cluster_section(id)
            ),
        )
        .unwrap();
        let mut c = Command::new(MUK2);
        c.args(["run", "--config", config.to_str().unwrap()]);
        Kid::spawn(c, &nodes.dirs[id], "muk2.log")
    };
    // Node 1: RDISK alone, on the image. Node 0: FS and FTP, which find RDISK on node 1.
    let n1 = muk2_run(
        1,
        &format!(
            "[[server]]\nname = \"rdisk\"\nimage = \"{}\"\n",
            image.display()
        ),
    );
    let line = n1.wait_for("node daemon: node 1", LONG);
    assert!(
        line.contains(&format!("listening on 127.0.0.1:{}", nodes.ports[1])),
        "{line}"
    );
    n1.wait_for("running; stop with", LONG);
    let n0 = muk2_run(
        0,
        "[[server]]\nname = \"fs\"\nformat = \"never\"\n[[server]]\nname = \"ftp\"\n",
    );
    let line = n0.wait_for("expected from outside", LONG);
    assert!(
        line.contains("rdisk (nr 3)") && line.contains("or on another node"),
        "{line}"
    );
    n0.wait_for("running; stop with", LONG);
    nodes.connected(0);
    nodes.connected(1);
    // No separate daemon: the status file is the one of the daemon inside each muk2.
    for id in 0..2 {
        assert!(
            nodes.log(id, "muk2.log").contains("the sandbox is off"),
            "node {id}: {}",
            nodes.log(id, "muk2.log")
        );
    }

    let (local, data) = s.random_file("file", 5 * MIB + 4321, 79);
    let back = s.path("back");
    m3ftp_ok(&nodes.dirs[0], &dc, &["put", local.to_str().unwrap(), "/f"]);
    m3ftp_ok(&nodes.dirs[0], &dc, &["get", "/f", back.to_str().unwrap()]);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the bytes came back different"
    );

    // Node 0 first (FS writes back through node 1's RDISK), then node 1; each removes its DC.
    n0.signal(libc::SIGTERM);
    assert!(n0.finish().success(), "{}", nodes.log(0, "muk2.log"));
    n1.signal(libc::SIGTERM);
    assert!(n1.finish().success(), "{}", nodes.log(1, "muk2.log"));
    for id in 0..2 {
        let region = nodes.dirs[id].join(format!("m3ipc-dc-{dc}"));
        assert!(!region.exists(), "node {id} left {}", region.display());
        assert!(
            !nodes.dirs[id].join(status::FILE_NAME).exists(),
            "node {id} left its daemon's status file"
        );
    }
    fsck_clean(&image);
}

/// The storage on two other nodes: the file lives on node 2's disk, FS and FTP on node 0, the
/// client on node 1. Every block FS reads or writes crosses node 0 <-> node 2, every byte of
/// the file node 1 <-> node 0.
///
/// - Node 0: `muk2 run` with a `[cluster]` section (its daemon in-process), FS and FTP.
/// - Node 1: the DC created empty, a separate node daemon, `m3ftp put/get`.
/// - Node 2: the DC created empty, a separate node daemon, `muk2 serve rdisk --image`.
///
/// `M3_REMOTE_FTP_MIB` sets the file's size (64 MiB by default).
#[test]
fn m3ftp_on_node_1_fs_on_node_0_rdisk_on_node_2() {
    let s = Scratch::new("muk-remote-three");
    let mib = ftp_mib();
    let image = s.mkfs("disk.img", (mib as u64 * 2 + 16).max(64));
    let dc = format!("r3{}", std::process::id());
    let nodes = Nodes::several(&s, &dc, 3);
    // Nodes 1 and 2: the DC (id 14) created empty, each with its daemon.
    for id in 1..3 {
        Kid::role(&nodes.dirs[id], &format!("mkdc {dc} 14 {id}")).wait_for("READY", LONG);
    }
    let d1 = nodes.daemon(1);
    let d2 = nodes.daemon(2);
    // Node 2: RDISK on the image, its own process (RDISK's well-known slot, 3).
    let mut c = Command::new(MUK2);
    c.args([
        "serve",
        "rdisk",
        "--image",
        image.to_str().unwrap(),
        "--dc",
        &dc,
    ]);
    let rdisk = Kid::spawn(c, &nodes.dirs[2], "rdisk.log");
    rdisk.wait_for("rdisk serving at nr 3", LONG);
    // Node 0: FS and FTP, with the daemon inside MUK2; FS finds RDISK on node 2.
    let config = s.path("muk0.toml");
    std::fs::write(
        &config,
        format!(
            "[dc]\nname = \"{dc}\"\ndcid = 14\n[[server]]\nname = \"fs\"\nformat = \"never\"\n\
             [[server]]\nname = \"ftp\"\n{}",
            nodes.cluster_section(0)
        ),
    )
    .unwrap();
    let mut c = Command::new(MUK2);
    c.args(["run", "--config", config.to_str().unwrap()]);
    let muk2 = Kid::spawn(c, &nodes.dirs[0], "muk2.log");
    let line = muk2.wait_for("expected from outside", LONG);
    assert!(line.contains("rdisk (nr 3)"), "{line}");
    muk2.wait_for("running; stop with", LONG);
    for id in 0..3 {
        nodes.connected(id);
    }

    let (local, data) = s.random_file("big", mib * MIB, 80);
    let back = s.path("back");
    let (put, get) = put_and_get(&nodes.dirs[1], &dc, &local, &back);
    let rate = |d: Duration| mib as f64 / d.as_secs_f64().max(1e-9);
    eprintln!(
        "three-node m3ftp of {mib} MiB: put {put:?} ({:.1} MiB/s), get {get:?} ({:.1} MiB/s), \
         load average {}",
        rate(put),
        rate(get),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the bytes came back different"
    );
    drop(data);
    // The file left node 1 (put) and came back to it (get) over its links. (RDISK copies
    // whole blocks straight between the client's buffer and the disk: most bytes go node 1 <->
    // node 2, never through node 0.)
    let size = (mib * MIB) as u64;
    let links = nodes.link_bytes(1, size);
    eprintln!(
        "node 1's links (peer, bytes out, bytes in): {links:?}; node 2's: {:?}",
        nodes.link_bytes(2, 0)
    );
    let out: u64 = links.iter().map(|l| l.1).sum();
    let inn: u64 = links.iter().map(|l| l.2).sum();
    assert!(
        out >= size && inn >= size,
        "node 1 sent {out} and received {inn} bytes for a file of {size}"
    );

    // FS first (its last writes go to node 2's RDISK through both daemons), then RDISK.
    muk2.signal(libc::SIGTERM);
    assert!(muk2.finish().success(), "{}", nodes.log(0, "muk2.log"));
    rdisk.signal(libc::SIGTERM);
    assert!(rdisk.finish().success(), "{}", nodes.log(2, "rdisk.log"));
    let region = nodes.dirs[0].join(format!("m3ipc-dc-{dc}"));
    assert!(!region.exists(), "node 0 left {}", region.display());
    assert!(d1.finish().success(), "{}", nodes.log(1, "daemon.log"));
    assert!(d2.finish().success(), "{}", nodes.log(2, "daemon.log"));
    fsck_clean(&image);
}
