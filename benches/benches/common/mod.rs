//! What every criterion bench of this crate shares: the peer dispatch at start-up, and running a
//! scenario of the catalogue as one criterion benchmark.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use m3_benches::{Group, Scenario, Session, scenario};
use std::process::ExitCode;
use std::time::Duration;

/// When this process was started as a peer, run the role and return its exit code.
pub fn peer_role() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    m3_benches::peer::dispatch(&args)
}

/// Criterion as configured from the command line, with times that keep a full `cargo bench`
/// of every group within some minutes on two CPUs.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// Run one started-on-demand session as the benchmark `id` of `group`. The session (its peer
/// processes) starts on the first call, i.e. only when the benchmark passes criterion's filter,
/// and stops when this returns: one peer start per scenario, none per iteration.
pub fn bench_session<F>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    throughput: Throughput,
    start: F,
) where
    F: Fn() -> m3_benches::Result<Box<dyn Session>>,
{
    let mut session: Option<Box<dyn Session>> = None;
    group.throughput(throughput);
    group.bench_function(id, |b| {
        let s = session.get_or_insert_with(|| start().unwrap_or_else(|e| panic!("{id}: {e}")));
        b.iter_custom(|iters| s.run(iters, None).unwrap_or_else(|e| panic!("{id}: {e}")));
    });
    drop(session);
}

/// Run every scenario of the catalogue's `g` as a benchmark of `c`'s group named after it.
pub fn bench_group(c: &mut Criterion, g: Group) {
    let mut group = c.benchmark_group(g.label());
    if matches!(g, Group::FtpGet | Group::Remote | Group::Web) {
        // A GET takes tens of milliseconds (a remote round trip tens of microseconds): a fixed
        // number of operations per sample, not criterion's linear ramp (1, 2, ... 10
        // iterations a sample), keeps the group within seconds.
        group.sampling_mode(SamplingMode::Flat);
    }
    for s in scenario::group(g, scenario::two_cpus()) {
        if s.paused() {
            continue;
        }
        if let Some(why) = s.unavailable() {
            eprintln!("{}: skipped: {why}", s.id());
            continue;
        }
        bench_scenario(&mut group, &s);
    }
    group.finish();
}

/// One scenario; operations are elements, or bytes for payloads.
pub fn bench_scenario(group: &mut BenchmarkGroup<'_, WallTime>, s: &Scenario) {
    let id = format!("{}/{}", s.name(), s.placement_label());
    let throughput = match s.payload_bytes() {
        Some(b) => Throughput::Bytes(b as u64),
        None => Throughput::Elements(1),
    };
    bench_session(group, &id, throughput, || s.start());
}
