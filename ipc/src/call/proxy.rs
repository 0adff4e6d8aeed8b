//! The DC proxy's calls: what the node daemon does in the region (no networking here).
//!
//! The daemon binds the DC's proxy slot ([`Dc::bind_proxy`]) and, through it, one remote slot
//! per endpoint bound on another node ([`Proc::bind_remote`]; see `remote.rs` for what a remote
//! slot is). Every remote slot shares the proxy's doorbell, so one thread sleeps for all of them.
//!
//! **Outgoing** (a local P calls remote R): P's call takes the ordinary fabric path, with every
//! local check. The daemon, acting as R, takes it with [`Proc::take_held`] (or an ordinary
//! `receive` for everything but a `send`) and forwards it:
//! - `sendrec`: taken as a [`Taken::Request`]; P waits for R's reply, which the daemon gives
//!   with an ordinary [`Proc::reply`] as R once the far side answered.
//! - `send`: must complete only once the far side has *delivered* it, so it is taken as a
//!   [`Taken::Send`]: P stays blocked (its envelope `Held`, shown as sending to R) until
//!   [`Held::complete`] (P's `send` returns Ok) or [`Held::fail`] (P's `send` returns that
//!   error). An ordinary `receive` by a remote slot leaves `send`s alone for this reason, and a
//!   remote slot never opens its inbox to a direct hand-off. P never hangs: a `Held` dropped
//!   unfinished fails P with `EDVSNOTCONN`; if the daemon dies, P's liveness tick releases R and
//!   P gets `EDVSNOTCONN`; if P's own timeout expires while held, P waits up to
//!   [`HELD_GRACE`] more for the outcome, then returns `EDVSTIMEDOUT`, and the late
//!   `complete`/`fail` returns `EDVSPROCSTS` (the far side may have delivered it: the fate of a
//!   timed-out remote `send` is unknown, as over any network).
//! - `notify`, `senda`: complete when taken (as specified), [`Taken::Notify`] /
//!   [`Taken::Async`].
//!
//! **Incoming** (remote P' calls local X): the daemon makes the call as P' (a remote slot it
//! bound) with the ordinary `send`/`sendrec`/`notify`/`senda`; X sees `m_source` = P''s
//! endpoint, remote generation included. When the proxy unbinds (or its process dies), these
//! calls in flight fail with `EDVSNOTCONN` too, and a late `reply` to P' is `EDVSNOPROXY`.
//! A remote slot's `Proc` may move to another thread, so
//! a first version runs each in-flight incoming call on a thread of its own; the daemon's main
//! thread sleeps on the proxy's doorbell and polls its remote slots with
//! `take_held(ANY, Timeout::NoWait)` when it rings. Those threads share one doorbell, and a
//! doorbell wakes one sleeper per ring, so a thread may miss a wake and see its outcome at its
//! next liveness tick ([`crate::wait::LIVENESS_TICK`]): a latency, never a hang. A daemon that
//! wants one thread and no such latency runs its calls as coroutines with the fabric's park
//! hook ([`crate::wait::set_park_hook`]), exactly as MUK2 hosts its servers: a call that would
//! sleep parks instead, and the scheduler resumes it when the shared doorbell's count changes.
//!
//! **Limits.** Remote slots get the default privileges of their `nr` (the far node checked the
//! caller's own privileges when it called); `setpriv` on the far node is not mirrored. The
//! daemon finds work by polling each remote slot after a ring: a cost in slots per ring.

use crate::cleanup;
use crate::dc::{Claim, Dc};
use crate::endpoint::{self, Endpoint};
use crate::errno::{Errno, Result};
use crate::mailbox::{self, EnvState, Phase, SYNC};
use crate::message::Message;
use crate::owner::ProcessId;
use crate::privilege::level;
use crate::proc::{Peer, Proc, Role};
use crate::region::MAX_NODES;
use crate::remote::{self, RemoteWord};
use crate::slot::{Counters, Slot, SlotState};
use crate::wait::{self, Blocked, Timeout};
use std::sync::atomic::{Ordering, fence};
use std::time::Duration;

/// How long past its deadline a `send` held by a remote slot's proxy waits for the far side's
/// outcome before it gives up with its timeout's error (see [`Proc::send`]).
pub const HELD_GRACE: Duration = Duration::from_millis(250);

