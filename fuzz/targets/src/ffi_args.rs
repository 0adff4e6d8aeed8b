//! `ffi_args`: the C ABI's entry points called from Rust with arbitrary arguments.
//!
//! Each input gets a fresh DC (`fz-ffi`, a 1 MiB pool) and runs a script of `m3_*` calls whose
//! arguments are arbitrary within what a C caller may pass: handles and endpoints seen earlier
//! in the script (also after they were closed: stale), arbitrary numbers, `M3_CURRENT` and the
//! special endpoints; pointers that are null, wrap around the address space, or point anywhere
//! (misaligned too) into a 4 KiB arena this function owns, with lengths that stay inside it; C
//! strings from the input's bytes. Pointers to memory we do not own are never passed: that is
//! the caller's promise, not the library's to check. Calls that can wait are given a timeout
//! of 0 or 1 ms (never "forever").
//!
//! Every call must return (a value or an error code); a panic inside the library, which the ABI
//! would turn into `EDVSGENERIC`, is a finding too: a hook records it. At the end every handle
//! seen is closed and every DC made is removed.

use crate::shm;
use arbitrary::{Arbitrary, Unstructured};
use core::ffi::{c_char, c_void};
use m3ipc::{Dc, DcConfig};
use m3ipc_ffi as c;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

const NAME: &str = "fz-ffi";
const DCID: u32 = 3;
/// Most calls of one script.
const MAX_CALLS: usize = 64;
/// Bytes of the arena pointers point into.
const ARENA: usize = 4096;
/// Pointers point into the first part; the rest is room for the largest struct or string.
const POINT_SPAN: usize = 3072;
/// Most handles, endpoints, buffers and grants a script remembers.
const KNOWN: usize = 32;

static LOCK: Mutex<()> = Mutex::new(());
/// Set by the panic hook: the library panicked (the ABI returned `EDVSGENERIC` for it).
static PANICKED: AtomicBool = AtomicBool::new(false);

/// A pointer argument.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Ptr {
    /// NULL.
    Null,
    /// Into the arena at this offset (modulo the span): maybe misaligned.
    At(u16),
    /// Near the top of the address space: any range from there wraps (never dereferenced by
    /// a correct library, which must check first).
    Wrapping(u8),
}

/// A number argument: one seen before in the script, or any.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Num {
    /// The n-th seen (modulo their number).
    Seen(u8),
    /// `M3_CURRENT` (0).
    Current,
    /// Any value.
    Raw(i64),
}

/// An endpoint argument.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Ep {
    /// An endpoint seen before.
    Seen(u8),
    /// `M3_ANY`.
    Any,
    /// `M3_SELF`.
    SelfEp,
    /// `M3_NONE`.
    None,
    /// Any value.
    Raw(i32),
}

/// One call of the C ABI.
#[allow(missing_docs)] // The fields are the C functions' parameters, named as there.
#[derive(Arbitrary, Clone, Debug)]
pub enum Call {
    Open,
    AbiVersion,
    Strerror(i32),
    ConfigDefault(Ptr),
    /// `m3_dc_create` with a name from these bytes (or the pointer) and a config.
    DcCreate {
        name: Vec<u8>,
        name_ptr: Option<Ptr>,
        config: Ptr,
        fill: [u32; 6],
        pool_mib: u8,
    },
    DcOpen {
        name: Vec<u8>,
        name_ptr: Option<Ptr>,
    },
    DcOpenId(u32),
    DcClose(Num),
    DcRemove {
        name: Vec<u8>,
    },
    UseDc(u32),
    GetDcInfo(Num, Ptr),
    GetProcInfo(Num, i32, Ptr),
    GetEp(Num, u32, Ptr),
    DcWait4Bind(Num, Ep, bool, Ptr),
    DcWait4Unbind(Num, Ep, bool),
    Bind {
        dc: Num,
        nr: i8,
        name: Vec<u8>,
        name_null: bool,
        ep: Ptr,
    },
    BindCurrent {
        dcid: u8,
        nr: i8,
        scope: i32,
        ep: Ptr,
    },
    UnbindCurrent {
        dcid: u8,
        ep: Ep,
    },
    CurrentDcid(Ptr),
    Unbind(Num),
    Endpoint(Num, Ptr),
    SetWaitPolicy(Num, i32),
    Send(Num, Ep, Ptr, i64),
    Receive(Num, Ep, Ptr, i64),
    Sendrec(Num, Ep, Ptr, i64),
    Senda(Num, Ep, Ptr),
    Notify(Num, Ep),
    Rcvrqst(Num, Ptr, i64),
    Reply(Num, Ep, Ptr),
    Wakeup(Num, Ep),
    Wait4Bind(Num, Ep, i64, Ptr),
    Wait4Unbind(Num, Ep, i64),
    SetPriv(Num, Ep, Ptr),
    GetPriv(Num, Ep, Ptr),
    BufferAlloc(Num, u32, Ptr),
    BufferSize(Num, Num, Ptr),
    BufferWrite(Num, Num, u32, Ptr, u16),
    BufferRead(Num, Num, u32, Ptr, u16),
    BufferGive(Num, Num, Ep),
    BufferRelease(Num, Num),
    Grant {
        caller: Num,
        h: Num,
        to: Ep,
        off: u32,
        len: u32,
        access: u32,
        out: Ptr,
    },
    Revoke(Num, Num),
    GrantedRead(Num, Ep, Num, u32, Ptr, u16),
    GrantedWrite(Num, Ep, Num, u32, Ptr, u16),
    Vcopy {
        caller: Num,
        src_ep: Ep,
        src: Num,
        src_off: u32,
        dst_ep: Ep,
        dst: Num,
        dst_off: u32,
        len: u32,
    },
    /// Scribble on the arena (what the pointers point at).
    Fill {
        at: u16,
        bytes: Vec<u8>,
    },
}

