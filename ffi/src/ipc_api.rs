//! The messaging calls of docs/ARCHITECTURE.md section 4 and the control calls, on an endpoint handle
//! (`M3_CURRENT`: the current binding). Each first checks the handle (`EDVSBADF`,
//! `EDVSNOTBIND`, `EDVSBUSY`), then its pointers (`EDVSFAULT`) and its timeout (`EDVSINVAL` for
//! a negative value other than -1), then makes the call, whose errors are the fabric's
//! (`m3ipc::Proc`'s documentation lists them call by call).

use crate::boundary::{done, guarded};
use crate::foreign;
use crate::handles::with_proc;
use crate::types::{m3_priv, message};
use ipc::{CallSet, Priv, Timeout};

/// `send`: rendezvous; returns once `dst` has received `*m` (or an error).
///
/// Errors: the handle's, `EDVSFAULT` (`m`), `EDVSINVAL` (timeout), then the call's:
/// `EDVSDCNOTRUN`, `EDVSNOTBIND`, `EDVSBADCALL`, `EDVSENDPOINT`, `EDVSBADDEST` (self or
/// HARDWARE), `EDVSRANGE`, `EDVSDSTDIED`, `EDVSTRAPDENIED`, `EDVSLOCKED`, `EDVSAGAIN`
/// (NOWAIT), `EDVSTIMEDOUT`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_send(caller: i32, dst: i32, m: *const message, timeout_ms: i64) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            let msg = foreign::message_ref(m)?;
            done(p.send(dst, msg, Timeout::from_ms(timeout_ms)?))
        })
    })
}

/// `receive` from `src` or `M3_ANY` into `*m`: a pending wakeup (`EDVSWOKENUP`), then pending
/// notifications, then the oldest queued message, else block.
///
/// Errors: the handle's, `EDVSFAULT`, `EDVSINVAL`, then the call's (`EDVSENDPOINT`,
/// `EDVSRANGE`, `EDVSSRCDIED`, `EDVSLOCKED`, `EDVSAGAIN`, `EDVSTIMEDOUT`, `EDVSWOKENUP`, ...).
#[unsafe(no_mangle)]
pub extern "C" fn m3_receive(caller: i32, src: i32, m: *mut message, timeout_ms: i64) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            let msg = foreign::message_mut(m)?;
            done(p.receive(src, msg, Timeout::from_ms(timeout_ms)?))
        })
    })
}

/// `sendrec`: send `*m` to `dst`, then receive its reply into `*m`. The one messaging call of a
/// user endpoint.
///
/// Errors: the handle's, `EDVSFAULT`, `EDVSINVAL`, then those of send and receive, and
/// `EDVSDEADSRCDST` (the server unbound or died before replying).
#[unsafe(no_mangle)]
pub extern "C" fn m3_sendrec(caller: i32, dst: i32, m: *mut message, timeout_ms: i64) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            let msg = foreign::message_mut(m)?;
            done(p.sendrec(dst, msg, Timeout::from_ms(timeout_ms)?))
        })
    })
}

/// `senda`: queue `*m` for `dst` and return at once; a full queue is `EDVSAGAIN`.
///
/// Errors: the handle's, `EDVSFAULT`, then the call's.
#[unsafe(no_mangle)]
pub extern "C" fn m3_senda(caller: i32, dst: i32, m: *const message) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            let msg = foreign::message_ref(m)?;
            done(p.senda(dst, msg))
        })
    })
}

/// `notify`: set the caller's bit in `dst`'s pending set; never blocks; repeats coalesce.
///
/// Errors: the handle's, then the call's (`EDVSTRAPDENIED` for a user destination, ...).
#[unsafe(no_mangle)]
pub extern "C" fn m3_notify(caller: i32, dst: i32) -> i32 {
    guarded(|| with_proc(caller, |p| done(p.notify(dst))))
}

/// `rcvrqst`: receive the oldest queued request from anyone into `*m`, ignoring
/// notifications.
///
/// Errors: the handle's, `EDVSFAULT`, `EDVSINVAL`, then the call's.
#[unsafe(no_mangle)]
pub extern "C" fn m3_rcvrqst(caller: i32, m: *mut message, timeout_ms: i64) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            let msg = foreign::message_mut(m)?;
            done(p.rcvrqst(msg, Timeout::from_ms(timeout_ms)?))
        })
    })
}

/// `reply`: answer `dst`, which must wait in the receive half of a `sendrec` to the caller
/// (else `EDVSPROCSTS`); never blocks.
///
/// Errors: the handle's, `EDVSFAULT`, then the call's.
#[unsafe(no_mangle)]
pub extern "C" fn m3_reply(caller: i32, dst: i32, m: *const message) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            let msg = foreign::message_ref(m)?;
            done(p.reply(dst, msg))
        })
    })
}

/// `wakeup`: make `ep`'s current or next `receive(ANY)`/`rcvrqst` return `EDVSWOKENUP`.
///
/// Errors: the handle's, then the call's.
#[unsafe(no_mangle)]
pub extern "C" fn m3_wakeup(caller: i32, ep: i32) -> i32 {
    guarded(|| with_proc(caller, |p| done(p.wakeup(ep))))
}

/// `wait4bind` by a bound endpoint: block until `ep` (or `M3_SELF`) is bound; its endpoint in
/// `ep_out`.
///
/// Errors: the handle's, `EDVSFAULT`, `EDVSINVAL`, then the call's.
#[unsafe(no_mangle)]
pub extern "C" fn m3_wait4bind(caller: i32, ep: i32, timeout_ms: i64, ep_out: *mut i32) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            foreign::write(ep_out, ipc::NONE)?;
            let got = p.wait4bind(ep, Timeout::from_ms(timeout_ms)?)?;
            done(foreign::write(ep_out, got))
        })
    })
}

/// `wait4bind`, unbind variant, by a bound endpoint: block until `ep` is no longer bound.
///
/// Errors: the handle's, `EDVSINVAL`, then the call's.
#[unsafe(no_mangle)]
pub extern "C" fn m3_wait4unbind(caller: i32, ep: i32, timeout_ms: i64) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            done(p.wait4unbind(ep, Timeout::from_ms(timeout_ms)?))
        })
    })
}

/// `setpriv`: set the privileges of `ep` (or `M3_SELF`) from `*pv`. The caller must be a
/// system process.
///
/// Errors: the handle's, `EDVSFAULT`, then the call's (`EDVSPRIVILEGES`, ...).
#[unsafe(no_mangle)]
pub extern "C" fn m3_setpriv(caller: i32, ep: i32, pv: *const m3_priv) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            let c = foreign::read(pv)?;
            let pr = Priv {
                level: c.level,
                allowed: CallSet(c.allowed),
                ipc_to: c.ipc_to,
            };
            done(p.setpriv(ep, &pr))
        })
    })
}

/// `getpriv`: the privileges of `ep` (or `M3_SELF`) into `*pv`.
///
/// Errors: the handle's, `EDVSFAULT`, then the call's.
#[unsafe(no_mangle)]
pub extern "C" fn m3_getpriv(caller: i32, ep: i32, pv: *mut m3_priv) -> i32 {
    guarded(|| {
        with_proc(caller, |p| {
            foreign::read(pv.cast_const())?;
            let got = p.getpriv(ep)?;
            done(foreign::write(
                pv,
                m3_priv {
                    level: got.level,
                    pad: 0,
                    allowed: got.allowed.0,
                    ipc_to: got.ipc_to,
                },
            ))
        })
    })
}
