"""The Java client (org.apache.kafka:kafka-clients 4.x) against the broker, via tests/compat/java."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, SCRIPTS, TARGET
from util import consume_range, create_topic

JAVA_TIMEOUT = 120


@pytest.fixture(scope="session")
def java_classpath():
    if shutil.which("java") is None:
        pytest.fail("java not found on PATH (the Java compat program needs a JDK 17+)", pytrace=False)
    r = subprocess.run(["bash", str(SCRIPTS / "build-java-compat.sh")], capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
    if r.returncode != 0:
        pytest.fail(f"building tests/compat/java failed:\n{r.stderr[-4000:]}", pytrace=False)
    return r.stdout.strip().splitlines()[-1]


def run_java(cp: str, *args) -> dict:
    cmd = ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
           "-cp", cp, "dev.strom.compat.Compat", *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=JAVA_TIMEOUT, env=dict(os.environ))
    assert r.returncode == 0, f"java {' '.join(map(str, args))} exited {r.returncode}\n--- stderr ---\n{r.stderr[-6000:]}"
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no JSON from java {args}: stdout={r.stdout[-2000:]!r} stderr={r.stderr[-2000:]!r}"
    return json.loads(lines[-1])


def test_java_admin(server, topic, java_classpath):
    out = run_java(java_classpath, "admin", server.bootstrap, topic)
    assert out["create"] == "ok"
    assert out["create_again"] == {"code": 36, "error": "TopicExistsException"}
    assert out["create_invalid_name"] == {"code": 17, "error": "InvalidTopicException"}

    d = out["describe"]
    assert d["name"] == topic and d["internal"] is False
    assert d["topic_id"] and d["topic_id"] != "AAAAAAAAAAAAAAAAAAAAAA"
    assert [p["partition"] for p in d["partitions"]] == [0, 1, 2]
    (node,) = out["cluster"]["nodes"]
    assert (node["host"], node["port"]) == ("127.0.0.1", server.port)
    for p in d["partitions"]:
        assert p["leader"] == node["id"] and p["replicas"] == [node["id"]] and p["isr"] == [node["id"]]
    assert out["describe_missing"] == {"code": 3, "error": "UnknownTopicOrPartitionException"}
    assert out["cluster"]["cluster_id"]
    assert out["cluster"]["controller"] == node["id"]

    base = out["base_ts"]
    o = out["offsets"]
    assert o["earliest"]["offset"] == 0
    assert o["latest"]["offset"] == 5
    assert o["for_ts_2500"] == {"offset": 1, "timestamp": base + 5000}
    assert o["for_ts_6000"] == {"offset": 3, "timestamp": base + 7000}
    assert o["for_ts_future"]["offset"] == -1
    assert o["max_ts"] == {"offset": 3, "timestamp": base + 7000}
    assert o["empty_earliest"]["offset"] == 0 and o["empty_latest"]["offset"] == 0
    assert o["empty_max_ts"]["offset"] == -1

    assert out["delete"] == "ok" and out["gone_after_delete"] is True
    assert out["delete_again"] == {"code": 3, "error": "UnknownTopicOrPartitionException"}


def expected_record(codec: str, i: int, base_ts: int) -> dict:
    return {
        "key": None if i % 7 == 3 else f"k-{i}",
        "value": None if i % 11 == 5 else f"{codec}-{i} " + "x" * (i % 50),
        "headers": [["i", str(i)], ["dup", "a"], ["dup", "b"], ["nil", None]],
        "timestamp": base_ts + i,
        "timestamp_type": "CreateTime",
    }


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_java_produce_consume(server, topic, java_classpath, codec):
    n, parts = 300, 2
    create_topic(server.bootstrap, topic, parts)
    out = run_java(java_classpath, "produce", server.bootstrap, topic, codec, n, parts)
    base = out["base_ts"]
    acks = out["acks"]
    assert len(acks) == n
    for part in range(parts):
        assert [a["offset"] for a in acks if a["partition"] == part] == list(range(n // parts))
    assert [a["timestamp"] for a in acks] == [base + i for i in range(n)]

    # assign + seek, read back with the Java consumer: partition 0 from 0, partition 1 from 40
    for part, start in ((0, 0), (1, 40)):
        got = run_java(java_classpath, "consume", server.bootstrap, topic, part, start, n // parts - start)["records"]
        idx = [i for i in range(n) if i % parts == part][start:]
        assert [r["offset"] for r in got] == list(range(start, n // parts))
        assert [{k: r[k] for k in ("key", "value", "headers", "timestamp", "timestamp_type")} for r in got] == [
            expected_record(codec, i, base) for i in idx
        ]

    # and librdkafka reads the Java client's batches the same way
    msgs = consume_range(server.bootstrap, topic, 1, 0, n // parts)
    for m, i in zip(msgs, [i for i in range(n) if i % parts == 1]):
        want = expected_record(codec, i, base)
        assert m.key() == (want["key"].encode() if want["key"] is not None else None)
        assert m.value() == (want["value"].encode() if want["value"] is not None else None)
        assert m.headers() == [(k, v.encode() if v is not None else None) for k, v in want["headers"]]
        assert m.timestamp()[1] == want["timestamp"]


def test_java_admin_configs(server, topic, java_classpath):
    """createTopics with configs, describeConfigs with sources and synonyms, incrementalAlterConfigs,
    a cluster-wide broker default, deleteRecords: the Java Admin's view."""
    out = run_java(java_classpath, "configs", server.bootstrap, topic)
    if os.environ.get("COMPAT_DUMP"):
        print(json.dumps(out, indent=1))
    invalid = {"code": 40, "error": "InvalidConfigurationException"}
    assert out["create_validate_only_bad"] == invalid
    assert out["create_unknown_config"] == invalid

    def ev(value, source):
        return {"value": value, "source": source, "read_only": False, "sensitive": False}

    c = out["create"]
    assert (c["partitions"], c["replication_factor"]) == (2, 1)
    for cfg in (c["configs"], out["describe"]):
        assert cfg["cleanup.policy"] == ev("compact", "DYNAMIC_TOPIC_CONFIG")
        assert cfg["retention.ms"] == ev("3600000", "DYNAMIC_TOPIC_CONFIG")
        assert cfg["compression.type"] == ev("lz4", "DYNAMIC_TOPIC_CONFIG")
        assert cfg["message.timestamp.after.max.ms"] == ev("3600000", "DEFAULT_CONFIG")
        assert cfg["message.timestamp.before.max.ms"] == ev(str(2**63 - 1), "DEFAULT_CONFIG")
        assert cfg["delete.retention.ms"] == ev("86400000", "DEFAULT_CONFIG")
        # Kafka 4's storage format may set a cluster-wide min.insync.replicas; the value is what counts.
        assert cfg["min.insync.replicas"]["value"] == "1"
    # log.retention.ms has no default of its own in Kafka (log.retention.hours carries it).
    assert out["synonyms_retention_ms"] == [["retention.ms", "3600000", "DYNAMIC_TOPIC_CONFIG"]]
    assert out["synonyms_segment_bytes"] == [["log.segment.bytes", "1073741824", "DEFAULT_CONFIG"]]
    assert out["describe_missing_topic"] == {"code": 3, "error": "UnknownTopicOrPartitionException"}

    after = out["after_alter"]
    assert after["retention.ms"] == ev("7200000", "DYNAMIC_TOPIC_CONFIG")
    assert after["compression.type"]["value"] == "producer"
    assert after["compression.type"]["source"] in ("DEFAULT_CONFIG", "STATIC_BROKER_CONFIG")
    assert after["cleanup.policy"] == ev("compact,delete", "DYNAMIC_TOPIC_CONFIG")
    assert after["max.message.bytes"] == ev("65536", "DYNAMIC_TOPIC_CONFIG")
    assert out["after_subtract"] == ev("delete", "DYNAMIC_TOPIC_CONFIG")
    assert out["after_validate_only"] == ev("7200000", "DYNAMIC_TOPIC_CONFIG")
    assert out["alter_bad_value"] == invalid
    assert out["alter_unknown_name"] == invalid
    assert out["alter_removed_difference"] == invalid
    assert out["alter_missing_topic"] == {"code": 3, "error": "UnknownTopicOrPartitionException"}
    assert out["delete_retention_from_broker_default"] == ev("123456", "DYNAMIC_DEFAULT_BROKER_CONFIG")
    assert out["delete_retention_after_reset"] == ev("86400000", "DEFAULT_CONFIG")

    assert out["delete_records_low_watermark"] == 4
    assert (out["earliest_after_delete"], out["latest_after_delete"]) == (4, 10)
    assert out["delete_records_past_end"] == {"code": 1, "error": "OffsetOutOfRangeException"}
    assert out["delete_records_to_end"] == 10

    b = out["broker"]
    for key in ("log.retention.check.interval.ms", "log.cleaner.threads", "log.cleaner.backoff.ms",
                "log.cleaner.dedupe.buffer.size", "log.message.timestamp.after.max.ms", "compression.type"):
        assert b[key] is not None, f"broker config {key} missing"
        assert b[key]["source"] in ("DEFAULT_CONFIG", "STATIC_BROKER_CONFIG"), (key, b[key])
    assert b["log.message.timestamp.after.max.ms"]["value"] == "3600000"
    assert b["compression.type"]["value"] == "producer"


