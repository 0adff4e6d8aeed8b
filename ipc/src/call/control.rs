//! `wakeup`, `wait4bind`/`wait4unbind` by a bound endpoint, `setpriv` and `getpriv`.

use crate::endpoint::SELF;
use crate::errno::{Errno, Result};
use crate::privilege::{Call, CallSet, Priv};
use crate::proc::{Proc, Role};
use crate::slot::{BITMAP_WORDS, FLAG_WAITBIND, Slot};
use crate::wait::Timeout;
use std::sync::atomic::Ordering;

impl Proc {
    /// `wakeup(ep)`: make `ep`'s current or next `receive(ANY)`/`rcvrqst` return `EDVSWOKENUP`.
    pub fn wakeup(&self, ep: i32) -> Result<()> {
        self.caller(Call::Wakeup)?;
        let peer = self.peer(ep, Role::Destination, Errno::EDVSENDPOINT)?;
        // Relaxed: the ring's AcqRel publishes it.
        peer.slot.mailbox.wokenup.store(1, Ordering::Relaxed);
        self.region().bell(peer.slot).ring();
        Ok(())
    }

    /// `wait4bind(ep)` made by a bound endpoint: as [`crate::Dc::wait4bind`], with the call
    /// checked against the caller's privileges (`EDVSBADCALL`; users may make it) and
    /// `FLAG_WAITBIND` shown on the caller's slot while it waits.
    pub fn wait4bind(&self, ep: i32, timeout: Timeout) -> Result<i32> {
        let me = self.caller(Call::Wait4bind)?;
        me.flags.fetch_or(FLAG_WAITBIND, Ordering::Relaxed);
        let r = self.dc().wait4bind(ep, timeout);
        me.flags.fetch_and(!FLAG_WAITBIND, Ordering::Relaxed);
        r
    }

    /// `wait4bind` with the unbind variant, made by a bound endpoint: as
    /// [`crate::Dc::wait4unbind`], checked and shown as [`Proc::wait4bind`] is.
    pub fn wait4unbind(&self, ep: i32, timeout: Timeout) -> Result<()> {
        let me = self.caller(Call::Wait4bind)?;
        me.flags.fetch_or(FLAG_WAITBIND, Ordering::Relaxed);
        let r = self.dc().wait4unbind(ep, timeout);
        me.flags.fetch_and(!FLAG_WAITBIND, Ordering::Relaxed);
        r
    }

    /// `setpriv(ep, priv)`: set the privileges of `ep` (or `SELF`). The caller must be a system
    /// process, else `EDVSPRIVILEGES`.
    pub fn setpriv(&self, ep: i32, p: &Priv) -> Result<()> {
        let me = self.caller(Call::Setpriv)?;
        if !self.region().geo.is_sysproc(self.idx) {
            return Err(Errno::EDVSPRIVILEGES);
        }
        let target = self.priv_target(me, ep)?;
        target.allowed.store(p.allowed.0, Ordering::Relaxed);
        target.level.store(p.level, Ordering::Relaxed);
        for (w, v) in target.ipc_to.iter().zip(p.ipc_to) {
            w.store(v, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `getpriv(ep)`: the privileges of `ep` (or `SELF`).
    pub fn getpriv(&self, ep: i32) -> Result<Priv> {
        let me = self.caller(Call::Getpriv)?;
        let target = self.priv_target(me, ep)?;
        let mut ipc_to = [0u64; BITMAP_WORDS];
        for (v, w) in ipc_to.iter_mut().zip(&target.ipc_to) {
            *v = w.load(Ordering::Relaxed);
        }
        Ok(Priv {
            level: target.level.load(Ordering::Relaxed),
            allowed: CallSet(target.allowed.load(Ordering::Relaxed)),
            ipc_to,
        })
    }

    fn priv_target<'a>(&'a self, me: &'a Slot, ep: i32) -> Result<&'a Slot> {
        if ep == SELF || ep == self.ep {
            return Ok(me);
        }
        Ok(self.peer(ep, Role::Destination, Errno::EDVSENDPOINT)?.slot)
    }
}
