//! A server's view of the IPC calls when it runs as a coroutine (the MUK2 side of [`Ipc`]).
//!
//! A call between two tasks of this unikernel never leaves the thread: the sender copies its
//! message into a receiver that waits (or queues itself on it), and switches away; no atomic
//! read-modify-write, no system call. A call to anything outside goes to the fabric; if it would
//! sleep there, the park hook switches to the scheduler instead, which resumes it when the
//! shared doorbell rings or its timer expires.

use super::kernel::{Inbox, Kernel, Tcb, Wait, block, hand_off};
use super::scheduler::run_task;
use crate::ipc::Ipc;
use corosensei::Yielder;
use m3ipc::wait::{ADAPTIVE_SPIN, LIVENESS_TICK, Park, Unpark};
use m3ipc::{
    ANY, Access, BufView, CopyRef, Dc, Endpoint, Errno, GrantId, Handle, Message, Proc, Result,
    RingCount, Timeout,
};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// What a task tells the scheduler when it switches away. One byte, so that what a resume
/// returns travels in registers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Suspend {
    /// It blocked in a call between tasks; its `Wait` says on what.
    Blocked,
    /// A fabric call would sleep: its [`Park`] is taken with [`take_parked`].
    Parked,
}

/// The yielder of a task's coroutine.
pub(crate) type TaskYielder = Yielder<Unpark, Suspend>;

std::thread_local! {
    /// The yielder of the task whose fabric call runs now (null outside fabric calls).
    static CURRENT: Cell<*const TaskYielder> = const { Cell::new(core::ptr::null()) };
    /// What the task that switched away with [`Suspend::Parked`] parks on.
    static PARKED: Cell<Option<Park>> = const { Cell::new(None) };
}

/// The park of the task that just switched away with [`Suspend::Parked`].
pub(crate) fn take_parked() -> Option<Park> {
    PARKED.with(Cell::take)
}

/// The park hook installed on the scheduler thread: switch from the task whose fabric call would
/// sleep back to the scheduler.
pub(crate) fn park_hook(park: Park) -> Unpark {
    let y = CURRENT.with(Cell::get);
    if y.is_null() {
        // Only tasks make calls that can block, so this is not reached; if it were, a short
        // real sleep keeps the caller's loop from spinning.
        std::thread::sleep(park.timeout.min(Duration::from_millis(1)));
        return Unpark::Check;
    }
    PARKED.with(|p| p.set(Some(park)));
    // SAFETY: `CURRENT` is set by `CoroIpc::fabric` of the task that runs now, on this thread,
    // to that task's yielder, which lives as long as its coroutine; and it is restored below
    // after every switch, so while code on a task's stack runs inside a fabric call, `CURRENT`
    // is that task's. So `y` is valid here, and we are on the stack of the coroutine it belongs
    // to, which is what `suspend` requires.
    let unpark = unsafe { &*y }.suspend(Suspend::Parked);
    CURRENT.with(|c| c.set(y));
    unpark
}

/// The [`Ipc`] of one task.
pub(crate) struct CoroIpc<'a> {
    k: &'a Kernel,
    /// Its task.
    me: usize,
    /// Its task's control block.
    tcb: &'a Tcb,
    /// Its endpoint (kept here: it stamps every message).
    ep: Endpoint,
    y: &'a TaskYielder,
    /// The shared doorbell's count, looked up once.
    rings: RingCount<'a>,
    /// The task it called or answered last, with its endpoint and block: a server talks to
    /// the same peer again and again, so this spares the search (see [`CoroIpc::local_task`]).
    /// Never this task itself.
    peer: Cell<(Endpoint, usize, &'a Tcb)>,
}

fn deadline(timeout: Timeout) -> Option<Instant> {
    match timeout {
        Timeout::Forever => None,
        Timeout::NoWait => Some(Instant::now()),
        Timeout::Millis(ms) => Some(Instant::now() + Duration::from_millis(u64::from(ms))),
    }
}

