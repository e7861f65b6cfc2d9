"""kafka-python (a pure-Python client with its own protocol code) against the broker."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

CLIENT_TIMEOUTS = dict(request_timeout_ms=30_000)


@pytest.fixture
def kadmin(server):
    a = KafkaAdminClient(bootstrap_servers=server.bootstrap, client_id="compat-admin", **CLIENT_TIMEOUTS)
    yield a
    a.close()


def _wait_topic(kadmin, topic, partitions, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        desc = kadmin.describe_topics([topic])
        if desc and desc[0].get("error_code") == 0 and len(desc[0]["partitions"]) == partitions:
            return desc[0]
        time.sleep(0.2)
    raise AssertionError(f"{topic} not visible with {partitions} partitions: {desc}")


def test_producer_consumer_round_trip(server, kadmin, topic):
    kadmin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}})
    _wait_topic(kadmin, topic, 2)
    # kafka-python 3.x turns idempotence on by default: keep its default.
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, acks="all", linger_ms=5,
                             **CLIENT_TIMEOUTS)
    base = int(time.time() * 1000) - 60_000
    sent = []
    try:
        futures = []
        for i in range(50):
            part = i % 2
            key = None if i % 10 == 3 else b"key-%d" % i
            value = None if i % 10 == 7 else b"value-%d" % i
            headers = [("i", str(i).encode()), ("dup", b"1"), ("dup", b"2")]
            futures.append(producer.send(topic, key=key, value=value, headers=headers, partition=part,
                                         timestamp_ms=base + i))
            sent.append((part, key, value, headers, base + i))
        metas = [f.get(timeout=30) for f in futures]
    finally:
        producer.close(timeout=10)
    for part in (0, 1):
        assert [m.offset for m in metas if m.partition == part] == list(range(25))

    consumer = KafkaConsumer(bootstrap_servers=server.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", **CLIENT_TIMEOUTS)
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer.assign(tps)
        consumer.seek(tps[0], 0)
        consumer.seek(tps[1], 10)  # from a given offset
        got = {0: [], 1: []}
        deadline = time.monotonic() + 30
        while (len(got[0]) < 25 or len(got[1]) < 15) and time.monotonic() < deadline:
            for tp, recs in consumer.poll(timeout_ms=500).items():
                got[tp.partition].extend(recs)
    finally:
        consumer.close()
    assert [r.offset for r in got[0]] == list(range(25))
    assert [r.offset for r in got[1]] == list(range(10, 25))
    want0 = [s for s in sent if s[0] == 0]
    want1 = [s for s in sent if s[0] == 1][10:]
    for want, recs in ((want0, got[0]), (want1, got[1])):
        assert [(r.key, r.value, list(r.headers), r.timestamp) for r in recs] == [
            (k, v, h, ts) for _, k, v, h, ts in want
        ]


def test_admin_create_and_delete_topic(server, kadmin, topic):
    kadmin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1,
                                  "configs": {"retention.ms": "3600000"}}})
    desc = _wait_topic(kadmin, topic, 3)
    assert desc["name"] == topic
    assert not desc["is_internal"]
    assert all(p["leader_id"] >= 0 and len(p["replica_nodes"]) == 1 for p in desc["partitions"])
    assert sorted(p["partition_index"] for p in desc["partitions"]) == [0, 1, 2]
    assert topic in kadmin.list_topics()
    with pytest.raises(TopicAlreadyExistsError):
        kadmin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    kadmin.delete_topics([topic])
    deadline = time.monotonic() + 30
    while topic in kadmin.list_topics() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert topic not in kadmin.list_topics()
    with pytest.raises(UnknownTopicOrPartitionError):
        kadmin.delete_topics([topic])


def test_metadata(server, kadmin, topic):
    kadmin.create_topics({topic: {"num_partitions": 4, "replication_factor": 1}})
    _wait_topic(kadmin, topic, 4)
    cluster = kadmin.describe_cluster()
    brokers = cluster["brokers"]
    assert len(brokers) == 1
    assert (brokers[0]["host"], brokers[0]["port"]) == ("127.0.0.1", server.port)
    assert cluster["cluster_id"]
    assert cluster["controller_id"] == brokers[0]["broker_id"]

    consumer = KafkaConsumer(bootstrap_servers=server.bootstrap, group_id=None, enable_auto_commit=False,
                             **CLIENT_TIMEOUTS)
    try:
        assert topic in consumer.topics()
        assert consumer.partitions_for_topic(topic) == {0, 1, 2, 3}
        tps = [TopicPartition(topic, p) for p in range(4)]
        assert consumer.beginning_offsets(tps) == {tp: 0 for tp in tps}
        assert consumer.end_offsets(tps) == {tp: 0 for tp in tps}
    finally:
        consumer.close()
