//! FS (slot 1): the MINIX v3 file system server.
//!
//! It wraps [`minixfs::FileSystem`] over RDISK ([`device::RdiskDevice`]), mounts it when RDISK
//! is bound (formatting a blank disk first when its config says so) and answers the requests of
//! [`crate::storage::fs`]. Paths come from a grant of the requester; file data moves between
//! the requester's granted buffer and the file system, never through a message. Every request
//! is answered, malformed ones with an error.
//!
//! Durability: mutating requests mark the file system dirty; after [`IDLE_SYNC`] without a
//! request, on `FS_SYNC`, and when the host stops (before RDISK is asked to: FS is a layer
//! above it), FS writes everything back and flushes RDISK.
//!
//! Puts are atomic ([`FS_PUT_BEGIN`](crate::storage::fs::FS_PUT_BEGIN)): a put writes a temporary file and renames it over its target
//! at the end; a failed or abandoned put removes it. While puts are under way FS wakes at least
//! every [`PUT_REAP_MS`] to remove the temporaries of writers that are gone, and at every mount
//! it removes the temporaries an earlier FS left.
//!
//! RDISK may go away and come back (restarted as its own process): FS notices it by a failed
//! call (its process died) or by RDISK's slot bound at a new generation, drops the mount, and
//! mounts the disk again once an RDISK serves; meanwhile requests get `EDVSNODEV`. What FS had
//! not synced when the old RDISK died is lost (the image holds the last sync).

pub mod device;
mod puts;
mod requests;

use crate::ipc::Ipc;
use crate::protocol;
use crate::server::Server;
use crate::storage::MAX_CHUNK;
use crate::storage::fs::{FS_SYNC, PUT_REAP_MS};
use device::{IpcCell, RdiskDevice};
use m3ipc::{ANY, Errno, Message, Result, Timeout};
use minixfs::{BlockDevice, FileSystem, FormatOptions};
use puts::Puts;
use requests::{handle, mutates};
use std::time::{Duration, Instant};

/// Idle time after which FS writes dirty blocks back.
pub const IDLE_SYNC: Duration = Duration::from_millis(200);
/// How often FS looks for RDISK while it is not mounted.
pub const MOUNT_RETRY: Duration = Duration::from_millis(10);

/// What FS does with a disk at start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FormatPolicy {
    /// Mount what is there; a disk without a file system is a mount error.
    Never,
    /// Format a blank disk (boot block and superblock all zeros) with `minixfs`'s formatter,
    /// mount any other.
    #[default]
    IfBlank,
    /// Format the disk at every start (the previous contents are lost).
    Always,
}

