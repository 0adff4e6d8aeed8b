//! The scheduler: run ready tasks in FIFO order; when none is ready, fire due timers, look at
//! the shared doorbell, and sleep on it until the nearest timer or the fabric's liveness tick.
//!
//! The doorbell protocol (see `m3ipc`'s doorbell): every event that can end a task's wait from
//! outside the thread (a message posted to any of our slots, a notification, a reply to a fabric
//! call, a wakeup, the host's stop) bumps the shared doorbell's ring count *after* it is visible.
//! A task that waits records the count it saw before its last look; the scheduler resumes every
//! such task whose count differs from the current one, and sleeps only on the count that every
//! waiting task has seen, which the futex compares atomically with the word. So no event is
//! missed while the word is sound, and a busy unikernel makes no system call at all.
//!
//! The word lies in the region, where any process may scribble on it, so it is not trusted
//! alone: the sleep never lasts longer than the fabric's [`LIVENESS_TICK`] (a wake lost to a
//! scribble costs at most one tick), and after every sleep every task that waits on the fabric
//! looks at its mailbox, inbox or envelope again, whatever the count says (a count written back
//! to the value a task saw must not hide a message). A stray sleeping bit is cleared at every
//! look, and a count that moved back forces the same full look. The stop is asked through the
//! host's private flags ([`Stopper`]), which every look reads: its ring through the region only
//! makes it prompt, a scribble cannot make it lost. The cost of all this is an idle scheduler
//! that wakes once a tick; the hot path is unchanged.
//!
//! Once a task watches a socket, the sleep waits on the doorbell and on the sockets in one call
//! (`io`: an io_uring futex wait beside a poll of the tasks' epoll set), and every look also
//! hands the sockets' events to their tasks.

use super::ctx::Suspend;
use super::kernel::{Kernel, Tcb, Wait};
use super::timer::TimerId;
use crate::runner::{ServerExit, Stopper};
use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult};
use m3ipc::wait::{ADAPTIVE_SPIN, LIVENESS_TICK, Unpark};
use std::time::Instant;

/// A task's coroutine: resumed with how its fabric call goes on, it yields why it switched; its
/// server's result goes into the kernel's `exits` before it returns (so that what a resume
/// returns is two bytes).
pub(crate) type TaskCoroutine = Coroutine<Unpark, Suspend, (), DefaultStack>;

/// How many tasks run between two looks at the doorbell while tasks keep each other busy, so
/// that outside callers are not starved by an internal storm.
const LOOK_EVERY: u32 = 64;

/// Hand-offs a task may run at once on its own turn before the scheduler takes control back
/// (to look at timers, the doorbell and the stop): a bound on how long two tasks that keep
/// talking to each other can keep everyone else waiting.
pub(crate) const INLINE_BUDGET: u32 = 32;

/// Run until every task has returned; the exits, in task order.
pub(crate) fn run(k: &Kernel, stopper: &Stopper) -> Vec<ServerExit> {
    let previous_hook = m3ipc::wait::set_park_hook(Some(super::ctx::park_hook));
    let mut dispatched: u32 = 0;
    while k.serving_any() {
        // Run everything that is ready.
        loop {
            let next = k.ready.borrow_mut().pop_front();
            // None once the grace is over: every local call then takes the general path,
            // which refuses it.
            k.inline_left
                .set(if k.stopping.get() { 0 } else { INLINE_BUDGET });
            let Some((t, task)) = next.and_then(|t| Some((t, k.tasks.get(t)?))) else {
                break;
            };
            let cancel = task.cancel.replace(false);
            dispatched = dispatched.wrapping_add(1);
            if dispatched.is_multiple_of(LOOK_EVERY) {
                fire_timers(k);
                look(k, stopper);
                super::io::harvest(k);
            }
            run_task(
                k,
                t,
                task,
                if cancel {
                    Unpark::Cancel
                } else {
                    Unpark::Check
                },
            );
        }
        if !k.serving_any() {
            break;
        }
        // Nothing ready: timers, then the doorbell, then sleep.
        let now = fire_timers(k);
        let rings = look(k, stopper);
        super::io::harvest_if_signalled(k);
        if !k.ready.borrow().is_empty() {
            continue;
        }
        let next_timer =
            k.st.borrow_mut()
                .timers
                .next(|task, id| armed(&k.tasks, task, id));
        if spin_for_outside_peer(k, rings, now, next_timer) {
            continue;
        }
        let timeout = next_timer.map_or(LIVENESS_TICK, |at| {
            at.saturating_duration_since(Instant::now())
                .min(LIVENESS_TICK)
        });
        if timeout.is_zero() {
            continue;
        }
        for p in &k.procs {
            p.set_running(false);
        }
        if let Some(host) = k.procs.first() {
            super::io::sleep(k, host, rings, timeout);
        }
        for p in &k.procs {
            p.set_running(true);
        }
        // Whatever ended the sleep (a ring, the tick, a timer), the next look is a full one.
        let mut st = k.st.borrow_mut();
        st.recheck = true;
        // The full looks re-arm the timers of the tasks they resume: drop the old entries.
        let limit = 64 + 4 * k.tasks.len();
        st.timers
            .compact(limit, |task, id| armed(&k.tasks, task, id));
    }
    m3ipc::wait::set_park_hook(previous_hook);
    k.exits.borrow_mut().drain(..).flatten().collect()
}

