//! Criterion bench: the `remote` group of the catalogue ([`m3_benches::scenario`]): a DC across
//! two nodes on this machine (two region directories, two node daemons as child processes,
//! over loopback) against TCP on the same link.

mod common;

use m3_benches::Group;
use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = common::peer_role() {
        return code;
    }
    let mut c = common::criterion();
    common::bench_group(&mut c, Group::Remote);
    c.final_summary();
    ExitCode::SUCCESS
}
