//! Stack overflow of a server coroutine: caught by the stack's guard page, reported with the
//! server's name, never silent corruption.
//!
//! Each coroutine stack (corosensei's `DefaultStack`) has an inaccessible guard page below it;
//! a server that overflows its stack faults there. A SIGSEGV handler, running on an alternate
//! signal stack (the faulting stack is full), looks the fault address up in a table of guard
//! pages, writes `muk2: server NAME overflowed its coroutine stack of N KiB` to stderr with
//! `write(2)` (async-signal-safe), restores the previous handler and returns: the access faults
//! again and the process dies of SIGSEGV as it would have, now with the culprit named. A fault
//! anywhere else goes to the previous handler unchanged.

use corosensei::stack::{DefaultStack, Stack};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Guard pages that can be registered at once (one per live coroutine stack).
const MAX_GUARDS: usize = 256;
/// Bytes of a server name kept for the report.
const NAME_MAX: usize = 48;

struct Guard {
    /// First byte of the guard page; 0 when the entry is free.
    lo: AtomicUsize,
    /// One past its last byte.
    hi: AtomicUsize,
    /// Usable stack bytes.
    stack: AtomicUsize,
    /// One past the stack's highest byte (its base).
    base: AtomicUsize,
    /// The server's name: a leaked `[u8; NAME_MAX]`, NUL-padded.
    name: AtomicPtr<u8>,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Guard = Guard {
    lo: AtomicUsize::new(0),
    hi: AtomicUsize::new(0),
    stack: AtomicUsize::new(0),
    base: AtomicUsize::new(0),
    name: AtomicPtr::new(core::ptr::null_mut()),
};

static GUARDS: [Guard; MAX_GUARDS] = [FREE; MAX_GUARDS];

/// The SIGSEGV action that was installed before ours.
struct PreviousAction(libc::sigaction);
// SAFETY: a `sigaction` is plain data (a handler address, flags, a mask); reading it from any
// thread, the signal handler included, is sound once it is written (`OnceLock`).
unsafe impl Sync for PreviousAction {}
// SAFETY: as above.
unsafe impl Send for PreviousAction {}

static PREVIOUS: OnceLock<PreviousAction> = OnceLock::new();

/// A registered guard page; unregisters on drop (before its stack is freed).
pub(crate) struct Registration(usize);

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(g) = GUARDS.get(self.0) {
            // Release: a later `register` that reuses the entry writes after this.
            g.lo.store(0, Ordering::Release);
        }
    }
}

/// Register `stack`'s guard page under `name`; installs the handler on first use. `None` when
/// the table is full or the handler cannot be installed (the overflow still kills the process
/// by SIGSEGV, without the name).
pub(crate) fn register(
    stack: &DefaultStack,
    stack_size: usize,
    name: &str,
) -> Option<Registration> {
    install()?;
    let page = page_size();
    // `limit` is the lowest address of the mapping, and its first page is the guard.
    let lo = stack.limit().get();
    let hi = lo.checked_add(page)?;
    let mut label = [0u8; NAME_MAX];
    let n = name.len().min(NAME_MAX - 1);
    label[..n].copy_from_slice(&name.as_bytes()[..n]);
    // Leaked on purpose: a handler on another thread may read it at any time. One small
    // allocation per coroutine ever started.
    let label: &'static mut [u8; NAME_MAX] = Box::leak(Box::new(label));
    for (i, g) in GUARDS.iter().enumerate() {
        // Claim a free entry: lo 0 → 1 (a placeholder no address matches), fill, then publish.
        if g.lo
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            g.hi.store(hi, Ordering::Relaxed);
            g.stack.store(stack_size, Ordering::Relaxed);
            g.base.store(stack.base().get(), Ordering::Relaxed);
            g.name.store(label.as_mut_ptr(), Ordering::Relaxed);
            // Release: the handler that reads this `lo` (Acquire) sees the fields above.
            g.lo.store(lo, Ordering::Release);
            return Some(Registration(i));
        }
    }
    None
}

/// The name of the server whose coroutine stack holds address `sp` (async-signal-safe: atomic
/// loads only), for the sandbox's report of a forbidden call.
pub(crate) fn server_at(sp: usize) -> Option<&'static [u8]> {
    for g in &GUARDS {
        // Acquire: pairs with the Release in `register`.
        let lo = g.lo.load(Ordering::Acquire);
        if lo > 1 && sp > lo && sp <= g.base.load(Ordering::Relaxed) {
            let name = g.name.load(Ordering::Relaxed);
            if name.is_null() {
                return None;
            }
            // SAFETY: `name` points to a leaked, never-freed `[u8; NAME_MAX]` (see `register`).
            let label: &'static [u8] = unsafe { core::slice::from_raw_parts(name, NAME_MAX) };
            let end = label.iter().position(|&b| b == 0).unwrap_or(NAME_MAX);
            return label.get(..end);
        }
    }
    None
}

