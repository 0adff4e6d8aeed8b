//! The DC region: one file per DC under the region directory, mapped shared by every process of
//! the DC.
//!
//! Layout: a 4 KiB header page, then the slot table (`nr_tasks + nr_procs` [`Slot`]s). The header
//! is validated field by field when a region is opened, and the geometry the opener computes from
//! it is kept in private memory: later scribbles on the header cannot move any bound.
//!
//! The region directory is `/dev/shm`, or `$M3IPC_SHM_DIR` when set (tests use private ones).
//! Limits: a process that truncates the file makes the others fault (SIGBUS) on their next touch;
//! the file's mode is the DC's trust boundary, exactly as `/dev/dvk`'s was.

use crate::doorbell::Doorbell;
use crate::endpoint::MAX_TASKS;
use crate::errno::Errno;
use crate::mailbox::ENVELOPES;
use crate::owner::ProcessId;
use crate::pool::Pool;
use crate::pool::file::PoolFile;
use crate::slot::{MAX_SLOTS, Slot};
use crate::takeover::{RegionLock, TakenOver};
use memmap2::{MmapOptions, MmapRaw};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `"M3IPC-DC"` in little-endian.
const MAGIC: u64 = u64::from_le_bytes(*b"M3IPC-DC");
/// Bumped whenever the meaning of the layout changes.
pub const LAYOUT_VERSION: u32 = 7;
/// Bytes before the slot table.
const HEADER_PAGE: usize = 4096;
/// Prefix of region file names.
pub const FILE_PREFIX: &str = "m3ipc-dc-";
/// Longest DC name, in bytes (the original's MAXDCNAME less its NUL).
pub const MAX_NAME: usize = 15;
/// Number of DC ids and node ids (the original's NR_DCS and NR_NODES).
pub const MAX_DCS: u32 = 32;
/// See [`MAX_DCS`].
pub const MAX_NODES: u32 = 32;

const STATE_INIT: u32 = 0;
pub(crate) const STATE_RUNNING: u32 = 1;
pub(crate) const STATE_REMOVED: u32 = 2;

/// The header page, as it lies in the file.
#[repr(C)]
pub(crate) struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    state: AtomicU32,
    layout_hash: AtomicU64,
    dcid: AtomicU32,
    node: AtomicU32,
    nr_tasks: AtomicU32,
    nr_procs: AtomicU32,
    nr_sysprocs: AtomicU32,
    slot_size: AtomicU32,
    total_len: AtomicU64,
    creator_pid: AtomicU32,
    mode: AtomicU32,
    created_at: AtomicU64,
    /// Bytes of data in the DC's pool file (0: no pool).
    pool_bytes: AtomicU64,
    name: [AtomicU64; 2],
    /// The creator's start time (clock ticks since boot, as `/proc/PID/stat` gives it): with
    /// `creator_pid`, names the creator even after its PID is reused (0: unknown).
    creator_start: AtomicU64,
    /// Rung on every bind and unbind (for `wait4bind`).
    pub(crate) bind_bell: Doorbell,
}

const _: () = assert!(core::mem::size_of::<Header>() <= HEADER_PAGE);

/// A hash of every constant the layout depends on: two builds that disagree on any of them refuse
/// each other's regions.
pub(crate) fn layout_hash() -> u64 {
    let parts = [
        LAYOUT_VERSION as u64,
        core::mem::size_of::<Header>() as u64,
        core::mem::size_of::<Slot>() as u64,
        ENVELOPES as u64,
        MAX_SLOTS as u64,
        MAX_TASKS as u64,
        HEADER_PAGE as u64,
    ];
    // FNV-1a over the little-endian bytes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Limits and identity of a DC, as given to `dc create`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcConfig {
    /// DC id, 0..32 (the original's `dcid`).
    pub dcid: u32,
    /// This node's id, 0..32.
    pub node: u32,
    /// Process slots: servers and users, `nr` 0..nr_procs.
    pub nr_procs: u32,
    /// Task slots, `nr` -nr_tasks..-1; at most 35.
    pub nr_tasks: u32,
    /// Slots (counted from the first task) that are system processes.
    pub nr_sysprocs: u32,
    /// File mode of the region and its pool (0600 by default; 0660 to share it with a group).
    pub mode: u32,
    /// Bytes of the DC's buffer pool (`m3ipc-pool-NAME` next to the region): a multiple of
    /// 1 MiB, at most 16 GiB; 0 for no pool (buffer calls then fail with `EDVSNODEV`). The
    /// file is sparse: memory is used as buffers are touched.
    pub pool_bytes: u64,
}

