"""Data replication on three local strom nodes (tests/compat/cluster.py): an idempotent acks=all
producer keeps writing while a partition leader is SIGKILLed and restarted, and afterwards every
acknowledged record is read back exactly once, in order per partition, by librdkafka and by the
Java consumer; min.insync.replicas refuses writes when too few replicas are in sync; a restarted
follower catches up and rejoins the ISR. Every wait is bounded.
"""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import cluster_factory  # noqa: F401  (pytest fixture)
from test_java import java_classpath, run_java  # noqa: F401  (pytest fixture)
from util import consume_range

# Followers out of touch this long leave the ISR (Kafka's default is 30 s).
LAG_MS = 3000
OVERRIDES = {"replica.lag.time.max.ms": str(LAG_MS), "replica.fetch.wait.max.ms": "200"}
WAIT = 60.0


def create_replicated_topic(c, name: str, partitions: int, rf: int, config: dict | None = None):
    a = AdminClient({"bootstrap.servers": c.bootstrap})
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf, config=config or {})],
                         request_timeout=30)
    fs[name].result(timeout=30)

    def ready():
        state = c.partition_state(name)
        return len(state) == partitions and all(
            leader >= 0 and len(isr) == rf for (leader, _, _, isr) in state.values())
    c.wait_for(ready, WAIT, what=f"{name}: every partition led with a full ISR")