def test_java_transactions(server, topic, java_classpath):
    """The Java transactional producer: commit, abort, sendOffsetsToTransaction, read_committed and
    read_uncommitted Java consumers, and fencing by a second producer with the same transactional.id."""
    create_topic(server.bootstrap, topic, 2)
    group = f"{topic}-group"
    out = run_java(java_classpath, "txn", server.bootstrap, topic, group, f"{topic}-txn")
    if os.environ.get("COMPAT_DUMP"):
        print(json.dumps(out, indent=1))
    committed = [f"committed-{i}" for i in range(5)]
    aborted = [f"aborted-{i}" for i in range(4)]
    with_offsets = [f"with-offsets-{i}" for i in range(3)]
    assert out["read_committed"] == committed + with_offsets
    assert out["read_uncommitted"] == committed + aborted + with_offsets
    assert out["group_offsets"] == {f"{topic}-1": [42, "m"]}
    # 12 records and 3 markers
    assert out["latest"] == 15
    assert out["zombie_commit"] == {"code": 90, "error": "ProducerFencedException"}
    assert out["successor_commit"] == "ok"
    assert out["read_committed_after_fence"] == committed + with_offsets + ["successor-0", "successor-1"]


EXPIRY = {
    "transactional.id.expiration.ms": "2000",
    "transaction.remove.expired.transaction.cleanup.interval.ms": "300",
    "producer.id.expiration.ms": "2000",
    "producer.id.expiration.check.interval.ms": "300",
}


