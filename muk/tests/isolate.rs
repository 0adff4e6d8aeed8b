#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `muk2 run --isolate`: the unikernel in namespaces of its own. It cannot see the host's files
//! or processes (a test-only server, `probe`, tries at boot and reports), while outside
//! processes still work against it: a Rust client, the `m3ftp` command (a put and a get through
//! FS on an image file), and a client SIGKILLed while bound, whose slot the supervisor outside
//! releases (the unikernel cannot judge outside PIDs). After SIGTERM the DC is gone and
//! `fsck.minix -f` finds the image clean. The C client's run against an isolated unikernel is
//! in `ffi/tests/c_programs.rs`.
//!
//! Namespaces need root or unprivileged user namespaces: where neither is there (and only
//! then), the test says "needs ...: skipped". CI runs as root, where it always runs.

mod support;

use m3ipc::{Dc, Message, Timeout};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::disk::{MUK2, Scratch, fsck_clean, m3ftp_ok};

/// The probe's slot (`muk/src/bin/muk2/isolate.rs`).
const PROBE_NR: i32 = 23;
/// A user slot for the client that dies.
const DYING_NR: i32 = 120;

#[test]
fn child_main() {
    support::child_entry(run_role);
}

fn run_role(role: &str, dc: &str, _args: &[String]) {
    match role {
        // Bind, say so, and wait to be killed.
        "bound" => {
            let dc = Dc::open(dc).unwrap();
            let _p = dc.bind(DYING_NR).unwrap();
            support::say("bound");
            std::thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown role {other}"),
    }
}

/// A running `muk2 run --isolate`, killed on drop if the test did not end it.
struct Isolated(Child);

/// The lines `muk2 run` printed up to "running; stop with" (all of them if it never got there).
fn until_running(run: &mut Isolated) -> Vec<String> {
    let mut seen = Vec::new();
    let Some(out) = run.0.stdout.take() else {
        return seen;
    };
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        let done = line.contains("running; stop with");
        seen.push(line);
        if done {
            break;
        }
    }
    seen
}

impl Drop for Isolated {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The namespace links of process `pid` that differ from this process's.
fn namespaces_apart(pid: u32) -> Vec<&'static str> {
    ["user", "mnt", "pid", "ipc", "uts", "net"]
        .into_iter()
        .filter(|ns| {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
            let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
            theirs != ours
        })
        .collect()
}

