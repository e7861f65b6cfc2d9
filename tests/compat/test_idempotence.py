"""Idempotent producers (enable.idempotence=true, the default of the Java and kafka-python clients):
records arrive exactly once and in order, also when the broker is SIGKILLed and restarted mid-stream
and the client retries batches the broker had already written."""

from __future__ import annotations

import threading
import time

from util import OP_TIMEOUT, consume_all, create_topic, producer

PARTS = 3


def _idempotent_producer(bootstrap: str):
    return producer(bootstrap, {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        # Retry for long enough to ride out a broker restart.
        "message.timeout.ms": 60000,
        "request.timeout.ms": 3000,
        "reconnect.backoff.max.ms": 200,
    })


def _values_by_partition(bootstrap: str, topic: str) -> dict[int, list[int]]:
    got = consume_all(bootstrap, topic, PARTS)
    return {p: [int(m.value().split(b"-")[1]) for m in msgs] for p, msgs in got.items()}


def test_idempotent_producer_round_trip(server, topic):
    create_topic(server.bootstrap, topic, PARTS)
    p = _idempotent_producer(server.bootstrap)
    n = 20000
    errors: list = []
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=b"v-%d" % i, partition=i % PARTS,
                          on_delivery=lambda err, msg: err and errors.append(err))
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(OP_TIMEOUT) == 0
    assert errors == []
    by_part = _values_by_partition(server.bootstrap, topic)
    for part in range(PARTS):
        assert by_part[part] == list(range(part, n, PARTS)), f"partition {part} differs"


def test_idempotent_retries_across_broker_crash_write_each_record_once(server_factory, topic):
    srv = server_factory()
    create_topic(srv.bootstrap, topic, PARTS)
    p = _idempotent_producer(srv.bootstrap)
    sent = [0]
    errors: list = []
    stop = threading.Event()

    def produce_loop():
        i = 0
        while not stop.is_set() and i < 200000:
            try:
                p.produce(topic, value=b"v-%d" % i, partition=i % PARTS,
                          on_delivery=lambda err, msg: err and errors.append(err))
                i += 1
            except BufferError:
                p.poll(0.01)
            p.poll(0)
        sent[0] = i

    t = threading.Thread(target=produce_loop)
    t.start()
    try:
        time.sleep(1.0)
        srv.kill()  # SIGKILL while batches are in flight
        time.sleep(0.5)
        srv.restart()
        time.sleep(1.0)
    finally:
        stop.set()
        t.join(60)
    assert p.flush(90) == 0, "records still undelivered after the restart"
    assert errors == [], f"delivery errors: {errors[:5]}"
    by_part = _values_by_partition(srv.bootstrap, topic)
    for part in range(PARTS):
        expected = list(range(part, sent[0], PARTS))
        got = by_part[part]
        dupes = len(got) - len(set(got))
        assert dupes == 0, f"partition {part}: {dupes} duplicated records"
        assert got == expected, (
            f"partition {part}: {len(got)} records, expected {len(expected)}; "
            f"first difference at {next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), None)}"
        )
