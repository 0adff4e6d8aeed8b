//! The IPC calls, one family per file: `send`/`sendrec`/`senda` here, `receive`/`rcvrqst` in
//! `receive.rs`, `notify` in `notify.rs`, `reply` in `reply.rs`, and the control calls
//! (`wakeup`, `setpriv`, `getpriv`) in `control.rs`; the pool's buffer and grant calls in
//! `buffer.rs` and `vcopy` in `vcopy.rs`; the DC proxy's calls (remote slots, held sends) in
//! `proxy.rs`, and the calls it makes without waiting in `posted.rs`.

mod buffer;
mod control;
mod hosted;
mod notify;
mod posted;
mod proxy;
mod receive;
mod reply;
mod send;
mod vcopy;
mod vcopy_across;

pub use hosted::RingCount;
pub use posted::Posted;
pub use proxy::{HELD_GRACE, Held, Taken};
