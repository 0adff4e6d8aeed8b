//! Criterion bench: the `ftp_get` group of the catalogue ([`m3_benches::scenario`]); each
//! scenario's peer processes are started once and pinned to stated CPUs.

mod common;

use m3_benches::Group;
use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = common::peer_role() {
        return code;
    }
    let mut c = common::criterion();
    common::bench_group(&mut c, Group::FtpGet);
    c.final_summary();
    ExitCode::SUCCESS
}
