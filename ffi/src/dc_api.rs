//! The fabric and its DCs: attach, create, open, close, remove, introspect, bind.

use crate::boundary::{done, guarded};
use crate::foreign;
use crate::handles;
use crate::types::{c_name, m3_dc_config, m3_dc_info, m3_proc_info};
use crate::{M3_BIND_PROCESS, M3_BIND_THREAD, M3_NAME_MAX};
use bytemuck::Zeroable;
use core::ffi::c_char;
use ipc::{Dc, DcConfig, DcError, Errno, SlotState, Timeout};

fn dc_err(e: DcError) -> Errno {
    e.errno()
}

/// Attach to this node's fabric (the original's `dvk_open`): check that the region directory
/// (`$M3IPC_SHM_DIR`, else `/dev/shm`) exists and is a directory this process may use. Other
/// calls do not need it first. Returns 0.
///
/// Errors: `EDVSDVSINIT` (no such directory), `EDVSACCES` (not readable and searchable).
#[unsafe(no_mangle)]
pub extern "C" fn m3_open() -> i32 {
    guarded(|| {
        let dir = ipc::region_dir();
        let meta = std::fs::metadata(&dir).map_err(|_| Errno::EDVSDVSINIT)?;
        if !meta.is_dir() {
            return Err(Errno::EDVSDVSINIT);
        }
        std::fs::read_dir(&dir).map_err(|_| Errno::EDVSACCES)?;
        Ok(0)
    })
}

/// Fill `config` with the original's typical DC: id 0, node 0, 221 processes, 34 tasks, 64
/// system processes, mode 0600, a 64 MiB pool. Errors: `EDVSFAULT`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_dc_config_default(config: *mut m3_dc_config) -> i32 {
    guarded(|| done(foreign::write(config, to_c_config(&DcConfig::default()))))
}

fn to_c_config(c: &DcConfig) -> m3_dc_config {
    m3_dc_config {
        dcid: c.dcid,
        node: c.node,
        nr_procs: c.nr_procs,
        nr_tasks: c.nr_tasks,
        nr_sysprocs: c.nr_sysprocs,
        mode: c.mode,
        pool_bytes: c.pool_bytes,
    }
}

/// Create the DC `name` (at most 15 bytes of letters, digits, `.`, `_`, `-`) with `config`
/// (NULL: `m3_dc_config_default`'s) and return a handle to it. The DC stays until
/// `m3_dc_remove`, whatever happens to the handle.
///
/// Errors: `EDVSFAULT` (`name` NULL or a misaligned `config`), `EDVSNAMESIZE` (name too long or
/// malformed), `EDVSINVAL` (not UTF-8), `EDVSRSCBUSY` (a DC with that name or id exists), the
/// limit errors of a bad config (`EDVSBADRANGE`, `EDVSBADDCID`, `EDVSBADNODEID`, `EDVSALIGN`,
/// `EDVSFBIG`), `EDVSACCES`/`EDVSIO` (the region directory), `EDVSNFILE` (4095 handles open).
#[unsafe(no_mangle)]
pub extern "C" fn m3_dc_create(name: *const c_char, config: *const m3_dc_config) -> i32 {
    guarded(|| {
        let name = foreign::string(name, M3_NAME_MAX)?;
        let c = if config.is_null() {
            DcConfig::default()
        } else {
            let c = foreign::read(config)?;
            DcConfig {
                dcid: c.dcid,
                node: c.node,
                nr_procs: c.nr_procs,
                nr_tasks: c.nr_tasks,
                nr_sysprocs: c.nr_sysprocs,
                mode: c.mode,
                pool_bytes: c.pool_bytes,
            }
        };
        handles::add_dc(Dc::create(&name, &c).map_err(dc_err)?)
    })
}

/// Open the existing DC `name`; a handle to it.
///
/// Errors: `EDVSFAULT`, `EDVSNAMESIZE`, `EDVSINVAL` (the name), `EDVSDCNOTRUN` (no such DC, or
/// removed), `EDVSBADVALUE` (a region whose header does not match this library), `EDVSACCES`,
/// `EDVSIO`, `EDVSNFILE`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_dc_open(name: *const c_char) -> i32 {
    guarded(|| {
        let name = foreign::string(name, M3_NAME_MAX)?;
        handles::add_dc(Dc::open(&name).map_err(dc_err)?)
    })
}