def test_java_transactional_and_producer_ids_expire(server_factory, topic, java_classpath):
    """transactional.id.expiration.ms and producer.id.expiration.ms, seen through describeTransactions
    and describeProducers; an expired idempotent producer carries on, an expired id starts afresh."""
    srv = server_factory(EXPIRY)
    create_topic(srv.bootstrap, topic, 2)
    out = run_java(java_classpath, "expire", srv.bootstrap, topic, f"{topic}-txn", 5000)
    if os.environ.get("COMPAT_DUMP"):
        print(json.dumps(out, indent=1))
    assert out["txn_state_before"] == "CompleteCommit"
    assert out["producers_before"] == {f"{topic}-0": 1, f"{topic}-1": 1}
    assert out["txn_after"] == {"code": 105, "error": "TransactionalIdNotFoundException"}
    assert out["producers_after"] == {f"{topic}-0": 0, f"{topic}-1": 0}
    assert out["idempotent_send_after"] == {"code": 0, "error": None}
    assert out["latest_1"] == 6
    assert out["new_producer_id"] is True and out["new_epoch"] == 0


def test_java_transaction_protocol_v2(server, topic, java_classpath):
    """Kafka 4's transaction protocol v2 (KIP-890): the Java producer sees transaction.version 2
    finalized, so it sends no AddPartitionsToTxn or AddOffsetsToTxn (the partition leader and the
    group coordinator add them), and every EndTxn bumps its epoch, which describeTransactions shows."""
    create_topic(server.bootstrap, topic, 1)
    out = run_java(java_classpath, "txn-protocol", server.bootstrap, topic, f"{topic}-group", f"{topic}-txn")
    if os.environ.get("COMPAT_DUMP"):
        print(json.dumps(out, indent=1))
    assert out["transaction_version"] == 2
    e0 = out["epochs"][0]
    assert out["epochs"] == [e0, e0 + 1, e0 + 2, e0 + 3]
    assert out["state"] == "CompleteCommit"
    assert out["group_offset"] == 7
    assert out["read_committed"] == ["c1-0", "c1-1", "c1-2", "c2-0", "c2-1"]


def test_java_transaction_protocol_v1_when_configured(server_factory, topic, java_classpath):
    """transaction.version=1 (as a Kafka cluster formatted with it): the same program runs on
    protocol v1, adding partitions itself, and the epoch stays."""
    if TARGET != "strom":
        pytest.skip("strom's transaction.version setting; Kafka sets it when formatting")
    srv = server_factory({"transaction.version": "1"})
    create_topic(srv.bootstrap, topic, 1)
    out = run_java(java_classpath, "txn-protocol", srv.bootstrap, topic, f"{topic}-group", f"{topic}-txn")
    assert out["transaction_version"] == 1
    e0 = out["epochs"][0]
    assert out["epochs"] == [e0] * 4
    assert out["group_offset"] == 7
    assert out["read_committed"] == ["c1-0", "c1-1", "c1-2", "c2-0", "c2-1"]
