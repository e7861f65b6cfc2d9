"""Topic compression.type (broker-side recompression) and message.timestamp.(before|after).max.ms,
with confluent-kafka producers and consumers; the stored batches' codec is read with a raw Fetch.

The same tests run against Apache Kafka with COMPAT_TARGET=kafka (the oracle).
"""

from __future__ import annotations

import socket
import struct
import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from util import OP_TIMEOUT, admin, consume_range, create_topic, producer

CODEC_IDS = {"none": 0, "uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def stored_batches(server, topic: str, partition: int = 0) -> list[dict]:
    """Fetch v4 from offset 0 and return each stored batch's header fields, as on disk."""
    body = struct.pack(">iiiib", -1, 500, 1, 16 << 20, 0)  # replica, max wait, min/max bytes, isolation
    body += struct.pack(">i", 1) + _string(topic) + struct.pack(">i", 1)
    body += struct.pack(">iqi", partition, 0, 16 << 20)
    header = struct.pack(">hhi", 1, 4, 7) + _string("codec-probe")
    frame = header + body
    host, port = server.bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=OP_TIMEOUT) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", _recv_exact(s, 4))
        resp = _recv_exact(s, size)
    pos = 4 + 4 + 4  # correlation id, throttle time, topics count
    (name_len,) = struct.unpack_from(">h", resp, pos)
    pos += 2 + name_len + 4  # name, partitions count
    _, error, _hw, _lso = struct.unpack_from(">ihqq", resp, pos)
    assert error == 0, f"fetch error {error}"
    pos += 4 + 2 + 8 + 8
    (aborted,) = struct.unpack_from(">i", resp, pos)
    pos += 4 + max(aborted, 0) * 16
    (records_len,) = struct.unpack_from(">i", resp, pos)
    pos += 4
    records = resp[pos:pos + max(records_len, 0)]
    out, p = [], 0
    while p + 61 <= len(records):
        base_offset, length = struct.unpack_from(">qi", records, p)
        if p + 12 + length > len(records):
            break  # a partial batch at the end of the fetch
        attributes, last_delta, base_ts, max_ts, pid, epoch, seq, count = struct.unpack_from(
            ">hiqqqhii", records, p + 21)
        out.append({"base_offset": base_offset, "length": length, "codec": attributes & 7,
                    "last_offset_delta": last_delta,
                    "base_timestamp": base_ts, "max_timestamp": max_ts, "producer_id": pid,
                    "base_sequence": seq, "count": count})
        p += 12 + length
    return out


