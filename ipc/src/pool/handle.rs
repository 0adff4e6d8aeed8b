//! Names of pool objects as they travel in messages: buffer handles and grant ids, each carrying
//! a generation, and the access rights of a grant.

use super::alloc::{CLASSES, PAGE};
use crate::endpoint::Endpoint;
use crate::message::Message;

/// Generations are 24 bits and never 0 (so an all-zero word names nothing).
pub(crate) const GEN_MASK: u64 = 0xff_ffff;

/// The next generation after `g` (1 after the last, never 0).
pub(crate) const fn next_gen(g: u32) -> u32 {
    let n = (g as u64 + 1) & GEN_MASK;
    if n == 0 { 1 } else { n as u32 }
}

/// A buffer handle: which block of the pool, its size class and its generation, in one `u64`.
///
/// Layout: page index in bits 0..32, class in bits 32..36, generation in bits 36..60; bit 63 is
/// clear (grant ids have it set). A handle is refused (`EDVSBADF`) once its buffer is released:
/// the block's generation moves on at its next allocation, and a forged handle names no
/// allocated block or the wrong generation. Generations wrap after 16 777 215 allocations of one
/// block position, the one (remote) way a stale handle could be taken for a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle(pub u64);

impl Handle {
    pub(crate) const fn new(pos: u32, class: u32, generation: u32) -> Handle {
        Handle((pos as u64) | ((class as u64 & 0xf) << 32) | ((generation as u64 & GEN_MASK) << 36))
    }

    pub(crate) const fn pos(self) -> u32 {
        self.0 as u32
    }

    pub(crate) const fn class(self) -> u32 {
        ((self.0 >> 32) & 0xf) as u32
    }

    pub(crate) const fn generation(self) -> u32 {
        ((self.0 >> 36) & GEN_MASK) as u32
    }

    /// Whether the bits are well formed (bit 63 clear, class in range). Says nothing of whether
    /// the buffer exists.
    pub(crate) const fn well_formed(self) -> bool {
        self.0 >> 60 == 0 && self.class() < CLASSES && self.generation() != 0
    }

    /// Capacity of the buffer this handle names, in bytes (its size class; `0` for a malformed
    /// handle).
    pub const fn capacity(self) -> usize {
        if self.class() < CLASSES {
            PAGE << self.class()
        } else {
            0
        }
    }
}

/// A grant id: which entry of the grant table and its generation, in one `u64` with bit 63 set.
/// A revoked grant's id is refused (`EDVSPERM`): the entry's generation moves on when it is
/// issued again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GrantId(pub u64);

impl GrantId {
    pub(crate) const TAG: u64 = 1 << 63;

    pub(crate) const fn new(index: u32, generation: u32) -> GrantId {
        GrantId(Self::TAG | ((generation as u64 & GEN_MASK) << 32) | index as u64)
    }

    pub(crate) const fn index(self) -> usize {
        self.0 as u32 as usize
    }

    pub(crate) const fn generation(self) -> u32 {
        ((self.0 >> 32) & GEN_MASK) as u32
    }

    pub(crate) const fn well_formed(self) -> bool {
        self.0 & Self::TAG != 0 && (self.0 >> 56) & 0x7f == 0 && self.generation() != 0
    }
}

/// What a grant allows its grantee (a set of `READ` and `WRITE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Access(pub u8);

impl Access {
    /// Nothing.
    pub const NONE: Access = Access(0);
    /// Read the range (be the source of a `vcopy`, `read_at`).
    pub const READ: Access = Access(1);
    /// Write the range (be the destination of a `vcopy`, `write_at`).
    pub const WRITE: Access = Access(2);
    /// Both.
    pub const READ_WRITE: Access = Access(3);

    /// Whether every right of `need` is in `self`.
    pub const fn allows(self, need: Access) -> bool {
        self.0 & need.0 == need.0
    }
}

/// One side of a [`vcopy`](crate::Proc::vcopy): a grant id, or (only for the requester's own
/// side) a handle of a buffer the requester owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CopyRef {
    /// A grant issued by that side's endpoint to the requester (or by the requester).
    Grant(GrantId),
    /// A buffer the requester owns.
    Buffer(Handle),
}

