//! A bound endpoint: the handle through which a process makes its calls.
//!
//! The calls themselves live in `call/`, one file per family, each written as MINIX's `proc.c`
//! writes them: the checks in order, each with its error, then the mechanism.

use crate::cleanup;
use crate::dc::Dc;
use crate::endpoint::{self, ANY, Endpoint, HARDWARE, NONE, SELF};
use crate::errno::{Errno, Result};
use crate::inbox::InboxState;
use crate::mailbox::EnvState;
use crate::privilege::{Call, CallSet};
use crate::region::Region;
use crate::slot::{OwnerWord, Slot, SlotState};
use crate::wait::{self, Blocked, Timeout, Wait, WaitPolicy};
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;

/// A slot bound by this process: make calls through it. Dropping it unbinds.
///
/// A `Proc` may move between threads but not be shared (`!Sync`): an endpoint receives in one
/// place at a time, as a process does.
pub struct Proc {
    pub(crate) dc: Dc,
    pub(crate) idx: usize,
    pub(crate) ep: Endpoint,
    pub(crate) owner: OwnerWord,
    policy: Cell<WaitPolicy>,
    /// The peer of the last message received, whose CPU an adaptive `receive(ANY)` watches.
    pub(crate) last_peer: Cell<Option<usize>>,
    /// The last `sendrec` request this endpoint received: the client's slot and the state its
    /// envelope was left in (`AwaitReply` from us). `reply` then claims it with one CAS on a
    /// value it already knows, instead of a read and a CAS (two transfers of the line).
    pub(crate) last_request: Cell<Option<(usize, EnvState)>>,
    /// The inbox word of the last message taken from the inbox (see `inbox::take`).
    pub(crate) inbox_taken: Cell<Option<InboxState>>,
    unbound: Cell<bool>,
    /// Set during `receive_spinning`: its blocked wait spins, then gives up, never sleeps.
    pub(crate) spin_only: Cell<Option<std::time::Duration>>,
    /// Whether this is a remote slot (`remote.rs`), as bound: its receives leave `send`s to
    /// `take_held` and never open the inbox to a direct hand-off (which would complete a `send`
    /// before the far side has it).
    pub(crate) remote: bool,
    _not_sync: PhantomData<Cell<()>>,
}

/// A resolved peer: its slot, as it was bound when the call looked.
pub(crate) struct Peer<'a> {
    pub(crate) idx: usize,
    pub(crate) ep: Endpoint,
    pub(crate) slot: &'a Slot,
    pub(crate) owner: OwnerWord,
}

/// Which error a call reports for a peer whose slot is free.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The peer is a destination: `EDVSDSTDIED`.
    Destination,
    /// The peer is a source: `EDVSSRCDIED`.
    Source,
}

impl Proc {
    pub(crate) fn new(dc: Dc, idx: usize, ep: Endpoint, owner: OwnerWord) -> Proc {
        // Read once, as the binder (or the process it bound for) wrote it before Bound.
        let remote = dc
            .region
            .slot(idx)
            .is_some_and(|s| crate::remote::word(s).is_remote());
        Proc {
            remote,
            dc,
            idx,
            ep,
            owner,
            policy: Cell::new(WaitPolicy::default()),
            last_peer: Cell::new(None),
            last_request: Cell::new(None),
            inbox_taken: Cell::new(None),
            unbound: Cell::new(false),
            spin_only: Cell::new(None),
            _not_sync: PhantomData,
        }
    }

    /// This endpoint's name.
    #[inline]
    pub fn endpoint(&self) -> Endpoint {
        self.ep
    }

    /// This endpoint's slot number.
    pub fn nr(&self) -> i32 {
        endpoint::nr(self.ep)
    }

    /// The DC it is bound in.
    pub fn dc(&self) -> &Dc {
        &self.dc
    }

    /// How blocked calls wait (Adaptive by default).
    pub fn wait_policy(&self) -> WaitPolicy {
        self.policy.get()
    }

    /// Choose how blocked calls wait.
    pub fn set_wait_policy(&self, policy: WaitPolicy) {
        self.policy.set(policy);
    }

    /// The ring count of the doorbell that wakes this endpoint (its own, or the one it shares,
    /// see [`Dc::bind_sharing_doorbell`]). Everything that can end a blocked call rings it
    /// first, so an unchanged count means nothing new arrived.
    #[inline]
    pub fn doorbell_rings(&self) -> u32 {
        let region = self.region();
        region.slot(self.idx).map_or(0, |s| region.bell(s).rings())
    }

    /// Sleep on this endpoint's doorbell until its ring count differs from `seen`, `timeout`
    /// passes, one [`crate::wait::LIVENESS_TICK`] passes (`None` or a longer timeout: the
    /// doorbell is a region word, and a scribble can eat its wake), or a spurious wakeup.
    /// Returns at once when the count already differs.
    ///
    /// The caller must re-check everything it waits for afterwards, not only what the count
    /// says changed: the count may have been written over too.
    pub fn doorbell_wait(&self, seen: u32, timeout: Option<std::time::Duration>) {
        if let Some((bell, token)) = self.doorbell_prepared(seen) {
            let _ = bell.sleep(token, timeout.unwrap_or(wait::LIVENESS_TICK));
        }
    }

