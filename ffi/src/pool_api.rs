//! The DC's buffer pool from C: allocate, read, write, give and release buffers; grant, revoke
//! and use grants; `vcopy`. Buffers are named by 64-bit handles and grants by 64-bit ids, both
//! carrying a generation, so a stale one is refused (`EDVSBADF` for a handle, `EDVSPERM` for a
//! grant). Bytes cross between the pool and the caller's memory by copy; offsets and lengths
//! are checked against the buffer or grant (`EDVSRANGE`) and the caller's range against the
//! address space (`EDVSFAULT`).

use crate::boundary::{done, guarded};
use crate::foreign;
use crate::handles::with_proc;
use core::ffi::c_void;
use ipc::{Access, CopyRef, Errno, GrantId, Handle};

/// Allocate a buffer of at least `len` bytes (a power of two from 4 KiB to 1 MiB), owned by
/// `caller`; its handle in `handle`.
///
/// Errors: the handle's, `EDVSFAULT` (`handle`), `EDVSNODEV` (the DC has no pool),
/// `EDVSRANGE` (`len` 0 or above 1 MiB), `EDVSNOMEM` (no room), `EDVSAGAIN`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_buffer_alloc(caller: i32, len: usize, handle: *mut u64) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            foreign::write(handle, 0)?;
            let h = p.alloc_buffer(len)?;
            done(foreign::write(handle, h.0))
        })
    })
}

/// The capacity of the buffer `handle` (which `caller` owns) in `len`.
///
/// Errors: the handle's, `EDVSFAULT`, `EDVSNODEV`, `EDVSBADF` (stale or forged handle),
/// `EDVSBADOWNER` (another endpoint owns it).
#[unsafe(no_mangle)]
pub extern "C" fn m3_buffer_size(caller: i32, handle: u64, len: *mut usize) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            foreign::write(len, 0)?;
            let n = p.buffer(Handle(handle))?.len();
            done(foreign::write(len, n))
        })
    })
}

/// Copy `len` bytes from `data` into the buffer `handle` at `offset`.
///
/// Errors: the handle's, `EDVSFAULT` (`data` NULL with `len` > 0, or a wrapping range),
/// `EDVSNODEV`, `EDVSBADF`, `EDVSBADOWNER`, `EDVSRANGE` (outside the buffer).
#[unsafe(no_mangle)]
pub extern "C" fn m3_buffer_write(
    caller: i32,
    handle: u64,
    offset: usize,
    data: *const c_void,
    len: usize,
) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            let bytes = foreign::bytes(data.cast(), len)?;
            done(p.buffer(Handle(handle))?.write_at(offset, bytes))
        })
    })
}

/// Copy `len` bytes of the buffer `handle` at `offset` into `out`.
///
/// Errors: as `m3_buffer_write`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_buffer_read(
    caller: i32,
    handle: u64,
    offset: usize,
    out: *mut c_void,
    len: usize,
) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            let bytes = foreign::bytes_mut(out.cast(), len)?;
            done(p.buffer(Handle(handle))?.read_at(offset, bytes))
        })
    })
}

/// Give the buffer `handle` to endpoint `to`, which becomes its owner.
///
/// Errors: the handle's, `EDVSNODEV`, `EDVSENDPOINT`, `EDVSRANGE`, `EDVSDSTDIED`, `EDVSBADF`,
/// `EDVSBADOWNER`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_buffer_give(caller: i32, handle: u64, to: i32) -> i32 {
    guarded(|| with_proc(caller, |p| done(p.give(Handle(handle), to))))
}

/// Release the buffer `handle` back to the pool; a second release is `EDVSBADF`.
///
/// Errors: the handle's, `EDVSNODEV`, `EDVSBADF`, `EDVSBADOWNER`, `EDVSAGAIN`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_buffer_release(caller: i32, handle: u64) -> i32 {
    guarded(|| with_proc(caller, |p| done(p.release_buffer(Handle(handle)))))
}