/// What a script has seen, and the arena its pointers point into.
struct Script {
    arena: Box<[u64; ARENA / 8]>,
    /// Handles (DC and endpoint) returned so far.
    handles: Vec<i32>,
    /// Endpoints written to out-parameters so far.
    eps: Vec<i32>,
    /// Buffer handles and grant ids written to out-parameters so far.
    words: Vec<u64>,
}

/// Run one input.
pub fn run(data: &[u8]) {
    shm::private_dir();
    install_hook();
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    remove_all();
    let config = DcConfig {
        dcid: DCID,
        node: 0,
        nr_procs: 8,
        nr_tasks: 2,
        nr_sysprocs: 4,
        mode: 0o600,
        pool_bytes: 1 << 20,
    };
    if let Err(e) = Dc::create(NAME, &config) {
        panic!("ffi_args: cannot create the DC: {e}");
    }
    let mut s = Script {
        arena: Box::new([0; ARENA / 8]),
        handles: Vec::new(),
        eps: Vec::new(),
        words: Vec::new(),
    };
    let mut u = Unstructured::new(data);
    for _ in 0..MAX_CALLS {
        if u.is_empty() {
            break;
        }
        let Ok(call) = Call::arbitrary(&mut u) else {
            break;
        };
        if crate::trace() {
            eprintln!("{call:?}");
        }
        s.call(&call);
        assert!(
            !PANICKED.load(Ordering::Relaxed),
            "the C ABI panicked (it returned EDVSGENERIC) in {call:?}"
        );
    }
    // Close everything seen, then the current binding; remove every DC made.
    for &h in s.handles.iter().rev() {
        c::m3_unbind(h);
        c::m3_dc_close(h);
    }
    c::m3_unbind(c::M3_CURRENT);
    remove_all();
}

/// Remove every DC in the private directory but the other targets' (named `fz-*`; they share
/// the directory when the replay test runs every target in one process).
fn remove_all() {
    for name in Dc::list().unwrap_or_default() {
        if name == NAME || !name.starts_with("fz-") {
            shm::remove_dc(&name);
        }
    }
}

fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::Relaxed);
            previous(info);
        }));
    });
}

/// A timeout that cannot wait long: 0 or 1 ms, or a negative value other than "forever".
fn timeout(t: i64) -> i64 {
    match t {
        -1 => 0,
        t if t > 1 => 1,
        t => t,
    }
}

fn cstr(name: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = name.iter().copied().take(40).collect();
    v.push(0);
    v
}

impl Script {
    fn base(&mut self) -> *mut u8 {
        self.arena.as_mut_ptr().cast()
    }

    /// The pointer, and how many bytes from it are ours (0 for null and wrapping ones).
    fn ptr(&mut self, p: Ptr) -> (*mut u8, usize) {
        match p {
            Ptr::Null => (core::ptr::null_mut(), 0),
            Ptr::At(off) => {
                let off = usize::from(off) % POINT_SPAN;
                // SAFETY: off < POINT_SPAN < ARENA: inside the arena.
                (unsafe { self.base().add(off) }, ARENA - off)
            }
            // Never dereferenced: any non-empty range from here wraps, which the ABI rejects.
            Ptr::Wrapping(k) => (usize::MAX.wrapping_sub(usize::from(k)) as *mut u8, 0),
        }
    }

