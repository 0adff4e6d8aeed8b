//! Raw baseline 2: futex wait/wake ping-pong between two processes.
//!
//! Each side sleeps in `FUTEX_WAIT` on the shared word at once and the other wakes it with
//! `FUTEX_WAKE` after every move: the cost of a kernel-mediated wakeup, which is what a blocking
//! IPC round trip cannot beat. The futex is *shared* (no `FUTEX_PRIVATE_FLAG`), as it must be
//! between processes: the kernel keys it by the file page, not by the address.

use super::ball::{self, Waiter};
use crate::error::Result;
use crate::measure::Plan;
use crate::placement::Placement;
use crate::report::RunReport;
use crate::role::{ClientArgs, ServerArgs};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Hidden subcommand of the server role.
pub const SERVER_CMD: &str = "__futex-server";
/// Hidden subcommand of the client role.
pub const CLIENT_CMD: &str = "__futex-client";

/// Longest one `FUTEX_WAIT`, so that the caller checks for a vanished peer now and then.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Sleeping in `FUTEX_WAIT`; every move is followed by a `FUTEX_WAKE`.
#[derive(Debug, Default)]
pub struct Futex;

impl Waiter for Futex {
    const CHECK_EVERY: u32 = 1;

    fn wait(&mut self, word: &AtomicU32, seen: u32) {
        let ts = libc::timespec {
            tv_sec: WAIT_SLICE.as_secs() as libc::time_t,
            tv_nsec: WAIT_SLICE.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `word` is a live, 4-byte aligned u32 (in a shared mapping that outlives the
        // call) and `ts` a valid timespec; FUTEX_WAIT only reads them. EAGAIN (the word changed),
        // EINTR and ETIMEDOUT all just return: the caller re-checks the word.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                seen,
                &ts as *const libc::timespec,
                core::ptr::null::<u32>(),
                0u32,
            );
        }
    }

    fn wake(&mut self, word: &AtomicU32) {
        // SAFETY: `word` is a live, 4-byte aligned u32; FUTEX_WAKE does not access memory
        // through the other arguments.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                1i32,
                core::ptr::null::<libc::timespec>(),
                core::ptr::null::<u32>(),
                0u32,
            );
        }
    }
}

/// The server role.
pub fn serve(args: &ServerArgs) -> Result<()> {
    ball::serve(args, &mut Futex)
}

/// The client role.
pub fn client(args: &ClientArgs) -> Result<()> {
    ball::client(args, &mut Futex)
}

/// Run one futex ping-pong and return the client's report.
pub fn run(plan: &Plan, placement: Placement) -> Result<RunReport> {
    ball::run_pair("futex", SERVER_CMD, CLIENT_CMD, plan, placement)
}
