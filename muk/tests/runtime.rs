//! The runners themselves: hand-offs between servers, timers, outside callers, stop, deadlock,
//! stack overflow, and that the coroutine hot path makes no system call.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::{ANY, Dc, Errno, FLAG_RECEIVING, FLAG_WAITING, Message, Timeout};
use muk::{Host, Hosted, Ipc, Runner, Server};
use std::process::Command;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use support::TestDc;

fn hosted(name: &str, nr: i32, server: impl Server + 'static) -> Hosted {
    Hosted {
        name: name.into(),
        nr,
        stack_size: 64 * 1024,
        server: Box::new(server),
    }
}

fn stop_ok(host: Host) {
    for exit in host.stop() {
        assert!(exit.result.is_ok(), "{}: {:?}", exit.name, exit.result);
    }
}

/// Replies to every request with m1i1 + 1.
struct Ponger;

impl Server for Ponger {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        let mut m = Message::default();
        loop {
            match ipc.receive(ANY, &mut m, Timeout::Forever) {
                Ok(()) => {
                    let mut r = m;
                    r.m1_mut().m1i1 = m.m1().m1i1.wrapping_add(1);
                    let _ = ipc.reply(m.m_source, &r);
                }
                Err(Errno::EDVSSHUTDOWN) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Makes `n` sendrecs to the server at slot `to`, checking each reply; records round trips.
struct Pinger {
    to: i32,
    n: u32,
    out: mpsc::Sender<Vec<u64>>,
}

impl Server for Pinger {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        let dst = ipc.dc().getprocinfo(self.to)?.endpoint;
        let mut times = Vec::with_capacity(self.n as usize);
        for i in 0..self.n {
            let mut m = Message::new(1);
            m.m1_mut().m1i1 = i as i32;
            let t0 = Instant::now();
            ipc.sendrec(dst, &mut m, Timeout::Millis(10_000))?;
            times.push(t0.elapsed().as_nanos() as u64);
            if m.m1().m1i1 != i as i32 + 1 || m.m_source != dst {
                return Err(Errno::EDVSGENERIC);
            }
        }
        let _ = self.out.send(times);
        // Stay until stopped, as a server does.
        loop {
            match ipc.sleep(Duration::from_secs(60)) {
                Err(Errno::EDVSSHUTDOWN) => return Ok(()),
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
    }
}

fn wait_for<T>(slot: &Arc<Mutex<Option<T>>>, what: &str) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = slot.lock().unwrap().take() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: no result"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn p50(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn internal_sendrec(runner: Runner) {
    let t = TestDc::new('r');
    let (tx, rx) = mpsc::channel();
    let host = Host::start(
        &t.dc,
        vec![
            hosted("pong", 5, Ponger),
            hosted(
                "ping",
                6,
                Pinger {
                    to: 5,
                    n: 20_000,
                    out: tx,
                },
            ),
        ],
        runner,
    )
    .unwrap();
    let times = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(times.len(), 20_000);
    eprintln!("{runner:?}: internal sendrec p50 {} ns", p50(times));
    // MUK2 publishes its hand-off counts in batches, at the latest when the scheduler next
    // looks at the fabric (before it sleeps): give it that long.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut pong = t.dc.getprocinfo(5).unwrap();
    while pong.received < 20_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        pong = t.dc.getprocinfo(5).unwrap();
    }
    assert!(pong.received >= 20_000, "ps counts the hand-offs: {pong:?}");
    stop_ok(host);
}

#[test]
fn internal_sendrec_coroutines() {
    internal_sendrec(Runner::Coroutines);
}

#[test]
fn internal_sendrec_threads() {
    internal_sendrec(Runner::Threads);
}

/// Receives from nobody with a 5 ms timeout, five times; records what it got and how long.
type Probes = Vec<(m3ipc::Result<()>, Duration)>;

struct TimeoutProbe {
    out: Arc<Mutex<Option<Probes>>>,
}

impl Server for TimeoutProbe {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        let mut got = Vec::new();
        for _ in 0..5 {
            let mut m = Message::default();
            let t0 = Instant::now();
            let r = ipc.receive(ANY, &mut m, Timeout::Millis(5));
            got.push((r, t0.elapsed()));
        }
        *self.out.lock().unwrap() = Some(got);
        loop {
            if let Err(Errno::EDVSSHUTDOWN) =
                ipc.receive(ANY, &mut Message::default(), Timeout::Forever)
            {
                return Ok(());
            }
        }
    }
}

fn receive_timeout(runner: Runner) {
    let t = TestDc::new('r');
    let out = Arc::new(Mutex::new(None));
    let host = Host::start(
        &t.dc,
        vec![hosted("probe", 5, TimeoutProbe { out: out.clone() })],
        runner,
    )
    .unwrap();
    let got = wait_for(&out, "probe");
    let mut ms: Vec<u64> = Vec::new();
    for (r, d) in &got {
        assert_eq!(*r, Err(Errno::EDVSTIMEDOUT));
        assert!(*d >= Duration::from_millis(5), "early: {d:?}");
        ms.push(d.as_millis() as u64);
    }
    ms.sort_unstable();
    // The median must be within 5..15 ms; single probes may be late on a loaded CI machine.
    assert!(ms[2] <= 15, "timeouts took {ms:?} ms");
    stop_ok(host);
}

#[test]
fn receive_timeout_coroutines() {
    receive_timeout(Runner::Coroutines);
}

#[test]
fn receive_timeout_threads() {
    receive_timeout(Runner::Threads);
}

/// An outside endpoint (another thread with its own slot) reaches a MUK2 server while every
/// coroutine sleeps: the one shared doorbell wakes the scheduler at once.
#[test]
fn outside_caller_wakes_sleeping_unikernel() {
    let t = TestDc::new('r');
    let host = Host::start(
        &t.dc,
        vec![hosted("pong", 5, Ponger), hosted("idle", 6, Ponger)],
        Runner::Coroutines,
    )
    .unwrap();
    let client = t.dc.bind(100).unwrap();
    let pong = t.dc.getprocinfo(5).unwrap().endpoint;
    // Let the scheduler fall asleep, and show the truth to `ps` meanwhile.
    std::thread::sleep(Duration::from_millis(50));
    let info = t.dc.getprocinfo(5).unwrap();
    assert_eq!(
        info.flags & (FLAG_RECEIVING | FLAG_WAITING),
        FLAG_RECEIVING | FLAG_WAITING
    );
    assert_eq!(info.getfrom, ANY);
    // Each round trip after a pause finds every coroutine blocked and the scheduler asleep.
    let mut asleep = Vec::new();
    for i in 0..40 {
        std::thread::sleep(Duration::from_millis(2));
        let mut m = Message::new(1);
        m.m1_mut().m1i1 = i;
        let t0 = Instant::now();
        client
            .sendrec(pong, &mut m, Timeout::Millis(5_000))
            .unwrap();
        asleep.push(t0.elapsed());
        assert_eq!(m.m1().m1i1, i + 1);
    }
    asleep.sort();
    // No polling interval: the wake reaches the sleeping scheduler at once. A poll of even
    // 10 ms would put the median near 5 ms; a futex wake takes tens of microseconds here. The
    // bound leaves room for a loaded CI machine.
    let median = asleep[asleep.len() / 2];
    assert!(
        median < Duration::from_millis(3),
        "median round trip to a sleeping unikernel {median:?} (all: {asleep:?})"
    );
    drop(client);
    stop_ok(host);
}

/// Two servers that sendrec to each other: one of them closes the cycle and gets EDVSLOCKED.
struct Crosser {
    peer: i32,
    out: Arc<Mutex<Vec<m3ipc::Result<()>>>>,
}

impl Server for Crosser {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        let peer = loop {
            match ipc.dc().getprocinfo(self.peer) {
                Ok(p) if p.state == m3ipc::SlotState::Bound => break p.endpoint,
                _ => ipc.sleep(Duration::from_millis(1))?,
            }
        };
        let mut m = Message::new(7);
        let r = ipc.sendrec(peer, &mut m, Timeout::Millis(2_000));
        self.out.lock().unwrap().push(r);
        loop {
            match ipc.receive(ANY, &mut m, Timeout::Forever) {
                Err(Errno::EDVSSHUTDOWN) => return Ok(()),
                Ok(()) => {
                    let _ = ipc.reply(m.m_source, &m);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[test]
fn deadlock_between_coroutines_is_refused() {
    let t = TestDc::new('r');
    let out = Arc::new(Mutex::new(Vec::new()));
    let host = Host::start(
        &t.dc,
        vec![
            hosted(
                "a",
                5,
                Crosser {
                    peer: 6,
                    out: out.clone(),
                },
            ),
            hosted(
                "b",
                6,
                Crosser {
                    peer: 5,
                    out: out.clone(),
                },
            ),
        ],
        Runner::Coroutines,
    )
    .unwrap();
    let start = Instant::now();
    while out.lock().unwrap().len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut got = out.lock().unwrap().clone();
    got.sort_by_key(|r| r.is_ok());
    // The one that closed the cycle is refused; the other is then served.
    assert_eq!(got, vec![Err(Errno::EDVSLOCKED), Ok(())]);
    stop_ok(host);
}

#[test]
fn stop_ends_every_blocked_server() {
    for runner in [Runner::Coroutines, Runner::Threads] {
        let t = TestDc::new('r');
        let host = Host::start(
            &t.dc,
            vec![hosted("a", 5, Ponger), hosted("b", 6, Ponger)],
            runner,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        stop_ok(host);
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{runner:?} stop was slow"
        );
        // Their slots are free again.
        assert_eq!(t.dc.getprocinfo(5).unwrap().state, m3ipc::SlotState::Free);
    }
}

/// Recurses until its stack overflows.
struct Deep;

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(n: u64, buf: &mut [u8; 512]) -> u64 {
    let mut local = [0u8; 512];
    local[(n % 512) as usize] = buf[(n % 512) as usize].wrapping_add(1);
    std::hint::black_box(&mut local);
    recurse(n + 1, &mut local).wrapping_add(local[0] as u64)
}

impl Server for Deep {
    fn serve(&mut self, _ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        let mut buf = [0u8; 512];
        std::hint::black_box(recurse(0, &mut buf));
        Ok(())
    }
}

/// The child side of the tests that need a process of their own.
#[test]
fn child_role() {
    let Ok(role) = std::env::var("MUK_TEST_ROLE") else {
        return;
    };
    let t = TestDc::new('r');
    // The parent removes the DC of a child that dies (the overflow test).
    println!("DC {}", t.name);
    match role.as_str() {
        "overflow" => {
            let host =
                Host::start(&t.dc, vec![hosted("deep", 5, Deep)], Runner::Coroutines).unwrap();
            let _ = host.join();
        }
        "hotloop" => {
            let n: u32 = std::env::var("MUK_TEST_N").unwrap().parse().unwrap();
            let (tx, rx) = mpsc::channel();
            let host = Host::start(
                &t.dc,
                vec![
                    hosted("pong", 5, Ponger),
                    hosted("ping", 6, Pinger { to: 5, n, out: tx }),
                ],
                Runner::Coroutines,
            )
            .unwrap();
            // One blocking wait (a futex or two), not a polling loop: the count stays clean.
            let times = rx.recv().unwrap();
            println!("ROUNDTRIPS {} p50 {}", times.len(), p50(times));
            stop_ok(host);
        }
        other => panic!("unknown role {other}"),
    }
    drop(t);
    std::process::exit(0);
}

fn child(role: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env("MUK_TEST_ROLE", role);
    c
}

#[test]
fn stack_overflow_is_reported_with_the_server_name() {
    let out = child("overflow").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        // libtest may print "test child_role ... " before it on the same line.
        if let Some((_, name)) = line.split_once("DC ") {
            Dc::remove(name.trim()).unwrap();
        }
    }
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "stderr: {stderr}");
    assert!(
        stderr.contains("muk2: server deep overflowed its coroutine stack of 64 KiB"),
        "stderr: {stderr}"
    );
}

/// Run the hot loop of `n` internal sendrecs under `strace -f -c`; the number of system calls.
fn syscalls_of_hot_loop(n: u32) -> Option<u64> {
    let dir = std::env::temp_dir().join(format!("muk-strace-{}-{n}", std::process::id()));
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("strace")
        .arg("-f")
        .arg("-c")
        .arg("-o")
        .arg(&dir)
        .arg(exe)
        .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env("MUK_TEST_ROLE", "hotloop")
        .env("MUK_TEST_N", n.to_string())
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "hot loop failed: {stdout}");
    assert!(stdout.contains(&format!("ROUNDTRIPS {n}")), "{stdout}");
    let report = std::fs::read_to_string(&dir).ok()?;
    let _ = std::fs::remove_file(&dir);
    eprintln!("strace -c -f, {n} internal sendrec:\n{report}");
    // The summary's last line: "100.00 <secs> <usecs/call> <calls> <errors> total".
    let total = report
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with("total"))?;
    let fields: Vec<&str> = total.split_whitespace().collect();
    fields
        .get(fields.len().checked_sub(3)?)?
        .parse()
        .ok()
        .or_else(|| fields.get(fields.len().checked_sub(2)?)?.parse().ok())
}

#[test]
fn coroutine_hot_path_makes_no_syscall() {
    if Command::new("strace").arg("-V").output().is_err() {
        panic!("strace is not installed (.ci/run installs it)");
    }
    let small = syscalls_of_hot_loop(1_000).expect("strace summary");
    let big = syscalls_of_hot_loop(100_000).expect("strace summary");
    // 99 000 more round trips may not add even one system call per thousand of them: what
    // differs is start-up noise (the pinger's result polled by the test thread, page faults).
    assert!(
        big.saturating_sub(small) < 100,
        "{small} syscalls for 1 000 round trips, {big} for 100 000"
    );
}