impl FormatPolicy {
    /// The name a config uses: `never`, `if-blank`, `always`.
    pub fn name(self) -> &'static str {
        match self {
            FormatPolicy::Never => "never",
            FormatPolicy::IfBlank => "if-blank",
            FormatPolicy::Always => "always",
        }
    }

    /// The policy of that name.
    pub fn from_name(name: &str) -> Option<FormatPolicy> {
        [
            FormatPolicy::Never,
            FormatPolicy::IfBlank,
            FormatPolicy::Always,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

/// The FS server.
#[derive(Debug)]
pub struct Fs {
    rdisk_nr: i32,
    format: FormatPolicy,
}

impl Fs {
    /// FS over the RDISK at slot `rdisk_nr`, with `format` at start.
    pub fn new(rdisk_nr: i32, format: FormatPolicy) -> Fs {
        Fs { rdisk_nr, format }
    }
}

type Mounted<'c, 'i> = FileSystem<RdiskDevice<'c, 'i>>;

/// The state of the file system.
enum State<'c, 'i> {
    /// RDISK is not bound yet.
    Waiting,
    /// Mounted on the RDISK at this endpoint, with the puts under way.
    Up(Box<Mounted<'c, 'i>>, m3ipc::Endpoint, Puts),
    /// The disk did not mount: the reason, printed once; requests get `EDVSIO`.
    Failed,
}

impl Server for Fs {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> Result<()> {
        let cell: IpcCell<'_> = std::cell::RefCell::new(ipc);
        let mut state = State::Waiting;
        let mut scratch = vec![0u8; MAX_CHUNK];
        let mut dirty = false;
        let mut m = Message::default();
        let mut last_reap = Instant::now();
        loop {
            if cell.borrow().stopping() {
                return self.finish(&mut state, dirty);
            }
            if matches!(state, State::Waiting) {
                state = self.try_mount(&cell)?;
            }
            let puts_open = matches!(&state, State::Up(_, _, p) if !p.is_empty());
            let timeout = match state {
                State::Waiting => Timeout::Millis(MOUNT_RETRY.as_millis() as u32),
                _ if dirty || puts_open => {
                    let mut ms = if dirty {
                        IDLE_SYNC.as_millis() as u32
                    } else {
                        u32::MAX
                    };
                    if puts_open {
                        ms = ms.min(PUT_REAP_MS);
                    }
                    Timeout::Millis(ms)
                }
                _ => Timeout::Forever,
            };
            let got = cell.borrow_mut().receive(ANY, &mut m, timeout);
            match got {
                Ok(()) => {
                    // RDISK rebound since the mount (a restart): mount its disk afresh first.
                    if let State::Up(_, rdisk, _) = state
                        && !self.rdisk_is(&cell, rdisk)
                    {
                        self.unmount(&mut state, &mut dirty, "was restarted");
                        state = self.try_mount(&cell)?;
                    }
                    let reply = match &mut state {
                        State::Up(fs, rdisk, puts) => {
                            let r = handle(&cell, fs, *rdisk, puts, &mut scratch, &m);
                            if r.is_ok() && mutates(m.m_type) {
                                dirty = true;
                            }
                            if m.m_type == FS_SYNC && r.is_ok() {
                                dirty = false;
                            }
                            r
                        }
                        State::Waiting => Err(Errno::EDVSNODEV),
                        State::Failed => Err(Errno::EDVSIO),
                    };
                    let failed = reply.is_err();
                    let reply = reply.unwrap_or_else(protocol::error_reply);
                    let _ = cell.borrow_mut().reply(m.m_source, &reply);
                    if failed {
                        self.unmount_if_gone(&cell, &mut state, &mut dirty);
                    }
                }
                Err(Errno::EDVSSHUTDOWN) => return self.finish(&mut state, dirty),
                Err(Errno::EDVSTIMEDOUT) => {
                    if let (State::Up(fs, _, _), true) = (&mut state, dirty) {
                        match fs.sync() {
                            Ok(()) => dirty = false,
                            Err(e) => {
                                crate::diag!("fs: background sync failed: {e}");
                                self.unmount_if_gone(&cell, &mut state, &mut dirty);
                            }
                        }
                    }
                }
                Err(
                    Errno::EDVSAGAIN
                    | Errno::EDVSWOKENUP
                    | Errno::EDVSSRCDIED
                    | Errno::EDVSDEADSRCDST
                    | Errno::EDVSENDPOINT,
                ) => {}
                Err(e) => return Err(e),
            }
            // Checked after any request or wake, so a busy FS checks too.
            if last_reap.elapsed() >= Duration::from_millis(u64::from(PUT_REAP_MS)) {
                last_reap = Instant::now();
                if self.reap_puts(&cell, &mut state) {
                    dirty = true;
                }
            }
        }
    }

    fn layer(&self) -> u8 {
        1
    }
}

impl Fs {
    /// The host stops: write every change back to RDISK (which still serves: it stops after
    /// us) and flush it. A failure is FS's error: what was not written is lost.
    fn finish(&self, state: &mut State<'_, '_>, dirty: bool) -> Result<()> {
        let State::Up(fs, _, _) = state else {
            return Ok(());
        };
        if !dirty {
            return Ok(());
        }
        fs.sync().map_err(|e| {
            crate::diag!(
                "fs: the final sync at stop failed: {e}; changes since the last sync are lost"
            );
            Errno::EDVSIO
        })
    }

    /// Remove the temporaries of puts whose writer is gone; whether any was removed.
    fn reap_puts(&self, cell: &IpcCell<'_>, state: &mut State<'_, '_>) -> bool {
        let State::Up(fs, _, puts) = state else {
            return false;
        };
        if puts.is_empty() {
            return false;
        }
        // Without waiting: Ok when the endpoint is no longer bound there (an owner process
        // that died is freed by this check), EDVSAGAIN while it is. Any other answer (an
        // endpoint out of range, a DC shutting down) names no writer that could go on.
        let gone = |ep| {
            !matches!(
                cell.borrow().dc().wait4unbind(ep, Timeout::NoWait),
                Err(Errno::EDVSAGAIN)
            )
        };
        puts.reap(fs, gone) > 0
    }

    /// Whether RDISK's slot is still bound at endpoint `rdisk` (a restarted RDISK binds it at
    /// a new generation).
    fn rdisk_is(&self, cell: &IpcCell<'_>, rdisk: m3ipc::Endpoint) -> bool {
        cell.borrow().dc().wait4bind(self.rdisk_nr, Timeout::NoWait) == Ok(rdisk)
    }

    /// After a failed request or sync: if the RDISK we mounted is gone (unbound, rebound, or
    /// its process died: the check frees a dead owner's slot), unmount, to mount again when
    /// an RDISK is back.
    fn unmount_if_gone(&self, cell: &IpcCell<'_>, state: &mut State<'_, '_>, dirty: &mut bool) {
        let State::Up(_, rdisk, _) = *state else {
            return;
        };
        let gone = cell.borrow().dc().wait4unbind(rdisk, Timeout::NoWait);
        if gone.is_ok() {
            self.unmount(state, dirty, "went away");
        }
    }

    /// Drop the mount on a lost RDISK. Its image holds what was synced; the changes since
    /// the last sync (in our cache) are lost with the old RDISK.
    fn unmount(&self, state: &mut State<'_, '_>, dirty: &mut bool, why: &str) {
        let lost = if *dirty {
            "; changes since the last sync are lost"
        } else {
            ""
        };
        crate::diag!(
            "fs: RDISK at nr {} {why}: unmounted{lost}; mounting again once it serves",
            self.rdisk_nr
        );
        *state = State::Waiting;
        *dirty = false;
    }

    /// Mount (or format and mount) once RDISK is bound. `Waiting` while it is not, or while
    /// the RDISK bound there does not answer because its process died.
    /// `Always` formats at the first mount only: a mount again after an RDISK restart keeps
    /// what is on the disk.
    fn try_mount<'c, 'i>(&mut self, cell: &'c IpcCell<'i>) -> Result<State<'c, 'i>> {
        let bound = cell.borrow().dc().wait4bind(self.rdisk_nr, Timeout::NoWait);
        let rdisk = match bound {
            Ok(ep) => ep,
            Err(Errno::EDVSAGAIN) => return Ok(State::Waiting),
            Err(e) => return Err(e),
        };
        let mut dev = match RdiskDevice::connect(cell, rdisk) {
            Ok(d) => d,
            Err(Errno::EDVSSHUTDOWN) => return Err(Errno::EDVSSHUTDOWN),
            // A dead RDISK's slot (freed by the failed call): wait for the next one.
            Err(
                Errno::EDVSDSTDIED
                | Errno::EDVSDEADSRCDST
                | Errno::EDVSENDPOINT
                | Errno::EDVSNOTBIND,
            ) => return Ok(State::Waiting),
            Err(e) => {
                crate::diag!("fs: cannot reach RDISK at nr {}: {e}", self.rdisk_nr);
                return Ok(State::Failed);
            }
        };
        let format = match self.format {
            FormatPolicy::Never => false,
            FormatPolicy::Always => true,
            FormatPolicy::IfBlank => is_blank(&mut dev),
        };
        let blocks = dev.block_count();
        let mounted = if format {
            FileSystem::format(dev, &FormatOptions::default())
        } else {
            FileSystem::mount(dev)
        };
        match mounted {
            Ok(mut fs) => {
                if format {
                    crate::diag!("fs: formatted a disk of {blocks} blocks");
                }
                if self.format == FormatPolicy::Always {
                    self.format = FormatPolicy::Never;
                }
                // No put is under way at a mount: any temporary is an earlier FS's leftover.
                let swept = Puts::sweep(&mut fs);
                if swept > 0 {
                    crate::diag!("fs: removed {swept} temporary file(s) of unfinished puts");
                    if let Err(e) = fs.sync() {
                        crate::diag!("fs: sync after removing put temporaries failed: {e}");
                    }
                }
                Ok(State::Up(Box::new(fs), rdisk, Puts::default()))
            }
            Err(e) => {
                crate::diag!(
                    "fs: cannot {} the disk on RDISK ({blocks} blocks): {e}",
                    if format { "format" } else { "mount" }
                );
                Ok(State::Failed)
            }
        }
    }
}

/// Whether the disk's boot block and superblock are all zeros.
fn is_blank(dev: &mut impl BlockDevice) -> bool {
    if dev.block_count() < 2 {
        return false;
    }
    let mut head = vec![0u8; 2 * minixfs::BLOCK_SIZE];
    dev.read_blocks(0, &mut head).is_ok() && head.iter().all(|&b| b == 0)
}