impl Default for DcConfig {
    /// The original's typical DC: 221 processes, 34 tasks, 64 system processes.
    fn default() -> Self {
        DcConfig {
            dcid: 0,
            node: 0,
            nr_procs: 221,
            nr_tasks: 34,
            nr_sysprocs: 64,
            mode: 0o600,
            pool_bytes: crate::pool::DEFAULT_POOL_BYTES,
        }
    }
}

impl DcConfig {
    /// Check the limits: `nr_tasks <= 35`, `nr_tasks < nr_sysprocs <= nr_tasks + nr_procs`,
    /// `nr_tasks + nr_procs <= 1024`, ids below 32 (else the errors below); `pool_bytes` a
    /// multiple of 1 MiB (else `EDVSALIGN`) and at most 16 GiB (else `EDVSFBIG`).
    pub fn validate(&self) -> Result<(), Errno> {
        if self.dcid >= MAX_DCS {
            return Err(Errno::EDVSBADDCID);
        }
        if self.node >= MAX_NODES {
            return Err(Errno::EDVSBADNODEID);
        }
        let slots = self.nr_tasks as u64 + self.nr_procs as u64;
        if self.nr_tasks > MAX_TASKS as u32
            || self.nr_procs == 0
            || slots > MAX_SLOTS as u64
            || self.nr_sysprocs <= self.nr_tasks
            || self.nr_sysprocs as u64 > slots
        {
            return Err(Errno::EDVSBADRANGE);
        }
        if self.mode & !0o777 != 0 || self.mode & 0o600 != 0o600 {
            return Err(Errno::EDVSBADVALUE);
        }
        if !self.pool_bytes.is_multiple_of(crate::pool::POOL_GRANULE) {
            return Err(Errno::EDVSALIGN);
        }
        if self.pool_bytes > crate::pool::MAX_POOL_BYTES {
            return Err(Errno::EDVSFBIG);
        }
        Ok(())
    }
}

/// What the opener derived from a validated header; private, so it cannot be scribbled on.
#[derive(Clone, Debug)]
pub(crate) struct Geometry {
    pub(crate) config: DcConfig,
    pub(crate) nr_slots: usize,
    pub(crate) total_len: usize,
}

impl Geometry {
    fn of(config: DcConfig) -> Geometry {
        let nr_slots = (config.nr_tasks + config.nr_procs) as usize;
        Geometry {
            total_len: HEADER_PAGE + nr_slots * core::mem::size_of::<Slot>(),
            nr_slots,
            config,
        }
    }

    /// Slot index of `nr`, if in range.
    pub(crate) fn index(&self, nr: i32) -> Option<usize> {
        let idx = nr as i64 + self.config.nr_tasks as i64;
        (0..self.nr_slots as i64)
            .contains(&idx)
            .then_some(idx as usize)
    }

    /// `nr` of slot index `idx`.
    pub(crate) fn nr(&self, idx: usize) -> i32 {
        idx as i32 - self.config.nr_tasks as i32
    }

    /// Whether slot `idx` is a system process slot.
    pub(crate) fn is_sysproc(&self, idx: usize) -> bool {
        idx < self.config.nr_sysprocs as usize
    }
}

/// Why a region could not be created, opened or removed.
#[derive(Debug, thiserror::Error)]
pub enum DcError {
    /// The name is empty, too long, or has characters other than `[A-Za-z0-9._-]`.
    #[error("bad DC name {name:?}: {why}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The limits are inconsistent.
    #[error("bad DC limits: {0}")]
    BadConfig(Errno),
    /// A DC with this name (or id) already exists.
    #[error("DC {0:?} already exists")]
    Exists(String),
    /// A DC with this name exists and a live process keeps it: its creator, or the owner of
    /// one of its slots (a DC whose creator and slot owners are all dead may be taken over).
    #[error("DC {name:?} already exists and is in use: {holder}")]
    InUse {
        /// The DC's name.
        name: String,
        /// Which process holds it, in words (with its PID).
        holder: String,
    },
    /// Every DC id is taken (see [`MAX_DCS`]).
    #[error("cannot create DC {0:?}: all {MAX_DCS} DC ids are in use")]
    NoFreeId(String),
    /// No DC with this name (or id) exists.
    #[error("no DC named {0:?} (looked in {1})")]
    NotFound(String, String),
    /// The file's header does not describe a region this build can use.
    #[error("region {path}: {what} is {found}, expected {expected}")]
    BadHeader {
        /// The region file.
        path: String,
        /// The header field that differs.
        what: &'static str,
        /// Its value in the file.
        found: String,
        /// What this build expects.
        expected: String,
    },
    /// The DC is being created and did not finish in time, or it was removed.
    #[error("DC {0:?} is not running")]
    NotRunning(String),
    /// An operating-system error.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The error.
        source: io::Error,
    },
}