#[test]
fn an_isolated_muk2_sees_nothing_of_the_host_and_serves_outside_clients() {
    let scratch = Scratch::new("isolate");
    let image = scratch.mkfs("disk.img", 16);
    let secret = scratch.path("host-file.txt");
    std::fs::write(&secret, "the host's").unwrap();
    let dc_name = format!("iso{}", std::process::id());
    let config = scratch.path("muk2.toml");
    std::fs::write(
        &config,
        format!(
            "[dc]\nname = \"{dc_name}\"\n\
             [[server]]\nname = \"systask\"\n[[server]]\nname = \"pm\"\n\
             [[server]]\nname = \"echo\"\n\
             [[server]]\nname = \"rdisk\"\nimage = \"{}\"\n\
             [[server]]\nname = \"fs\"\n[[server]]\nname = \"ftp\"\n",
            image.display()
        ),
    )
    .unwrap();
    let mut run = Isolated(
        Command::new(MUK2)
            .args(["run", "--isolate", "--config", config.to_str().unwrap()])
            .env("MUK2_TEST_ISOLATION_PROBE", &secret)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let seen = until_running(&mut run);
    if !seen.iter().any(|l| l.contains("running; stop with")) {
        let mut err = String::new();
        run.0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let _ = run.0.wait();
        if euid() != 0 && err.contains("cannot create the namespaces") {
            eprintln!(
                "needs root or unprivileged user namespaces: skipped ({})",
                err.trim()
            );
            return;
        }
        panic!("muk2 run --isolate did not start: {seen:?}\n{err}");
    }
    let outer_pid: u32 = seen
        .iter()
        .find_map(|l| l.split("(pid ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no outside pid in {seen:?}"));

    // The unikernel is a child of the supervisor, in six namespaces of its own.
    assert_ne!(outer_pid, run.0.id());
    assert_eq!(
        namespaces_apart(outer_pid),
        ["user", "mnt", "pid", "ipc", "uts", "net"]
    );
    let dc = Dc::open(&dc_name).unwrap();
    // Its slots are bound with its outside PID and judged alive from out here.
    for nr in [-2, 0, 1, 3, 14, 20, PROBE_NR] {
        let p = dc.getprocinfo(nr).unwrap();
        assert_eq!((p.pid, p.owner_alive), (outer_pid, true), "nr {nr}: {p:?}");
    }

    // What it saw of the host: not our file, and none of our processes.
    assert!(std::fs::read(&secret).is_ok() && Path::new("/proc/self").exists());
    let me = dc.bind(100).unwrap();
    let mut m = Message::new(0);
    m.m1_mut().m1i1 = std::process::id() as i32;
    me.sendrec(PROBE_NR, &mut m, Timeout::Millis(10_000))
        .unwrap();
    let (opened, pids, sees_us) = (m.m1().m1i1, m.m1().m1i2, m.m1().m1i3);
    assert_eq!(
        opened,
        libc::ENOENT,
        "the host file opened (0) or failed otherwise"
    );
    assert!(
        (1..=3).contains(&pids),
        "/proc showed {pids} processes: more than its own namespace's"
    );
    assert_eq!(sees_us, 0, "it saw this test's PID in its /proc");

    // An outside m3ftp works against it, through FS on the image.
    let (local, data) = scratch.random_file("up.bin", 300_000, 16);
    m3ftp_ok(&dc_name, &["put", local.to_str().unwrap(), "/up.bin"]);
    let back = scratch.path("down.bin");
    m3ftp_ok(&dc_name, &["get", "/up.bin", back.to_str().unwrap()]);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the bytes came back changed"
    );

    // A client killed while bound: the unikernel counts it alive (it cannot see it), the
    // supervisor outside releases its slot.
    let mut dying = support::spawn("bound", &dc_name, &[]);
    assert_eq!(dying.line(Duration::from_secs(10)), "bound");
    assert!(dc.getprocinfo(DYING_NR).unwrap().owner_alive);
    dying.child.kill().unwrap();
    dying.child.wait().unwrap();
    support::eventually(
        Duration::from_secs(10),
        "the dead client's slot freed",
        || {
            dc.getprocinfo(DYING_NR)
                .is_ok_and(|p| p.state == m3ipc::SlotState::Free)
        },
    );
    // And the servers still answer.
    let mut m = Message::new(0);
    me.sendrec(PROBE_NR, &mut m, Timeout::Millis(10_000))
        .unwrap();
    drop(me);

    // An orderly stop: exit 0, the DC removed by the supervisor, the image clean.
    // SAFETY: kill has no memory effects; the child is not reaped yet, so its pid is ours.
    let rc = unsafe { libc::kill(run.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = run.0.wait().unwrap();
    let mut err = String::new();
    run.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "muk2 run --isolate: {status}\n{err}");
    assert!(!err.contains("died"), "{err}");
    assert!(!dc.path().exists(), "the region is left");
    drop(dc);
    fsck_clean(&image);
}

/// `muk2 run ARGS` to its end: exit status and stderr.
fn muk2_fails(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = Command::new(MUK2)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config naming interface `iface` (with `address`, when given) under `[isolate]`.
fn isolate_config(scratch: &Scratch, dc_name: &str, iface: &str, address: Option<&str>) -> String {
    let config = scratch.path(&format!("{dc_name}.toml"));
    let mut text =
        muk::config::DEFAULT_TOML.replace("name = \"muk2\"", &format!("name = \"{dc_name}\""));
    text.push_str(&format!("\n[isolate]\ninterface = \"{iface}\"\n"));
    if let Some(a) = address {
        text.push_str(&format!("address = \"{a}\"\n"));
    }
    std::fs::write(&config, text).unwrap();
    config.to_str().unwrap().to_string()
}

#[test]
fn an_interface_that_is_not_there_or_without_isolate_is_refused() {
    let scratch = Scratch::new("isolate-iface-errors");
    let dc_name = format!("isx{}", std::process::id());
    let config = isolate_config(&scratch, &dc_name, "m3-nosuch0", Some("10.231.9.2/24"));
    let (status, err) = muk2_fails(&["run", "--isolate", "--config", &config]);
    assert!(!status.success());
    assert!(
        err.contains("[isolate] interface \"m3-nosuch0\": no such interface"),
        "{err}"
    );
    let (status, err) = muk2_fails(&["run", "--config", &config]);
    assert!(!status.success());
    assert!(
        err.contains("[isolate] names interface \"m3-nosuch0\"")
            && err.contains("only `muk2 run --isolate` has"),
        "{err}"
    );
    // The loopback is the host's own and cannot move.
    let config = isolate_config(&scratch, &dc_name, "lo", None);
    let (status, err) = muk2_fails(&["run", "--isolate", "--config", &config]);
    assert!(!status.success());
    assert!(err.contains("interface \"lo\": is a loopback"), "{err}");
    // Nothing was left behind.
    assert!(Dc::open(&dc_name).is_err());
}

/// `ip ARGS`: its output, or why it failed.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new(support::disk::tool("ip"))
        .args(args)
        .output()
        .map_err(|e| format!("ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A veth pair, deleted on drop (deleting one end deletes both; after the unikernel's network
/// namespace is gone, so is the pair, and there is nothing left to delete).
struct Veth {
    host: String,
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host]);
    }
}

/// One `GET` with `Connection: close`: status and body.
fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, Vec<u8>) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head from {addr}{path}"));
    let status = std::str::from_utf8(&all[9..12]).unwrap().parse().unwrap();
    (status, all.split_off(end + 4))
}

