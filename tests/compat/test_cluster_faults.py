"""Faults on three strom nodes while an idempotent acks=all producer writes (#6): every node is
SIGKILLed and restarted in turn, the active controller first; then a partition leader is frozen
(SIGSTOP: it falls silent to its peers and clients, as a leader cut off by the network) until the
others fence it and elect a new leader, and thawed (SIGCONT) so it must step down and catch up.
Afterwards every acknowledged record is read back exactly once, in order per partition, and a
consumer group that committed before the faults resumes from its committed offsets and reads to
the end with no gap. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import time

from confluent_kafka import Consumer, TopicPartition

from cluster import SESSION_TIMEOUT_MS, cluster_factory  # noqa: F401  (pytest fixture)
from test_replication import OVERRIDES, WAIT, AckedProducer, create_replicated_topic
from test_java import java_classpath, run_java  # noqa: F401  (pytest fixture)
from util import consume_range

TOPIC = "faults"
PARTITIONS = 3


def full_isr(c) -> bool:
    state = c.partition_state(TOPIC)
    return all(leader in c.nodes and c.node(leader).alive() and len(isr) == 3
               for (leader, _, _, isr) in state.values())


def keep_writing(c, prod: AckedProducer, at_least: int, what: str) -> None:
    before = prod.acked_count()
    c.wait_for(lambda: prod.acked_count() >= before + at_least, WAIT, what=f"acknowledged writes {what}")


def check_read_back(c, prod: AckedProducer, topic: str = TOPIC, partitions: int = PARTITIONS,
                    java_cp: str | None = None) -> dict[int, int]:
    """Every acknowledged record once, at its acknowledged offset, nothing stored twice, read by
    librdkafka (and, given the compat program's classpath, by the Java consumer too: the same
    records at the same offsets, in order). Returns each partition's end offset."""
    ends = {}
    for part in range(partitions):
        acked = sorted(prod.acked[part])
        offsets = [o for o, _ in acked]
        assert len(set(offsets)) == len(offsets), f"partition {part}: one offset acknowledged twice"
        end = offsets[-1] + 1
        got = [(m.offset(), m.value().decode()) for m in consume_range(c.bootstrap, topic, part, 0, end,
                                                                          timeout=WAIT)]
        values = [v for _, v in got]
        assert len(values) == len(set(values)), f"partition {part}: a record is stored twice"
        stored = dict((v, o) for o, v in got)
        for o, v in acked:
            assert stored.get(v) == o, f"partition {part}: {v} acknowledged at {o}, stored at {stored.get(v)}"
        if java_cp:
            out = run_java(java_cp, "consume", c.bootstrap, topic, part, 0, len(got))
            java = [(r["offset"], r["value"]) for r in out["records"]]
            assert java == got, f"partition {part}: the Java consumer read {len(java)} records, " \
                f"librdkafka {len(got)}; first difference at " \
                f"{next((i for i, (a, b) in enumerate(zip(java, got)) if a != b), min(len(java), len(got)))}"
        ends[part] = end
    return ends


