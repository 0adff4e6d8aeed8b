//! `region_scribble`: a live region whose header, slots, mailboxes and pool metadata are
//! overwritten with fuzzer bytes between the calls of a scripted workload.
//!
//! Each input gets a fresh DC (a 1 MiB pool, two task slots, eight process slots) with three
//! endpoints bound in this process: S (a system process) and the users U and V. The input is a
//! script: calls by any of them (messages, notifications, receives, replies, buffers, grants,
//! views, queries), all of which never wait, interleaved with scribbles: bytes written at an
//! offset of the region header, the slot table (slots hold the mailboxes), the pool header or
//! the pool's metadata (chunk states, bitmaps, page words, grant table), through a mapping of
//! our own, as a hostile process of the DC could. Every call must return a value or an error,
//! never panic, hang or touch memory outside the two files (AddressSanitizer watches that); the
//! endpoints must then unbind and the DC be removed.

use crate::shm;
use arbitrary::{Arbitrary, Unstructured};
use m3ipc::pool::{Access, GrantId, Handle};
use m3ipc::{ANY, Dc, DcConfig, Endpoint, Message, Proc, Timeout};
use memmap2::MmapRaw;
use std::fs::OpenOptions;
use std::sync::Mutex;

const NAME: &str = "fz-scribble";
/// Most steps of one script.
const MAX_STEPS: usize = 96;
/// Pool size: one 1 MiB chunk of data, after the metadata.
const POOL: u64 = 1 << 20;
/// Header page of the region and of the pool file.
const PAGE: usize = 4096;

static LOCK: Mutex<()> = Mutex::new(());

/// One of the three endpoints.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Who {
    /// The system process.
    S,
    /// A user.
    U,
    /// Another user.
    V,
}

/// Where a scribble lands.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Area {
    /// The region's header page.
    Header,
    /// The slot table (slots and their mailboxes).
    Slots,
    /// The pool file's header page.
    PoolHeader,
    /// The pool's metadata: chunk states, bitmaps, page words, grants.
    PoolMeta,
}

/// A value a scribble writes.
#[derive(Arbitrary, Clone, Debug)]
pub enum Bytes {
    /// Raw bytes (at most 64 used).
    Raw(Vec<u8>),
    /// One little-endian word, at an 8-byte aligned offset.
    Word(u64),
    /// One word holding this process's PID (what a live owner looks like).
    OurPid,
}

/// One step of the script.
#[allow(missing_docs)] // The fields are the calls' arguments, named as there.
#[derive(Arbitrary, Clone, Debug)]
pub enum Step {
    /// Overwrite bytes.
    Scribble {
        area: Area,
        offset: u32,
        bytes: Bytes,
    },
    /// `senda` from one to another (the word goes in the payload).
    Senda { from: Who, to: Who, word: u64 },
    /// `send` with `NoWait`.
    Send { from: Who, to: Who, m_type: i32 },
    /// `notify`.
    Notify { from: Who, to: Who },
    /// `receive` with `NoWait`, from anyone or from one.
    Receive { who: Who, from: Option<Who> },
    /// `reply` to another.
    Reply { from: Who, to: Who },
    /// `alloc_buffer`.
    Alloc { who: Who, len: u16 },
    /// `give` the last buffer seen.
    Give { who: Who, to: Who },
    /// `release_buffer` of the last buffer seen.
    Release { who: Who },
    /// `grant` on the last buffer seen, then `granted` by the grantee and a read.
    Grant {
        who: Who,
        to: Who,
        off: u16,
        len: u16,
    },
    /// `revoke` the last grant seen.
    Revoke { who: Who },
    /// `buffer` of the last buffer seen, then a write and a read through the view.
    View { who: Who, off: u16 },
    /// `info`, `procs`, `getprocinfo` and `pool_info`.
    Query,
    /// `getpriv` of another.
    GetPriv { who: Who, of: Who },
    /// `reap_dead`.
    Reap,
}

