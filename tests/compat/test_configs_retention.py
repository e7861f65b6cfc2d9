"""Topic configs (AlterConfigs, IncrementalAlterConfigs, DescribeConfigs sources), retention,
DeleteRecords and log compaction, through confluent-kafka's AdminClient, producer and consumer.

The same tests run against Apache Kafka with COMPAT_TARGET=kafka (the oracle). Kafka 4 refuses
segment.bytes below 1 MiB, so segments here are rolled by time (segment.ms) instead.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    OffsetSpec,
)

from conftest import TARGET, find_strom_bin
from util import OP_TIMEOUT, admin, consume_all, create_topic, produce_all, producer, wait_for_topic

# The background tasks run every few hundred milliseconds in these tests; Kafka's first retention
# pass also waits for log.initial.task.delay.ms (30 s by default).
FAST = {
    "log.retention.check.interval.ms": "300",
    "log.initial.task.delay.ms": "0",
    "log.cleaner.backoff.ms": "200",
}


def describe(a, topic: str) -> dict:
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return a.describe_configs([res], request_timeout=OP_TIMEOUT)[res].result(timeout=OP_TIMEOUT)


def incremental(a, topic: str, entries: list[ConfigEntry], validate_only: bool = False):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)
    return a.incremental_alter_configs([res], request_timeout=OP_TIMEOUT,
                                       validate_only=validate_only)[res].result(timeout=OP_TIMEOUT)


def op(name: str, value: str | None, kind=AlterConfigOpType.SET) -> ConfigEntry:
    return ConfigEntry(name, value, incremental_operation=kind)


def error_code(exc: KafkaException) -> int:
    return exc.args[0].code()


def eventually(f, timeout: float = 30.0):
    """f() once it stops raising KafkaException (Kafka needs a moment after a restart)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return f()
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def list_offset(a, topic: str, spec, partition: int = 0) -> int:
    tp = TopicPartition(topic, partition)
    return a.list_offsets({tp: spec}, request_timeout=OP_TIMEOUT)[tp].result(timeout=OP_TIMEOUT).offset


# --------------------------------------------------------------------------- configs


