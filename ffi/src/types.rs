//! The structs C sees: the 64-byte `message` with its payload views, and the records of the DC
//! and slot calls. Each has the layout of its Rust counterpart in `m3ipc`, pinned by the
//! compile-time assertions at the end.
#![allow(non_camel_case_types)]

use bytemuck::{Pod, Zeroable};
use core::mem::{offset_of, size_of};

/// Integers and addresses, as MINIX `mess_1` (an "address" is a grant id or buffer handle).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct mess_1 {
    /// Integer 1.
    pub m1i1: i32,
    /// Integer 2.
    pub m1i2: i32,
    /// Integer 3.
    pub m1i3: i32,
    /// Padding, keeps the addresses aligned.
    pub m1pad: u32,
    /// Address 1.
    pub m1p1: u64,
    /// Address 2.
    pub m1p2: u64,
    /// Address 3.
    pub m1p3: u64,
    /// Spare.
    pub m1spare: [u64; 2],
}

/// Integers, longs and an address, as MINIX `mess_2`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct mess_2 {
    /// Integer 1.
    pub m2i1: i32,
    /// Integer 2.
    pub m2i2: i32,
    /// Integer 3.
    pub m2i3: i32,
    /// Padding.
    pub m2pad: u32,
    /// Long 1.
    pub m2l1: i64,
    /// Long 2.
    pub m2l2: i64,
    /// Address 1.
    pub m2p1: u64,
    /// Spare.
    pub m2spare: [u64; 2],
}

/// Two integers, an address and a short name, as MINIX `mess_3`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct mess_3 {
    /// Integer 1.
    pub m3i1: i32,
    /// Integer 2.
    pub m3i2: i32,
    /// Address 1.
    pub m3p1: u64,
    /// A short name, NUL-padded (40 bytes here; 14 in the original).
    pub m3ca1: [u8; 40],
}

/// Five longs, as MINIX `mess_4`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct mess_4 {
    /// Long 1.
    pub m4l1: i64,
    /// Long 2.
    pub m4l2: i64,
    /// Long 3.
    pub m4l3: i64,
    /// Long 4.
    pub m4l4: i64,
    /// Long 5.
    pub m4l5: i64,
    /// Spare.
    pub m4spare: [u64; 2],
}

/// Four integers and two addresses, as MINIX `mess_7`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct mess_7 {
    /// Integer 1.
    pub m7i1: i32,
    /// Integer 2.
    pub m7i2: i32,
    /// Integer 3.
    pub m7i3: i32,
    /// Integer 4.
    pub m7i4: i32,
    /// Address 1.
    pub m7p1: u64,
    /// Address 2.
    pub m7p2: u64,
    /// Spare.
    pub m7spare: [u64; 3],
}

/// A notification's delivery time (`CLOCK_REALTIME`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct m3_timestamp {
    /// Seconds.
    pub tv_sec: i64,
    /// Nanoseconds.
    pub tv_nsec: i64,
}

/// The notify view, as MINIX `mess_9`: flags (`NOTIFY_FLAGS`), argument (`NOTIFY_ARG`) and
/// timestamp (`NOTIFY_TIMESTAMP`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct mess_9 {
    /// Notification flags.
    pub m9i1: i32,
    /// Padding.
    pub m9pad: u32,
    /// Notification argument.
    pub m9l1: i64,
    /// Delivery time.
    pub m9t1: m3_timestamp,
    /// Spare.
    pub m9spare: [u64; 3],
}

/// The 56-byte payload, read through one of the views.
/// (`Pod`: see `foreign.rs`, where its `unsafe impl` lives.)
#[repr(C)]
#[derive(Clone, Copy)]
pub union m3_payload {
    /// As `mess_1`.
    pub m_m1: mess_1,
    /// As `mess_2`.
    pub m_m2: mess_2,
    /// As `mess_3`.
    pub m_m3: mess_3,
    /// As `mess_4`.
    pub m_m4: mess_4,
    /// As `mess_7`.
    pub m_m7: mess_7,
    /// As `mess_9` (notifications).
    pub m_m9: mess_9,
    /// As seven words.
    pub m_words: [u64; 7],
}

/// A 64-byte M3-IPC message: the sender's endpoint (always stamped by the library), a type, and
/// the payload. Aligned to 8 bytes; a misaligned `message *` is refused with `EDVSFAULT`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct message {
    /// Endpoint of the sender, set by the fabric.
    pub m_source: i32,
    /// Request or reply type, chosen by the sender.
    pub m_type: i32,
    /// The payload.
    pub m_u: m3_payload,
}

/// Limits and identity of a DC, for `m3_dc_create` (`m3_dc_config_default` fills in the
/// original's typical DC).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct m3_dc_config {
    /// DC id, 0..32.
    pub dcid: u32,
    /// This node's id, 0..32.
    pub node: u32,
    /// Process slots (`nr` 0..nr_procs).
    pub nr_procs: u32,
    /// Task slots (`nr` -nr_tasks..-1), at most 35.
    pub nr_tasks: u32,
    /// Slots, counted from the first task, that are system processes.
    pub nr_sysprocs: u32,
    /// File mode of the region and its pool (0600 by default).
    pub mode: u32,
    /// Bytes of the buffer pool: a multiple of 1 MiB, at most 16 GiB; 0 for none.
    pub pool_bytes: u64,
}

/// What `m3_getdcinfo` reports (`getdcinfo`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct m3_dc_info {
    /// The DC's name, NUL-terminated.
    pub name: [u8; 16],
    /// Limits and ids.
    pub config: m3_dc_config,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Size of the region file in bytes.
    pub region_bytes: u64,
    /// PID of the process that created it.
    pub creator_pid: u32,
    /// Slots bound now.
    pub bound: u32,
}

