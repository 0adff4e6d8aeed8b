//! The allowlist: every system call a booted unikernel makes, with the arguments it makes it
//! with where a check narrows the call, and why it is needed.
//!
//! Found by tracing (`strace -f`) the default boot, `muk2 run` with m3ftp puts and gets and
//! `muk2 check`, and `muk2 serve rdisk|fs|ftp`, under both runners, after boot. `muk2
//! sandbox-profile` prints it; README's "Sandbox" section explains it.

use super::{SandboxError, Settings};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule,
};
use std::collections::BTreeMap;

/// One allowed system call.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// Its name.
    pub call: &'static str,
    /// Its number on this architecture.
    pub nr: i64,
    /// The arguments it is allowed with ("any" when unchecked).
    pub only: &'static str,
    /// Who makes it, and why.
    pub why: &'static str,
}

const fn entry(call: &'static str, nr: i64, only: &'static str, why: &'static str) -> Entry {
    Entry {
        call,
        nr,
        only,
        why,
    }
}

/// The allowlist, in the order `muk2 sandbox-profile` prints it.
pub const PROFILE: &[Entry] = &[
    entry(
        "futex",
        libc::SYS_futex,
        "op WAIT, WAKE, WAIT_BITSET or WAKE_BITSET (private or shared, any clock)",
        "the fabric's doorbells (shared futexes in the region) and std's locks and joins",
    ),
    entry(
        "read",
        libc::SYS_read,
        "any",
        "a liveness check reads /proc/PID/stat",
    ),
    entry(
        "write",
        libc::SYS_write,
        "fd 1, 2, or the pipe to the helper that removes the DC",
        "messages on stdout and stderr (muk::diag!, the reports); the orderly stop's word to \
         the helper",
    ),
    entry(
        "openat",
        libc::SYS_openat,
        "dirfd = the /proc directory pinned at boot, flags O_RDONLY|O_CLOEXEC",
        "a liveness check opens PID/stat relative to /proc (nothing else may be opened)",
    ),
    entry(
        "close",
        libc::SYS_close,
        "any",
        "closes the stat file a liveness check opened",
    ),
    entry(
        "pread64",
        libc::SYS_pread64,
        "any",
        "RDISK reads blocks of its image file",
    ),
    entry(
        "pwrite64",
        libc::SYS_pwrite64,
        "any",
        "RDISK writes blocks of its image file",
    ),
    entry(
        "fdatasync",
        libc::SYS_fdatasync,
        "any",
        "RDISK flushes its image file (FS's sync, the stop)",
    ),
    entry(
        "mmap",
        libc::SYS_mmap,
        "prot without PROT_EXEC",
        "the allocator (FS and RDISK buffers, thread arenas)",
    ),
    entry(
        "mprotect",
        libc::SYS_mprotect,
        "prot without PROT_EXEC",
        "the allocator grows a thread arena",
    ),
    entry(
        "munmap",
        libc::SYS_munmap,
        "any",
        "the allocator frees; a stack and a signal stack are freed at a server's end",
    ),
    entry(
        "mremap",
        libc::SYS_mremap,
        "any (it keeps the mapping's protection)",
        "the allocator grows a large (mapped) buffer in place",
    ),
    entry(
        "madvise",
        libc::SYS_madvise,
        "advice MADV_DONTNEED",
        "the allocator returns memory; a thread's stack is released at its end",
    ),
    entry("brk", libc::SYS_brk, "any", "the allocator's main arena"),
    entry(
        "getrandom",
        libc::SYS_getrandom,
        "any",
        "std's HashMap keys, drawn once per thread",
    ),
    entry(
        "sched_yield",
        libc::SYS_sched_yield,
        "any",
        "the fabric yields while a peer finishes a reply or a release",
    ),
    entry(
        "clock_gettime",
        libc::SYS_clock_gettime,
        "any",
        "Instant::now() where the vDSO falls back to the kernel (a clock source it cannot read)",
    ),
    entry(
        "getcpu",
        libc::SYS_getcpu,
        "any",
        "sched_getcpu() (the fabric's spin-or-sleep choice) where the vDSO falls back",
    ),
    entry(
        "getpid",
        libc::SYS_getpid,
        "any",
        "the watch thread signals its own process (below)",
    ),
    entry(
        "kill",
        libc::SYS_kill,
        "signal 0 (is PID alive); SIGUSR1 to this process; SIGKILL to a child",
        "liveness of a binding slot's owner; the watch thread wakes the main thread; a \
         self-check that hangs is killed",
    ),
    entry(
        "rt_sigtimedwait",
        libc::SYS_rt_sigtimedwait,
        "any",
        "the main thread sleeps until SIGINT, SIGTERM or SIGUSR1",
    ),
    entry(
        "rt_sigprocmask",
        libc::SYS_rt_sigprocmask,
        "any",
        "a thread blocks signals as it exits (glibc)",
    ),
    entry(
        "rt_sigaction",
        libc::SYS_rt_sigaction,
        "signal SIGSEGV",
        "the stack-overflow report puts the previous SIGSEGV action back",
    ),
    entry(
        "rt_sigreturn",
        libc::SYS_rt_sigreturn,
        "any",
        "return from a signal handler (the stack-overflow report)",
    ),
    entry(
        "restart_syscall",
        libc::SYS_restart_syscall,
        "any",
        "the kernel restarts a timed wait a stop signal or a tracer interrupted (SIGSTOP and \
         SIGCONT, strace -p)",
    ),
    entry(
        "sigaltstack",
        libc::SYS_sigaltstack,
        "any",
        "a thread's alternate signal stack is removed as it exits",
    ),
    entry(
        "wait4",
        libc::SYS_wait4,
        "pid = a child started before the sandbox",
        "reap the self-check client (default boot) and the helper that removes the DC",
    ),
    entry(
        "fcntl",
        libc::SYS_fcntl,
        "cmd F_GETFD",
        "std checks a descriptor before closing it (debug builds)",
    ),
    entry(
        "exit",
        libc::SYS_exit,
        "any",
        "a runner or watch thread ends",
    ),
    entry(
        "exit_group",
        libc::SYS_exit_group,
        "any",
        "the process ends (the forbidden-call report too)",
    ),
];

