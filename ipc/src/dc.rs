//! A distributed container (DC) as seen from one process: its region, binding, and introspection.

use crate::cleanup;
use crate::endpoint::{self, Endpoint, HARDWARE, NONE, SELF};
use crate::errno::{Errno, Result};
use crate::inbox;
use crate::mailbox::{EnvState, Phase, SYNC};
use crate::owner::ProcessId;
use crate::pool::{Holdings, PoolInfo};
use crate::privilege::{CallSet, Priv};
use crate::proc::Proc;
use crate::region::{self, DcConfig, DcError, Region};
use crate::slot::{
    FLAG_RECEIVING, FLAG_SENDING, FLAG_WAITBIND, FLAG_WAITING, OwnerWord, Slot, SlotState,
};
use crate::takeover::TakenOver;
use crate::wait::{self, Blocked, Timeout, Wait, WaitPolicy};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

/// An open DC region. Cheap to clone; every clone maps the same region once.
#[derive(Clone)]
pub struct Dc {
    pub(crate) region: Arc<Region>,
}

/// A DC made by [`Dc::create_or_take_over`].
#[derive(Debug)]
pub struct Created {
    /// The new DC.
    pub dc: Dc,
    /// The stale region removed first, if there was one.
    pub taken_over: Option<TakenOver>,
}

/// What `getdcinfo` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcInfo {
    /// DC name.
    pub name: String,
    /// Limits and ids.
    pub config: DcConfig,
    /// PID of the process that created the region.
    pub creator_pid: u32,
    /// Whether that process still lives (PID and start time).
    pub creator_alive: bool,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Slots bound now.
    pub bound: usize,
    /// Size of the region file in bytes.
    pub region_bytes: usize,
    /// The buffer pool's use, `None` when the DC has no pool.
    pub pool: Option<PoolInfo>,
}

/// What `getprocinfo` reports about one slot (the original's `proc_usr_t`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    /// Slot number.
    pub nr: i32,
    /// Endpoint of the current (or, when free, the next) binding.
    pub endpoint: Endpoint,
    /// Binding state.
    pub state: SlotState,
    /// Owner PID (0 when free).
    pub pid: u32,
    /// Whether the owner process lives (PID and start time; false when free). A slot whose
    /// owner died is released at the next bind of its `nr`, by a blocked peer, or by
    /// [`Dc::reap_dead`].
    pub owner_alive: bool,
    /// Name given at bind.
    pub name: String,
    /// `FLAG_SENDING`, `FLAG_RECEIVING` (each with `FLAG_WAITING`: the call blocks), as the
    /// owner blocks now; `FLAG_SENDREC` too while it blocks in a `sendrec`.
    pub flags: u32,
    /// Whom it receives from (`NONE` unless receiving).
    pub getfrom: Endpoint,
    /// Whom it sends to (`NONE` unless sending).
    pub sendto: Endpoint,
    /// Messages it sent that were received.
    pub sent: u64,
    /// Messages it received.
    pub received: u64,
    /// Of those, messages handed straight into its inbox while it waited (the rest were
    /// queued in its mailbox first).
    pub received_direct: u64,
    /// Notifications it received.
    pub notified: u64,
    /// Notifications to it that coalesced with a pending one.
    pub notify_overruns: u64,
    /// Whether it is a system process slot.
    pub system: bool,
    /// Privilege level.
    pub level: u32,
    /// Calls it may make.
    pub allowed: CallSet,
    /// Pool buffers it owns, their bytes and the live grants it issued (all zero without a
    /// pool).
    pub holdings: Holdings,
    /// For a remote slot (an endpoint bound on another node, served here by the node daemon),
    /// the node it is bound on; `None` for a local slot.
    pub node: Option<u32>,
    /// Whether this is the DC's proxy slot (the node daemon's, see [`Dc::bind_proxy`]).
    pub proxy: bool,
}

impl ProcInfo {
    /// What [`ProcInfo::flag_letters`] shows, letter by letter.
    pub const FLAG_LEGEND: &'static str =
        "S sending, R receiving, W wait4bind, B binding, C closing";

    /// The slot's blocked state and binding state as letters, as `dvs ps` shows them (see
    /// [`ProcInfo::FLAG_LEGEND`]); empty when none applies.
    pub fn flag_letters(&self) -> String {
        [
            (self.flags & FLAG_SENDING != 0, 'S'),
            (self.flags & FLAG_RECEIVING != 0, 'R'),
            (self.flags & FLAG_WAITBIND != 0, 'W'),
            (self.state == SlotState::Binding, 'B'),
            (self.state == SlotState::Closing, 'C'),
        ]
        .into_iter()
        .filter_map(|(on, letter)| on.then_some(letter))
        .collect()
    }
}

