//! Socket waits in MUK2: one epoll set for every task's sockets, and the scheduler's one sleep
//! on the doorbell and that set together, in one `io_uring_enter`.
//!
//! # Why io_uring (and epoll inside it)
//!
//! Outside processes wake MUK2 by `FUTEX_WAKE` on the doorbell word in the region. epoll
//! cannot wait on a futex, so "epoll plus an eventfd" would need every outside waker (any
//! process of the DC, the C library included) to learn to signal an eventfd of ours, or a helper
//! thread that sleeps on the futex and signals it: a thread and two wakes per ring. io_uring
//! (Linux ≥ 6.7) has `IORING_OP_FUTEX_WAIT`, a futex wait that completes like any other
//! operation, beside `IORING_OP_POLL_ADD`; one `io_uring_enter` with a timeout then waits for
//! whichever comes first: a ring on the doorbell, a socket, or the time. No helper thread, no
//! poll interval. The sockets themselves are kept in an epoll set (edge-triggered, registered
//! once per socket), and the ring polls only the set's descriptor: the many-socket bookkeeping
//! stays in epoll, where it is cheap, and the ring holds at most two operations.
//!
//! Both operations stay armed across sleeps: the futex wait is kept while the doorbell's
//! expected word is unchanged (a ring then completes it), cancelled and re-armed when it moved;
//! the poll is re-armed after it completed. The futex wait is shared (not `FUTEX2_PRIVATE`):
//! the wakers are other processes.
//!
//! A MUK2 that never watches a socket makes no io_uring or epoll system call at all: the set
//! and the ring are made at the first [`crate::Ipc::watch_fd`], and the scheduler sleeps on the
//! plain futex until then. Once the ring exists every sleep goes through it (a futex wait left
//! armed in the ring could otherwise take a `FUTEX_WAKE` meant for a plain sleep).
//!
//! A task waiting in [`crate::Ipc::wait_io`] is a `Wait::Sleep` (with its timeout as the timer)
//! that a socket event may end early: the stop, the timers and the deadlock rules treat it as a
//! sleep.

use super::kernel::{Kernel, Wait};
use crate::sockets::{Epoll, IoEvent, MAX_TOKEN};
use io_uring::{IoUring, opcode, register::Restriction, types};
use m3ipc::{Errno, Proc, Result};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// How the scheduler's sleeps with sockets ended, over the whole process (every MUK2 host in
/// it), for IS and the tests: proof that a request to a sleeping MUK2 wakes it by its socket,
/// not by a timer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoSleepStats {
    /// Sleeps made through the ring (with sockets watched).
    pub sleeps: u64,
    /// Of those, ended by a watched socket.
    pub by_socket: u64,
    /// Ended by a ring of the doorbell.
    pub by_doorbell: u64,
    /// Ended by the timeout (a timer, or the liveness tick) with nothing else.
    pub by_timeout: u64,
    /// Socket events handed to tasks.
    pub events: u64,
}

// Relaxed everywhere: statistics, read as a snapshot; no other memory hangs on them.
static SLEEPS: AtomicU64 = AtomicU64::new(0);
static BY_SOCKET: AtomicU64 = AtomicU64::new(0);
static BY_DOORBELL: AtomicU64 = AtomicU64::new(0);
static BY_TIMEOUT: AtomicU64 = AtomicU64::new(0);
static EVENTS: AtomicU64 = AtomicU64::new(0);

/// The counters now.
pub fn io_sleep_stats() -> IoSleepStats {
    IoSleepStats {
        sleeps: SLEEPS.load(Ordering::Relaxed),
        by_socket: BY_SOCKET.load(Ordering::Relaxed),
        by_doorbell: BY_DOORBELL.load(Ordering::Relaxed),
        by_timeout: BY_TIMEOUT.load(Ordering::Relaxed),
        events: EVENTS.load(Ordering::Relaxed),
    }
}

