#!/usr/bin/env bash
# Fuzz one target for a while: fuzz/run.sh TARGET SECONDS [--asan] [-- LIBFUZZER_ARGS...]
#
# Without --asan: `cargo fuzz run --sanitizer none` (works on the stable toolchain as is).
# With --asan: AddressSanitizer, which needs the nightly-only -Z flags cargo-fuzz passes; on
# this stable toolchain RUSTC_BOOTSTRAP=1 allows them (fuzz/README.md).
#
# The committed seeds (fuzz/corpus/TARGET) and regression inputs (fuzz/regressions/TARGET) are
# read, never written: new inputs go to fuzz/target/corpus-work/TARGET, crashes to
# fuzz/artifacts/TARGET/. Regions live in a private directory, removed at the end. A run ends
# with libFuzzer's final statistics (execs/s, coverage `cov:` and features `ft:`).
set -euo pipefail
cd "$(dirname "$0")"

usage() { echo "usage: fuzz/run.sh TARGET SECONDS [--asan] [-- LIBFUZZER_ARGS...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
target=$1 seconds=$2
shift 2
[ -f "fuzz_targets/$target.rs" ] || { echo "no target $target (see fuzz/fuzz_targets/)" >&2; exit 2; }
[[ "$seconds" =~ ^[0-9]+$ ]] || usage
asan=""
if [ "${1:-}" = "--asan" ]; then asan=1; shift; fi
if [ "${1:-}" = "--" ]; then shift; fi

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz builds this crate on its own (its own target directory, fuzz/target), with its
# own flags: a target directory set for the main workspace must not leak in.
unset CARGO_TARGET_DIR

work="target/corpus-work/$target"
mkdir -p "$work" "corpus/$target" "regressions/$target"
shm=$(mktemp -d "${M3IPC_SHM_DIR:-/dev/shm}/m3fuzz-run.XXXXXX")
trap 'rm -rf "$shm"' EXIT
export M3IPC_SHM_DIR="$shm"

# -timeout: one input may take at most 30 s (every wait inside a target is bounded at 10 s),
# so a hang is reported as a crash rather than stalling the run.
args=(-max_total_time="$seconds" -timeout=30 -print_final_stats=1 "$@")
if [ -n "$asan" ]; then
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$work" "corpus/$target" "regressions/$target" -- "${args[@]}"
else
    cargo fuzz run --sanitizer none "$target" "$work" "corpus/$target" "regressions/$target" -- "${args[@]}"
fi