    /// This endpoint's doorbell, announced as slept on, if its count is still `seen`; `None`
    /// (nothing announced) when the count moved or the slot is out of range.
    fn doorbell_prepared(
        &self,
        seen: u32,
    ) -> Option<(&crate::doorbell::Doorbell, crate::doorbell::SleepToken)> {
        let region = self.region();
        let bell = region.bell(region.slot(self.idx)?);
        let token = bell.prepare();
        if token.rings() != seen {
            bell.done();
            return None;
        }
        Some((bell, token))
    }

    /// [`Proc::doorbell_wait`], with the sleep made by `wait(word, expected, timeout)` instead
    /// of a plain futex wait: it must wait on the futex `word` while it holds `expected` (the
    /// doorbell's sleeping bit set), for at most `timeout` (never above the liveness tick), and
    /// may end earlier for reasons of its own. MUK2's scheduler waits this way on its doorbell
    /// and its sockets together (an io_uring `FUTEX_WAIT` beside socket polls).
    pub fn doorbell_wait_by(
        &self,
        seen: u32,
        timeout: Option<std::time::Duration>,
        wait: impl FnOnce(&std::sync::atomic::AtomicU32, u32, std::time::Duration),
    ) {
        if let Some((bell, token)) = self.doorbell_prepared(seen) {
            let _ = bell.sleep_by(token, timeout.unwrap_or(wait::LIVENESS_TICK), wait);
        }
    }

    /// For the one thread that sleeps on this endpoint's doorbell, while it is awake: repair the
    /// doorbell if it reads as impossible (its sleeping bit set while nobody sleeps, which makes
    /// every ring a useless system call). Returns whether it had to. One load when the word is
    /// sound.
    pub fn doorbell_repair(&self) -> bool {
        let region = self.region();
        region
            .slot(self.idx)
            .is_some_and(|s| region.bell(s).repair_awake())
    }

    /// Tell peers whether this endpoint's thread runs (`true`: on the CPU it is on now) or
    /// sleeps. Adaptive peers spin for a reply only while it runs on another CPU. A thread that
    /// waits in the fabric's own calls publishes this itself; a thread that hosts several
    /// endpoints and sleeps in [`Proc::doorbell_wait`] calls this for each of them.
    pub fn set_running(&self, running: bool) {
        if let Some(s) = self.region().slot(self.idx) {
            let cpu = wait::current_cpu();
            let v = if running {
                cpu
            } else if cpu < 0 {
                -1
            } else {
                -2 - cpu
            };
            // Relaxed: a scheduling hint (see `wait::publish_cpu`).
            s.cpu.store(v, Ordering::Relaxed);
        }
    }

    /// A handle on this endpoint's doorbell that another thread may sleep on (see
    /// [`crate::BellWatch`]).
    pub fn bell_watch(&self) -> crate::BellWatch {
        crate::BellWatch::new(self.dc.clone(), self.idx)
    }

    /// A handle that other threads of this process may use to wake this endpoint: its next (or
    /// current) `receive(ANY)`/`rcvrqst` returns `EDVSWOKENUP`, as after `wakeup(ep)`.
    pub fn waker(&self) -> crate::Waker {
        crate::Waker::new(self.dc.clone(), self.idx, self.owner)
    }

    #[inline]
    pub(crate) fn region(&self) -> &Region {
        &self.dc.region
    }

    /// Common checks of every call, in the original's order: the DC runs (`EDVSDCNOTRUN`), the
    /// caller is still bound (`EDVSNOTBIND`), the call is allowed (`EDVSBADCALL`).
    pub(crate) fn caller(&self, call: Call) -> Result<&Slot> {
        let me = self.bound()?;
        if !CallSet(me.allowed.load(Ordering::Relaxed)).allows(call) {
            return Err(Errno::EDVSBADCALL);
        }
        Ok(me)
    }

    /// The first two checks of every call: the DC runs (`EDVSDCNOTRUN`), the caller is still
    /// bound (`EDVSNOTBIND`). Buffer calls, which every endpoint may make, check only these.
    pub(crate) fn bound(&self) -> Result<&Slot> {
        let region = self.region();
        if !region.running() {
            return Err(Errno::EDVSDCNOTRUN);
        }
        let me = region.slot(self.idx).ok_or(Errno::EDVSNOTBIND)?;
        if self.unbound.get() || me.owner() != self.owner {
            return Err(Errno::EDVSNOTBIND);
        }
        Ok(me)
    }

    /// Whether the caller's slot is a system process slot, else `EDVSTRAPDENIED`.
    pub(crate) fn require_sysproc(&self) -> Result<()> {
        if self.region().geo.is_sysproc(self.idx) {
            Ok(())
        } else {
            Err(Errno::EDVSTRAPDENIED)
        }
    }