/// The address after `prefix` (`web: http://ADDR/`) in the boot output.
fn announced(seen: &[String], prefix: &str) -> std::net::SocketAddr {
    seen.iter()
        .find_map(|l| l.strip_prefix(prefix)?.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} line in {seen:?}"))
}

#[test]
fn an_interface_named_in_the_config_carries_http_to_an_isolated_muk2() {
    if euid() != 0 {
        eprintln!("needs root (a veth pair, moved into another namespace): skipped");
        return;
    }
    let me = std::process::id();
    let (inside, host) = (format!("m3i{me}"), format!("m3h{me}"));
    // A /24 of 10.231.0.0/16 of this test's own, by PID.
    let net = format!("10.231.{}", me % 250);
    if let Err(e) = ip(&[
        "link", "add", &inside, "type", "veth", "peer", "name", &host,
    ]) {
        eprintln!("cannot make a veth pair here (no CAP_NET_ADMIN?): skipped ({e})");
        return;
    }
    let _veth = Veth { host: host.clone() };
    ip(&["addr", "add", &format!("{net}.1/24"), "dev", &host]).unwrap();
    ip(&["link", "set", &host, "up"]).unwrap();

    let scratch = Scratch::new("isolate-iface");
    let dc_name = format!("isi{me}");
    let config = isolate_config(&scratch, &dc_name, &inside, Some(&format!("{net}.2/24")));
    let args = ["run", "--isolate", "--config", config.as_str()];

    // Up on the host: in use, refused.
    ip(&["link", "set", &inside, "up"]).unwrap();
    let (status, err) = muk2_fails(&args);
    assert!(!status.success());
    assert!(
        err.contains(&format!("interface \"{inside}\": is in use: it is up")),
        "{err}"
    );
    ip(&["link", "set", &inside, "down"]).unwrap();
    // With an address on the host: in use too.
    ip(&["addr", "add", &format!("{net}.3/24"), "dev", &inside]).unwrap();
    let (status, err) = muk2_fails(&args);
    assert!(!status.success());
    assert!(
        err.contains(&format!(
            "interface \"{inside}\": is in use: it has an IPv4 address"
        )),
        "{err}"
    );
    ip(&["addr", "flush", "dev", &inside]).unwrap();

    let mut run = Isolated(
        Command::new(MUK2)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let seen = until_running(&mut run);
    if !seen.iter().any(|l| l.contains("running; stop with")) {
        let mut err = String::new();
        let _ = run.0.stderr.take().unwrap().read_to_string(&mut err);
        panic!("muk2 run --isolate did not start: {seen:?}\n{err}");
    }
    // The interface left the host's namespace; web and IS listen on its address.
    assert!(
        ip(&["link", "show", &inside]).is_err(),
        "{inside} is still here"
    );
    let web = announced(&seen, "web: http://");
    let is = announced(&seen, "is:  http://");
    let want: std::net::IpAddr = format!("{net}.2").parse().unwrap();
    assert_eq!((web.ip(), is.ip()), (want, want), "{seen:?}");

    // A file put through FTP (over the region), fetched over the link from the host's end.
    let (local, data) = scratch.random_file("page.bin", 200_000, 7);
    m3ftp_ok(&dc_name, &["put", local.to_str().unwrap(), "/page.bin"]);
    let (status, body) = http_get(web, "/page.bin");
    assert_eq!(status, 200);
    assert!(
        body == data,
        "the web server sent {} other bytes",
        body.len()
    );
    let (status, body) = http_get(web, "/no-such-file");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let (status, body) = http_get(is, "/api/state");
    let json = String::from_utf8_lossy(&body);
    assert!(
        status == 200 && json.contains("\"procs\":["),
        "{status} {json}"
    );

    // An orderly stop; the namespace goes, and the veth pair with it.
    // SAFETY: kill has no memory effects; the child is not reaped yet, so its pid is ours.
    let rc = unsafe { libc::kill(run.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = run.0.wait().unwrap();
    let mut err = String::new();
    run.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "muk2 run --isolate: {status}\n{err}");
    assert!(Dc::open(&dc_name).is_err(), "the DC is left");
    support::eventually(
        Duration::from_secs(10),
        "the veth pair gone with the namespace",
        || ip(&["link", "show", &host]).is_err(),
    );
}