/// Open the DC created with id `dcid` (`dvs dc create NAME --id N`); a handle to it.
///
/// Errors: `EDVSBADDCID` (`dcid` not below 32), `EDVSDCNOTRUN` (no DC with that id),
/// `EDVSACCES`, `EDVSIO`, `EDVSNFILE`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_dc_open_id(dcid: u32) -> i32 {
    guarded(|| {
        if dcid >= ipc::MAX_DCS {
            return Err(Errno::EDVSBADDCID);
        }
        handles::add_dc(Dc::open_by_id(dcid).map_err(dc_err)?)
    })
}

/// Close a DC handle. Endpoints bound through it stay bound. Errors: `EDVSBADF` (not an open
/// DC handle; `M3_CURRENT` is not one either).
#[unsafe(no_mangle)]
pub extern "C" fn m3_dc_close(dc: i32) -> i32 {
    guarded(|| done(handles::close_dc(dc)))
}

/// Remove the DC `name`: calls of processes still attached fail with `EDVSDCNOTRUN`, and its
/// region and pool files go away.
///
/// Errors: `EDVSFAULT`, `EDVSNAMESIZE`, `EDVSINVAL`, `EDVSDCNOTRUN` (no such DC), `EDVSACCES`,
/// `EDVSIO`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_dc_remove(name: *const c_char) -> i32 {
    guarded(|| {
        let name = foreign::string(name, M3_NAME_MAX)?;
        done(Dc::remove(&name).map_err(dc_err))
    })
}

/// Make the DC with id `dcid` the one `M3_CURRENT` names as a DC while the caller has no
/// binding (for `dvk_wait4bind` and `dvk_getep` before `dvk_bind`); the DC an earlier call
/// chose is let go. Errors: those of `m3_dc_open_id`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_use_dc(dcid: u32) -> i32 {
    guarded(|| {
        let h = m3_dc_open_id(dcid);
        if h < 0 {
            return Err(Errno::from_code(h).unwrap_or(Errno::EDVSGENERIC));
        }
        handles::use_dc(h);
        Ok(0)
    })
}

/// `getdcinfo`: fill `info` about the DC `dc` (`M3_CURRENT`: the current binding's).
///
/// Errors: `EDVSBADF` (bad handle), `EDVSNOTBIND` (`M3_CURRENT` with nothing current),
/// `EDVSFAULT` (`info`).
#[unsafe(no_mangle)]
pub extern "C" fn m3_getdcinfo(dc: i32, info: *mut m3_dc_info) -> i32 {
    guarded(|| {
        foreign::write(info, m3_dc_info::zeroed())?;
        let d = handles::dc(dc)?.info();
        done(foreign::write(
            info,
            m3_dc_info {
                name: c_name(&d.name),
                config: to_c_config(&d.config),
                created_at: d.created_at,
                region_bytes: d.region_bytes as u64,
                creator_pid: d.creator_pid,
                bound: u32::try_from(d.bound).unwrap_or(u32::MAX),
            },
        ))
    })
}

/// `getprocinfo`: fill `info` about slot `nr` of the DC `dc`.
///
/// Errors: `EDVSBADF`, `EDVSNOTBIND`, `EDVSRANGE` (`nr` outside the table), `EDVSFAULT`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_getprocinfo(dc: i32, nr: i32, info: *mut m3_proc_info) -> i32 {
    guarded(|| {
        foreign::write(info, m3_proc_info::zeroed())?;
        let p = handles::dc(dc)?.getprocinfo(nr)?;
        done(foreign::write(
            info,
            m3_proc_info {
                nr: p.nr,
                endpoint: p.endpoint,
                state: match p.state {
                    SlotState::Free => crate::M3_SLOT_FREE,
                    SlotState::Binding => crate::M3_SLOT_BINDING,
                    SlotState::Bound => crate::M3_SLOT_BOUND,
                    _ => crate::M3_SLOT_CLOSING,
                },
                pid: p.pid,
                name: c_name(&p.name),
                flags: p.flags,
                getfrom: p.getfrom,
                sendto: p.sendto,
                system: u32::from(p.system),
                sent: p.sent,
                received: p.received,
                notified: p.notified,
                notify_overruns: p.notify_overruns,
                allowed: p.allowed.0,
                level: p.level,
                pad: 0,
            },
        ))
    })
}