/// `user_data` of the ring's operations: the poll of the epoll set, and the futex wait (its
/// generation in the low bits, so that the completion of a cancelled one is not mistaken for
/// the armed one's).
const POLL: u64 = 1 << 62;
const FUTEX: u64 = 1 << 61;
const CANCEL: u64 = 1 << 60;
/// `FUTEX2_SIZE_U32`: a 32-bit futex word, shared between processes.
const FUTEX2_SIZE_U32: u32 = 0x02;

/// The ring and what is armed in it.
struct Ring {
    ring: IoUring,
    /// The armed futex wait: its expected word and generation.
    futex: Option<(u32, u64)>,
    generation: u64,
    /// The poll of the epoll set is armed.
    polling: bool,
}

/// Every task's sockets and the events not yet taken.
#[derive(Default)]
pub(crate) struct Reactor {
    epoll: Option<Epoll>,
    ring: Option<Ring>,
    /// Watched sockets, all tasks together.
    watched: usize,
    /// Per task: events not yet taken by its `wait_io`.
    pending: Vec<Vec<IoEvent>>,
    /// Per task: it waits in `wait_io`.
    waiting: Vec<bool>,
    /// The set may hold events not yet harvested: a socket was added, or the ring's poll of the
    /// set completed. While it is false the set is empty as far as we know, and the scheduler
    /// goes to sleep without looking: the ring's poll, armed for every sleep, ends the sleep at
    /// once if events came meanwhile. One `epoll_wait` fewer per sleep.
    signalled: bool,
}

impl Reactor {
    pub(crate) fn new(tasks: usize) -> Reactor {
        Reactor {
            pending: vec![Vec::new(); tasks],
            waiting: vec![false; tasks],
            ..Reactor::default()
        }
    }

    /// Watch `fd` for task `t` with its `token`: the set and the ring are made at the first.
    pub(crate) fn watch(&mut self, t: usize, fd: RawFd, token: u64) -> Result<()> {
        if token > MAX_TOKEN {
            return Err(Errno::EDVSBADVALUE);
        }
        if self.epoll.is_none() {
            self.epoll = Some(Epoll::new()?);
        }
        if self.ring.is_none() {
            let ring = restricted_ring()?;
            self.ring = Some(Ring {
                ring,
                futex: None,
                generation: 0,
                polling: false,
            });
        }
        let ep = self.epoll.as_ref().ok_or(Errno::EDVSGENERIC)?;
        ep.add(fd, (t as u64) << 48 | token)?;
        self.watched += 1;
        self.signalled = true;
        Ok(())
    }

    /// Stop watching `fd`.
    pub(crate) fn forget(&mut self, fd: RawFd) -> Result<()> {
        let ep = self.epoll.as_ref().ok_or(Errno::EDVSBADF)?;
        ep.del(fd)?;
        self.watched = self.watched.saturating_sub(1);
        Ok(())
    }

    /// Task `t`'s events, taken.
    pub(crate) fn take(&mut self, t: usize, out: &mut Vec<IoEvent>) {
        if let Some(p) = self.pending.get_mut(t) {
            out.append(p);
        }
    }

    /// Task `t` waits (or no longer waits) in `wait_io`.
    pub(crate) fn set_waiting(&mut self, t: usize, waiting: bool) {
        if let Some(w) = self.waiting.get_mut(t) {
            *w = waiting;
        }
    }

    /// Whether task `t` has events waiting.
    pub(crate) fn has_events(&self, t: usize) -> bool {
        self.pending.get(t).is_some_and(|p| !p.is_empty())
    }
}

/// [`harvest`], only if the set may hold events (see `Reactor::signalled`): the scheduler's
/// look before it sleeps and after it woke.
pub(crate) fn harvest_if_signalled(k: &Kernel) {
    if k.io.borrow().signalled {
        harvest(k);
    }
}