impl Dc {
    /// Create a DC region named `name` (exclusively: an existing name or id is an error).
    pub fn create(name: &str, config: &DcConfig) -> core::result::Result<Dc, DcError> {
        Ok(Dc {
            region: Arc::new(Region::create(name, config)?),
        })
    }

    /// Create a DC named `name` as [`Dc::create`] does, with the lowest DC id no other DC in the
    /// region directory uses (`config.dcid` is ignored): for private DCs of tests, benchmarks
    /// and a unikernel's default boot. Errors: those of `create`, and `DcError::NoFreeId`.
    pub fn create_with_free_id(name: &str, config: &DcConfig) -> core::result::Result<Dc, DcError> {
        Ok(Dc {
            region: Arc::new(Region::create_with_free_id(name, config)?),
        })
    }

    /// Create a DC as [`Dc::create`] does (or [`Dc::create_with_free_id`] when `free_id`), but
    /// take over an existing region of that name left by dead processes: one whose creator is
    /// dead (PID and start time) and none of whose slots has a live owner. Such a region and its
    /// pool are removed and the DC created afresh; [`Created::taken_over`] says so (callers
    /// show it). Two processes taking over at once cannot both win: one creates, the other
    /// then finds a live creator.
    ///
    /// Errors: those of the create; [`DcError::InUse`] (naming the live process) when the
    /// creator or a slot owner of the existing region lives; a region this build cannot read
    /// is refused with the error that says why.
    pub fn create_or_take_over(
        name: &str,
        config: &DcConfig,
        free_id: bool,
    ) -> core::result::Result<Created, DcError> {
        let (region, taken_over) = region::create_taking_over(name, config, free_id)?;
        Ok(Created {
            dc: Dc {
                region: Arc::new(region),
            },
            taken_over,
        })
    }

    /// Open an existing DC region, validating its header.
    pub fn open(name: &str) -> core::result::Result<Dc, DcError> {
        Ok(Dc {
            region: Arc::new(Region::open(name)?),
        })
    }

    /// Open the DC whose id is `dcid` (as the original's `dvk_bind(dcid, ...)` names DCs).
    pub fn open_by_id(dcid: u32) -> core::result::Result<Dc, DcError> {
        for name in Dc::list()? {
            if let Ok(dc) = Dc::open(&name)
                && dc.region.geo.config.dcid == dcid
            {
                return Ok(dc);
            }
        }
        Err(DcError::NotFound(
            format!("dcid {dcid}"),
            region::region_dir().display().to_string(),
        ))
    }

    /// Remove a DC: calls of processes still attached fail with `EDVSDCNOTRUN`, and the region
    /// file and the pool file go away (processes that still map them keep their mappings).
    pub fn remove(name: &str) -> core::result::Result<(), DcError> {
        region::remove(name)
    }

    /// Names of the DCs in the region directory.
    pub fn list() -> core::result::Result<Vec<String>, DcError> {
        region::list()
    }

    /// The DC's name.
    pub fn name(&self) -> &str {
        &self.region.name
    }

    /// The region file.
    pub fn path(&self) -> &Path {
        &self.region.path
    }

    /// The DC's limits and ids.
    pub fn config(&self) -> &DcConfig {
        &self.region.geo.config
    }

    /// `getdcinfo`.
    pub fn info(&self) -> DcInfo {
        let (creator_pid, created_at) = self.region.creator();
        DcInfo {
            name: self.region.name.clone(),
            config: self.region.geo.config.clone(),
            creator_pid,
            creator_alive: crate::takeover::creator_alive(self.region.creator_id()),
            created_at,
            bound: (0..self.region.geo.nr_slots)
                .filter_map(|i| self.region.slot(i))
                .filter(|s| s.owner().state() == SlotState::Bound)
                .count(),
            region_bytes: self.region.geo.total_len,
            pool: self.pool_info(),
        }
    }

    /// The buffer pool's use now (a scan of the chunk words and the grant table), `None` when
    /// the DC has no pool.
    pub fn pool_info(&self) -> Option<PoolInfo> {
        self.region.pool.as_ref().map(|p| p.info())
    }