/// `getep`: store in `ep` the endpoint process `pid` bound in the DC `dc` (its first one).
///
/// Errors: `EDVSBADF`, `EDVSNOTBIND` (nothing current; or `pid` holds no slot there),
/// `EDVSFAULT`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_getep(dc: i32, pid: u32, ep: *mut i32) -> i32 {
    guarded(|| {
        foreign::write(ep, ipc::NONE)?;
        let got = handles::dc(dc)?.getep(pid)?;
        done(foreign::write(ep, got))
    })
}

/// `wait4bind` by anyone: block until the slot named by `ep` is bound and store its endpoint
/// in `ep_out`; `M3_SELF` waits until this process holds a slot in the DC.
///
/// Errors: `EDVSBADF`, `EDVSNOTBIND`, `EDVSFAULT` (`ep_out`, checked first), `EDVSINVAL`
/// (a negative timeout other than -1), `EDVSRANGE`, `EDVSAGAIN` (NOWAIT), `EDVSTIMEDOUT`,
/// `EDVSDCNOTRUN`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_dc_wait4bind(dc: i32, ep: i32, timeout_ms: i64, ep_out: *mut i32) -> i32 {
    guarded(|| {
        foreign::write(ep_out, ipc::NONE)?;
        let t = Timeout::from_ms(timeout_ms)?;
        let got = handles::dc(dc)?.wait4bind(ep, t)?;
        done(foreign::write(ep_out, got))
    })
}

/// `wait4bind`, unbind variant, by anyone: block until `ep` is no longer bound.
///
/// Errors: `EDVSBADF`, `EDVSNOTBIND`, `EDVSINVAL`, `EDVSENDPOINT` (`M3_SELF`), `EDVSRANGE`,
/// `EDVSAGAIN`, `EDVSTIMEDOUT`, `EDVSDCNOTRUN`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_dc_wait4unbind(dc: i32, ep: i32, timeout_ms: i64) -> i32 {
    guarded(|| {
        let t = Timeout::from_ms(timeout_ms)?;
        done(handles::dc(dc)?.wait4unbind(ep, t))
    })
}

/// Bind slot `nr` of the DC `dc` for this process, under `name` (NULL: no name; at most 15
/// bytes), store its endpoint in `ep` and return a handle to it. Closing the handle
/// (`m3_unbind`) unbinds; so does the process's exit.
///
/// Errors: `EDVSFAULT` (`ep`, checked first; a name pointer is only read when non-NULL),
/// `EDVSNAMESIZE`, `EDVSINVAL`, `EDVSBADF`, `EDVSNOTBIND`, `EDVSDCNOTRUN`, `EDVSRANGE`
/// (`nr` outside the table), `EDVSBADPROC` (`nr` is `M3_HARDWARE`), `EDVSSLOTUSED` (a live
/// process holds it), `EDVSNFILE`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_bind(dc: i32, nr: i32, name: *const c_char, ep: *mut i32) -> i32 {
    guarded(|| {
        foreign::write(ep, ipc::NONE)?;
        let name = if name.is_null() {
            String::new()
        } else {
            foreign::string(name, M3_NAME_MAX)?
        };
        let dc_handle = handles::dc_handle(dc)?;
        let p = handles::dc(dc_handle)?.bind_named(nr, &name)?;
        let got = p.endpoint();
        let h = handles::add_proc(dc_handle, false, p)?;
        foreign::write(ep, got)?;
        Ok(h)
    })
}

/// Bind slot `nr` of the DC with id `dcid` and make it the current binding of the process
/// (`scope` = `M3_BIND_PROCESS`, the original's `dvk_bind`) or of the calling thread
/// (`M3_BIND_THREAD`, `dvk_tbind`); store its endpoint in `ep`. Calls given `M3_CURRENT` then
/// use it. A binding inherited across `fork` does not count: the child binds its own.
///
/// Errors: `EDVSFAULT` (`ep`), `EDVSINVAL` (bad `scope`), `EDVSBUSY` (that scope already has a
/// current binding: unbind it first), those of `m3_dc_open_id` and `m3_bind`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_bind_current(dcid: u32, nr: i32, scope: i32, ep: *mut i32) -> i32 {
    guarded(|| {
        foreign::write(ep, ipc::NONE)?;
        let thread = match scope {
            M3_BIND_PROCESS => false,
            M3_BIND_THREAD => true,
            _ => return Err(Errno::EDVSINVAL),
        };
        handles::drop_inherited_current();
        if handles::has_current(thread) {
            return Err(Errno::EDVSBUSY);
        }
        if dcid >= ipc::MAX_DCS {
            return Err(Errno::EDVSBADDCID);
        }
        let dc = Dc::open_by_id(dcid).map_err(dc_err)?;
        let p = dc.bind(nr)?;
        let got = p.endpoint();
        let dc_handle = handles::add_dc(dc)?;
        let h = match handles::add_proc(dc_handle, true, p) {
            Ok(h) => h,
            Err(e) => {
                let _ = handles::close_dc(dc_handle);
                return Err(e);
            }
        };
        handles::set_current(h, thread);
        foreign::write(ep, got)?;
        Ok(0)
    })
}