struct Live {
    dc: Dc,
    procs: [Option<Proc>; 3],
    region: MmapRaw,
    pool: MmapRaw,
    last_handle: u64,
    last_grant: u64,
}

/// Run one input.
pub fn run(data: &[u8]) {
    shm::private_dir();
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    shm::remove_dc(NAME);
    if let Some(mut live) = setup() {
        let mut u = Unstructured::new(data);
        for _ in 0..MAX_STEPS {
            if u.is_empty() {
                break;
            }
            let Ok(step) = Step::arbitrary(&mut u) else {
                break;
            };
            let t = std::time::Instant::now();
            live.step(&step);
            if crate::trace() {
                eprintln!("{step:?} ({:?})", t.elapsed());
            }
        }
        // Unbind (each may fail on a scribbled slot, never panic), then remove the DC.
        for p in live.procs.iter_mut() {
            if let Some(p) = p.take() {
                let t = std::time::Instant::now();
                let r = p.unbind();
                if crate::trace() {
                    eprintln!("unbind: {r:?} ({:?})", t.elapsed());
                }
            }
        }
        let _ = live.dc.info();
    }
    shm::remove_dc(NAME);
}

fn setup() -> Option<Live> {
    let config = DcConfig {
        dcid: 1,
        node: 0,
        nr_procs: 8,
        nr_tasks: 2,
        nr_sysprocs: 4,
        mode: 0o600,
        pool_bytes: POOL,
    };
    let dc = match Dc::create(NAME, &config) {
        Ok(dc) => dc,
        // The fuzzer cannot go on without its DC: this is a setup failure, not a finding.
        Err(e) => panic!("region_scribble: cannot create the DC: {e}"),
    };
    let procs = [dc.bind(0).ok(), dc.bind(5).ok(), dc.bind(6).ok()];
    let region = map(dc.path())?;
    let pool_path = m3ipc::region_dir().join(format!("{}{NAME}", m3ipc::pool::POOL_FILE_PREFIX));
    let pool = map(&pool_path)?;
    Some(Live {
        dc,
        procs,
        region,
        pool,
        last_handle: 0,
        last_grant: 0,
    })
}

/// Our own shared mapping of a file of the DC: the hostile process's view.
fn map(path: &std::path::Path) -> Option<MmapRaw> {
    let file = OpenOptions::new().read(true).write(true).open(path).ok()?;
    MmapRaw::map_raw(&file).ok()
}

impl Live {
    fn proc(&self, w: Who) -> Option<&Proc> {
        self.procs[w as usize].as_ref()
    }

    fn ep(&self, w: Who) -> Endpoint {
        self.proc(w).map_or(m3ipc::NONE, Proc::endpoint)
    }

