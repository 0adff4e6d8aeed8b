//! Criterion bench: the `web` group of the catalogue ([`m3_benches::scenario`]): MUK2's web
//! server against nginx (one worker, `sendfile on`) on loopback, a 64 MiB GET and 4 KiB GETs
//! over 16 keep-alive connections, both placements. Without nginx its rows are skipped, saying
//! so.

mod common;

use m3_benches::Group;
use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = common::peer_role() {
        return code;
    }
    let mut c = common::criterion();
    common::bench_group(&mut c, Group::Web);
    c.final_summary();
    ExitCode::SUCCESS
}
