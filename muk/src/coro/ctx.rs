//! A server's view of the IPC calls when it runs as a coroutine (the MUK2 side of [`Ipc`]).
//!
//! A call between two tasks of this unikernel never leaves the thread: the sender copies its
//! message into a receiver that waits (or queues itself on it), and switches away; no atomic
//! read-modify-write, no system call. A call to anything outside goes to the fabric; if it would
//! sleep there, the park hook switches to the scheduler instead, which resumes it when the
//! shared doorbell rings or its timer expires.

use super::kernel::{Kernel, State, Wait};
use crate::ipc::Ipc;
use corosensei::Yielder;
use m3ipc::wait::{ADAPTIVE_SPIN, LIVENESS_TICK, Park, Unpark};
use m3ipc::{
    ANY, Access, BufView, CopyRef, Dc, Endpoint, Errno, GrantId, Handle, Message, Proc, Result,
    RingCount, Timeout,
};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// What a task tells the scheduler when it switches away.
#[derive(Debug)]
pub(crate) enum Suspend {
    /// It blocked in a call between tasks; its `Wait` says on what.
    Blocked,
    /// A fabric call would sleep.
    Parked(Park),
}

/// The yielder of a task's coroutine.
pub(crate) type TaskYielder = Yielder<Unpark, Suspend>;

std::thread_local! {
    /// The yielder of the task whose fabric call runs now (null outside fabric calls).
    static CURRENT: Cell<*const TaskYielder> = const { Cell::new(core::ptr::null()) };
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
    // SAFETY: `CURRENT` is set by `CoroIpc::fabric` of the task that runs now, on this thread,
    // to that task's yielder, which lives as long as its coroutine; and it is restored below
    // after every switch, so while code on a task's stack runs inside a fabric call, `CURRENT`
    // is that task's. So `y` is valid here, and we are on the stack of the coroutine it belongs
    // to, which is what `suspend` requires.
    let unpark = unsafe { &*y }.suspend(Suspend::Parked(park));
    CURRENT.with(|c| c.set(y));
    unpark
}

