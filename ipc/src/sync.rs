//! The atomics the lock-free parts are written against: `std`'s, or loom's under `--cfg loom`, so
//! that the mailbox protocol can be model-checked.

#[cfg(loom)]
pub(crate) use loom::sync::atomic;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic;
