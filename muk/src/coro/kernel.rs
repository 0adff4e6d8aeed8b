//! The state the coroutines share on their one thread: tasks, what each waits for, the ready
//! queue, the timers; and the rendezvous between two tasks, as MINIX's `proc.c` does it between
//! two processes, minus the kernel: copy the message into the receiver, make it ready.
//!
//! Everything here runs on the scheduler thread only, so plain `RefCell`/`Cell` do; the borrow
//! of the state never lives across a switch.

use super::scheduler::TaskCoroutine;
use super::timer::{TimerId, Timers};
use crate::host::{ServerExit, Stopper};
use m3ipc::{
    ANY, Endpoint, Errno, FLAG_RECEIVING, FLAG_SENDING, FLAG_SENDREC, Message, Proc, Result,
};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::Instant;

/// What a task waits for. The scheduler and the other tasks read it to decide who runs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Running, or in the ready queue.
    Nothing,
    /// In `receive(src)` (`requests_only`: `rcvrqst`); wakes on a hand-off, a doorbell ring (an
    /// outside message may have come), its timer, or the stop.
    Receive {
        /// Whom from (`ANY` for anyone).
        src: Endpoint,
        /// Whether notifications are ignored (`rcvrqst`).
        requests_only: bool,
    },
    /// Queued to send to task `dst`; `then_receive` for `sendrec`.
    Send {
        /// The destination task.
        dst: usize,
        /// `sendrec`: wait for the reply once taken.
        then_receive: bool,
    },
    /// In the receive half of a `sendrec` to task `from`.
    Reply {
        /// The server task.
        from: usize,
    },
    /// Inside a fabric call that would sleep: resume it when the doorbell's count is no longer
    /// `rings`, or at its timer.
    Fabric {
        /// The ring count the call saw last.
        rings: u32,
    },
    /// In `sleep`.
    Sleep,
}

/// One hosted server.
pub(crate) struct Task {
    /// Its endpoint.
    pub(crate) ep: Endpoint,
    /// What it waits for.
    pub(crate) wait: Wait,
    /// Its message: what it sends while queued, what it receives when handed one.
    pub(crate) msg: Message,
    /// How its wait ended, set by whoever ended it (`None`: look again).
    pub(crate) outcome: Option<Result<()>>,
    /// Tasks queued to send to it, oldest first.
    pub(crate) senders: VecDeque<usize>,
    /// The doorbell's count at its last look into the fabric.
    pub(crate) looked_at: Option<u32>,
    /// Its armed timer (0: none).
    pub(crate) timer: TimerId,
    /// Its fabric call is to give up (the host stops).
    pub(crate) cancel: bool,
    /// The stop asked it to finish: its receives and sleeps fail with `EDVSSHUTDOWN`; its
    /// calls to others still work until the grace is over.
    pub(crate) asked: bool,
    /// Hand-offs it sent and received that `dvs ps` has not been told of yet (see
    /// `State::flush_counts`).
    pub(crate) unflushed: (u64, u64),
    /// Its slot was taken from it (see `CoroIpc::lose_slot`): it no longer looks into the
    /// fabric, and its exit reports the loss.
    pub(crate) lost: bool,
    /// Its slot's flags may not show its wait yet (see `State::show_waits`).
    pub(crate) flags_stale: bool,
}

/// Everything the tasks share.
pub(crate) struct Kernel {
    /// Each task's slot, by task index. The first one's doorbell is the one all share.
    pub(crate) procs: Vec<Proc>,
    /// Each task's name.
    pub(crate) names: Vec<String>,
    /// The mutable part.
    pub(crate) st: RefCell<State>,
    /// Each task's coroutine, borrowed while it runs (so it cannot be resumed twice), `None`
    /// once its server returned.
    pub(crate) cos: Vec<RefCell<Option<TaskCoroutine>>>,
    /// How each server ended.
    pub(crate) exits: RefCell<Vec<Option<ServerExit>>>,
    /// The host's stop request (set from another thread).
    pub(crate) stopper: Stopper,
    /// Per task: it is on the chain of coroutines that run now (resumed and not yet switched
    /// away); a wake then only records the outcome, which it reads when control comes back.
    /// Outside the `RefCell`: set and cleared around every resume.
    pub(crate) running: Vec<Cell<bool>>,
    /// How many tasks are on that chain.
    pub(crate) chain: Cell<usize>,
    /// The tasks' sockets (see `io`).
    pub(crate) io: RefCell<super::io::Reactor>,
}