/// A slot's binding state in `m3_proc_info`: free.
pub const M3_SLOT_FREE: u32 = 0;
/// A slot's binding state: a process is binding it.
pub const M3_SLOT_BINDING: u32 = 1;
/// A slot's binding state: bound.
pub const M3_SLOT_BOUND: u32 = 2;
/// A slot's binding state: being released.
pub const M3_SLOT_CLOSING: u32 = 3;

/// What `m3_getprocinfo` reports about one slot (the original's `proc_usr_t`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct m3_proc_info {
    /// Slot number.
    pub nr: i32,
    /// Endpoint of the current (or, when free, the next) binding.
    pub endpoint: i32,
    /// `M3_SLOT_FREE`, `M3_SLOT_BINDING`, `M3_SLOT_BOUND` or `M3_SLOT_CLOSING`.
    pub state: u32,
    /// Owner PID (0 when free).
    pub pid: u32,
    /// Name given at bind, NUL-terminated.
    pub name: [u8; 16],
    /// Blocked-state flags (`FLAG_SENDING` 4, `FLAG_RECEIVING` 8, ...).
    pub flags: u32,
    /// Whom it receives from (`M3_NONE` unless receiving).
    pub getfrom: i32,
    /// Whom it sends to (`M3_NONE` unless sending).
    pub sendto: i32,
    /// 1 for a system process slot, else 0.
    pub system: u32,
    /// Messages it sent that were received.
    pub sent: u64,
    /// Messages it received.
    pub received: u64,
    /// Notifications it received.
    pub notified: u64,
    /// Notifications to it that coalesced with a pending one.
    pub notify_overruns: u64,
    /// Calls it may make (a bit per call number).
    pub allowed: u64,
    /// Privilege level.
    pub level: u32,
    /// Padding.
    pub pad: u32,
}

/// Privileges of an endpoint, for `m3_setpriv`/`m3_getpriv`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct m3_priv {
    /// Privilege level (0 user, 1 server, 2 task, ...).
    pub level: u32,
    /// Padding.
    pub pad: u32,
    /// Calls it may make: bit `n` allows DVK call number `n`.
    pub allowed: u64,
    /// System-process slots (by slot index `nr + nr_tasks`) it may send to.
    pub ipc_to: [u64; crate::M3_IPC_TO_WORDS],
}

/// Copy `s` into a NUL-terminated fixed field (cut to 15 bytes).
pub(crate) fn c_name(s: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(s.bytes().take(15)) {
        *o = b;
    }
    out
}

const _: () = {
    use ipc::message::{Mess1, Mess2, Mess3, Mess4, Mess7, Notify};
    assert!(size_of::<message>() == size_of::<ipc::Message>());
    assert!(core::mem::align_of::<message>() == core::mem::align_of::<ipc::Message>());
    assert!(offset_of!(message, m_u) == offset_of!(ipc::Message, payload));
    assert!(size_of::<m3_payload>() == ipc::message::PAYLOAD_SIZE);
    assert!(size_of::<mess_1>() == size_of::<Mess1>());
    assert!(offset_of!(mess_1, m1p1) == offset_of!(Mess1, m1p1));
    assert!(offset_of!(mess_1, m1p3) == offset_of!(Mess1, m1p3));
    assert!(size_of::<mess_2>() == size_of::<Mess2>());
    assert!(offset_of!(mess_2, m2l1) == offset_of!(Mess2, m2l1));
    assert!(offset_of!(mess_2, m2p1) == offset_of!(Mess2, m2p1));
    assert!(size_of::<mess_3>() == size_of::<Mess3>());
    assert!(offset_of!(mess_3, m3p1) == offset_of!(Mess3, m3p1));
    assert!(offset_of!(mess_3, m3ca1) == offset_of!(Mess3, m3ca1));
    assert!(size_of::<mess_4>() == size_of::<Mess4>());
    assert!(offset_of!(mess_4, m4l5) == offset_of!(Mess4, m4l5));
    assert!(size_of::<mess_7>() == size_of::<Mess7>());
    assert!(offset_of!(mess_7, m7p1) == offset_of!(Mess7, m7p1));
    assert!(offset_of!(mess_7, m7p2) == offset_of!(Mess7, m7p2));
    assert!(size_of::<mess_9>() == size_of::<Notify>());
    assert!(offset_of!(mess_9, m9l1) == offset_of!(Notify, arg));
    assert!(offset_of!(mess_9, m9t1) == offset_of!(Notify, tv_sec));
    assert!(size_of::<m3_priv>() == 16 + 8 * crate::M3_IPC_TO_WORDS);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_views_alias_the_fabrics_views() {
        let mut m = message::zeroed();
        m.m_type = 7;
        m.m_u.m_m1 = mess_1 {
            m1i1: -5,
            m1p3: 0xdead_beef,
            ..mess_1::zeroed()
        };
        let f: ipc::Message = bytemuck::cast(m);
        assert_eq!(f.m_type, 7);
        assert_eq!(f.m1().m1i1, -5);
        assert_eq!(f.m1().m1p3, 0xdead_beef);
        let mut g = ipc::Message::new(1);
        g.notify_mut().arg = 42;
        g.notify_mut().tv_nsec = 9;
        g.m3_mut().m3ca1[39] = b'z';
        let c: message = bytemuck::cast(g);
        let p: [u64; 7] = bytemuck::cast(c.m_u);
        let v: mess_9 = bytemuck::cast(p);
        assert_eq!((v.m9l1, v.m9t1.tv_nsec), (42, 9));
        let v3: mess_3 = bytemuck::cast(p);
        assert_eq!(v3.m3ca1[39], b'z');
    }
}
