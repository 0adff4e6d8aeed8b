//! Acceptance point 6 (docs/ARCHITECTURE.md sections 3 and 9): a hostile peer scribbles on the region.
//!
//! A scribbler child maps the region file itself and writes random data over the slot table
//! (and, in one variant, over the header page too) with atomic stores, while worker children
//! run `send`/`receive`/`sendrec`/`notify`/`senda`/`reply`/`rcvrqst`/`wakeup`/`wait4bind` and
//! introspection loops with 200 ms timeouts. Every call must return `Ok` or an `Err(Errno)`:
//! a panic makes the worker exit non-zero, and a call that takes longer than its timeout plus
//! 2 s fails the worker's assertion (a hang shows as a worker that never finishes). Workers
//! whose slot was taken from them (a scribbled owner word) bind again.
//!
//! Three kinds of writes: whole random words (anything goes); single random bytes (which keep
//! the rest of a word); and small values into the first byte of random cache lines, where the
//! state bytes of owner words and envelopes live, so that sequence numbers survive and a state
//! alone changes (forged but plausible states: the nastiest case for the envelope protocol).
//!
//! After the header is scribbled, opening the DC must fail with a clear [`m3ipc::DcError`]. After
//! the slot table alone is scribbled, the header still opens, and after `reap_dead` two fresh
//! endpoints still complete a round trip.
//!
//! Two targeted tests forge the one state a client cannot withdraw from, `Replying` (its server
//! claimed the reply): with the server then SIGKILLed (must fail with
//! `EDVSDEADSRCDST`), and with the server alive (the client gives up a tick past its deadline).
// Child roles run outside `#[test]` functions, where a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::message::is_notify;
use m3ipc::{ANY, Dc, DcConfig, Errno, Message, Proc, Timeout};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{Rng, TestDc, child_entry, say, spawn};

/// Timeout of every blocking call.
const TIMEOUT_MS: u32 = 200;
const TIMEOUT: Timeout = Timeout::Millis(TIMEOUT_MS);
/// How much longer than its timeout a call may take.
const MARGIN: Duration = Duration::from_secs(2);
/// Bytes before the slot table (the header page).
const HEADER_PAGE: usize = 4096;
/// How long the scribbler writes, and how long workers run (they start before it and stop
/// after it).
const SCRIBBLE_MS: u64 = 1_500;
const WORK_MS: u64 = 2_200;

const T_SEND: i32 = 1;
const T_SENDREC: i32 = 2;
const T_REPLY: i32 = 3;

/// A small DC, so that random writes land on the slots in use: tasks -4..-1, processes 0..15;
/// slot indices below 10 (nr below 6) are system processes.
fn config() -> DcConfig {
    DcConfig {
        nr_tasks: 4,
        nr_procs: 16,
        nr_sysprocs: 10,
        ..DcConfig::default()
    }
}
const SERVER: i32 = 1;
const SENDERS: [i32; 2] = [2, 3];
const CLIENTS: [i32; 2] = [8, 9];