/// Look at the epoll set (no wait) and hand its events to their tasks, waking those that wait
/// in `wait_io`. No system call while no socket is watched.
pub(crate) fn harvest(k: &Kernel) {
    let mut woken = Vec::new();
    {
        let mut r = k.io.borrow_mut();
        if r.watched == 0 {
            return;
        }
        r.signalled = false;
        let Reactor {
            epoll,
            pending,
            waiting,
            ..
        } = &mut *r;
        let Some(ep) = epoll.as_ref() else { return };
        let n = ep.wait(0, |data, readable, writable| {
            let t = (data >> 48) as usize;
            if let Some(p) = pending.get_mut(t) {
                p.push(IoEvent {
                    token: data & MAX_TOKEN,
                    readable,
                    writable,
                });
                if waiting.get(t).copied().unwrap_or(false) {
                    woken.push(t);
                }
            }
        });
        EVENTS.fetch_add(n as u64, Ordering::Relaxed);
    }
    if woken.is_empty() {
        return;
    }
    for t in woken {
        if k.tasks
            .get(t)
            .is_some_and(|task| task.wait.get() == Wait::Sleep)
        {
            k.wake(t, Some(Ok(())));
        }
    }
}

/// The scheduler's sleep: on the doorbell of `host` (while its count is `rings`) and, once a
/// socket was ever watched, on the epoll set too, for at most `timeout`.
pub(crate) fn sleep(k: &Kernel, host: &Proc, rings: u32, timeout: Duration) {
    let mut r = k.io.borrow_mut();
    let Reactor {
        epoll,
        ring,
        signalled,
        ..
    } = &mut *r;
    let (Some(ep), Some(ring)) = (epoll.as_ref(), ring.as_mut()) else {
        drop(r);
        host.doorbell_wait(rings, Some(timeout));
        return;
    };
    host.doorbell_wait_by(rings, Some(timeout), |word, expected, t| {
        if ring_wait(ring, ep.raw(), word, expected, t) {
            *signalled = true;
        }
    });
    // A sleep that did not happen (the count moved) or was cut short may hide a poll
    // completion still in the queue: look once more to be sure.
    if ring.ring.completion().is_empty() {
        return;
    }
    *signalled = true;
}

/// A ring that can carry only the three operations the sleep submits (a futex wait, a poll of
/// the epoll set, a cancel). seccomp never sees what a ring does, so an unrestricted ring would
/// let a compromised server open files or sockets through it under the sandbox; the kernel
/// refuses any other operation on this one. The restrictions are registered while the ring is
/// still disabled, then the ring is enabled: no later registration can widen them.
fn restricted_ring() -> Result<IoUring> {
    let ring = IoUring::builder()
        .setup_r_disabled()
        .build(8)
        .map_err(|_| Errno::EDVSNOMEM)?;
    let mut allowed = [
        Restriction::sqe_op(opcode::FutexWait::CODE),
        Restriction::sqe_op(opcode::PollAdd::CODE),
        Restriction::sqe_op(opcode::AsyncCancel::CODE),
    ];
    let submitter = ring.submitter();
    submitter
        .register_restrictions(&mut allowed)
        .and_then(|()| submitter.register_enable_rings())
        .map_err(|_| Errno::EDVSGENERIC)?;
    Ok(ring)
}

