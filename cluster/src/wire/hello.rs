//! The handshake: each side sends a [`Hello`] first, reads the other's, and checks it with
//! [`Hello::check_peer`]. A mismatch is refused: the refusing side sends a
//! [`Command::Goodbye`](super::Command::Goodbye) frame whose text names the difference, then
//! closes, so both operators read the same reason.
//!
//! Layout (fixed part 40 bytes, then one 32-byte entry per DC):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `M3IPCNET` |
//! | 8 | 2 | protocol version (LE) |
//! | 10 | 2 | number of DC entries (LE), at most [`m3ipc::MAX_DCS`] |
//! | 12 | 4 | `0x0102_0304` in the sender's byte order |
//! | 16 | 4 | the sender's node id (LE) |
//! | 20 | 4 | the node id the sender expects to reach (LE), or `0xffff_ffff`: any |
//! | 24 | 8 | the sender's region layout hash (LE) |
//! | 32 | 8 | reserved, zero |
//!
//! A DC entry: its name (16 bytes, NUL-padded, at most [`m3ipc::MAX_NAME`] bytes of UTF-8), then
//! its id, `nr_tasks`, `nr_procs` and `nr_sysprocs` (LE u32 each).

use super::WireError;
use std::fmt;

/// The first eight bytes on every connection.
pub const MAGIC: [u8; 8] = *b"M3IPCNET";
/// The protocol this build speaks. A peer that speaks another is refused.
pub const PROTOCOL_VERSION: u16 = 2;
/// Node ids are `0..MAX_NODES`.
pub const MAX_NODES: u32 = 32;
/// Bytes of a hello's fixed part.
pub const HELLO_FIXED: usize = 40;
/// Bytes of one DC entry in a hello.
pub const DC_ENTRY_SIZE: usize = 32;
/// Bytes of the largest hello.
pub const MAX_HELLO: usize = HELLO_FIXED + m3ipc::MAX_DCS as usize * DC_ENTRY_SIZE;

const BYTE_ORDER_MARK: u32 = 0x0102_0304;
const ANY_NODE: u32 = u32::MAX;

/// A DC as a node announces it: the numbers two nodes must agree on to share it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcEntry {
    /// The DC's name (at most [`m3ipc::MAX_NAME`] bytes).
    pub name: String,
    /// The DC's id.
    pub id: u32,
    /// Task slots.
    pub nr_tasks: u32,
    /// Process slots.
    pub nr_procs: u32,
    /// System-process slots.
    pub nr_sysprocs: u32,
}

/// What a node says first on a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version it speaks.
    pub version: u16,
    /// Its node id.
    pub node: u32,
    /// The node it means to reach (a dialler knows; a listener does not).
    pub peer: Option<u32>,
    /// Its region layout hash ([`m3ipc::layout_hash`]).
    pub layout_hash: u64,
    /// The DCs it serves.
    pub dcs: Vec<DcEntry>,
    /// Whether it wrote in this node's byte order (always true for a hello built here).
    pub same_byte_order: bool,
}

/// Why a peer's hello was refused. Its text names the difference and both sides' values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The peer speaks another protocol version.
    Version {
        /// Ours.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// The peer writes in another byte order.
    ByteOrder,
    /// The peer claims our own node id.
    NodeIdClash(u32),
    /// We dialled one node and another answered.
    UnexpectedNode {
        /// The node we meant to reach.
        expected: u32,
        /// The node that answered.
        got: u32,
    },
    /// The peer expects to have reached another node than us.
    NotMe {
        /// Our node id.
        ours: u32,
        /// The node it meant to reach.
        theirs: u32,
    },
    /// The peer's region layout differs (another build).
    Layout {
        /// Ours.
        ours: u64,
        /// Theirs.
        theirs: u64,
    },
    /// A DC both serve differs in a number both must agree on.
    Dc {
        /// The DC's name.
        name: String,
        /// Which number (`id`, `nr_tasks`, ...).
        what: &'static str,
        /// Ours.
        ours: u32,
        /// Theirs.
        theirs: u32,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Version { ours, theirs } => write!(
                f,
                "protocol version mismatch: this node speaks {ours}, the peer {theirs}"
            ),
            Mismatch::ByteOrder => write!(f, "byte order mismatch: the nodes differ in endianness"),
            Mismatch::NodeIdClash(n) => write!(f, "node id clash: both nodes are node {n}"),
            Mismatch::UnexpectedNode { expected, got } => {
                write!(
                    f,
                    "wrong node: dialled node {expected}, node {got} answered"
                )
            }
            Mismatch::NotMe { ours, theirs } => write!(
                f,
                "wrong node: the peer meant to reach node {theirs}, this is node {ours}"
            ),
            Mismatch::Layout { ours, theirs } => write!(
                f,
                "region layout mismatch: {ours:#018x} here, {theirs:#018x} on the peer (another build)"
            ),
            Mismatch::Dc {
                name,
                what,
                ours,
                theirs,
            } => write!(
                f,
                "DC \"{name}\" mismatch: {what} is {ours} here, {theirs} on the peer"
            ),
        }
    }
}

