//! The raw ping-pong over one shared word, which both raw baselines play; they differ only in
//! how a side waits for the ball ([`Waiter`]).
//!
//! The client puts the ball in the server's court by storing an odd number `2k+1`; the server
//! returns it by storing `2k+2`. [`STOP`] ends the game. The server also publishes the CPUs it ran
//! on in a second cache line. The page is a file in the region directory, so both sides are
//! ordinary separate processes, exactly like two m3ipc endpoints.

use super::shm::{SharedPage, ShmFile};
use crate::child;
use crate::error::{CliError, Result};
use crate::measure::{self, Plan};
use crate::placement::{CpuSet, Placement, current_cpu};
use crate::report::RunReport;
use crate::role::{self, ClientArgs, IDLE_LIMIT, STALL_LIMIT, ServerArgs};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// Cache line of the ball.
const BALL: usize = 0;
/// Cache line of the server's CPU set.
const SERVER_CPUS: usize = 1;
/// The value that ends the game (odd, so it is checked before "odd means a request").
const STOP: u32 = u32::MAX;

/// How a side waits for the ball to change.
pub trait Waiter {
    /// Check the clock every this many [`Waiter::wait`] calls that saw no change.
    const CHECK_EVERY: u32;
    /// Wait a little while `word` still holds `seen`; may return at any time, callers re-check.
    fn wait(&mut self, word: &AtomicU32, seen: u32);
    /// Tell a side that may be waiting on `word` that it changed.
    fn wake(&mut self, word: &AtomicU32);
}

/// Counts waits that saw nothing and says when waiting has lasted too long, reading the clock
/// only every `W::CHECK_EVERY` waits.
struct Patience {
    calls: u32,
    every: u32,
    since: Option<Instant>,
}

impl Patience {
    fn new(every: u32) -> Patience {
        Patience {
            calls: 0,
            every: every.max(1),
            since: None,
        }
    }

    /// Progress was made: start counting again.
    fn reset(&mut self) {
        self.calls = 0;
        self.since = None;
    }

    /// One more wait without progress; true once `limit` has passed since the first clock read.
    fn exhausted(&mut self, limit: std::time::Duration) -> bool {
        self.calls = self.calls.wrapping_add(1);
        if !self.calls.is_multiple_of(self.every) {
            return false;
        }
        let now = Instant::now();
        now - *self.since.get_or_insert(now) > limit
    }
}

fn record_cpu(cpus: &AtomicU64) {
    let mut set = CpuSet::default();
    if let Some(cpu) = current_cpu() {
        set.insert(cpu);
    }
    cpus.fetch_or(set.0, Ordering::Relaxed);
}

/// The server role: return every ball until [`STOP`].
pub fn serve<W: Waiter>(args: &ServerArgs, waiter: &mut W) -> Result<()> {
    role::start(args.cpu)?;
    let page = SharedPage::open(&args.target)?;
    let ball = page.u32_at(BALL);
    let cpus = page.u64_at(SERVER_CPUS);
    record_cpu(cpus);
    let mut patience = Patience::new(W::CHECK_EVERY);
    let mut answered: u64 = 0;
    loop {
        let v = ball.load(Ordering::Acquire);
        if v == STOP {
            record_cpu(cpus);
            return Ok(());
        }
        if v & 1 == 1 {
            ball.store(v.wrapping_add(1), Ordering::Release);
            waiter.wake(ball);
            answered += 1;
            if answered.is_multiple_of(4096) {
                record_cpu(cpus);
            }
            patience.reset();
            continue;
        }
        waiter.wait(ball, v);
        if patience.exhausted(IDLE_LIMIT) {
            return Err(CliError::new(format!(
                "no ball for {} s",
                IDLE_LIMIT.as_secs()
            )));
        }
    }
}

/// The client role: play the timed rounds, then [`STOP`], and print the report.
pub fn client<W: Waiter>(args: &ClientArgs, waiter: &mut W) -> Result<()> {
    role::start(args.cpu)?;
    let plan = args.plan();
    if plan.count.saturating_add(plan.warmup) >= (u32::MAX / 2) as u64 {
        return Err(CliError::new("too many round trips for a 32-bit ball"));
    }
    let page = SharedPage::open(&args.target)?;
    let ball = page.u32_at(BALL);
    let mut next: u32 = 1;
    let mut patience = Patience::new(W::CHECK_EVERY);
    let measured = measure::run(&plan, || {
        ball.store(next, Ordering::Release);
        waiter.wake(ball);
        let want = next + 1;
        patience.reset();
        loop {
            let v = ball.load(Ordering::Acquire);
            if v == want {
                break;
            }
            waiter.wait(ball, v);
            if patience.exhausted(STALL_LIMIT) {
                return Err(CliError::new(format!(
                    "the server did not answer for {} s",
                    STALL_LIMIT.as_secs()
                )));
            }
        }
        next += 2;
        Ok(())
    })?;
    let server_cpus = CpuSet(page.u64_at(SERVER_CPUS).load(Ordering::Relaxed));
    ball.store(STOP, Ordering::Release);
    waiter.wake(ball);
    println!("{}", RunReport::new(measured, server_cpus).to_line());
    Ok(())
}

/// Run one raw ping-pong: a fresh page file named after `kind` in the region directory, the
/// server role `server_cmd` and the client role `client_cmd`; the file is removed afterwards.
pub fn run_pair(
    kind: &str,
    server_cmd: &str,
    client_cmd: &str,
    plan: &Plan,
    placement: Placement,
) -> Result<RunReport> {
    let (server_cpu, client_cpu) = placement.cpus()?;
    let file = ShmFile::create(
        &m3ipc::region_dir(),
        &format!("dvs-{kind}-{}", std::process::id()),
    )?;
    let target = file.path().display().to_string();
    let server = ServerArgs {
        target: target.clone(),
        cpu: server_cpu,
    }
    .to_args(server_cmd);
    let client = ClientArgs::new(&target, plan, client_cpu).to_args(client_cmd);
    child::run_pair(&server, &client, child::client_timeout(plan.count))
}
