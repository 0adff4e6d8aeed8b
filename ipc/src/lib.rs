//! # m3ipc: M3-IPC without a kernel module
//!
//! MINIX-style synchronous message passing between Linux processes, the IPC layer of a
//! Distributed Virtualization System. The original (M3-IPC, later DVK) was a kernel module; here
//! the kernel side is a memory-mapped region in `/dev/shm` per *DC* (distributed container): a slot
//! table, lock-free mailboxes, and futex doorbells. A process binds a slot and gets an endpoint;
//! calls between endpoints need no system call on the fast path.
//!
//! ```no_run
//! use m3ipc::{Dc, DcConfig, Message, Timeout};
//! let dc = Dc::create("example", &DcConfig::default())?;
//! let server = dc.bind(0)?; // a system process (PM's number)
//! // ... in another process: Dc::open("example")?.bind(40)?.sendrec(0, &mut m, Timeout::Forever)
//! let mut m = Message::default();
//! server.receive(m3ipc::ANY, &mut m, Timeout::Forever)?;
//! server.reply(m.m_source, &Message::new(0))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layers, from the bottom: [`errno`], [`message`], [`endpoint`] (names and numbers); `region`,
//! `slot`, `mailbox` (queued messages), `inbox` (direct hand-off to a waiting receiver),
//! `doorbell`, `owner` (shared memory and its protocols); `wait`, `deadlock`, `cleanup`
//! (blocking, cycles, liveness); `takeover` (a DC left by dead processes); [`Dc`] and [`Proc`]
//! with the calls in `call/`; [`pool`], the shared buffer pool (zero-copy data, grants, `vcopy`);
//! [`layout`], where the shared words lie (for tools and tests that look at the region from
//! outside); `remote` and `call/proxy.rs`, the remote slots through which a node daemon makes a
//! DC span several nodes ([`Dc::bind_proxy`], [`Proc::bind_remote`], [`Proc::take_held`]).
//!
//! Semantics and error numbers follow `docs/ARCHITECTURE.md` section 4; every call documents its errors.
//! Limits and failure modes: a DC has at most [`MAX_SLOTS`] slots; a process that dies while bound
//! is noticed by a blocked peer within [`wait::LIVENESS_TICK`] plus a `/proc` read; privileges are
//! enforced by this library, so the region file's mode is the DC's trust boundary; a process that
//! truncates a region file makes the others fault.

#![cfg_attr(loom, allow(dead_code, unused_imports))]

/// Items that exist only outside the loom models. Under `--cfg loom` the crate keeps just what
/// the models exercise (the mailbox, the inbox, the pool allocator, their atomics in `sync`);
/// this is the one place that says so.
macro_rules! outside_loom {
    ($($item:item)*) => {
        $(
            #[cfg(not(loom))]
            $item
        )*
    };
}

// Built under loom too: the lock-free parts the models check, and what they name.
/// Loom model of a notify racing a deadlock check (the checks live in `deadlock.rs`).
#[cfg(all(test, loom))]
#[path = "deadlock/loom_tests.rs"]
mod deadlock_loom_tests;
pub mod endpoint;
mod inbox;
#[doc(hidden)]
pub mod mailbox;
pub mod pool;
mod sync;

outside_loom! {
    mod call;
    mod cleanup;
    mod dc;
    mod deadlock;
    mod doorbell;
    pub mod errno;
    pub mod layout;
    pub mod message;
    mod owner;
    pub mod privilege;
    mod proc;
    mod region;
    mod remote;
    pub mod remote_copy;
    mod share;
    mod slot;
    mod takeover;
    pub mod wait;
    mod waker;

    pub use call::{HELD_GRACE, Held, Posted, RingCount, Taken};
    pub use dc::{Created, Dc, DcInfo, ProcInfo};
    pub use endpoint::{ANY, Endpoint, HARDWARE, NONE, SELF, SYSTEM};
    pub use errno::{Errno, Result};
    pub use message::Message;
    pub use owner::{OuterIdentity, assume_outer_identity, pin_proc_dir};
    pub use pool::{Access, BufView, CopyRef, GrantId, Handle, Holdings, PoolInfo};
    pub use privilege::{Call, CallSet, Priv};
    pub use proc::Proc;
    pub use region::{DcConfig, DcError, FILE_PREFIX, MAX_DCS, MAX_NAME, region_dir};
    pub use share::group_id;
    pub use slot::{
        FLAG_RECEIVING, FLAG_SENDING, FLAG_SENDREC, FLAG_WAITBIND, FLAG_WAITING, MAX_SLOTS,
        SlotState,
    };
    pub use takeover::TakenOver;
    pub use wait::{Timeout, WaitPolicy};
    pub use waker::{BellWatch, Waker};

    /// A hash of every constant the region layout depends on. Two builds that disagree on it
    /// refuse each other's regions, and two node daemons that disagree on it refuse each
    /// other's connections.
    pub fn layout_hash() -> u64 {
        region::layout_hash()
    }
}
