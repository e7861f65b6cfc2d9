"""confluent-kafka (librdkafka) against the broker: produce/fetch, codecs, sizes, admin, offsets, errors."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from util import (
    OP_TIMEOUT,
    admin,
    consume_all,
    consume_range,
    consumer,
    create_topic,
    produce_all,
    producer,
    wait_for_topic,
)

NOW_MS = int(time.time() * 1000)


# --------------------------------------------------------------------------- produce / fetch


def test_round_trip_keys_headers_timestamps_nulls(server, topic):
    create_topic(server.bootstrap, topic, 1)
    base = NOW_MS - 3_600_000
    all_bytes = bytes(range(256))
    records = [
        dict(key=b"k1", value=b"v1", headers=[("h", b"a"), ("h", b"b"), ("nil", None)], timestamp=base + 1),
        dict(key=None, value=b"no key", timestamp=base + 2),
        dict(key=b"tombstone", value=None, timestamp=base + 3),
        dict(key=None, value=None, headers=[("only", b"header")], timestamp=base + 4),
        dict(key=b"", value=b"", headers=[("", b"")], timestamp=base + 5),
        dict(key=all_bytes, value=all_bytes * 4, headers=[("bin", all_bytes)], timestamp=base - 10_000),
        dict(key="ключ".encode(), value="значение ✓".encode(), timestamp=base + 7),
    ]
    log = produce_all(producer(server.bootstrap), [dict(topic=topic, partition=0, **r) for r in records])
    assert not log.errors, log.errors
    assert sorted(m.offset() for m in log.ok) == list(range(len(records)))

    got = consume_range(server.bootstrap, topic, 0, 0, len(records))
    assert [m.offset() for m in got] == list(range(len(records)))
    for want, m in zip(records, got):
        assert m.key() == want["key"], m.offset()
        assert m.value() == want["value"], m.offset()
        assert (m.headers() or []) == want.get("headers", []), m.offset()
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, want["timestamp"]), m.offset()
    # empty and null must stay distinct
    assert got[4].key() == b"" and got[1].key() is None
    assert got[4].value() == b"" and got[2].value() is None


def test_log_append_time_topic_overrides_producer_timestamp(server, topic):
    create_topic(server.bootstrap, topic, 1, {"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    log = produce_all(producer(server.bootstrap),
                      [dict(topic=topic, value=b"x%d" % i, timestamp=1_000_000 + i) for i in range(3)])
    after = int(time.time() * 1000)
    assert not log.errors
    got = consume_range(server.bootstrap, topic, 0, 0, 3)
    for m in got:
        ts_type, ts = m.timestamp()
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME
        assert before - 1000 <= ts <= after + 1000, (ts, before, after)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(server, topic, codec):
    create_topic(server.bootstrap, topic, 2)
    p = producer(server.bootstrap, {"compression.type": codec, "linger.ms": 50, "batch.num.messages": 500})
    records = [
        dict(topic=topic, partition=i % 2, key=b"key-%d" % i,
             value=(b"%s-%06d " % (codec.encode(), i)) * (1 + i % 40),
             headers=[("i", str(i).encode())])
        for i in range(2000)
    ]
    log = produce_all(p, records)
    assert not log.errors, log.errors[:3]
    got = consume_all(server.bootstrap, topic, 2)
    for part in (0, 1):
        want = [r for r in records if r["partition"] == part]
        msgs = got[part]
        assert [m.offset() for m in msgs] == list(range(len(want)))
        assert [(m.key(), m.value(), m.headers()) for m in msgs] == [
            (r["key"], r["value"], r["headers"]) for r in want
        ]


def test_one_megabyte_records(server, topic):
    create_topic(server.bootstrap, topic, 1, {"max.message.bytes": str(3 * 1024 * 1024)})
    p = producer(server.bootstrap, {"message.max.bytes": 4 * 1024 * 1024, "linger.ms": 0})
    values = [os.urandom(1024 * 1024), os.urandom(1024 * 1024 + 1000), b"small", os.urandom(1024 * 1024)]
    log = produce_all(p, [dict(topic=topic, key=b"big%d" % i, value=v) for i, v in enumerate(values)])
    assert not log.errors, log.errors
    got = consume_range(server.bootstrap, topic, 0, 0, len(values),
                        conf={"fetch.max.bytes": 1024 * 1024, "max.partition.fetch.bytes": 512 * 1024})
    assert [hashlib.sha256(m.value()).hexdigest() for m in got] == [
        hashlib.sha256(v).hexdigest() for v in values
    ]


def test_record_larger_than_topic_limit_is_rejected(server, topic):
    # Default topic limit = broker message.max.bytes (1048588); a 1.5 MB record must be refused.
    create_topic(server.bootstrap, topic, 1)
    p = producer(server.bootstrap, {"message.max.bytes": 4 * 1024 * 1024, "linger.ms": 0})
    log = produce_all(p, [dict(topic=topic, value=os.urandom(1536 * 1024)), dict(topic=topic, value=b"ok")])
    # The small record is produced on its own: batches hold one record here (linger 0, flushed in order).
    assert [e.code() for e, _ in log.errors] == [KafkaError.MSG_SIZE_TOO_LARGE], log.errors
    got = consume_range(server.bootstrap, topic, 0, 0, 1)
    assert got[0].value() == b"ok"


def test_hundred_partitions(server, topic):
    n = 100
    create_topic(server.bootstrap, topic, n)
    md = admin(server.bootstrap).list_topics(topic=topic, timeout=10)
    assert sorted(md.topics[topic].partitions) == list(range(n))
    records = [dict(topic=topic, partition=p, key=b"p%d" % p, value=b"%d/%d" % (p, i))
               for i in range(5) for p in range(n)]
    log = produce_all(producer(server.bootstrap), records)
    assert not log.errors
    assert sorted({m.partition() for m in log.ok}) == list(range(n))
    got = consume_all(server.bootstrap, topic, n)
    for p in range(n):
        assert [m.value() for m in got[p]] == [b"%d/%d" % (p, i) for i in range(5)], p
        assert [m.offset() for m in got[p]] == list(range(5))


@pytest.mark.slow
def test_hundred_thousand_records_in_order(server, topic):
    parts, total = 4, 100_000
    create_topic(server.bootstrap, topic, parts)
    p = producer(server.bootstrap, {"linger.ms": 20, "compression.type": "lz4",
                                    "queue.buffering.max.messages": 200_000})
    log = produce_all(p, [dict(topic=topic, partition=i % parts, key=b"%d" % i, value=b"record-%08d" % i)
                          for i in range(total)], timeout=120)
    assert not log.errors
    assert len(log.ok) == total
    got = consume_all(server.bootstrap, topic, parts, timeout=120)
    assert sum(len(v) for v in got.values()) == total
    for part in range(parts):
        msgs = got[part]
        assert [m.offset() for m in msgs] == list(range(len(msgs))), part
        assert [int(m.key()) for m in msgs] == list(range(part, total, parts)), part


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(server, topic, acks):
    create_topic(server.bootstrap, topic, 1)
    log = produce_all(producer(server.bootstrap, {"acks": acks}),
                      [dict(topic=topic, value=b"acks=%s #%d" % (acks.encode(), i)) for i in range(200)])
    assert not log.errors
    assert len(log.ok) == 200
    if acks != "0":
        # With acks the broker tells the offset; with acks=0 nobody answers.
        assert [m.offset() for m in log.ok] == list(range(200))
    got = consume_range(server.bootstrap, topic, 0, 0, 200)
    assert [m.value() for m in got] == [b"acks=%s #%d" % (acks.encode(), i) for i in range(200)]


def test_assign_and_fetch_from_offset(server, topic):
    create_topic(server.bootstrap, topic, 3)
    produce_all(producer(server.bootstrap), [dict(topic=topic, partition=1, value=b"m%d" % i) for i in range(20)])
    got = consume_range(server.bootstrap, topic, 1, 7, 13)
    assert [m.offset() for m in got] == list(range(7, 20))
    assert [m.value() for m in got] == [b"m%d" % i for i in range(7, 20)]
    assert {m.partition() for m in got} == {1}


def test_fetch_out_of_range_offset_resets_to_earliest(server, topic):
    create_topic(server.bootstrap, topic, 1)
    produce_all(producer(server.bootstrap), [dict(topic=topic, value=b"r%d" % i) for i in range(5)])
    # Offset 1000 is past the end: the broker answers OFFSET_OUT_OF_RANGE, the client resets.
    got = consume_range(server.bootstrap, topic, 0, 1000, 5, conf={"auto.offset.reset": "earliest"})
    assert [m.offset() for m in got] == list(range(5))


def test_fetch_out_of_range_offset_is_reported(server, topic):
    create_topic(server.bootstrap, topic, 1)
    produce_all(producer(server.bootstrap), [dict(topic=topic, value=b"r%d" % i) for i in range(3)])
    c = consumer(server.bootstrap, {"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 50)])
        deadline = time.monotonic() + OP_TIMEOUT
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and m.error() and m.error().code() != KafkaError._PARTITION_EOF:
                err = m.error()
            elif m is not None and not m.error():
                pytest.fail(f"got a record at offset {m.offset()} from an out-of-range fetch")
        assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
        assert "out of range" in err.str().lower() or "OFFSET_OUT_OF_RANGE" in err.str(), err.str()
    finally:
        c.close()


def test_fetch_long_poll_wakes_on_produce(server, topic):
    create_topic(server.bootstrap, topic, 1)
    # A consumer parked on an empty partition (fetch.wait.max.ms=8000) must get a record produced
    # later promptly: the broker has to answer the parked fetch when data arrives, not at the
    # deadline. And while nothing arrives, it must really wait (not answer empty fetches at once).
    stats = {}

    def on_stats(js):
        for b in json.loads(js).get("brokers", {}).values():
            if b.get("nodeid", -1) >= 0:
                stats["fetches"] = b.get("req", {}).get("Fetch", 0)

    c = consumer(server.bootstrap, {"fetch.wait.max.ms": 8000, "fetch.min.bytes": 1,
                                    "statistics.interval.ms": 200, "stats_cb": on_stats})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        t_end = time.monotonic() + 2.5
        while time.monotonic() < t_end:
            m = c.poll(0.1)
            assert m is None or m.error(), "partition should be empty"
        fetches_while_idle = stats.get("fetches")
        acked = {}

        def produce_later():
            p = producer(server.bootstrap, {"linger.ms": 0})
            p.produce(topic, value=b"late", on_delivery=lambda e, m: acked.setdefault("t", time.monotonic()))
            p.flush(OP_TIMEOUT)

        t = threading.Thread(target=produce_later)
        t.start()
        got = None
        deadline = time.monotonic() + 20
        while got is None and time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is not None and not m.error():
                got = m
                received = time.monotonic()
        t.join(OP_TIMEOUT)
        assert got is not None, "the record produced later never arrived"
        assert got.value() == b"late" and got.offset() == 0
        assert "t" in acked
        lag = received - acked["t"]
        assert lag < 3.0, f"record arrived {lag:.1f}s after its ack: the parked fetch was not woken"
        assert fetches_while_idle is not None, "no librdkafka statistics seen"
        assert 1 <= fetches_while_idle <= 3, (
            f"{fetches_while_idle} Fetch requests in 2.5 s on an empty partition with fetch.wait.max.ms=8000: "
            "the broker does not hold empty fetches for max_wait_ms")
    finally:
        c.close()


def test_produce_to_invalid_topic_name_fails(server):
    p = producer(server.bootstrap, {"message.timeout.ms": 15_000})
    bad = "bad topic name with spaces!"
    log = produce_all(p, [dict(topic=bad, value=b"x")], timeout=30)
    assert not log.ok
    assert len(log.errors) == 1
    assert log.errors[0][0].code() == KafkaError.TOPIC_EXCEPTION, log.errors[0][0]


# --------------------------------------------------------------------------- admin


def test_admin_create_validate_only_creates_nothing(server, topic):
    a = admin(server.bootstrap)
    fs = a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)],
                         validate_only=True, request_timeout=OP_TIMEOUT)
    fs[topic].result(timeout=OP_TIMEOUT)
    time.sleep(0.5)
    md = a.list_topics(timeout=10)
    assert topic not in md.topics
    # and a real create afterwards works
    create_topic(server.bootstrap, topic, 3)


def test_admin_create_errors(server, topic):
    a = admin(server.bootstrap)
    create_topic(server.bootstrap, topic, 1)
    cases = {
        topic: KafkaError.TOPIC_ALREADY_EXISTS,
        "bad/name": KafkaError.TOPIC_EXCEPTION,
        "x" * 250: KafkaError.TOPIC_EXCEPTION,
        "..": KafkaError.TOPIC_EXCEPTION,
    }
    fs = a.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in cases],
                         request_timeout=OP_TIMEOUT)
    for t, code in cases.items():
        with pytest.raises(KafkaException) as ei:
            fs[t].result(timeout=OP_TIMEOUT)
        assert ei.value.args[0].code() == code, (t[:20], ei.value.args[0])
    fs = a.create_topics([NewTopic(topic + "-rf", num_partitions=1, replication_factor=3)],
                         request_timeout=OP_TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[topic + "-rf"].result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR, ei.value.args[0]


def test_admin_create_with_configs_and_describe_configs(server, topic):
    a = admin(server.bootstrap)
    cfg = {"retention.ms": "123456789", "cleanup.policy": "compact", "max.message.bytes": "2000000"}
    create_topic(server.bootstrap, topic, 2, cfg)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = a.describe_configs([res], request_timeout=OP_TIMEOUT)[res].result(timeout=OP_TIMEOUT)
    for k, v in cfg.items():
        assert entries[k].value == v, k
        assert entries[k].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, (k, entries[k].source)
        assert not entries[k].is_default, k
    # Defaults a user relies on, as Kafka reports them.
    assert entries["segment.bytes"].value == "1073741824"
    assert entries["min.insync.replicas"].value == "1"
    assert entries["compression.type"].value == "producer"
    assert entries["message.timestamp.type"].value == "CreateTime"
    assert entries["retention.bytes"].value == "-1"
    assert entries["segment.bytes"].is_default

    other = ConfigResource(ConfigResource.Type.TOPIC, topic + "-missing")
    with pytest.raises(KafkaException) as ei:
        a.describe_configs([other], request_timeout=OP_TIMEOUT)[other].result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, ei.value.args[0]


def test_admin_create_invalid_config_rejected(server, topic):
    a = admin(server.bootstrap)
    fs = a.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "sometimes"})],
                         request_timeout=OP_TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG, ei.value.args[0]
    fs = a.create_topics([NewTopic(topic, 1, 1, config={"no.such.config": "1"})], request_timeout=OP_TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG, ei.value.args[0]
    assert topic not in a.list_topics(timeout=10).topics


def test_admin_describe_via_list_topics_and_describe_cluster(server, topic):
    a = admin(server.bootstrap)
    create_topic(server.bootstrap, topic, 4)
    md = a.list_topics(timeout=10)
    assert topic in md.topics
    assert len(md.brokers) == 1
    (broker,) = md.brokers.values()
    assert (broker.host, broker.port) == ("127.0.0.1", server.port)
    t = md.topics[topic]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2, 3]
    for p in t.partitions.values():
        assert p.leader == broker.id
        assert list(p.replicas) == [broker.id]
        assert list(p.isrs) == [broker.id]
    assert md.cluster_id
    assert md.controller_id == broker.id

    desc = a.describe_cluster(request_timeout=OP_TIMEOUT).result(timeout=OP_TIMEOUT)
    assert desc.cluster_id == md.cluster_id
    assert [(n.id, n.host, n.port) for n in desc.nodes] == [(broker.id, "127.0.0.1", server.port)]
    assert desc.controller is not None and desc.controller.id == broker.id


def test_admin_describe_topics(server, topic):
    from confluent_kafka import TopicCollection

    a = admin(server.bootstrap)
    create_topic(server.bootstrap, topic, 3)
    res = a.describe_topics(TopicCollection([topic]), request_timeout=OP_TIMEOUT)
    d = res[topic].result(timeout=OP_TIMEOUT)
    assert d.name == topic
    assert not d.is_internal
    assert [p.id for p in d.partitions] == [0, 1, 2]
    assert all(p.leader is not None and len(p.replicas) == 1 and len(p.isr) == 1 for p in d.partitions)
    assert d.topic_id is not None and str(d.topic_id) != "AAAAAAAAAAAAAAAAAAAAAA"
    missing = a.describe_topics(TopicCollection([topic + "-missing"]), request_timeout=OP_TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        missing[topic + "-missing"].result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, ei.value.args[0]


def test_admin_delete_topics(server, topic):
    a = admin(server.bootstrap)
    create_topic(server.bootstrap, topic, 2)
    produce_all(producer(server.bootstrap), [dict(topic=topic, value=b"x")])
    a.delete_topics([topic], request_timeout=OP_TIMEOUT)[topic].result(timeout=OP_TIMEOUT)
    deadline = time.monotonic() + OP_TIMEOUT
    while time.monotonic() < deadline and topic in a.list_topics(timeout=10).topics:
        time.sleep(0.2)
    assert topic not in a.list_topics(timeout=10).topics
    with pytest.raises(KafkaException) as ei:
        a.delete_topics([topic], request_timeout=OP_TIMEOUT)[topic].result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, ei.value.args[0]


def test_admin_delete_then_recreate_starts_empty(server, topic):
    a = admin(server.bootstrap)
    create_topic(server.bootstrap, topic, 1)
    produce_all(producer(server.bootstrap), [dict(topic=topic, value=b"old%d" % i) for i in range(5)])
    a.delete_topics([topic], request_timeout=OP_TIMEOUT)[topic].result(timeout=OP_TIMEOUT)
    deadline = time.monotonic() + OP_TIMEOUT
    while True:
        try:
            create_topic(server.bootstrap, topic, 1)
            break
        except KafkaException as e:
            # Kafka may still be deleting: TOPIC_ALREADY_EXISTS / marked for deletion, retry.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    lo, hi = consumer(server.bootstrap).get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    assert (lo, hi) == (0, 0)


def test_admin_create_partitions(server, topic):
    a = admin(server.bootstrap)
    create_topic(server.bootstrap, topic, 2)
    a.create_partitions([NewPartitions(topic, 5)], request_timeout=OP_TIMEOUT)[topic].result(timeout=OP_TIMEOUT)
    wait_for_topic(server.bootstrap, topic, 5)
    log = produce_all(producer(server.bootstrap), [dict(topic=topic, partition=4, value=b"in new partition")])
    assert not log.errors and log.ok[0].partition() == 4 and log.ok[0].offset() == 0
    assert consume_range(server.bootstrap, topic, 4, 0, 1)[0].value() == b"in new partition"
    # shrinking is refused
    fs = a.create_partitions([NewPartitions(topic, 3)], request_timeout=OP_TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS, ei.value.args[0]
    fs = a.create_partitions([NewPartitions(topic + "-missing", 3)], request_timeout=OP_TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[topic + "-missing"].result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, ei.value.args[0]


# --------------------------------------------------------------------------- offsets


def test_list_offsets(server, topic):
    a = admin(server.bootstrap)
    create_topic(server.bootstrap, topic, 2)
    base = NOW_MS - 3_600_000
    deltas = [1000, 5000, 3000, 7000, 2000]  # out of order on purpose
    log = produce_all(producer(server.bootstrap, {"linger.ms": 0}),
                      [dict(topic=topic, partition=0, value=b"%d" % d, timestamp=base + d) for d in deltas])
    assert not log.errors
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    def lo(spec, tp=tp0):
        r = a.list_offsets({tp: spec}, request_timeout=OP_TIMEOUT)[tp].result(timeout=OP_TIMEOUT)
        return r.offset, r.timestamp

    assert lo(OffsetSpec.earliest())[0] == 0
    assert lo(OffsetSpec.latest())[0] == 5
    # first offset whose timestamp >= the asked one
    assert lo(OffsetSpec.for_timestamp(base + 2500)) == (1, base + 5000)
    assert lo(OffsetSpec.for_timestamp(base + 5000)) == (1, base + 5000)
    assert lo(OffsetSpec.for_timestamp(base + 6000)) == (3, base + 7000)
    assert lo(OffsetSpec.for_timestamp(base)) == (0, base + 1000)
    # past every record: no offset
    assert lo(OffsetSpec.for_timestamp(base + 99_000))[0] == -1
    assert lo(OffsetSpec.max_timestamp()) == (3, base + 7000)
    # an empty partition
    assert lo(OffsetSpec.earliest(), tp1)[0] == 0
    assert lo(OffsetSpec.latest(), tp1)[0] == 0
    assert lo(OffsetSpec.for_timestamp(base), tp1)[0] == -1
    # the consumer API agrees
    c = consumer(server.bootstrap)
    try:
        assert c.get_watermark_offsets(tp0, timeout=10) == (0, 5)
        (r,) = c.offsets_for_times([TopicPartition(topic, 0, base + 2500)], timeout=10)
        assert r.offset == 1
    finally:
        c.close()


def test_list_offsets_unknown_partition(server, topic):
    # librdkafka looks the partition's leader up in Metadata first; a partition the broker does not
    # list has no leader, so the request fails client-side with _NOENT.
    a = admin(server.bootstrap)
    create_topic(server.bootstrap, topic, 1)
    tp = TopicPartition(topic, 7)
    with pytest.raises(KafkaException) as ei:
        a.list_offsets({tp: OffsetSpec.latest()}, request_timeout=OP_TIMEOUT)[tp].result(timeout=OP_TIMEOUT)
    assert ei.value.args[0].code() == KafkaError._NOENT, ei.value.args[0]


# --------------------------------------------------------------------------- broker overrides


@pytest.fixture(scope="module")
def tuned_server(module_server_factory):
    return module_server_factory({
        "message.max.bytes": str(2 * 1024 * 1024),
        "auto.create.topics.enable": "false",
        "num.partitions": "3",
    })


def test_broker_message_max_bytes_override(tuned_server, topic):
    create_topic(tuned_server.bootstrap, topic, 1)
    p = producer(tuned_server.bootstrap, {"message.max.bytes": 4 * 1024 * 1024, "linger.ms": 0})
    big = os.urandom(1536 * 1024)
    too_big = os.urandom(2 * 1024 * 1024 + 1024)
    log = produce_all(p, [dict(topic=topic, value=big), dict(topic=topic, value=too_big)])
    assert [m.offset() for m in log.ok] == [0]
    assert [e.code() for e, _ in log.errors] == [KafkaError.MSG_SIZE_TOO_LARGE]
    assert consume_range(tuned_server.bootstrap, topic, 0, 0, 1)[0].value() == big


def test_broker_default_partitions_override(tuned_server, topic):
    a = admin(tuned_server.bootstrap)
    # num_partitions=-1 / replication_factor=-1: "use the broker's defaults" (CreateTopics v4+)
    a.create_topics([NewTopic(topic)], request_timeout=OP_TIMEOUT)[topic].result(timeout=OP_TIMEOUT)
    wait_for_topic(tuned_server.bootstrap, topic, 3)


def test_auto_create_disabled_unknown_topic(tuned_server, topic):
    a = admin(tuned_server.bootstrap)
    md = a.list_topics(topic=topic, timeout=10)
    assert md.topics[topic].error is not None
    assert md.topics[topic].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    p = producer(tuned_server.bootstrap, {"message.timeout.ms": 3000, "topic.metadata.propagation.max.ms": 1000})
    log = produce_all(p, [dict(topic=topic, value=b"nowhere")], timeout=30)
    assert not log.ok
    assert [e.code() for e, _ in log.errors] in (
        [KafkaError.UNKNOWN_TOPIC_OR_PART], [KafkaError._UNKNOWN_TOPIC], [KafkaError._MSG_TIMED_OUT]
    ), log.errors
    time.sleep(0.5)
    assert topic not in a.list_topics(timeout=10).topics


def test_auto_create_enabled_by_default(server, topic):
    # The shared broker runs with defaults: auto.create.topics.enable=true, num.partitions=1.
    log = produce_all(producer(server.bootstrap), [dict(topic=topic, value=b"auto")], timeout=60)
    assert not log.errors, log.errors
    md = admin(server.bootstrap).list_topics(topic=topic, timeout=10)
    assert len(md.topics[topic].partitions) == 1
    assert consume_range(server.bootstrap, topic, 0, 0, 1)[0].value() == b"auto"