/// One `io_uring_enter`: arm what is not armed (the futex wait on `word` while it holds
/// `expected`, the poll of `epfd`), wait for the first completion or `timeout`, reap. Returns
/// whether the poll of the set completed (events wait there).
fn ring_wait(
    r: &mut Ring,
    epfd: RawFd,
    word: &AtomicU32,
    expected: u32,
    timeout: Duration,
) -> bool {
    SLEEPS.fetch_add(1, Ordering::Relaxed);
    let mut sq_entries = Vec::with_capacity(3);
    match r.futex {
        Some((e, _)) if e == expected => {}
        old => {
            if let Some((_, g)) = old {
                sq_entries.push(
                    opcode::AsyncCancel::new(FUTEX | g)
                        .build()
                        .user_data(CANCEL),
                );
            }
            r.generation = (r.generation + 1) & 0xffff_ffff;
            let g = r.generation;
            sq_entries.push(
                opcode::FutexWait::new(
                    word.as_ptr().cast_const(),
                    u64::from(expected),
                    u64::from(u32::MAX),
                    FUTEX2_SIZE_U32,
                )
                .build()
                .user_data(FUTEX | g),
            );
            r.futex = Some((expected, g));
        }
    }
    if !r.polling {
        sq_entries.push(
            opcode::PollAdd::new(types::Fd(epfd), libc::POLLIN as u32)
                .build()
                .user_data(POLL),
        );
        r.polling = true;
    }
    for e in &sq_entries {
        // SAFETY: the futex word lives in the region, mapped for as long as the DC handle of
        // the host's Proc, which outlives the scheduler and so this ring (dropping the ring
        // cancels what is still armed); the epoll descriptor is owned by the reactor, dropped
        // after the ring (field order of the kernel's reactor: the ring goes with it at the
        // scheduler's end). Nothing else is referenced.
        if unsafe { r.ring.submission().push(e) }.is_err() {
            // The queue (8 entries, at most 3 used) cannot be full; if it were, the next
            // sleep arms again.
            r.futex = None;
            r.polling = false;
        }
    }
    let ts = types::Timespec::new()
        .sec(timeout.as_secs())
        .nsec(timeout.subsec_nanos());
    let args = types::SubmitArgs::new().timespec(&ts);
    // ETIME (the timeout) and EINTR are normal ends; any other error ends this sleep early,
    // and the scheduler looks at everything again, as after any sleep.
    let _ = r.ring.submitter().submit_with_args(1, &args);
    let (mut socket, mut bell) = (false, false);
    let current = r.futex.map(|(_, g)| FUTEX | g);
    for cqe in r.ring.completion() {
        let ud = cqe.user_data();
        if ud == POLL {
            r.polling = false;
            socket = true;
        } else if Some(ud) == current {
            r.futex = None;
            bell = true;
        }
    }
    let counter = if socket {
        &BY_SOCKET
    } else if bell {
        &BY_DOORBELL
    } else {
        &BY_TIMEOUT
    };
    counter.fetch_add(1, Ordering::Relaxed);
    socket
}

/// `wait_io` of task `me`, run by its `CoroIpc`: take its events, or park as a sleep until an
/// event, `until`, or the stop.
pub(crate) fn wait(
    k: &Kernel,
    me: usize,
    out: &mut Vec<IoEvent>,
    until: Option<std::time::Instant>,
    suspend: impl FnOnce() -> Option<Result<()>>,
) -> Result<()> {
    if !k.io.borrow().has_events(me) {
        harvest(k);
    }
    if k.io.borrow().has_events(me) || until.is_some_and(|u| u <= std::time::Instant::now()) {
        k.io.borrow_mut().take(me, out);
        return Ok(());
    }
    k.block(me, Wait::Sleep, until);
    k.io.borrow_mut().set_waiting(me, true);
    let r = suspend();
    let mut io = k.io.borrow_mut();
    io.set_waiting(me, false);
    io.take(me, out);
    match r {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_refuses_any_other_operation() {
        let mut ring = restricted_ring().unwrap_or_else(|e| panic!("{e}"));
        // A no-op is harmless, and still not one of the three: the kernel must refuse it.
        let nop = opcode::Nop::new().build().user_data(7);
        // SAFETY: a no-op references no memory.
        unsafe { ring.submission().push(&nop) }.unwrap_or_else(|e| panic!("{e}"));
        ring.submit_and_wait(1).unwrap_or_else(|e| panic!("{e}"));
        let cqe = ring
            .completion()
            .next()
            .unwrap_or_else(|| panic!("no completion"));
        assert_eq!(cqe.user_data(), 7);
        assert_eq!(cqe.result(), -libc::EACCES);
    }
}
