//! The state the coroutines share on their one thread: tasks, what each waits for, the ready
//! queue, the timers; and the rendezvous between two tasks, as MINIX's `proc.c` does it between
//! two processes, minus the kernel: copy the message into the receiver, make it ready.
//!
//! Everything here runs on the scheduler thread only, so plain `RefCell`/`Cell` do. What a
//! hand-off touches (a task's wait, outcome, message, counters) lies in each task's control
//! block ([`Tcb`]) as `Cell`s, reached without borrowing anything; the rarer state (timers, the
//! ready queue, the senders queued on a task) is in `RefCell`s whose borrows never live across
//! a switch.

use super::scheduler::TaskCoroutine;
use super::timer::{TimerId, Timers};
use crate::runner::{ServerExit, Stopper};
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

/// A task's control block: the per-task state of the hot path, in `Cell`s that every call
/// reaches without borrowing the kernel's state (one bounds check to find the block, none per
/// field).
pub(crate) struct Tcb {
    /// Its endpoint.
    pub(crate) ep: Endpoint,
    /// Its endpoint while its server runs, `NONE` once it returned.
    pub(crate) serving: Cell<Endpoint>,
    /// What it waits for.
    pub(crate) wait: Cell<Wait>,
    /// How its wait ended, set by whoever ended it (`None`: look again).
    pub(crate) outcome: Cell<Option<Result<()>>>,
    /// Its message: what it sends while queued, what it receives when handed one (unless
    /// `into` is set).
    pub(crate) msg: Cell<Message>,
    /// While it waits in a receive on its hot path: its caller's own message buffer, which a
    /// hand-off fills directly (one copy of the message instead of two). Null otherwise. See
    /// [`Inbox`].
    into: Cell<*mut Message>,
    /// Its armed timer (0: none).
    pub(crate) timer: Cell<TimerId>,
    /// Tasks queued to send to it, oldest first.
    pub(crate) senders: RefCell<VecDeque<usize>>,
    /// The doorbell's count at its last look into the fabric.
    pub(crate) looked_at: Cell<Option<u32>>,
    /// Its fabric call is to give up (the host stops).
    pub(crate) cancel: Cell<bool>,
    /// The stop asked it to finish: its receives and sleeps fail with `EDVSSHUTDOWN`; its
    /// calls to others still work until the grace is over.
    pub(crate) asked: Cell<bool>,
    /// Hand-offs it sent that `dvs ps` has not been told of yet (see `Kernel::flush_counts`).
    pub(crate) sent: Cell<u64>,
    /// Hand-offs it received that `dvs ps` has not been told of yet.
    pub(crate) received: Cell<u64>,
    /// Its slot was taken from it (see `CoroIpc::lose_slot`): it no longer looks into the
    /// fabric, and its exit reports the loss.
    pub(crate) lost: Cell<bool>,
    /// Its slot's flags may not show its wait yet (see `Kernel::show_waits`).
    pub(crate) flags_stale: Cell<bool>,
    /// It is on the chain of coroutines that run now (resumed and not yet switched away); a
    /// wake then only records the outcome, which it reads when control comes back.
    pub(crate) running: Cell<bool>,
    /// Its coroutine, borrowed while it runs (so it cannot be resumed twice), `None` once its
    /// server returned.
    pub(crate) co: RefCell<Option<TaskCoroutine>>,
}

impl Tcb {
    fn new(ep: Endpoint) -> Tcb {
        Tcb {
            ep,
            serving: Cell::new(ep),
            wait: Cell::new(Wait::Nothing),
            outcome: Cell::new(None),
            msg: Cell::new(Message::default()),
            into: Cell::new(core::ptr::null_mut()),
            timer: Cell::new(0),
            senders: RefCell::new(VecDeque::new()),
            looked_at: Cell::new(None),
            cancel: Cell::new(false),
            asked: Cell::new(false),
            sent: Cell::new(0),
            received: Cell::new(0),
            lost: Cell::new(false),
            flags_stale: Cell::new(false),
            running: Cell::new(false),
            co: RefCell::new(None),
        }
    }

