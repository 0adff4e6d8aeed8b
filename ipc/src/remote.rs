//! Remote slots and the DC's proxy: the region's side of a DC that spans several nodes.
//!
//! An `nr` is bound on one node of the DC at a time. On every other node its slot is *remote*:
//! bound by that node's daemon through the DC's *proxy* slot, at the remote endpoint's own
//! generation, so the local endpoint number is the remote one and a stale generation is refused
//! with `EDVSENDPOINT` exactly as locally. Local processes call a remote slot through the
//! ordinary fabric path (every local check stays: privileges, deadlock detection, timeouts); the
//! daemon, acting as the remote endpoint, takes the calls and forwards them, and delivers calls
//! from remote endpoints by making them as the remote slot. Decisions:
//!
//! - **The slot word.** The slot's `remote` word (the former spare word, so the slot does not
//!   grow; the layout version was bumped to 7 for its new meaning) holds the kind in bits 0..8
//!   (0 local, `P` proxy, `R` remote), for a remote slot the owning node in bits 8..16 and, in
//!   bit 16, "the remote endpoint itself unbinds". It is written before the slot reads Bound
//!   and cleared when the slot is released. Untrusted like every word of the region: an unknown
//!   kind reads as local, a remote word naming a node beyond [`MAX_NODES`] as a remote slot no
//!   proxy serves.
//! - **Owner.** A remote slot's owner word names the daemon process (PID and start time), so if
//!   the daemon dies the usual liveness cleanup releases it and fails its waiters. Its doorbell
//!   is the proxy's (`bell_at`), as for MUK2's hosted endpoints: the daemon sleeps on one
//!   doorbell for all its slots. That link is also how a remote slot names its proxy.
//! - **Served.** A remote slot is served while the slot its `bell_at` names is Bound as the
//!   proxy by the same process (PID and start time). A call to a remote slot that is not served
//!   fails at once with `EDVSNOPROXY`; a call already waiting on it fails with `EDVSNOTCONN`
//!   when the proxy unbinds (the proxy's release fails them, and a waiter's liveness tick
//!   catches one posted during that release).
//! - **Errors of a released remote slot.** Released by its explicit `unbind` (the remote
//!   endpoint unbound on its node): waiters get the local errors (`EDVSDSTDIED`,
//!   `EDVSDEADSRCDST`). Released any other way (the daemon dropped the handle or died, the link
//!   is gone): `EDVSNOTCONN`, the original's number for "the node link is gone".
//! - **Forgery.** `m_source` is always stamped by the library with the caller's slot, and only
//!   the proxy can bind a remote slot (a local `bind` of one is `EDVSSLOTUSED`), so only the
//!   daemon can produce a message from a remote endpoint. Privileges live in the region, whose
//!   file mode is the DC's trust boundary, as for everything else.

use crate::endpoint;
use crate::errno::Errno;
use crate::mailbox::{EnvState, Phase};
use crate::region::{MAX_NODES, Region};
use crate::slot::{BITMAP_WORDS, FLAG_RECEIVING, OwnerWord, Slot, SlotState};
use std::sync::atomic::Ordering;

const KIND_MASK: u32 = 0xff;
const KIND_PROXY: u32 = b'P' as u32;
const KIND_REMOTE: u32 = b'R' as u32;
const NODE_SHIFT: u32 = 8;
const NODE_MASK: u32 = 0xff;
/// The remote endpoint unbinds: its waiters get the local errors, not `EDVSNOTCONN`.
const UNBINDING: u32 = 1 << 16;

/// A slot's `remote` word, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RemoteWord(pub(crate) u32);

impl RemoteWord {
    /// The word of a local slot.
    pub(crate) const LOCAL: RemoteWord = RemoteWord(0);
    /// The word of the DC's proxy slot.
    pub(crate) const PROXY: RemoteWord = RemoteWord(KIND_PROXY);

    /// The word of a remote slot bound on `node` (below [`MAX_NODES`]).
    pub(crate) const fn remote(node: u32) -> RemoteWord {
        RemoteWord(KIND_REMOTE | (node & NODE_MASK) << NODE_SHIFT)
    }

    /// Whether this is the proxy slot.
    pub(crate) const fn is_proxy(self) -> bool {
        self.0 & KIND_MASK == KIND_PROXY
    }

    /// Whether this is a remote slot (whatever its node says).
    pub(crate) const fn is_remote(self) -> bool {
        self.0 & KIND_MASK == KIND_REMOTE
    }

    /// The node of a remote slot, if the word names a valid one.
    pub(crate) const fn node(self) -> Option<u32> {
        let node = (self.0 >> NODE_SHIFT) & NODE_MASK;
        if self.is_remote() && node < MAX_NODES {
            Some(node)
        } else {
            None
        }
    }

    /// Whether the remote endpoint itself unbinds (see the module docs).
    pub(crate) const fn unbinding(self) -> bool {
        self.0 & UNBINDING != 0
    }
}

/// The `remote` word of `slot`. Relaxed: it is written before the Release that publishes the
/// binding, and every reader has read the owner word (Acquire) first.
pub(crate) fn word(slot: &Slot) -> RemoteWord {
    RemoteWord(slot.remote.load(Ordering::Relaxed))
}

/// Whether remote slot `slot`, bound as `w`, is served by a proxy: the slot its `bell_at`
/// names is Bound as the proxy by the same process. Bounded: a few loads, one hop.
pub(crate) fn served(region: &Region, slot: &Slot, w: OwnerWord) -> bool {
    if word(slot).node().is_none() {
        return false;
    }
    // Relaxed: as `Region::bell` reads it (written before the binding's Release).
    let at = slot.bell_at.load(Ordering::Relaxed);
    let Some(proxy) = usize::try_from(at)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| region.slot(i))
    else {
        return false;
    };
    let pw = proxy.owner();
    pw.state() == SlotState::Bound
        && word(proxy).is_proxy()
        && pw.pid() == w.pid()
        // Relaxed: published with each binding's owner word, read (Acquire) above.
        && proxy.owner_start.load(Ordering::Relaxed) == slot.owner_start.load(Ordering::Relaxed)
}