/// The mutable part of the kernel.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) tasks: Vec<Task>,
    /// Each task's endpoint while its server runs, `NONE` once it returned: whether a task
    /// still serves, in a dense array (see `local`).
    pub(crate) serving: Vec<Endpoint>,
    pub(crate) ready: VecDeque<usize>,
    pub(crate) timers: Timers,
    pub(crate) stopping: bool,
    /// Hand-offs that may still run their receiver at once, on the sender's turn, before the
    /// scheduler gets control back (see `ctx::CoroIpc::send_local`).
    pub(crate) inline_left: u32,
    /// The outside endpoint a task last received from, and that task: while that peer runs on
    /// another CPU, an idle scheduler spins a little before it sleeps.
    pub(crate) last_outside_peer: Option<(usize, Endpoint)>,
    /// The ring count at which a task last spun for an outside peer (see
    /// `Kernel::spin_instead`): no task spins again before something new rings.
    pub(crate) spun_at: Option<u32>,
    /// The ring count of the scheduler's last look (a count that moved back was written over).
    pub(crate) last_rings: Option<u32>,
    /// The next look resumes every task that waits on the fabric, whatever the count says
    /// (set after every sleep: the count may have been written over).
    pub(crate) recheck: bool,
    /// Some task's `flags_stale` is set.
    pub(crate) flags_stale: bool,
}

impl Kernel {
    pub(crate) fn new(procs: Vec<Proc>, names: Vec<String>, stopper: Stopper) -> Kernel {
        let serving = procs.iter().map(Proc::endpoint).collect();
        let tasks = procs
            .iter()
            .map(|p| Task {
                ep: p.endpoint(),
                wait: Wait::Nothing,
                msg: Message::default(),
                outcome: None,
                senders: VecDeque::new(),
                looked_at: None,
                timer: 0,
                cancel: false,
                asked: false,
                unflushed: (0, 0),
                lost: false,
                flags_stale: false,
            })
            .collect();
        let ready = (0..procs.len()).collect();
        let n = procs.len();
        Kernel {
            procs,
            names,
            st: RefCell::new(State {
                serving,
                tasks,
                ready,
                ..State::default()
            }),
            cos: (0..n).map(|_| RefCell::new(None)).collect(),
            exits: RefCell::new((0..n).map(|_| None).collect()),
            stopper,
            running: (0..n).map(|_| Cell::new(false)).collect(),
            chain: Cell::new(0),
            io: RefCell::new(super::io::Reactor::new(n)),
        }
    }

    /// Whether task `t`, about to block in a receive, should rather spin in the fabric's own
    /// receive (its inbox open to a direct hand-off, as a process that waits in the fabric
    /// does): nothing else can run (no task ready, none below it on the chain), its last
    /// message came from an outside process that runs on another CPU, and no spin was tried
    /// since the doorbell last rang. Marks the spin as tried.
    pub(crate) fn spin_instead(&self, st: &mut State, t: usize, src: Endpoint, rings: u32) -> bool {
        if !st.ready.is_empty() || self.chain.get() != 1 || st.spun_at == Some(rings) {
            return false;
        }
        let Some((last, peer)) = st.last_outside_peer else {
            return false;
        };
        if last != t || (src != ANY && src != peer) {
            return false;
        }
        if !self.procs.get(t).is_some_and(|p| p.runs_elsewhere(peer)) {
            return false;
        }
        st.spun_at = Some(rings);
        true
    }

    /// The shared doorbell's count with its lookups done once (see [`m3ipc::RingCount`]).
    pub(crate) fn ring_count(&self) -> m3ipc::RingCount<'_> {
        self.procs
            .first()
            .map_or_else(m3ipc::RingCount::default, Proc::ring_count)
    }

    /// The ring count of the doorbell every task shares.
    pub(crate) fn rings(&self) -> u32 {
        self.procs.first().map_or(0, Proc::doorbell_rings)
    }
}

impl State {
    /// Whether any task's server still runs.
    pub(crate) fn serving_any(&self) -> bool {
        self.serving.iter().any(|&e| e != m3ipc::NONE)
    }

    /// The task bound at `ep`, if it is one of ours and still serving.
    pub(crate) fn local(&self, ep: Endpoint) -> Option<usize> {
        // A dense array, not the tasks: this runs on every call.
        self.serving.iter().position(|&e| e == ep)
    }

