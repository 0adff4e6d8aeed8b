//! Everything that touches what the C side owns: its pointers, and the process's `fork`.
//!
//! This is the crate's only `unsafe`. Each helper checks what can be checked before it reads or
//! writes: null (`EDVSFAULT`), alignment (`EDVSFAULT`), a range that wraps around the address
//! space or exceeds `isize::MAX` (`EDVSFAULT`), a C string without a NUL within its limit
//! (`EDVSNAMESIZE`). What cannot be checked, that a non-null aligned pointer names memory the
//! caller owns and keeps valid for the call, is the caller's promise, as with every C library.

use bytemuck::Pod;
use core::ffi::c_char;
use ipc::{Errno, Result};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

/// `p` as a pointer to a `T`: non-null and aligned, else `EDVSFAULT`.
fn checked<T>(p: *const T) -> Result<*const T> {
    if p.is_null() || !p.is_aligned() {
        return Err(Errno::EDVSFAULT);
    }
    Ok(p)
}

/// Read the `T` the caller passed by pointer.
pub(crate) fn read<T: Pod>(p: *const T) -> Result<T> {
    let p = checked(p)?;
    // SAFETY: `p` is non-null and aligned (checked above); the caller promises it points to a
    // `T` it owns for the call; `T: Pod`, so whatever bytes are there form a valid `T`.
    Ok(unsafe { p.read() })
}

/// Write `v` where the caller's out-parameter points.
pub(crate) fn write<T: Pod>(p: *mut T, v: T) -> Result<()> {
    let p = checked(p.cast_const())?.cast_mut();
    // SAFETY: non-null and aligned (checked above); the caller promises it points to writable
    // memory for a `T`; `T: Pod` has no drop glue, so overwriting needs no read of the old value.
    unsafe { p.write(v) };
    Ok(())
}

/// The caller's `message` as the fabric's [`ipc::Message`], in place (no copy), for the call:
/// the two types have one layout (asserted in `types.rs`).
pub(crate) fn message_ref<'a>(p: *const crate::types::message) -> Result<&'a ipc::Message> {
    let p = checked(p.cast::<ipc::Message>())?;
    // SAFETY: non-null and aligned (checked above); `message` and `ipc::Message` have the same
    // size, alignment and field offsets, and both are plain integers valid for any bytes; the
    // caller promises a `message` it does not write during the call.
    Ok(unsafe { &*p })
}

/// The caller's `message` as a writable [`ipc::Message`], in place, for the call.
pub(crate) fn message_mut<'a>(p: *mut crate::types::message) -> Result<&'a mut ipc::Message> {
    let p = checked(p.cast_const().cast::<ipc::Message>())?.cast_mut();
    // SAFETY: as `message_ref`, and the caller promises the message is writable and not
    // otherwise accessed during the call.
    Ok(unsafe { &mut *p })
}

/// Check a `(pointer, length)` range: a zero length is always fine (the pointer may be null);
/// otherwise non-null, at most `isize::MAX` bytes, not wrapping around.
fn range_ok(p: usize, len: usize) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    if p == 0 || len > isize::MAX as usize || p.checked_add(len).is_none() {
        return Err(Errno::EDVSFAULT);
    }
    Ok(())
}

/// The `len` bytes the caller passed at `p`, as a slice for the duration of the call.
pub(crate) fn bytes<'a>(p: *const u8, len: usize) -> Result<&'a [u8]> {
    range_ok(p as usize, len)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: non-null, within `isize::MAX` and not wrapping (checked above); `u8` needs no
    // alignment; the caller promises `len` readable bytes it does not write during the call.
    Ok(unsafe { core::slice::from_raw_parts(p, len) })
}

/// The `len` writable bytes the caller passed at `p`, for the duration of the call.
pub(crate) fn bytes_mut<'a>(p: *mut u8, len: usize) -> Result<&'a mut [u8]> {
    range_ok(p as usize, len)?;
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: as `bytes`, and the caller promises the bytes are writable and not otherwise
    // accessed during the call.
    Ok(unsafe { core::slice::from_raw_parts_mut(p, len) })
}

