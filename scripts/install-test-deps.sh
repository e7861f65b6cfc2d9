#!/usr/bin/env bash
# Install everything the tests need, from the registries only (Debian apt, PyPI, Maven Central).
# Idempotent: each step is skipped when already done, so a second run takes seconds.
#
#   1. Debian: kcat, PostgreSQL and MariaDB servers (JDBC connector tests; the tests start their own
#      instances on private ports and data directories), java/maven/python venv support if missing;
#      chromium (the web console's browser tests) when apt has it: without it those tests skip
#   2. Python venv ($STROM_VENV, default ~/.cache/strom/venv) with tests/compat/requirements.txt
#   3. Apache Kafka (broker + tools) resolved from Maven Central into ~/.cache/strom/kafka (kafka-dist.sh)
#   4. The Java compat program (tests/compat/java) built into ~/.cache/strom/compat-java
#
# Env: STROM_CACHE (default ~/.cache/strom), STROM_VENV, KAFKA_VERSION.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STROM_CACHE="${STROM_CACHE:-$HOME/.cache/strom}"
VENV="${STROM_VENV:-$STROM_CACHE/venv}"
mkdir -p "$STROM_CACHE"

say() { echo "install-test-deps: $*" >&2; }

# ---- 1. Debian packages
need=()
command -v kcat >/dev/null || need+=(kcat)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[[ -x /usr/sbin/mariadbd ]] || need+=(mariadb-server)
command -v java >/dev/null || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# Optional: a missing one makes only the tests that need it skip (they say why), so its install
# may fail without failing this script.
optional=()
command -v chromium >/dev/null || optional+=(chromium)
SUDO=""
[[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if [[ ${#need[@]} -gt 0 || ${#optional[@]} -gt 0 ]]; then
  $SUDO apt-get update -qq
fi
if [[ ${#need[@]} -gt 0 ]]; then
  say "apt-get install ${need[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
for pkg in "${optional[@]}"; do
  say "apt-get install $pkg (optional)"
  $SUDO apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null \
    || say "$pkg not installed (not in apt's lists?): the tests that need it will skip"
done

# ---- 2. Python venv
REQ="$ROOT/tests/compat/requirements.txt"
WANT="$( (python3 --version; cat "$REQ") | sha256sum | cut -c1-16)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.requirements-sha" 2>/dev/null)" != "$WANT" ]]; then
  say "creating the Python venv $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
  echo "$WANT" > "$VENV/.requirements-sha"
fi

# ---- 3. Apache Kafka from Maven Central (the oracle, and the benchmark peer)
"$ROOT/scripts/kafka-dist.sh" >/dev/null

# ---- 4. The Java compat program
"$ROOT/scripts/build-java-compat.sh" >/dev/null

say "ok (venv: $VENV)"