/// Resume task `t` (whose block is `task`) until it switches away or returns, and record why.
/// Called by the scheduler, and by a task that hands a message to `t` and runs it at once (the
/// caller is then `t`'s parent: `t` switches back to it). Inlined: it is half the hot path of
/// a hand-off that runs its receiver at once; its rare ends are out of line.
#[inline(always)]
pub(crate) fn run_task(k: &Kernel, t: usize, task: &Tcb, input: Unpark) {
    // A task on the chain that runs now is borrowed: it cannot be resumed again.
    let Ok(mut slot) = task.co.try_borrow_mut() else {
        return;
    };
    let Some(co) = slot.as_mut() else {
        return;
    };
    task.running.set(true);
    k.chain.set(k.chain.get() + 1);
    let r = co.resume(input);
    task.running.set(false);
    k.chain.set(k.chain.get() - 1);
    match r {
        CoroutineResult::Yield(Suspend::Blocked) => {}
        CoroutineResult::Yield(Suspend::Parked) => parked(k, t, task),
        CoroutineResult::Return(()) => {
            *slot = None;
            drop(slot);
            ended(k, t, task);
        }
    }
}

/// Task `t`'s fabric call would sleep: wait for the doorbell or its timer.
#[inline(never)]
fn parked(k: &Kernel, t: usize, task: &Tcb) {
    // Always there (set by the park hook before it switches); if it were not, a timer due now
    // resumes the call, which checks again.
    let park = super::ctx::take_parked().unwrap_or(m3ipc::wait::Park {
        rings: 0,
        timeout: std::time::Duration::ZERO,
    });
    let at = Instant::now() + park.timeout;
    k.block(t, Wait::Fabric { rings: park.rings }, Some(at));
    if k.stopping.get() {
        task.cancel.set(true);
        k.wake(t, None);
    }
}

/// Task `t`'s server returned (its result is in `exits`): report a lost slot, tell those who
/// wait on it.
#[inline(never)]
fn ended(k: &Kernel, t: usize, task: &Tcb) {
    if task.lost.get()
        && let Some(Some(exit)) = k.exits.borrow_mut().get_mut(t)
    {
        let then = exit
            .result
            .as_ref()
            .err()
            .map_or(String::new(), |e| format!("; then: {e}"));
        exit.result = Err(format!(
            "its slot was taken from it (unbound or written over by another process), \
             so MUK2 stopped in order{then}"
        ));
    }
    k.finish(t);
}

/// Look at the doorbell: resume every task whose wait an outside event may have ended (every
/// task that waits on the fabric after a sleep, or when the count moved back); carry the stop on
/// when it was asked (the next task asked to finish, or every wait ended once the grace is
/// over). Returns the ring count it looked at.
fn look(k: &Kernel, stopper: &Stopper) -> u32 {
    // Awake, and no task between its prepare and its park: a sleeping bit now is a scribble.
    if let Some(host) = k.procs.first() {
        host.doorbell_repair();
    }
    let rings = k.rings();
    let full = {
        let mut st = k.st.borrow_mut();
        let moved_back = st
            .last_rings
            .is_some_and(|before| m3ipc::layout::rings_moved_back(before, rings));
        st.last_rings = Some(rings);
        std::mem::take(&mut st.recheck) || moved_back
    };
    k.publish();
    if stopper.hard() && !k.stopping.get() {
        k.stop_all();
    } else if stopper.stopping() && !k.stopping.get() {
        k.ask_next(stopper.order());
    }
    for (t, task) in k.tasks.iter().enumerate() {
        let stale = match task.wait.get() {
            Wait::Receive { .. } => full || task.looked_at.get() != Some(rings),
            Wait::Fabric { rings: seen } => full || seen != rings,
            _ => false,
        };
        if stale {
            // The task's next look goes to the fabric, whatever the count.
            task.looked_at.set(None);
            k.wake(t, None);
        }
    }
    rings
}

/// End the waits whose timers are due: a receive or send times out, a sleep ends, a fabric call
/// checks again (its deadline or its liveness tick).
fn fire_timers(k: &Kernel) -> Instant {
    let now = Instant::now();
    loop {
        let due =
            k.st.borrow_mut()
                .timers
                .pop_due(now, |task, id| armed(&k.tasks, task, id));
        let Some(t) = due else { break };
        let outcome = match k.tasks.get(t).map(|task| task.wait.get()) {
            Some(Wait::Sleep) => Some(Ok(())),
            Some(Wait::Fabric { .. } | Wait::Nothing) | None => None,
            _ => Some(Err(m3ipc::Errno::EDVSTIMEDOUT)),
        };
        k.wake(t, outcome);
    }
    now
}

/// Before sleeping: while the outside process we last heard from runs on another CPU, watch
/// the doorbell for up to the fabric's adaptive spin, as a fabric receiver would (a futex wake
/// across cores costs ~30 µs here; the next request often comes sooner). Returns whether it rang.
fn spin_for_outside_peer(
    k: &Kernel,
    rings: u32,
    start: Instant,
    next_timer: Option<Instant>,
) -> bool {
    let (peer, spun) = {
        let st = k.st.borrow();
        (st.last_outside_peer, st.spun_at == Some(rings))
    };
    let Some((t, ep)) = peer else {
        return false;
    };
    if spun {
        // A task just spun in the fabric for this peer: sleep now.
        return false;
    }
    let Some(p) = k.procs.get(t) else {
        return false;
    };
    if !p.runs_elsewhere(ep) {
        return false;
    }
    let until = next_timer.map_or(start + ADAPTIVE_SPIN, |t| t.min(start + ADAPTIVE_SPIN));
    let mut spins: u32 = 0;
    loop {
        if k.rings() != rings {
            return true;
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) && Instant::now() >= until {
            return false;
        }
        core::hint::spin_loop();
    }
}

/// Whether timer `id` is the one `task` has armed now (others were cancelled).
fn armed(tasks: &[Tcb], task: usize, id: TimerId) -> bool {
    id != 0 && tasks.get(task).is_some_and(|t| t.timer.get() == id)
}