/// The [`Ipc`] of one task.
pub(crate) struct CoroIpc<'a> {
    k: &'a Kernel,
    /// Its task.
    me: usize,
    /// Its endpoint (kept here: it stamps every message).
    ep: Endpoint,
    y: &'a TaskYielder,
    /// The shared doorbell's count, looked up once.
    rings: RingCount<'a>,
    /// The task it called or answered last, and its endpoint: a server talks to the same peer
    /// again and again, so this spares the search (see [`CoroIpc::local_task`]).
    peer: Cell<(Endpoint, usize)>,
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
    /// The `Ipc` of task `me`, whose coroutine yields through `y`.
    pub(crate) fn new(k: &'a Kernel, me: usize, y: &'a TaskYielder) -> CoroIpc<'a> {
        let ep = k.procs.get(me).map_or(m3ipc::NONE, Proc::endpoint);
        let rings = k.ring_count();
        CoroIpc {
            k,
            me,
            ep,
            y,
            rings,
            peer: Cell::new((m3ipc::NONE, usize::MAX)),
        }
    }

    /// The task bound at `dst`, if it is one of ours and still serving: the last peer without
    /// a search.
    #[inline]
    fn local_task(&self, st: &State, dst: Endpoint) -> Option<usize> {
        let (ep, t) = self.peer.get();
        if ep == dst && st.serving.get(t) == Some(&dst) {
            return Some(t);
        }
        let t = st.local(dst)?;
        self.peer.set((dst, t));
        Some(t)
    }

    fn proc(&self) -> &Proc {
        &self.k.procs[self.me]
    }

    /// `EDVSSHUTDOWN` once the host stops; else the task at `dst`, if it is one of ours.
    fn local(&self, dst: Endpoint) -> Result<Option<usize>> {
        let st = self.k.st.borrow();
        if st.stopping {
            return Err(Errno::EDVSSHUTDOWN);
        }
        Ok(st.local(dst))
    }

    /// The fabric says our slot is no longer ours (`EDVSNOTBIND`: unbound by another process,
    /// or its owner word written over): nothing outside can reach this task any more. Rather
    /// than let its server die where it stands (FS before it wrote back, or RDISK under an FS
    /// that still needs it), stop the whole unikernel in order, as SIGTERM does; the task
    /// serves its local callers until it is asked to finish, and its exit reports the loss.
    fn lose_slot(&self) {
        let k = self.k;
        k.st.borrow_mut().tasks[self.me].lost = true;
        if !k.stopper.stopping() {
            k.stopper.stop();
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
        let st = self.k.st.borrow();
        st.stopping || st.tasks[self.me].asked
    }

    /// Make a fabric call from this task: its sleeps become switches to the scheduler.
    fn fabric<T>(&self, call: impl FnOnce(&Proc) -> Result<T>) -> Result<T> {
        // Whoever hears from us through the fabric sees the waits of our tasks as they are.
        self.k.st.borrow_mut().show_waits(self.k);
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
    /// has other work (so no spin for an outside peer). Then block at once, with one borrow,
    /// and return `true`; else `false` and the general path decides.
    #[inline]
    fn block_at_once(&self) -> bool {
        let k = self.k;
        // The count looked up once, not through the slots: it only has to equal what the
        // last look saw (taken by `Kernel::rings`); when it does not, the general path looks.
        let rings = self.rings.rings();
        let mut st = k.st.borrow_mut();
        let me = self.me;
        let task = &st.tasks[me];
        if st.stopping
            || task.asked
            || task.looked_at != Some(rings)
            || !task.senders.is_empty()
            || (k.chain.get() == 1 && st.ready.is_empty())
        {
            return false;
        }
        st.block(
            me,
            Wait::Receive {
                src: ANY,
                requests_only: false,
            },
            None,
        );
        true
    }

    /// After [`CoroIpc::block_at_once`]: switch away; a hand-off ends the receive with its
    /// message in `m`. `None` when the wait ended otherwise: the general path looks again (or
    /// reports the error it finds).
    #[inline]
    fn suspend_for_message(&self, m: &mut Message) -> Option<Result<()>> {
        self.y.suspend(Suspend::Blocked);
        let mut st = self.k.st.borrow_mut();
        let task = &mut st.tasks[self.me];
        match task.outcome {
            Some(Ok(())) => {
                task.outcome = None;
                *m = task.msg;
                Some(Ok(()))
            }
            Some(Err(e)) => {
                task.outcome = None;
                Some(Err(e))
            }
            None => None,
        }
    }

    /// Switch away until whoever ends the wait says how it ended (`None`: look again). A wait
    /// that already ended (while a task we ran at once had control) needs no switch.
    fn suspend(&self) -> Option<Result<()>> {
        {
            let mut st = self.k.st.borrow_mut();
            let task = &mut st.tasks[self.me];
            if task.wait == Wait::Nothing {
                return task.outcome.take();
            }
        }
        self.y.suspend(Suspend::Blocked);
        self.k.st.borrow_mut().tasks[self.me].outcome.take()
    }

    /// The message delivered to this task.
    fn delivered(&self) -> Message {
        self.k.st.borrow().tasks[self.me].msg
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
        let mut st = k.st.borrow_mut();
        if d == me {
            return Err(Errno::EDVSBADDEST);
        }
        if st.receives_from(d, self.ep) {
            // A sendrec blocks until `d` replies: switch to `d` at once instead of through the
            // scheduler (one switch each way instead of two). `d` switches back to us when it
            // blocks, usually with our reply. Bounded by the inline budget.
            if then_receive && st.inline_left > 0 {
                st.inline_left -= 1;
                st.hand_off(k, me, self.ep, d, m, true);
                st.block(me, Wait::Reply { from: d }, deadline(t));
                drop(st);
                super::scheduler::run_task(k, d, Unpark::Check);
                return expiry(t, self.suspend().unwrap_or(Err(Errno::EDVSGENERIC)));
            }
            st.hand_off(k, me, self.ep, d, m, false);
            if !then_receive {
                return Ok(());
            }
            st.block(me, Wait::Reply { from: d }, deadline(t));
        } else {
            if t == Timeout::NoWait {
                return Err(Errno::EDVSAGAIN);
            }
            if st.deadlocks(me, d) {
                return Err(Errno::EDVSLOCKED);
            }
            st.tasks[me].msg = self.stamped(m);
            st.tasks[d].senders.push_back(me);
            st.block(
                me,
                Wait::Send {
                    dst: d,
                    then_receive,
                },
                deadline(t),
            );
        }
        drop(st);
        expiry(t, self.suspend().unwrap_or(Err(Errno::EDVSGENERIC)))
    }

    /// The hot path of a `sendrec` between two tasks: `dst` is a task that waits in a receive
    /// our message satisfies, and the inline budget is not spent. Hand it the message and run
    /// it at once, until it switches back (usually with our reply), under two borrows of the
    /// state in all. `None`: not that case, and nothing was done.
    fn sendrec_at_once(&self, dst: Endpoint, m: &mut Message) -> Option<Result<()>> {
        let k = self.k;
        let me = self.me;
        let d = {
            let mut st = k.st.borrow_mut();
            let d = self.local_task(&st, dst)?;
            if st.stopping || st.inline_left == 0 || d == me || !st.receives_from(d, self.ep) {
                return None;
            }
            st.inline_left -= 1;
            st.hand_off(k, me, self.ep, d, m, true);
            st.block(me, Wait::Reply { from: d }, None);
            d
        };
        super::scheduler::run_task(k, d, Unpark::Check);
        let r = {
            let mut st = k.st.borrow_mut();
            match st.tasks.get_mut(me) {
                Some(task) if task.wait == Wait::Nothing => match task.outcome.take() {
                    Some(Ok(())) => {
                        *m = task.msg;
                        return Some(Ok(()));
                    }
                    r => Some(r.unwrap_or(Err(Errno::EDVSGENERIC))),
                },
                _ => None,
            }
        };
        // Not answered yet: wait for the reply as the general path does.
        let r = match r {
            Some(r) => r,
            None => self.suspend().unwrap_or(Err(Errno::EDVSGENERIC)),
        };
        Some(r.map(|()| *m = self.delivered()))
    }

    /// Receive from the fabric spinning (inbox open) for up to the adaptive spin; `EDVSAGAIN`
    /// when nothing came.
    fn spin_receive(&self, src: Endpoint, m: &mut Message) -> Result<()> {
        self.fabric(|p| p.receive_spinning(src, m, ADAPTIVE_SPIN))?;
        let mut st = self.k.st.borrow_mut();
        st.last_outside_peer = Some((self.me, m.m_source));
        st.tasks[self.me].looked_at = None;
        // A hand-off into the inbox does not ring: spinning paid, so the next receive may spin
        // again under the same ring count.
        st.spun_at = None;
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
            self.k.st.borrow_mut().tasks[self.me].looked_at = None;
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
        let until = deadline(t);
        // A receive from one source always asks the fabric once: it checks that source (a free
        // slot is EDVSSRCDIED at once) whatever an earlier look found.
        let mut first = src != ANY;
        loop {
            // (1) The fabric (wakeups, notifications, outside senders), when its doorbell has
            // rung since our last look: an unchanged count means nothing new came.
            let rings = k.rings();
            let stale = {
                let task = &k.st.borrow().tasks[me];
                !task.lost && (task.looked_at != Some(rings) || first)
            };
            first = false;
            if stale {
                k.st.borrow_mut().tasks[me].looked_at = Some(rings);
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
                        let mut st = k.st.borrow_mut();
                        if st.local(m.m_source).is_none() {
                            st.last_outside_peer = Some((me, m.m_source));
                        }
                        // More may wait behind it under the same ring count: look again next.
                        st.tasks[me].looked_at = None;
                        return Ok(());
                    }
                    Err(Errno::EDVSAGAIN) => {}
                    // The ring that tells the scheduler of a stop, to a task not asked yet:
                    // nothing came.
                    Err(Errno::EDVSWOKENUP) if k.stopper.stopping() => {}
                    // Our slot is gone: stop in order; local callers are still served below.
                    Err(Errno::EDVSNOTBIND) => self.lose_slot(),
                    Err(e) => {
                        k.st.borrow_mut().tasks[me].looked_at = None;
                        return Err(e);
                    }
                }
            }
            // (2) The oldest task queued to send to us (from `src`).
            let mut st = k.st.borrow_mut();
            let queued = st.tasks[me]
                .senders
                .iter()
                .position(|&s| src == ANY || st.ep_of(s) == src);
            if let Some(pos) = queued {
                let s = st.tasks[me].senders.remove(pos).unwrap_or(me);
                *m = st.tasks[s].msg;
                st.count(s, me);
                match st.tasks[s].wait {
                    Wait::Send {
                        then_receive: true, ..
                    } => {
                        // Its timer stays armed: it bounds the whole sendrec.
                        st.tasks[s].wait = Wait::Reply { from: me };
                        st.tasks[s].flags_stale = true;
                        st.flags_stale = true;
                    }
                    _ => st.wake(k, s, Some(Ok(()))),
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
            if !requests_only
                && spin_fits
                && !st.tasks[me].lost
                && k.spin_instead(&mut st, me, src, rings)
            {
                drop(st);
                match self.spin_receive(src, m) {
                    Err(Errno::EDVSAGAIN) => continue,
                    r => return r,
                }
            }
            // A receive from one outside process watches that it lives, as the fabric's own
            // blocking receive does: wake every liveness tick to check it.
            let outside = src != ANY && st.local(src).is_none();
            let tick = outside.then(|| Instant::now() + LIVENESS_TICK);
            let wake_at = match (until, tick) {
                (Some(u), Some(t)) => Some(u.min(t)),
                (u, t) => u.or(t),
            };
            st.block(me, Wait::Receive { src, requests_only }, wake_at);
            drop(st);
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
        let k = self.k;
        let mut st = k.st.borrow_mut();
        let Some(d) = self.local_task(&st, dst) else {
            drop(st);
            return self.fabric(|p| p.reply(dst, m));
        };
        if d == self.me {
            return Err(Errno::EDVSBADDEST);
        }
        if st.tasks[d].wait != (Wait::Reply { from: self.me }) {
            return Err(Errno::EDVSPROCSTS);
        }
        st.hand_off(k, self.me, self.ep, d, m, false);
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
        let k = self.k;
        k.st.borrow_mut()
            .block(self.me, Wait::Sleep, Some(Instant::now() + d));
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
