//! Issue 18, acceptance 2: three nodes in three network namespaces joined by veth pairs, a
//! daemon and a plain server or client endpoint process in each (`ip netns exec NS ...`; no
//! MUK2 here). One test takes a link down under load and up again; the other drops 1 % of the
//! packets on a link (nftables) and delays it by 5 ms each way (a relay of this harness).
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables): without them each test says why and passes,
//! except under `CI=true`, where it fails. Namespaces (and with them the veths and the nftables
//! table) are removed by a guard, also when a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::{ANY, Errno};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};
use support::{DC, DCID, Ep, LONG, Node, dvs};

#[test]
fn proc_child() {
    support::proc_child();
}

/// The port every daemon listens on, in its own namespace.
const PORT: u16 = 7100;
const RELAY_ROLE: &str = "DVS_TEST_RELAY";

// ---------------------------------------------------------------------------------------------
// Whether the test can run here

fn have(tool: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .any(|d| std::path::Path::new(d).join(tool).is_file())
}

/// Whether the network-namespace tests can run; says why not, and fails under `CI=true`.
fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let why = if !root {
        "not root (network namespaces need it)"
    } else if !have("ip") {
        "`ip` missing (Debian package iproute2)"
    } else if !have("nft") {
        "`nft` missing (Debian package nftables)"
    } else {
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the network-namespace test cannot run in CI: {why}"
    );
    eprintln!("skipped: {why}");
    false
}