    /// Whether it waits in a receive that a message from `from` satisfies.
    #[inline]
    pub(crate) fn receives_from(&self, from: Endpoint) -> bool {
        matches!(self.wait.get(), Wait::Receive { src, .. } if src == ANY || src == from)
    }
}

/// A task's own message buffer, shown to hand-offs (`Tcb::into`) for as long as this lives:
/// the task makes one while it waits in a receive whose message goes straight into `buf`, and
/// drops it (clearing the pointer, on an unwind too) before it touches `buf` again.
pub(crate) struct Inbox<'a> {
    tcb: &'a Tcb,
}

impl<'a> Inbox<'a> {
    /// Show `buf` to hand-offs to `tcb` until the inbox is dropped. The caller must not touch
    /// `buf` before that: the borrow of `buf` lasts as long as the inbox.
    #[inline]
    pub(crate) fn open(tcb: &'a Tcb, buf: &'a mut Message) -> Inbox<'a> {
        tcb.into.set(buf);
        Inbox { tcb }
    }
}

impl Drop for Inbox<'_> {
    #[inline]
    fn drop(&mut self) {
        self.tcb.into.set(core::ptr::null_mut());
    }
}

/// Everything the tasks share.
pub(crate) struct Kernel {
    /// Each task's slot, by task index. The first one's doorbell is the one all share.
    pub(crate) procs: Vec<Proc>,
    /// Each task's name.
    pub(crate) names: Vec<String>,
    /// Each task's control block, by task index.
    pub(crate) tasks: Box<[Tcb]>,
    /// The rarer mutable part.
    pub(crate) st: RefCell<State>,
    /// The tasks ready to run, in FIFO order.
    pub(crate) ready: RefCell<VecDeque<usize>>,
    /// The grace is over: every wait ends with `EDVSSHUTDOWN`.
    pub(crate) stopping: Cell<bool>,
    /// Hand-offs that may still run their receiver at once, on the sender's turn, before the
    /// scheduler gets control back (see `ctx::CoroIpc::send_local`); 0 once `stopping`.
    pub(crate) inline_left: Cell<u32>,
    /// Some task's `flags_stale` is set.
    pub(crate) flags_stale: Cell<bool>,
    /// How each server ended.
    pub(crate) exits: RefCell<Vec<Option<ServerExit>>>,
    /// The host's stop request (set from another thread).
    pub(crate) stopper: Stopper,
    /// How many tasks are on the chain of coroutines that run now.
    pub(crate) chain: Cell<usize>,
    /// The tasks' sockets (see `io`).
    pub(crate) io: RefCell<super::io::Reactor>,
}

/// The rarer mutable part of the kernel.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) timers: Timers,
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
}

impl Kernel {
    pub(crate) fn new(procs: Vec<Proc>, names: Vec<String>, stopper: Stopper) -> Kernel {
        let tasks = procs.iter().map(|p| Tcb::new(p.endpoint())).collect();
        let ready = (0..procs.len()).collect();
        let n = procs.len();
        Kernel {
            procs,
            names,
            tasks,
            st: RefCell::new(State::default()),
            ready: RefCell::new(ready),
            stopping: Cell::new(false),
            inline_left: Cell::new(0),
            flags_stale: Cell::new(false),
            exits: RefCell::new((0..n).map(|_| None).collect()),
            stopper,
            chain: Cell::new(0),
            io: RefCell::new(super::io::Reactor::new(n)),
        }
    }

