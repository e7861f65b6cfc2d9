"""Consumer groups with the Java client (kafka-clients 4.x, tests/compat/java GroupWorker): the classic
protocol with eager `range` and `cooperative-sticky`, and Kafka 4's consumer protocol
(`group.protocol=consumer`, KIP-848) with the broker's assignors. Three consumers in one group on a
6-partition topic; one is killed with SIGKILL mid-stream; every record must be consumed and the
committed offsets must reach the end of every partition (lag 0).

The broker runs with short consumer-protocol sessions (6 s, as the classic members ask for), on strom
and on Kafka (COMPAT_TARGET=kafka) alike."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from test_java import java_classpath  # noqa: F401  (the fixture that builds tests/compat/java)
from util import OP_TIMEOUT, admin, create_topic, produce_all, producer

FAST_SESSIONS = {
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.session.timeout.ms": "6000",
    "group.consumer.heartbeat.interval.ms": "500",
    "group.consumer.min.heartbeat.interval.ms": "500",
}


@pytest.fixture(scope="module")
def broker(module_server_factory):
    return module_server_factory(FAST_SESSIONS)


def fill(bootstrap: str, topic: str, partitions: int, per_partition: int) -> None:
    records = [
        dict(topic=topic, partition=p, key=f"{p}-{i}".encode(), value=f"v{p}-{i}".encode())
        for i in range(per_partition)
        for p in range(partitions)
    ]
    log = produce_all(producer(bootstrap), records)
    assert not log.errors, log.errors[:3]


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    a = admin(bootstrap)
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    res = a.list_consumer_group_offsets([req], request_timeout=OP_TIMEOUT)[group].result(timeout=OP_TIMEOUT)
    return {tp.partition: tp.offset for tp in res.topic_partitions}


class JavaWorker:
    def __init__(self, cp: str, bootstrap: str, topic: str, group: str, name: str, protocol: str, assignor: str):
        self.seen: list[tuple[int, int]] = []
        self.events: list[dict] = []
        self.proc = subprocess.Popen(
            ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
             "-cp", cp, "dev.strom.compat.GroupWorker", bootstrap, topic, group, name, protocol, assignor],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if "p" in ev:
                self.seen.append((ev["p"], ev["o"]))
            else:
                self.events.append(ev)

    def _read_err(self):
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def wait_for(cond, timeout: float, what: str, workers=()):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        for w in workers:
            if w.proc.poll() is not None and w.proc.returncode not in (0, -9):
                raise AssertionError(f"a Java consumer exited {w.proc.returncode}:\n{''.join(w.stderr)[-4000:]}")
        time.sleep(0.2)
    detail = "\n".join(f"worker events: {w.events[:20]}\nstderr tail: {''.join(w.stderr)[-1500:]}" for w in workers)
    raise AssertionError(f"{what}: not reached in {timeout}s (last: {last!r})\n{detail}")


@pytest.mark.slow
@pytest.mark.parametrize("protocol,assignor", [
    ("classic", "range"),
    ("classic", "cooperative-sticky"),
    ("consumer", "uniform"),
    ("consumer", "range"),
])
def test_java_three_consumers_one_killed_all_consumed_lag_zero(broker, topic, java_classpath,  # noqa: F811
                                                               protocol, assignor):
    partitions, per_partition = 6, 1000
    create_topic(broker.bootstrap, topic, partitions)
    fill(broker.bootstrap, topic, partitions, per_partition)
    total = partitions * per_partition
    group = f"jg-{uuid.uuid4().hex[:10]}"
    workers = [JavaWorker(java_classpath, broker.bootstrap, topic, group, f"j{i}", protocol, assignor)
               for i in range(3)]
    try:
        victim = workers[0]
        # Start the kill once every member has had an assignment and the victim is consuming.
        wait_for(lambda: all(any(e.get("assigned") for e in w.events) for w in workers) and len(victim.seen) >= 10,
                 90, "all three consumers get partitions and the victim consumes", workers)
        assert sum(len(w.seen) for w in workers) < total, "killed too late to be mid-stream"
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)

        ends = {p: per_partition for p in range(partitions)}
        wait_for(lambda: committed(broker.bootstrap, group, topic, partitions) == ends, 120,
                 "committed offsets reach the end of every partition (lag 0)", workers[1:])

        def taken():
            t = set()
            for w in workers[1:]:
                for e in w.events:
                    t.update(e.get("assigned", []))
            return t
        # The survivors are given every partition, the victim's too (once its session times out),
        # whether or not anything was left to read in them.
        wait_for(lambda: taken() == set(range(partitions)), 60, "the survivors take over every partition",
                 workers[1:])
        seen = set()
        for w in workers:
            seen.update(w.seen)
        missing = {(p, o) for p in range(partitions) for o in range(per_partition)} - seen
        assert not missing, f"{len(missing)} records never consumed, e.g. {sorted(missing)[:5]}"
        for w in workers[1:]:
            assert not any("lost" in e for e in w.events), f"a survivor lost partitions: {w.events}"
        if assignor == "cooperative-sticky" or protocol == "consumer":
            # Incremental: a survivor only ever gives up what moves; the first assignment gives each
            # member two partitions and nobody revokes everything it owns when the victim leaves.
            for w in workers[1:]:
                revoked = [set(e["revoked"]) for e in w.events if "revoked" in e]
                assert all(len(r) < partitions for r in revoked), w.events
    finally:
        for w in workers:
            w.stop()
    for w in workers[1:]:
        # 143: the JVM's exit status after SIGTERM, once the shutdown hook closed the consumer.
        assert w.proc.returncode in (0, 143), f"a Java consumer did not close cleanly:\n{''.join(w.stderr)[-4000:]}"