/// An expiry of a call made with `NoWait` is `EDVSAGAIN`, as in the fabric.
fn expiry(timeout: Timeout, r: Result<()>) -> Result<()> {
    match r {
        Err(Errno::EDVSTIMEDOUT) if timeout == Timeout::NoWait => Err(Errno::EDVSAGAIN),
        r => r,
    }
}

impl<'a> CoroIpc<'a> {
    /// The `Ipc` of task `me`, whose coroutine yields through `y` (`None`: no such task).
    pub(crate) fn new(k: &'a Kernel, me: usize, y: &'a TaskYielder) -> Option<CoroIpc<'a>> {
        let tcb = k.tasks.get(me)?;
        let rings = k.ring_count();
        Some(CoroIpc {
            k,
            me,
            tcb,
            ep: tcb.ep,
            y,
            rings,
            // `NONE` matches no serving task (this one serves while it runs).
            peer: Cell::new((m3ipc::NONE, me, tcb)),
        })
    }

    /// The task bound at `dst` and its block, if it is one of ours, still serving, and not
    /// this task: the last peer without a search.
    #[inline]
    fn local_task(&self, dst: Endpoint) -> Option<(usize, &'a Tcb)> {
        let (ep, t, tcb) = self.peer.get();
        if ep == dst && tcb.serving.get() == dst {
            return Some((t, tcb));
        }
        let t = self.k.local(dst).filter(|&t| t != self.me)?;
        let tcb = self.k.tasks.get(t)?;
        self.peer.set((dst, t, tcb));
        Some((t, tcb))
    }

    fn proc(&self) -> &Proc {
        &self.k.procs[self.me]
    }

    /// `EDVSSHUTDOWN` once the host stops; else the task at `dst`, if it is one of ours.
    fn local(&self, dst: Endpoint) -> Result<Option<usize>> {
        if self.k.stopping.get() {
            return Err(Errno::EDVSSHUTDOWN);
        }
        Ok(self.k.local(dst))
    }

    /// The fabric says our slot is no longer ours (`EDVSNOTBIND`: unbound by another process,
    /// or its owner word written over): nothing outside can reach this task any more. Rather
    /// than let its server die where it stands (FS before it wrote back, or RDISK under an FS
    /// that still needs it), stop the whole unikernel in order, as SIGTERM does; the task
    /// serves its local callers until it is asked to finish, and its exit reports the loss.
    fn lose_slot(&self) {
        self.tcb.lost.set(true);
        if !self.k.stopper.stopping() {
            self.k.stopper.stop();
        }
    }

    /// Receives and sleeps fail once this task is asked to finish (or the grace is over).
    fn live(&self) -> Result<()> {
        if self.finishing() {
            Err(Errno::EDVSSHUTDOWN)
        } else {
            Ok(())
        }
    }

    fn finishing(&self) -> bool {
        self.k.stopping.get() || self.tcb.asked.get()
    }

    /// Make a fabric call from this task: its sleeps become switches to the scheduler.
    fn fabric<T>(&self, call: impl FnOnce(&Proc) -> Result<T>) -> Result<T> {
        // Whoever hears from us through the fabric sees the waits of our tasks as they are.
        self.k.show_waits();
        CURRENT.with(|c| c.set(self.y as *const TaskYielder));
        let r = call(self.proc());
        CURRENT.with(|c| c.set(core::ptr::null()));
        match r {
            // The end of the grace wakes every slot; the scheduler may not have seen it yet.
            Err(Errno::EDVSWOKENUP) if self.k.stopper.hard() || self.finishing() => {
                Err(Errno::EDVSSHUTDOWN)
            }
            r => r,
        }
    }

    /// The common case of a server's `receive(ANY)` between two hand-offs: nothing new rang
    /// in the fabric since our last look, no task is queued to send to us, and the scheduler
    /// has other work (so no spin for an outside peer). Then block at once and return `true`;
    /// else `false` and the general path decides.
    #[inline]
    fn block_at_once(&self) -> bool {
        let k = self.k;
        let task = self.tcb;
        // The count looked up once, not through the slots: it only has to equal what the
        // last look saw (taken by `Kernel::rings`); when it does not, the general path looks.
        let rings = self.rings.rings();
        if k.stopping.get()
            || task.asked.get()
            || task.looked_at.get() != Some(rings)
            || !task.senders.borrow().is_empty()
            || (k.chain.get() == 1 && k.ready.borrow().is_empty())
        {
            return false;
        }
        block(
            k,
            task,
            Wait::Receive {
                src: ANY,
                requests_only: false,
            },
            0,
        );
        true
    }

    /// After [`CoroIpc::block_at_once`]: switch away, `m` open to a hand-off; one ends the
    /// receive with its message written straight into `m`. `None` when the wait ended
    /// otherwise: the general path looks again (or reports the error it finds).
    #[inline]
    fn suspend_for_message(&self, m: &mut Message) -> Option<Result<()>> {
        let inbox = Inbox::open(self.tcb, m);
        self.y.suspend(Suspend::Blocked);
        drop(inbox);
        // `Some(Ok(()))` comes only from a hand-off (the wait was a `Receive` with no timer),
        // which wrote the message into `m`.
        self.tcb.outcome.take()
    }

    /// Switch away until whoever ends the wait says how it ended (`None`: look again). A wait
    /// that already ended (while a task we ran at once had control) needs no switch.
    fn suspend(&self) -> Option<Result<()>> {
        if self.tcb.wait.get() != Wait::Nothing {
            self.y.suspend(Suspend::Blocked);
        }
        self.tcb.outcome.take()
    }

    /// The message delivered to this task (by a hand-off with no [`Inbox`] open).
    fn delivered(&self) -> Message {
        self.tcb.msg.get()
    }

    fn stamped(&self, m: &Message) -> Message {
        let mut m = *m;
        m.m_source = self.ep;
        m
    }

    /// `send` (`then_receive` false) or `sendrec` to task `d`.
    fn send_local(&self, d: usize, m: &Message, then_receive: bool, t: Timeout) -> Result<()> {
        let k = self.k;
        let me = self.me;
        if d == me {
            return Err(Errno::EDVSBADDEST);
        }
        let Some(to) = k.tasks.get(d) else {
            return Err(Errno::EDVSBADDEST);
        };
        if to.receives_from(self.ep) {
            // A sendrec blocks until `d` replies: switch to `d` at once instead of through the
            // scheduler (one switch each way instead of two). `d` switches back to us when it
            // blocks, usually with our reply. Bounded by the inline budget.
            let left = k.inline_left.get();
            if then_receive && left > 0 {
                k.inline_left.set(left - 1);
                hand_off(k, self.tcb, d, to, m, true);
                k.block(me, Wait::Reply { from: d }, deadline(t));
                run_task(k, d, to, Unpark::Check);
                return expiry(t, self.suspend().unwrap_or(Err(Errno::EDVSGENERIC)));
            }
            hand_off(k, self.tcb, d, to, m, false);
            if !then_receive {
                return Ok(());
            }
            k.block(me, Wait::Reply { from: d }, deadline(t));
        } else {
            if t == Timeout::NoWait {
                return Err(Errno::EDVSAGAIN);
            }
            if k.deadlocks(me, d) {
                return Err(Errno::EDVSLOCKED);
            }
            self.tcb.msg.set(self.stamped(m));
            to.senders.borrow_mut().push_back(me);
            k.block(
                me,
                Wait::Send {
                    dst: d,
                    then_receive,
                },
                deadline(t),
            );
        }
        expiry(t, self.suspend().unwrap_or(Err(Errno::EDVSGENERIC)))
    }

    /// The hot path of a `sendrec` between two tasks: `dst` is a task that waits in a receive
    /// our message satisfies, and the inline budget is not spent. Hand it the message and run
    /// it at once, `m` open to its reply, until it switches back (usually with that reply
    /// written into `m`). `None`: not that case, and nothing was done.
    #[inline]
    fn sendrec_at_once(&self, dst: Endpoint, m: &mut Message) -> Option<Result<()>> {
        let k = self.k;
        let (d, to) = self.local_task(dst)?;
        // No budget once the grace is over (`Kernel::inline_left`): the general path refuses.
        let left = k.inline_left.get();
        if left == 0 || !to.receives_from(self.ep) {
            return None;
        }
        k.inline_left.set(left - 1);
        hand_off(k, self.tcb, d, to, m, true);
        block(k, self.tcb, Wait::Reply { from: d }, 0);
        let _inbox = Inbox::open(self.tcb, m);
        run_task(k, d, to, Unpark::Check);
        // Answered (or its wait ended otherwise) while `d` ran; else wait for the reply as the
        // general path does. `Some(Ok(()))` comes only from the reply's hand-off, which wrote
        // the reply into `m`.
        Some(self.suspend().unwrap_or(Err(Errno::EDVSGENERIC)))
    }

    /// Receive from the fabric spinning (inbox open) for up to the adaptive spin; `EDVSAGAIN`
    /// when nothing came.
    fn spin_receive(&self, src: Endpoint, m: &mut Message) -> Result<()> {
        self.fabric(|p| p.receive_spinning(src, m, ADAPTIVE_SPIN))?;
        {
            let mut st = self.k.st.borrow_mut();
            st.last_outside_peer = Some((self.me, m.m_source));
            // A hand-off into the inbox does not ring: spinning paid, so the next receive may
            // spin again under the same ring count.
            st.spun_at = None;
        }
        self.tcb.looked_at.set(None);
        Ok(())
    }

    /// The general receive (the hot path is in [`Ipc::receive`]). Out of line: the hot path
    /// pays nothing for its size.
    #[inline(never)]
    fn recv(&self, src: Endpoint, requests_only: bool, m: &mut Message, t: Timeout) -> Result<()> {
        let mut narrow_look = false;
        let r = self.recv_looking(src, requests_only, m, t, &mut narrow_look);
        if narrow_look {
            // A look at one source (or at requests only) says nothing about the rest of the
            // fabric: the next receive must look again even if the doorbell has not rung.
            self.tcb.looked_at.set(None);
        }
        r
    }

    fn recv_looking(
        &self,
        src: Endpoint,
        requests_only: bool,
        m: &mut Message,
        t: Timeout,
        narrow_look: &mut bool,
    ) -> Result<()> {
        self.live()?;
        let k = self.k;
        let me = self.me;
        let task = self.tcb;
        let until = deadline(t);
        // A receive from one source always asks the fabric once: it checks that source (a free
        // slot is EDVSSRCDIED at once) whatever an earlier look found.
        let mut first = src != ANY;
        loop {
            // (1) The fabric (wakeups, notifications, outside senders), when its doorbell has
            // rung since our last look: an unchanged count means nothing new came.
            let rings = k.rings();
            let stale = !task.lost.get() && (task.looked_at.get() != Some(rings) || first);
            first = false;
            if stale {
                task.looked_at.set(Some(rings));
                *narrow_look |= src != ANY || requests_only;
                let r = self.fabric(|p| {
                    if requests_only {
                        p.rcvrqst(m, Timeout::NoWait)
                    } else {
                        p.receive(src, m, Timeout::NoWait)
                    }
                });
                match r {
                    Ok(()) => {
                        if k.local(m.m_source).is_none() {
                            k.st.borrow_mut().last_outside_peer = Some((me, m.m_source));
                        }
                        // More may wait behind it under the same ring count: look again next.
                        task.looked_at.set(None);
                        return Ok(());
                    }
                    Err(Errno::EDVSAGAIN) => {}
                    // The ring that tells the scheduler of a stop, to a task not asked yet:
                    // nothing came.
                    Err(Errno::EDVSWOKENUP) if k.stopper.stopping() => {}
                    // Our slot is gone: stop in order; local callers are still served below.
                    Err(Errno::EDVSNOTBIND) => self.lose_slot(),
                    Err(e) => {
                        task.looked_at.set(None);
                        return Err(e);
                    }
                }
            }
            // (2) The oldest task queued to send to us (from `src`).
            let queued = {
                let mut senders = task.senders.borrow_mut();
                let pos = senders
                    .iter()
                    .position(|&s| src == ANY || k.ep_of(s) == src);
                pos.and_then(|pos| senders.remove(pos))
            };
            if let Some(s) = queued {
                let Some(from) = k.tasks.get(s) else {
                    return Err(Errno::EDVSGENERIC);
                };
                *m = from.msg.get();
                from.sent.set(from.sent.get() + 1);
                task.received.set(task.received.get() + 1);
                match from.wait.get() {
                    Wait::Send {
                        then_receive: true, ..
                    } => {
                        // Its timer stays armed: it bounds the whole sendrec.
                        from.wait.set(Wait::Reply { from: me });
                        from.flags_stale.set(true);
                        k.flags_stale.set(true);
                    }
                    _ => k.wake(s, Some(Ok(()))),
                }
                return Ok(());
            }
            // (3) Block.
            if until.is_some_and(|u| Instant::now() >= u) {
                return Err(if t == Timeout::NoWait {
                    Errno::EDVSAGAIN
                } else {
                    Errno::EDVSTIMEDOUT
                });
            }
            // Nothing else to run and an outside peer on another CPU: spin for its next
            // request in the fabric, inbox open, as a fabric process would.
            let spin_fits = until.is_none_or(|u| u > Instant::now() + ADAPTIVE_SPIN);
            if !requests_only && spin_fits && !task.lost.get() && k.spin_instead(me, src, rings) {
                match self.spin_receive(src, m) {
                    Err(Errno::EDVSAGAIN) => continue,
                    r => return r,
                }
            }
            // A receive from one outside process watches that it lives, as the fabric's own
            // blocking receive does: wake every liveness tick to check it.
            let outside = src != ANY && k.local(src).is_none();
            let tick = outside.then(|| Instant::now() + LIVENESS_TICK);
            let wake_at = match (until, tick) {
                (Some(u), Some(t)) => Some(u.min(t)),
                (u, t) => u.or(t),
            };
            k.block(me, Wait::Receive { src, requests_only }, wake_at);
            match self.suspend() {
                Some(Ok(())) => {
                    *m = self.delivered();
                    return Ok(());
                }
                Some(Err(Errno::EDVSTIMEDOUT)) if tick.is_some() && wake_at != until => {
                    // The liveness tick: a source whose process died is freed (its slot goes
                    // to the next generation) and reported as the fabric reports it.
                    if self.proc().reap_if_dead(src) {
                        return Err(Errno::EDVSSRCDIED);
                    }
                    first = true;
                }
                Some(Err(e)) => return expiry(t, Err(e)),
                None => {}
            }
        }
    }
}