def produce_batch(bootstrap: str, topic: str, codec: str, n: int, base_ts: int, conf: dict | None = None):
    """n records in one batch (linger), keys, values and headers recognisable per index."""
    p = producer(bootstrap, {"compression.type": codec, "linger.ms": 200, "batch.num.messages": n,
                             **(conf or {})})
    errors = []
    for i in range(n):
        p.produce(topic, key=f"k{i}", value=f"{codec}-{i} " + "payload " * (i % 9), partition=0,
                  headers=[("i", str(i))], timestamp=base_ts + (i * 7) % 13,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(OP_TIMEOUT) == 0
    assert errors == []


@pytest.mark.parametrize("producer_codec", ["none", "lz4"])
@pytest.mark.parametrize("topic_codec", ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"])
def test_stored_codec_follows_topic_compression_type(server, topic, topic_codec, producer_codec):
    create_topic(server.bootstrap, topic, 1, {"compression.type": topic_codec})
    n = 40
    base_ts = int(time.time() * 1000) - 60_000
    produce_batch(server.bootstrap, topic, producer_codec, n, base_ts)
    # A second producer, so the log holds more than one batch and offsets must continue.
    produce_batch(server.bootstrap, topic, producer_codec, n, base_ts, {"enable.idempotence": True})

    batches = stored_batches(server, topic)
    want = CODEC_IDS[producer_codec if topic_codec == "producer" else topic_codec]
    assert batches, "no batches fetched"
    assert {b["codec"] for b in batches} == {want}
    assert sum(b["count"] for b in batches) == 2 * n
    # The idempotent producer's batch keeps its producer id and sequence through recompression.
    assert batches[-1]["producer_id"] >= 0 and batches[-1]["base_sequence"] == 0

    msgs = consume_range(server.bootstrap, topic, 0, 0, 2 * n)
    assert [m.offset() for m in msgs] == list(range(2 * n))
    for m in msgs:
        i = m.offset() % n
        assert m.key() == f"k{i}".encode()
        assert m.value() == (f"{producer_codec}-{i} " + "payload " * (i % 9)).encode()
        assert m.headers() == [("i", str(i).encode())]
        assert m.timestamp() == (1, base_ts + (i * 7) % 13)  # CreateTime, the producer's


@pytest.mark.parametrize("codec,low,high", [("gzip", 1, 9), ("lz4", 1, 17), ("zstd", -5, 19)])
def test_topic_compression_level_is_used(server, topic, codec, low, high):
    """compression.<codec>.level (KIP-390): the same uncompressed batch, recompressed by the broker,
    is stored smaller at the higher level, and reads back the same."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]
    values = [" ".join(words[(i * 7 + j * j) % len(words)] + str((i * j) % 50) for j in range(40)).encode()
              for i in range(300)]
    sizes = {}
    for level in (low, high):
        t = "%s-%s" % (topic, str(level).replace("-", "m"))
        create_topic(server.bootstrap, t, 1, {"compression.type": codec, "compression.%s.level" % codec: str(level)})
        p = producer(server.bootstrap, {"compression.type": "none", "linger.ms": 200,
                                        "batch.num.messages": len(values)})
        for v in values:
            p.produce(t, value=v, partition=0)
        assert p.flush(OP_TIMEOUT) == 0
        batches = stored_batches(server, t)
        assert {b["codec"] for b in batches} == {CODEC_IDS[codec]}
        assert sum(b["count"] for b in batches) == len(values)
        sizes[level] = sum(b["length"] for b in batches)
        assert [m.value() for m in consume_range(server.bootstrap, t, 0, 0, len(values))] == values
    assert sizes[high] < sizes[low], sizes


def produce_one(bootstrap: str, topic: str, timestamp: int) -> KafkaError | None:
    p = producer(bootstrap, {"retries": 0, "message.timeout.ms": int(OP_TIMEOUT * 1000)})
    result = []
    p.produce(topic, value=b"v", timestamp=timestamp, on_delivery=lambda err, msg: result.append(err))
    assert p.flush(OP_TIMEOUT) == 0
    return result[0]


def test_timestamps_out_of_range_are_refused(server, topic):
    create_topic(server.bootstrap, topic, 1, {"message.timestamp.before.max.ms": "3600000",
                                              "message.timestamp.after.max.ms": "60000"})
    now = int(time.time() * 1000)
    assert produce_one(server.bootstrap, topic, now) is None
    too_old = produce_one(server.bootstrap, topic, now - 2 * 3600_000)
    assert too_old is not None and too_old.code() == KafkaError.INVALID_TIMESTAMP
    too_new = produce_one(server.bootstrap, topic, now + 10 * 60_000)
    assert too_new is not None and too_new.code() == KafkaError.INVALID_TIMESTAMP
    assert produce_one(server.bootstrap, topic, now - 30 * 60_000) is None
    # Only the two accepted records are stored.
    assert [b["count"] for b in stored_batches(server, topic)] == [1, 1]


def test_default_bounds_refuse_the_far_future_only(server, topic):
    """Kafka 4 defaults: before unlimited, after one hour."""
    create_topic(server.bootstrap, topic, 1)
    now = int(time.time() * 1000)
    assert produce_one(server.bootstrap, topic, now - 365 * 86400_000) is None
    err = produce_one(server.bootstrap, topic, now + 2 * 3600_000)
    assert err is not None and err.code() == KafkaError.INVALID_TIMESTAMP


def test_log_append_time_topics_ignore_the_bounds(server, topic):
    create_topic(server.bootstrap, topic, 1, {"message.timestamp.type": "LogAppendTime",
                                              "message.timestamp.after.max.ms": "0",
                                              "message.timestamp.before.max.ms": "0"})
    assert produce_one(server.bootstrap, topic, int(time.time() * 1000) + 7 * 86400_000) is None


def test_removed_timestamp_difference_config_is_refused(server, topic):
    """message.timestamp.difference.max.ms was removed in Kafka 4 (KIP-937 replaced it)."""
    from confluent_kafka.admin import NewTopic

    a = admin(server.bootstrap)
    fut = a.create_topics([NewTopic(topic, 1, 1, config={"message.timestamp.difference.max.ms": "1000"})],
                          request_timeout=OP_TIMEOUT)[topic]
    with pytest.raises(KafkaException) as exc:
        fut.result(timeout=OP_TIMEOUT)
    assert exc.value.args[0].code() == KafkaError.INVALID_CONFIG
