#![allow(clippy::unwrap_used, clippy::expect_used)]
//! MUK2 with its doorbell written over: a scheduler whose sleeping bit a scribble cleared (every
//! ring then skips its wake) still hears every outside call within one liveness tick, and still
//! stops on SIGINT within a second; MUK's threads stop within a second with their slot table
//! zero-filled. (The fabric's own sleepers: `ipc/tests/hostile.rs`.)
//!
//! The doorbell's offset comes from `m3ipc::layout` (this build's layout), and the scribble is a
//! plain `pwrite` of the region file, as `dd` would do it.

mod support;

use m3ipc::layout::{DOORBELL_SLEEPING, doorbell_offset, slot_table};
use m3ipc::wait::LIVENESS_TICK;
use m3ipc::{Dc, Message, Timeout};
use muk::protocol::{ECHO_ECHO, OK};
use muk::{Runner, ServerKind};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};
use support::disk::{Muk2Process, Scratch};

/// Only a hang reaches this.
const LONG: Duration = Duration::from_secs(10);

/// The doorbell word at `off` of the region file.
fn word(f: &File, off: usize) -> u32 {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, off as u64).unwrap();
    u32::from_ne_bytes(b)
}

/// Wait until the doorbell at `off` has a sleeper (its bit set), then clear the bit as a
/// scribble would: the sleeper sleeps on, and the next ring makes no wake.
fn clear_sleeping_bit(f: &File, off: usize) {
    let until = Instant::now() + LONG;
    loop {
        let w = word(f, off);
        if w & DOORBELL_SLEEPING != 0 {
            f.write_all_at(&(w & !DOORBELL_SLEEPING).to_ne_bytes(), off as u64)
                .unwrap();
            return;
        }
        assert!(Instant::now() < until, "the sleeper never slept");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Each of `rounds`: clear the sleeper's bit, then time `call` (which must succeed).
fn timed_after_scribbles(
    f: &File,
    off: usize,
    rounds: usize,
    mut call: impl FnMut() -> m3ipc::Result<()>,
) -> Vec<Duration> {
    (0..rounds)
        .map(|_| {
            clear_sleeping_bit(f, off);
            let began = Instant::now();
            call().unwrap();
            began.elapsed()
        })
        .collect()
}

/// Three ticks: one lost wake plus the call's own work, generously.
fn assert_within_ticks(times: &[Duration], what: &str) {
    let bound = 3 * LIVENESS_TICK;
    // The median bounds the typical call (one noisy outlier on a shared machine aside); every
    // call must still come back in well under a second, where a deaf sleeper would never.
    assert!(
        median(times.to_vec()) <= bound,
        "{what}: median over {bound:?}: {times:?}"
    );
    assert!(
        times.iter().all(|&t| t < Duration::from_secs(1)),
        "{what}: {times:?}"
    );
}

#[test]
fn muk2_hears_calls_and_stops_with_its_sleeping_bit_cleared() {
    let s = Scratch::new("muk-deaf");
    let dc_name = format!("tz{}", std::process::id());
    let config = s.path("muk.toml");
    std::fs::write(
        &config,
        format!(
            "[dc]\nname = \"{dc_name}\"\n[[server]]\nname = \"systask\"\n[[server]]\n\
             name = \"echo\"\nstack_kib = 64\n"
        ),
    )
    .unwrap();
    let run = Muk2Process::start(
        &["run", "--config", config.to_str().unwrap()],
        "running; stop with",
    );
    let dc = Dc::open(&dc_name).unwrap();
    let echo = dc
        .wait4bind(ServerKind::Echo.default_nr(), Timeout::Millis(10_000))
        .unwrap();
    // The scheduler sleeps on one doorbell for all its servers: echo's slot leads to it.
    let off = doorbell_offset(&dc, ServerKind::Echo.default_nr()).unwrap();
    let region = File::options()
        .read(true)
        .write(true)
        .open(dc.path())
        .unwrap();
    let client = muk::ftp_client::bind_user(&dc, "deaf").unwrap();
    let mut call = || {
        let mut m = Message::new(ECHO_ECHO);
        m.payload[0] = 0x5eed;
        client.sendrec(echo, &mut m, Timeout::Millis(5_000))?;
        assert_eq!((m.m_type, m.payload[0]), (OK, 0x5eed));
        Ok(())
    };
    call().unwrap();
    let times = timed_after_scribbles(&region, off, 7, &mut call);
    assert_within_ticks(&times, "echo after a cleared sleeping bit");
    // The stop's own ring goes through the same word: scribble it away again first.
    clear_sleeping_bit(&region, off);
    drop(client);
    let began = Instant::now();
    assert_eq!(run.signal(libc::SIGINT), Some(0));
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "SIGINT took {:?}",
        began.elapsed()
    );
    assert!(Dc::open(&dc_name).is_err(), "the DC was not removed");
}

/// MUK (one thread per server) with its whole slot table zero-filled while it idles: the stop
/// reaches every thread through the host's private flags within a tick (the doorbell rings it
/// would have used are refused: the slots no longer read as theirs), and every server finishes.
#[test]
fn muk_threads_stop_with_their_slot_table_zeroed() {
    let t = support::TestDc::new('y');
    let host = support::start(
        &t.dc,
        &[ServerKind::Systask, ServerKind::Echo],
        Runner::Threads,
    );
    let echo =
        t.dc.wait4bind(ServerKind::Echo.default_nr(), Timeout::Millis(10_000))
            .unwrap();
    let off = doorbell_offset(&t.dc, ServerKind::Echo.default_nr()).unwrap();
    let region = File::options()
        .read(true)
        .write(true)
        .open(t.dc.path())
        .unwrap();
    let client = muk::ftp_client::bind_user(&t.dc, "zero").unwrap();
    let mut m = Message::new(ECHO_ECHO);
    client
        .sendrec(echo, &mut m, Timeout::Millis(5_000))
        .unwrap();
    // Once echo's thread sleeps again, one write of zeros over the table.
    let until = Instant::now() + LONG;
    while word(&region, off) & DOORBELL_SLEEPING == 0 {
        assert!(Instant::now() < until, "echo never slept");
        std::thread::sleep(Duration::from_micros(200));
    }
    let table = slot_table(&t.dc);
    region
        .write_all_at(&vec![0u8; table.len()], table.start as u64)
        .unwrap();
    drop(client);
    let began = Instant::now();
    support::stop(host, 2);
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "the stop took {:?}",
        began.elapsed()
    );
}
