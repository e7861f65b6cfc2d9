#!/usr/bin/env bash
# Resolve Apache Kafka (broker + tools) from Maven Central into a cache directory
# and print that directory (a flat folder of jars: run with `java -cp 'DIR/*' MAIN`).
#
# Idempotent: the resolution runs once per version and is then reused (stamp file).
#
#   scripts/kafka-dist.sh            -> prints e.g. ~/.cache/strom/kafka/4.1.2/libs
#   KAFKA_VERSION=4.1.1 scripts/kafka-dist.sh
#
# Env: KAFKA_VERSION (default 4.1.2), STROM_CACHE (default ~/.cache/strom),
#      MAVEN_REPO (optional; default is Maven's own, ~/.m2/repository).
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
STROM_CACHE="${STROM_CACHE:-$HOME/.cache/strom}"
DIST="$STROM_CACHE/kafka/$KAFKA_VERSION"
LIBS="$DIST/libs"
STAMP="$DIST/.resolved"

if [[ -f "$STAMP" && -d "$LIBS" ]]; then
  echo "$LIBS"
  exit 0
fi

command -v mvn >/dev/null || { echo "kafka-dist.sh: mvn not found (Maven is needed to resolve Kafka)" >&2; exit 1; }
command -v java >/dev/null || { echo "kafka-dist.sh: java not found" >&2; exit 1; }

mkdir -p "$DIST"
rm -rf "$LIBS.tmp"
# A throwaway pom: the broker (kafka_2.13, which brings raft, metadata, storage, server,
# group/share/transaction coordinators and clients), the tools (perf tools, used by bench/),
# and a log4j2 backend bound to slf4j 1.x (Kafka 4.1 uses slf4j-api 1.7) so the broker can print its log.
cat > "$DIST/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.strom.tools</groupId>
  <artifactId>kafka-dist</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-storage</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
      </plugin>
    </plugins>
  </build>
</project>
POM

MVN_ARGS=(-q -B -Dstyle.color=never -f "$DIST/pom.xml")
[[ -n "${MAVEN_REPO:-}" ]] && MVN_ARGS+=("-Dmaven.repo.local=$MAVEN_REPO")
echo "kafka-dist.sh: resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central (once)..." >&2
if ! mvn "${MVN_ARGS[@]}" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS.tmp" -DincludeScope=runtime >"$DIST/mvn.log" 2>&1; then
  cat "$DIST/mvn.log" >&2
  echo "kafka-dist.sh: Maven could not resolve Kafka $KAFKA_VERSION (log above)" >&2
  exit 1
fi
rm -rf "$LIBS"
mv "$LIBS.tmp" "$LIBS"
touch "$STAMP"
echo "$LIBS"