fn run_role(role: &str, dc: &str, args: &[String]) {
    match role {
        "scribble" => scribble(args),
        "worker" => worker(dc, args),
        // A server that takes one request and never answers.
        "take" => {
            let p = Dc::open(dc).unwrap().bind(SERVER).unwrap();
            say("ready");
            let mut m = Message::default();
            p.receive(ANY, &mut m, Timeout::Millis(20_000)).unwrap();
            say("took");
            std::thread::sleep(Duration::from_secs(60));
        }
        // Binds `args[0]` and idles until killed.
        "idle" => {
            let _p = Dc::open(dc)
                .unwrap()
                .bind(args[0].parse().unwrap())
                .unwrap();
            say("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        _ => panic!("unknown role {role}"),
    }
}

/// Write random data over the region file at `args[0]`: `args[1]` is `words`, `bytes` or
/// `lines` (small values into the first byte of cache lines),
/// `args[2]` `slots` or `all` (header page too), `args[3]` the seed.
fn scribble(args: &[String]) {
    let path = &args[0];
    let mode = args[1].as_str();
    let header = args[2] == "all";
    let mut rng = Rng(args[3].parse::<u64>().unwrap() | 1);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let map = memmap2::MmapOptions::new().len(len).map_raw(&file).unwrap();
    let base = map.as_mut_ptr();
    let lo = if header { 0 } else { HEADER_PAGE };
    let word = |off: usize| -> &AtomicU64 {
        assert!(off.is_multiple_of(8) && off + 8 <= len);
        // SAFETY: `off` is 8-aligned (the mapping is page-aligned) and inside the mapping, which
        // outlives every use here. Other processes access this memory concurrently, only through
        // atomics, so an atomic view of it is sound.
        unsafe { &*(base.add(off) as *const AtomicU64) }
    };
    let byte = |off: usize| -> &AtomicU8 {
        assert!(off < len);
        // SAFETY: as above, for one byte.
        unsafe { &*(base.add(off) as *const AtomicU8) }
    };
    say("scribbling");
    let end = Instant::now() + Duration::from_millis(SCRIBBLE_MS);
    let mut writes = 0u64;
    while Instant::now() < end {
        for _ in 0..1 + rng.below(64) {
            match mode {
                "bytes" => {
                    let off = lo + rng.below((len - lo) as u64) as usize;
                    byte(off).store(rng.next() as u8, Ordering::Relaxed);
                }
                "lines" => {
                    // A small value into the low byte of a cache line's first word: the state
                    // bytes of owner words, envelopes and inboxes live there (envelope phases
                    // 0..9, inbox phases 0x10..0x14), so this forges plausible states (and keeps
                    // their sequence numbers).
                    let off = lo + 64 * rng.below(((len - lo) / 64) as u64) as usize;
                    let v = rng.below(24) as u8;
                    byte(off).store(v, Ordering::Relaxed);
                }
                _ => {
                    let off = lo + 8 * rng.below(((len - lo) / 8) as u64) as usize;
                    word(off).store(rng.next(), Ordering::Relaxed);
                }
            }
            writes += 1;
        }
        // Sometimes a burst, sometimes a pause: calls get time to get deep into their protocol.
        match rng.below(4) {
            0 => {}
            1 => std::thread::yield_now(),
            _ => std::thread::sleep(Duration::from_micros(rng.below(1_000))),
        }
    }
    if header {
        // Make sure the identifying fields are hit (magic, version, state, layout hash, ...).
        for off in (0..64).step_by(8) {
            let w = word(off);
            let v = rng.next();
            w.store(
                if v == w.load(Ordering::Relaxed) {
                    !v
                } else {
                    v
                },
                Ordering::Relaxed,
            );
            writes += 1;
        }
    }
    say(&format!("wrote {writes}"));
}

/// A worker: `args` = kind (`server`, `sender`, `client`), nr, seed, whether the header is
/// scribbled too. Runs calls for `WORK_MS` and checks each returns in time.
fn worker(name: &str, args: &[String]) {
    let kind = args[0].as_str();
    let nr: i32 = args[1].parse().unwrap();
    let mut rng = Rng(args[2].parse::<u64>().unwrap() | 1);
    let header = args[3] == "all";
    let dc = Dc::open(name).unwrap();
    let mut me: Option<Proc> = Some(dc.bind(nr).unwrap());
    say("ready");
    let mut stats: BTreeMap<String, u64> = BTreeMap::new();
    let mut tally = |op: &str, r: &Result<(), Errno>| {
        let k = match r {
            Ok(()) => format!("{op}:ok"),
            Err(e) => format!("{op}:{e:?}"),
        };
        *stats.entry(k).or_default() += 1;
    };
    let end = Instant::now() + Duration::from_millis(WORK_MS);
    while Instant::now() < end {
        // Every call, timed: the limit is its timeout (if it blocks) plus the margin.
        let timed = |op: &str, blocks: bool, f: &mut dyn FnMut() -> Result<(), Errno>| {
            let began = Instant::now();
            let r = f();
            let took = began.elapsed();
            let limit = MARGIN
                + if blocks {
                    Duration::from_millis(TIMEOUT_MS as u64)
                } else {
                    Duration::ZERO
                };
            assert!(
                took <= limit,
                "{kind} {nr}: {op} took {took:?} (limit {limit:?}), returned {r:?}"
            );
            r
        };
        let Some(p) = me.as_ref() else {
            // Our slot was taken from us (a scribbled owner word, then a cleanup): bind again.
            let mut got = None;
            let r = timed("bind", false, &mut || {
                got = Some(dc.bind(nr)?);
                Ok(())
            });
            tally("bind", &r);
            me = got;
            if me.is_none() {
                std::thread::sleep(Duration::from_millis(1));
            }
            continue;
        };
        // The server's endpoint now, as the (scribbled) table says.
        let mut server = SERVER;
        let r = timed("getprocinfo", false, &mut || {
            server = dc.getprocinfo(SERVER)?.endpoint;
            Ok(())
        });
        tally("getprocinfo", &r);
        let choice = rng.below(100);
        let (op, r) = match kind {
            "server" => match choice {
                0..70 => {
                    let mut m = Message::default();
                    let mut r = timed("receive", true, &mut || p.receive(ANY, &mut m, TIMEOUT));
                    if r.is_ok() && !is_notify(m.m_type) && m.m_type == T_SENDREC {
                        tally("receive", &r);
                        r = timed("reply", false, &mut || {
                            p.reply(m.m_source, &Message::new(T_REPLY))
                        });
                        ("reply", r)
                    } else {
                        ("receive", r)
                    }
                }
                70..85 => {
                    let mut m = Message::default();
                    let r = timed("rcvrqst", true, &mut || p.rcvrqst(&mut m, TIMEOUT));
                    ("rcvrqst", r)
                }
                85..92 => {
                    let to = SENDERS[rng.below(2) as usize];
                    let r = timed("notify", false, &mut || {
                        p.notify(dc.getprocinfo(to)?.endpoint)
                    });
                    ("notify", r)
                }
                _ => {
                    let r = timed("introspect", false, &mut || {
                        let _ = dc.procs();
                        let _ = dc.info();
                        dc.getep(std::process::id()).map(|_| ())
                    });
                    ("introspect", r)
                }
            },
            "sender" => match choice {
                0..30 => (
                    "send",
                    timed("send", true, &mut || {
                        p.send(server, &Message::new(T_SEND), TIMEOUT)
                    }),
                ),
                30..55 => {
                    let mut m = Message::new(T_SENDREC);
                    (
                        "sendrec",
                        timed("sendrec", true, &mut || p.sendrec(server, &mut m, TIMEOUT)),
                    )
                }
                55..70 => ("notify", timed("notify", false, &mut || p.notify(server))),
                70..80 => (
                    "senda",
                    timed("senda", false, &mut || {
                        p.senda(server, &Message::new(T_SEND))
                    }),
                ),
                80..90 => {
                    let mut m = Message::default();
                    (
                        "receive",
                        timed("receive", true, &mut || p.receive(ANY, &mut m, TIMEOUT)),
                    )
                }
                90..95 => ("wakeup", timed("wakeup", false, &mut || p.wakeup(server))),
                _ => (
                    "wait4bind",
                    timed("wait4bind", true, &mut || {
                        dc.wait4bind(server, TIMEOUT).map(|_| ())
                    }),
                ),
            },
            "client" => match choice {
                0..95 => {
                    let mut m = Message::new(T_SENDREC);
                    (
                        "sendrec",
                        timed("sendrec", true, &mut || p.sendrec(server, &mut m, TIMEOUT)),
                    )
                }
                // Not allowed to a user endpoint: must be refused, not crash.
                _ => (
                    "send",
                    timed("send", true, &mut || {
                        p.send(server, &Message::new(T_SEND), TIMEOUT)
                    }),
                ),
            },
            _ => panic!("unknown kind {kind}"),
        };
        tally(op, &r);
        if header && rng.below(50) == 0 {
            // Opening a scribbled region gives a clear error or a DC; never a panic.
            let r = timed("open", false, &mut || {
                Dc::open(name).map(|_| ()).map_err(|e| e.errno())
            });
            tally("open", &r);
        }
        if r == Err(Errno::EDVSNOTBIND) {
            me = None;
        }
    }
    drop(me);
    let line: Vec<String> = stats.iter().map(|(k, v)| format!("{k}={v}")).collect();
    say(&format!("stats {kind} {nr}: {}", line.join(" ")));
}

#[test]
fn child_main() {
    child_entry(run_role);
}

/// Scribble with `mode` (`words`/`bytes`) over `area` (`slots`/`all`) while workers run.
fn hostile(mode: &str, area: &str, seed: u64) -> TestDc {
    let t = TestDc::with('h', &config());
    let path = t.dc.path().display().to_string();
    assert!(!path.contains(char::is_whitespace));
    let mut workers = Vec::new();
    let mut n = 0u64;
    let mut start = |kind: &str, nr: i32| {
        n += 1;
        let s = (seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_string();
        let mut w = spawn("worker", &t.name, &[kind, &nr.to_string(), &s, area]);
        w.expect("ready");
        w
    };
    workers.push(start("server", SERVER));
    for nr in SENDERS {
        workers.push(start("sender", nr));
    }
    for nr in CLIENTS {
        workers.push(start("client", nr));
    }
    let mut scribbler = spawn("scribble", &t.name, &[&path, mode, area, &seed.to_string()]);
    scribbler.expect("scribbling");
    let wrote = scribbler.line(Duration::from_secs(30));
    eprintln!("[hostile] {mode} over {area}: {wrote}");
    scribbler.finish();
    for mut w in workers {
        let stats = w.line(Duration::from_secs(30));
        eprintln!("[hostile] {mode} over {area}: {stats}");
        w.finish();
    }
    t
}

/// After the slot table alone was scribbled: the header still opens; once the dead "owners"
/// the scribbler invented are reaped, two fresh endpoints complete a round trip (skipping any
/// junk the scribbler left pending for them).
fn check_recovers(t: &TestDc) {
    let dc = Dc::open(&t.name).expect("header intact");
    dc.reap_dead();
    let server = dc.bind(4).or_else(|_| dc.bind(5)).expect("bind a server");
    let client = dc.bind(12).or_else(|_| dc.bind(13)).expect("bind a client");
    let server_ep = server.endpoint();
    let client_ep = client.endpoint();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut m = Message::new(T_SENDREC);
            client
                .sendrec(server_ep, &mut m, Timeout::Millis(10_000))
                .unwrap();
            assert_eq!((m.m_source, m.m_type), (server_ep, T_REPLY));
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(
                Instant::now() < deadline,
                "no request from the fresh client"
            );
            let mut m = Message::default();
            if server.receive(ANY, &mut m, Timeout::Millis(1_000)).is_ok()
                && m.m_source == client_ep
                && m.m_type == T_SENDREC
            {
                server.reply(client_ep, &Message::new(T_REPLY)).unwrap();
                break;
            }
        }
    });
}

