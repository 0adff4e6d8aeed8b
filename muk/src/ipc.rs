//! The one IPC interface servers are written against.
//!
//! A server receives `&mut dyn Ipc` and never learns which runner hosts it: under MUK2 the calls
//! between two servers of the same unikernel are direct coroutine hand-offs, and calls to
//! anything outside go through the fabric; under MUK every call goes through the fabric from the
//! server's own OS thread. The semantics are those of `m3ipc` (docs/ARCHITECTURE.md section 4) in both.

use m3ipc::{Access, BufView, CopyRef, Dc, Endpoint, GrantId, Handle, Message, Result, Timeout};
use std::os::fd::RawFd;
use std::time::Duration;

pub use crate::sockets::IoEvent;

/// The calls a hosted server may make.
///
/// Every blocking call takes a [`Timeout`]. When the host stops, it asks its servers to finish
/// one at a time (see [`crate::Stopper`]): a server asked sees its receives and sleeps fail
/// with `EDVSSHUTDOWN` ([`Ipc::stopping`] turns true) and returns from its loop, after any
/// final calls to the servers below it; once the stop's grace is over, every call fails so.
pub trait Ipc {
    /// The server's own endpoint.
    fn endpoint(&self) -> Endpoint;
    /// The server's name, as the config gives it.
    fn name(&self) -> &str;
    /// The DC the server is bound in (for introspection: `getprocinfo`, `getep`, ...).
    fn dc(&self) -> &Dc;
    /// `send`: returns once `dst` has received `m`.
    fn send(&mut self, dst: Endpoint, m: &Message, timeout: Timeout) -> Result<()>;
    /// `receive` from `src` or `ANY` into `m`.
    fn receive(&mut self, src: Endpoint, m: &mut Message, timeout: Timeout) -> Result<()>;
    /// `sendrec`: send `m` to `dst`, then receive its reply into `m`.
    fn sendrec(&mut self, dst: Endpoint, m: &mut Message, timeout: Timeout) -> Result<()>;
    /// `rcvrqst`: receive the oldest request from anyone, ignoring notifications.
    fn rcvrqst(&mut self, m: &mut Message, timeout: Timeout) -> Result<()>;
    /// `reply` to a client waiting in `sendrec` to us; never blocks.
    fn reply(&mut self, dst: Endpoint, m: &Message) -> Result<()>;
    /// `notify`: never blocks; repeats coalesce.
    fn notify(&mut self, dst: Endpoint) -> Result<()>;
    /// `vcopy`: copy `len` bytes (at most 1 MiB) from a granted range of `src_ep`'s pool buffer
    /// to one of `dst_ep`'s, inside the DC's pool, as [`m3ipc::Proc::vcopy`]: each side other
    /// than the caller is named by a grant it issued to the caller and must be blocked in a
    /// receive (a client in `sendrec` is). Never blocks.
    #[allow(clippy::too_many_arguments)] // The original call's parameters, one by one.
    fn vcopy(
        &mut self,
        src_ep: Endpoint,
        src: CopyRef,
        src_off: usize,
        dst_ep: Endpoint,
        dst: CopyRef,
        dst_off: usize,
        len: usize,
    ) -> Result<()>;
    /// Allocate a pool buffer of at least `len` bytes (4 KiB .. 1 MiB), owned by this server,
    /// as [`m3ipc::Proc::alloc_buffer`]. Never blocks.
    fn alloc_buffer(&mut self, len: usize) -> Result<Handle>;
    /// A read-write view of a buffer this server owns, as [`m3ipc::Proc::buffer`].
    fn buffer(&self, h: Handle) -> Result<BufView<'_>>;
    /// Give an owned buffer to `to`, as [`m3ipc::Proc::give`]. Never blocks.
    fn give(&mut self, h: Handle, to: Endpoint) -> Result<()>;
    /// Release an owned buffer to the pool, as [`m3ipc::Proc::release_buffer`].
    fn release_buffer(&mut self, h: Handle) -> Result<()>;
    /// Grant `grantee` `access` on `[offset, offset + len)` of an owned buffer, as
    /// [`m3ipc::Proc::grant`]. Never blocks.
    fn grant(
        &mut self,
        h: Handle,
        grantee: Endpoint,
        offset: usize,
        len: usize,
        access: Access,
    ) -> Result<GrantId>;
    /// Revoke a grant this server issued, as [`m3ipc::Proc::revoke`].
    fn revoke(&mut self, id: GrantId) -> Result<()>;
    /// A view of the range `grantor` granted this server with `id`, as
    /// [`m3ipc::Proc::granted`]: read and write a client's buffer in place.
    fn granted(&self, grantor: Endpoint, id: GrantId) -> Result<BufView<'_>>;
    /// Sleep for `d` (millisecond resolution). Fails with `EDVSSHUTDOWN` when the host stops.
    fn sleep(&mut self, d: Duration) -> Result<()>;
    /// Whether this server is asked to finish (the host stops): a server that sees it does its
    /// final work and returns.
    fn stopping(&self) -> bool;
    /// Watch the non-blocking socket `fd` (owned by the server) for [`Ipc::wait_io`], which
    /// reports it with `token` (at most [`crate::sockets::MAX_TOKEN`], else `EDVSBADVALUE`)
    /// each time it becomes readable or writable (edge-triggered: read or write until
    /// `WouldBlock` before waiting again). See [`crate::sockets`].
    fn watch_fd(&mut self, fd: RawFd, token: u64) -> Result<()>;
    /// Stop watching `fd` (before closing it).
    fn unwatch_fd(&mut self, fd: RawFd) -> Result<()>;
    /// Append to `events` the watched sockets that became ready; when none has, wait for one
    /// until `timeout` (then return `Ok` with nothing appended). Fails with `EDVSSHUTDOWN` when
    /// the server is asked to finish, as a receive does.
    fn wait_io(&mut self, events: &mut Vec<IoEvent>, timeout: Timeout) -> Result<()>;
}