/// Grant `grantee` the rights `access` (`M3_GRANT_READ` | `M3_GRANT_WRITE`) on `[offset,
/// offset + len)` of the buffer `handle`; the grant's id in `grant`.
///
/// Errors: the handle's, `EDVSFAULT` (`grant`), `EDVSINVAL` (`access` empty or with unknown
/// bits), `EDVSNODEV`, peer errors for `grantee`, `EDVSBADF`, `EDVSBADOWNER`, `EDVSRANGE`,
/// `EDVSNOSPC` (the grant table is full).
#[unsafe(no_mangle)]
pub extern "C" fn m3_grant(
    caller: i32,
    handle: u64,
    grantee: i32,
    offset: usize,
    len: usize,
    access: u32,
    grant: *mut u64,
) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            foreign::write(grant, 0)?;
            let access = u8::try_from(access).map_err(|_| Errno::EDVSINVAL)?;
            let id = p.grant(Handle(handle), grantee, offset, len, Access(access))?;
            done(foreign::write(grant, id.0))
        })
    })
}

/// Revoke a grant `caller` issued.
///
/// Errors: the handle's, `EDVSNODEV`, `EDVSPERM` (no live grant of the caller with this id).
#[unsafe(no_mangle)]
pub extern "C" fn m3_revoke(caller: i32, grant: u64) -> i32 {
    guarded(|| with_proc(caller, |p| done(p.revoke(GrantId(grant)))))
}

/// Copy `len` bytes at `offset` of the range `grantor` granted `caller` with `grant` into `out`
/// (needs READ).
///
/// Errors: the handle's, `EDVSFAULT`, `EDVSNODEV`, `EDVSPERM` (no such live grant),
/// `EDVSACCES` (granted to someone else, or no READ), `EDVSRANGE`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_granted_read(
    caller: i32,
    grantor: i32,
    grant: u64,
    offset: usize,
    out: *mut c_void,
    len: usize,
) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            let bytes = foreign::bytes_mut(out.cast(), len)?;
            done(p.granted(grantor, GrantId(grant))?.read_at(offset, bytes))
        })
    })
}

/// Copy `len` bytes from `data` into the range `grantor` granted `caller` with `grant`, at
/// `offset` (needs WRITE).
///
/// Errors: as `m3_granted_read`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_granted_write(
    caller: i32,
    grantor: i32,
    grant: u64,
    offset: usize,
    data: *const c_void,
    len: usize,
) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            let bytes = foreign::bytes(data.cast(), len)?;
            done(p.granted(grantor, GrantId(grant))?.write_at(offset, bytes))
        })
    })
}

/// `vcopy`: copy `len` bytes (at most 1 MiB) from `src_ep`'s side to `dst_ep`'s side, inside
/// the pool. A side other than the caller is a grant id its endpoint issued to the caller (READ
/// for the source, WRITE for the destination) and that endpoint must be blocked in a receive
/// (a client in `sendrec`); the caller's own side (`M3_SELF` or its endpoint) is a handle of a
/// buffer it owns or one of its grants. Offsets are relative to the grant or buffer.
///
/// Errors: the handle's, then the call's: `EDVSBADCALL`, `EDVSTRAPDENIED` (the caller is not a
/// system process), `EDVSNODEV`, `EDVSRANGE`, `EDVSENDPOINT`, `EDVSSRCDIED`/`EDVSDSTDIED`,
/// `EDVSPROCSTS`, `EDVSBADF`, `EDVSBADOWNER`, `EDVSPERM`, `EDVSACCES`.
#[allow(clippy::too_many_arguments)] // The original call's parameters, one by one.
#[unsafe(no_mangle)]
pub extern "C" fn m3_vcopy(
    caller: i32,
    src_ep: i32,
    src: u64,
    src_offset: usize,
    dst_ep: i32,
    dst: u64,
    dst_offset: usize,
    len: usize,
) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            done(p.vcopy(
                src_ep,
                CopyRef::from_raw(src),
                src_offset,
                dst_ep,
                CopyRef::from_raw(dst),
                dst_offset,
                len,
            ))
        })
    })
}
