//! End-to-end tests of the `dvs` command: each test runs the real binary with its own private
//! region directory (`M3IPC_SHM_DIR`), which it removes afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh region directory, removed on drop.
struct ShmDir {
    path: PathBuf,
}

impl ShmDir {
    fn new() -> ShmDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("dvs-cli-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        ShmDir { path }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dvs"));
        cmd.args(args).env("M3IPC_SHM_DIR", &self.path);
        cmd
    }

    /// Run `dvs ARGS...` to completion.
    fn dvs(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Run `dvs ARGS...`, which must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.dvs(args);
        assert!(
            out.status.success(),
            "dvs {args:?} failed: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run `dvs ARGS...`, which must fail; its standard error.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.dvs(args);
        assert!(!out.status.success(), "dvs {args:?} succeeded");
        assert_ne!(out.status.code(), Some(0));
        String::from_utf8(out.stderr).unwrap()
    }

    /// Names of the files left in the directory.
    fn files(&self) -> Vec<String> {
        files_in(&self.path)
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The data row of `table` whose first cell is `first`, split into cells.
fn row<'a>(table: &'a str, first: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
}

#[test]
fn dc_create_ls_ps_rm_round_trip() {
    let dir = ShmDir::new();
    let out = dir.ok(&[
        "dc",
        "create",
        "alpha",
        "--id",
        "3",
        "--node",
        "2",
        "--procs",
        "16",
        "--tasks",
        "4",
        "--sysprocs",
        "8",
    ]);
    assert!(out.contains("created DC alpha"), "{out}");
    dir.ok(&["dc", "create", "beta", "--id", "4", "--mode", "660"]);
    let mode = std::fs::metadata(dir.path.join("m3ipc-dc-beta"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "the umask must not narrow --mode");

    let ls = dir.ok(&["dc", "ls"]);
    assert!(ls.starts_with("NAME"), "{ls}");
    let alpha = row(&ls, "alpha").expect("alpha listed");
    assert_eq!(&alpha[1..7], ["3", "2", "16", "4", "8", "0"], "{ls}");
    assert_eq!(row(&ls, "beta").expect("beta listed")[1], "4");

    // No slot bound: said in words.
    let ps = dir.ok(&["ps", "alpha"]);
    assert_eq!(ps.trim(), "DC alpha: no bound slots", "{ps}");

    // A server bound at nr 0, waiting in receive(ANY).
    let server = Killed(
        dir.command(&["__bench-peer", "fabric-server", "alpha", "-", "adaptive"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let ps = loop {
        let ps = dir.ok(&["ps", "alpha"]);
        if row(&ps, "0").is_some_and(|r| r.contains(&"R")) {
            break ps;
        }
        assert!(Instant::now() < deadline, "server never showed up: {ps}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let r = row(&ps, "0").unwrap();
    assert_eq!(r[2], server.0.id().to_string(), "{ps}");
    assert_eq!(&r[3..7], ["bench-server", "R", "ANY", "NONE"], "{ps}");
    assert_eq!(row(&dir.ok(&["dc", "ls"]), "alpha").unwrap()[6], "1");

    assert_eq!(dir.ok(&["dc", "rm", "alpha"]).trim(), "removed DC alpha");
    drop(server);
    let ls = dir.ok(&["dc", "ls"]);
    assert!(row(&ls, "alpha").is_none(), "{ls}");
    assert!(dir.fails(&["ps", "alpha"]).contains("no DC named"));
    dir.ok(&["dc", "rm", "beta"]);
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}

#[test]
fn pool_size_is_created_listed_and_removed() {
    let dir = ShmDir::new();
    dir.ok(&[
        "dc",
        "create",
        "pooled",
        "--pool-size",
        "8M",
        "--mode",
        "660",
    ]);
    dir.ok(&["dc", "create", "bare", "--id", "1", "--pool-size", "0"]);
    let mut files = dir.files();
    files.sort();
    assert_eq!(
        files,
        ["m3ipc-dc-bare", "m3ipc-dc-pooled", "m3ipc-pool-pooled"]
    );
    let mode = std::fs::metadata(dir.path.join("m3ipc-pool-pooled"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "the pool file has the region's mode");
    let ls = dir.ok(&["dc", "ls"]);
    let pooled = row(&ls, "pooled").expect("pooled listed");
    assert_eq!(&pooled[8..12], ["0/8M", "(0%)", "0", "0"], "{ls}");
    assert_eq!(
        &row(&ls, "bare").expect("bare listed")[8..11],
        ["-", "-", "-"]
    );
    let err = dir.fails(&["dc", "create", "odd", "--id", "2", "--pool-size", "3K"]);
    assert!(err.contains("multiple of 1M"), "{err}");
    let err = dir.fails(&["dc", "create", "odd", "--id", "2", "--pool-size", "lots"]);
    assert!(err.contains("64M"), "{err}");
    dir.ok(&["dc", "rm", "pooled"]);
    dir.ok(&["dc", "rm", "bare"]);
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}

#[test]
fn missing_dc_is_a_clear_error() {
    let dir = ShmDir::new();
    for args in [&["ps", "nosuch"][..], &["dc", "rm", "nosuch"]] {
        let err = dir.fails(args);
        assert!(err.starts_with("dvs: no DC named \"nosuch\""), "{err}");
    }
}

#[test]
fn bad_names_and_limits_are_refused() {
    let dir = ShmDir::new();
    for name in ["bad/name", "", ".hidden", "much-too-long-a-name"] {
        let err = dir.fails(&["dc", "create", name]);
        assert!(err.starts_with("dvs: bad DC name"), "{name:?}: {err}");
    }
    let err = dir.fails(&["dc", "create", "x", "--tasks", "40"]);
    assert!(err.contains("--tasks"), "{err}");
    let err = dir.fails(&["dc", "create", "x", "--mode", "9"]);
    assert!(err.contains("octal"), "{err}");
    dir.ok(&["dc", "create", "x"]);
    let err = dir.fails(&["dc", "create", "y"]);
    assert!(err.contains("--id"), "{err}");
    dir.ok(&["dc", "rm", "x"]);
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}

#[test]
fn demo_prints_percentiles_and_cleans_up() {
    let dir = ShmDir::new();
    let out = dir.ok(&["demo", "--count", "2000"]);
    for word in [
        "2000 sendrec round trips",
        "p50",
        "p90",
        "p99 ",
        "p99.9",
        "max",
        "throughput",
    ] {
        assert!(out.contains(word), "no {word:?} in {out}");
    }
    assert!(
        out.contains("on CPU 0") && out.contains("on CPU 1"),
        "{out}"
    );
    assert!(dir.files().is_empty(), "left behind: {:?}", dir.files());
}

#[test]
fn bench_prints_rows_baselines_targets_and_writes_csv_and_svg() {
    let dir = ShmDir::new();
    let out_dir = dir.path.join("out");
    let out = dir.ok(&[
        "bench",
        "--quick",
        "--count",
        "2000",
        "--only",
        "sendrec/fabric-adaptive",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    // The chosen rows and the baselines they need, nothing else.
    for (scenario, placement) in [
        ("sendrec/fabric-adaptive", "different-cores"),
        ("sendrec/fabric-adaptive", "same-core"),
        ("sendrec/raw-spin", "different-cores"),
        ("sendrec/raw-futex", "same-core"),
    ] {
        assert!(
            out.lines().any(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells.first() == Some(&scenario) && cells.get(1) == Some(&placement)
            }),
            "no {scenario} {placement} row in\n{out}"
        );
    }
    for row in out
        .lines()
        .filter(|l| l.starts_with("sendrec/fabric-adaptive"))
    {
        assert!(
            row.split_whitespace().any(|c| c
                .strip_suffix('x')
                .is_some_and(|r| r.parse::<f64>().is_ok())),
            "no ratio in {row}"
        );
        assert!(row.contains("/0"), "no CPU placement in {row}");
    }
    assert!(!out.contains("sendrec/pipe"), "{out}");
    assert!(
        out.contains("Fabric Adaptive p50 <= 2x raw spin (different cores)"),
        "{out}"
    );
    let csv = std::fs::read_to_string(out_dir.join("bench.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("group,scenario,placement,cpus,n,"), "{csv}");
    assert!(
        csv.lines().any(
            |l| l.starts_with("sendrec,fabric-adaptive,same-core,0/0,2000,")
                && l.contains("sendrec/raw-futex/same-core")
        ),
        "{csv}"
    );
    let svg = std::fs::read_to_string(out_dir.join("bench.svg")).unwrap();
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("sendrec/raw-spin different-cores"), "{svg}");
    std::fs::remove_dir_all(&out_dir).unwrap();
    assert!(dir.files().is_empty(), "left behind: {:?}", dir.files());
}

/// `dvs bench` reads the load average at its start and end (here from a file standing in for
/// /proc/loadavg), prints both, writes both into every CSV line, and warns when one is above
/// 1.0; a quiet load gives no warning.
#[test]
fn bench_reports_the_load_average_and_warns_above_one() {
    let dir = ShmDir::new();
    for (load, warns) in [
        ("3.25 2.00 1.50 2/345 6789\n", true),
        ("0.40 0.30 0.20 1/2 3\n", false),
    ] {
        let loadavg = dir.path.join("loadavg");
        std::fs::write(&loadavg, load).unwrap();
        let out_dir = dir.path.join("out");
        let out = dir
            .command(&[
                "bench",
                "--quick",
                "--count",
                "300",
                "--only",
                "sendrec/raw-futex/same-core",
                "--out",
                out_dir.to_str().unwrap(),
            ])
            .env("DVS_BENCH_LOADAVG", &loadavg)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stdout}\n{stderr}");
        let first = load.split_whitespace().next().unwrap();
        let shown = format!("{:.2}", first.parse::<f64>().unwrap());
        assert!(
            stderr.contains(&format!("load average {shown} at the start")),
            "{stderr}"
        );
        assert!(
            stdout.contains(&format!(
                "Load average (1 min, /proc/loadavg): {shown} at the start, {shown} at the end"
            )),
            "{stdout}"
        );
        assert_eq!(
            stderr.contains(&format!(
                "warning: load average {shown} at the start, above 1.0"
            )),
            warns,
            "{stderr}"
        );
        assert_eq!(
            stderr.contains(&format!(
                "warning: load average {shown} at the end, above 1.0"
            )),
            warns,
            "{stderr}"
        );
        let csv = std::fs::read_to_string(out_dir.join("bench.csv")).unwrap();
        let mut lines = csv.lines();
        assert!(
            lines.next().unwrap().ends_with(",note,load_start,load_end"),
            "{csv}"
        );
        let rows: Vec<&str> = lines.collect();
        assert!(!rows.is_empty(), "{csv}");
        for row in rows {
            assert!(row.ends_with(&format!(",{shown},{shown}")), "{row}");
        }
        std::fs::remove_dir_all(&out_dir).unwrap();
        std::fs::remove_file(&loadavg).unwrap();
    }
    assert!(dir.files().is_empty(), "left behind: {:?}", dir.files());
}

#[test]
fn bench_refuses_a_filter_that_matches_nothing() {
    let dir = ShmDir::new();
    let err = dir.fails(&[
        "bench",
        "--only",
        "no-such-scenario",
        "--out",
        "/nonexistent/x",
    ]);
    assert!(err.contains("no scenario id contains"), "{err}");
    let out_file = dir.path.join("a-file");
    std::fs::write(&out_file, "").unwrap();
    let err = dir.fails(&[
        "bench",
        "--only",
        "raw-spin",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(err.contains("a-file"), "{err}");
    std::fs::remove_file(&out_file).unwrap();
    assert!(dir.files().is_empty(), "left behind: {:?}", dir.files());
}

#[test]
fn zero_copy_bench_prints_every_size_and_way() {
    let dir = ShmDir::new();
    let out_dir = dir.path.join("zc");
    let out = dir.ok(&[
        "bench",
        "--zero-copy",
        "--quick",
        "--count",
        "300",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    for size in ["4K", "64K", "1M"] {
        for way in ["handle", "vcopy", "unix-socket"] {
            let name = format!("zero_copy/{way}-{size}");
            assert!(
                out.lines()
                    .any(|l| l.split_whitespace().next() == Some(name.as_str())),
                "no row {name} in {out}"
            );
        }
    }
    assert!(
        out.contains("1 MiB zero-copy handoff >= 20x a Unix socket's throughput"),
        "{out}"
    );
    assert!(out.contains("MB/s"), "{out}");
    std::fs::remove_dir_all(&out_dir).unwrap();
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}

/// The environment variable that makes this test binary a helper process (see `helper_role`).
const ROLE: &str = "DVS_CLI_TEST_ROLE";

/// Not a test of its own: run with `ROLE` set, this binary is a helper process that prints
/// `ready` and then sleeps until killed. Roles: `create NAME` (creates the DC and stays its
/// creator), `hold NAME` (binds nr 5 and allocates three pool buffers).
#[test]
fn helper_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let words: Vec<&str> = role.split_whitespace().collect();
    let (_dc, _proc, _bufs) = match words[..] {
        ["create", name] => (
            m3ipc::Dc::create(name, &m3ipc::DcConfig::default()).unwrap(),
            None,
            Vec::new(),
        ),
        ["hold", name] => {
            let dc = m3ipc::Dc::open(name).unwrap();
            let p = dc.bind_named(5, "holder").unwrap();
            let bufs: Vec<_> = (0..3).map(|_| p.alloc_buffer(64 << 10).unwrap()).collect();
            (dc, Some(p), bufs)
        }
        _ => panic!("unknown role {role:?}"),
    };
    println!("\nhelper-ready");
    std::thread::sleep(Duration::from_secs(120));
}

/// Start this binary as a helper in `role` with `dir` as region directory; returns once it
/// printed `ready`.
fn helper(dir: &ShmDir, role: &str) -> Killed {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_role",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ROLE, role)
        .env("M3IPC_SHM_DIR", &dir.path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let ready = out
        .lines()
        .map_while(|l| l.ok())
        .any(|l| l.ends_with("helper-ready"));
    assert!(ready, "helper {role:?} never got ready");
    Killed(child)
}

/// SIGKILL `k` and reap it.
fn kill9(mut k: Killed) {
    k.0.kill().unwrap();
    k.0.wait().unwrap();
}

#[test]
fn dc_create_takes_over_a_dead_creators_dc_and_refuses_a_live_one() {
    let dir = ShmDir::new();
    // Made by a process that is still alive: refused, naming it.
    let creator = helper(&dir, "create t1");
    let pid = creator.0.id();
    let err = dir.fails(&["dc", "create", "t1"]);
    assert!(
        err.contains("already exists and is in use")
            && err.contains(&format!("pid {pid}, is alive")),
        "{err}"
    );
    let ls = dir.ok(&["dc", "ls"]);
    assert_eq!(row(&ls, "t1").unwrap()[12], pid.to_string(), "{ls}");

    // Killed: the next create takes the DC over, says so, and makes it afresh.
    kill9(creator);
    let ls = dir.ok(&["dc", "ls"]);
    assert_eq!(
        &row(&ls, "t1").unwrap()[12..14],
        [&pid.to_string(), "(dead)"]
    );
    let out = dir.dvs(&["dc", "create", "t1", "--procs", "100"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "DC \"t1\": taking over the region left by pid {pid} (dead)"
        )),
        "{err}"
    );
    let ls = dir.ok(&["dc", "ls"]);
    assert_eq!(row(&ls, "t1").unwrap()[3], "100", "the new limits: {ls}");

    // Its creator (that dvs) is gone, but a live process is bound in it: refused, naming it.
    let holder = helper(&dir, "hold t1");
    let hpid = holder.0.id();
    let err = dir.fails(&["dc", "create", "t1"]);
    assert!(
        err.contains(&format!(
            "pid {hpid} is alive and bound at nr 5 as \"holder\""
        )),
        "{err}"
    );
    kill9(holder);
    let out = dir.dvs(&["dc", "create", "t1"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("taking over"));
    dir.ok(&["dc", "rm", "t1"]);
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}

#[test]
fn dc_ls_does_not_count_a_killed_process_as_using_slots_or_buffers() {
    let dir = ShmDir::new();
    dir.ok(&["dc", "create", "t2", "--pool-size", "8M"]);
    let holder = helper(&dir, "hold t2");
    let ls = dir.ok(&["dc", "ls"]);
    let r = row(&ls, "t2").unwrap();
    assert_eq!(r[6], "1", "bound: {ls}");
    assert_eq!(&r[8..11], ["192K/8M", "(2%)", "3"], "{ls}");
    let ps = dir.ok(&["ps", "t2"]);
    assert!(!row(&ps, "5").unwrap()[4].contains('D'), "{ps}");

    kill9(holder);
    // `ps` only reads: the dead owner is marked.
    let ps = dir.ok(&["ps", "t2"]);
    assert!(row(&ps, "5").unwrap()[4].contains('D'), "{ps}");
    let out = dir.dvs(&["dc", "ls"]);
    assert!(out.status.success());
    let ls = String::from_utf8(out.stdout.clone()).unwrap();
    let r = row(&ls, "t2").unwrap();
    assert_eq!(r[6], "0", "bound: {ls}");
    assert_eq!(&r[8..11], ["0/8M", "(0%)", "0"], "{ls}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("released 1 slot(s) of dead processes"),
        "{out:?}"
    );
    let ps = dir.ok(&["ps", "t2"]);
    assert_eq!(ps.trim(), "DC t2: no bound slots", "{ps}");
    dir.ok(&["dc", "rm", "t2"]);
}

#[test]
fn group_and_mode_are_given_to_both_files() {
    use std::os::unix::fs::MetadataExt;
    let dir = ShmDir::new();
    // Our own group: any user may give a file of theirs their own group.
    // SAFETY: getegid has no preconditions.
    let gid = unsafe { libc::getegid() };
    dir.ok(&[
        "dc",
        "create",
        "shared",
        "--group",
        &gid.to_string(),
        "--mode",
        "0660",
    ]);
    let mut files = dir.files();
    files.sort();
    assert_eq!(files, ["m3ipc-dc-shared", "m3ipc-pool-shared"]);
    for f in &files {
        let m = std::fs::metadata(dir.path.join(f)).unwrap();
        assert_eq!(m.gid(), gid, "{f}");
        assert_eq!(m.mode() & 0o7777, 0o660, "{f}");
    }
    dir.ok(&["dc", "rm", "shared"]);
    let err = dir.fails(&["dc", "create", "g2", "--group", "no-such-group-m3"]);
    assert!(err.contains("no group named \"no-such-group-m3\""), "{err}");
    let err = dir.fails(&[
        "dc",
        "create",
        "g3",
        "--group",
        &gid.to_string(),
        "--mode",
        "0460",
    ]);
    assert!(err.contains("--mode"), "{err}");
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}
