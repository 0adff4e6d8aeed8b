//! The wire protocol between two node daemons: a handshake ([`Hello`]), then frames
//! ([`Frame`]) in both directions, decoded by [`FrameDecoder`].
//!
//! A connection carries, in each direction: the sender's hello, then any number of frames.
//! Frames that queue up are encoded back to back into one buffer and sent with one write; the
//! decoder takes whatever the socket gives (a frame split over reads, several frames in one) and
//! returns whole frames.

mod copy;
mod decoder;
mod error;
mod frame;
mod hello;

pub use copy::{CopyDesc, CopyOp};
pub use decoder::{FrameDecoder, Incoming};
pub use error::WireError;
pub use frame::{
    COPY_DESC_SIZE, Command, FRAME_SIZE, Frame, HEADER_SIZE, MAX_CHUNK, MAX_PAYLOAD, MAX_TEXT,
    PayloadRule,
};
pub use hello::{
    DC_ENTRY_SIZE, DcEntry, HELLO_FIXED, Hello, MAGIC, MAX_HELLO, MAX_NODES, Mismatch,
    PROTOCOL_VERSION,
};