    /// Would task `me` blocking on task `dst` close a cycle of blocked tasks? (MINIX's deadlock
    /// check, over the tasks of this unikernel; a cycle through an outside process is the
    /// fabric's to see.)
    pub(crate) fn deadlocks(&self, me: usize, dst: usize) -> bool {
        let mut cur = dst;
        for _ in 0..self.tasks.len() {
            if cur == me {
                return true;
            }
            cur = match self.tasks.get(cur).map(|t| t.wait) {
                Some(Wait::Send { dst, .. }) => dst,
                Some(Wait::Reply { from }) => from,
                _ => return false,
            };
        }
        cur == me
    }

    /// Whether task `t` waits in a receive that a message from `from` satisfies.
    pub(crate) fn receives_from(&self, t: usize, from: Endpoint) -> bool {
        matches!(self.tasks.get(t).map(|t| t.wait),
            Some(Wait::Receive { src, .. }) if src == ANY || src == from)
    }

    /// End task `t`'s wait with `outcome` and queue it to run. Its timer is cancelled (lazily),
    /// and so is its place in a destination's queue.
    pub(crate) fn wake(&mut self, k: &Kernel, t: usize, outcome: Option<Result<()>>) {
        let Some(task) = self.tasks.get_mut(t) else {
            return;
        };
        let was = task.wait;
        task.wait = Wait::Nothing;
        task.timer = 0;
        task.outcome = outcome;
        // A fabric call owns the slot's flags while it runs: leave them to it.
        let shown = !matches!(was, Wait::Nothing | Wait::Fabric { .. });
        task.flags_stale |= shown;
        self.flags_stale |= shown;
        if let Wait::Send { dst, .. } = was
            && let Some(d) = self.tasks.get_mut(dst)
        {
            d.senders.retain(|&s| s != t);
        }
        if was != Wait::Nothing && !k.running.get(t).is_some_and(Cell::get) {
            self.ready.push_back(t);
        }
    }

    /// Put task `t` to wait (`wait` is not `Nothing`), with a timer when `deadline` is set.
    pub(crate) fn block(&mut self, t: usize, wait: Wait, deadline: Option<Instant>) {
        let id = deadline.map_or(0, |at| self.timers.arm(t, at));
        if let Some(task) = self.tasks.get_mut(t) {
            task.wait = wait;
            task.timer = id;
            task.outcome = None;
            if !matches!(wait, Wait::Fabric { .. }) {
                task.flags_stale = true;
                self.flags_stale = true;
            }
        }
    }

    /// Show every task's wait in its slot's flags (`dvs ps`, and `vcopy`'s check that a party
    /// is blocked in a receive), for the tasks whose wait changed since the last time.
    ///
    /// Lazily, not at every hand-off: the flags are region words that no one on this thread
    /// reads, and what another process reads of them races with the hand-offs anyway. Shown
    /// before every fabric call a task makes (so whoever hears from a task through the fabric
    /// sees the waits that were true when it spoke, as `vcopy` needs) and at every look of the
    /// scheduler (so before it sleeps, and every few dozen dispatches while it is busy).
    pub(crate) fn show_waits(&mut self, k: &Kernel) {
        if !std::mem::take(&mut self.flags_stale) {
            return;
        }
        for (t, p) in k.procs.iter().enumerate() {
            let Some(task) = self.tasks.get_mut(t) else {
                break;
            };
            if !std::mem::take(&mut task.flags_stale) {
                continue;
            }
            match task.wait {
                Wait::Receive { src, .. } => p.show_waiting(FLAG_RECEIVING, src),
                Wait::Reply { from } => p.show_waiting(FLAG_SENDREC, self.ep_of(from)),
                Wait::Send { .. } => p.show_waiting(FLAG_SENDING, m3ipc::NONE),
                Wait::Sleep | Wait::Nothing => p.show_running(),
                // The fabric call shows its own wait.
                Wait::Fabric { .. } => {}
            }
        }
    }

    pub(crate) fn ep_of(&self, t: usize) -> Endpoint {
        self.tasks.get(t).map_or(m3ipc::NONE, |t| t.ep)
    }

