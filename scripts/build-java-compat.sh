#!/usr/bin/env bash
# Build the Java compat program (tests/compat/java, kafka-clients 4.x) into a cache dir keyed by a
# hash of its sources, and print the Java classpath to run it with:
#   java -cp "$(scripts/build-java-compat.sh)" dev.strom.compat.Compat MODE ...
# Rebuilds only when the sources change. Env: STROM_CACHE (default ~/.cache/strom).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/tests/compat/java"
STROM_CACHE="${STROM_CACHE:-$HOME/.cache/strom}"
HASH="$(cd "$SRC" && find pom.xml src -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
OUT="$STROM_CACHE/compat-java/$HASH"
if [[ ! -f "$OUT/.built" ]]; then
  command -v mvn >/dev/null || { echo "build-java-compat.sh: mvn not found" >&2; exit 1; }
  echo "build-java-compat.sh: building the Java compat program into $OUT ..." >&2
  rm -rf "$OUT"
  mkdir -p "$OUT"
  if ! mvn -q -B -Dstyle.color=never -f "$SRC/pom.xml" -Dcompat.buildDir="$OUT" package >"$OUT.log" 2>&1; then
    cat "$OUT.log" >&2
    echo "build-java-compat.sh: the Maven build failed (log above)" >&2
    exit 1
  fi
  touch "$OUT/.built"
fi
echo "$OUT/strom-compat.jar:$OUT/lib/*"
