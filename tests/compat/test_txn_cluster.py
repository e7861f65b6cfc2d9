"""Transactions on a three-node strom cluster (#5 with #6): a transaction whose partitions are led
by different brokers gets its markers on every one of them (WriteTxnMarkers between brokers), so
read_committed consumers see the committed records, never the aborted ones, and reach the end;
offsets sent to the transaction land on the group coordinator even when it is another broker; the
transaction coordinator's state is replicated, so SIGKILLing it in the middle of a transaction
leaves the producer able to commit through the new coordinator. Client: confluent-kafka.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from cluster import cluster_factory  # noqa: F401  (pytest fixture)
from test_java import java_classpath  # noqa: F401  (pytest fixture)
from util import OP_TIMEOUT, admin, consume_all

PARTITIONS = 6


def java_string_hash(s: str) -> int:
    """Java's String.hashCode over UTF-16 code units, as a signed 32-bit int."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator_partition(key: str, partitions: int) -> int:
    """Kafka's placement of a transactional id / group: abs(hashCode) % partitions."""
    h = java_string_hash(key)
    return (h & 0x7FFFFFFF if h == -(1 << 31) else abs(h)) % partitions


def create(bootstrap: str, name: str, partitions: int, rf: int) -> None:
    a = admin(bootstrap)  # kept alive until the result is in
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf)],
                         request_timeout=OP_TIMEOUT)
    fs[name].result(timeout=OP_TIMEOUT)


def txn_producer(bootstrap: str, txn_id: str) -> Producer:
    p = Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "linger.ms": 5,
        "transaction.timeout.ms": 60000,
    })
    p.init_transactions(OP_TIMEOUT)
    return p


def write(p: Producer, topic: str, tag: str, n: int = 5) -> list[bytes]:
    values = [f"{tag}-{part}-{i}".encode() for part in range(PARTITIONS) for i in range(n)]
    for v in values:
        part = int(v.split(b"-")[1])
        p.produce(topic, value=v, partition=part)
    p.flush(OP_TIMEOUT)
    return values


def committed_values(bootstrap: str, topic: str) -> list[bytes]:
    got = consume_all(bootstrap, topic, PARTITIONS, conf={"isolation.level": "read_committed"})
    return sorted(m.value() for msgs in got.values() for m in msgs)


def leaders(c, topic: str) -> dict[int, int]:
    def ready():
        state = c.partition_state(topic)
        if len(state) == PARTITIONS and all(leader in c.nodes and c.node(leader).alive()
                                            for leader, _, _, _ in state.values()):
            return {p: s[0] for p, s in state.items()}
        return None
    return c.wait_for(ready, what=f"leaders for every partition of {topic}")


def test_transaction_markers_reach_partitions_led_by_other_brokers(cluster_factory):
    c = cluster_factory(n=3)
    create(c.bootstrap, "txc", PARTITIONS, rf=3)
    assert len(set(leaders(c, "txc").values())) >= 2, "the test needs partitions led by several brokers"

    p = txn_producer(c.bootstrap, f"spread-{uuid.uuid4()}")
    p.begin_transaction()
    first = write(p, "txc", "commit1")
    p.commit_transaction(OP_TIMEOUT)
    p.begin_transaction()
    write(p, "txc", "abort")
    p.abort_transaction(OP_TIMEOUT)
    p.begin_transaction()
    second = write(p, "txc", "commit2")
    p.commit_transaction(OP_TIMEOUT)

    # read_committed reaches every partition's end (the markers moved each last stable offset)
    # and sees exactly the two committed transactions.
    assert committed_values(c.bootstrap, "txc") == sorted(first + second)
    # read_uncommitted sees the aborted records too.
    raw = consume_all(c.bootstrap, "txc", PARTITIONS, conf={"isolation.level": "read_uncommitted"})
    assert sum(len(v) for v in raw.values()) == 3 * len(first)


