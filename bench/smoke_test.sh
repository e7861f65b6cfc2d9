#!/usr/bin/env bash
# Keeps the benchmark harness from rotting: a few seconds per system, checked for figures on both sides.
# Exits non-zero if the harness fails or a figure is missing. Needs the strom binary (bench/run.sh builds it
# if missing; that build is not part of the ~90 s budget) and Kafka resolved by scripts/kafka-dist.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/strom-bench-smoke.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT
start=$(date +%s)
BENCH_OUT="$OUT" BENCH_PORT="${BENCH_PORT:-19292}" \
  timeout 180 "$HERE/run.sh" --smoke >"$OUT/stdout" 2>"$OUT/stderr" || {
    echo "smoke: bench/run.sh --smoke failed" >&2; tail -40 "$OUT/stderr" >&2; cat "$OUT/stdout" >&2; exit 1; }
python3 - "$OUT/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rows = {(r["scenario"], r["tool"]): r for r in s["scenarios"]}
bad = []
def need(scen, tool, system, *fields):
    r = rows.get((scen, tool), {}).get(system)
    if not r or not r.get("n"):
        bad.append("%s/%s/%s: no successful run" % (scen, tool, system)); return
    for f in fields:
        if f not in r:
            bad.append("%s/%s/%s: no %s" % (scen, tool, system, f))
for system in ("kafka", "strom"):
    for tool in ("kafka-producer-perf", "strom-bench"):
        need("p1k-a1-1p", tool, system, "records_per_s", "mib_per_s", "p99_ms", "peak_rss_mib", "idle_rss_mib",
             "cpu_s_per_gb", "first_produce_ms")
    # three local nodes, RF=3: the cluster launchers of both systems
    need("rf3-p1k-aall-1p", "strom-bench", system, "records_per_s", "p99_ms", "peak_rss_mib", "first_produce_ms")
if not s["limits"].get("disk_write_o_direct_mib_per_s"):
    bad.append("no disk limit figure")
if bad:
    print("smoke: " + "; ".join(bad), file=sys.stderr); sys.exit(1)
PY
echo "smoke: ok in $(( $(date +%s) - start )) s"