    /// A typed out-parameter or in-parameter pointer: the library dereferences any non-null
    /// aligned one, so a wrapping pointer (memory we do not own) becomes null here.
    fn typed<T>(&mut self, p: Ptr) -> *mut T {
        match p {
            Ptr::Wrapping(_) => core::ptr::null_mut(),
            p => self.ptr(p).0.cast(),
        }
    }

    /// A `(pointer, length)` pair: the length stays inside the arena for an arena pointer, and
    /// is anything (it must be rejected) for a null or wrapping one.
    fn range(&mut self, p: Ptr, len: u16) -> (*mut c_void, usize) {
        let (ptr, room) = self.ptr(p);
        let len = match p {
            Ptr::At(_) => usize::from(len).min(room),
            Ptr::Null => usize::from(len),
            Ptr::Wrapping(k) => usize::from(len).max(usize::from(k) + 2),
        };
        (ptr.cast(), len)
    }

    /// A C string in the arena's tail (the last 64 bytes), or at `p`.
    fn string(&mut self, name: &[u8], p: Option<Ptr>) -> *const c_char {
        if let Some(p) = p {
            // The library reads at most M3_NAME_MAX + 1 bytes of a name, and an arena
            // pointer has 1 KiB of arena after it.
            return self.typed::<c_char>(p).cast_const();
        }
        let bytes = cstr(name);
        let at = ARENA - 64;
        let base = self.base();
        for (i, b) in bytes.iter().take(64).enumerate() {
            // SAFETY: at + i < ARENA: inside the arena.
            unsafe { base.add(at + i).write(*b) };
        }
        // SAFETY: inside the arena; a NUL lies within the 64 bytes (at most 41 written).
        unsafe { base.add(at).cast_const().cast() }
    }

    fn num(&self, n: Num) -> i32 {
        match n {
            Num::Seen(i) if !self.handles.is_empty() => {
                self.handles[usize::from(i) % self.handles.len()]
            }
            Num::Seen(i) => i32::from(i),
            Num::Current => c::M3_CURRENT,
            Num::Raw(v) => v as i32,
        }
    }

    fn word(&self, n: Num) -> u64 {
        match n {
            Num::Seen(i) if !self.words.is_empty() => self.words[usize::from(i) % self.words.len()],
            Num::Seen(i) => u64::from(i),
            Num::Current => 0,
            Num::Raw(v) => v as u64,
        }
    }

    fn ep(&self, e: Ep) -> i32 {
        match e {
            Ep::Seen(i) if !self.eps.is_empty() => self.eps[usize::from(i) % self.eps.len()],
            Ep::Seen(i) => i32::from(i),
            Ep::Any => c::M3_ANY,
            Ep::SelfEp => c::M3_SELF,
            Ep::None => c::M3_NONE,
            Ep::Raw(v) => v,
        }
    }

    /// Remember a handle a call returned.
    fn handle(&mut self, rc: i32) {
        if rc > 0 && self.handles.len() < KNOWN {
            self.handles.push(rc);
        }
    }

    /// Remember what a call wrote to an `i32` out-parameter in the arena.
    fn seen_ep(&mut self, rc: i32, p: *const i32) {
        if rc == 0 && !p.is_null() && p.is_aligned() && self.eps.len() < KNOWN {
            // SAFETY: non-null, aligned, and (returned 0) written by the call: an arena pointer.
            self.eps.push(unsafe { p.read() });
        }
    }

    /// Remember what a call wrote to a `u64` out-parameter in the arena.
    fn seen_word(&mut self, rc: i32, p: *const u64) {
        if rc == 0 && !p.is_null() && p.is_aligned() && self.words.len() < KNOWN {
            // SAFETY: as `seen_ep`.
            self.words.push(unsafe { p.read() });
        }
    }

