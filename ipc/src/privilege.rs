//! Privileges: which calls an endpoint may make and which system processes it may send to.
//!
//! As in the original, a slot whose index (`nr + nr_tasks`) is below `nr_sysprocs` is a *system
//! process*: on bind it may make every call and send to everyone. Any other slot is a *user*: it
//! may only `sendrec` (plus `unbind`, `getep`, `wait4bind`). `setpriv` narrows or widens both
//! sets. Privileges live in the region, so they bind processes that use this library; the region
//! file's mode is what keeps other processes out.

use crate::slot::BITMAP_WORDS;

/// A DVK call number (the original's `dvk_calls.h`), used in [`CallSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum Call {
    /// `send`.
    Send = 2,
    /// `receive`.
    Receive = 3,
    /// `notify`.
    Notify = 4,
    /// `sendrec`.
    Sendrec = 5,
    /// `rcvrqst`.
    Rcvrqst = 6,
    /// `reply`.
    Reply = 7,
    /// `bind`.
    Bind = 9,
    /// `unbind`.
    Unbind = 10,
    /// `getpriv`.
    Getpriv = 11,
    /// `setpriv`.
    Setpriv = 12,
    /// `vcopy`.
    Vcopy = 13,
    /// `getdcinfo`.
    Getdcinfo = 14,
    /// `getprocinfo`.
    Getprocinfo = 15,
    /// `getep`.
    Getep = 26,
    /// `wait4bind`.
    Wait4bind = 29,
    /// `wakeup`.
    Wakeup = 34,
    /// `senda` (new here: the original had no asynchronous send call).
    Senda = 35,
}

/// A set of calls, one bit per call number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CallSet(pub u64);

impl CallSet {
    /// Every call.
    pub const ALL: CallSet = CallSet(u64::MAX);
    /// What a user endpoint may do by default.
    pub const USER: CallSet = CallSet(
        1 << Call::Sendrec as u8
            | 1 << Call::Unbind as u8
            | 1 << Call::Getep as u8
            | 1 << Call::Wait4bind as u8,
    );

    /// Whether `call` is in the set.
    pub const fn allows(self, call: Call) -> bool {
        self.0 & (1 << call as u8) != 0
    }

    /// The set with `call` added.
    pub const fn with(self, call: Call) -> CallSet {
        CallSet(self.0 | 1 << call as u8)
    }

    /// The set with `call` removed.
    pub const fn without(self, call: Call) -> CallSet {
        CallSet(self.0 & !(1 << call as u8))
    }
}

/// Privilege levels, as the original's `priv_level`.
pub mod level {
    /// A user process.
    pub const USER: u32 = 0;
    /// A server.
    pub const SERVER: u32 = 1;
    /// A task.
    pub const TASK: u32 = 2;
    /// The DC's proxy: the node daemon's endpoint, which binds remote slots (as the original's
    /// `PROXY_PRIV`).
    pub const PROXY: u32 = 5;
}

/// The privileges of one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Priv {
    /// Privilege level (informative).
    pub level: u32,
    /// Calls the endpoint may make.
    pub allowed: CallSet,
    /// One bit per slot index (`nr + nr_tasks`): system processes the endpoint may send to.
    /// Bits for user slots are not consulted.
    pub ipc_to: [u64; BITMAP_WORDS],
}

impl Priv {
    /// The privileges a slot gets when bound.
    pub fn default_for(is_sysproc: bool, is_task: bool) -> Priv {
        Priv {
            level: if is_task {
                level::TASK
            } else if is_sysproc {
                level::SERVER
            } else {
                level::USER
            },
            allowed: if is_sysproc {
                CallSet::ALL
            } else {
                CallSet::USER
            },
            ipc_to: [u64::MAX; BITMAP_WORDS],
        }
    }

    /// Whether the endpoint may send to slot index `idx`.
    pub fn may_send_to(&self, idx: usize) -> bool {
        self.ipc_to
            .get(idx / 64)
            .is_some_and(|w| w & (1 << (idx % 64)) != 0)
    }

    /// Allow or forbid sending to slot index `idx`.
    pub fn set_send_to(&mut self, idx: usize, allowed: bool) {
        if let Some(w) = self.ipc_to.get_mut(idx / 64) {
            if allowed {
                *w |= 1 << (idx % 64);
            } else {
                *w &= !(1 << (idx % 64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_set_is_narrow() {
        assert!(CallSet::USER.allows(Call::Sendrec));
        assert!(!CallSet::USER.allows(Call::Send));
        assert!(!CallSet::USER.allows(Call::Receive));
        assert!(CallSet::ALL.allows(Call::Senda));
        assert!(!CallSet::ALL.without(Call::Notify).allows(Call::Notify));
    }
}
