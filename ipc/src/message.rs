//! The 64-byte message and its typed payload views.
//!
//! A [`Message`] is one cache line: the sender's endpoint, a type, and a 56-byte payload. The payload
//! is read through plain-old-data views in the spirit of MINIX 3's `m1`..`m9`. Fields that the
//! original used for user-space pointers are 64-bit integers here ("address" fields): they carry
//! grant ids or buffer handles, never pointers, because no pointer is meaningful in another process.

use bytemuck::{Pod, Zeroable};

/// Size of a message in bytes: one cache line.
pub const MESSAGE_SIZE: usize = 64;
/// Size of the payload in bytes.
pub const PAYLOAD_SIZE: usize = 56;

/// `m_type` bit that marks a notification.
pub const NOTIFY_MESSAGE: i32 = 0x1000;

/// The `m_type` of a notification from slot `nr`: `0x1000` with the low 12 bits of `nr`
/// (two's complement for tasks, so task `-2` gives `0x1ffe`).
pub const fn notify_from(nr: i32) -> i32 {
    NOTIFY_MESSAGE | (nr & 0x0fff)
}

/// Whether `m_type` is a notification's type.
pub const fn is_notify(m_type: i32) -> bool {
    m_type & !0x0fff == NOTIFY_MESSAGE
}

/// A 64-byte M3-IPC message.
///
/// `m_source` is always stamped by the library with the sender's endpoint: a sender cannot choose
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Message {
    /// Endpoint of the sender, set by the fabric.
    pub m_source: i32,
    /// Request or reply type, chosen by the sender.
    pub m_type: i32,
    /// The payload, read and written through the typed views.
    pub payload: [u64; 7],
}

impl Default for Message {
    fn default() -> Self {
        Message::zeroed()
    }
}

/// Integers and addresses, as MINIX `mess_1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Mess1 {
    /// Integer 1.
    pub m1i1: i32,
    /// Integer 2.
    pub m1i2: i32,
    /// Integer 3.
    pub m1i3: i32,
    /// Padding, keeps the addresses aligned.
    pub _pad: u32,
    /// Address 1 (a grant id or buffer handle).
    pub m1p1: u64,
    /// Address 2.
    pub m1p2: u64,
    /// Address 3.
    pub m1p3: u64,
    /// Spare bytes, zero.
    pub _spare: [u64; 2],
}

/// Integers, longs and an address, as MINIX `mess_2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Mess2 {
    /// Integer 1.
    pub m2i1: i32,
    /// Integer 2.
    pub m2i2: i32,
    /// Integer 3.
    pub m2i3: i32,
    /// Padding.
    pub _pad: u32,
    /// Long 1.
    pub m2l1: i64,
    /// Long 2.
    pub m2l2: i64,
    /// Address 1.
    pub m2p1: u64,
    /// Spare bytes, zero.
    pub _spare: [u64; 2],
}

/// Two integers, an address and a short name, as MINIX `mess_3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Mess3 {
    /// Integer 1.
    pub m3i1: i32,
    /// Integer 2.
    pub m3i2: i32,
    /// Address 1.
    pub m3p1: u64,
    /// A short name, NUL-padded (the original had 14 bytes; here 40).
    pub m3ca1: [u8; 40],
}

impl Default for Mess3 {
    fn default() -> Self {
        Mess3::zeroed()
    }
}

/// Five longs, as MINIX `mess_4`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Mess4 {
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
    /// Spare bytes, zero.
    pub _spare: [u64; 2],
}

/// Four integers and two addresses, as MINIX `mess_7`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Mess7 {
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
    /// Spare bytes, zero.
    pub _spare: [u64; 3],
}

/// The notify view, as MINIX `mess_9`: flags, argument and timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Notify {
    /// Notification flags (`NOTIFY_FLAGS`).
    pub flags: i32,
    /// Padding.
    pub _pad: u32,
    /// Notification argument (`NOTIFY_ARG`).
    pub arg: i64,
    /// Delivery time, seconds of `CLOCK_REALTIME` (`NOTIFY_TIMESTAMP`).
    pub tv_sec: i64,
    /// Delivery time, nanoseconds.
    pub tv_nsec: i64,
    /// Spare bytes, zero.
    pub _spare: [u64; 3],
}

const _: () = {
    assert!(core::mem::size_of::<Message>() == MESSAGE_SIZE);
    assert!(core::mem::align_of::<Message>() == 8);
    assert!(core::mem::size_of::<Mess1>() == PAYLOAD_SIZE);
    assert!(core::mem::size_of::<Mess2>() == PAYLOAD_SIZE);
    assert!(core::mem::size_of::<Mess3>() == PAYLOAD_SIZE);
    assert!(core::mem::size_of::<Mess4>() == PAYLOAD_SIZE);
    assert!(core::mem::size_of::<Mess7>() == PAYLOAD_SIZE);
    assert!(core::mem::size_of::<Notify>() == PAYLOAD_SIZE);
};

macro_rules! views {
    ($($get:ident, $get_mut:ident, $ty:ty;)*) => {
        impl Message {
            $(
                #[doc = concat!("The payload as [`", stringify!($ty), "`].")]
                pub fn $get(&self) -> &$ty {
                    bytemuck::cast_ref(&self.payload)
                }
                #[doc = concat!("The payload as a mutable [`", stringify!($ty), "`].")]
                pub fn $get_mut(&mut self) -> &mut $ty {
                    bytemuck::cast_mut(&mut self.payload)
                }
            )*
        }
    };
}

views! {
    m1, m1_mut, Mess1;
    m2, m2_mut, Mess2;
    m3, m3_mut, Mess3;
    m4, m4_mut, Mess4;
    m7, m7_mut, Mess7;
    notify, notify_mut, Notify;
}

impl Message {
    /// A message of type `m_type` with an all-zero payload.
    pub fn new(m_type: i32) -> Self {
        Message {
            m_type,
            ..Message::zeroed()
        }
    }

    /// The message as eight 64-bit words, the unit in which it crosses shared memory.
    pub fn to_words(&self) -> [u64; 8] {
        bytemuck::cast(*self)
    }

    /// The message made from eight 64-bit words.
    pub fn from_words(words: [u64; 8]) -> Self {
        bytemuck::cast(words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_alias_the_payload() {
        let mut m = Message::new(7);
        m.m1_mut().m1i1 = -5;
        m.m1_mut().m1p3 = 0xdead_beef;
        assert_eq!(m.m2().m2i1, -5);
        assert_eq!(m.m4().m4l5, 0xdead_beef);
        let w = m.to_words();
        assert_eq!(Message::from_words(w), m);
        assert_eq!(w[0] as u32 as i32, 0);
        assert_eq!((w[0] >> 32) as i32, 7);
    }

    #[test]
    fn notify_types() {
        assert_eq!(notify_from(5), 0x1005);
        assert_eq!(notify_from(-2), 0x1ffe);
        assert!(is_notify(notify_from(-34)));
        assert!(is_notify(notify_from(220)));
        assert!(!is_notify(1));
        assert!(!is_notify(0x2005));
    }
}
