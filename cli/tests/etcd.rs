//! Nodes that find each other through etcd instead of a peer list: each test starts its own
//! etcd (`/usr/bin/etcd`, Debian's `etcd-server`) as a single member on free loopback ports
//! with a temporary data directory, and daemons started with `etcd = [...]` in their
//! `node.toml` or `--etcd URL`. Without an etcd binary the tests are skipped with a message,
//! unless `CI` is set: then they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use m3cluster::membership::LEASE_TTL;
use m3ipc::ANY;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use support::{DC, Ep, LONG, Node, dvs, free_port, node_region};

#[test]
fn proc_child() {
    support::proc_child();
}

// ---------------------------------------------------------------------------------------------
// A single-member etcd on loopback.

/// A running etcd, killed and its directory removed on drop.
struct Etcd {
    binary: PathBuf,
    dir: PathBuf,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

fn etcd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

static COUNT: AtomicU32 = AtomicU32::new(0);

impl Etcd {
    /// Start etcd, or `None` (with a message) when there is none and `CI` is not set.
    fn start() -> Option<Etcd> {
        let Some(binary) = etcd_binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "no etcd binary and CI is set: install etcd-server (apt-get install etcd-server)"
            );
            eprintln!("skipped: no etcd binary (install etcd-server to run this test)");
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "m3etcd-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut e = Etcd {
            binary,
            dir,
            client: free_port(),
            peer: free_port(),
            child: None,
        };
        e.run();
        Some(e)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    /// Run etcd on the data directory (again, after [`Etcd::kill`]) and wait until it answers.
    fn run(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .unwrap();
        let child = Command::new(&self.binary)
            .args(["--name", "m3test", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &self.url()])
            .args(["--advertise-client-urls", &self.url()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("m3test={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + LONG;
        while !self.healthy() {
            assert!(
                Instant::now() < deadline,
                "etcd never answered; its log:\n{}",
                std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether etcd answers its health check.
    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.client)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = s.write_all(b"GET /health HTTP/1.0\r\n\r\n");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.contains("\"health\":\"true\"")
    }

    /// SIGKILL etcd (its data stays).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "--- etcd log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes whose peers come from etcd.

/// Node `id`'s region directory with the DC in it, and a `node.toml` without peers (with
/// `etcd = [URL]` when `etcd` is given). Its daemon is not started.
fn node(id: u32, etcd: Option<&str>) -> Node {
    let dir = node_region(
        &format!(
            "m3etcd-{}-{}-{id}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ),
        id,
    );
    let mut text = format!(
        "node = {id}\nlisten = \"127.0.0.1:{}\"\ndcs = [\"{DC}\"]\n",
        free_port()
    );
    if let Some(url) = etcd {
        text += &format!("etcd = [\"{url}\"]\n");
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
}

/// Node `id` with its daemon running, its peers from etcd at `url`.
fn started(id: u32, url: &str) -> Node {
    let mut n = node(id, Some(url));
    n.start_daemon();
    n
}

/// The `dvs node run` command of `node` with `--etcd URL`.
fn run_with_flag(node: &Node, url: &str) -> Command {
    let mut c = node.command(env!("CARGO_BIN_EXE_dvs"));
    c.args(["node", "run", "--config"])
        .arg(&node.config)
        .args(["--etcd", url]);
    c
}

/// The peers `node`'s daemon lists now.
/// `dvs node run --config` of `node` run to its end: whether it succeeded, and its stderr.
fn refused_run(node: &Node) -> (bool, String) {
    let out = node
        .command(env!("CARGO_BIN_EXE_dvs"))
        .args(["node", "run", "--config"])
        .arg(&node.config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn peer_ids(node: &Node) -> Vec<u32> {
    let mut ids: Vec<u32> = node
        .status()
        .map(|st| st.peers.iter().map(|p| p.node).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}

#[test]
fn nodes_find_each_other_and_a_killed_one_leaves() {
    let Some(etcd) = Etcd::start() else { return };
    let url = etcd.url();
    let mut nodes = vec![started(0, &url), started(1, &url)];
    // Node 2 gets etcd from the command line.
    let mut n2 = node(2, None);
    n2.daemon = Some(
        run_with_flag(&n2, &url)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(n2.dir.join("daemon.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    nodes.push(n2);
    for n in &nodes {
        n.connected(2);
        let m = n.status().unwrap().membership.unwrap();
        assert!(m.registered && m.lease.is_some(), "{m:?}");
        assert_eq!(m.endpoints, std::slice::from_ref(&url));
    }
    // `dvs node status` shows the membership.
    let out = dvs(&nodes[1].dir, &["node", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("etcd {url}: registered, lease ")),
        "{text}"
    );

    // Calls cross as with a peer list.
    let mut s = Ep::start(&nodes[0], 5);
    let mut c = Ep::start(&nodes[2], 6);
    c.sees(s.ep);
    s.cmd(&format!("recv {ANY}"));
    assert_eq!(
        c.call(&format!("sendrec {} 1000", s.ep)),
        vec![0, s.ep, 1001]
    );
    assert_eq!(s.result(LONG), vec![0, c.ep, 1000]);
    drop(c);

    // Node 2's daemon is SIGKILLed: its lease expires, and the others drop it from their
    // peer lists within the lease's TTL and a second; a second more, as the status file that
    // shows it is rewritten every second.
    let killed = Instant::now();
    nodes[2].kill_daemon();
    let limit = Duration::from_secs(LEASE_TTL as u64 + 2);
    while !(peer_ids(&nodes[0]) == [1] && peer_ids(&nodes[1]) == [0]) {
        assert!(
            killed.elapsed() < limit,
            "node 2 still listed after {:?}: {:?} {:?}",
            killed.elapsed(),
            peer_ids(&nodes[0]),
            peer_ids(&nodes[1])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "node 2 left the peer lists {:?} after its kill",
        killed.elapsed()
    );

    // A fourth node joins later: every running node links to it.
    nodes.push(started(3, &url));
    for i in [0, 1, 3] {
        nodes[i].connected(2);
    }
    assert_eq!(peer_ids(&nodes[0]), [1, 3]);
    assert_eq!(peer_ids(&nodes[3]), [0, 1]);

    // Node 3 crashes and is restarted at once: its dead daemon's record still holds the id,
    // so the new one waits that lease out, then registers and is linked again.
    nodes[3].kill_daemon();
    nodes[3].start_daemon();
    for i in [0, 1, 3] {
        nodes[i].connected(2);
    }
    let log = log_of(&nodes[3].dir);
    assert!(log.contains("etcd: registered as /m3ipc/nodes/3"), "{log}");
}

#[test]
fn a_taken_node_id_is_refused_naming_the_holder() {
    let Some(etcd) = Etcd::start() else { return };
    let url = etcd.url();
    let holder = started(1, &url);
    let other = started(0, &url);
    holder.connected(1);
    let listen = holder.status().unwrap().listen;
    // A second node 1 (its own region directory and port) is refused.
    let twin = node(1, Some(&url));
    let (ok, err) = refused_run(&twin);
    assert!(!ok, "{err}");
    assert!(
        err.contains("node 1 is already registered in etcd") && err.contains(&listen.to_string()),
        "{err}"
    );
    // The holder kept its place.
    other.connected(1);
    holder.connected(1);
    // A peer list next to etcd is refused, naming both keys: in the file, and with --etcd.
    let text = std::fs::read_to_string(&twin.config).unwrap();
    let peer = "[[peer]]\nnode = 0\naddress = \"127.0.0.1:1\"\n";
    std::fs::write(&twin.config, format!("{text}{peer}")).unwrap();
    let (ok, err) = refused_run(&twin);
    assert!(!ok && err.contains("etcd and [[peer]] both given"), "{err}");
    let without_etcd: String = text
        .lines()
        .filter(|l| !l.starts_with("etcd"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&twin.config, format!("{without_etcd}{peer}")).unwrap();
    let out = run_with_flag(&twin, &url).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--etcd and [[peer]] both given"),
        "{err}"
    );
}

#[test]
fn the_membership_resumes_after_etcd_restarts() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let url = etcd.url();
    let nodes = [started(0, &url), started(1, &url)];
    for n in &nodes {
        n.connected(1);
    }
    etcd.kill();
    // The links stay up while etcd is away; the daemons notice it.
    let deadline = Instant::now() + LONG;
    let noticed = |n: &Node| {
        n.status()
            .and_then(|s| s.membership)
            .is_some_and(|m| m.last_error.is_some())
    };
    while !noticed(&nodes[0]) {
        assert!(Instant::now() < deadline, "{}", log_of(&nodes[0].dir));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(nodes[0].status().unwrap().peers[0].since.is_some());
    etcd.run();
    // A node started after the restart is seen by the others.
    let late = started(2, &url);
    late.connected(2);
    for n in &nodes {
        n.connected(2);
        let m = n.status().unwrap().membership.unwrap();
        assert!(m.registered, "node {}: {m:?}\n{}", n.id, log_of(&n.dir));
    }
}
