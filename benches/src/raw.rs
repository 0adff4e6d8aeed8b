//! The raw baselines: two processes playing ping-pong over one shared word, either spinning on
//! it ([`Waiter::Spin`]: no system call at all, the floor across two cores) or sleeping in `FUTEX_WAIT`
//! and waking each other with `FUTEX_WAKE` ([`Waiter::Futex`]: the cost of a kernel-mediated wakeup,
//! the floor on one core).
//!
//! The client puts the ball in the server's court by storing an odd number `2k+1`; the server
//! returns it by storing `2k+2`. The page is a file in the region directory, so both sides are
//! ordinary separate processes, exactly like two m3ipc endpoints. The peer is killed at the end.

use crate::clock::{Record, timed_loop};
use crate::error::{BenchError, Result};
use crate::peer::{self, Peer};
use crate::placement::Placement;
use crate::session::Session;
use crate::shm::{SharedPage, ShmFile};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Peer role: the server side of the ball.
pub const ROLE: &str = "ball-server";
/// Cache line of the ball.
const BALL: usize = 0;
/// Longest the client waits for the ball (a dead server).
const STALL: Duration = Duration::from_secs(10);
/// Longest one `FUTEX_WAIT`, so that a side re-checks its patience now and then.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// How a side waits for the ball.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiter {
    /// Busy-wait with the CPU's spin-loop hint.
    Spin,
    /// Sleep in `FUTEX_WAIT`; every move is followed by a `FUTEX_WAKE`.
    Futex,
}

impl Waiter {
    /// Name on command lines and in tables.
    pub fn label(self) -> &'static str {
        match self {
            Waiter::Spin => "spin",
            Waiter::Futex => "futex",
        }
    }

    fn parse(s: &str) -> Result<Waiter> {
        match s {
            "spin" => Ok(Waiter::Spin),
            "futex" => Ok(Waiter::Futex),
            _ => Err(BenchError::new(format!("unknown waiter {s:?}"))),
        }
    }

    /// Checks of the clock are this many waits apart (a clock read per spin would be the
    /// measurement).
    fn check_every(self) -> u32 {
        match self {
            Waiter::Spin => 1 << 16,
            Waiter::Futex => 1,
        }
    }

    fn wait(self, word: &AtomicU32, seen: u32) {
        match self {
            Waiter::Spin => core::hint::spin_loop(),
            Waiter::Futex => {
                let ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: WAIT_SLICE.subsec_nanos() as libc::c_long,
                };
                // SAFETY: `word` is a live, 4-byte aligned u32 in a shared mapping that
                // outlives the call, `ts` a valid timespec; FUTEX_WAIT only reads them. EAGAIN,
                // EINTR and ETIMEDOUT all just return: the caller re-checks the word.
                unsafe {
                    libc::syscall(
                        libc::SYS_futex,
                        word.as_ptr(),
                        libc::FUTEX_WAIT,
                        seen,
                        &ts as *const libc::timespec,
                        core::ptr::null::<u32>(),
                        0u32,
                    );
                }
            }
        }
    }

    fn wake(self, word: &AtomicU32) {
        if self == Waiter::Futex {
            // SAFETY: `word` is a live, 4-byte aligned u32; FUTEX_WAKE does not access memory
            // through the other arguments. A shared (not private) futex, as between processes.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAKE,
                    1i32,
                    core::ptr::null::<libc::timespec>(),
                    core::ptr::null::<u32>(),
                    0u32,
                );
            }
        }
    }
}

/// Wait until `word` holds `want`, at most `limit` (the clock is read every
/// `waiter.check_every()` waits).
fn await_value(waiter: Waiter, word: &AtomicU32, want: u32, limit: Duration) -> Result<()> {
    let mut calls: u32 = 0;
    let mut since: Option<Instant> = None;
    loop {
        // Acquire: pairs with the other side's Release store of the ball.
        let v = word.load(Ordering::Acquire);
        if v == want {
            return Ok(());
        }
        waiter.wait(word, v);
        calls = calls.wrapping_add(1);
        if calls.is_multiple_of(waiter.check_every()) {
            let now = Instant::now();
            if now - *since.get_or_insert(now) > limit {
                return Err(BenchError::new(format!(
                    "no move for {} s",
                    limit.as_secs()
                )));
            }
        }
    }
}

/// The peer role: return every ball, forever (the parent kills it).
pub fn serve(target: &str, extra: &[String]) -> Result<()> {
    let waiter = Waiter::parse(extra.first().map_or("", String::as_str))?;
    let page = SharedPage::open(target)?;
    let ball = page.u32_at(BALL);
    peer::ready()?;
    let mut next: u32 = 1;
    loop {
        // An hour without a ball: the parent is gone.
        await_value(waiter, ball, next, Duration::from_secs(3600))?;
        // Release: the client's Acquire load sees the move.
        ball.store(next.wrapping_add(1), Ordering::Release);
        waiter.wake(ball);
        next = next.wrapping_add(2);
    }
}

/// The client side, in the caller's process.
pub struct RawSession {
    waiter: Waiter,
    page: SharedPage,
    next: u32,
    // Dropped after the page: the peer dies, then the file goes.
    _peer: Peer,
    _file: ShmFile,
}

impl RawSession {
    /// Create the page, start the server peer, pin the caller.
    pub fn start(waiter: Waiter, placement: Placement) -> Result<RawSession> {
        let (server_cpu, client_cpu) = placement.cpus()?;
        let file = ShmFile::create(
            &m3ipc::region_dir(),
            &format!("bench-{}-{}", waiter.label(), std::process::id()),
        )?;
        let target = file.path().display().to_string();
        let page = SharedPage::open(&target)?;
        let peer = Peer::spawn(
            ROLE,
            &[target, peer::cpu_arg(server_cpu), waiter.label().into()],
        )?;
        if let Some(cpu) = client_cpu {
            crate::placement::pin(cpu)?;
        }
        Ok(RawSession {
            waiter,
            page,
            next: 1,
            _peer: peer,
            _file: file,
        })
    }
}

impl Session for RawSession {
    fn run(&mut self, n: u64, record: Record<'_>) -> Result<Duration> {
        let (waiter, ball) = (self.waiter, self.page.u32_at(BALL));
        let next = &mut self.next;
        timed_loop(n, record, || {
            // Release: the server's Acquire load sees the move.
            ball.store(*next, Ordering::Release);
            waiter.wake(ball);
            let want = next.wrapping_add(1);
            await_value(waiter, ball, want, STALL)?;
            *next = next.wrapping_add(2);
            Ok(())
        })
    }
}