def test_offsets_sent_to_a_transaction_commit_on_another_broker(cluster_factory):
    c = cluster_factory(n=3)
    create(c.bootstrap, "txo", PARTITIONS, rf=3)
    group = f"eos-{uuid.uuid4()}"
    p = txn_producer(c.bootstrap, f"offsets-{uuid.uuid4()}")
    cons = Consumer({"bootstrap.servers": c.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        # The group's metadata is what send_offsets_to_transaction needs; joining is not.
        offsets = [TopicPartition("txo", part, 10 + part) for part in range(PARTITIONS)]
        p.begin_transaction()
        write(p, "txo", "out", n=1)
        p.send_offsets_to_transaction(offsets, cons.consumer_group_metadata(), OP_TIMEOUT)
        p.commit_transaction(OP_TIMEOUT)

        def committed():
            got = cons.committed([TopicPartition("txo", part) for part in range(PARTITIONS)], timeout=10)
            return {tp.partition: tp.offset for tp in got} == {part: 10 + part for part in range(PARTITIONS)}
        c.wait_for(committed, what="the transaction's offsets to be committed")

        # Offsets of an aborted transaction are dropped.
        p.begin_transaction()
        p.send_offsets_to_transaction([TopicPartition("txo", 0, 99)], cons.consumer_group_metadata(),
                                      OP_TIMEOUT)
        p.abort_transaction(OP_TIMEOUT)
        (tp,) = cons.committed([TopicPartition("txo", 0)], timeout=10)
        assert tp.offset == 10
    finally:
        cons.close()


def test_transaction_survives_sigkill_of_its_coordinator(cluster_factory):
    c = cluster_factory(n=3)
    create(c.bootstrap, "txk", PARTITIONS, rf=3)
    txn_id = f"failover-{uuid.uuid4()}"
    p = txn_producer(c.bootstrap, txn_id)  # creates __transaction_state (50 partitions)
    state_partition = coordinator_partition(txn_id, 50)

    def coordinator():
        leader, _, _, isr = c.partition_state("__transaction_state")[state_partition]
        return leader if len(isr) == 3 else None
    coord = c.wait_for(coordinator, what="the transaction coordinator's partition to be fully in sync")

    p.begin_transaction()
    first = write(p, "txk", "before")
    p.commit_transaction(OP_TIMEOUT)

    p.begin_transaction()
    during = write(p, "txk", "open")
    c.node(coord).kill()
    # The producer finds the new coordinator (the new leader of the state partition), which has
    # the open transaction from the replicated state log, and commits it there.
    deadline = time.monotonic() + OP_TIMEOUT
    while True:
        try:
            p.commit_transaction(OP_TIMEOUT)
            break
        except Exception as e:  # retriable errors while leadership moves
            err = e.args[0] if e.args else None
            if not (isinstance(err, KafkaError) and err.retriable()) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    new_coord = c.wait_for(lambda: c.partition_state("__transaction_state")[state_partition][0] != coord
                           and c.partition_state("__transaction_state")[state_partition][0],
                           what="a new transaction coordinator")
    assert new_coord != coord

    p.begin_transaction()
    after = write(p, "txk", "after")
    p.commit_transaction(OP_TIMEOUT)
    assert committed_values(c.bootstrap, "txk") == sorted(first + during + after)

    # The killed node comes back as a follower and the cluster goes on.
    c.node(coord).start()
    c.wait_ready()
    p.begin_transaction()
    last = write(p, "txk", "rejoined")
    p.commit_transaction(OP_TIMEOUT)
    assert committed_values(c.bootstrap, "txk") == sorted(first + during + after + last)


def test_java_transaction_protocol_v2_on_a_cluster(cluster_factory, java_classpath):
    """The Java producer on protocol v2 against three brokers: partition leaders and the group
    coordinator add the partitions at the transaction coordinator, wherever it runs."""
    from test_java import run_java

    c = cluster_factory(n=3)
    create(c.bootstrap, "txj", 1, rf=3)
    out = run_java(java_classpath, "txn-protocol", c.bootstrap, "txj", "txj-group", f"txj-{uuid.uuid4()}")
    assert out["transaction_version"] == 2
    e0 = out["epochs"][0]
    assert out["epochs"] == [e0, e0 + 1, e0 + 2, e0 + 3]
    assert out["group_offset"] == 7
    assert out["read_committed"] == ["c1-0", "c1-1", "c1-2", "c2-0", "c2-1"]