    /// Whether the DC has a buffer pool.
    pub fn has_pool(&self) -> bool {
        self.region.pool.is_some()
    }

    /// Bind slot `nr` for the calling process; see [`Dc::bind_named`].
    pub fn bind(&self, nr: i32) -> Result<Proc> {
        self.bind_named(nr, "")
    }

    /// Bind slot `nr` for the calling process, under a name shown by `dvs ps` (at most 15 bytes
    /// are kept).
    ///
    /// Errors: `EDVSDCNOTRUN` (DC removed), `EDVSRANGE` (`nr` outside the table), `EDVSBADPROC`
    /// (`nr` is `HARDWARE`), `EDVSSLOTUSED` (a live process holds it). A slot whose holder died is
    /// released first, so a restarted process binds its `nr` again at once, at a new generation.
    pub fn bind_named(&self, nr: i32, name: &str) -> Result<Proc> {
        self.bind_inner(nr, name, None)
    }

    /// Bind slot `nr` as [`Dc::bind_named`] does, with its owner woken through `host`'s doorbell
    /// instead of its own: a process that serves several endpoints from one thread (MUK2) then
    /// sleeps on one doorbell, and whatever wakes any of them wakes it. The ring count of that
    /// doorbell is [`Proc::doorbell_rings`] of any of them.
    ///
    /// Errors: those of [`Dc::bind_named`]; `EDVSINVAL` when `host` is bound in another DC or
    /// itself shares another's doorbell (sharing is one hop).
    pub fn bind_sharing_doorbell(&self, nr: i32, name: &str, host: &Proc) -> Result<Proc> {
        if host.dc().path() != self.path() {
            return Err(Errno::EDVSINVAL);
        }
        let host_slot = self.region.slot(host.idx).ok_or(Errno::EDVSINVAL)?;
        if host_slot.bell_at.load(Ordering::Relaxed) != 0 {
            return Err(Errno::EDVSINVAL);
        }
        self.bind_inner(nr, name, Some(host.idx))
    }

    fn bind_inner(&self, nr: i32, name: &str, bell_host: Option<usize>) -> Result<Proc> {
        let (idx, ep, bound) = self.claim(nr, name, bell_host, ProcessId::current())?;
        Ok(Proc::new(self.clone(), idx, ep, bound))
    }

    /// Bind slot `nr` for the process `pid` (SYSTASK's bind on behalf of others): the slot is
    /// claimed exactly as [`Dc::bind_named`] claims it, but its owner word names `pid` and that
    /// process's start time, so the slot lives and dies with `pid` and is reaped like any other
    /// once `pid` exits. The caller gets no handle: `pid` takes the slot with [`Dc::attach`].
    ///
    /// Errors: `EDVSBADPID` (no live process `pid`, a zombie included), then those of
    /// [`Dc::bind_named`].
    pub fn bind_for(&self, pid: u32, nr: i32, name: &str) -> Result<Endpoint> {
        let owner = ProcessId::of(pid).ok_or(Errno::EDVSBADPID)?;
        let (_, ep, _) = self.claim(nr, name, None, owner)?;
        Ok(ep)
    }

    /// Take slot `nr`, bound for this process by someone else ([`Dc::bind_for`]), as a [`Proc`].
    /// Dropping it unbinds, as for a slot bound by [`Dc::bind_named`].
    ///
    /// The slot must name this process (PID and start time) as owner. A process that already
    /// holds a `Proc` for the slot must not attach it again: two handles would receive in two
    /// places.
    ///
    /// Errors: `EDVSDCNOTRUN`, `EDVSRANGE` (`nr` outside the table), `EDVSBADPROC` (`nr` is
    /// `HARDWARE`, or the slot is bound for another process), `EDVSNOTBIND` (the slot is not
    /// bound).
    pub fn attach(&self, nr: i32) -> Result<Proc> {
        let (idx, slot) = self.bindable(nr)?;
        let w = slot.owner();
        if w.state() != SlotState::Bound {
            return Err(Errno::EDVSNOTBIND);
        }
        let me = ProcessId::current();
        // Acquire in `owner()` above makes the binder's start time visible.
        if w.pid() != me.pid || slot.owner_start.load(Ordering::Relaxed) != me.start {
            return Err(Errno::EDVSBADPROC);
        }
        slot.cpu.store(wait::current_cpu(), Ordering::Relaxed);
        Ok(Proc::new(
            self.clone(),
            idx,
            endpoint::make(w.generation(), nr),
            w,
        ))
    }