def test_every_node_killed_in_turn_then_a_frozen_leader(cluster_factory, java_classpath):
    c = cluster_factory(n=3, overrides=OVERRIDES)
    create_replicated_topic(c, TOPIC, PARTITIONS, 3, {"min.insync.replicas": "2"})
    prod = AckedProducer(c.bootstrap, TOPIC, PARTITIONS)
    prod.thread.start()
    keep_writing(c, prod, 300, "before the faults")

    # A consumer group reads some records and commits them before any fault.
    group = "faults-group"
    cons = Consumer({"bootstrap.servers": c.bootstrap, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest"})
    cons.subscribe([TOPIC])
    seen: dict[int, int] = {}
    deadline = time.monotonic() + WAIT
    while sum(seen.values()) < 100 and time.monotonic() < deadline:
        m = cons.poll(0.5)
        if m is not None and not m.error():
            seen[m.partition()] = max(seen.get(m.partition(), 0), m.offset() + 1)
    assert sum(seen.values()) >= 100, "the group consumed too little before the faults"
    cons.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in seen.items()], asynchronous=False)
    cons.close()

    # SIGKILL each node in turn, the active controller first, restarting it before the next.
    first = c.controller_id()
    for node_id in [first] + [n for n in sorted(c.nodes) if n != first]:
        c.node(node_id).kill()
        c.wait_for(lambda: all(leader not in (-1, node_id) for (leader, _, _, _)
                               in c.partition_state(TOPIC, via=c.live_nodes()[0]).values()),
                   WAIT, what=f"leaders off killed node {node_id}")
        keep_writing(c, prod, 100, f"with node {node_id} down")
        c.node(node_id).start()
        c.wait_for(lambda: full_isr(c), WAIT, what=f"node {node_id} back in every ISR")
        keep_writing(c, prod, 100, f"after node {node_id} restarted")

    # Freeze the leader of partition 0 past the broker session timeout: it is fenced and loses
    # its leadership; thawed, it steps down, truncates what was never committed, and catches up.
    leader, epoch, _, _ = c.partition_state(TOPIC)[0]
    frozen = c.node(leader)
    os.kill(frozen.proc.pid, signal.SIGSTOP)
    try:
        others = [n for n in c.nodes.values() if n is not frozen]

        def moved():
            new_leader, new_epoch, _, _ = c.partition_state(TOPIC, via=others[0])[0]
            return new_leader not in (-1, leader) and new_epoch > epoch
        c.wait_for(moved, WAIT, what=f"partition 0 to move off frozen node {leader}")
        keep_writing(c, prod, 100, f"while node {leader} is frozen")
        time.sleep(SESSION_TIMEOUT_MS / 1000)
    finally:
        os.kill(frozen.proc.pid, signal.SIGCONT)
    c.wait_for(lambda: full_isr(c), WAIT, what=f"thawed node {leader} back in every ISR")
    keep_writing(c, prod, 100, "after the thaw")

    prod.finish()
    assert not prod.errors, f"delivery errors: {prod.errors[:5]}"
    ends = check_read_back(c, prod, java_cp=java_classpath)

    # The group resumes where it committed and reads to the end with no gap.
    cons = Consumer({"bootstrap.servers": c.bootstrap, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest"})
    cons.subscribe([TOPIC])
    first_offset: dict[int, int] = {}
    last: dict[int, int] = {}
    deadline = time.monotonic() + WAIT
    try:
        while any(last.get(p, -1) + 1 < ends[p] for p in ends) and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is None or m.error():
                continue
            p = m.partition()
            first_offset.setdefault(p, m.offset())
            assert m.offset() == last.get(p, m.offset() - 1) + 1, f"partition {p}: gap before {m.offset()}"
            last[p] = m.offset()
    finally:
        cons.close()
    for p, end in ends.items():
        assert last.get(p, -1) + 1 >= end, f"partition {p}: the group stopped at {last.get(p)} of {end}"
        assert first_offset.get(p) == seen.get(p, 0), \
            f"partition {p}: resumed at {first_offset.get(p)}, committed {seen.get(p, 0)}"


def list_offsets(node, topic: str, partition: int, timestamp: int, replica_id: int = -1) -> tuple[int, int]:
    """ListOffsets v1 sent to one node: (error code, offset)."""
    import socket
    import struct

    name = topic.encode()
    client = b"compat"
    body = (struct.pack(">hhih", 2, 1, 7, len(client)) + client
            + struct.pack(">ii", replica_id, 1) + struct.pack(">h", len(name)) + name
            + struct.pack(">iiq", 1, partition, timestamp))
    with socket.create_connection((node.host, node.port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        resp = s.recv(size, socket.MSG_WAITALL)
    pos = 4 + 4  # correlation id, topic count
    (name_len,) = struct.unpack_from(">h", resp, pos)
    pos += 2 + name_len + 4  # name, partition count
    _, code, _, offset = struct.unpack_from(">ihqq", resp, pos)
    return code, offset


def test_delete_records_reach_followers_and_offsets_come_from_the_leader(cluster_factory):
    from kafka import KafkaAdminClient
    from kafka.structs import TopicPartition as KTopicPartition

    from util import produce_all, producer

    c = cluster_factory(n=3, overrides=OVERRIDES)
    create_replicated_topic(c, "trim", 1, 3)
    produce_all(producer(c.bootstrap), [{"topic": "trim", "value": b"r%d" % i, "partition": 0}
                                        for i in range(100)])
    leader = c.partition_state("trim")[0][0]
    a = KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=10000)
    try:
        a.delete_records({KTopicPartition("trim", 0): 40})
    finally:
        a.close()

    followers = [n for n in c.nodes.values() if n.node_id != leader]
    assert list_offsets(c.node(leader), "trim", 0, -2) == (0, 40)
    assert list_offsets(c.node(leader), "trim", 0, -1) == (0, 100)
    for n in followers:
        # A consumer asking a follower is sent to the leader, as Kafka does.
        assert list_offsets(n, "trim", 0, -2)[0] == 6, f"node {n.node_id} answered as a leader"
        # Kafka's debugging replica id may read a follower: it follows the leader's log start.
        c.wait_for(lambda: list_offsets(n, "trim", 0, -2, replica_id=-2) == (0, 40), WAIT,
                   what=f"follower {n.node_id} to move its log start to 40")
        # ... and its latest offset is its log end (Kafka gives non-consumers no isolation bound).
        c.wait_for(lambda: list_offsets(n, "trim", 0, -1, replica_id=-2) == (0, 100), WAIT,
                   what=f"follower {n.node_id} to report log end 100")

    c.node(leader).kill()
    c.wait_for(lambda: c.partition_state("trim", via=followers[0])[0][0] not in (-1, leader), WAIT,
               what="a new leader for trim-0")
    new_leader = c.node(c.partition_state("trim", via=followers[0])[0][0])
    assert list_offsets(new_leader, "trim", 0, -2) == (0, 40), "deleted records came back after failover"
    got = consume_range(c.bootstrap, "trim", 0, 40, 60, timeout=WAIT)
    assert [m.value() for m in got] == [b"r%d" % i for i in range(40, 100)]
