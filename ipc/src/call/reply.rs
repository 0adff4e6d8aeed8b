//! `reply`.

use crate::cleanup;
use crate::errno::{Errno, Result};
use crate::mailbox::{EnvState, Envelope, Phase, SYNC};
use crate::message::Message;
use crate::privilege::Call;
use crate::proc::{Peer, Proc, Role};
use crate::slot::{Counters, Slot};
use crate::wait::{self, LIVENESS_TICK};
use std::time::Instant;

impl Proc {
    /// `reply(dst, m)`: answer a client waiting in the receive half of its `sendrec` to the
    /// caller. Never blocks.
    ///
    /// Errors: `EDVSDCNOTRUN`, `EDVSNOTBIND`, `EDVSBADCALL`, `EDVSTRAPDENIED` (caller not a
    /// system process), peer errors as [`Proc::send`], and `EDVSPROCSTS` when `dst` is not
    /// waiting for a reply from the caller.
    pub fn reply(&self, dst: i32, m: &Message) -> Result<()> {
        let me = self.caller(Call::Reply)?;
        self.require_sysproc()?;
        let peer = self.peer(dst, Role::Destination, Errno::EDVSENDPOINT)?;
        if self.try_reply(me, &peer, m)? {
            Ok(())
        } else {
            Err(Errno::EDVSPROCSTS)
        }
    }

    /// If `peer` waits for the caller's reply, deliver `m` as that reply and return `true`.
    pub(crate) fn try_reply(&self, me: &Slot, peer: &Peer<'_>, m: &Message) -> Result<bool> {
        let Some(replying) = self.claim_reply(peer) else {
            return Ok(false);
        };
        if !self.finish_claimed_reply(peer, replying, m) {
            return Err(Errno::EDVSPROCSTS);
        }
        Counters::bump(&me.counters.sent);
        Ok(true)
    }

    /// If `peer` waits for the caller's reply, claim its envelope (`Replying`) and return the
    /// claimed state; finish with [`Proc::finish_claimed_reply`].
    pub(crate) fn claim_reply(&self, peer: &Peer<'_>) -> Option<EnvState> {
        let env = &peer.slot.envelopes[SYNC];
        if let Some((idx, awaiting)) = self.last_request.take()
            && idx == peer.idx
        {
            let replying = EnvState::new(Phase::Replying, awaiting.peer(), awaiting.seq());
            if env.transition(awaiting, replying) {
                return Some(replying);
            }
        }
        let mut st = env.load();
        if st.holder().is_some() && st.peer() as usize == self.idx {
            st = self.await_copy(env, st);
        }
        if st.phase() != Phase::AwaitReply || st.peer() as usize != self.idx {
            return None;
        }
        // Claim the envelope first, so that a client that times out now cannot be handed a
        // reply it no longer waits for, nor have its next message overwritten.
        let replying = EnvState::new(Phase::Replying, st.peer(), st.seq());
        env.transition(st, replying).then_some(replying)
    }

    /// Our client is held by a `vcopy` (see `Proc::settle` in `call/vcopy.rs`), for as long as
    /// one copy takes: wait for it, at most a liveness tick, and lift the hold of a holder that
    /// died. Returns the state then seen (still the hold if a live holder stalls that long: the
    /// reply is then `EDVSPROCSTS`).
    fn await_copy(&self, env: &Envelope, mut st: EnvState) -> EnvState {
        let start = Instant::now();
        for spins in 0u32.. {
            let Some(holder) = st.holder() else {
                return st;
            };
            let alive = self
                .region()
                .slot(holder as usize)
                .is_some_and(|h| cleanup::owner_alive(h, h.owner()));
            if !alive {
                env.transition(st, st.unheld());
            } else if start.elapsed() >= LIVENESS_TICK {
                return st;
            } else if spins < 64 {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            st = env.load();
        }
        st
    }

    /// Write `m` as the reply into `peer`'s claimed envelope, publish it and wake `peer`.
    /// `false` if the client abandoned the claim meanwhile (see `finish_reply`).
    pub(crate) fn finish_claimed_reply(
        &self,
        peer: &Peer<'_>,
        replying: EnvState,
        m: &Message,
    ) -> bool {
        let mut out = *m;
        out.m_source = self.ep;
        if !peer.slot.envelopes[SYNC].finish_reply(replying, &out.to_words()) {
            return false;
        }
        if self.region().bell(peer.slot).ring() {
            wait::mark_woken(&peer.slot.cpu);
        }
        true
    }
}