#[test]
fn scribbled_slot_words() {
    let t = hostile("words", "slots", 0x1234_5678_9abc_def1);
    check_recovers(&t);
}

#[test]
fn scribbled_slot_bytes() {
    let t = hostile("bytes", "slots", 0x0fed_cba9_8765_4321);
    check_recovers(&t);
}

#[test]
fn scribbled_slot_state_bytes() {
    let t = hostile("lines", "slots", 0x7777_1111_4444_2222);
    check_recovers(&t);
}

#[test]
fn scribbled_header_and_slots() {
    let t = hostile("words", "all", 0x5151_2323_7878_0909);
    let err = Dc::open(&t.name).expect_err("a scribbled header must not open");
    let text = err.to_string();
    eprintln!("[hostile] open after header scribble: {text}");
    assert!(
        text.contains(&t.name),
        "error does not name the region: {text}"
    );
    assert!(matches!(
        err,
        m3ipc::DcError::BadHeader { .. } | m3ipc::DcError::NotRunning(_)
    ));
    // Removing it still works.
    let path = t.dc.path().to_owned();
    drop(t);
    assert!(!path.exists(), "{} left behind", path.display());
}

/// Turn the state byte of `client_nr`'s synchronous envelope, which must wait for
/// `server_nr`'s reply (`AwaitReply`), into `Replying` (the server claimed the reply and is
/// writing it), keeping its sequence number: a state the protocol itself produces.
fn forge_replying(t: &TestDc, client_nr: i32, server_nr: i32) {
    forge_claim(t, client_nr, server_nr, 0);
}