/// `op & FUTEX_CMD_MASK`: the operation without the private and clock flags.
const FUTEX_CMD_MASK: u64 = !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u32 as u64;

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, len, op, value).map_err(|e| SandboxError::Build(e.to_string()))
}

/// The calls added when the unikernel hosts a network server (web, IS): serving TCP
/// connections from coroutines (MUK2's one sleep is an `io_uring_enter` beside an epoll set) or
/// from threads (MUK: `epoll_wait`). Without a network server none of them is allowed.
pub const NETWORK_PROFILE: &[Entry] = &[
    entry(
        "accept4",
        libc::SYS_accept4,
        "any",
        "web, IS: take a new connection",
    ),
    entry(
        "recvfrom",
        libc::SYS_recvfrom,
        "any",
        "web, IS: read a request (std's TcpStream::read)",
    ),
    entry(
        "sendto",
        libc::SYS_sendto,
        "any",
        "web, IS: write a response",
    ),
    entry(
        "shutdown",
        libc::SYS_shutdown,
        "any",
        "web, IS: end a connection",
    ),
    entry(
        "setsockopt",
        libc::SYS_setsockopt,
        "any",
        "web: TCP_NODELAY on a new connection",
    ),
    entry(
        "ioctl",
        libc::SYS_ioctl,
        "FIONBIO",
        "web, IS: make a new connection non-blocking",
    ),
    entry(
        "epoll_create1",
        libc::SYS_epoll_create1,
        "any",
        "the set of watched sockets, made at a server's first watch",
    ),
    entry(
        "epoll_ctl",
        libc::SYS_epoll_ctl,
        "any",
        "watch and unwatch a connection",
    ),
    entry(
        "epoll_wait",
        libc::SYS_epoll_wait,
        "any",
        "MUK threads wait for their sockets; MUK2 harvests ready sockets without blocking",
    ),
    entry(
        "io_uring_setup",
        libc::SYS_io_uring_setup,
        "any",
        "MUK2: the ring of its one sleep, made at the first watch",
    ),
    entry(
        "io_uring_register",
        libc::SYS_io_uring_register,
        "RESTRICTIONS, ENABLE_RINGS",
        "MUK2: limit the new ring to a futex wait, a poll and a cancel, then enable it",
    ),
    entry(
        "io_uring_enter",
        libc::SYS_io_uring_enter,
        "any",
        "MUK2: its one sleep, a futex wait on the doorbell beside a poll of the epoll set",
    ),
];

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conds).map_err(|e| SandboxError::Build(e.to_string()))
}

/// One rule per allowed value of argument `arg`.
fn any_of(arg: u8, len: Len, values: &[u64]) -> Result<Vec<SeccompRule>, SandboxError> {
    values
        .iter()
        .map(|&v| rule(vec![cond(arg, len.clone(), Op::Eq, v)?]))
        .collect()
}