    /// Hand `m` from task `from` (whose endpoint is `from_ep`) to task `to`, which waits in a
    /// receive that accepts it (a `Receive`, or the `Reply` half of its `sendrec`): its wait
    /// ends with the message. It is queued to run unless it is on the chain that runs now, or
    /// `run_now` (the caller resumes it itself). Every hand-off between two tasks comes here:
    /// the hot path, so no more than that.
    #[allow(clippy::too_many_arguments)] // The hand-off's parties, all needed.
    #[inline]
    pub(crate) fn hand_off(
        &mut self,
        k: &Kernel,
        from: usize,
        from_ep: Endpoint,
        to: usize,
        m: &Message,
        run_now: bool,
    ) {
        if let Some(t) = self.tasks.get_mut(to) {
            t.msg = *m;
            t.msg.m_source = from_ep;
            t.wait = Wait::Nothing;
            t.timer = 0;
            t.outcome = Some(Ok(()));
            t.unflushed.1 += 1;
            t.flags_stale = true;
        }
        if let Some(f) = self.tasks.get_mut(from) {
            f.unflushed.0 += 1;
        }
        self.flags_stale = true;
        if !run_now && !k.running.get(to).is_some_and(Cell::get) {
            self.ready.push_back(to);
        }
    }

    /// Count a hand-off from task `from` to task `to` (told to the slots in batches).
    pub(crate) fn count(&mut self, from: usize, to: usize) {
        if let Some(t) = self.tasks.get_mut(from) {
            t.unflushed.0 += 1;
        }
        if let Some(t) = self.tasks.get_mut(to) {
            t.unflushed.1 += 1;
        }
    }

    /// Tell the slots what changed since the last time: the waits ([`State::show_waits`]) and
    /// the hand-offs' counts ([`State::flush_counts`]).
    pub(crate) fn publish(&mut self, k: &Kernel) {
        self.show_waits(k);
        self.flush_counts(k);
    }

    /// Tell the slots' counters what the hand-offs since the last flush were. Writing shared
    /// memory on every hand-off would cost more than the hand-off; the scheduler flushes every
    /// few dozen dispatches and before it sleeps, so `dvs ps` lags by at most that.
    pub(crate) fn flush_counts(&mut self, k: &Kernel) {
        for (t, p) in self.tasks.iter_mut().zip(&k.procs) {
            if t.unflushed != (0, 0) {
                p.add_counts(t.unflushed.0, t.unflushed.1);
                t.unflushed = (0, 0);
            }
        }
    }

    /// Task `t`'s server returned: tell everyone who waits on it, as an unbind would.
    pub(crate) fn finish(&mut self, k: &Kernel, t: usize) {
        let ep = self.ep_of(t);
        if let Some(e) = self.serving.get_mut(t)
            && *e != m3ipc::NONE
        {
            *e = m3ipc::NONE;
        }
        if let Some(task) = self.tasks.get_mut(t) {
            task.wait = Wait::Nothing;
            task.timer = 0;
        }
        for other in 0..self.tasks.len() {
            let why = match self.tasks[other].wait {
                Wait::Send { dst, .. } if dst == t => Errno::EDVSDSTDIED,
                Wait::Reply { from } if from == t => Errno::EDVSDEADSRCDST,
                Wait::Receive { src, .. } if src == ep => Errno::EDVSSRCDIED,
                _ => continue,
            };
            self.wake(k, other, Some(Err(why)));
        }
        self.publish(k);
        if let Some(p) = k.procs.get(t) {
            let _ = p.release();
        }
    }

    /// The orderly stop: ask the first task in `order` that still serves to finish (see
    /// [`crate::Stopper`]); it ends its receive or sleep with `EDVSSHUTDOWN`. Asked again at
    /// every look, so a task that went back to waiting after a look that found nothing is
    /// told again. The tasks after it keep serving (its last calls to them included).
    pub(crate) fn ask_next(&mut self, k: &Kernel, order: &[usize]) {
        let Some(&t) = order
            .iter()
            .find(|&&t| self.serving.get(t).is_some_and(|&e| e != m3ipc::NONE))
        else {
            return;
        };
        let Some(task) = self.tasks.get_mut(t) else {
            return;
        };
        task.asked = true;
        if matches!(task.wait, Wait::Receive { .. } | Wait::Sleep) {
            self.wake(k, t, Some(Err(Errno::EDVSSHUTDOWN)));
        }
    }

    /// The grace is over: end every wait with `EDVSSHUTDOWN` (a fabric call is cancelled).
    pub(crate) fn stop_all(&mut self, k: &Kernel) {
        self.stopping = true;
        for t in 0..self.tasks.len() {
            match self.tasks[t].wait {
                Wait::Nothing => {}
                Wait::Fabric { .. } => {
                    self.tasks[t].cancel = true;
                    self.wake(k, t, None);
                }
                _ => self.wake(k, t, Some(Err(Errno::EDVSSHUTDOWN))),
            }
        }
    }
}
