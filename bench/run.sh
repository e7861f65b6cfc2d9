#!/usr/bin/env bash
# Side-by-side benchmark of strom against Apache Kafka on this machine (issue 7).
#
#   bench/run.sh [--smoke] [--reps N] [--tools a,b] [--systems kafka,strom] [--wait-quiet S] [scenario...]
#
# Scenarios (default: all; --smoke: p1k-a1-1p rf3-p1k-aall-1p with tiny counts, 1 rep):
#   p100-a1-1p p100-aall-1p p100-a1-4p p100-aall-4p p1k-a1-1p p1k-aall-1p p1k-a1-4p p1k-aall-4p
#   consume-1k latency-1k rf3-p1k-a1-1p rf3-p1k-aall-1p rf3-failover
# rf3-*: three local nodes of each system (node i on BENCH_PORT + 10(i-1), its controller on the next port).
# Results: bench/results/<timestamp>/{summary.md,summary.json,results.json,raw/} (BENCH_OUT overrides).
# Env: STROM_BIN (default: built with cargo into $CARGO_TARGET_DIR or ~/.cache/strom/target),
#      KAFKA_VERSION, STROM_CACHE (see scripts/kafka-dist.sh), BENCH_WORK (data dirs, default /tmp/strom-bench.$UID),
#      BENCH_PORT (default 19092; a node's controller listener uses +1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
STROM_CACHE="${STROM_CACHE:-$HOME/.cache/strom}"
export STROM_CACHE
KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
export KAFKA_VERSION

if [[ -z "${STROM_BIN:-}" ]]; then
  TARGET="${CARGO_TARGET_DIR:-$STROM_CACHE/target}"
  STROM_BIN="$TARGET/release/strom"
  if [[ ! -x "$STROM_BIN" ]]; then
    echo "bench: building strom (release) into $TARGET" >&2
    (cd "$REPO" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p strom-cli)
  fi
fi
[[ -x "$STROM_BIN" ]] || { echo "bench: no strom binary at $STROM_BIN" >&2; exit 1; }

LIBS="$("$REPO/scripts/kafka-dist.sh")"

# The bench's own Java tools (assign-based consumer, end-to-end latency), compiled once per source version.
SUM="$(cat "$HERE"/java/*.java | sha1sum | cut -c1-12)"
CLASSES="$STROM_CACHE/bench/classes-$KAFKA_VERSION-$SUM"
if [[ ! -f "$CLASSES/.ok" ]]; then
  rm -rf "$CLASSES.tmp" && mkdir -p "$CLASSES.tmp"
  javac -nowarn -cp "$LIBS/*" -d "$CLASSES.tmp" "$HERE"/java/*.java
  rm -rf "$CLASSES" && mv "$CLASSES.tmp" "$CLASSES" && touch "$CLASSES/.ok"
fi

STAMP="$(date +%Y%m%d-%H%M%S)"
SMOKE=""
for a in "$@"; do [[ "$a" == "--smoke" ]] && SMOKE="-smoke"; done
OUT="${BENCH_OUT:-$HERE/results/$STAMP$SMOKE}"
WORK="${BENCH_WORK:-/tmp/strom-bench.$UID}/$STAMP$SMOKE.$$"
mkdir -p "$OUT" "$WORK"
trap 'rm -rf "$WORK"' EXIT

python3 "$HERE/bench.py" --strom "$STROM_BIN" --kafka-libs "$LIBS" --kafka-version "$KAFKA_VERSION" \
  --classes "$CLASSES" --cache "$STROM_CACHE/bench" --out "$OUT" --work "$WORK" \
  --port "${BENCH_PORT:-19092}" "$@"