impl Dc {
    /// Bind slot `nr` as the DC's proxy for the calling process (the node daemon): its
    /// privilege level is [`level::PROXY`], and through it the daemon binds remote slots
    /// ([`Proc::bind_remote`]). When it unbinds (or its process dies), every call waiting on its
    /// remote slots fails with `EDVSNOTCONN`, and new calls to them fail with `EDVSNOPROXY`
    /// until a proxy of the same process serves them again.
    ///
    /// A region has one proxy: `EDVSPROXYRUN` if another live one is bound (a dead one is
    /// released first). Two daemons binding at once may both get it; one of them retries.
    ///
    /// Errors: those of [`Dc::bind_named`], and `EDVSPROXYRUN`.
    pub fn bind_proxy(&self, nr: i32, name: &str) -> Result<Proc> {
        let how = Claim {
            generation: None,
            remote: RemoteWord::PROXY,
            level: Some(level::PROXY),
        };
        let (idx, ep, bound) = self.claim_with(nr, name, None, ProcessId::current(), &how)?;
        let proxy = Proc::new(self.clone(), idx, ep, bound);
        // SeqCst: of two daemons that bind at once (each a CAS, then this fence, then the
        // scan), at least one sees the other's proxy and gives way.
        fence(Ordering::SeqCst);
        let region = &self.region;
        for j in (0..region.geo.nr_slots).filter(|&j| j != idx) {
            let Some(s) = region.slot(j) else { break };
            let w = s.owner();
            if w.state() != SlotState::Bound || !remote::word(s).is_proxy() {
                continue;
            }
            if cleanup::owner_alive(s, w) {
                drop(proxy);
                return Err(Errno::EDVSPROXYRUN);
            }
            cleanup::reap_if_dead(region, j);
        }
        Ok(proxy)
    }
}

impl Proc {
    /// Whether this is the DC's proxy slot ([`Dc::bind_proxy`]).
    pub fn is_proxy(&self) -> bool {
        self.region()
            .slot(self.idx)
            .is_some_and(|s| remote::word(s).is_proxy())
    }

    /// Whether this is a remote slot ([`Proc::bind_remote`]).
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// Proxy only: bind slot `nr` as a remote slot standing for the endpoint of `nr` at
    /// `generation` bound on node `node`, named `name`, and return the handle through which
    /// the daemon acts as that endpoint (see the module docs of `call/proxy.rs`). The endpoint is
    /// the remote one (`generation`), so a stale generation is refused here as on its node. It
    /// is owned by the calling process (the daemon) and shares the proxy's doorbell.
    ///
    /// [`Proc::unbind`] says the remote endpoint unbound (its waiters get `EDVSDSTDIED`,
    /// `EDVSDEADSRCDST`); dropping the handle says the link is gone (`EDVSNOTCONN`).
    ///
    /// Errors: `EDVSDCNOTRUN`, `EDVSNOTBIND` (this proxy is unbound), `EDVSPRIVILEGES` (the
    /// caller is not the proxy), `EDVSBADNODEID` (`node` is not below 32, or is this node),
    /// `EDVSBADVALUE` (`generation` out of range), then those of [`Dc::bind_named`]
    /// (`EDVSSLOTUSED` when the slot is bound, locally or as a remote slot).
    pub fn bind_remote(&self, nr: i32, generation: u32, node: u32, name: &str) -> Result<Proc> {
        let me = self.bound()?;
        if !remote::word(me).is_proxy() {
            return Err(Errno::EDVSPRIVILEGES);
        }
        if node >= MAX_NODES || node == self.dc.config().node {
            return Err(Errno::EDVSBADNODEID);
        }
        if generation >= endpoint::MAX_GENERATION {
            return Err(Errno::EDVSBADVALUE);
        }
        let how = Claim {
            generation: Some(generation),
            remote: RemoteWord::remote(node),
            level: None,
        };
        let (idx, ep, bound) =
            self.dc
                .claim_with(nr, name, Some(self.idx), ProcessId::current(), &how)?;
        Ok(Proc::new(self.dc.clone(), idx, ep, bound))
    }

    /// The node of a remote slot, `None` for a local one.
    pub fn remote_node(&self) -> Option<u32> {
        self.region()
            .slot(self.idx)
            .and_then(|s| remote::word(s).node())
    }

