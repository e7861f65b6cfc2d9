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

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        self.p = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "retry.backoff.ms": 100,
            "topic.metadata.refresh.interval.ms": 1000,
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