fn run(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Three namespaces, a veth pair between each two

/// The namespaces `m3t<pid><tag>0..2`, removed (veths and nftables tables with them) on drop.
struct Net {
    ns: Vec<String>,
    tag: String,
}

/// The link between nodes `i` and `j`: 1 for 0-1, 2 for 0-2, 3 for 1-2.
fn link(i: usize, j: usize) -> usize {
    i + j
}

impl Net {
    fn new(tag: char) -> Net {
        let tag = format!("{}{tag}", std::process::id() % 100_000);
        let mut net = Net {
            ns: Vec::new(),
            tag,
        };
        for i in 0..3 {
            let ns = format!("m3t{}{i}", net.tag);
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
            run(&["netns", "add", &ns]);
            net.ns.push(ns);
            run(&["-n", &net.ns[i], "link", "set", "lo", "up"]);
        }
        for (i, j) in [(0, 1), (0, 2), (1, 2)] {
            run(&[
                "-n",
                &net.ns[i],
                "link",
                "add",
                &net.dev(i, j),
                "type",
                "veth",
                "peer",
                "name",
                &net.dev(j, i),
                "netns",
                &net.ns[j],
            ]);
            for (a, b) in [(i, j), (j, i)] {
                let addr = format!("{}/24", Net::addr(a, b));
                run(&[
                    "-n",
                    &net.ns[a],
                    "addr",
                    "add",
                    &addr,
                    "dev",
                    &net.dev(a, b),
                ]);
                run(&["-n", &net.ns[a], "link", "set", &net.dev(a, b), "up"]);
            }
        }
        net
    }

    /// Node `i`'s veth towards node `j`.
    fn dev(&self, i: usize, j: usize) -> String {
        format!("m3v{}{i}{j}", self.tag)
    }

    /// Node `i`'s address on its link with node `j`.
    fn addr(i: usize, j: usize) -> String {
        format!("10.218.{}.{}", link(i, j), i + 1)
    }

    /// Take node `i`'s end of the link with `j` down or up.
    fn set_link(&self, i: usize, j: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        run(&["-n", &self.ns[i], "link", "set", &self.dev(i, j), state]);
    }

    /// The prefix running a command in node `i`'s namespace.
    fn prefix(&self, i: usize) -> Vec<String> {
        ["ip", "netns", "exec", &self.ns[i]]
            .map(String::from)
            .to_vec()
    }

    /// The three nodes (DC created, config written, daemons started and connected); node 0
    /// dials node 1 at `via01` if given (a relay) instead of node 1's address.
    fn nodes(&self, via01: Option<&str>) -> Vec<Node> {
        let mut nodes: Vec<Node> = (0..3usize)
            .map(|id| {
                let dir = PathBuf::from(format!("/dev/shm/m3netns-{}-{id}", self.tag));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                let out = dvs(
                    &dir,
                    &["dc", "create", DC, "--id", DCID, "--node", &id.to_string()],
                );
                assert!(out.status.success(), "{out:?}");
                let mut text =
                    format!("node = {id}\nlisten = \"0.0.0.0:{PORT}\"\ndcs = [\"{DC}\"]\n");
                for p in (0..3).filter(|&p| p != id) {
                    let address = match via01 {
                        Some(relay) if id == 0 && p == 1 => relay.to_string(),
                        _ => format!("{}:{PORT}", Net::addr(p, id)),
                    };
                    text += &format!("[[peer]]\nnode = {p}\naddress = \"{address}\"\n");
                }
                let config = dir.join("node.toml");
                std::fs::write(&config, text).unwrap();
                Node {
                    id: id as u32,
                    dir,
                    config,
                    daemon: None,
                    prefix: self.prefix(id),
                }
            })
            .collect();
        for node in &mut nodes {
            node.start_daemon();
        }
        for node in &nodes {
            node.connected(2);
        }
        nodes
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The delaying relay: a child in a namespace, `listen target delay_ms` in `$DVS_TEST_RELAY`

#[test]
fn relay_child() {
    let Ok(spec) = std::env::var(RELAY_ROLE) else {
        return;
    };
    let w: Vec<&str> = spec.split_whitespace().collect();
    let (listen, target) = (w[0].to_string(), w[1].to_string());
    let delay = Duration::from_millis(w[2].parse().unwrap());
    let l = TcpListener::bind(&listen).unwrap();
    println!("@@ READY");
    for conn in l.incoming() {
        let Ok(a) = conn else { continue };
        let Ok(b) = TcpStream::connect(&target) else {
            continue;
        };
        for (from, to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
            pump(from, to, delay);
        }
    }
}

/// Copy `from` to `to`, each chunk `delay` after it was read.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let _ = from.set_nodelay(true);
    let _ = to.set_nodelay(true);
    let (tx, rx) = channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = from.shutdown(std::net::Shutdown::Both);
    });
    std::thread::spawn(move || {
        for (at, chunk) in rx {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

struct Relay(Child);

impl Relay {
    fn start(net: &Net, node: usize, spec: &str) -> Relay {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &net.ns[node]])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "relay_child", "--nocapture", "--test-threads=1"])
            .env(RELAY_ROLE, spec)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        assert!(
            lines.any(|l| l.is_ok_and(|l| l.contains("@@ READY"))),
            "the relay did not start"
        );
        std::thread::spawn(move || for _ in lines {});
        Relay(child)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn a_link_down_under_load_fails_the_callers_and_up_again_works() {
    if !can_run() {
        return;
    }
    let net = Net::new('a');
    let nodes = net.nodes(None);
    let mut s = Ep::start(&nodes[0], 5);
    let mut c1 = Ep::start(&nodes[1], 6);
    let mut c2 = Ep::start(&nodes[1], 7);
    let mut c3 = Ep::start(&nodes[2], 8);
    for c in [&mut c1, &mut c2, &mut c3] {
        c.sees(s.ep);
    }
    for ep in [c1.ep, c2.ep, c3.ep] {
        s.sees(ep);
    }

    // Load: c1 streams numbered sends to s (checked in order); c2 waits in a sendrec that s
    // does not take meanwhile.
    s.cmd(&format!("recvn {} 100000000", c1.ep));
    c1.cmd(&format!("sendn {} 100000000", s.ep));
    c2.cmd(&format!("sendrec {} 1000", s.ep));
    c1.no_result_for(Duration::from_millis(300));
    let down = Instant::now();
    net.set_link(1, 0, false);
    assert_eq!(c1.result(LONG), vec![Errno::EDVSNOTCONN.code()]);
    assert_eq!(c2.result(LONG)[0], Errno::EDVSNOTCONN.code());
    let took = down.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "learnt it after {took:?}"
    );
    // s's stream from c1 ends with an error (never out of order), and s is free again.
    let l = s.line(LONG);
    assert!(!l.contains(" ordered") && !l.starts_with("RES 0 "), "{l}");

    // Node 2's links are untouched: its calls keep working while the link is down.
    // (From c3 by name: c2's request, whose fate the broken link left unknown, may still be
    // queued at s for up to a liveness tick after node 0 declared the link down.)
    s.cmd(&format!("recv {}", c3.ep));
    assert_eq!(
        c3.call(&format!("sendrec {} 1100", s.ep)),
        vec![0, s.ep, 1101]
    );
    assert_eq!(s.result(LONG), vec![0, c3.ep, 1100]);

    // Up again: the daemons link again and calls cross.
    net.set_link(1, 0, true);
    nodes[0].connected(2);
    nodes[1].connected(2);
    c1.sees(s.ep);
    s.sees(c1.ep);
    s.cmd(&format!("recv {ANY}"));
    assert_eq!(
        c1.call(&format!("sendrec {} 1002", s.ep)),
        vec![0, s.ep, 1003]
    );
    assert_eq!(s.result(LONG), vec![0, c1.ep, 1002]);
    // Nothing from before the link went down comes first.
    s.cmd(&format!("recv {ANY}"));
    assert_eq!(c2.call(&format!("send {} 9", s.ep)), vec![0]);
    assert_eq!(s.result(LONG), vec![0, c2.ep, 9]);
}

#[test]
fn one_percent_loss_and_five_ms_delay_lose_and_repeat_nothing() {
    if !can_run() {
        return;
    }
    let net = Net::new('b');
    // Node 0 dials node 1 through a relay in its namespace that delays each way by 5 ms.
    let relay = Relay::start(
        &net,
        0,
        &format!("127.0.0.1:7200 {}:{PORT} 5", Net::addr(1, 0)),
    );
    // Node 1 drops 1 % of the packets on its link with node 0, both ways.
    let dev = net.dev(1, 0);
    let rules = format!(
        "table inet m3loss {{\n\
         chain input {{ type filter hook input priority 0; policy accept; \
         iifname \"{dev}\" numgen random mod 100 < 1 counter drop; }}\n\
         chain output {{ type filter hook output priority 0; policy accept; \
         oifname \"{dev}\" numgen random mod 100 < 1 counter drop; }}\n}}\n"
    );
    let mut nft = Command::new("ip")
        .args(["netns", "exec", &net.ns[1], "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    nft.stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(nft.wait().unwrap().success(), "nft refused the rules");

    let nodes = net.nodes(Some("127.0.0.1:7200"));
    let mut s = Ep::start(&nodes[0], 5);
    let mut c = Ep::start(&nodes[1], 6);
    c.sees(s.ep);
    s.sees(c.ep);

    // Numbered round trips: each request served once, in order, each answer its own.
    let started = Instant::now();
    s.cmd("serven 300");
    assert_eq!(c.call(&format!("sendrecn {} 300", s.ep)), vec![0]);
    assert_eq!(s.line(LONG), "RES 0 served");
    // Numbered sends the other way round: in order, none twice.
    c.cmd(&format!("recvn {} 300", s.ep));
    assert_eq!(s.call(&format!("sendn {} 300", c.ep)), vec![0]);
    assert_eq!(c.line(LONG), "RES 0 ordered");
    let took = started.elapsed();
    // Each of the 900 crossings waited for at least the relay's 5 ms.
    assert!(took > Duration::from_millis(900 * 5), "no delay? {took:?}");

    // The rules did drop packets.
    let out = Command::new("ip")
        .args([
            "netns", "exec", &net.ns[1], "nft", "list", "table", "inet", "m3loss",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let dropped: u64 = text
        .split("packets ")
        .skip(1)
        .filter_map(|w| w.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    eprintln!("{took:?} for 900 crossings; {dropped} packets dropped");
    assert!(dropped > 0, "nothing dropped: {text}");
    drop(relay);
}
