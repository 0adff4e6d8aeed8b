//! `notify`.

use crate::errno::{Errno, Result};
use crate::privilege::Call;
use crate::proc::{Proc, Role};
use crate::wait;
use std::sync::atomic::Ordering;

impl Proc {
    /// `notify(dst)`: set the caller's bit in `dst`'s pending notifications. Never blocks.
    /// Repeats before `dst` receives coalesce: they return OK and count in `dst`'s overrun
    /// counter. `dst` receives `m_source = caller`, `m_type = notify_from(caller nr)` and the
    /// delivery time in the notify view.
    ///
    /// Errors: `EDVSDCNOTRUN`, `EDVSNOTBIND`, `EDVSBADCALL`, peer errors (self is
    /// `EDVSENDPOINT`), `EDVSTRAPDENIED` (`dst` is not a system process, or not in `ipc_to`).
    pub fn notify(&self, dst: i32) -> Result<()> {
        let me = self.caller(Call::Notify)?;
        let peer = self.peer(dst, Role::Destination, Errno::EDVSENDPOINT)?;
        if !self.region().geo.is_sysproc(peer.idx) {
            return Err(Errno::EDVSTRAPDENIED);
        }
        self.check_ipc_to(me, &peer)?;
        let bit = 1u64 << (self.idx % 64);
        let word = peer
            .slot
            .notify_pending
            .get(self.idx / 64)
            .ok_or(Errno::EDVSRANGE)?;
        // Relaxed: the bit carries no data; the doorbell's AcqRel ring orders it before the
        // receiver's next check.
        let old = word.fetch_or(bit, Ordering::Relaxed);
        if old & bit != 0 {
            peer.slot.counters.overruns.fetch_add(1, Ordering::Relaxed);
        } else if self.region().bell(peer.slot).ring() {
            // As a post does: the woken receiver counts as running again, so that we spin for
            // its answer rather than sleep (see `wait::mark_woken`).
            wait::mark_woken(&peer.slot.cpu);
        }
        // The peer to spin for in our next receive(ANY), as after a send: a notify ping-pong
        // spins while the other side runs on another CPU instead of sleeping on every hop. A
        // hint only (the spin stays bounded and needs the peer running elsewhere), one store
        // to our own Cell.
        self.last_peer.set(Some(peer.idx));
        Ok(())
    }
}
