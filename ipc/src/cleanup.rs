//! Releasing a slot: on `unbind`, and on behalf of a process that died while bound. Releasing
//! also returns the slot's buffers to the DC's pool and revokes its grants.
//!
//! Any process may release a slot whose owner is dead; the owner releases its own on unbind. The
//! steps are idempotent, so two processes that notice the same death at once, or a releaser that
//! itself dies half-way, leave the table consistent: the next one simply does the same steps
//! again. Only the final CAS, from `Closing` to `Free` at the next generation, is done once.

use crate::endpoint::{self, NONE};
use crate::inbox;
use crate::mailbox::{EnvState, Phase};
use crate::owner::ProcessId;
use crate::region::Region;
use crate::slot::{FLAG_RECEIVING, OwnerWord, Slot, SlotState};
use std::sync::atomic::Ordering;

/// Whether the process named by a slot's owner word is alive.
pub(crate) fn owner_alive(slot: &Slot, w: OwnerWord) -> bool {
    match w.state() {
        SlotState::Free => false,
        // The start time is written after the Binding CAS: judge a binder by its PID alone.
        SlotState::Binding => pid_alive(w.pid()),
        SlotState::Bound | SlotState::Closing => ProcessId {
            pid: w.pid(),
            start: slot.owner_start.load(Ordering::Relaxed),
        }
        .is_alive(),
    }
}

fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    if crate::owner::isolated() {
        // Another PID namespace's PID, or our own binding: alive (see `owner.rs`).
        return true;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the PID exists.
    let exists = unsafe { libc::kill(pid as i32, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists
        && crate::owner::read_stat(pid)
            .and_then(|s| {
                s.rfind(')')
                    .and_then(|i| s[i + 1..].trim_start().chars().next())
            })
            .is_some_and(|c| c != 'Z' && c != 'X')
}

/// If the owner of slot `idx` is dead, release the slot. Returns whether it did.
pub(crate) fn reap_if_dead(region: &Region, idx: usize) -> bool {
    let Some(slot) = region.slot(idx) else {
        return false;
    };
    let w = slot.owner();
    if w.state() == SlotState::Free || owner_alive(slot, w) {
        return false;
    }
    if w.state() == SlotState::Binding {
        // Died while binding: nothing was published yet, give the slot back.
        let next = OwnerWord::new(SlotState::Free, next_generation(w), 0);
        return slot
            .owner
            .compare_exchange(w.0, next.0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
    }
    release(region, idx, w)
}

fn next_generation(w: OwnerWord) -> u32 {
    (w.generation() + 1) % endpoint::MAX_GENERATION
}

/// Release slot `idx`, whose owner word is `w` (Bound, or Closing after a releaser died).
/// Returns whether this call freed it.
pub(crate) fn release(region: &Region, idx: usize, w: OwnerWord) -> bool {
    let Some(slot) = region.slot(idx) else {
        return false;
    };
    let closing = OwnerWord::new(SlotState::Closing, w.generation(), w.pid());
    match w.state() {
        SlotState::Bound => {
            // AcqRel: from here on, senders that check the owner word see the slot closing.
            if slot
                .owner
                .compare_exchange(w.0, closing.0, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return false;
            }
        }
        SlotState::Closing => {
            // A corrupt state byte also reads as Closing (see `OwnerWord::state`), but the final
            // CAS below starts from the canonical Closing word: canonicalize first, or a scribbled
            // slot could never be freed (every bind of it failing with EDVSSLOTUSED forever).
            // Same owner and generation, so this changes nothing for a genuine Closing word.
            if w != closing
                && slot
                    .owner
                    .compare_exchange(w.0, closing.0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                return false;
            }
        }
        SlotState::Free | SlotState::Binding => return false,
    }
    let nr = region.geo.nr(idx);
    // A remote slot whose link is gone fails its waiters with EDVSNOTCONN (see `remote.rs`).
    let (send_err, rec_err) = crate::remote::waiter_errors(slot);

    // 1. Withdraw the slot's own messages.
    for env in &slot.envelopes {
        let st = env.load();
        if st.phase() != Phase::Idle {
            env.transition(st, EnvState::new(Phase::Idle, 0, st.seq()));
        }
    }

    // 2. Tell everyone who waits on it, and take back its notifications.
    let bit = 1u64 << (idx % 64);
    let word = idx / 64;
    for j in (0..region.geo.nr_slots).filter(|&j| j != idx) {
        let Some(other) = region.slot(j) else { break };
        let mut woke = false;
        for env in &other.envelopes {
            let mut st = env.load();
            // A `vcopy` the dead process held this client for (see `call/vcopy.rs`): lift it,
            // then treat the client as any other (the dead one may be its server too).
            if st.holder() == Some(idx as u16) {
                if !env.transition(st, st.unheld()) {
                    continue;
                }
                woke = true;
                st = st.unheld();
            }
            if st.peer() as usize != idx {
                continue;
            }
            let to = match st.phase() {
                // A live `vcopy` holds this client of the dead server: leave the hold; once it
                // ends, the client's liveness tick finds its server gone (EDVSDEADSRCDST).
                Phase::Replying if st.holder().is_some() => continue,
                // Held: a `send` the dead slot's proxy took and was forwarding.
                Phase::PendingSend | Phase::Held => EnvState::failed(send_err.code(), st.seq()),
                Phase::PendingSendrec | Phase::AwaitReply | Phase::Replying => {
                    EnvState::failed(rec_err.code(), st.seq())
                }
                Phase::PendingAsync => EnvState::new(Phase::Idle, 0, st.seq()),
                _ => continue,
            };
            woke |= env.transition(st, to);
        }
        if other.flags.load(Ordering::Relaxed) & FLAG_RECEIVING != 0
            && endpoint::nr(other.getfrom.load(Ordering::Relaxed)) == nr
        {
            woke = true;
        }
        inbox::release_claim_of(&other.inbox, idx);
        if let Some(w) = other.notify_pending.get(word) {
            w.fetch_and(!bit, Ordering::Relaxed);
        }
        if let Some(w) = other.mailbox.senders.get(word) {
            w.fetch_and(!bit, Ordering::Relaxed);
        }
        if woke {
            region.bell(other).ring();
        }
    }

    // 2b. The DC's proxy: fail the calls waiting on the remote slots it served.
    crate::remote::proxy_released(region, idx, w);

    // 3. Clear the slot's own state for the next binder.
    for w in &slot.notify_pending {
        w.store(0, Ordering::Relaxed);
    }
    slot.pending().clear_all();
    inbox::reset(&slot.inbox);
    slot.mailbox.wokenup.store(0, Ordering::Relaxed);
    slot.flags.store(0, Ordering::Relaxed);
    slot.getfrom.store(NONE, Ordering::Relaxed);
    slot.cpu.store(-1, Ordering::Relaxed);
    slot.remote.store(0, Ordering::Relaxed);

    // 4. Give its buffers back to the pool and revoke its grants (before the slot is freed, so
    // a releaser that dies here leaves the slot Closing and the next one does this again).
    if let Some(pool) = &region.pool {
        pool.release_owner(endpoint::make(w.generation(), nr));
    }

    // 5. Free it at the next generation. Release: the clearing above is visible to the next
    // binder, whose CAS on this word acquires it.
    let free = OwnerWord::new(SlotState::Free, next_generation(w), 0);
    let freed = slot
        .owner
        .compare_exchange(closing.0, free.0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok();
    region.header().bind_bell.ring_all();
    freed
}