/// As `forge_replying`, but as a `vcopy` of slot `holder_nr` holding the client (the hold state
/// of `call/vcopy.rs`: `Replying` with the holder's slot index + 1 in bits 19..35).
fn forge_hold(t: &TestDc, client_nr: i32, server_nr: i32, holder_nr: i32) {
    let holder_idx = (holder_nr + config().nr_tasks as i32) as u64;
    forge_claim(t, client_nr, server_nr, (holder_idx + 1) << 19);
}

fn forge_claim(t: &TestDc, client_nr: i32, server_nr: i32, extra: u64) {
    let cfg = config();
    let slots = (cfg.nr_tasks + cfg.nr_procs) as usize;
    let client_idx = (client_nr + cfg.nr_tasks as i32) as usize;
    let server_idx = (server_nr + cfg.nr_tasks as i32) as u64;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(t.dc.path())
        .unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let map = memmap2::MmapOptions::new().len(len).map_raw(&file).unwrap();
    let slot_size = (len - HEADER_PAGE) / slots;
    let lo = HEADER_PAGE + client_idx * slot_size;
    // The envelope's state word starts a cache line of the client's slot and reads
    // AwaitReply (5) from the server.
    let found = (lo..lo + slot_size).step_by(64).find_map(|off| {
        // SAFETY: a 64-aligned offset inside the mapping, which outlives this use; the memory is
        // shared with other processes and accessed atomically by all of them.
        let w = unsafe { &*(map.as_mut_ptr().add(off) as *const AtomicU64) };
        let v = w.load(Ordering::Relaxed);
        (v & 0xff == 5 && (v >> 8) & 0xffff == server_idx).then_some((w, v))
    });
    let (w, v) = found.expect("the client's envelope in AwaitReply");
    assert!(
        w.compare_exchange(
            v,
            v & !0xff & !(0xffff << 19) | 6 | extra,
            Ordering::AcqRel,
            Ordering::Relaxed
        )
        .is_ok()
    );
}

