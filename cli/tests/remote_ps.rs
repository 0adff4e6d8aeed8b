//! `dvs ps` shows the node of a remote slot: a child process (this test binary again, in a
//! private region directory) acts as a node daemon, binds the proxy and a remote slot, and the
//! test reads the table with the real `dvs` binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const ROLE: &str = "DVS_TEST_REMOTE_DAEMON";

/// The child's part: bind the proxy (nr 20) and remote slot 5 of node 3 at generation 2 in DC
/// `rps`, say so, and wait to be killed.
#[test]
fn daemon_child() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
    let dc = m3ipc::Dc::open("rps").unwrap();
    let proxy = dc.bind_proxy(20, "nodedaemon").unwrap();
    let _r = proxy.bind_remote(5, 2, 3, "farserver").unwrap();
    println!("@@ READY");
    std::thread::sleep(std::time::Duration::from_secs(60));
    std::process::exit(0);
}

#[test]
fn ps_shows_the_node_of_a_remote_slot() {
    let dir = std::env::temp_dir().join(format!("dvs-remote-ps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dvs = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_dvs"))
            .args(args)
            .env("M3IPC_SHM_DIR", &dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "dvs {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    dvs(&["dc", "create", "rps", "--id", "5", "--node", "0"]);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "daemon_child",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ROLE, "1")
        .env("M3IPC_SHM_DIR", &dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("@@ READY"));
    let ps = dvs(&["ps", "rps"]);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ready, "the daemon child did not start");
    let header: Vec<&str> = ps.lines().next().unwrap().split_whitespace().collect();
    let node_col = header
        .iter()
        .position(|&h| h == "NODE")
        .expect("NODE column");
    let row = |first: &str| -> Vec<String> {
        ps.lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .find(|cells| cells.first().map(String::as_str) == Some(first))
            .unwrap_or_else(|| panic!("no row {first}: {ps}"))
    };
    let remote = row("5");
    assert_eq!(remote[1], m3ipc::endpoint::make(2, 5).to_string(), "{ps}");
    assert_eq!(remote[3], "farserver", "{ps}");
    assert_eq!(remote[node_col], "3", "{ps}");
    assert_eq!(row("20")[node_col], "proxy", "{ps}");
}