class AckedProducer:
    """An idempotent acks=all producer in a thread; remembers every acknowledged record."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, conf: dict | None = None):
        self.p = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "retry.backoff.ms": 100,
            "topic.metadata.refresh.interval.ms": 1000,
            **(conf or {}),
        })
        self.topic = topic
        self.partitions = partitions
        self.acked: dict[int, list[tuple[int, str]]] = {p: [] for p in range(partitions)}
        self.errors: list[str] = []
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_delivery(self, err, msg):
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked[msg.partition()].append((msg.offset(), msg.value().decode()))

    def run(self):
        while not self.stop.is_set():
            for part in range(self.partitions):
                value = f"v-{self.sent}"
                while True:
                    try:
                        self.p.produce(self.topic, value=value.encode(), partition=part,
                                       on_delivery=self.on_delivery)
                        break
                    except BufferError:
                        self.p.poll(0.1)
                self.sent += 1
            self.p.poll(0)
            time.sleep(0.005)

    def acked_count(self) -> int:
        return sum(len(v) for v in self.acked.values())

    def finish(self, timeout: float = 90.0):
        self.stop.set()
        self.thread.join(timeout=10)
        left = self.p.flush(timeout)
        assert left == 0, f"{left} records still unacknowledged after {timeout}s"


def test_acknowledged_records_survive_leader_kill(cluster_factory, java_classpath):
    c = cluster_factory(n=3, overrides=OVERRIDES)
    topic = "replicated-kill"
    parts = 3
    create_replicated_topic(c, topic, parts, 3, {"min.insync.replicas": "2"})

    prod = AckedProducer(c.bootstrap, topic, parts)
    prod.thread.start()
    c.wait_for(lambda: prod.acked_count() >= 300, WAIT, what="records acknowledged before the kill")

    leader, epoch, _, _ = c.partition_state(topic)[0]
    c.node(leader).kill()
    survivor = next(n for n in c.live_nodes())

    def moved():
        new_leader, new_epoch, _, _ = c.partition_state(topic, via=survivor)[0]
        return new_leader not in (-1, leader) and new_epoch > epoch
    c.wait_for(moved, WAIT, what=f"partition 0 to get a new leader after killing node {leader}")
    before = prod.acked_count()
    c.wait_for(lambda: prod.acked_count() >= before + 300, WAIT,
               what="acknowledged writes continuing on the new leader")

    c.node(leader).start()
    c.wait_for(lambda: all(len(isr) == 3 for (_, _, _, isr) in c.partition_state(topic, via=survivor).values()),
               WAIT, what=f"node {leader} back in every ISR")
    before = prod.acked_count()
    c.wait_for(lambda: prod.acked_count() >= before + 100, WAIT, what="writes after the restart")
    prod.finish()
    assert not prod.errors, f"delivery errors: {prod.errors[:5]}"

    for part in range(parts):
        acked = sorted(prod.acked[part])
        offsets = [o for o, _ in acked]
        assert len(set(offsets)) == len(offsets), f"partition {part}: one offset acknowledged twice"
        end = offsets[-1] + 1
        msgs = consume_range(c.bootstrap, topic, part, 0, end, timeout=WAIT)
        got = [(m.offset(), m.value().decode()) for m in msgs]
        # Read back exactly once, in order: each offset once, values never duplicated.
        values = [v for _, v in got]
        assert len(values) == len(set(values)), f"partition {part}: a record is stored twice"
        positions = {v: i for i, (_, v) in enumerate(got)}
        for o, v in acked:
            assert v in positions, f"partition {part}: acknowledged record {v}@{o} lost"
            assert got[positions[v]][0] == o, f"partition {part}: {v} acknowledged at {o}, stored at {got[positions[v]][0]}"
        java = run_java(java_classpath, "consume", c.bootstrap, topic, part, 0, end)["records"]
        assert [(r["offset"], r["value"]) for r in java] == got, f"partition {part}: Java consumer disagrees"


def test_min_insync_replicas_and_follower_rejoining(cluster_factory):
    c = cluster_factory(n=3, overrides=OVERRIDES)
    topic = "replicated-isr"
    # Replicas on two of the three nodes, both needed: the third node keeps the Raft quorum
    # alive when one replica goes (with all three nodes as voters, two down would stop the
    # controller itself, and with it every ISR change).
    create_replicated_topic(c, topic, 1, 2, {"min.insync.replicas": "2"})
    leader, _, replicas, _ = c.partition_state(topic)[0]
    follower = next(r for r in replicas if r != leader)
    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "message.timeout.ms": 20000,
                  "retries": 0, "linger.ms": 0})
    results = []

    def send(value: str):
        p.produce(topic, value=value.encode(), partition=0,
                  on_delivery=lambda err, m: results.append(err))
        assert p.flush(30) == 0
        return results[-1]

    assert send("both-in-sync") is None

    c.node(follower).kill()
    survivor = c.node(leader)
    c.wait_for(lambda: c.partition_state(topic, via=survivor)[0][3] == [leader], WAIT,
               what=f"the ISR to shrink to the leader {leader} after replica.lag.time.max.ms")
    err = send("one-in-sync")
    assert err is not None and err.code() == KafkaError.NOT_ENOUGH_REPLICAS, f"expected NOT_ENOUGH_REPLICAS, got {err}"

    c.node(follower).start()
    c.wait_for(lambda: sorted(c.partition_state(topic, via=survivor)[0][3]) == sorted(replicas), WAIT,
               what=f"the restarted follower {follower} to rejoin the ISR")
    assert send("back-in-sync") is None
    msgs = consume_range(c.bootstrap, topic, 0, 0, 2, timeout=WAIT)
    assert [m.value().decode() for m in msgs] == ["both-in-sync", "back-in-sync"]


def kafka_partition_for(key: str, partitions: int) -> int:
    """Kafka's Utils.abs(key.hashCode()) % partitions (Java String.hashCode over UTF-16 units)."""
    h = 0
    for unit in key.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    return 0 if h == -(1 << 31) else abs(h) % partitions