/// The check a call makes on a peer it resolved (bound as `w`): a remote slot no proxy serves
/// is `EDVSNOPROXY`. One load for a local peer (on the line its owner word is on).
#[inline]
pub(crate) fn check_served(region: &Region, slot: &Slot, w: OwnerWord) -> Result<(), Errno> {
    if word(slot).is_remote() && !served(region, slot, w) {
        return Err(Errno::EDVSNOPROXY);
    }
    Ok(())
}

/// For a waiter's liveness tick: whether the peer, bound as `w`, is a remote slot that is still
/// bound but no longer served (its proxy unbound): the link is gone, `EDVSNOTCONN`.
pub(crate) fn link_down(region: &Region, slot: &Slot, w: OwnerWord) -> bool {
    word(slot).is_remote() && slot.owner() == w && !served(region, slot, w)
}

/// The errors a release of `slot` gives to those waiting on it: (queued senders, clients in a
/// `sendrec`). See the module docs.
pub(crate) fn waiter_errors(slot: &Slot) -> (Errno, Errno) {
    let w = word(slot);
    if w.is_remote() && !w.unbinding() {
        (Errno::EDVSNOTCONN, Errno::EDVSNOTCONN)
    } else {
        (Errno::EDVSDSTDIED, Errno::EDVSDEADSRCDST)
    }
}

/// The owner of remote slot `slot` unbinds it on purpose: the remote endpoint is gone.
pub(crate) fn mark_unbinding(slot: &Slot) {
    // Relaxed: read by the releaser on the same thread, or by a cleanup after the owner word's
    // AcqRel CAS to Closing, which orders it.
    slot.remote.fetch_or(UNBINDING, Ordering::Relaxed);
}

/// Called by `cleanup::release` for slot `idx` (bound as `w`, now Closing): if it is the proxy,
/// fail with `EDVSNOTCONN` every call waiting on the remote slots it served, and every call
/// those remote slots make (the daemon's incoming calls in flight: the link they came over is
/// gone). The remote slots stay bound (new calls to them fail with `EDVSNOPROXY`). Bounded: one
/// pass over the table to find them, one over every slot's envelopes.
pub(crate) fn proxy_released(region: &Region, idx: usize, w: OwnerWord) {
    let Some(proxy) = region.slot(idx) else {
        return;
    };
    if !word(proxy).is_proxy() {
        return;
    }
    let start = proxy.owner_start.load(Ordering::Relaxed);
    let mut ours = [0u64; BITMAP_WORDS];
    let mut any = false;
    for j in (0..region.geo.nr_slots).filter(|&j| j != idx) {
        let Some(s) = region.slot(j) else { break };
        let sw = s.owner();
        if sw.state() == SlotState::Bound
            && word(s).is_remote()
            && sw.pid() == w.pid()
            && s.owner_start.load(Ordering::Relaxed) == start
            && usize::try_from(s.bell_at.load(Ordering::Relaxed)).ok() == Some(idx + 1)
            && let Some(bits) = ours.get_mut(j / 64)
        {
            *bits |= 1 << (j % 64);
            any = true;
        }
    }
    if !any {
        return;
    }
    let is_ours = |j: usize| ours.get(j / 64).is_some_and(|b| b & (1 << (j % 64)) != 0);
    for k in 0..region.geo.nr_slots {
        let Some(other) = region.slot(k) else { break };
        let mut woke = false;
        let outgoing = is_ours(k);
        for env in &other.envelopes {
            let st = env.load();
            if !outgoing && !is_ours(st.peer() as usize) {
                continue;
            }
            let to = match st.phase() {
                Phase::PendingSend | Phase::Held | Phase::PendingSendrec | Phase::AwaitReply => {
                    EnvState::failed(Errno::EDVSNOTCONN.code(), st.seq())
                }
                // Never taken by the daemon: dropped, as a release drops it.
                Phase::PendingAsync => EnvState::new(Phase::Idle, 0, st.seq()),
                // A reply being written (or a `vcopy` hold): it ends by itself.
                _ => continue,
            };
            woke |= env.transition(st, to);
        }
        // A receiver from one of them: its liveness tick finds the link down (EDVSNOTCONN).
        if other.flags.load(Ordering::Relaxed) & FLAG_RECEIVING != 0
            && let Some(i) = region
                .geo
                .index(endpoint::nr(other.getfrom.load(Ordering::Relaxed)))
            && is_ours(i)
        {
            woke = true;
        }
        if woke {
            region.bell(other).ring();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_decode_and_garbage_is_harmless() {
        assert!(!RemoteWord::LOCAL.is_remote() && !RemoteWord::LOCAL.is_proxy());
        assert!(RemoteWord::PROXY.is_proxy() && !RemoteWord::PROXY.is_remote());
        let r = RemoteWord::remote(31);
        assert!(r.is_remote() && !r.is_proxy() && !r.unbinding());
        assert_eq!(r.node(), Some(31));
        assert!(RemoteWord(r.0 | UNBINDING).unbinding());
        // A node beyond the limit: remote, but no valid node (never served).
        let bad = RemoteWord(KIND_REMOTE | 200 << NODE_SHIFT);
        assert!(bad.is_remote());
        assert_eq!(bad.node(), None);
        // An unknown kind reads as local.
        let junk = RemoteWord(0xdead_be77);
        assert!(!junk.is_remote() && !junk.is_proxy());
    }
}