    /// Resolve and check a peer endpoint, in the original's order: special values
    /// (`EDVSENDPOINT`, `HARDWARE` is `EDVSBADDEST`), range (`EDVSRANGE`), self (`self_err`),
    /// generation (`EDVSENDPOINT`), bound (`EDVSDSTDIED`/`EDVSSRCDIED`).
    pub(crate) fn peer(&self, ep: Endpoint, role: Role, self_err: Errno) -> Result<Peer<'_>> {
        let region = self.region();
        let ep = if ep == SELF { self.ep } else { ep };
        if ep == ANY || ep == NONE {
            return Err(Errno::EDVSENDPOINT);
        }
        if ep == HARDWARE {
            return Err(Errno::EDVSBADDEST);
        }
        let idx = region.geo.index(endpoint::nr(ep)).ok_or(Errno::EDVSRANGE)?;
        if idx == self.idx {
            return Err(self_err);
        }
        let slot = region.slot(idx).ok_or(Errno::EDVSRANGE)?;
        let owner = slot.owner();
        if endpoint::make(owner.generation(), endpoint::nr(ep)) != ep {
            return Err(Errno::EDVSENDPOINT);
        }
        if owner.state() != SlotState::Bound {
            return Err(match role {
                Role::Destination => Errno::EDVSDSTDIED,
                Role::Source => Errno::EDVSSRCDIED,
            });
        }
        // A remote slot no daemon serves now: EDVSNOPROXY.
        crate::remote::check_served(region, slot, owner)?;
        Ok(Peer {
            idx,
            ep,
            slot,
            owner,
        })
    }

    /// A destination that is a system process must be in the caller's `ipc_to`, else
    /// `EDVSTRAPDENIED`.
    pub(crate) fn check_ipc_to(&self, me: &Slot, peer: &Peer<'_>) -> Result<()> {
        if self.region().geo.is_sysproc(peer.idx) && !Slot::bit(&me.ipc_to, peer.idx) {
            return Err(Errno::EDVSTRAPDENIED);
        }
        Ok(())
    }

    /// Whether `peer` still holds the binding the call started with; if its owner died, release
    /// its slot (which fails every waiter on it, the caller included).
    pub(crate) fn peer_still_there(&self, peer: &Peer<'_>, check_alive: bool) -> bool {
        if peer.slot.owner() != peer.owner {
            return false;
        }
        if check_alive && !cleanup::owner_alive(peer.slot, peer.owner) {
            cleanup::release(self.region(), peer.idx, peer.owner);
            return false;
        }
        true
    }

    /// Wait in the policy's way until `call` finishes.
    pub(crate) fn block<T>(
        &self,
        me: &Slot,
        spin_for: Option<usize>,
        watching: bool,
        timeout: Timeout,
        call: &mut impl Blocked<T>,
    ) -> Result<T> {
        let peer_cpu = spin_for.and_then(|i| self.region().slot(i)).map(|s| &s.cpu);
        wait::wait(
            &Wait {
                bell: self.region().bell(me),
                my_cpu: &me.cpu,
                peer_cpu,
                watching,
                policy: self.policy.get(),
                timeout,
                spin_only: self.spin_only.get(),
            },
            call,
        )
    }

    /// The endpoint now bound at slot index `idx` (for stamping `m_source`).
    pub(crate) fn endpoint_of(&self, idx: usize) -> Endpoint {
        let region = self.region();
        region.slot(idx).map_or(NONE, |s| {
            endpoint::make(s.owner().generation(), region.geo.nr(idx))
        })
    }

    /// `unbind`: release the slot. Queued senders get `EDVSDSTDIED`, clients in `sendrec`
    /// `EDVSDEADSRCDST`, receivers from it `EDVSSRCDIED`; its notifications to others are
    /// withdrawn; the slot is free again at the next generation.
    ///
    /// For a remote slot ([`Proc::bind_remote`]) this says that the remote endpoint unbound on
    /// its node: the same errors. Dropping its handle instead (or the daemon's death) means the
    /// link is gone: waiters get `EDVSNOTCONN`.
    pub fn unbind(self) -> Result<()> {
        if self.remote
            && let Ok(me) = self.bound()
        {
            crate::remote::mark_unbinding(me);
        }
        self.unbind_inner()
    }

    pub(crate) fn unbind_inner(&self) -> Result<()> {
        if self.unbound.replace(true) {
            return Err(Errno::EDVSNOTBIND);
        }
        let region = self.region();
        let me = region.slot(self.idx).ok_or(Errno::EDVSNOTBIND)?;
        if me.owner() != self.owner {
            return Err(Errno::EDVSNOTBIND);
        }
        if cleanup::release(region, self.idx, self.owner) {
            Ok(())
        } else {
            Err(Errno::EDVSNOTBIND)
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.unbind_inner();
    }
}

impl core::fmt::Debug for Proc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Proc")
            .field("dc", &self.dc.name())
            .field("endpoint", &self.ep)
            .finish()
    }
}
