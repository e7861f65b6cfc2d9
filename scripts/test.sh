#!/usr/bin/env bash
# The whole test run: install test deps, build strom, cargo tests, then the compat suite (pytest).
#
#   scripts/test.sh                    # everything, against strom
#   scripts/test.sh -k kcat            # extra arguments go to pytest
#   COMPAT_TARGET=kafka scripts/test.sh   # the compat suite against real Apache Kafka (the oracle)
#
# Env: CARGO_TARGET_DIR (default ~/.cache/strom/target, outside the clone so CI reuses it),
#      STROM_CACHE, STROM_VENV (see install-test-deps.sh), COMPAT_TARGET (strom|kafka).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STROM_CACHE="${STROM_CACHE:-$HOME/.cache/strom}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$STROM_CACHE/target}"
VENV="${STROM_VENV:-$STROM_CACHE/venv}"

step() { printf '\n==> %s\n' "$*" >&2; }
t0=$SECONDS

step "install test dependencies"
bash scripts/install-test-deps.sh

command -v cargo >/dev/null || { echo "cargo not found (install Rust with rustup)" >&2; exit 1; }

step "cargo build --release -p strom-cli"
cargo build --release -p strom-cli
export STROM_BIN="$CARGO_TARGET_DIR/release/strom"

step "cargo test --workspace"
cargo test --workspace

# Benchmarks are not tests, but a few seconds of the harness keep it from rotting (issue: bench).
if [ "${COMPAT_TARGET:-strom}" = strom ]; then
  step "bench smoke run (bench/smoke_test.sh)"
  bash bench/smoke_test.sh
fi

step "pytest tests/compat (target: ${COMPAT_TARGET:-strom})"
status=0
"$VENV/bin/python" -m pytest tests/compat -p no:cacheprovider "$@" || status=$?
echo "scripts/test.sh: finished in $((SECONDS - t0))s (pytest exit code $status)" >&2
exit "$status"