/// Start `client` in a sendrec to `server_ep` with `TIMEOUT` on its own thread; the result
/// and the time it took come through the channel.
fn sendrec_in_thread(
    client: Proc,
    server_ep: i32,
) -> std::sync::mpsc::Receiver<(Result<(), Errno>, Duration)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut m = Message::new(T_SENDREC);
        let began = Instant::now();
        let r = client.sendrec(server_ep, &mut m, TIMEOUT);
        let _ = tx.send((r, began.elapsed()));
    });
    rx
}

/// A server claims a client's reply (`Replying`) and is SIGKILLed before it writes it: the
/// client, which cannot withdraw a reply being written, must still notice the death through its
/// liveness checks and fail with `EDVSDEADSRCDST` within 100 ms.
#[test]
fn server_killed_while_replying_fails_client() {
    let t = TestDc::with('h', &config());
    let mut server = spawn("take", &t.name, &[]);
    server.expect("ready");
    let server_ep = t.dc.getprocinfo(SERVER).unwrap().endpoint;
    let client = t.dc.bind(CLIENTS[0]).unwrap();
    let rx = sendrec_in_thread(client, server_ep);
    server.expect("took");
    forge_replying(&t, CLIENTS[0], SERVER);
    assert!(
        rx.try_recv().is_err(),
        "returned while its server writes the reply"
    );
    let killed = Instant::now();
    server.kill();
    let (r, _) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("client still blocked 5 s after its server died");
    let noticed = killed.elapsed();
    eprintln!("[hostile] server killed while replying: client got {r:?} after {noticed:?}");
    assert_eq!(r, Err(Errno::EDVSDEADSRCDST));
    assert!(
        noticed < Duration::from_millis(100),
        "noticed after {noticed:?}"
    );
}