impl DcError {
    /// The DVK error number closest to this error (for the C ABI).
    pub fn errno(&self) -> Errno {
        match self {
            DcError::BadName { .. } => Errno::EDVSNAMESIZE,
            DcError::BadConfig(e) => *e,
            DcError::Exists(_) | DcError::InUse { .. } | DcError::NoFreeId(_) => Errno::EDVSRSCBUSY,
            DcError::NotFound(..) | DcError::NotRunning(_) => Errno::EDVSDCNOTRUN,
            DcError::BadHeader { .. } => Errno::EDVSBADVALUE,
            DcError::Io { source, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied => Errno::EDVSACCES,
                _ => Errno::EDVSIO,
            },
        }
    }
}

/// The directory holding region files.
pub fn region_dir() -> PathBuf {
    std::env::var_os("M3IPC_SHM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"))
}

fn check_name(name: &str) -> Result<(), DcError> {
    let bad = |why| {
        Err(DcError::BadName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME {
        return bad("longer than 15 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        || name.starts_with('.')
    {
        return bad("only letters, digits, '.', '_' and '-' are allowed, not first '.'");
    }
    Ok(())
}

pub(crate) fn path_of(name: &str) -> PathBuf {
    region_dir().join(format!("{FILE_PREFIX}{name}"))
}

/// Turn an I/O error on `path` into a [`DcError`] that names the file.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DcError + '_ {
    move |source| DcError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A mapped region.
pub(crate) struct Region {
    map: MmapRaw,
    /// The DC's buffer pool, if it has one.
    pub(crate) pool: Option<Pool>,
    pub(crate) geo: Geometry,
    pub(crate) name: String,
    pub(crate) path: PathBuf,
}

impl Region {
    /// Create as [`Region::create`] does, with the lowest DC id no other DC of the region
    /// directory uses (`config.dcid` is ignored). Another process may take the id between the
    /// look and the create; the next look then skips it (a few tries, then `NoFreeId`).
    pub(crate) fn create_with_free_id(name: &str, config: &DcConfig) -> Result<Region, DcError> {
        for _ in 0..4 {
            let used: Vec<u32> = list()?
                .iter()
                .filter_map(|n| Region::open(n).ok())
                .map(|r| r.geo.config.dcid)
                .collect();
            let Some(dcid) = (0..MAX_DCS).find(|id| !used.contains(id)) else {
                break;
            };
            match Region::create(
                name,
                &DcConfig {
                    dcid,
                    ..config.clone()
                },
            ) {
                // The name itself exists: trying other ids would not help.
                Err(DcError::Exists(_)) if path_of(name).exists() => {
                    return Err(DcError::Exists(name.to_string()));
                }
                Err(DcError::Exists(_)) => continue,
                r => return r,
            }
        }
        Err(DcError::NoFreeId(name.to_string()))
    }

    /// Create a new region file (exclusively) and initialize it.
    pub(crate) fn create(name: &str, config: &DcConfig) -> Result<Region, DcError> {
        check_name(name)?;
        config.validate().map_err(DcError::BadConfig)?;
        if let Some(other) = list()?
            .into_iter()
            .find(|n| Region::open(n).is_ok_and(|r| r.geo.config.dcid == config.dcid))
        {
            return Err(DcError::Exists(format!("{other} (dcid {})", config.dcid)));
        }
        let path = path_of(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(config.mode)
            .open(&path)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    DcError::Exists(name.to_string())
                } else {
                    io_err(&path)(e)
                }
            })?;
        let geo = Geometry::of(config.clone());
        let made = (|| {
            // The mode given to open() is narrowed by the umask (a 0660 request would become
            // 0640 under the usual 022): set exactly the mode asked for.
            file.set_permissions(std::fs::Permissions::from_mode(config.mode))
                .map_err(io_err(&path))?;
            file.set_len(geo.total_len as u64).map_err(io_err(&path))?;
            let map = map(&file, geo.total_len, &path)?;
            let mut region = Region {
                map,
                pool: None,
                geo,
                name: name.to_string(),
                path: path.clone(),
            };
            // Who creates it, first: a taker that finds this region still INIT judges it by
            // whether this process lives (see `takeover.rs`).
            region.stamp_creator();
            // The pool next: the region is published (RUNNING) only with its pool in place.
            region.pool = match config.pool_bytes {
                0 => None,
                n => Some(Pool::new(PoolFile::create(name, n, config.mode)?)),
            };
            region.init_header();
            Ok(region)
        })();
        if made.is_err() {
            let _ = std::fs::remove_file(&path);
            crate::pool::file::remove(name);
        }
        made
    }

    /// Record the calling process as the creator. Relaxed: a taker reads these only under the
    /// region lock, after this process has died (its stores are then long visible), or sees 0
    /// and waits out the creation grace period.
    fn stamp_creator(&self) {
        let h = self.header();
        let me = ProcessId::current();
        h.creator_start.store(me.start, Ordering::Relaxed);
        h.creator_pid.store(me.pid, Ordering::Relaxed);
    }

    fn init_header(&self) {
        let h = self.header();
        let c = &self.geo.config;
        // The file is fresh and zero-filled: every slot is Free at generation 0, every envelope
        // Idle. Relaxed stores, published by the Release store of the state.
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.layout_hash.store(layout_hash(), Ordering::Relaxed);
        h.dcid.store(c.dcid, Ordering::Relaxed);
        h.node.store(c.node, Ordering::Relaxed);
        h.nr_tasks.store(c.nr_tasks, Ordering::Relaxed);
        h.nr_procs.store(c.nr_procs, Ordering::Relaxed);
        h.nr_sysprocs.store(c.nr_sysprocs, Ordering::Relaxed);
        h.slot_size
            .store(core::mem::size_of::<Slot>() as u32, Ordering::Relaxed);
        h.total_len
            .store(self.geo.total_len as u64, Ordering::Relaxed);
        h.mode.store(c.mode, Ordering::Relaxed);
        h.pool_bytes.store(c.pool_bytes, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        h.created_at.store(now, Ordering::Relaxed);
        let mut bytes = [0u8; 16];
        bytes[..self.name.len()].copy_from_slice(self.name.as_bytes());
        for (i, w) in h.name.iter().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        h.state.store(STATE_RUNNING, Ordering::Release);
    }

    /// Open and validate an existing region.
    pub(crate) fn open(name: &str) -> Result<Region, DcError> {
        Region::open_with(name, true, Duration::from_secs(1))
    }

    /// Map only the header page of `file` (the region file of `name` at `path`), to look at
    /// its state and creator before anything else is trusted. `None` when the file is shorter
    /// than the header page.
    pub(crate) fn probe(file: &File, name: &str, path: &Path) -> Result<Option<Region>, DcError> {
        let len = file.metadata().map_err(io_err(path))?.len();
        if len < HEADER_PAGE as u64 {
            return Ok(None);
        }
        Ok(Some(Region {
            map: map(file, HEADER_PAGE, path)?,
            pool: None,
            geo: Geometry::of(DcConfig::default()),
            name: name.to_string(),
            path: path.to_path_buf(),
        }))
    }

    /// Open and validate an existing region, with its pool if `with_pool` (a region opened
    /// without shows no pool), waiting at most `init_wait` for a creator to finish.
    pub(crate) fn open_with(
        name: &str,
        with_pool: bool,
        init_wait: Duration,
    ) -> Result<Region, DcError> {
        check_name(name)?;
        let path = path_of(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    DcError::NotFound(name.to_string(), region_dir().display().to_string())
                } else {
                    io_err(&path)(e)
                }
            })?;
        let len = file.metadata().map_err(io_err(&path))?.len() as usize;
        let bad = |what, found: String, expected: String| DcError::BadHeader {
            path: path.display().to_string(),
            what,
            found,
            expected,
        };
        if len < HEADER_PAGE {
            return Err(bad(
                "file length",
                len.to_string(),
                format!("at least {HEADER_PAGE}"),
            ));
        }
        let header_map = map(&file, HEADER_PAGE, &path)?;
        let probe = Region {
            map: header_map,
            pool: None,
            geo: Geometry::of(DcConfig::default()),
            name: name.to_string(),
            path: path.clone(),
        };
        let h = probe.header();
        // A creator may still be filling the header in: wait a little, never forever.
        let start = Instant::now();
        loop {
            match h.state.load(Ordering::Acquire) {
                STATE_RUNNING => break,
                STATE_INIT if start.elapsed() < init_wait => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                STATE_REMOVED | STATE_INIT => return Err(DcError::NotRunning(name.to_string())),
                s => return Err(bad("state", s.to_string(), "0, 1 or 2".into())),
            }
        }
        let magic = h.magic.load(Ordering::Relaxed);
        if magic != MAGIC {
            return Err(bad("magic", format!("{magic:#x}"), format!("{MAGIC:#x}")));
        }
        let version = h.version.load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(bad(
                "layout version",
                version.to_string(),
                LAYOUT_VERSION.to_string(),
            ));
        }
        let hash = h.layout_hash.load(Ordering::Relaxed);
        if hash != layout_hash() {
            return Err(bad(
                "layout hash",
                format!("{hash:#x}"),
                format!("{:#x} (built with other constants)", layout_hash()),
            ));
        }
        let slot_size = h.slot_size.load(Ordering::Relaxed) as usize;
        if slot_size != core::mem::size_of::<Slot>() {
            return Err(bad(
                "slot size",
                slot_size.to_string(),
                core::mem::size_of::<Slot>().to_string(),
            ));
        }
        let config = DcConfig {
            dcid: h.dcid.load(Ordering::Relaxed),
            node: h.node.load(Ordering::Relaxed),
            nr_procs: h.nr_procs.load(Ordering::Relaxed),
            nr_tasks: h.nr_tasks.load(Ordering::Relaxed),
            nr_sysprocs: h.nr_sysprocs.load(Ordering::Relaxed),
            mode: h.mode.load(Ordering::Relaxed),
            pool_bytes: h.pool_bytes.load(Ordering::Relaxed),
        };
        if let Err(e) = config.validate() {
            return Err(bad(
                "limits",
                format!("{config:?}"),
                format!("consistent limits ({e})"),
            ));
        }
        let geo = Geometry::of(config);
        let total = h.total_len.load(Ordering::Relaxed);
        if total != geo.total_len as u64 || len != geo.total_len {
            return Err(bad(
                "length",
                format!("{total} (file {len})"),
                geo.total_len.to_string(),
            ));
        }
        drop(probe);
        let map = map(&file, geo.total_len, &path)?;
        let pool = match geo.config.pool_bytes {
            0 => None,
            _ if !with_pool => None,
            n => Some(Pool::new(PoolFile::open(name, n)?)),
        };
        Ok(Region {
            map,
            pool,
            geo,
            name: name.to_string(),
            path,
        })
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_PAGE bytes (checked or created so), page-aligned,
        // and lives as long as `self`. `Header` holds only atomics, valid for any bit pattern,
        // and atomics may be shared with concurrent writers in other processes.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    /// The slot at index `idx`, or `None` outside the table.
    /// The doorbell that wakes `slot`'s owner: its own, or the one it shares (`Slot::bell_at`).
    /// One hop only, so a hostile redirect cannot make a loop; a bad value means its own.
    #[inline]
    pub(crate) fn bell<'a>(&'a self, slot: &'a Slot) -> &'a Doorbell {
        // Relaxed: the redirect is written before the Release that publishes the binding, and
        // every caller has read the owner word (Acquire) of `slot` first. A value changed by
        // a hostile process only sends wakes to the wrong bell; waiters then notice on their
        // next liveness tick.
        let at = slot.bell_at.load(Ordering::Relaxed);
        match usize::try_from(at).ok().and_then(|n| n.checked_sub(1)) {
            Some(host) => self
                .slot(host)
                .map_or(&slot.mailbox.bell, |h| &h.mailbox.bell),
            None => &slot.mailbox.bell,
        }
    }

    #[inline]
    pub(crate) fn slot(&self, idx: usize) -> Option<&Slot> {
        if idx >= self.geo.nr_slots {
            return None;
        }
        let off = HEADER_PAGE + idx * core::mem::size_of::<Slot>();
        // SAFETY: idx < nr_slots, and the mapping is `geo.total_len` = HEADER_PAGE + nr_slots *
        // size_of::<Slot>() bytes, so the slot lies inside it. HEADER_PAGE and size_of::<Slot>()
        // are multiples of 64 and the mapping is page-aligned, so the slot is aligned. `Slot`
        // holds only atomics (valid for any bit pattern, shareable with concurrent writers), and
        // the mapping lives as long as `self`.
        Some(unsafe { &*(self.map.as_ptr().add(off) as *const Slot) })
    }

    /// Whether the DC still runs (not removed).
    pub(crate) fn running(&self) -> bool {
        self.header().state.load(Ordering::Relaxed) == STATE_RUNNING
    }

    /// Creator PID and creation time (seconds since the epoch).
    pub(crate) fn creator(&self) -> (u32, u64) {
        let h = self.header();
        (
            h.creator_pid.load(Ordering::Relaxed),
            h.created_at.load(Ordering::Relaxed),
        )
    }

    /// The creator as a process identity (start time 0 when it was unknown).
    pub(crate) fn creator_id(&self) -> ProcessId {
        let h = self.header();
        ProcessId {
            pid: h.creator_pid.load(Ordering::Relaxed),
            start: h.creator_start.load(Ordering::Relaxed),
        }
    }

    /// The header's state word (`STATE_*`).
    pub(crate) fn state(&self) -> u32 {
        self.header().state.load(Ordering::Acquire)
    }
}

fn map(file: &File, len: usize, path: &Path) -> Result<MmapRaw, DcError> {
    MmapOptions::new()
        .len(len)
        .map_raw(file)
        .map_err(io_err(path))
}

/// Remove a DC's region: mark it removed (so attached processes' calls fail with
/// `EDVSDCNOTRUN`), then unlink the file and the pool file. Done under the region lock (see
/// `takeover.rs`), so that it never unlinks a region another process has just taken over.
pub(crate) fn remove(name: &str) -> Result<(), DcError> {
    check_name(name)?;
    match RegionLock::acquire(name)? {
        Some(lock) => remove_locked(name, &lock, Duration::from_secs(1)),
        None => {
            crate::pool::file::remove(name);
            Err(DcError::NotFound(
                name.to_string(),
                region_dir().display().to_string(),
            ))
        }
    }
}

/// [`remove`], with the region of `name` locked by `lock`; waits at most `init_wait` for a
/// creator to finish the header before unlinking without marking.
pub(crate) fn remove_locked(
    name: &str,
    lock: &RegionLock,
    init_wait: Duration,
) -> Result<(), DcError> {
    // Under the lock the path names the locked file, so this opens that very region.
    if let Ok(r) = Region::open_with(name, false, init_wait) {
        r.header().state.store(STATE_REMOVED, Ordering::Release);
        for idx in 0..r.geo.nr_slots {
            if let Some(s) = r.slot(idx) {
                s.mailbox.bell.ring();
            }
        }
        r.header().bind_bell.ring_all();
    }
    crate::pool::file::remove(name);
    std::fs::remove_file(&lock.path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            DcError::NotFound(name.to_string(), region_dir().display().to_string())
        } else {
            io_err(&lock.path)(e)
        }
    })
}

