#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The C side end to end: C programs built with `gcc -std=c11 -Wall -Wextra -Werror` against
//! `libm3ipc.a`, talking to each other, to a Rust server, to a running MUK2, and a DVK-style
//! ping-pong that uses only `dvk_compat.h`; the argument checks of every function; the headers
//! compiled as C++. Each test has its own region directory and checks that nothing is left in
//! it.
//!
//! `rtt_c_against_rust` (ignored; run it by hand, in release) compares the round trip of the
//! C client with the same loop in Rust, against one server, in one run.

mod support;

use ipc::{ANY, Dc, DcConfig, Message, Timeout};
use std::time::Instant;
use support::{Running, ShmDir, build_dir, compile, run_ok};

#[test]
fn child_main() {
    support::child_entry(run_role);
}

/// Pin the calling process to `cpu` (negative: leave it).
fn pin(cpu: i32) {
    let Ok(cpu) = usize::try_from(cpu) else {
        return;
    };
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

/// The roles children of this test binary play.
fn run_role(role: &str, args: &[String]) {
    let arg = |i: usize| args[i].as_str();
    let num = |i: usize| args[i].parse::<i64>().unwrap();
    match role {
        "create-dc" => {
            let config = DcConfig {
                dcid: num(1) as u32,
                pool_bytes: 4 << 20,
                ..DcConfig::default()
            };
            Dc::create(arg(0), &config).unwrap();
        }
        "remove-dc" => Dc::remove(arg(0)).unwrap(),
        // The Rust twin of examples/server.c.
        "rust-server" => {
            if args.len() > 2 {
                pin(num(2) as i32);
            }
            let dc = Dc::open(arg(0)).unwrap();
            let me = dc.bind_named(num(1) as i32, "rust-server").unwrap();
            println!("READY {}", me.endpoint());
            let mut served = 0;
            loop {
                let mut m = Message::default();
                me.receive(ANY, &mut m, Timeout::Millis(30_000)).unwrap();
                let mut reply = Message::new(0);
                reply.m1_mut().m1i1 = m.m1().m1i1 + 1;
                me.reply(m.m_source, &reply).unwrap();
                served += 1;
                if m.m_type == 2 {
                    break;
                }
            }
            me.unbind().unwrap();
            println!("DONE {served}");
        }
        // The Rust twin of examples/client.c: the same loop, timed the same way.
        "rust-client" => {
            pin(num(4) as i32);
            let count = num(3).max(1) as usize;
            let dc = Dc::open(arg(0)).unwrap();
            let me = dc.bind_named(num(1) as i32, "rust-client").unwrap();
            if std::env::var_os("M3_CLIENT_BLOCK").is_some() {
                me.set_wait_policy(ipc::WaitPolicy::Block);
            }
            let server = me
                .wait4bind(num(2) as i32, Timeout::Millis(20_000))
                .unwrap();
            let mut rtt = Vec::with_capacity(count);
            for i in 0..count {
                let mut m = Message::new(1);
                m.m1_mut().m1i1 = i as i32;
                let t0 = Instant::now();
                me.sendrec(server, &mut m, Timeout::Millis(20_000)).unwrap();
                rtt.push(t0.elapsed().as_nanos() as u64);
                assert!(m.m_type == 0 && m.m_source == server && m.m1().m1i1 == i as i32 + 1);
            }
            rtt.sort_unstable();
            println!("OK count={count} p50_ns={}", rtt[count / 2]);
        }
        _ => panic!("unknown role {role}"),
    }
}

#[test]
fn c_server_and_c_client_across_processes() {
    let bin = build_dir("cc");
    let server = compile(&bin, "server", &["examples/server.c"], &[]);
    let client = compile(&bin, "client", &["examples/client.c"], &[]);
    let shm = ShmDir::new("cc");
    shm.create_dc("cc", 1);

    let mut s = Running::start({
        let mut c = shm.cmd(&server);
        c.args(["cc", "0"]);
        c
    });
    assert_eq!(s.wait_line("READY"), "READY 0");
    let mut c = shm.cmd(&client);
    c.args(["cc", "100", "0", "2000", "-1", "stop"]);
    let out = run_ok(c);
    assert!(out.starts_with("OK count=2000 p50_ns="), "{out}");
    s.wait_line("DONE 2001");
    s.finish();

    shm.remove_dc("cc");
    assert!(shm.regions().is_empty(), "{:?}", shm.regions());
}

#[test]
fn c_client_and_rust_server() {
    let bin = build_dir("cr");
    let client = compile(&bin, "client", &["examples/client.c"], &[]);
    let shm = ShmDir::new("cr");
    shm.create_dc("cr", 2);

    let mut s = Running::start(shm.role("rust-server", &["cr", "3"]));
    assert_eq!(s.wait_line("READY"), "READY 3");
    let mut c = shm.cmd(&client);
    c.args(["cr", "120", "3", "1000", "-1", "stop"]);
    let out = run_ok(c);
    assert!(out.starts_with("OK count=1000"), "{out}");
    s.wait_line("DONE 1001");
    s.finish();

    shm.remove_dc("cr");
    assert!(shm.regions().is_empty(), "{:?}", shm.regions());
}

#[test]
fn c_client_and_a_running_muk2() {
    c_client_against_muk2(false);
}

/// The same C client against `muk2 run --isolate`: the unikernel in namespaces of its own (its
/// other isolation checks are in `muk/tests/isolate.rs`).
#[test]
fn c_client_and_an_isolated_muk2() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let userns = || {
        std::process::Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "--pid", "--fork"])
            .args(["--net", "--ipc", "--uts", "true"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !root && !userns() {
        eprintln!("needs root or unprivileged user namespaces: skipped");
        return;
    }
    c_client_against_muk2(true);
}

fn c_client_against_muk2(isolate: bool) {
    use muk::protocol as p;
    let bin = build_dir(if isolate { "muk2-isolated" } else { "muk2" });
    let defines: Vec<String> = [
        ("ECHO_ECHO", p::ECHO_ECHO),
        ("PM_REGISTER", p::PM_REGISTER),
        ("PM_EXIT", p::PM_EXIT),
        ("PM_GETEP", p::PM_GETEP),
        ("PM_COUNT", p::PM_COUNT),
    ]
    .iter()
    .map(|(name, v)| format!("-D{name}={v}"))
    .collect();
    let client = compile(&bin, "muk2_client", &["examples/muk2_client.c"], &defines);
    let shm = ShmDir::new("muk2");
    let config = shm.0.join("muk2.toml");
    std::fs::write(
        &config,
        "[dc]\nname = \"cm\"\n[[server]]\nname = \"systask\"\n[[server]]\nname = \"pm\"\n\
         [[server]]\nname = \"echo\"\n",
    )
    .unwrap();
    let mut muk2 = Running::start({
        let mut c = shm.cmd(&support::muk2());
        c.arg("run").arg("--config").arg(&config);
        if isolate {
            c.arg("--isolate");
        }
        c
    });
    if isolate {
        muk2.wait_line("isolated in its own namespaces");
    }
    muk2.wait_line("running; stop with SIGINT or SIGTERM");

    let mut c = shm.cmd(&client);
    c.args(["cm", "100"]);
    assert_eq!(run_ok(c).trim(), "OK");

    assert_eq!(muk2.terminate(), Some(0));
    assert!(shm.regions().is_empty(), "{:?}", shm.regions());
}

#[test]
fn dvk_style_pingpong_with_only_dvk_compat_h() {
    let source =
        std::fs::read_to_string(support::ffi_dir().join("tests/c/dvk_pingpong.c")).unwrap();
    assert!(
        !source.contains("m3_") && !source.contains("m3ipc.h") && !source.contains("M3_"),
        "the ping-pong must use the original's names only"
    );
    let bin = build_dir("dvk");
    let pingpong = compile(&bin, "dvk_pingpong", &["tests/c/dvk_pingpong.c"], &[]);
    let shm = ShmDir::new("dvk");
    shm.create_dc("dp", 7);

    let mut c = shm.cmd(&pingpong);
    c.args(["7", "3000"]);
    let out = run_ok(c);
    assert!(
        out.contains("send/receive: 3000 loops, Throughput = "),
        "{out}"
    );
    assert!(out.contains("sendrec: 3000 loops, Throughput = "), "{out}");
    assert!(out.trim_end().ends_with("OK"), "{out}");

    shm.remove_dc("dp");
    assert!(shm.regions().is_empty(), "{:?}", shm.regions());
}

#[test]
fn every_function_checks_its_arguments() {
    let bin = build_dir("errors");
    let errors = compile(&bin, "errors", &["tests/c/errors.c"], &[]);
    let shm = ShmDir::new("errors");
    let mut c = shm.cmd(&errors);
    c.args(["ce", "4"]);
    let out = run_ok(c);
    let checks: u32 = out
        .trim()
        .strip_prefix("OK ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(checks > 200, "only {checks} checks ran");
    assert!(shm.regions().is_empty(), "{:?}", shm.regions());
}

#[test]
fn headers_compile_as_cpp() {
    let bin = build_dir("cpp");
    let src = bin.join("both.cpp");
    std::fs::write(
        &src,
        "#include \"m3ipc.h\"\n#include \"dvk_compat.h\"\n\
         static_assert(sizeof(message) == 64, \"message is 64 bytes\");\n\
         static_assert(sizeof(m3_payload) == 56, \"payload is 56 bytes\");\n\
         int main() { message m = message(); m.m1_i1 = 1; return (int)m3_abi_version() - \
         M3_ABI_VERSION + m.m1_i1 - 1; }\n",
    )
    .unwrap();
    for std in ["-std=c++11", "-std=c++17"] {
        let o = std::process::Command::new("g++")
            .args(["-x", "c++", std, "-Wall", "-Wextra", "-Werror", "-c"])
            .arg(format!(
                "-I{}",
                support::ffi_dir().join("include").display()
            ))
            .arg(&src)
            .arg("-o")
            .arg(bin.join("both.o"))
            .output()
            .expect("g++ (install it: apt-get install g++)");
        assert!(
            o.status.success(),
            "g++ {std}:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The same `sendrec` loop from C and from Rust against one Rust server, server on CPU 1 and
/// client on CPU 0, three runs each, alternating; prints the medians and their ratio. A report,
/// not a pass/fail check: run it with
/// `cargo test --release -p m3ipc-ffi --test c_programs -- --ignored --nocapture rtt`.
#[test]
#[ignore]
fn rtt_c_against_rust() {
    let count = std::env::var("RTT_COUNT").unwrap_or_else(|_| "200000".to_string());
    let bin = build_dir("rtt");
    let client = compile(&bin, "client", &["examples/client.c"], &["-O2".to_string()]);
    let shm = ShmDir::new("rtt");
    shm.create_dc("rtt", 9);
    let mut s = Running::start(shm.role("rust-server", &["rtt", "0", "1"]));
    s.wait_line("READY");
    let p50 = |out: String| -> u64 {
        out.split("p50_ns=")
            .nth(1)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{out}"))
    };
    let (mut c_runs, mut rust_runs) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let mut c = shm.cmd(&client);
        c.args(["rtt", "100", "0", &count, "0"]);
        c_runs.push(p50(run_ok(c)));
        rust_runs.push(p50(run_ok(
            shm.role("rust-client", &["rtt", "101", "0", &count, "0"]),
        )));
    }
    let mut c = shm.cmd(&client);
    c.args(["rtt", "100", "0", "1", "0", "stop"]);
    run_ok(c);
    s.finish();
    shm.remove_dc("rtt");
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[1]
    };
    let (cm, rm) = (median(&mut c_runs.clone()), median(&mut rust_runs.clone()));
    println!("sendrec round trip, p50 of {count}, server CPU 1, client CPU 0");
    println!("C    runs (ns): {c_runs:?}  median {cm}");
    println!("Rust runs (ns): {rust_runs:?}  median {rm}");
    println!("C / Rust: {:.2}x", cm as f64 / rm as f64);
}
