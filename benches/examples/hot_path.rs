//! Run one scenario of the catalogue for N operations and nothing else: the program to profile
//! a hot path with (instruction counts are repeatable where the clock is not).
//!
//! ```text
//! cargo build --release -p m3-benches --example hot_path
//! valgrind --tool=callgrind target/release/examples/hot_path sendrec/muk2-coroutines/one-thread 200000
//! ```
//!
//! Run it for two counts and divide the difference in instructions by the difference in
//! operations: start-up cancels out. Peers are this program re-executed (add
//! `--trace-children=yes` to count them too).

use m3_benches::{Group, scenario};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Die quietly of SIGPIPE, as `ls` does, when the output is a closed pipe (`| head -1`).
    // SAFETY: setting a signal's disposition touches no memory; no thread has started yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: Vec<String> = std::env::args().collect();
    if let Some(code) = m3_benches::peer::dispatch(&args) {
        return code;
    }
    let (Some(id), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok())) else {
        eprintln!("usage: hot_path GROUP/NAME/PLACEMENT COUNT");
        return ExitCode::from(2);
    };
    let Some(s) = Group::ALL
        .iter()
        .flat_map(|&g| scenario::group(g, scenario::two_cpus()))
        .find(|s| s.id() == *id)
    else {
        eprintln!("hot_path: no scenario {id}");
        return ExitCode::from(2);
    };
    let result = s.start().and_then(|mut session| {
        let took = session.run(n, None)?;
        println!("{id}: {n} operations in {took:?}");
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hot_path: {e}");
            ExitCode::FAILURE
        }
    }
}
