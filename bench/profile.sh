#!/usr/bin/env bash
# CPU profile of a strom server's produce and fetch paths (perf sampling, cpu-clock: this VM has no
# hardware counters). Loads with `strom bench` (librdkafka), 1 KB records, acks=1, one partition.
#
#   bench/profile.sh [OUT_DIR]     (default bench/results/<timestamp>-profile)
# Env: STROM_BIN, PROFILE_RECORDS (default 1000000), PROFILE_PORT (default 19392), PERF_FREQ (default 999).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STROM_BIN="${STROM_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/strom/target}/release/strom}"
OUT="${1:-$HERE/results/$(date +%Y%m%d-%H%M%S)-profile}"
N="${PROFILE_RECORDS:-1000000}"
PORT="${PROFILE_PORT:-19392}"
FREQ="${PERF_FREQ:-999}"
BS="127.0.0.1:$PORT"
WORK="$(mktemp -d /tmp/strom-profile.XXXXXX)"
mkdir -p "$OUT"
SPID=""
cleanup() { [[ -n "$SPID" ]] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

"$STROM_BIN" server --override "listeners=PLAINTEXT://$BS" --override "log.dirs=$WORK/data" >"$OUT/server.log" 2>&1 &
SPID=$!
for _ in $(seq 100); do "$STROM_BIN" topic create prof --partitions 1 --bootstrap-server "$BS" >/dev/null 2>&1 && break; sleep 0.1; done

profile() { # name, load command...
  local name="$1"; shift
  perf record -q -F "$FREQ" -e cpu-clock -g --call-graph dwarf,16384 -p "$SPID" -o "$WORK/$name.data" 2>"$OUT/$name.perf.err" &
  local ppid=$!
  sleep 0.5
  local c0; c0=$(awk '{print $14+$15}' /proc/$SPID/stat)
  "$@" >"$OUT/$name.load.json" 2>"$OUT/$name.load.err"
  local c1; c1=$(awk '{print $14+$15}' /proc/$SPID/stat)
  kill -INT "$ppid"; wait "$ppid" || true
  echo "server cpu ticks ($(getconf CLK_TCK)/s) during $name: $((c1 - c0))" >"$OUT/$name.cpu.txt"
  perf report -i "$WORK/$name.data" --no-children --sort symbol --stdio -g none --percent-limit 0.7 2>/dev/null \
    | grep -v '^$' >"$OUT/$name.self.txt" || true
  # call chains (callee first) of the symbols above 4%: which strom code leads to the kernel's cost
  perf report -i "$WORK/$name.data" --no-children --sort symbol --stdio -g callee,0.5 --max-stack 5 --percent-limit 3 2>/dev/null \
    | grep -v '^$' | cut -c1-220 | head -400 >"$OUT/$name.callers.txt" || true
  perf report -i "$WORK/$name.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^$' >"$OUT/$name.dso.txt" || true
}

profile produce "$STROM_BIN" bench produce --topic prof --num-records "$N" --record-size 1000 --acks 1 --json --bootstrap-server "$BS"
profile fetch "$STROM_BIN" bench consume --topic prof --messages "$N" --json --bootstrap-server "$BS"
echo "profile written to $OUT" >&2
