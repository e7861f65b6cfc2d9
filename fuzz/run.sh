#!/usr/bin/env bash
# Runs one fuzz target (or all of them, one after another) for a number of seconds each, with
# the options docs/fuzzing.md explains. Usage: fuzz/run.sh [TARGET|all] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-all}
seconds=${2:-300}
# kafka-protocol's known unbounded pre-allocation: let ASAN return null for huge allocations so
# strom_fuzz::tolerate_known_oom can skip those inputs (STROM_FUZZ_ABORT_ON_OOM=1 to stop on them).
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:max_allocation_size_mb=2048}
seeds_of() {
    case $1 in
        request_decode) echo fuzz/seeds/request_decode ;;
        *) echo fuzz/seeds/batch ;;
    esac
}
if [ "$target" = all ]; then
    targets=(request_decode batch_validate batch_validate_structured log_append_read)
else
    targets=("$target")
fi
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "$(seeds_of "$t")" -- \
        -max_total_time="$seconds" -timeout=10 -malloc_limit_mb=4096 -print_final_stats=1
done
