"""Helpers shared by the compat tests (client construction, draining a partition)."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

OP_TIMEOUT = 30.0


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict | None = None) -> None:
    a = admin(bootstrap)  # keep a reference: the futures fail if the client is destroyed
    fs = a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=OP_TIMEOUT,
    )
    fs[name].result(timeout=OP_TIMEOUT)
    wait_for_topic(bootstrap, name, partitions)


def wait_for_topic(bootstrap: str, name: str, partitions: int, timeout: float = OP_TIMEOUT) -> None:
    """Wait until metadata shows the topic with all partitions led (creation propagates async in Kafka)."""
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = a.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        last = t
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
            p.leader >= 0 for p in t.partitions.values()
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not ready with {partitions} partitions: {last}")


def producer(bootstrap: str, conf: dict | None = None) -> Producer:
    c = {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": False, "acks": "all"}
    c.update(conf or {})
    return Producer(c)


def consumer(bootstrap: str, conf: dict | None = None) -> Consumer:
    # librdkafka's Consumer insists on a group.id, but assign() with explicit offsets and no commits
    # never needs the group: consumer groups are a later issue for strom.
    c = {
        "bootstrap.servers": bootstrap,
        "group.id": "compat-unused-group",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
    }
    c.update(conf or {})
    return Consumer(c)


class DeliveryLog:
    """Collects delivery reports: (partition, offset, key, value) or errors."""

    def __init__(self):
        self.ok: list = []
        self.errors: list = []

    def __call__(self, err, msg):
        if err is not None:
            self.errors.append((err, msg))
        else:
            self.ok.append(msg)


def produce_all(p: Producer, records: list[dict], timeout: float = OP_TIMEOUT) -> DeliveryLog:
    """Produce records (dicts of Producer.produce kwargs) and wait for every delivery report."""
    log = DeliveryLog()
    for r in records:
        while True:
            try:
                p.produce(on_delivery=log, **r)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} records still undelivered after {timeout}s"
    return log


def consume_range(bootstrap: str, topic: str, partition: int, start: int, count: int,
                  timeout: float = OP_TIMEOUT, conf: dict | None = None) -> list:
    """assign(topic, partition, start) and read exactly `count` records (fails on timeout)."""
    c = consumer(bootstrap, conf)
    try:
        c.assign([TopicPartition(topic, partition, start)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            batch = c.consume(num_messages=min(10000, count - len(out)), timeout=1.0)
            for m in batch:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consume error: {m.error()}")
                out.append(m)
        assert len(out) == count, f"read {len(out)} of {count} records from {topic}[{partition}]@{start}"
        return out
    finally:
        c.close()


def consume_all(bootstrap: str, topic: str, partitions: int, timeout: float = OP_TIMEOUT,
                conf: dict | None = None) -> dict:
    """Read every partition from offset 0 to its end (as seen at call time, via EOF). {p: [msgs]}."""
    from confluent_kafka import OFFSET_BEGINNING

    c = consumer(bootstrap, conf)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out: dict[int, list] = {p: [] for p in range(partitions)}
        eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(eof) < partitions and time.monotonic() < deadline:
            for m in c.consume(num_messages=10000, timeout=1.0):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    raise AssertionError(f"consume error: {m.error()}")
                eof.discard(m.partition())
                out[m.partition()].append(m)
        assert len(eof) == partitions, f"only partitions {sorted(eof)} reached their end within {timeout}s"
        return out
    finally:
        c.close()