    /// Remote slot only (the daemon acting as the remote endpoint): take the next call made to
    /// it, from `src` or from anyone (`ANY`). Order as `receive`: a `wakeup` (for `ANY`:
    /// `EDVSWOKENUP`), notifications, then the oldest queued message. A `send` is taken
    /// [held](Taken::Send): its sender stays blocked until the [`Held`] is finished. The
    /// caller's privileges are not consulted (taking calls to forward them is what a remote slot
    /// is for).
    ///
    /// Errors: `EDVSDCNOTRUN`, `EDVSNOTBIND`, `EDVSLCLPROC` (not a remote slot), `EDVSNOPROXY`
    /// (no proxy serves it, also if the proxy unbinds while this waits), peer errors for a
    /// specific `src`, `EDVSWOKENUP`, `EDVSAGAIN` (NOWAIT), `EDVSTIMEDOUT`.
    pub fn take_held(&self, src: Endpoint, timeout: Timeout) -> Result<Taken> {
        let me = self.bound()?;
        if !self.remote {
            return Err(Errno::EDVSLCLPROC);
        }
        if !remote::served(self.region(), me, self.owner) {
            return Err(Errno::EDVSNOPROXY);
        }
        let from = if src == endpoint::ANY {
            None
        } else {
            Some(self.peer(src, Role::Source, Errno::EDVSENDPOINT)?)
        };
        let spin_for = from.as_ref().map(|f| f.idx);
        let watching = from.is_some();
        let mut taking = Taking {
            proc: self,
            me,
            from,
            seen: None,
        };
        self.block(me, spin_for, watching, timeout, &mut taking)
    }
}

impl Proc {
    /// Remote slot only: the far side could not answer the `sendrec` request of `client` that
    /// this slot took (the link went, the far DC refused it, ...): the client's `sendrec`
    /// returns `why` instead of a reply.
    ///
    /// Errors: `EDVSDCNOTRUN`, `EDVSNOTBIND`, `EDVSLCLPROC` (not a remote slot), peer errors for
    /// `client`, and `EDVSPROCSTS` when `client` no longer waits for a reply from this slot.
    pub fn fail_request(&self, client: Endpoint, why: Errno) -> Result<()> {
        self.bound()?;
        if !self.remote {
            return Err(Errno::EDVSLCLPROC);
        }
        let peer = self.peer(client, Role::Destination, Errno::EDVSENDPOINT)?;
        let replying = self.claim_reply(&peer).ok_or(Errno::EDVSPROCSTS)?;
        let env = &peer.slot.envelopes[SYNC];
        // The claim (`Replying`) keeps the client from withdrawing; the sequence number keeps
        // this from landing on its next call.
        if !env.transition(replying, EnvState::failed(why.code(), replying.seq())) {
            return Err(Errno::EDVSPROCSTS);
        }
        if self.region().bell(peer.slot).ring() {
            wait::mark_woken(&peer.slot.cpu);
        }
        Ok(())
    }
}

/// A call taken by a remote slot's proxy ([`Proc::take_held`]).
#[derive(Debug)]
pub enum Taken {
    /// A `send`: its sender stays blocked until [`Held::complete`] or [`Held::fail`].
    Send(Held),
    /// A `sendrec` request: its client waits for the reply, given with [`Proc::reply`] to
    /// `m_source`.
    Request(Message),
    /// A `senda` message: its sender has moved on.
    Async(Message),
    /// A notification (`m_type` is `notify_from` of the notifier).
    Notify(Message),
}

impl Taken {
    /// The message taken, `m_source` stamped with its sender.
    pub fn message(&self) -> &Message {
        match self {
            Taken::Send(h) => &h.message,
            Taken::Request(m) | Taken::Async(m) | Taken::Notify(m) => m,
        }
    }
}

/// A `send` to a remote slot that its proxy took and forwards: the sender stays blocked until
/// this is finished. Dropping it unfinished fails the sender with `EDVSNOTCONN`.
pub struct Held {
    dc: Dc,
    /// The sender's slot.
    sender: usize,
    /// The sender's envelope state while held.
    state: EnvState,
    message: Message,
    finished: bool,
}

impl Held {
    /// The message, `m_source` stamped with its sender.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The far side delivered it: the sender's `send` returns Ok. `EDVSPROCSTS` if the sender
    /// no longer waits (it gave up past its deadline, or a cleanup failed it).
    pub fn complete(mut self) -> Result<()> {
        let to = EnvState::new(Phase::Delivered, self.state.peer(), self.state.seq());
        self.finish(to)
    }

    /// It could not be delivered: the sender's `send` returns `why` (e.g. `EDVSNOTCONN`,
    /// `EDVSDSTDIED`). `EDVSPROCSTS` as for [`Held::complete`].
    pub fn fail(mut self, why: Errno) -> Result<()> {
        self.finish(EnvState::failed(why.code(), self.state.seq()))
    }