    fn call(&mut self, call: &Call) {
        match call {
            Call::Open => {
                c::m3_open();
            }
            Call::AbiVersion => assert_eq!(c::m3_abi_version(), c::M3_ABI_VERSION),
            Call::Strerror(code) => {
                let s = c::m3_strerror(*code);
                assert!(!s.is_null(), "m3_strerror({code}) returned NULL");
                // SAFETY: m3_strerror returns a NUL-terminated static string.
                let _ = unsafe { core::ffi::CStr::from_ptr(s) }.to_bytes().len();
            }
            Call::ConfigDefault(p) => {
                let p = self.typed(*p);
                c::m3_dc_config_default(p);
            }
            Call::DcCreate {
                name,
                name_ptr,
                config,
                fill,
                pool_mib,
            } => {
                let cfg: *mut c::m3_dc_config = self.typed(*config);
                if !cfg.is_null() && cfg.is_aligned() && matches!(config, Ptr::At(_)) {
                    let v = c::m3_dc_config {
                        dcid: fill[0] % 40,
                        node: fill[1] % 40,
                        nr_procs: fill[2] % 1100,
                        nr_tasks: fill[3] % 40,
                        nr_sysprocs: fill[4] % 1100,
                        mode: fill[5],
                        // Up to 8 MiB, sometimes unaligned: a big sparse pool is not the point.
                        pool_bytes: u64::from(*pool_mib % 9) << 20 | u64::from(pool_mib / 128),
                    };
                    // SAFETY: an aligned arena pointer with room for the struct (span + tail).
                    unsafe { cfg.write(v) };
                }
                let n = self.string(name, *name_ptr);
                let rc = c::m3_dc_create(n, cfg);
                self.handle(rc);
            }
            Call::DcOpen { name, name_ptr } => {
                let n = self.string(name, *name_ptr);
                let rc = c::m3_dc_open(n);
                self.handle(rc);
            }
            Call::DcOpenId(id) => {
                let rc = c::m3_dc_open_id(*id % 40);
                self.handle(rc);
            }
            Call::DcClose(h) => {
                c::m3_dc_close(self.num(*h));
            }
            Call::DcRemove { name } => {
                // The targets' own DCs stay (removing one is as good as any other name, and the
                // rest of the script would test nothing).
                if !name.starts_with(b"fz-") {
                    let n = self.string(name, None);
                    c::m3_dc_remove(n);
                }
            }
            Call::UseDc(id) => {
                c::m3_use_dc(*id % 40);
            }
            Call::GetDcInfo(h, p) => {
                let p = self.typed(*p);
                c::m3_getdcinfo(self.num(*h), p);
            }
            Call::GetProcInfo(h, nr, p) => {
                let p = self.typed(*p);
                c::m3_getprocinfo(self.num(*h), *nr, p);
            }
            Call::GetEp(h, pid, p) => {
                let p: *mut i32 = self.typed(*p);
                let pid = if *pid % 2 == 0 {
                    std::process::id()
                } else {
                    *pid
                };
                let rc = c::m3_getep(self.num(*h), pid, p);
                self.seen_ep(rc, p);
            }
            Call::DcWait4Bind(h, ep, wait, p) => {
                let p: *mut i32 = self.typed(*p);
                let rc = c::m3_dc_wait4bind(self.num(*h), self.ep(*ep), i64::from(*wait), p);
                self.seen_ep(rc, p);
            }
            Call::DcWait4Unbind(h, ep, wait) => {
                c::m3_dc_wait4unbind(self.num(*h), self.ep(*ep), i64::from(*wait));
            }
            Call::Bind {
                dc,
                nr,
                name,
                name_null,
                ep,
            } => {
                let n = if *name_null {
                    core::ptr::null()
                } else {
                    self.string(name, None)
                };
                let p: *mut i32 = self.typed(*ep);
                let rc = c::m3_bind(self.num(*dc), i32::from(*nr), n, p);
                self.handle(rc);
                if rc > 0 {
                    self.seen_ep(0, p);
                }
            }
            Call::BindCurrent {
                dcid,
                nr,
                scope,
                ep,
            } => {
                let p: *mut i32 = self.typed(*ep);
                let dcid = if dcid % 2 == 0 {
                    DCID
                } else {
                    u32::from(*dcid)
                };
                let rc = c::m3_bind_current(dcid, i32::from(*nr), *scope, p);
                self.seen_ep(rc, p);
            }
            Call::UnbindCurrent { dcid, ep } => {
                let dcid = if dcid % 2 == 0 {
                    DCID
                } else {
                    u32::from(*dcid)
                };
                c::m3_unbind_current(dcid, self.ep(*ep));
            }
            Call::CurrentDcid(p) => {
                let p = self.typed(*p);
                c::m3_current_dcid(p);
            }
            Call::Unbind(h) => {
                c::m3_unbind(self.num(*h));
            }
            Call::Endpoint(h, p) => {
                let p: *mut i32 = self.typed(*p);
                let rc = c::m3_endpoint(self.num(*h), p);
                self.seen_ep(rc, p);
            }
            Call::SetWaitPolicy(h, policy) => {
                c::m3_set_wait_policy(self.num(*h), *policy);
            }
            Call::Send(h, ep, m, t) => {
                let m = self.typed(*m);
                c::m3_send(self.num(*h), self.ep(*ep), m, timeout(*t));
            }
            Call::Receive(h, ep, m, t) => {
                let m = self.typed(*m);
                c::m3_receive(self.num(*h), self.ep(*ep), m, timeout(*t));
            }
            Call::Sendrec(h, ep, m, t) => {
                let m = self.typed(*m);
                c::m3_sendrec(self.num(*h), self.ep(*ep), m, timeout(*t));
            }
            Call::Senda(h, ep, m) => {
                let m = self.typed(*m);
                c::m3_senda(self.num(*h), self.ep(*ep), m);
            }
            Call::Notify(h, ep) => {
                c::m3_notify(self.num(*h), self.ep(*ep));
            }
            Call::Rcvrqst(h, m, t) => {
                let m = self.typed(*m);
                c::m3_rcvrqst(self.num(*h), m, timeout(*t));
            }
            Call::Reply(h, ep, m) => {
                let m = self.typed(*m);
                c::m3_reply(self.num(*h), self.ep(*ep), m);
            }
            Call::Wakeup(h, ep) => {
                c::m3_wakeup(self.num(*h), self.ep(*ep));
            }
            Call::Wait4Bind(h, ep, t, p) => {
                let p: *mut i32 = self.typed(*p);
                let rc = c::m3_wait4bind(self.num(*h), self.ep(*ep), timeout(*t), p);
                self.seen_ep(rc, p);
            }
            Call::Wait4Unbind(h, ep, t) => {
                c::m3_wait4unbind(self.num(*h), self.ep(*ep), timeout(*t));
            }
            Call::SetPriv(h, ep, p) => {
                let p = self.typed(*p);
                c::m3_setpriv(self.num(*h), self.ep(*ep), p);
            }
            Call::GetPriv(h, ep, p) => {
                let p = self.typed(*p);
                c::m3_getpriv(self.num(*h), self.ep(*ep), p);
            }
            Call::BufferAlloc(h, len, p) => {
                let p: *mut u64 = self.typed(*p);
                let rc = c::m3_buffer_alloc(self.num(*h), *len as usize, p);
                self.seen_word(rc, p);
            }
            Call::BufferSize(h, b, p) => {
                let p = self.typed(*p);
                c::m3_buffer_size(self.num(*h), self.word(*b), p);
            }
            Call::BufferWrite(h, b, off, p, len) => {
                let (p, len) = self.range(*p, *len);
                c::m3_buffer_write(self.num(*h), self.word(*b), *off as usize, p, len);
            }
            Call::BufferRead(h, b, off, p, len) => {
                let (p, len) = self.range(*p, *len);
                c::m3_buffer_read(self.num(*h), self.word(*b), *off as usize, p, len);
            }
            Call::BufferGive(h, b, ep) => {
                c::m3_buffer_give(self.num(*h), self.word(*b), self.ep(*ep));
            }
            Call::BufferRelease(h, b) => {
                c::m3_buffer_release(self.num(*h), self.word(*b));
            }
            Call::Grant {
                caller,
                h,
                to,
                off,
                len,
                access,
                out,
            } => {
                let p: *mut u64 = self.typed(*out);
                let rc = c::m3_grant(
                    self.num(*caller),
                    self.word(*h),
                    self.ep(*to),
                    *off as usize,
                    *len as usize,
                    *access,
                    p,
                );
                self.seen_word(rc, p);
            }
            Call::Revoke(h, g) => {
                c::m3_revoke(self.num(*h), self.word(*g));
            }
            Call::GrantedRead(h, ep, g, off, p, len) => {
                let (p, len) = self.range(*p, *len);
                c::m3_granted_read(
                    self.num(*h),
                    self.ep(*ep),
                    self.word(*g),
                    *off as usize,
                    p,
                    len,
                );
            }
            Call::GrantedWrite(h, ep, g, off, p, len) => {
                let (p, len) = self.range(*p, *len);
                c::m3_granted_write(
                    self.num(*h),
                    self.ep(*ep),
                    self.word(*g),
                    *off as usize,
                    p,
                    len,
                );
            }
            Call::Vcopy {
                caller,
                src_ep,
                src,
                src_off,
                dst_ep,
                dst,
                dst_off,
                len,
            } => {
                c::m3_vcopy(
                    self.num(*caller),
                    self.ep(*src_ep),
                    self.word(*src),
                    *src_off as usize,
                    self.ep(*dst_ep),
                    self.word(*dst),
                    *dst_off as usize,
                    *len as usize,
                );
            }
            Call::Fill { at, bytes } => {
                let at = usize::from(*at) % ARENA;
                let base = self.base();
                for (i, b) in bytes.iter().take(ARENA - at).enumerate() {
                    // SAFETY: at + i < ARENA: inside the arena.
                    unsafe { base.add(at + i).write(*b) };
                }
            }
        }
    }
}