/// The same forged `Replying`, but the "server" lives on and never finishes: the client's call
/// must still end by its timeout plus the margin (docs/ARCHITECTURE.md section 3: a corrupt entry yields an
/// error for that call, never a hang). The client gives up one liveness tick past its deadline.
#[test]
fn forged_replying_state_does_not_hang_the_client() {
    let t = TestDc::with('h', &config());
    let server = t.dc.bind(SERVER).unwrap();
    let client = t.dc.bind(CLIENTS[0]).unwrap();
    let rx = sendrec_in_thread(client, server.endpoint());
    let mut m = Message::default();
    server
        .receive(ANY, &mut m, Timeout::Millis(10_000))
        .unwrap();
    forge_replying(&t, CLIENTS[0], SERVER);
    let limit = Duration::from_millis(TIMEOUT_MS as u64) + MARGIN;
    let got = rx.recv_timeout(limit);
    // Free the client either way (the server's unbind fails it), so the test never hangs.
    drop(server);
    let (r, took) = got.expect("client still blocked past its timeout plus the margin");
    eprintln!("[hostile] forged Replying: sendrec returned {r:?} after {took:?}");
    assert!(r.is_err());
}

/// A `vcopy` hold (forged) whose holder lives on and never lets go: the server's `reply` gives
/// up after a liveness tick (`EDVSPROCSTS`), and the client's call still ends by its timeout
/// plus the hold grace (100 ms) and the margin: never a hang.
#[test]
fn forged_vcopy_hold_does_not_hang() {
    let t = TestDc::with('h', &config());
    let server = t.dc.bind(SERVER).unwrap();
    let client = t.dc.bind(CLIENTS[0]).unwrap();
    let client_ep = client.endpoint();
    let rx = sendrec_in_thread(client, server.endpoint());
    let mut m = Message::default();
    server
        .receive(ANY, &mut m, Timeout::Millis(10_000))
        .unwrap();
    // Held by the server's own slot: a live holder.
    forge_hold(&t, CLIENTS[0], SERVER, SERVER);
    let began = Instant::now();
    assert_eq!(
        server.reply(client_ep, &Message::new(0)),
        Err(Errno::EDVSPROCSTS)
    );
    assert!(
        began.elapsed() < MARGIN,
        "reply waited {:?}",
        began.elapsed()
    );
    let limit = Duration::from_millis(TIMEOUT_MS as u64 + 100) + MARGIN;
    let got = rx.recv_timeout(limit);
    drop(server);
    let (r, took) = got.expect("client still blocked past its timeout, the grace and the margin");
    eprintln!("[hostile] forged live vcopy hold: sendrec returned {r:?} after {took:?}");
    assert_eq!(r, Err(Errno::EDVSTIMEDOUT));
}

/// A `vcopy` holder that dies during its hold (forged: the hold names a killed process) does not
/// strand the client: the server's reply lifts the hold and is delivered.
#[test]
fn dead_vcopy_holder_lets_the_reply_through() {
    let t = TestDc::with('h', &config());
    let mut holder = spawn("idle", &t.name, &["2"]);
    holder.expect("ready");
    let server = t.dc.bind(SERVER).unwrap();
    let client = t.dc.bind(CLIENTS[0]).unwrap();
    let client_ep = client.endpoint();
    let rx = sendrec_in_thread(client, server.endpoint());
    let mut m = Message::default();
    server
        .receive(ANY, &mut m, Timeout::Millis(10_000))
        .unwrap();
    holder.kill();
    forge_hold(&t, CLIENTS[0], SERVER, 2);
    server.reply(client_ep, &Message::new(0)).unwrap();
    let (r, _) = rx.recv_timeout(MARGIN).expect("client still blocked");
    assert_eq!(r, Ok(()));
}