    /// The checks every kind of bind makes first, in the original's order: the DC runs
    /// (`EDVSDCNOTRUN`), `nr` is not `HARDWARE` (`EDVSBADPROC`) and lies in the table
    /// (`EDVSRANGE`). Returns the slot's index and the slot.
    fn bindable(&self, nr: i32) -> Result<(usize, &Slot)> {
        let region = &self.region;
        if !region.running() {
            return Err(Errno::EDVSDCNOTRUN);
        }
        if nr == HARDWARE {
            return Err(Errno::EDVSBADPROC);
        }
        let idx = region.geo.index(nr).ok_or(Errno::EDVSRANGE)?;
        let slot = region.slot(idx).ok_or(Errno::EDVSRANGE)?;
        Ok((idx, slot))
    }

    /// Claim free slot `nr` for process `me`: the state machine shared by every kind of bind.
    fn claim(
        &self,
        nr: i32,
        name: &str,
        bell_host: Option<usize>,
        me: ProcessId,
    ) -> Result<(usize, Endpoint, OwnerWord)> {
        self.claim_with(nr, name, bell_host, me, &Claim::LOCAL)
    }

    /// [`Dc::claim`] of a slot of another kind (the proxy, a remote slot: see `remote.rs`).
    pub(crate) fn claim_with(
        &self,
        nr: i32,
        name: &str,
        bell_host: Option<usize>,
        me: ProcessId,
        how: &Claim,
    ) -> Result<(usize, Endpoint, OwnerWord)> {
        let region = &self.region;
        let (idx, slot) = self.bindable(nr)?;
        for _ in 0..4 {
            let w = slot.owner();
            if w.state() != SlotState::Free {
                if !cleanup::reap_if_dead(region, idx) && slot.owner() == w {
                    return Err(Errno::EDVSSLOTUSED);
                }
                continue;
            }
            let generation = how
                .generation
                .unwrap_or(w.generation() % endpoint::MAX_GENERATION);
            let binding = OwnerWord::new(SlotState::Binding, generation, me.pid);
            if slot
                .owner
                .compare_exchange(w.0, binding.0, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // The slot is ours to fill in; nobody else writes these fields until Bound.
            slot.owner_start.store(me.start, Ordering::Relaxed);
            let is_sys = region.geo.is_sysproc(idx);
            let p = Priv::default_for(is_sys, nr < 0);
            slot.allowed.store(p.allowed.0, Ordering::Relaxed);
            slot.level
                .store(how.level.unwrap_or(p.level), Ordering::Relaxed);
            slot.remote.store(how.remote.0, Ordering::Relaxed);
            for (w, v) in slot.ipc_to.iter().zip(p.ipc_to) {
                w.store(v, Ordering::Relaxed);
            }
            slot.flags.store(0, Ordering::Relaxed);
            slot.getfrom.store(NONE, Ordering::Relaxed);
            // Before the Release below: whoever sees Bound rings the right doorbell.
            let bell_at = bell_host.map_or(0, |h| i32::try_from(h + 1).unwrap_or(0));
            slot.bell_at.store(bell_at, Ordering::Relaxed);
            // A slot bound on behalf of another process: its owner is not running here.
            let cpu = if me == ProcessId::current() {
                wait::current_cpu()
            } else {
                -1
            };
            slot.cpu.store(cpu, Ordering::Relaxed);
            slot.mailbox.wokenup.store(0, Ordering::Relaxed);
            for c in [
                &slot.counters.sent,
                &slot.counters.received,
                &slot.counters.notified,
                &slot.counters.overruns,
                &slot.counters.handed,
            ] {
                c.store(0, Ordering::Relaxed);
            }
            slot.set_name(name);
            inbox::reset(&slot.inbox);
            for env in &slot.envelopes {
                let st = env.load();
                if st.phase() != Phase::Idle {
                    env.transition(st, EnvState::new(Phase::Idle, 0, st.seq()));
                }
            }
            let bound = OwnerWord::new(SlotState::Bound, generation, me.pid);
            // Release (in AcqRel): everything above is visible to whoever sees Bound.
            if slot
                .owner
                .compare_exchange(binding.0, bound.0, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return Err(Errno::EDVSSLOTUSED);
            }
            region.header().bind_bell.ring_all();
            return Ok((idx, endpoint::make(generation, nr), bound));
        }
        Err(Errno::EDVSSLOTUSED)
    }

    /// The count of bind events: it changes whenever a slot of this DC is bound or released,
    /// so a watcher (the node daemon announcing local binds) rescans only when it moved.
    pub fn bind_events(&self) -> u32 {
        self.region.header().bind_bell.rings()
    }

    /// `getep`: the endpoint bound by process `pid` in this DC (its first one), else
    /// `EDVSNOTBIND`.
    pub fn getep(&self, pid: u32) -> Result<Endpoint> {
        (0..self.region.geo.nr_slots)
            .find_map(|idx| {
                let w = self.region.slot(idx)?.owner();
                (w.state() == SlotState::Bound && w.pid() == pid)
                    .then(|| endpoint::make(w.generation(), self.region.geo.nr(idx)))
            })
            .ok_or(Errno::EDVSNOTBIND)
    }

    /// `getprocinfo` of slot `nr`; `EDVSRANGE` outside the table.
    pub fn getprocinfo(&self, nr: i32) -> Result<ProcInfo> {
        let idx = self.region.geo.index(nr).ok_or(Errno::EDVSRANGE)?;
        self.proc_info(idx, &self.holdings())
            .ok_or(Errno::EDVSRANGE)
    }

    /// What every endpoint holds in the pool (one scan).
    fn holdings(&self) -> HashMap<Endpoint, Holdings> {
        self.region
            .pool
            .as_ref()
            .map(|p| p.holdings())
            .unwrap_or_default()
    }

    /// `getprocinfo` of every slot that is not free.
    pub fn procs(&self) -> Vec<ProcInfo> {
        let holdings = self.holdings();
        (0..self.region.geo.nr_slots)
            .filter_map(|idx| self.proc_info(idx, &holdings))
            .filter(|p| p.state != SlotState::Free)
            .collect()
    }

    fn proc_info(&self, idx: usize, holdings: &HashMap<Endpoint, Holdings>) -> Option<ProcInfo> {
        let region = &self.region;
        let slot = region.slot(idx)?;
        let w = slot.owner();
        let nr = region.geo.nr(idx);
        let ep_of = |i: usize| {
            region.slot(i).map_or(NONE, |s| {
                endpoint::make(s.owner().generation(), region.geo.nr(i))
            })
        };
        let env = &slot.envelopes[SYNC];
        let st = env.load();
        let mut flags = slot.flags.load(Ordering::Relaxed) & !(FLAG_SENDING | FLAG_RECEIVING);
        let mut getfrom = NONE;
        let mut sendto = NONE;
        match st.phase() {
            // Held: a `send` to a remote slot, taken by the proxy, not yet delivered.
            Phase::PendingSend | Phase::PendingSendrec | Phase::Held => {
                flags |= FLAG_SENDING;
                sendto = endpoint::make(st.generation() as u32, region.geo.nr(st.peer() as usize));
                if st.phase() == Phase::PendingSendrec {
                    flags |= FLAG_RECEIVING;
                    getfrom = sendto;
                }
            }
            Phase::AwaitReply | Phase::Replying => {
                flags |= FLAG_RECEIVING;
                getfrom = ep_of(st.peer() as usize);
            }
            _ => {
                if slot.flags.load(Ordering::Relaxed) & FLAG_RECEIVING != 0 {
                    flags |= FLAG_RECEIVING;
                    getfrom = slot.getfrom.load(Ordering::Relaxed);
                }
            }
        }
        if flags & FLAG_WAITING == 0 {
            flags &= !(FLAG_SENDING | FLAG_RECEIVING);
        }
        let bound = w.state() != SlotState::Free;
        let kind = crate::remote::word(slot);
        Some(ProcInfo {
            node: if bound { kind.node() } else { None },
            proxy: bound && kind.is_proxy(),
            nr,
            endpoint: endpoint::make(w.generation(), nr),
            state: w.state(),
            pid: if bound { w.pid() } else { 0 },
            owner_alive: bound && cleanup::owner_alive(slot, w),
            name: if bound { slot.name() } else { String::new() },
            flags: if bound { flags } else { 0 },
            getfrom,
            sendto,
            sent: slot.counters.sent.load(Ordering::Relaxed),
            received: slot.counters.received.load(Ordering::Relaxed),
            received_direct: slot.counters.handed.load(Ordering::Relaxed),
            notified: slot.counters.notified.load(Ordering::Relaxed),
            notify_overruns: slot.counters.overruns.load(Ordering::Relaxed),
            system: region.geo.is_sysproc(idx),
            level: slot.level.load(Ordering::Relaxed),
            allowed: CallSet(slot.allowed.load(Ordering::Relaxed)),
            holdings: if bound {
                holdings
                    .get(&endpoint::make(w.generation(), nr))
                    .copied()
                    .unwrap_or_default()
            } else {
                Holdings::default()
            },
        })
    }

    /// Release every slot whose owner died; returns how many. (`dvs ps` and `bind` do this as a
    /// side effect; blocked peers do it for the slot they wait on.)
    pub fn reap_dead(&self) -> usize {
        (0..self.region.geo.nr_slots)
            .filter(|&idx| cleanup::reap_if_dead(&self.region, idx))
            .count()
    }

    /// `wait4bind`: block until the slot named by `ep` is bound and return its endpoint. `SELF`
    /// waits until the calling process holds a slot. Errors: `EDVSRANGE`, `EDVSAGAIN` (NOWAIT),
    /// `EDVSTIMEDOUT`, `EDVSDCNOTRUN`.
    pub fn wait4bind(&self, ep: Endpoint, timeout: Timeout) -> Result<Endpoint> {
        let target = self.bind_target(ep)?;
        self.wait_bind_event(timeout, || match target {
            None => self.getep(ProcessId::current().pid).ok(),
            Some(idx) => {
                let w = self.region.slot(idx)?.owner();
                (w.state() == SlotState::Bound)
                    .then(|| endpoint::make(w.generation(), self.region.geo.nr(idx)))
            }
        })
    }

    /// `wait4bind` with the unbind variant: block until `ep` is no longer bound (its slot is
    /// free or bound at another generation).
    pub fn wait4unbind(&self, ep: Endpoint, timeout: Timeout) -> Result<()> {
        let idx = self.bind_target(ep)?.ok_or(Errno::EDVSENDPOINT)?;
        self.wait_bind_event(timeout, || {
            let slot = self.region.slot(idx)?;
            let w = slot.owner();
            let gone = w.state() != SlotState::Bound
                || endpoint::make(w.generation(), self.region.geo.nr(idx)) != ep;
            if !gone {
                cleanup::reap_if_dead(&self.region, idx);
            }
            gone.then_some(())
        })
    }

    fn bind_target(&self, ep: Endpoint) -> Result<Option<usize>> {
        if ep == SELF {
            return Ok(None);
        }
        self.region
            .geo
            .index(endpoint::nr(ep))
            .map(Some)
            .ok_or(Errno::EDVSRANGE)
    }

    fn wait_bind_event<T>(&self, timeout: Timeout, probe: impl FnMut() -> Option<T>) -> Result<T> {
        struct BindWait<'a, F> {
            region: &'a Region,
            probe: F,
        }
        impl<T, F: FnMut() -> Option<T>> Blocked<T> for BindWait<'_, F> {
            fn check(&mut self) -> Option<Result<T>> {
                if !self.region.running() {
                    return Some(Err(Errno::EDVSDCNOTRUN));
                }
                (self.probe)().map(Ok)
            }
            fn tick(&mut self, _first: bool) -> Option<Result<T>> {
                None
            }
            fn expire(&mut self, why: Errno) -> Option<Result<T>> {
                Some(Err(why))
            }
        }
        let cpu = AtomicI32::new(-1);
        wait::wait(
            &Wait {
                bell: &self.region.header().bind_bell,
                my_cpu: &cpu,
                peer_cpu: None,
                watching: true,
                policy: WaitPolicy::Block,
                timeout,
                spin_only: None,
            },
            &mut BindWait {
                region: &self.region,
                probe,
            },
        )
    }
}

/// How [`Dc::claim_with`] fills in a slot beyond what every bind does.
pub(crate) struct Claim {
    /// Bind at this generation instead of the slot's next one (a remote endpoint's).
    pub(crate) generation: Option<u32>,
    /// The slot's kind (`remote.rs`).
    pub(crate) remote: crate::remote::RemoteWord,
    /// The privilege level, instead of the default for the slot.
    pub(crate) level: Option<u32>,
}

impl Claim {
    /// An ordinary local bind.
    const LOCAL: Claim = Claim {
        generation: None,
        remote: crate::remote::RemoteWord::LOCAL,
        level: None,
    };
}

impl core::fmt::Debug for Dc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Dc")
            .field("name", &self.region.name)
            .field("path", &self.region.path)
            .finish()
    }
}