/// The argument checks of call `nr` (empty: any arguments).
fn rules_of(nr: i64, s: &Settings) -> Result<Vec<SeccompRule>, SandboxError> {
    let exec = libc::PROT_EXEC as u64;
    Ok(match nr {
        libc::SYS_futex => {
            let ops = [
                libc::FUTEX_WAIT,
                libc::FUTEX_WAKE,
                libc::FUTEX_WAIT_BITSET,
                libc::FUTEX_WAKE_BITSET,
            ];
            ops.iter()
                .map(|&op| {
                    rule(vec![cond(
                        1,
                        Len::Dword,
                        Op::MaskedEq(FUTEX_CMD_MASK),
                        op as u64,
                    )?])
                })
                .collect::<Result<_, _>>()?
        }
        // A network server writes its responses to connections it accepted, whose numbers
        // cannot be known here: then `write` takes any descriptor.
        libc::SYS_write if s.network => Vec::new(),
        libc::SYS_write => {
            let mut fds = vec![1, 2];
            fds.extend(s.write_fds.iter().map(|&fd| fd as u32 as u64));
            any_of(0, Len::Dword, &fds)?
        }
        libc::SYS_ioctl => any_of(1, Len::Dword, &[libc::FIONBIO])?,
        // IORING_REGISTER_RESTRICTIONS (11) and IORING_REGISTER_ENABLE_RINGS (12) only.
        libc::SYS_io_uring_register => any_of(1, Len::Dword, &[11, 12])?,
        libc::SYS_openat => vec![rule(vec![
            cond(0, Len::Dword, Op::Eq, s.proc_dir as u32 as u64)?,
            cond(
                2,
                Len::Dword,
                Op::Eq,
                (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
            )?,
        ])?],
        libc::SYS_mmap | libc::SYS_mprotect => {
            vec![rule(vec![cond(2, Len::Dword, Op::MaskedEq(exec), 0)?])?]
        }
        libc::SYS_madvise => any_of(2, Len::Dword, &[libc::MADV_DONTNEED as u64])?,
        libc::SYS_kill => {
            let me = std::process::id() as u64;
            let mut rules = vec![
                rule(vec![cond(1, Len::Dword, Op::Eq, 0)?])?,
                rule(vec![
                    cond(0, Len::Dword, Op::Eq, me)?,
                    cond(1, Len::Dword, Op::Eq, libc::SIGUSR1 as u64)?,
                ])?,
            ];
            for &child in &s.children {
                rules.push(rule(vec![
                    cond(0, Len::Dword, Op::Eq, u64::from(child))?,
                    cond(1, Len::Dword, Op::Eq, libc::SIGKILL as u64)?,
                ])?);
            }
            rules
        }
        libc::SYS_rt_sigaction => any_of(0, Len::Dword, &[libc::SIGSEGV as u64])?,
        libc::SYS_wait4 => {
            let children: Vec<u64> = s.children.iter().map(|&c| u64::from(c)).collect();
            if children.is_empty() {
                // No child: no pid matches (0 would mean "any child of the group").
                any_of(0, Len::Dword, &[u64::from(u32::MAX)])?
            } else {
                any_of(0, Len::Dword, &children)?
            }
        }
        libc::SYS_fcntl => any_of(1, Len::Dword, &[libc::F_GETFD as u64])?,
        _ => Vec::new(),
    })
}

/// The calls allowed: [`PROFILE`], and [`NETWORK_PROFILE`] when `network`.
pub fn profile(network: bool) -> impl Iterator<Item = &'static Entry> {
    let extra: &[Entry] = if network { NETWORK_PROFILE } else { &[] };
    PROFILE.iter().chain(extra)
}

/// The filter for `settings`: the calls of [`profile`] with their checks are allowed; any other
/// call, or an allowed one with other arguments, traps (SIGSYS).
pub(crate) fn compile(settings: &Settings) -> Result<BpfProgram, SandboxError> {
    let mut rules = BTreeMap::new();
    for e in profile(settings.network) {
        rules.insert(e.nr, rules_of(e.nr, settings)?);
    }
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Build(e.to_string()))?;
    let filter = SeccompFilter::new(rules, SeccompAction::Trap, SeccompAction::Allow, arch)
        .map_err(|e| SandboxError::Build(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_distinct_and_compiles() {
        let mut nrs: Vec<i64> = PROFILE.iter().map(|e| e.nr).collect();
        nrs.sort_unstable();
        nrs.dedup();
        assert_eq!(nrs.len(), PROFILE.len(), "a call is listed twice");
        assert!(PROFILE.len() <= 30, "{} calls", PROFILE.len());
        let mut s = Settings {
            proc_dir: 3,
            children: vec![12345],
            write_fds: vec![5],
            network: false,
        };
        let program = compile(&s).unwrap();
        assert!(!program.is_empty());
        let mut all: Vec<i64> = profile(true).map(|e| e.nr).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), PROFILE.len() + NETWORK_PROFILE.len());
        s.network = true;
        assert!(compile(&s).unwrap().len() > program.len());
    }

    #[test]
    fn every_entry_has_a_known_name() {
        for e in profile(true) {
            assert_eq!(super::super::call_name(e.nr), Some(e.call));
        }
    }
}
