#!/usr/bin/env bash
# Run one Apache Kafka node (KRaft, combined broker+controller) in the foreground, with Kafka's
# defaults, for the compat suite's oracle mode and for bench/. Alone by default; with --voters it is
# one node of a cluster (every node given the same --voters and --cluster-id).
#
#   scripts/kafka-run.sh --port 9092 --controller-port 9093 --dir /tmp/k1 [--override key=value ...]
#   scripts/kafka-run.sh ... --node-id 2 --voters 1@127.0.0.1:9093,2@127.0.0.1:9103,... --cluster-id ID
#   scripts/kafka-run.sh ... --format-only     # write the config and format DIR/data, then exit
#
# --dir holds server.properties, the log4j2 config and the data (DIR/data). The data dir is
# formatted (StorageTool) on first start only, so a restart on the same --dir keeps the data.
# The script execs the JVM: the caller's pid is the broker's (SIGTERM = clean stop, SIGKILL = crash).
# Kafka logs to stderr at level KAFKA_LOG_LEVEL (default WARN; "started" lines are always shown).
# Env: KAFKA_VERSION, STROM_CACHE (see kafka-dist.sh), KAFKA_HEAP_OPTS (default -Xmx1g -Xms256m),
#      KAFKA_JVM_OPTS (extra JVM flags), JAVA (default: java on PATH).
set -euo pipefail

usage() { sed -n '2,15p' "$0" >&2; exit 2; }

PORT="" CPORT="" DIR="" OVERRIDES=() NODE_ID=1 VOTERS="" CLUSTER_ID="" FORMAT_ONLY=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --controller-port) CPORT="$2"; shift 2 ;;
    --dir) DIR="$2"; shift 2 ;;
    --override) OVERRIDES+=(--override "$2"); shift 2 ;;
    --node-id) NODE_ID="$2"; shift 2 ;;
    --voters) VOTERS="$2"; shift 2 ;;
    --cluster-id) CLUSTER_ID="$2"; shift 2 ;;
    --format-only) FORMAT_ONLY=1; shift ;;
    -h|--help) usage ;;
    *) echo "kafka-run.sh: unknown argument $1" >&2; usage ;;
  esac
done
[[ -n "$PORT" && -n "$CPORT" && -n "$DIR" ]] || usage

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIBS="$("$HERE/kafka-dist.sh")"
JAVA="${JAVA:-java}"
mkdir -p "$DIR/data" "$DIR/logs"
DIR="$(cd "$DIR" && pwd)"

# A single node cannot hold Kafka's default of three replicas for its internal topics; a cluster keeps them.
if [[ -z "$VOTERS" ]]; then
  VOTERS="$NODE_ID@127.0.0.1:$CPORT"
  INTERNAL_RF="offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1"
else
  INTERNAL_RF=""
fi

cat > "$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.voters=$VOTERS
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=1
$INTERNAL_RF
group.initial.rebalance.delay.ms=0
PROPS

LEVEL="${KAFKA_LOG_LEVEL:-WARN}"
cat > "$DIR/log4j2.properties" <<L4J
status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c{1})%n
rootLogger.level = $LEVEL
rootLogger.appenderRef.err.ref = STDERR
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
L4J

JVM=(${KAFKA_HEAP_OPTS:--Xmx1g -Xms256m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
     "-Dlog4j2.configurationFile=$DIR/log4j2.properties" "-Dkafka.logs.dir=$DIR/logs" ${KAFKA_JVM_OPTS:-})

if [[ ! -f "$DIR/data/meta.properties" ]]; then
  # Never an id starting with '-' (as Kafka's Uuid.randomUuid): kafka-storage would read it as an option.
  if [[ -z "$CLUSTER_ID" ]]; then
    CLUSTER_ID="-"
    while [[ "$CLUSTER_ID" == -* ]]; do
      CLUSTER_ID="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
  fi
  "$JAVA" "${JVM[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format \
    -t "$CLUSTER_ID" -c "$DIR/server.properties" >"$DIR/logs/format.log" 2>&1 || {
      cat "$DIR/logs/format.log" >&2; echo "kafka-run.sh: storage format failed" >&2; exit 1; }
fi

[[ -z "$FORMAT_ONLY" ]] || exit 0
exec "$JAVA" "${JVM[@]}" -cp "$LIBS/*" kafka.Kafka "$DIR/server.properties" "${OVERRIDES[@]}"
