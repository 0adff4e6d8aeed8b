//! The report of a forbidden system call: a SIGSYS handler (the filter's action is
//! `SECCOMP_RET_TRAP`) on the thread's alternate signal stack. It names the call (from a table
//! of the calls we know, else its number) and the server that made it: under MUK2 the
//! coroutine whose stack holds the interrupted stack pointer, under MUK the thread's label.
//! Only async-signal-safe work: atomic loads, a thread-local read, `write(2)`, `_exit(2)`.

use std::cell::Cell;
use std::sync::OnceLock;

/// The exit code after a forbidden call: 128 + SIGSYS, as a death by that signal reads in a
/// shell.
pub const FORBIDDEN_EXIT: i32 = 128 + libc::SIGSYS;

/// Bytes of a thread label kept.
const LABEL_MAX: usize = 48;

thread_local! {
    /// The server a MUK thread runs (a leaked label).
    static THREAD_SERVER: Cell<Option<&'static [u8]>> = const { Cell::new(None) };
}

/// Label the calling thread with `name`.
pub(super) fn name_thread(name: &str) {
    let n = name.len().min(LABEL_MAX);
    // Leaked on purpose: the handler may read it at any time; one per server thread.
    let label: &'static [u8] = Box::leak(name.as_bytes()[..n].to_vec().into_boxed_slice());
    THREAD_SERVER.with(|c| c.set(Some(label)));
}

static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();

/// Install the SIGSYS handler (once per process).
pub(super) fn install() -> std::io::Result<()> {
    let r = INSTALLED.get_or_init(|| {
        // SAFETY: a zeroed sigaction is a valid value to fill in; its mask is then emptied.
        let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
        act.sa_sigaction = on_sigsys as *const () as libc::sighandler_t;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `act` is valid for the calls; the handler does only async-signal-safe work.
        let rc = unsafe {
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(libc::SIGSYS, &act, core::ptr::null_mut())
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        }
    });
    r.map_err(std::io::Error::from_raw_os_error)
}

/// The `_sigsys` member of a SIGSYS siginfo: after `si_signo`, `si_errno`, `si_code` and the
/// union's alignment padding (offset 16 on 64-bit Linux), the call's address, its number and
/// its architecture.
#[repr(C)]
struct SigsysInfo {
    _head: [i32; 4],
    call_addr: *mut libc::c_void,
    syscall: i32,
    arch: u32,
}

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: for a SA_SIGINFO handler of a seccomp SIGSYS the kernel passes a valid siginfo
    // whose union holds `_sigsys`; `SigsysInfo` reads it as laid out (it fits in the 128-byte
    // siginfo).
    let nr = unsafe { (*info.cast::<SigsysInfo>()).syscall };
    let sp = stack_pointer(ctx);
    let mut out = Out::new();
    out.put(b"muk2: sandbox: ");
    match crate::coro::server_at(sp).or_else(|| THREAD_SERVER.with(Cell::get)) {
        Some(name) => {
            out.put(b"server ");
            out.put(name);
        }
        None => out.put(b"a thread outside any server"),
    }
    out.put(b" made the forbidden system call ");
    match call_name(i64::from(nr)) {
        Some(name) => {
            out.put(name.as_bytes());
            out.put(b" (");
            out.number(nr);
            out.put(b")");
        }
        None => {
            out.put(b"number ");
            out.number(nr);
        }
    }
    out.put(b"; the unikernel stops (see `muk2 sandbox-profile`)\n");
    out.flush();
    // SAFETY: _exit ends the process at once, running no destructor and taking no lock.
    unsafe { libc::_exit(super::FORBIDDEN_EXIT) };
}

/// The interrupted stack pointer, from the handler's context.
fn stack_pointer(ctx: *mut libc::c_void) -> usize {
    if ctx.is_null() {
        return 0;
    }
    let uc = ctx.cast::<libc::ucontext_t>();
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the kernel passes a valid ucontext to a SA_SIGINFO handler.
        unsafe { (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] as usize }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: as above.
        unsafe { (*uc).uc_mcontext.sp as usize }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = uc;
        0
    }
}

/// A fixed buffer written with one `write(2)`: no allocation in a signal handler.
struct Out {
    buf: [u8; 256],
    n: usize,
}

impl Out {
    fn new() -> Out {
        Out {
            buf: [0; 256],
            n: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.n < self.buf.len() {
                self.buf[self.n] = b;
                self.n += 1;
            }
        }
    }

    fn number(&mut self, v: i32) {
        if v < 0 {
            self.put(b"-");
        }
        let mut v = v.unsigned_abs();
        let mut digits = [0u8; 10];
        let mut d = digits.len();
        loop {
            d -= 1;
            digits[d] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 || d == 0 {
                break;
            }
        }
        let digits = digits;
        self.put(&digits[d..]);
    }

    fn flush(&self) {
        // SAFETY: writing `n` initialised bytes of `buf` to stderr.
        unsafe { libc::write(2, self.buf.as_ptr().cast(), self.n) };
    }
}