impl Ipc for CoroIpc<'_> {
    fn endpoint(&self) -> Endpoint {
        self.proc().endpoint()
    }

    fn name(&self) -> &str {
        self.k.names.get(self.me).map_or("", String::as_str)
    }

    fn dc(&self) -> &Dc {
        self.proc().dc()
    }

    fn send(&mut self, dst: Endpoint, m: &Message, timeout: Timeout) -> Result<()> {
        let local = self.local(dst)?;
        match local {
            Some(d) => self.send_local(d, m, false, timeout),
            None => self.fabric(|p| p.send(dst, m, timeout)),
        }
    }

    fn receive(&mut self, src: Endpoint, m: &mut Message, timeout: Timeout) -> Result<()> {
        if src == ANY && timeout == Timeout::Forever && self.block_at_once() {
            // Blocked, and woken by a hand-off: the message is ours.
            if let Some(r) = self.suspend_for_message(m) {
                return r;
            }
        }
        self.recv(src, false, m, timeout)
    }

    fn sendrec(&mut self, dst: Endpoint, m: &mut Message, timeout: Timeout) -> Result<()> {
        if timeout == Timeout::Forever
            && let Some(r) = self.sendrec_at_once(dst, m)
        {
            return r;
        }
        let local = self.local(dst)?;
        match local {
            Some(d) => {
                self.send_local(d, m, true, timeout)?;
                *m = self.delivered();
                Ok(())
            }
            None => self.fabric(|p| p.sendrec(dst, m, timeout)),
        }
    }

    fn rcvrqst(&mut self, m: &mut Message, timeout: Timeout) -> Result<()> {
        self.recv(ANY, true, m, timeout)
    }

    fn reply(&mut self, dst: Endpoint, m: &Message) -> Result<()> {
        let Some((d, to)) = self.local_task(dst) else {
            if dst == self.ep {
                return Err(Errno::EDVSBADDEST);
            }
            return self.fabric(|p| p.reply(dst, m));
        };
        if to.wait.get() != (Wait::Reply { from: self.me }) {
            return Err(Errno::EDVSPROCSTS);
        }
        hand_off(self.k, self.tcb, d, to, m, false);
        Ok(())
    }

    fn notify(&mut self, dst: Endpoint) -> Result<()> {
        // Through the fabric even between tasks: the pending bit is the slot's, and the ring
        // makes the scheduler wake the receiver (its count changes).
        self.fabric(|p| p.notify(dst))
    }

    fn vcopy(
        &mut self,
        src_ep: Endpoint,
        src: CopyRef,
        src_off: usize,
        dst_ep: Endpoint,
        dst: CopyRef,
        dst_off: usize,
        len: usize,
    ) -> Result<()> {
        // A party that is one of our tasks shows its wait in its slot's flags (`block`), so
        // the fabric's check that it is blocked in a receive holds for it too.
        self.fabric(|p| p.vcopy(src_ep, src, src_off, dst_ep, dst, dst_off, len))
    }

    // The buffer calls never block: straight to the fabric's `Proc`, no park hook needed.
    fn alloc_buffer(&mut self, len: usize) -> Result<Handle> {
        self.proc().alloc_buffer(len)
    }

    fn buffer(&self, h: Handle) -> Result<BufView<'_>> {
        self.proc().buffer(h)
    }

    fn give(&mut self, h: Handle, to: Endpoint) -> Result<()> {
        self.proc().give(h, to)
    }

    fn release_buffer(&mut self, h: Handle) -> Result<()> {
        self.proc().release_buffer(h)
    }

    fn grant(
        &mut self,
        h: Handle,
        grantee: Endpoint,
        offset: usize,
        len: usize,
        access: Access,
    ) -> Result<GrantId> {
        self.proc().grant(h, grantee, offset, len, access)
    }

    fn revoke(&mut self, id: GrantId) -> Result<()> {
        self.proc().revoke(id)
    }

    fn granted(&self, grantor: Endpoint, id: GrantId) -> Result<BufView<'_>> {
        self.proc().granted(grantor, id)
    }

    fn sleep(&mut self, d: Duration) -> Result<()> {
        self.live()?;
        self.k.block(self.me, Wait::Sleep, Some(Instant::now() + d));
        self.suspend().unwrap_or(Ok(()))
    }

    fn stopping(&self) -> bool {
        self.finishing()
    }

    fn watch_fd(&mut self, fd: std::os::fd::RawFd, token: u64) -> Result<()> {
        self.k.io.borrow_mut().watch(self.me, fd, token)
    }

    fn unwatch_fd(&mut self, fd: std::os::fd::RawFd) -> Result<()> {
        self.k.io.borrow_mut().forget(fd)
    }

    fn wait_io(&mut self, events: &mut Vec<crate::ipc::IoEvent>, timeout: Timeout) -> Result<()> {
        self.live()?;
        super::io::wait(self.k, self.me, events, deadline(timeout), || {
            self.suspend()
        })
    }
}
