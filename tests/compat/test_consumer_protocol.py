"""Kafka 4's consumer group protocol (KIP-848, `group.protocol=consumer`): ConsumerGroupHeartbeat with
the server-side assignors, ConsumerGroupDescribe, ListGroups with the type filter, offsets committed with
the member epoch, with librdkafka's and the Java client's consumers (Java ones in test_java_groups.py).

The brokers here run with short consumer-group sessions (group.consumer.session.timeout.ms, 6 s) so a
killed member is noticed quickly; Kafka needs its min/max bounds lowered for that too, which strom accepts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka import ConsumerGroupState, ConsumerGroupType

from util import OP_TIMEOUT, admin, create_topic, produce_all, producer

# The broker settings for quick failover; the same keys on strom and on Kafka (the oracle).
FAST_SESSIONS = {
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.session.timeout.ms": "6000",
    "group.consumer.heartbeat.interval.ms": "500",
    "group.consumer.min.heartbeat.interval.ms": "500",
}


@pytest.fixture(scope="module")
def broker(module_server_factory):
    return module_server_factory(FAST_SESSIONS)


def group_name() -> str:
    return f"cg-{uuid.uuid4().hex[:10]}"


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


def consumer(bootstrap: str, group: str, **extra) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    conf.update(extra)
    return Consumer(conf)


def describe(bootstrap: str, group: str):
    a = admin(bootstrap)  # kept alive until the answer is in: a collected client never completes it
    deadline = time.monotonic() + 30
    while True:
        try:
            return a.describe_consumer_groups([group], request_timeout=OP_TIMEOUT)[group].result(
                timeout=OP_TIMEOUT)
        except KafkaException as e:
            # A fresh Kafka answers NOT_COORDINATOR while it loads __consumer_offsets.
            if e.args[0].name() not in ("NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS") \
                    or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_for(cond, timeout: float, what: str, poll=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if poll:
            for c in poll:
                c.poll(0.1)
        last = cond()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not reached in {timeout}s (last: {last!r})")


WORKER = r"""
import json, signal, sys, time
from confluent_kafka import Consumer, KafkaException
bootstrap, group, topic, name, assignor = sys.argv[1:6]
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
conf = {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
        "enable.auto.commit": False, "auto.offset.reset": "earliest", "client.id": name}
if assignor != "-":
    conf["group.remote.assignor"] = assignor
c = Consumer(conf)
c.subscribe([topic], on_assign=lambda c, ps: print(json.dumps({"assigned": sorted(p.partition for p in ps)}), flush=True))
while not stop:
    got = [m for m in c.consume(num_messages=10, timeout=0.3) if not m.error()]
    if not got:
        continue
    for m in got:
        print(json.dumps({"p": m.partition(), "o": m.offset()}), flush=True)
    try:
        c.commit(asynchronous=False)
    except KafkaException as e:
        print(json.dumps({"commit_error": str(e)}), flush=True)
    time.sleep(0.05)