impl std::error::Error for Mismatch {}

impl Hello {
    /// The hello of this build's node `node`, meaning to reach `peer` (None: a listener).
    pub fn new(node: u32, peer: Option<u32>, dcs: Vec<DcEntry>) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            node,
            peer,
            layout_hash: m3ipc::layout_hash(),
            dcs,
            same_byte_order: true,
        }
    }

    /// Append the hello's bytes to `out`.
    ///
    /// Errors: [`WireError::BadHello`] when a field cannot be sent (node id out of range, too
    /// many DCs, a DC name too long or with a NUL).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        self.check_own()?;
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        // check_own bounded the count by MAX_DCS.
        out.extend_from_slice(&(self.dcs.len() as u16).to_le_bytes());
        // A hello decoded from a peer of the other byte order encodes as it came.
        let mark = if self.same_byte_order {
            BYTE_ORDER_MARK
        } else {
            BYTE_ORDER_MARK.swap_bytes()
        };
        out.extend_from_slice(&mark.to_ne_bytes());
        out.extend_from_slice(&self.node.to_le_bytes());
        out.extend_from_slice(&self.peer.unwrap_or(ANY_NODE).to_le_bytes());
        out.extend_from_slice(&self.layout_hash.to_le_bytes());
        out.extend_from_slice(&[0u8; 8]);
        for dc in &self.dcs {
            let mut name = [0u8; 16];
            name[..dc.name.len()].copy_from_slice(dc.name.as_bytes());
            out.extend_from_slice(&name);
            for v in [dc.id, dc.nr_tasks, dc.nr_procs, dc.nr_sysprocs] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(())
    }

    fn check_own(&self) -> Result<(), WireError> {
        if self.node >= MAX_NODES {
            return Err(WireError::BadHello(format!(
                "node id {} out of range 0..{MAX_NODES}",
                self.node
            )));
        }
        if let Some(p) = self.peer
            && p >= MAX_NODES
        {
            return Err(WireError::BadHello(format!(
                "peer node id {p} out of range 0..{MAX_NODES}"
            )));
        }
        if self.dcs.len() > m3ipc::MAX_DCS as usize {
            return Err(WireError::BadHello(format!(
                "{} DCs, at most {}",
                self.dcs.len(),
                m3ipc::MAX_DCS
            )));
        }
        for dc in &self.dcs {
            if dc.name.is_empty() || dc.name.len() > m3ipc::MAX_NAME || dc.name.contains('\0') {
                return Err(WireError::BadHello(format!(
                    "DC name {:?}: 1 to {} bytes without NUL",
                    dc.name,
                    m3ipc::MAX_NAME
                )));
            }
        }
        Ok(())
    }

    /// Bytes the hello starting at `b` takes, once its fixed part is in: `Ok(None)` while fewer
    /// than [`HELLO_FIXED`] bytes are there.
    ///
    /// Errors: [`WireError::BadMagic`] (the peer is not an M3-IPC node: checked on the first
    /// eight bytes, so garbage is refused at once), [`WireError::BadHello`] for too many DCs.
    pub(super) fn wire_len(b: &[u8]) -> Result<Option<usize>, WireError> {
        if b.len() >= MAGIC.len() && b[..MAGIC.len()] != MAGIC {
            let mut got = [0u8; 8];
            got.copy_from_slice(&b[..MAGIC.len()]);
            return Err(WireError::BadMagic(got));
        }
        if b.len() < HELLO_FIXED {
            return Ok(None);
        }
        let count = u16::from_le_bytes([b[10], b[11]]) as usize;
        if count > m3ipc::MAX_DCS as usize {
            return Err(WireError::BadHello(format!(
                "{count} DCs announced, at most {}",
                m3ipc::MAX_DCS
            )));
        }
        Ok(Some(HELLO_FIXED + count * DC_ENTRY_SIZE))
    }

    /// Decode a whole hello (exactly its [`Hello::wire_len`] bytes).
    pub(super) fn decode(b: &[u8]) -> Result<Hello, WireError> {
        let len = Hello::wire_len(b)?.ok_or(WireError::BadHello("truncated".into()))?;
        if b.len() != len {
            return Err(WireError::BadHello(format!(
                "{} bytes, expected {len}",
                b.len()
            )));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&b[24..32]);
        let mark = u32::from_ne_bytes([b[12], b[13], b[14], b[15]]);
        let same_byte_order = mark == BYTE_ORDER_MARK;
        if !same_byte_order && mark != BYTE_ORDER_MARK.swap_bytes() {
            return Err(WireError::BadHello(format!("byte order mark {mark:#010x}")));
        }
        if b[32..40] != [0u8; 8] {
            return Err(WireError::BadHello("reserved bytes are not zero".into()));
        }
        let node = u32_at(16);
        let peer = match u32_at(20) {
            ANY_NODE => None,
            p => Some(p),
        };
        let mut dcs = Vec::new();
        for entry in b[HELLO_FIXED..].chunks_exact(DC_ENTRY_SIZE) {
            let raw = &entry[..16];
            let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
            if end == 0 || end > m3ipc::MAX_NAME || raw[end..].iter().any(|&c| c != 0) {
                return Err(WireError::BadHello(format!(
                    "DC name {:?}: 1 to {} bytes, NUL-padded",
                    String::from_utf8_lossy(&raw[..end]),
                    m3ipc::MAX_NAME
                )));
            }
            let name = std::str::from_utf8(&raw[..end])
                .map_err(|_| WireError::BadHello("DC name is not UTF-8".into()))?
                .to_string();
            let at =
                |o: usize| u32::from_le_bytes([entry[o], entry[o + 1], entry[o + 2], entry[o + 3]]);
            if dcs.iter().any(|d: &DcEntry| d.name == name) {
                return Err(WireError::BadHello(format!(
                    "DC \"{name}\" announced twice"
                )));
            }
            dcs.push(DcEntry {
                name,
                id: at(16),
                nr_tasks: at(20),
                nr_procs: at(24),
                nr_sysprocs: at(28),
            });
        }
        let hello = Hello {
            version: u16::from_le_bytes([b[8], b[9]]),
            node,
            peer,
            layout_hash: u64::from_le_bytes(hash),
            dcs,
            same_byte_order,
        };
        // The peer's node ids must be ones we could name; the rest is compared by check_peer.
        if hello.node >= MAX_NODES {
            return Err(WireError::BadHello(format!(
                "node id {} out of range 0..{MAX_NODES}",
                hello.node
            )));
        }
        // Found by the fuzzer: a peer id we could not name either (nor encode again).
        if let Some(p) = hello.peer
            && p >= MAX_NODES
        {
            return Err(WireError::BadHello(format!(
                "peer node id {p} out of range 0..{MAX_NODES}"
            )));
        }
        Ok(hello)
    }

    /// Check the peer's hello against ours: `Ok` when the two nodes may talk. The DCs both
    /// serve must agree in id and limits; a DC only one side serves is not an error (calls to
    /// its endpoints on the other node fail with `EDVSNODCNODE`).
    pub fn check_peer(&self, theirs: &Hello) -> Result<(), Mismatch> {
        if !theirs.same_byte_order {
            return Err(Mismatch::ByteOrder);
        }
        if theirs.version != self.version {
            return Err(Mismatch::Version {
                ours: self.version,
                theirs: theirs.version,
            });
        }
        if theirs.node == self.node {
            return Err(Mismatch::NodeIdClash(self.node));
        }
        if let Some(expected) = self.peer
            && expected != theirs.node
        {
            return Err(Mismatch::UnexpectedNode {
                expected,
                got: theirs.node,
            });
        }
        if let Some(meant) = theirs.peer
            && meant != self.node
        {
            return Err(Mismatch::NotMe {
                ours: self.node,
                theirs: meant,
            });
        }
        if theirs.layout_hash != self.layout_hash {
            return Err(Mismatch::Layout {
                ours: self.layout_hash,
                theirs: theirs.layout_hash,
            });
        }
        for ours in &self.dcs {
            let Some(t) = theirs.dcs.iter().find(|d| d.name == ours.name) else {
                continue;
            };
            let pairs = [
                ("id", ours.id, t.id),
                ("nr_tasks", ours.nr_tasks, t.nr_tasks),
                ("nr_procs", ours.nr_procs, t.nr_procs),
                ("nr_sysprocs", ours.nr_sysprocs, t.nr_sysprocs),
            ];
            for (what, a, b) in pairs {
                if a != b {
                    return Err(Mismatch::Dc {
                        name: ours.name.clone(),
                        what,
                        ours: a,
                        theirs: b,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dc(name: &str, id: u32) -> DcEntry {
        DcEntry {
            name: name.into(),
            id,
            nr_tasks: 34,
            nr_procs: 221,
            nr_sysprocs: 64,
        }
    }

    fn bytes(h: &Hello) -> Vec<u8> {
        let mut out = Vec::new();
        h.encode(&mut out).unwrap_or_else(|e| panic!("{e}"));
        out
    }

    #[test]
    fn a_hello_round_trips() {
        let h = Hello::new(3, Some(1), vec![dc("DC0", 0), dc("web", 5)]);
        let b = bytes(&h);
        assert_eq!(b.len(), HELLO_FIXED + 2 * DC_ENTRY_SIZE);
        assert_eq!(Hello::wire_len(&b), Ok(Some(b.len())));
        assert_eq!(Hello::decode(&b), Ok(h));
    }

    #[test]
    fn garbage_is_refused_on_its_first_eight_bytes() {
        assert!(matches!(
            Hello::wire_len(b"GET / HTTP/1.1\r\n"),
            Err(WireError::BadMagic(_))
        ));
        assert_eq!(Hello::wire_len(b"M3IPC"), Ok(None));
    }

    #[test]
    fn each_mismatch_is_named() {
        let ours = Hello::new(0, None, vec![dc("DC0", 0)]);
        let mut t = Hello::new(1, Some(0), vec![dc("DC0", 0), dc("other", 9)]);
        assert_eq!(ours.check_peer(&t), Ok(()));

        t.version = PROTOCOL_VERSION + 1;
        let e = ours.check_peer(&t).map(|_| ()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "protocol version mismatch: this node speaks {PROTOCOL_VERSION}, the peer {}",
                PROTOCOL_VERSION + 1
            )
        );
        t.version = PROTOCOL_VERSION;

        t.node = 0;
        assert_eq!(ours.check_peer(&t), Err(Mismatch::NodeIdClash(0)));
        t.node = 1;

        t.peer = Some(2);
        assert_eq!(
            ours.check_peer(&t),
            Err(Mismatch::NotMe { ours: 0, theirs: 2 })
        );
        t.peer = Some(0);

        let dialler = Hello::new(0, Some(4), vec![]);
        assert_eq!(
            dialler.check_peer(&t),
            Err(Mismatch::UnexpectedNode {
                expected: 4,
                got: 1
            })
        );

        t.layout_hash ^= 1;
        assert!(matches!(ours.check_peer(&t), Err(Mismatch::Layout { .. })));
        t.layout_hash ^= 1;

        t.dcs[0].nr_procs = 100;
        let e = ours.check_peer(&t).map(|_| ()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DC \"DC0\" mismatch: nr_procs is 221 here, 100 on the peer"
        );
        t.dcs[0].nr_procs = 221;

        t.same_byte_order = false;
        assert_eq!(ours.check_peer(&t), Err(Mismatch::ByteOrder));
    }

    #[test]
    fn a_swapped_byte_order_is_seen() {
        let h = Hello::new(1, None, vec![]);
        let mut b = bytes(&h);
        b[12..16].reverse();
        let d = Hello::decode(&b).unwrap_or_else(|e| panic!("{e}"));
        assert!(!d.same_byte_order);
        assert_eq!(bytes(&d), b, "it encodes as it came");
        b[12] = 0x55;
        assert!(Hello::decode(&b).is_err());
    }

    #[test]
    fn bad_fields_are_refused() {
        assert!(
            Hello::new(32, None, vec![])
                .encode(&mut Vec::new())
                .is_err()
        );
        assert!(
            Hello::new(1, Some(40), vec![])
                .encode(&mut Vec::new())
                .is_err()
        );
        assert!(
            Hello::new(1, None, vec![dc("", 0)])
                .encode(&mut Vec::new())
                .is_err()
        );
        assert!(
            Hello::new(1, None, vec![dc("sixteen-bytes-xx", 0)])
                .encode(&mut Vec::new())
                .is_err()
        );
        let many = (0..=m3ipc::MAX_DCS)
            .map(|i| dc(&format!("d{i}"), i))
            .collect();
        assert!(Hello::new(1, None, many).encode(&mut Vec::new()).is_err());

        let good = bytes(&Hello::new(1, None, vec![dc("a", 0), dc("b", 1)]));
        let mut twice = good.clone();
        twice[HELLO_FIXED + DC_ENTRY_SIZE] = b'a';
        assert!(Hello::decode(&twice).is_err());
        let mut reserved = good.clone();
        reserved[33] = 1;
        assert!(Hello::decode(&reserved).is_err());
        let mut node = good.clone();
        node[16] = 77;
        assert!(Hello::decode(&node).is_err());
        let mut gap = good;
        gap[HELLO_FIXED + 2] = b'x'; // "a\0x": bytes after the NUL
        assert!(Hello::decode(&gap).is_err());
    }
}