    fn finish(&mut self, to: EnvState) -> Result<()> {
        self.finished = true;
        let region = &self.dc.region;
        let slot = region.slot(self.sender).ok_or(Errno::EDVSPROCSTS)?;
        // The sequence number in `state` makes a late outcome fail here, never land on the
        // sender's next message.
        if !slot.envelopes[SYNC].transition(self.state, to) {
            return Err(Errno::EDVSPROCSTS);
        }
        if region.bell(slot).ring() {
            wait::mark_woken(&slot.cpu);
        }
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.finish(EnvState::failed(
                Errno::EDVSNOTCONN.code(),
                self.state.seq(),
            ));
        }
    }
}

impl core::fmt::Debug for Held {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Held")
            .field("source", &self.message.m_source)
            .field("m_type", &self.message.m_type)
            .finish()
    }
}

/// A `take_held` in progress.
struct Taking<'a> {
    proc: &'a Proc,
    me: &'a Slot,
    from: Option<Peer<'a>>,
    /// The doorbell count at the start of the last full look.
    seen: Option<u32>,
}

impl Blocked<Taken> for Taking<'_> {
    fn check(&mut self) -> Option<Result<Taken>> {
        let p = self.proc;
        let region = p.region();
        // Everything that can end this wait rings the (shared) doorbell first; a withdraw that
        // made us lose a race does not, so that case forgets the count (below).
        let rings = region.bell(self.me).rings();
        if self.seen == Some(rings) {
            return None;
        }
        self.seen = Some(rings);
        let only = self.from.as_ref().map(|f| f.idx);
        if only.is_none()
            && self.me.mailbox.wokenup.load(Ordering::Relaxed) != 0
            && self.me.mailbox.wokenup.swap(0, Ordering::AcqRel) != 0
        {
            return Some(Err(Errno::EDVSWOKENUP));
        }
        if let Some(src) = p.pending_notification(self.me, only)
            && let Some(n) = p.take_notification(self.me, src)
        {
            return Some(Ok(Taken::Notify(n)));
        }
        let words = region.geo.nr_slots.div_ceil(64);
        let pending = mailbox::PendingSet(&self.me.mailbox.senders[..words]);
        if let Some(c) = mailbox::scan(&pending, region, p.idx as u16, p.ep, |s, _| {
            only.is_none_or(|o| o == s)
        }) {
            let env = region
                .slot(c.sender)
                .and_then(|s| s.envelopes.get(c.envelope));
            let phase = c.state.phase();
            let taken = env.and_then(|env| match phase {
                Phase::PendingSend => env.hold(c.state, p.idx as u16),
                _ => env.take(c.state, p.idx as u16),
            });
            let Some(words) = taken else {
                self.seen = None;
                return None;
            };
            let mut m = Message::from_words(words);
            m.m_source = p.endpoint_of(c.sender);
            Counters::bump(&self.me.counters.received);
            p.last_peer.set(Some(c.sender));
            return Some(Ok(match phase {
                Phase::PendingSend => Taken::Send(Held {
                    dc: p.dc.clone(),
                    sender: c.sender,
                    state: EnvState::new(Phase::Held, p.idx as u16, c.state.seq())
                        .with_gen(c.state.generation()),
                    message: m,
                    finished: false,
                }),
                Phase::PendingSendrec => {
                    let awaiting = EnvState::new(Phase::AwaitReply, p.idx as u16, c.state.seq());
                    p.last_request.set(Some((c.sender, awaiting)));
                    Taken::Request(m)
                }
                _ => Taken::Async(m),
            }));
        }
        if let Some(f) = &self.from
            && f.slot.owner() != f.owner
        {
            return Some(Err(Errno::EDVSSRCDIED));
        }
        if !region.running() {
            return Some(Err(Errno::EDVSDCNOTRUN));
        }
        None
    }

    fn tick(&mut self, first: bool) -> Option<Result<Taken>> {
        if let Some(f) = &self.from
            && !self.proc.peer_still_there(f, !first)
        {
            return Some(Err(Errno::EDVSSRCDIED));
        }
        // Our proxy unbound: nothing more comes to forward.
        if !remote::served(self.proc.region(), self.me, self.proc.owner) {
            return Some(Err(Errno::EDVSNOPROXY));
        }
        None
    }

    fn expire(&mut self, why: Errno) -> Option<Result<Taken>> {
        Some(Err(why))
    }
}
