//! Raw baseline 1: two processes spinning on one shared cache line.
//!
//! No system call at all: the fastest a round trip between two processes can be. Across two idle
//! cores about 120 ns here; on one core each side spins until the scheduler preempts it, so a round
//! trip takes a time slice (milliseconds), which is why `dvs bench` gives that case a time budget.

use super::ball::{self, Waiter};
use crate::error::Result;
use crate::measure::Plan;
use crate::placement::Placement;
use crate::report::RunReport;
use crate::role::{ClientArgs, ServerArgs};
use std::sync::atomic::AtomicU32;

/// Hidden subcommand of the server role.
pub const SERVER_CMD: &str = "__spin-server";
/// Hidden subcommand of the client role.
pub const CLIENT_CMD: &str = "__spin-client";

/// Busy-waiting with the CPU's spin-loop hint; never sleeps.
#[derive(Debug, Default)]
pub struct Spin;

impl Waiter for Spin {
    const CHECK_EVERY: u32 = 1 << 16;

    fn wait(&mut self, _word: &AtomicU32, _seen: u32) {
        core::hint::spin_loop();
    }

    fn wake(&mut self, _word: &AtomicU32) {}
}

/// The server role.
pub fn serve(args: &ServerArgs) -> Result<()> {
    ball::serve(args, &mut Spin)
}

/// The client role.
pub fn client(args: &ClientArgs) -> Result<()> {
    ball::client(args, &mut Spin)
}

/// Run one spin ping-pong and return the client's report.
pub fn run(plan: &Plan, placement: Placement) -> Result<RunReport> {
    ball::run_pair("spin", SERVER_CMD, CLIENT_CMD, plan, placement)
}
