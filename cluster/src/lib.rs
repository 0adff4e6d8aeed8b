//! # m3cluster: a DC that spans several nodes
//!
//! One node daemon per node extends a DC over the others: an endpoint bound on node A is a
//! *remote* slot on the other member nodes, and calls to it travel between the two nodes'
//! daemons over one TCP connection per node pair, both directions multiplexed on it.
//!
//! This crate is built in layers, from the bottom:
//!
//! - [`wire`]: what travels on a connection. A versioned handshake ([`wire::Hello`]) that refuses
//!   a peer whose protocol, node id, byte order, region layout or DC limits differ, with a
//!   message naming the difference; then frames ([`wire::Frame`]): a fixed header, the 64-byte
//!   message, and an optional payload. Everything received is untrusted: one decoder
//!   ([`wire::FrameDecoder`]) bounds every length before it allocates, and is fuzzed.
//! - [`handshake`]: hellos exchanged, checked, and a verdict each way, so a refusal reaches both
//!   operators with its reason.
//! - [`config`]: the daemon's `node.toml` (node id, listen address, DCs, static peers or etcd).
//! - [`peers`]: one TCP connection per peer node (the lower id dials, re-dialling with backoff),
//!   frames batched into one write when they queue, heartbeats that declare a silent link down
//!   within [`peers::DEAD_AFTER`], and per-link counters for the operator.
//! - [`membership`]: with etcd instead of a static peer list, each daemon registers itself under
//!   a lease and follows the other nodes' records, adding and removing its links.
//!
//! Limits: node ids are 0..[`wire::MAX_NODES`]; a handshake lists at most [`m3ipc::MAX_DCS`]
//! DCs; a frame's payload is at most [`wire::MAX_PAYLOAD`] bytes (a 1 MiB data chunk and its
//! descriptor). Both nodes must share a byte order (messages travel as their 64 raw bytes); the
//! handshake refuses a peer that does not.
//!
//! The fabric (`m3ipc`) never opens a socket: it offers the daemon's side of the region, and this
//! crate does the networking.

pub mod config;
pub mod daemon;
pub mod handshake;
pub mod membership;
pub mod peers;
pub mod wire;
