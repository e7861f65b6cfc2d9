"""Transactions with real clients: committed data visible and aborted data hidden under
read_committed (and both visible under read_uncommitted), an open transaction holding back
read_committed consumers, zombie fencing, and timed-out transactions aborted by the broker."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING

from util import OP_TIMEOUT, consumer, create_topic


def txn_producer(bootstrap: str, txn_id: str, **extra) -> Producer:
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "linger.ms": 5,
    }
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(OP_TIMEOUT)
    return p


def read_values(bootstrap: str, topic: str, isolation: str, expect_at_least: int = 0,
                wait: float = 3.0) -> list[bytes]:
    """Everything a consumer with `isolation` sees in partition 0 within `wait` seconds after the
    last record (at least `expect_at_least` records, else until OP_TIMEOUT)."""
    c = consumer(bootstrap, {"isolation.level": isolation, "enable.partition.eof": False})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out: list[bytes] = []
        deadline = time.monotonic() + OP_TIMEOUT
        quiet_until = time.monotonic() + wait
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                if len(out) >= expect_at_least and time.monotonic() > quiet_until:
                    break
                continue
            if m.error():
                raise AssertionError(f"consume error: {m.error()}")
            out.append(m.value())
            quiet_until = time.monotonic() + wait
        return out
    finally:
        c.close()


def test_commit_visible_abort_hidden(server, topic):
    create_topic(server.bootstrap, topic, 1)
    p = txn_producer(server.bootstrap, f"txn-{uuid.uuid4()}")
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=b"committed-%d" % i, partition=0)
    p.commit_transaction(OP_TIMEOUT)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=b"aborted-%d" % i, partition=0)
    p.flush(OP_TIMEOUT)
    p.abort_transaction(OP_TIMEOUT)
    p.begin_transaction()
    p.produce(topic, value=b"committed-after", partition=0)
    p.commit_transaction(OP_TIMEOUT)

    committed = read_values(server.bootstrap, topic, "read_committed", expect_at_least=6)
    assert committed == [b"committed-%d" % i for i in range(5)] + [b"committed-after"]
    uncommitted = read_values(server.bootstrap, topic, "read_uncommitted", expect_at_least=9)
    assert uncommitted == ([b"committed-%d" % i for i in range(5)]
                           + [b"aborted-%d" % i for i in range(3)] + [b"committed-after"])


def test_open_transaction_holds_back_read_committed(server, topic):
    create_topic(server.bootstrap, topic, 1)
    p = txn_producer(server.bootstrap, f"txn-{uuid.uuid4()}")
    plain = Producer({"bootstrap.servers": server.bootstrap})
    p.begin_transaction()
    p.produce(topic, value=b"in-txn", partition=0)
    p.flush(OP_TIMEOUT)
    plain.produce(topic, value=b"plain-after", partition=0)
    assert plain.flush(OP_TIMEOUT) == 0
    # The plain record sits after the open transaction's first offset: not stable yet.
    assert read_values(server.bootstrap, topic, "read_committed", wait=2.0) == []
    assert read_values(server.bootstrap, topic, "read_uncommitted", expect_at_least=2) == [
        b"in-txn", b"plain-after"]
    p.commit_transaction(OP_TIMEOUT)
    assert read_values(server.bootstrap, topic, "read_committed", expect_at_least=2) == [
        b"in-txn", b"plain-after"]


def test_zombie_is_fenced(server, topic):
    create_topic(server.bootstrap, topic, 1)
    txn_id = f"txn-{uuid.uuid4()}"
    zombie = txn_producer(server.bootstrap, txn_id)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie", partition=0)
    zombie.flush(OP_TIMEOUT)
    # A new instance with the same transactional.id fences the old one and aborts its transaction.
    fresh = txn_producer(server.bootstrap, txn_id)
    fresh.begin_transaction()
    fresh.produce(topic, value=b"fresh", partition=0)
    fresh.commit_transaction(OP_TIMEOUT)
    with pytest.raises(KafkaException) as err:
        zombie.produce(topic, value=b"zombie-2", partition=0)
        zombie.commit_transaction(OP_TIMEOUT)
    assert err.value.args[0].code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                        KafkaError.INVALID_PRODUCER_EPOCH), err.value
    assert read_values(server.bootstrap, topic, "read_committed", expect_at_least=1) == [b"fresh"]


def test_timed_out_transaction_is_aborted_by_the_broker(server, topic):
    create_topic(server.bootstrap, topic, 1)
    p = txn_producer(server.bootstrap, f"txn-{uuid.uuid4()}", **{"transaction.timeout.ms": 2000})
    p.begin_transaction()
    p.produce(topic, value=b"abandoned", partition=0)
    p.flush(OP_TIMEOUT)
    plain = Producer({"bootstrap.servers": server.bootstrap})
    plain.produce(topic, value=b"plain", partition=0)
    assert plain.flush(OP_TIMEOUT) == 0
    # Kafka checks for timed-out transactions every 10 s; wait long enough for either broker.
    got = read_values(server.bootstrap, topic, "read_committed", expect_at_least=1, wait=1.0)
    deadline = time.monotonic() + 25
    while got != [b"plain"] and time.monotonic() < deadline:
        time.sleep(1)
        got = read_values(server.bootstrap, topic, "read_committed", expect_at_least=1, wait=1.0)
    assert got == [b"plain"]


def test_cli_describes_and_aborts_a_hanging_transaction(server, topic):
    """kafka-transactions.sh's workflow with `strom transactions`: an abandoned transaction pins
    the last stable offset; describe-producers shows its start offset; abort releases it."""
    import subprocess

    from conftest import TARGET, find_strom_bin, require_strom_bin

    if TARGET == "kafka" and find_strom_bin() is None:
        pytest.skip("strom binary not built")
    strom = str(require_strom_bin())

    def cli(*args: str) -> str:
        r = subprocess.run([strom, "transactions", *args, "--bootstrap-server", server.bootstrap],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"strom transactions {args} exited {r.returncode}: {r.stderr}"
        return r.stdout

    create_topic(server.bootstrap, topic, 1)
    txn_id = f"txn-{uuid.uuid4()}"
    p = txn_producer(server.bootstrap, txn_id, **{"transaction.timeout.ms": 600000})
    p.begin_transaction()
    p.produce(topic, value=b"hanging", partition=0)
    p.flush(OP_TIMEOUT)
    plain = Producer({"bootstrap.servers": server.bootstrap})
    plain.produce(topic, value=b"plain", partition=0)
    assert plain.flush(OP_TIMEOUT) == 0
    assert read_values(server.bootstrap, topic, "read_committed", wait=1.0) == []

    assert txn_id in cli("list")
    described = cli("describe", "--transactional-id", txn_id).splitlines()[1].split("\t")
    assert described[0] == txn_id and described[3] == "Ongoing", described
    producers = [line.split("\t") for line in cli("describe-producers", "--topic", topic, "--partition", "0").splitlines()[1:]]
    open_txns = [row for row in producers if row[5] != "None"]
    assert [row[5] for row in open_txns] == ["0"], producers

    cli("abort", "--topic", topic, "--partition", "0", "--start-offset", "0")
    assert read_values(server.bootstrap, topic, "read_committed", expect_at_least=1) == [b"plain"]


def test_consume_transform_produce_exactly_once_across_sigkill(server, topic):
    """send_offsets_to_transaction: the input offsets commit with the output records, so killing
    the processor and starting another leaves every input record in the output exactly once."""
    import os
    import signal
    import subprocess
    import sys

    out_topic = topic + "-out"
    create_topic(server.bootstrap, topic, 2)
    create_topic(server.bootstrap, out_topic, 2)
    n = 3000
    plain = Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 5})
    for i in range(n):
        plain.produce(topic, value=b"rec-%d" % i, partition=i % 2)
    assert plain.flush(OP_TIMEOUT) == 0

    script = os.path.join(os.path.dirname(__file__), "eos_processor.py")
    args = [sys.executable, script, server.bootstrap, topic, out_topic, f"eos-{uuid.uuid4()}",
            f"eos-txn-{uuid.uuid4()}"]

    def run_until(min_commits: int, timeout: float) -> subprocess.Popen:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        commits = 0
        deadline = time.monotonic() + timeout
        while commits < min_commits and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            commits += line.startswith("committed")
        return proc

    first = run_until(5, 60)
    first.send_signal(signal.SIGKILL)  # mid-stream: possibly inside a transaction
    first.wait(10)
    second = run_until(10**9, 0)  # start it and let it run
    try:
        got: list[bytes] = []
        deadline = time.monotonic() + 90
        while len(got) < n and time.monotonic() < deadline:
            time.sleep(1)
            c = consumer(server.bootstrap, {"isolation.level": "read_committed"})
            try:
                from confluent_kafka import OFFSET_BEGINNING
                c.assign([TopicPartition(out_topic, p, OFFSET_BEGINNING) for p in range(2)])
                got = []
                eof = set()
                end = time.monotonic() + 10
                while len(eof) < 2 and time.monotonic() < end:
                    for m in c.consume(num_messages=1000, timeout=0.5):
                        if m.error():
                            if m.error().code() == KafkaError._PARTITION_EOF:
                                eof.add(m.partition())
                            continue
                        got.append(m.value())
            finally:
                c.close()
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait(10)
    expected = sorted(b"REC-%d" % i for i in range(n))
    dupes = len(got) - len(set(got))
    assert dupes == 0, f"{dupes} records appear more than once in the output"
    assert sorted(got) == expected, f"{len(got)} of {n} records in the output"