def test_group_coordinator_moves_with_offsets_leader(cluster_factory):
    """The group's coordinator is the leader of its __consumer_offsets partition; when that node is
    SIGKILLed, the group carries on through the new leader with its committed offsets intact."""
    from confluent_kafka import Consumer, TopicPartition

    c = cluster_factory(n=3, overrides=OVERRIDES)
    topic, parts, per_part = "coord-failover", 3, 100
    group = "coord-failover-group"
    create_replicated_topic(c, topic, parts, 3)
    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True})
    for part in range(parts):
        for i in range(per_part):
            p.produce(topic, value=f"{part}-{i}".encode(), partition=part)
    assert p.flush(WAIT) == 0

    conf = {
        "bootstrap.servers": c.bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
        "topic.metadata.refresh.interval.ms": 1000,
    }
    consumer = Consumer(conf)
    consumer.subscribe([topic])
    seen: list[tuple[int, int]] = []

    def consume_until(count: int, commit_every: int | None):
        """Poll until `count` distinct records have been seen."""
        deadline = time.monotonic() + WAIT
        since_commit = 0
        while len(set(seen)) < count:
            assert time.monotonic() < deadline, f"consumed {len(set(seen))} of {count} records\n{c.logs()}"
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                if m.error().retriable():
                    continue
                raise AssertionError(f"consume error: {m.error()}")
            seen.append((m.partition(), m.offset()))
            since_commit += 1
            if commit_every and since_commit >= commit_every:
                consumer.commit(asynchronous=False)
                since_commit = 0

    # 150 records committed in batches of 10, then 15 more consumed and not committed.
    consume_until(150, commit_every=10)
    consume_until(165, commit_every=None)
    committed_before = {
        tp.partition: tp.offset
        for tp in consumer.committed([TopicPartition(topic, i) for i in range(parts)], timeout=30)
    }
    assert sum(max(o, 0) for o in committed_before.values()) == 150, committed_before

    # FindCoordinator answers the leader of abs(hash(group)) % 50 of __consumer_offsets.
    offsets_partition = kafka_partition_for(group, 50)
    leader = c.partition_state("__consumer_offsets")[offsets_partition][0]
    a = AdminClient({"bootstrap.servers": c.bootstrap})
    desc = a.describe_consumer_groups([group], request_timeout=30)[group].result(timeout=30)
    assert desc.coordinator.id == leader, f"coordinator {desc.coordinator.id}, partition leader {leader}"

    c.node(leader).kill()
    survivor = c.live_nodes()[0]

    def new_coordinator():
        state = c.partition_state("__consumer_offsets", via=survivor)[offsets_partition]
        return state[0] if state[0] not in (-1, leader) else None
    new_leader = c.wait_for(new_coordinator, WAIT, what="a new leader for the group's offsets partition")

    # Committed offsets are intact on the new coordinator (read without joining the group).
    probe = Consumer({"bootstrap.servers": survivor.bootstrap, "group.id": group})
    try:
        def committed_now():
            got = probe.committed([TopicPartition(topic, i) for i in range(parts)], timeout=10)
            return {tp.partition: tp.offset for tp in got}
        assert c.wait_for(lambda: committed_now() == committed_before, WAIT,
                          what="committed offsets served by the new coordinator")
    finally:
        probe.close()
    desc = a.describe_consumer_groups([group], request_timeout=30)[group].result(timeout=30)
    assert desc.coordinator.id == new_leader

    # The same consumer carries on: the rest of the records, committing through the new coordinator.
    consume_until(parts * per_part, commit_every=10)
    consumer.commit(asynchronous=False)
    consumer.close()

    # Every record was consumed; a record seen twice is one consumed after the last commit before
    # the kill (uncommitted), never one already committed.
    assert {(pt, o) for pt, o in seen} == {(pt, o) for pt in range(parts) for o in range(per_part)}
    dups = [x for x in set(seen) if seen.count(x) > 1]
    for pt, o in dups:
        assert o >= committed_before[pt], f"committed record {pt}@{o} consumed again"

    after = Consumer({"bootstrap.servers": c.bootstrap, "group.id": group})
    try:
        got = after.committed([TopicPartition(topic, i) for i in range(parts)], timeout=30)
        assert {tp.partition: tp.offset for tp in got} == {i: per_part for i in range(parts)}
    finally:
        after.close()