/// Make sure the calling thread has an alternate signal stack (the handler cannot run on the
/// stack that overflowed). Returns a guard that frees one this call made.
pub(crate) fn ensure_altstack() -> Option<AltStack> {
    // SAFETY: sigaltstack with a null new stack only reads the current setting into `old`.
    let mut old: libc::stack_t = unsafe { core::mem::zeroed() };
    // SAFETY: `old` is a valid out-pointer for the duration of the call.
    if unsafe { libc::sigaltstack(core::ptr::null(), &mut old) } != 0 {
        return None;
    }
    if old.ss_flags & libc::SS_DISABLE == 0 {
        return None; // The thread has one (std gives its threads one).
    }
    let size = 64 * 1024;
    // SAFETY: an anonymous private mapping; no existing memory is affected.
    let mem = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return None;
    }
    let st = libc::stack_t {
        ss_sp: mem,
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `st` describes the mapping made above, which stays mapped until `AltStack` drops
    // (and disables it first).
    if unsafe { libc::sigaltstack(&st, core::ptr::null_mut()) } != 0 {
        // SAFETY: unmapping the mapping made above, which nothing uses.
        unsafe { libc::munmap(mem, size) };
        return None;
    }
    Some(AltStack { mem, size })
}

/// An alternate signal stack made by [`ensure_altstack`]; disabled and freed on drop.
pub(crate) struct AltStack {
    mem: *mut libc::c_void,
    size: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let off = libc::stack_t {
            ss_sp: core::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: disabling this thread's alternate stack, then unmapping the memory that was
        // it; the thread no longer uses it (we are not in a signal handler).
        unsafe {
            libc::sigaltstack(&off, core::ptr::null_mut());
            libc::munmap(self.mem, self.size);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096)
}

/// Install the SIGSEGV handler once per process.
fn install() -> Option<()> {
    PREVIOUS.get_or_init(|| {
        // SAFETY: a zeroed sigaction is a valid "no handler" value to fill in.
        let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
        act.sa_sigaction = on_segv as *const () as libc::sighandler_t;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: an all-zero mask is then cleared properly by sigemptyset.
        let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
        // SAFETY: `act` and `old` are valid for the call; the handler only does
        // async-signal-safe things (atomic loads, write(2), sigaction(2)).
        unsafe {
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(libc::SIGSEGV, &act, &mut old);
        }
        PreviousAction(old)
    });
    Some(())
}

extern "C" fn on_segv(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for a SA_SIGINFO handler of SIGSEGV.
    let addr = unsafe { (*info).si_addr() } as usize;
    for g in &GUARDS {
        // Acquire: pairs with the Release in `register`.
        let lo = g.lo.load(Ordering::Acquire);
        if lo > 1 && addr >= lo && addr < g.hi.load(Ordering::Relaxed) {
            report(
                g.name.load(Ordering::Relaxed),
                g.stack.load(Ordering::Relaxed),
            );
            break;
        }
    }
    // Put the previous action back and return: the faulting access runs again and that action
    // (the default: die of SIGSEGV, or std's handler, which then does the same) takes it.
    if let Some(prev) = PREVIOUS.get() {
        // SAFETY: restoring a sigaction the kernel gave us.
        unsafe { libc::sigaction(sig, &prev.0, core::ptr::null_mut()) };
    }
}

/// Write the report with `write(2)` only (no allocation, no locks: we are in a signal handler).
fn report(name: *const u8, stack: usize) {
    let mut buf = [0u8; 160];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if n < buf.len() {
                buf[n] = b;
                n += 1;
            }
        }
    };
    put(b"muk2: server ");
    if !name.is_null() {
        // SAFETY: `name` points to a leaked, never-freed `[u8; NAME_MAX]` (see `register`).
        let label = unsafe { core::slice::from_raw_parts(name, NAME_MAX) };
        let end = label.iter().position(|&b| b == 0).unwrap_or(NAME_MAX);
        put(&label[..end]);
    }
    put(b" overflowed its coroutine stack of ");
    let mut digits = [0u8; 20];
    let mut kib = stack / 1024;
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + (kib % 10) as u8;
        kib /= 10;
        if kib == 0 || d == 0 {
            break;
        }
    }
    put(&digits[d..]);
    put(b" KiB (guard page hit); raise its stack_kib in the config\n");
    // SAFETY: writing `n` initialised bytes of `buf` to stderr.
    unsafe { libc::write(2, buf.as_ptr().cast(), n) };
}