/// Create the region of `name` as [`Region::create`] does (or
/// [`Region::create_with_free_id`] when `free_id`), taking over a stale region of that name
/// first (see `takeover.rs`). Errors: those of the create; [`DcError::InUse`] when a live
/// process keeps the existing region.
pub(crate) fn create_taking_over(
    name: &str,
    config: &DcConfig,
    free_id: bool,
) -> Result<(Region, Option<TakenOver>), DcError> {
    let mut taken = None;
    // Each round either creates, fails for another reason, or removes a stale region; a
    // concurrent taker can make a round lose (its region then has a live creator: refused).
    for _ in 0..4 {
        let made = if free_id {
            Region::create_with_free_id(name, config)
        } else {
            Region::create(name, config)
        };
        match made {
            // The name itself exists (not only the id, elsewhere): judge that region.
            Err(DcError::Exists(_)) if path_of(name).exists() => {}
            r => return r.map(|r| (r, taken)),
        }
        if let Some(t) = crate::takeover::remove_if_stale(name)? {
            taken = Some(t);
        }
    }
    Err(DcError::Exists(name.to_string()))
}

/// Names of the regions in the region directory.
pub(crate) fn list() -> Result<Vec<String>, DcError> {
    let dir = region_dir();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(FILE_PREFIX))
                .filter(|n| check_name(n).is_ok())
                .map(str::to_string)
        })
        .collect();
    names.sort();
    Ok(names)
}