impl CopyRef {
    /// Decode a word carried in a message: bit 63 set is a grant id, else a handle.
    pub const fn from_raw(raw: u64) -> CopyRef {
        if raw & GrantId::TAG != 0 {
            CopyRef::Grant(GrantId(raw))
        } else {
            CopyRef::Buffer(Handle(raw))
        }
    }

    /// The word to carry in a message.
    pub const fn raw(self) -> u64 {
        match self {
            CopyRef::Grant(g) => g.0,
            CopyRef::Buffer(h) => h.0,
        }
    }
}

impl From<GrantId> for CopyRef {
    fn from(g: GrantId) -> CopyRef {
        CopyRef::Grant(g)
    }
}

impl From<Handle> for CopyRef {
    fn from(h: Handle) -> CopyRef {
        CopyRef::Buffer(h)
    }
}

/// The metadata word of a block: `owner` endpoint in bits 0..32, state in bits 32..36,
/// generation in bits 36..60, class in bits 60..64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta(pub(crate) u64);

/// Block state: free.
pub(crate) const META_FREE: u32 = 0;
/// Block state: owned by `owner`.
pub(crate) const META_OWNED: u32 = 1;

impl Meta {
    pub(crate) const fn new(state: u32, generation: u32, class: u32, owner: Endpoint) -> Meta {
        Meta(
            (owner as u32 as u64)
                | ((state as u64 & 0xf) << 32)
                | ((generation as u64 & GEN_MASK) << 36)
                | ((class as u64 & 0xf) << 60),
        )
    }

    pub(crate) const fn owner(self) -> Endpoint {
        self.0 as u32 as i32
    }

    pub(crate) const fn state(self) -> u32 {
        ((self.0 >> 32) & 0xf) as u32
    }

    pub(crate) const fn generation(self) -> u32 {
        ((self.0 >> 36) & GEN_MASK) as u32
    }

    pub(crate) const fn class(self) -> u32 {
        (self.0 >> 60) as u32
    }

    /// Whether this word says `h`'s buffer is allocated now.
    pub(crate) const fn names(self, h: Handle) -> bool {
        self.state() == META_OWNED
            && self.generation() == h.generation()
            && self.class() == h.class()
    }
}

impl Message {
    /// Put a buffer handle in the message (the `m1p1` address field).
    pub fn put_handle(&mut self, h: Handle) {
        self.m1_mut().m1p1 = h.0;
    }

    /// The buffer handle carried in `m1p1` (validated only when used).
    pub fn handle(&self) -> Handle {
        Handle(self.m1().m1p1)
    }

    /// Put a grant id in the message (the `m1p2` address field).
    pub fn put_grant(&mut self, g: GrantId) {
        self.m1_mut().m1p2 = g.0;
    }

    /// The grant id carried in `m1p2` (validated only when used).
    pub fn grant(&self) -> GrantId {
        GrantId(self.m1().m1p2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let h = Handle::new(12_345, 3, 0xab_cdef);
        assert_eq!((h.pos(), h.class(), h.generation()), (12_345, 3, 0xab_cdef));
        assert!(h.well_formed());
        assert_eq!(h.capacity(), 32 * 1024);
        assert!(!Handle(0).well_formed());
        let g = GrantId::new(4095, 77);
        assert_eq!((g.index(), g.generation()), (4095, 77));
        assert!(g.well_formed());
        assert_eq!(CopyRef::from_raw(g.0), CopyRef::Grant(g));
        assert_eq!(CopyRef::from_raw(h.0), CopyRef::Buffer(h));
        let m = Meta::new(META_OWNED, 9, 8, -34);
        assert_eq!(
            (m.state(), m.generation(), m.class(), m.owner()),
            (1, 9, 8, -34)
        );
        assert!(m.names(Handle::new(0, 8, 9)));
        assert!(!m.names(Handle::new(0, 7, 9)));
        assert_eq!(next_gen(0xff_ffff), 1);
        let mut msg = Message::new(1);
        msg.put_handle(h);
        msg.put_grant(g);
        assert_eq!((msg.handle(), msg.grant()), (h, g));
    }
}