/// The server of a held client dies and so does the holder (one process, forged): the client
/// fails with `EDVSDEADSRCDST` within 100 ms, as without a hold.
#[test]
fn server_killed_while_holding_its_client_fails_it() {
    let t = TestDc::with('h', &config());
    let mut server = spawn("take", &t.name, &[]);
    server.expect("ready");
    let server_ep = t.dc.getprocinfo(SERVER).unwrap().endpoint;
    let client = t.dc.bind(CLIENTS[0]).unwrap();
    let rx = sendrec_in_thread(client, server_ep);
    server.expect("took");
    forge_hold(&t, CLIENTS[0], SERVER, SERVER);
    let killed = Instant::now();
    server.kill();
    let (r, _) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("client still blocked 5 s after its server died");
    let noticed = killed.elapsed();
    assert_eq!(r, Err(Errno::EDVSDEADSRCDST));
    assert!(
        noticed < Duration::from_millis(100),
        "noticed after {noticed:?}"
    );
}

/// The doorbell word at `off` of the region file.
fn bell_word(f: &std::fs::File, off: usize) -> u32 {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, off as u64).unwrap();
    u32::from_ne_bytes(b)
}

/// A receiver blocked in `receive(ANY)` (asleep at once, as an idle server is) whose doorbell's
/// sleeping bit a scribble cleared: the sender's ring then makes no wake, yet the message must
/// arrive within one liveness tick plus the call's own work (three ticks, for the median of
/// several rounds), never at the receiver's timeout. Found through `m3ipc::layout`, written as
/// `dd` would (a `pwrite` of the region file).
#[test]
fn a_receiver_with_its_sleeping_bit_cleared_still_hears_a_message() {
    use m3ipc::layout::{DOORBELL_SLEEPING, doorbell_offset, slot_table};
    use m3ipc::wait::LIVENESS_TICK;
    use std::os::unix::fs::FileExt;
    let t = TestDc::with('w', &config());
    let server = t.dc.bind(SERVER).unwrap();
    server.set_wait_policy(m3ipc::WaitPolicy::Block);
    let server_ep = server.endpoint();
    let off = doorbell_offset(&t.dc, SERVER).unwrap();
    assert!(slot_table(&t.dc).contains(&off));
    let region = std::fs::File::options()
        .read(true)
        .write(true)
        .open(t.dc.path())
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        let mut m = Message::default();
        while server.receive(ANY, &mut m, Timeout::Millis(10_000)).is_ok() {
            tx.send(m.payload[0]).unwrap();
            if m.payload[0] == u64::MAX {
                break;
            }
        }
    });
    let client = t.dc.bind(SENDERS[0]).unwrap();
    let mut times = Vec::new();
    for n in 1..=7u64 {
        // Wait until the receiver sleeps (or is about to), then scribble its bit away.
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let w = bell_word(&region, off);
            if w & DOORBELL_SLEEPING != 0 {
                region
                    .write_all_at(&(w & !DOORBELL_SLEEPING).to_ne_bytes(), off as u64)
                    .unwrap();
                break;
            }
            assert!(Instant::now() < until, "the receiver never slept");
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut m = Message::new(T_SEND);
        m.payload[0] = n;
        let began = Instant::now();
        client.send(server_ep, &m, Timeout::Millis(5_000)).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), n);
        times.push(began.elapsed());
    }
    let mut sorted = times.clone();
    sorted.sort();
    assert!(
        sorted[sorted.len() / 2] <= 3 * LIVENESS_TICK,
        "median over three ticks: {times:?}"
    );
    assert!(
        times.iter().all(|&d| d < Duration::from_secs(1)),
        "{times:?}"
    );
    let mut last = Message::new(T_SEND);
    last.payload[0] = u64::MAX;
    client.send(server_ep, &last, TIMEOUT).unwrap();
    receiver.join().unwrap();
}