/// The NUL-terminated string at `p`, of at most `max` bytes before its NUL: null is
/// `EDVSFAULT`, no NUL within `max + 1` bytes `EDVSNAMESIZE`, not UTF-8 `EDVSINVAL`. Bytes are
/// read one at a time and never past the NUL, as C's own string functions read.
pub(crate) fn string(p: *const c_char, max: usize) -> Result<String> {
    if p.is_null() {
        return Err(Errno::EDVSFAULT);
    }
    let mut out = Vec::new();
    for i in 0..=max {
        // SAFETY: the caller promises a NUL-terminated string; bytes before its NUL, and the
        // NUL itself, are readable, and the loop stops at the NUL (or earlier, at `max`).
        let b = unsafe { p.add(i).read() } as u8;
        if b == 0 {
            return String::from_utf8(out).map_err(|_| Errno::EDVSINVAL);
        }
        out.push(b);
    }
    Err(Errno::EDVSNAMESIZE)
}

// SAFETY: `m3_payload` is `repr(C)`, every field is `Pod` and exactly 56 bytes (asserted in
// `types.rs`), so it has no padding, any bytes are a valid value of every field, and all zeros
// is a valid value.
unsafe impl bytemuck::Zeroable for crate::types::m3_payload {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for crate::types::m3_payload {}

/// How many times this process has been the child of a `fork` (as seen by the `pthread_atfork`
/// handler): an endpoint handle made under another count was inherited from the parent.
static FORK_EPOCH: AtomicU32 = AtomicU32::new(0);

extern "C" fn after_fork_in_child() {
    // Relaxed: the child has one thread now; later loads in it see this store.
    FORK_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// The current fork epoch; the first call registers the `fork` handler.
pub(crate) fn fork_epoch() -> u32 {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler that only does an atomic add (async-signal-safe,
        // allocation-free); the handler is a plain `extern "C" fn` that lives forever.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    FORK_EPOCH.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_misaligned_are_faults() {
        let words = [0u64; 2];
        let misaligned = (words.as_ptr() as *const u8).wrapping_add(1) as *const u64;
        assert_eq!(read::<u64>(core::ptr::null()), Err(Errno::EDVSFAULT));
        assert_eq!(read::<u64>(misaligned), Err(Errno::EDVSFAULT));
        assert_eq!(read::<u64>(words.as_ptr()), Ok(0));
        assert_eq!(
            write::<u64>(misaligned.cast_mut(), 1),
            Err(Errno::EDVSFAULT)
        );
    }

    #[test]
    fn ranges_are_checked() {
        assert_eq!(bytes(core::ptr::null(), 0).map(<[u8]>::len), Ok(0));
        assert_eq!(bytes(core::ptr::null(), 1).err(), Some(Errno::EDVSFAULT));
        let b = [1u8; 4];
        assert_eq!(bytes(b.as_ptr(), usize::MAX).err(), Some(Errno::EDVSFAULT));
        assert_eq!(bytes(b.as_ptr(), 4), Ok(&b[..]));
        let wrap = usize::MAX - 1;
        assert_eq!(range_ok(wrap, 4), Err(Errno::EDVSFAULT));
    }

    #[test]
    fn strings_are_bounded() {
        assert_eq!(string(c"abc".as_ptr(), 15).as_deref(), Ok("abc"));
        assert_eq!(string(c"".as_ptr(), 15).as_deref(), Ok(""));
        assert_eq!(
            string(c"0123456789abcdef".as_ptr(), 15),
            Err(Errno::EDVSNAMESIZE)
        );
        assert_eq!(string(core::ptr::null(), 15), Err(Errno::EDVSFAULT));
        assert_eq!(string(c"\xff".as_ptr(), 15), Err(Errno::EDVSINVAL));
    }
}
