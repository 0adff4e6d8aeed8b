//! What can be wrong with bytes received from a peer.

use super::Command;

/// A malformed hello or frame. The connection it came on cannot be trusted any further: the
/// daemon closes it (a decoder that returned one returns [`WireError::Poisoned`] afterwards).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The first eight bytes are not `M3IPCNET`: the peer is not an M3-IPC node.
    #[error("not an M3-IPC node: the connection began with {0:02x?}")]
    BadMagic([u8; 8]),
    /// The hello is malformed (the text says how).
    #[error("malformed hello: {0}")]
    BadHello(String),
    /// A frame names a command this protocol version does not have.
    #[error("unknown frame command {0:#06x}")]
    UnknownCommand(u16),
    /// A frame sets flags this protocol version does not have.
    #[error("unknown frame flags {0:#06x}")]
    BadFlags(u16),
    /// A frame's payload length breaks its command's rule.
    #[error("a {cmd:?} frame cannot carry {len} payload bytes")]
    BadPayload {
        /// The command.
        cmd: Command,
        /// The payload length it announced.
        len: usize,
    },
    /// A frame whose payload is text carries bytes that are not UTF-8.
    #[error("a {0:?} frame's text is not UTF-8")]
    BadText(Command),
    /// A copy frame's descriptor is malformed (unknown op, a length of 0 or above a chunk,
    /// reserved bytes set, or data that does not match its length).
    #[error("malformed copy descriptor")]
    BadCopy,
    /// The decoder already refused this stream.
    #[error("the stream was already refused")]
    Poisoned,
}