c.close()
"""


class Worker:
    def __init__(self, bootstrap: str, group: str, topic: str, name: str, assignor: str = "-"):
        self.seen: list[tuple[int, int]] = []
        self.events: list[dict] = []
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, bootstrap, group, topic, name, assignor],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

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

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.mark.slow
@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_three_consumers_one_killed_all_consumed_lag_zero(broker, topic, assignor):
    partitions, per_partition = 6, 300
    create_topic(broker.bootstrap, topic, partitions)
    fill(broker.bootstrap, topic, partitions, per_partition)
    total = partitions * per_partition
    group = group_name()
    workers = [Worker(broker.bootstrap, group, topic, f"w{i}", assignor) for i in range(3)]
    try:
        victim = workers[0]
        wait_for(lambda: len(victim.seen) >= 10 and sum(len(w.seen) for w in workers) >= total // 6, 60,
                 "consumers get going")
        assert sum(len(w.seen) for w in workers) < total, "killed too late to be mid-stream"
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)

        ends = {p: per_partition for p in range(partitions)}
        last = wait_for(lambda: (lambda c: c if c == ends else None)(committed(broker.bootstrap, group, topic,
                                                                                 partitions)),
                        90, "committed offsets reach the end (lag 0)")
        assert last == ends
        seen = set()
        for w in workers:
            seen.update(w.seen)
        missing = {(p, o) for p in range(partitions) for o in range(per_partition)} - seen
        assert not missing, f"{len(missing)} records never consumed, e.g. {sorted(missing)[:5]}"
        survivors = [set(p for p, _ in w.seen) for w in workers[1:]]
        assert survivors[0] | survivors[1] == set(range(partitions))

        # The group as ConsumerGroupDescribe shows it: two members sharing the six partitions, the
        # killed one fenced after its session; the assignor the members asked for.
        def two_members():
            d = describe(broker.bootstrap, group)
            return d if len(d.members) == 2 and d.state == ConsumerGroupState.STABLE else None
        d = wait_for(two_members, 30, "the group settles with the two survivors")
        assert d.type == ConsumerGroupType.CONSUMER
        assert d.partition_assignor == assignor
        owned = sorted(tp.partition for m in d.members for tp in m.assignment.topic_partitions)
        assert owned == list(range(partitions))
        assert {m.client_id for m in d.members} == {"w1", "w2"}
    finally:
        for w in workers:
            w.stop()


def test_list_groups_by_type_and_describe(broker, topic):
    create_topic(broker.bootstrap, topic, 3)
    fill(broker.bootstrap, topic, 3, 5)
    group = group_name()
    c = consumer(broker.bootstrap, group)
    try:
        c.subscribe([topic])
        got = []
        wait_for(lambda: len(got) >= 15 or got.extend(m for m in c.consume(15, 0.2) if not m.error()), 30,
                 "the member consumes")
        c.commit(asynchronous=False)
        a = admin(broker.bootstrap)

        def listed(types):
            r = a.list_consumer_groups(types=types, request_timeout=OP_TIMEOUT).result(timeout=OP_TIMEOUT)
            return {g.group_id: g for g in r.valid}
        consumers = listed({ConsumerGroupType.CONSUMER})
        assert group in consumers
        assert consumers[group].type == ConsumerGroupType.CONSUMER
        assert consumers[group].state == ConsumerGroupState.STABLE
        assert group not in listed({ConsumerGroupType.CLASSIC})

        d = describe(broker.bootstrap, group)
        assert d.type == ConsumerGroupType.CONSUMER
        assert d.partition_assignor == "uniform"  # group.consumer.assignors' first
        (m,) = d.members
        assert sorted(tp.partition for tp in m.assignment.topic_partitions) == [0, 1, 2]
        assert committed(broker.bootstrap, group, topic, 3) == {0: 5, 1: 5, 2: 5}

        # A group with a member cannot be deleted.
        res = a.delete_consumer_groups([group], request_timeout=OP_TIMEOUT)[group]
        with pytest.raises(KafkaException) as e:
            res.result(timeout=OP_TIMEOUT)
        assert e.value.args[0].name() == "NON_EMPTY_GROUP"
    finally:
        c.close()
    # close() leaves with epoch -1: the group is empty at once, keeps its offsets, and can be deleted.
    d = wait_for(lambda: (lambda d: d if d.state == ConsumerGroupState.EMPTY else None)(
        describe(broker.bootstrap, group)), 15, "the group is empty after close")
    assert not d.members
    assert committed(broker.bootstrap, group, topic, 3) == {0: 5, 1: 5, 2: 5}
    a = admin(broker.bootstrap)
    a.delete_consumer_groups([group], request_timeout=OP_TIMEOUT)[group].result(timeout=OP_TIMEOUT)
    assert committed(broker.bootstrap, group, topic, 3) == {0: -1001, 1: -1001, 2: -1001}


def test_unknown_remote_assignor_is_refused(broker, topic):
    """UNSUPPORTED_ASSIGNOR is fatal for librdkafka: it reports it through error_cb, naming the cause."""
    create_topic(broker.bootstrap, topic, 1)
    errors = []
    c = consumer(broker.bootstrap, group_name(), **{"group.remote.assignor": "no-such-assignor",
                                                     "error_cb": errors.append})
    try:
        c.subscribe([topic])

        def fatal_seen():
            m = c.poll(0.2)
            if m is not None and m.error():
                errors.append(m.error())
            return [e for e in errors if e.fatal() or e.name() == "_FATAL"]
        fatal = wait_for(fatal_seen, 30, "a fatal error reaches the client")
        assert "assignor" in fatal[0].str() and "not supported" in fatal[0].str(), fatal[0].str()
    finally:
        c.close()


def test_cli_describes_a_consumer_group(broker, topic):
    """`strom group describe` shows a consumer-protocol group's members, owners, lag and state (through
    ConsumerGroupDescribe), and refuses to reset the offsets of an active one."""
    from test_cli import cli, strom_cli  # noqa: F401
    from conftest import TARGET, find_strom_bin
    if TARGET == "kafka" and find_strom_bin() is None:
        pytest.skip("strom binary not built: the console tools cannot be run against Kafka")
    binary = str(find_strom_bin())
    create_topic(broker.bootstrap, topic, 2)
    fill(broker.bootstrap, topic, 2, 5)
    group = group_name()
    c = consumer(broker.bootstrap, group, **{"client.id": "cli-member"})
    try:
        c.subscribe([topic])
        got = []
        wait_for(lambda: len(got) >= 10 or got.extend(m for m in c.consume(10, 0.2) if not m.error()), 30,
                 "the member consumes")
        c.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 5)], asynchronous=False)

        def rows(*extra):
            out = cli(binary, broker, "group", "describe", group, *extra).stdout
            return [line.split("\t") for line in out.splitlines()[1:]]
        lag = {int(r[2]): (int(r[3]), int(r[4]), int(r[5]), r[8]) for r in rows() if r[1] == topic}
        assert lag == {0: (3, 5, 2, "cli-member"), 1: (5, 5, 0, "cli-member")}
        (state,) = rows("--state")
        assert (state[2], state[3], state[4]) == ("uniform", "Stable", "1")
        (member,) = rows("--members")
        assert member[3:] == ["cli-member", "2"]
        r = cli(binary, broker, "group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute",
                check=False)
        assert r.returncode != 0 and "inactive" in r.stderr, r.stderr
    finally:
        c.close()
    (state,) = [line.split("\t") for line in
                cli(binary, broker, "group", "describe", group, "--state").stdout.splitlines()[1:]]
    assert state[3] == "Empty"


def test_group_survives_broker_restart(server_factory, topic):
    """Consumer-group records in __consumer_offsets bring the group back after a restart: the member
    carries on with the same member id and its assignment, and its committed offsets are kept."""
    srv = server_factory(FAST_SESSIONS)
    create_topic(srv.bootstrap, topic, 3)
    fill(srv.bootstrap, topic, 3, 10)
    group = group_name()
    c = consumer(srv.bootstrap, group)
    try:
        c.subscribe([topic])
        got = []
        wait_for(lambda: len(got) >= 30 or got.extend(m for m in c.consume(30, 0.2) if not m.error()), 30,
                 "the member consumes")
        c.commit(asynchronous=False)
        before = wait_for(lambda: (lambda d: d if d.state == ConsumerGroupState.STABLE else None)(
            describe(srv.bootstrap, group)), 15, "stable before the restart")
        (m_before,) = before.members
        srv.stop()
        srv.start()
        fill(srv.bootstrap, topic, 3, 10)
        wait_for(lambda: len(got) >= 60 or got.extend(m for m in c.consume(30, 0.2) if not m.error()), 60,
                 "the member consumes after the restart")
        c.commit(asynchronous=False)
        after = describe(srv.bootstrap, group)
        (m_after,) = after.members
        assert m_after.member_id == m_before.member_id
        assert sorted((m.partition(), m.offset()) for m in got) == sorted(
            (p, o) for p in range(3) for o in range(20))
        assert committed(srv.bootstrap, group, topic, 3) == {0: 20, 1: 20, 2: 20}
    finally:
        c.close()


def test_static_member_restarts_without_rebalance(broker, topic):
    """A static member (group.instance.id) that closes leaves with epoch -2 and keeps its partitions; the
    same instance coming back within the session gets them again, and the other member sees no change."""
    create_topic(broker.bootstrap, topic, 4)
    group = group_name()
    events = []
    other = consumer(broker.bootstrap, group, **{"client.id": "other"})
    other.subscribe([topic], on_assign=lambda c, ps: events.append(("assign", sorted(p.partition for p in ps))),
                    on_revoke=lambda c, ps: events.append(("revoke", sorted(p.partition for p in ps))))
    static = consumer(broker.bootstrap, group, **{"group.instance.id": "inst-1", "client.id": "static"})
    static.subscribe([topic])

    def settled():
        d = describe(broker.bootstrap, group)
        sizes = sorted(len(m.assignment.topic_partitions) for m in d.members)
        # The coordinator is Stable once the leader has synced; each client holds its share only after its
        # own SyncGroup answer is served by poll(), so wait for both, or a late on_assign lands below.
        held = [len(other.assignment()), len(static.assignment())]
        return d if d.state == ConsumerGroupState.STABLE and sizes == [2, 2] and held == [2, 2] else None
    wait_for(settled, 30, "two members with two partitions each", poll=[other, static])
    mine = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
            for m in describe(broker.bootstrap, group).members}
    events.clear()
    static.close()
    try:
        # Away, but within its session: its partitions stay its own.
        end = time.monotonic() + 2
        while time.monotonic() < end:
            other.poll(0.1)
        assert not events, events
        back = consumer(broker.bootstrap, group, **{"group.instance.id": "inst-1", "client.id": "static"})
        try:
            back.subscribe([topic])
            got = []
            back_assigned = wait_for(lambda: (lambda a: sorted(p.partition for p in a) if a else None)(
                back.assignment()) or back.poll(0.1) and None, 30, "the static member is back", poll=[other])
            assert back_assigned == mine["static"]
            for _ in range(10):
                other.poll(0.1)
            assert not events, f"the other member saw a rebalance: {events}"
            assert not got
        finally:
            back.close()
    finally:
        other.close()