/// The original's `dvk_unbind(dcid, ep)`: unbind the caller's current binding (the thread's,
/// else the process's) when it is endpoint `ep` of the DC with id `dcid`.
///
/// Errors: `EDVSNOTBIND` (no current binding), `EDVSBADDCID` (it is in another DC),
/// `EDVSENDPOINT` (it is another endpoint: unbinding other processes is not offered),
/// `EDVSBUSY` (another thread is inside a call on it).
#[unsafe(no_mangle)]
pub extern "C" fn m3_unbind_current(dcid: u32, ep: i32) -> i32 {
    guarded(|| {
        let (mine, my_dcid) = handles::with_proc(crate::M3_CURRENT, |p| {
            Ok((p.endpoint(), p.dc().config().dcid))
        })?;
        if my_dcid != dcid {
            return Err(Errno::EDVSBADDCID);
        }
        if mine != ep {
            return Err(Errno::EDVSENDPOINT);
        }
        done(handles::close_proc(crate::M3_CURRENT))
    })
}

/// The DC id of the current binding's DC, in `dcid`. Errors: `EDVSNOTBIND`, `EDVSFAULT`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_current_dcid(dcid: *mut u32) -> i32 {
    guarded(|| {
        foreign::write(dcid, 0)?;
        let id = handles::with_proc(crate::M3_CURRENT, |p| Ok(p.dc().config().dcid))?;
        done(foreign::write(dcid, id))
    })
}

/// Unbind the endpoint `caller` (`M3_CURRENT`: the current binding) and close its handle.
/// Queued senders get `EDVSDSTDIED`, clients waiting in `sendrec` `EDVSDEADSRCDST`.
///
/// Errors: `EDVSBADF` (bad handle), `EDVSNOTBIND` (nothing current; the slot was already lost;
/// a handle inherited across `fork`, which is closed without touching the parent's slot),
/// `EDVSBUSY` (another thread is inside a call on it).
#[unsafe(no_mangle)]
pub extern "C" fn m3_unbind(caller: i32) -> i32 {
    guarded(|| done(handles::close_proc(caller)))
}

/// The endpoint of `caller`, in `ep`. Errors: `EDVSBADF`, `EDVSNOTBIND`, `EDVSBUSY`,
/// `EDVSFAULT`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_endpoint(caller: i32, ep: *mut i32) -> i32 {
    guarded(|| {
        foreign::write(ep, ipc::NONE)?;
        let got = handles::with_proc(caller, |p| Ok(p.endpoint()))?;
        done(foreign::write(ep, got))
    })
}

/// How blocked calls of `caller` wait: `M3_WAIT_ADAPTIVE` (default), `M3_WAIT_BLOCK` or
/// `M3_WAIT_SPIN`. Errors: `EDVSINVAL` (another value), `EDVSBADF`, `EDVSNOTBIND`,
/// `EDVSBUSY`.
#[unsafe(no_mangle)]
pub extern "C" fn m3_set_wait_policy(caller: i32, policy: i32) -> i32 {
    guarded(|| {
        let policy = match policy {
            crate::M3_WAIT_ADAPTIVE => ipc::WaitPolicy::Adaptive,
            crate::M3_WAIT_BLOCK => ipc::WaitPolicy::Block,
            crate::M3_WAIT_SPIN => ipc::WaitPolicy::Spin,
            _ => return Err(Errno::EDVSINVAL),
        };
        done(handles::with_proc(caller, |p| {
            p.set_wait_policy(policy);
            Ok(())
        }))
    })
}
