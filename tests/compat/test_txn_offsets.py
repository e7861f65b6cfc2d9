"""Offsets committed inside a transaction (send_offsets_to_transaction) are durable before the
transaction ends: a broker crash between TxnOffsetCommit and EndTxn keeps them, the commit then
applies them and an abort drops them, and committed ones survive a further restart (they live in
__consumer_offsets as transactional records decided by the marker, as in Kafka)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from util import OP_TIMEOUT, create_topic


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return [tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(partitions)],
                                                 timeout=OP_TIMEOUT)]
    finally:
        c.close()


def group_metadata(bootstrap: str, group: str):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    return c, c.consumer_group_metadata()


def retry(f, timeout: float = 60.0):
    """f() until it stops raising a retriable error (the broker is coming back after a crash)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return f()
        except KafkaException as e:
            err = e.args[0]
            coordinator_moving = err.code() in (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                                                KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
            if time.monotonic() > deadline or not (err.retriable() or err.code() < 0 or coordinator_moving):
                raise
            time.sleep(0.5)


def test_txn_offsets_survive_a_crash_before_end_txn(server_factory, topic):
    srv = server_factory()
    create_topic(srv.bootstrap, topic, 2)
    commit_group, abort_group = f"g-commit-{uuid.uuid4().hex[:6]}", f"g-abort-{uuid.uuid4().hex[:6]}"

    producers = {}
    for group, offsets in ((commit_group, (7, 11)), (abort_group, (5, 6))):
        p = Producer({"bootstrap.servers": srv.bootstrap, "transactional.id": f"txn-{group}",
                      "linger.ms": 5, "transaction.timeout.ms": 120000})
        p.init_transactions(OP_TIMEOUT)
        p.begin_transaction()
        p.produce(topic, value=group.encode(), partition=0)
        assert p.flush(OP_TIMEOUT) == 0
        c, meta = group_metadata(srv.bootstrap, group)
        p.send_offsets_to_transaction([TopicPartition(topic, 0, offsets[0]), TopicPartition(topic, 1, offsets[1])],
                                      meta, OP_TIMEOUT)
        c.close()
        producers[group] = p

    srv.kill()  # a crash: TxnOffsetCommit answered, EndTxn not sent yet
    srv.start()

    retry(lambda: producers[commit_group].commit_transaction(OP_TIMEOUT))
    retry(lambda: producers[abort_group].abort_transaction(OP_TIMEOUT))
    assert retry(lambda: committed(srv.bootstrap, commit_group, topic, 2)) == [7, 11]
    assert retry(lambda: committed(srv.bootstrap, abort_group, topic, 2)) == [-1001, -1001]  # none

    srv.kill()
    srv.start()
    assert retry(lambda: committed(srv.bootstrap, commit_group, topic, 2)) == [7, 11]
    assert retry(lambda: committed(srv.bootstrap, abort_group, topic, 2)) == [-1001, -1001]