    /// Whether task `t`, about to block in a receive, should rather spin in the fabric's own
    /// receive (its inbox open to a direct hand-off, as a process that waits in the fabric
    /// does): nothing else can run (no task ready, none below it on the chain), its last
    /// message came from an outside process that runs on another CPU, and no spin was tried
    /// since the doorbell last rang. Marks the spin as tried.
    pub(crate) fn spin_instead(&self, t: usize, src: Endpoint, rings: u32) -> bool {
        if !self.ready.borrow().is_empty() || self.chain.get() != 1 {
            return false;
        }
        let mut st = self.st.borrow_mut();
        if st.spun_at == Some(rings) {
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

    /// Whether any task's server still runs.
    pub(crate) fn serving_any(&self) -> bool {
        self.tasks.iter().any(|t| t.serving.get() != m3ipc::NONE)
    }

    /// The task bound at `ep`, if it is one of ours and still serving.
    pub(crate) fn local(&self, ep: Endpoint) -> Option<usize> {
        if ep == m3ipc::NONE {
            return None;
        }
        self.tasks.iter().position(|t| t.serving.get() == ep)
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
            cur = match self.tasks.get(cur).map(|t| t.wait.get()) {
                Some(Wait::Send { dst, .. }) => dst,
                Some(Wait::Reply { from }) => from,
                _ => return false,
            };
        }
        cur == me
    }

    /// End task `t`'s wait with `outcome` and queue it to run. Its timer is cancelled (lazily),
    /// and so is its place in a destination's queue.
    pub(crate) fn wake(&self, t: usize, outcome: Option<Result<()>>) {
        let Some(task) = self.tasks.get(t) else {
            return;
        };
        let was = task.wait.replace(Wait::Nothing);
        task.timer.set(0);
        task.outcome.set(outcome);
        // A fabric call owns the slot's flags while it runs: leave them to it.
        if !matches!(was, Wait::Nothing | Wait::Fabric { .. }) {
            task.flags_stale.set(true);
            self.flags_stale.set(true);
        }
        if let Wait::Send { dst, .. } = was
            && let Some(d) = self.tasks.get(dst)
        {
            d.senders.borrow_mut().retain(|&s| s != t);
        }
        if was != Wait::Nothing && !task.running.get() {
            self.ready.borrow_mut().push_back(t);
        }
    }

    /// Put task `t` to wait (`wait` is not `Nothing`), with a timer when `deadline` is set.
    pub(crate) fn block(&self, t: usize, wait: Wait, deadline: Option<Instant>) {
        let id = deadline.map_or(0, |at| self.st.borrow_mut().timers.arm(t, at));
        if let Some(task) = self.tasks.get(t) {
            block(self, task, wait, id);
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
    pub(crate) fn show_waits(&self) {
        if !self.flags_stale.replace(false) {
            return;
        }
        for (task, p) in self.tasks.iter().zip(&self.procs) {
            if !task.flags_stale.replace(false) {
                continue;
            }
            match task.wait.get() {
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

    /// Tell the slots what changed since the last time: the waits ([`Kernel::show_waits`]) and
    /// the hand-offs' counts ([`Kernel::flush_counts`]).
    pub(crate) fn publish(&self) {
        self.show_waits();
        self.flush_counts();
    }

    /// Tell the slots' counters what the hand-offs since the last flush were. Writing shared
    /// memory on every hand-off would cost more than the hand-off; the scheduler flushes every
    /// few dozen dispatches and before it sleeps, so `dvs ps` lags by at most that.
    pub(crate) fn flush_counts(&self) {
        for (t, p) in self.tasks.iter().zip(&self.procs) {
            let (sent, received) = (t.sent.replace(0), t.received.replace(0));
            if (sent, received) != (0, 0) {
                p.add_counts(sent, received);
            }
        }
    }

    /// Task `t`'s server returned: tell everyone who waits on it, as an unbind would.
    pub(crate) fn finish(&self, t: usize) {
        let Some(task) = self.tasks.get(t) else {
            return;
        };
        let ep = task.ep;
        task.serving.set(m3ipc::NONE);
        task.wait.set(Wait::Nothing);
        task.timer.set(0);
        for (other, o) in self.tasks.iter().enumerate() {
            let why = match o.wait.get() {
                Wait::Send { dst, .. } if dst == t => Errno::EDVSDSTDIED,
                Wait::Reply { from } if from == t => Errno::EDVSDEADSRCDST,
                Wait::Receive { src, .. } if src == ep => Errno::EDVSSRCDIED,
                _ => continue,
            };
            self.wake(other, Some(Err(why)));
        }
        self.publish();
        if let Some(p) = self.procs.get(t) {
            let _ = p.release();
        }
    }

    /// The orderly stop: ask the first task in `order` that still serves to finish (see
    /// [`crate::Stopper`]); it ends its receive or sleep with `EDVSSHUTDOWN`. Asked again at
    /// every look, so a task that went back to waiting after a look that found nothing is
    /// told again. The tasks after it keep serving (its last calls to them included).
    pub(crate) fn ask_next(&self, order: &[usize]) {
        let Some(&t) = order.iter().find(|&&t| {
            self.tasks
                .get(t)
                .is_some_and(|t| t.serving.get() != m3ipc::NONE)
        }) else {
            return;
        };
        let Some(task) = self.tasks.get(t) else {
            return;
        };
        task.asked.set(true);
        if matches!(task.wait.get(), Wait::Receive { .. } | Wait::Sleep) {
            self.wake(t, Some(Err(Errno::EDVSSHUTDOWN)));
        }
    }

    /// The grace is over: end every wait with `EDVSSHUTDOWN` (a fabric call is cancelled).
    pub(crate) fn stop_all(&self) {
        self.stopping.set(true);
        self.inline_left.set(0);
        for (t, task) in self.tasks.iter().enumerate() {
            match task.wait.get() {
                Wait::Nothing => {}
                Wait::Fabric { .. } => {
                    task.cancel.set(true);
                    self.wake(t, None);
                }
                _ => self.wake(t, Some(Err(Errno::EDVSSHUTDOWN))),
            }
        }
    }
}

/// Put `task` to wait (`wait` is not `Nothing`) with timer `id` (0: none).
#[inline]
pub(crate) fn block(k: &Kernel, task: &Tcb, wait: Wait, id: TimerId) {
    task.wait.set(wait);
    task.timer.set(id);
    task.outcome.set(None);
    if !matches!(wait, Wait::Fabric { .. }) {
        task.flags_stale.set(true);
        k.flags_stale.set(true);
    }
}

/// Hand `m` from task `from` to task `t` (`to`), which waits in a receive that accepts it (a
/// `Receive`, or the `Reply` half of its `sendrec`): its wait ends with the message, stamped
/// with `from`'s endpoint, written into its own buffer when it waits on its hot path (see
/// [`Inbox`]), else into its `msg`. It is queued to run unless it is on the chain that runs
/// now, or `run_now` (the caller resumes it itself). Every hand-off between two tasks comes
/// here: the hot path, so no more than that.
#[inline]
pub(crate) fn hand_off(k: &Kernel, from: &Tcb, t: usize, to: &Tcb, m: &Message, run_now: bool) {
    let mut msg = *m;
    msg.m_source = from.ep;
    let into = to.into.get();
    if into.is_null() {
        to.msg.set(msg);
    } else {
        // SAFETY: `into` is set only by `Inbox::open`, from a `&mut Message` of `to`'s own
        // frame that stays borrowed (untouched by `to`) until the inbox is dropped, which
        // clears it, on an unwind too; `to`'s stack lives while its coroutine does, and the
        // coroutines outlive every hand-off (they are dropped after the scheduler ends). So a
        // non-null `into` points to a live, aligned `Message` that nothing else reads or
        // writes now: `to` is suspended or below us on the chain, and we run on its thread.
        unsafe { into.write(msg) };
    }
    to.wait.set(Wait::Nothing);
    to.timer.set(0);
    to.outcome.set(Some(Ok(())));
    to.received.set(to.received.get() + 1);
    to.flags_stale.set(true);
    from.sent.set(from.sent.get() + 1);
    k.flags_stale.set(true);
    if !run_now && !to.running.get() {
        k.ready.borrow_mut().push_back(t);
    }
}