def test_incremental_alter_configs_set_delete_append_subtract(server, topic):
    a = admin(server.bootstrap)
    create_topic(server.bootstrap, topic, 2)
    incremental(a, topic, [op("retention.ms", "3600000"), op("cleanup.policy", "compact"),
                           op("min.cleanable.dirty.ratio", "0.25")])
    cfg = describe(a, topic)
    for k, v in {"retention.ms": "3600000", "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.25"}.items():
        assert cfg[k].value == v, k
        assert cfg[k].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, (k, cfg[k].source)
        assert not cfg[k].is_default
    assert cfg["retention.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert cfg["retention.bytes"].value == "-1"

    incremental(a, topic, [op("cleanup.policy", "delete", AlterConfigOpType.APPEND)])
    assert describe(a, topic)["cleanup.policy"].value == "compact,delete"
    incremental(a, topic, [op("cleanup.policy", "compact", AlterConfigOpType.SUBTRACT)])
    assert describe(a, topic)["cleanup.policy"].value == "delete"

    # DELETE goes back to the default; keys not named keep their values.
    incremental(a, topic, [op("retention.ms", None, AlterConfigOpType.DELETE)])
    cfg = describe(a, topic)
    assert cfg["retention.ms"].value == "604800000"
    assert cfg["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert cfg["min.cleanable.dirty.ratio"].value == "0.25"

    # validate_only checks but changes nothing.
    incremental(a, topic, [op("retention.ms", "1000")], validate_only=True)
    assert describe(a, topic)["retention.ms"].value == "604800000"


def test_bad_configs_are_refused_per_resource(server, topic):
    a = admin(server.bootstrap)
    create_topic(server.bootstrap, topic, 1)
    other = topic + "-ok"
    create_topic(server.bootstrap, other, 1)
    bad_cases = [
        [op("no.such.config", "1")],
        [op("retention.ms", "soon")],
        [op("min.cleanable.dirty.ratio", "1.5")],
        [op("cleanup.policy", "sometimes")],
        [op("retention.ms", "5000"), op("segment.bytes", "100")],  # below Kafka 4's 1 MiB
        [op("retention.ms", "1000", AlterConfigOpType.APPEND)],  # not a list
    ]
    for entries in bad_cases:
        with pytest.raises(KafkaException) as ei:
            incremental(a, topic, entries)
        assert error_code(ei.value) == KafkaError.INVALID_CONFIG, (entries, ei.value.args[0])
    cfg = describe(a, topic)
    assert cfg["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value, "nothing of a refused resource applies"

    # One good and one bad resource in the same request: each gets its own answer.
    good = ConfigResource(ConfigResource.Type.TOPIC, other, incremental_configs=[op("retention.ms", "7200000")])
    bad = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[op("retention.ms", "-7")])
    fs = a.incremental_alter_configs([good, bad], request_timeout=OP_TIMEOUT)
    fs[good].result(timeout=OP_TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[bad].result(timeout=OP_TIMEOUT)
    assert error_code(ei.value) == KafkaError.INVALID_CONFIG
    assert "retention.ms" in str(ei.value.args[0])
    assert describe(a, other)["retention.ms"].value == "7200000"

    missing = ConfigResource(ConfigResource.Type.TOPIC, topic + "-missing",
                             incremental_configs=[op("retention.ms", "1000")])
    with pytest.raises(KafkaException) as ei:
        a.incremental_alter_configs([missing], request_timeout=OP_TIMEOUT)[missing].result(timeout=OP_TIMEOUT)
    assert error_code(ei.value) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_legacy_alter_configs_replaces_the_whole_set(server, topic):
    a = admin(server.bootstrap)
    create_topic(server.bootstrap, topic, 1, {"retention.ms": "3600000"})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.bytes": "1048576000"})
    a.alter_configs([res], request_timeout=OP_TIMEOUT)[res].result(timeout=OP_TIMEOUT)
    cfg = describe(a, topic)
    assert cfg["retention.bytes"].value == "1048576000"
    assert cfg["retention.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value, "not in the new set: removed"

    bad = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.ms": "x"})
    with pytest.raises(KafkaException) as ei:
        a.alter_configs([bad], request_timeout=OP_TIMEOUT)[bad].result(timeout=OP_TIMEOUT)
    assert error_code(ei.value) == KafkaError.INVALID_CONFIG


def test_configs_survive_a_restart_and_broker_defaults_show_their_source(server_factory, topic):
    srv = server_factory(overrides={"log.retention.ms": "86400000"})
    a = admin(srv.bootstrap)
    create_topic(srv.bootstrap, topic, 1)
    cfg = describe(a, topic)
    assert cfg["retention.ms"].value == "86400000"
    assert cfg["retention.ms"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    incremental(a, topic, [op("cleanup.policy", "compact,delete"), op("delete.retention.ms", "1000")])
    srv.restart()
    wait_for_topic(srv.bootstrap, topic, 1)
    a = admin(srv.bootstrap)
    cfg = eventually(lambda: describe(a, topic))
    assert cfg["cleanup.policy"].value == "compact,delete"
    assert cfg["delete.retention.ms"].value == "1000"
    assert cfg["delete.retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def test_dynamic_broker_config_becomes_the_topic_default(server_factory, topic):
    srv = server_factory()
    a = admin(srv.bootstrap)
    create_topic(srv.bootstrap, topic, 1)
    broker = ConfigResource(ConfigResource.Type.BROKER, "1",
                            incremental_configs=[op("log.retention.ms", "7200000")])
    a.incremental_alter_configs([broker], request_timeout=OP_TIMEOUT)[broker].result(timeout=OP_TIMEOUT)
    deadline = time.monotonic() + 15
    while True:  # Kafka applies dynamic broker configs asynchronously
        cfg = describe(a, topic)
        if cfg["retention.ms"].value == "7200000" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert cfg["retention.ms"].value == "7200000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    res = ConfigResource(ConfigResource.Type.BROKER, "1")
    bcfg = a.describe_configs([res], request_timeout=OP_TIMEOUT)[res].result(timeout=OP_TIMEOUT)
    assert bcfg["log.retention.ms"].value == "7200000"
    assert bcfg["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value


# --------------------------------------------------------------------------- retention


def produce_spread(bootstrap: str, topic: str, rounds: int, per_round: int, gap_s: float,
                   key=lambda r, i: None, value=lambda r, i: b"v%d-%d" % (r, i)) -> None:
    """Produce `rounds` groups of records `gap_s` apart, so segment.ms rolls between them."""
    p = producer(bootstrap, {"linger.ms": 0})
    for r in range(rounds):
        log = produce_all(p, [dict(topic=topic, partition=0, key=key(r, i), value=value(r, i))
                              for i in range(per_round)])
        assert not log.errors, log.errors
        time.sleep(gap_s)


def test_retention_ms_deletes_old_segments(server_factory, topic):
    srv = server_factory(overrides=FAST)
    a = admin(srv.bootstrap)
    create_topic(srv.bootstrap, topic, 1, {"segment.ms": "100"})
    produce_spread(srv.bootstrap, topic, rounds=6, per_round=10, gap_s=0.25)
    end = list_offset(a, topic, OffsetSpec.latest())
    assert end == 60
    assert list_offset(a, topic, OffsetSpec.earliest()) == 0
    time.sleep(1.5)  # the data is now older than the retention.ms set next
    incremental(a, topic, [op("retention.ms", "1000")])
    deadline = time.monotonic() + 30
    earliest = 0
    while time.monotonic() < deadline:
        earliest = list_offset(a, topic, OffsetSpec.earliest())
        if earliest >= 50:
            break
        time.sleep(0.2)
    # Every closed segment is gone (Kafka also rolls and deletes the expired active segment).
    assert 50 <= earliest <= 60, earliest
    got = consume_all(srv.bootstrap, topic, 1)[0]
    assert [m.offset() for m in got] == list(range(earliest, 60))


def test_delete_records_moves_the_log_start_offset(server_factory, topic):
    srv = server_factory()
    a = admin(srv.bootstrap)
    create_topic(srv.bootstrap, topic, 1)
    log = produce_all(producer(srv.bootstrap), [dict(topic=topic, partition=0, value=b"%d" % i) for i in range(100)])
    assert not log.errors
    tp = TopicPartition(topic, 0, 40)
    res = a.delete_records([tp], request_timeout=OP_TIMEOUT)[tp].result(timeout=OP_TIMEOUT)
    assert res.low_watermark == 40
    assert list_offset(a, topic, OffsetSpec.earliest()) == 40
    got = consume_all(srv.bootstrap, topic, 1)[0]
    assert [m.offset() for m in got] == list(range(40, 100))

    # Past the high watermark: OFFSET_OUT_OF_RANGE.
    far = TopicPartition(topic, 0, 101)
    with pytest.raises(KafkaException) as ei:
        a.delete_records([far], request_timeout=OP_TIMEOUT)[far].result(timeout=OP_TIMEOUT)
    assert error_code(ei.value) == KafkaError.OFFSET_OUT_OF_RANGE

    # A consumer positioned below the start is reset (auto.offset.reset=earliest) to it.
    from util import consumer
    c = consumer(srv.bootstrap, {"auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 10)])
        first = None
        deadline = time.monotonic() + OP_TIMEOUT
        while first is None and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and not m.error():
                first = m.offset()
        assert first == 40
    finally:
        c.close()

    srv.restart()
    wait_for_topic(srv.bootstrap, topic, 1)
    a = admin(srv.bootstrap)
    assert eventually(lambda: list_offset(a, topic, OffsetSpec.earliest())) == 40
    # -1 means "up to the high watermark".
    hw = TopicPartition(topic, 0, -1)
    res = a.delete_records([hw], request_timeout=OP_TIMEOUT)[hw].result(timeout=OP_TIMEOUT)
    assert res.low_watermark == 100
    assert list_offset(a, topic, OffsetSpec.earliest()) == 100


# --------------------------------------------------------------------------- compaction


def test_compacted_topic_keeps_exactly_the_latest_value_per_key(server_factory, topic):
    srv = server_factory(overrides=FAST)
    create_topic(srv.bootstrap, topic, 1, {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "86400000",
    })
    keys = 20
    rounds = 8
    produce_spread(srv.bootstrap, topic, rounds=rounds, per_round=keys, gap_s=0.2,
                   key=lambda r, i: b"key-%02d" % i, value=lambda r, i: b"round-%d" % r)
    # One more record rolls the last round's segment, so all of it is cleanable.
    log = produce_all(producer(srv.bootstrap), [dict(topic=topic, partition=0, key=b"zz-last", value=b"end")])
    assert not log.errors
    total = keys * rounds + 1

    # A record without a key is refused on a compacted topic.
    nokey = produce_all(producer(srv.bootstrap, {"retries": 0}), [dict(topic=topic, partition=0, value=b"x")])
    assert len(nokey.errors) == 1
    assert nokey.errors[0][0].code() == KafkaError.INVALID_RECORD, nokey.errors[0][0]

    expected = {b"key-%02d" % i: b"round-%d" % (rounds - 1) for i in range(keys)}
    expected[b"zz-last"] = b"end"
    deadline = time.monotonic() + 90
    got = []
    while time.monotonic() < deadline:
        got = consume_all(srv.bootstrap, topic, 1)[0]
        if len(got) == len(expected):
            break
        time.sleep(0.5)
    assert len(got) < total
    assert {m.key(): m.value() for m in got} == expected
    assert len(got) == len(expected), f"{len(got)} records left, {len(expected)} keys"
    # Offsets are unchanged: the latest records keep theirs.
    last_round_first = keys * (rounds - 1)
    assert sorted(m.offset() for m in got) == list(range(last_round_first, total))


# --------------------------------------------------------------------------- CLI


def test_cli_configs_alter_and_describe(server, topic):
    binary = find_strom_bin()
    if binary is None:
        pytest.skip("strom binary not built")
    create_topic(server.bootstrap, topic, 1)

    def run(*args):
        r = subprocess.run([str(binary), "configs", *args, "--bootstrap-server", server.bootstrap],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    out = run("alter", "--topic", topic, "--add-config", "retention.ms=3600000,cleanup.policy=[compact,delete]")
    assert "Completed updating config" in out
    out = run("describe", "--topic", topic)
    assert "retention.ms=3600000" in out and "cleanup.policy=compact,delete" in out, out
    run("alter", "--entity-type", "topics", "--entity-name", topic, "--delete-config", "retention.ms")
    out = run("describe", "--topic", topic)
    assert "retention.ms" not in out and "cleanup.policy=compact,delete" in out, out
    out = run("describe", "--topic", topic, "--all")
    assert "retention.ms=604800000" in out and "DEFAULT_CONFIG" in out, out
    r = subprocess.run([str(binary), "configs", "alter", "--topic", topic, "--add-config", "retention.ms=never",
                        "--bootstrap-server", server.bootstrap], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "retention.ms" in r.stderr, r.stderr
    out = run("describe", "--broker", "1")
    assert "Dynamic configs for broker 1" in out