    fn step(&mut self, step: &Step) {
        match *step {
            Step::Scribble {
                area,
                offset,
                ref bytes,
            } => self.scribble(area, offset as usize, bytes),
            Step::Senda { from, to, word } => {
                let mut m = Message::new(7);
                m.payload[0] = word;
                if let Some(p) = self.proc(from) {
                    let _ = p.senda(self.ep(to), &m);
                }
            }
            Step::Send { from, to, m_type } => {
                if let Some(p) = self.proc(from) {
                    let _ = p.send(self.ep(to), &Message::new(m_type), Timeout::NoWait);
                }
            }
            Step::Notify { from, to } => {
                if let Some(p) = self.proc(from) {
                    let _ = p.notify(self.ep(to));
                }
            }
            Step::Receive { who, from } => {
                let src = from.map_or(ANY, |f| self.ep(f));
                if let Some(p) = self.proc(who) {
                    let mut m = Message::default();
                    let _ = p.receive(src, &mut m, Timeout::NoWait);
                }
            }
            Step::Reply { from, to } => {
                if let Some(p) = self.proc(from) {
                    let _ = p.reply(self.ep(to), &Message::new(0));
                }
            }
            Step::Alloc { who, len } => {
                if let Some(h) = self
                    .proc(who)
                    .and_then(|p| p.alloc_buffer(usize::from(len)).ok())
                {
                    self.last_handle = h.0;
                }
            }
            Step::Give { who, to } => {
                if let Some(p) = self.proc(who) {
                    let _ = p.give(Handle(self.last_handle), self.ep(to));
                }
            }
            Step::Release { who } => {
                if let Some(p) = self.proc(who) {
                    let _ = p.release_buffer(Handle(self.last_handle));
                }
            }
            Step::Grant { who, to, off, len } => {
                let last_handle = self.last_handle;
                let Some(p) = self.procs[who as usize].as_ref() else {
                    return;
                };
                let Ok(g) = p.grant(
                    Handle(last_handle),
                    self.ep(to),
                    usize::from(off),
                    usize::from(len),
                    Access::READ_WRITE,
                ) else {
                    return;
                };
                let grantor = p.endpoint();
                if let Some(q) = self.proc(to)
                    && let Ok(view) = q.granted(grantor, g)
                {
                    let mut buf = [0u8; 16];
                    let _ = view.read_at(0, &mut buf);
                    let _ = view.write_at(view.len().saturating_sub(3), &[1, 2, 3]);
                }
                self.last_grant = g.0;
            }
            Step::Revoke { who } => {
                if let Some(p) = self.proc(who) {
                    let _ = p.revoke(GrantId(self.last_grant));
                }
            }
            Step::View { who, off } => {
                if let Some(view) = self
                    .proc(who)
                    .and_then(|p| p.buffer(Handle(self.last_handle)).ok())
                {
                    let _ = view.write_at(usize::from(off), &[0xee; 24]);
                    let _ = view.checksum(0, view.len());
                }
            }
            Step::Query => {
                let _ = self.dc.info();
                let _ = self.dc.procs();
                let _ = self.dc.pool_info();
                for nr in [-2, 0, 5, 7] {
                    let _ = self.dc.getprocinfo(nr);
                }
            }
            Step::GetPriv { who, of } => {
                if let Some(p) = self.proc(who) {
                    let _ = p.getpriv(self.ep(of));
                }
            }
            Step::Reap => {
                let _ = self.dc.reap_dead();
            }
        }
    }

    fn scribble(&self, area: Area, offset: usize, bytes: &Bytes) {
        let (map, range) = match area {
            Area::Header => (&self.region, 0..PAGE.min(self.region.len())),
            Area::Slots => (&self.region, PAGE.min(self.region.len())..self.region.len()),
            Area::PoolHeader => (&self.pool, 0..PAGE.min(self.pool.len())),
            // The data (the last POOL bytes) is anyone's to write; the metadata lies before it.
            Area::PoolMeta => (
                &self.pool,
                PAGE.min(self.pool.len())..self.pool.len().saturating_sub(POOL as usize),
            ),
        };
        if range.is_empty() {
            return;
        }
        let (raw, at): (Vec<u8>, usize) = match bytes {
            Bytes::Raw(b) => (b[..b.len().min(64)].to_vec(), offset),
            Bytes::Word(w) => (w.to_le_bytes().to_vec(), offset & !7),
            Bytes::OurPid => (
                u64::from(std::process::id()).to_le_bytes().to_vec(),
                offset & !7,
            ),
        };
        let start = range.start + at % range.len();
        let end = (start + raw.len()).min(range.end);
        for (i, b) in (start..end).zip(raw) {
            // SAFETY: `i` lies inside the mapping (range ⊆ 0..map.len()), which lives as long
            // as `self`. The bytes are shared with the library's own mapping of the same file,
            // which reads them only as atomics: a hostile process's plain stores, exactly what
            // the library must withstand. Volatile, so that every store happens.
            unsafe { map.as_mut_ptr().add(i).write_volatile(b) };
        }
    }
}