/// Names of the system calls we know: those of the profile, and those a compromised or buggy
/// server would most likely try.
const NAMES: &[(i64, &str)] = &[
    (libc::SYS_read, "read"),
    (libc::SYS_write, "write"),
    (libc::SYS_openat, "openat"),
    (libc::SYS_openat2, "openat2"),
    (libc::SYS_close, "close"),
    (libc::SYS_pread64, "pread64"),
    (libc::SYS_pwrite64, "pwrite64"),
    (libc::SYS_readv, "readv"),
    (libc::SYS_writev, "writev"),
    (libc::SYS_fdatasync, "fdatasync"),
    (libc::SYS_fsync, "fsync"),
    (libc::SYS_lseek, "lseek"),
    (libc::SYS_fstat, "fstat"),
    (libc::SYS_newfstatat, "newfstatat"),
    (libc::SYS_statx, "statx"),
    (libc::SYS_getdents64, "getdents64"),
    (libc::SYS_mmap, "mmap"),
    (libc::SYS_mprotect, "mprotect"),
    (libc::SYS_munmap, "munmap"),
    (libc::SYS_mremap, "mremap"),
    (libc::SYS_madvise, "madvise"),
    (libc::SYS_brk, "brk"),
    (libc::SYS_futex, "futex"),
    (libc::SYS_getrandom, "getrandom"),
    (libc::SYS_sched_yield, "sched_yield"),
    (libc::SYS_getpid, "getpid"),
    (libc::SYS_gettid, "gettid"),
    (libc::SYS_kill, "kill"),
    (libc::SYS_tgkill, "tgkill"),
    (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait"),
    (libc::SYS_rt_sigprocmask, "rt_sigprocmask"),
    (libc::SYS_rt_sigaction, "rt_sigaction"),
    (libc::SYS_rt_sigreturn, "rt_sigreturn"),
    (libc::SYS_sigaltstack, "sigaltstack"),
    (libc::SYS_restart_syscall, "restart_syscall"),
    (libc::SYS_wait4, "wait4"),
    (libc::SYS_waitid, "waitid"),
    (libc::SYS_fcntl, "fcntl"),
    (libc::SYS_ioctl, "ioctl"),
    (libc::SYS_exit, "exit"),
    (libc::SYS_exit_group, "exit_group"),
    (libc::SYS_clock_gettime, "clock_gettime"),
    (libc::SYS_clock_nanosleep, "clock_nanosleep"),
    (libc::SYS_nanosleep, "nanosleep"),
    (libc::SYS_getcpu, "getcpu"),
    (libc::SYS_execve, "execve"),
    (libc::SYS_execveat, "execveat"),
    (libc::SYS_clone, "clone"),
    (libc::SYS_clone3, "clone3"),
    (libc::SYS_socket, "socket"),
    (libc::SYS_socketpair, "socketpair"),
    (libc::SYS_connect, "connect"),
    (libc::SYS_bind, "bind"),
    (libc::SYS_listen, "listen"),
    (libc::SYS_accept4, "accept4"),
    (libc::SYS_sendto, "sendto"),
    (libc::SYS_recvfrom, "recvfrom"),
    (libc::SYS_sendmsg, "sendmsg"),
    (libc::SYS_recvmsg, "recvmsg"),
    (libc::SYS_unlinkat, "unlinkat"),
    (libc::SYS_renameat2, "renameat2"),
    (libc::SYS_mkdirat, "mkdirat"),
    (libc::SYS_fchmodat, "fchmodat"),
    (libc::SYS_fchownat, "fchownat"),
    (libc::SYS_ftruncate, "ftruncate"),
    (libc::SYS_memfd_create, "memfd_create"),
    (libc::SYS_dup3, "dup3"),
    (libc::SYS_pipe2, "pipe2"),
    (libc::SYS_prctl, "prctl"),
    (libc::SYS_shutdown, "shutdown"),
    (libc::SYS_setsockopt, "setsockopt"),
    (libc::SYS_getsockname, "getsockname"),
    (libc::SYS_epoll_create1, "epoll_create1"),
    (libc::SYS_epoll_ctl, "epoll_ctl"),
    (libc::SYS_epoll_wait, "epoll_wait"),
    (libc::SYS_epoll_pwait, "epoll_pwait"),
    (libc::SYS_io_uring_setup, "io_uring_setup"),
    (libc::SYS_io_uring_enter, "io_uring_enter"),
    (libc::SYS_io_uring_register, "io_uring_register"),
    (libc::SYS_seccomp, "seccomp"),
    (libc::SYS_ptrace, "ptrace"),
    (libc::SYS_process_vm_readv, "process_vm_readv"),
    (libc::SYS_process_vm_writev, "process_vm_writev"),
    (libc::SYS_pidfd_open, "pidfd_open"),
    (libc::SYS_mount, "mount"),
    (libc::SYS_setns, "setns"),
    (libc::SYS_unshare, "unshare"),
    (libc::SYS_setuid, "setuid"),
    (libc::SYS_bpf, "bpf"),
    (libc::SYS_readlinkat, "readlinkat"),
    (libc::SYS_faccessat, "faccessat"),
    (libc::SYS_sched_getaffinity, "sched_getaffinity"),
    (libc::SYS_set_robust_list, "set_robust_list"),
    (libc::SYS_rseq, "rseq"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_open, "open"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_stat, "stat"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_unlink, "unlink"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_rename, "rename"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_mkdir, "mkdir"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_fork, "fork"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_vfork, "vfork"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_access, "access"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_readlink, "readlink"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_pipe, "pipe"),
];

/// The name of call `nr`, if it is one we know.
pub(super) fn call_name(nr: i64) -> Option<&'static str> {
    NAMES.iter().find(|(n, _)| *n == nr).map(|&(_, name)| name)
}
