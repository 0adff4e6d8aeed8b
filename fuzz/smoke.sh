#!/usr/bin/env bash
# Every fuzz target for a short run without a sanitizer (CI's smoke test): fuzz/smoke.sh [SECONDS]
# (20 by default). Fails on the first target that finds a crash.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-20}
for t in fuzz_targets/*.rs; do
    target=$(basename "$t" .rs)
    echo "==> fuzz $target for ${seconds}s"
    log=$(mktemp)
    if ! ./run.sh "$target" "$seconds" >"$log" 2>&1; then
        tail -60 "$log"
        echo "fuzz target $target failed (crash input in fuzz/artifacts/$target/)"
        rm -f "$log"
        exit 1
    fi
    grep -E '^#[0-9]+ +DONE|stat::average_exec_per_sec|^Done ' "$log" || tail -3 "$log"
    rm -f "$log"
done
echo "every fuzz target ran ${seconds}s without a crash"
