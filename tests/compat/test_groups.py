"""Consumer groups (classic protocol): join/sync/heartbeat/rebalance with real clients, committed
offsets in __consumer_offsets (surviving restarts), static membership, cooperative-sticky,
auto.offset.reset, and the AdminClient's group APIs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import ConsumerGroupTopicPartitions

from util import OP_TIMEOUT, admin, create_topic, produce_all, producer

# Short sessions so a killed member is noticed quickly (Kafka's group.min.session.timeout.ms is 6 s).
SESSION_MS = 6000


def group_name() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


def group_consumer(bootstrap: str, group: str, conf: dict | None = None) -> Consumer:
    c = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": 500,
    }
    c.update(conf or {})
    return Consumer(c)


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


def committed_via_consumer(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """Like committed(), through a (non-subscribed) consumer of the group. After a restart Kafka
    answers COORDINATOR_LOAD_IN_PROGRESS for a while, and librdkafka 2.16's admin client crashes
    (SIGSEGV in rd_kafka_cgrp_op) on that answer to ListConsumerGroupOffsets; the consumer retries."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                res = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=OP_TIMEOUT)
                return {tp.partition: tp.offset for tp in res}
            except KafkaException as e:
                # Kafka answers NOT_COORDINATOR / LOAD_IN_PROGRESS while it reloads the group.
                if not e.args[0].retriable() and e.args[0].code() != KafkaError.NOT_COORDINATOR:
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        c.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-watermarks"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        c.close()


def poll_until(consumers: list, cond, timeout: float, step: float = 0.2, sink: list | None = None) -> None:
    """Poll every consumer (keeps their groups alive) until cond() or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            m = c.poll(step)
            if m is not None and sink is not None:
                sink.append(m)
        if cond():
            return
    raise AssertionError("condition not reached in time")


# --------------------------------------------------------------------------- failover

WORKER = r"""
import json, signal, sys, time
from confluent_kafka import Consumer, KafkaException
bootstrap, group, topic, name = sys.argv[1:5]
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
              "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
              "heartbeat.interval.ms": 500, "client.id": name})
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
        # A rebalance can take the partitions away between consume and commit.
        print(json.dumps({"commit_error": str(e)}), flush=True)
    time.sleep(0.1)
c.close()
"""


class Worker:
    def __init__(self, bootstrap: str, group: str, topic: str, name: str):
        self.name = name
        self.seen: list[tuple[int, int]] = []
        self.events: list[dict] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, bootstrap, group, topic, name],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

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
def test_three_consumers_one_killed_all_consumed_lag_zero(server, topic):
    partitions, per_partition = 6, 400
    create_topic(server.bootstrap, topic, partitions)
    fill(server.bootstrap, topic, partitions, per_partition)
    total = partitions * per_partition
    group = group_name()
    workers = [Worker(server.bootstrap, group, topic, f"w{i}") for i in range(3)]
    try:
        victim = workers[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(victim.seen) >= 20 and sum(len(w.seen) for w in workers) >= total // 5:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"consumers did not get going: {[len(w.seen) for w in workers]}")
        assert sum(len(w.seen) for w in workers) < total, "killed too late to be mid-stream"
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)

        ends = end_offsets(server.bootstrap, topic, partitions)
        assert ends == {p: per_partition for p in range(partitions)}
        deadline = time.monotonic() + 90
        last = None
        while time.monotonic() < deadline:
            last = committed(server.bootstrap, group, topic, partitions)
            if last == ends:
                break
            time.sleep(0.5)
        assert last == ends, f"committed {last} != end offsets {ends} (lag not 0)"
        seen = set()
        for w in workers:
            seen.update(w.seen)
        missing = {(p, o) for p in range(partitions) for o in range(per_partition)} - seen
        assert not missing, f"{len(missing)} records never consumed, e.g. {sorted(missing)[:5]}"
        # The survivors took over the victim's partitions.
        survivors = [set(p for p, _ in w.seen) for w in workers[1:]]
        assert survivors[0] | survivors[1] == set(range(partitions))
    finally:
        for w in workers:
            w.stop()


# --------------------------------------------------------------------------- restart


def test_commits_survive_broker_restart(server_factory, topic):
    srv = server_factory()
    partitions, per_partition = 3, 100
    create_topic(srv.bootstrap, topic, partitions)
    fill(srv.bootstrap, topic, partitions, per_partition)
    group = group_name()
    c = group_consumer(srv.bootstrap, group)
    c.subscribe([topic])
    got: list = []
    try:
        poll_until([c], lambda: len(got) >= 150, 60, sink=got)
        got = [m for m in got if not m.error()]
        c.commit(asynchronous=False)
    finally:
        c.close()
    before = committed_via_consumer(srv.bootstrap, group, topic, partitions)
    consumed_to = {}
    for m in got:
        consumed_to[m.partition()] = max(consumed_to.get(m.partition(), 0), m.offset() + 1)
    assert {p: o for p, o in before.items() if o >= 0} == consumed_to
    srv.restart()
    after = committed_via_consumer(srv.bootstrap, group, topic, partitions)
    assert after == before, "commits were not reloaded from __consumer_offsets"
    # A new member of the same group resumes exactly after the commits.
    c = group_consumer(srv.bootstrap, group)
    c.subscribe([topic])
    rest: list = []
    try:
        poll_until([c], lambda: len([m for m in rest if not m.error()]) >= 300 - len(got), 60, sink=rest)
        rest = [m for m in rest if not m.error()]
        first = {}
        for m in rest:
            first.setdefault(m.partition(), m.offset())
        for p, off in first.items():
            assert off == max(before[p], 0), f"partition {p} resumed at {off}, committed {before[p]}"
        assert len(rest) == 300 - len(got)
        c.commit(asynchronous=False)
    finally:
        c.close()
    assert committed_via_consumer(srv.bootstrap, group, topic, partitions) == {p: per_partition for p in range(partitions)}


# --------------------------------------------------------------------------- static membership


def test_static_member_rejoins_without_rebalance(server, topic):
    create_topic(server.bootstrap, topic, 4)
    group = group_name()
    events = {"a": [], "b": []}

    def make(name):
        c = group_consumer(server.bootstrap, group, {"group.instance.id": f"inst-{name}", "session.timeout.ms": 30000})
        c.subscribe(
            [topic],
            on_assign=lambda _c, ps: events[name].append(("assign", sorted(p.partition for p in ps))),
            on_revoke=lambda _c, ps: events[name].append(("revoke", sorted(p.partition for p in ps))),
        )
        return c

    a, b = make("a"), make("b")
    try:
        def assigned(name):
            return [e for e in events[name] if e[0] == "assign" and e[1]]

        poll_until([a, b], lambda: assigned("a") and assigned("b"), 60)
        a_parts = a.assignment()
        b_events = len(events["b"])
        # The static member goes away without leaving (librdkafka keeps static members in the
        # group on close) and comes back under the same group.instance.id.
        a.close()
        events["a"].clear()
        a = make("a")
        poll_until([a, b], lambda: bool(assigned("a")), 30)
        assert sorted(p.partition for p in a.assignment()) == sorted(p.partition for p in a_parts)
        # Keep polling a while: no rebalance reaches the other member.
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:
            a.poll(0.1)
            b.poll(0.1)
        assert len(events["b"]) == b_events, f"b saw a rebalance: {events['b'][b_events:]}"
        adm = admin(server.bootstrap)  # keep a reference: futures fail if the client is destroyed
        desc = adm.describe_consumer_groups([group])[group].result(timeout=OP_TIMEOUT)
        assert str(desc.state).endswith("STABLE")
        assert sorted(m.group_instance_id for m in desc.members) == ["inst-a", "inst-b"]
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- cooperative-sticky


def test_cooperative_sticky_incremental_rebalance(server, topic):
    create_topic(server.bootstrap, topic, 6)
    fill(server.bootstrap, topic, 6, 20)
    group = group_name()
    assigned = {"a": set(), "b": set()}
    revoked = {"a": [], "b": []}
    consumed: list = []

    def make(name):
        c = group_consumer(server.bootstrap, group, {"partition.assignment.strategy": "cooperative-sticky"})

        def on_assign(cons, ps):
            assigned[name].update(p.partition for p in ps)
            cons.incremental_assign(ps)

        def on_revoke(cons, ps):
            revoked[name].append(sorted(p.partition for p in ps))
            assigned[name].difference_update(p.partition for p in ps)
            cons.incremental_unassign(ps)

        c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
        return c

    a = make("a")
    try:
        poll_until([a], lambda: len(assigned["a"]) == 6, 60, sink=consumed)
        b = make("b")
        try:
            poll_until([a, b], lambda: len(assigned["a"]) == 3 and len(assigned["b"]) == 3, 60, sink=consumed)
            # Incremental: a gave up exactly the three partitions b got, and kept the rest.
            assert revoked["a"] and all(len(r) <= 3 for r in revoked["a"]), revoked
            assert assigned["a"].isdisjoint(assigned["b"])
            # Partitions that moved may be read again from the last commit (at-least-once), so
            # wait for every distinct record rather than for a count that duplicates can reach.
            poll_until([a, b], lambda: len({m.key() for m in consumed if not m.error()}) >= 120, 60,
                       sink=consumed)
            keys = {m.key() for m in consumed if not m.error()}
            assert len(keys) == 120
        finally:
            b.close()
    finally:
        a.close()


# --------------------------------------------------------------------------- kafka-python


def test_kafka_python_group_consumption_and_commit(server, topic):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    create_topic(server.bootstrap, topic, 3)
    fill(server.bootstrap, topic, 3, 10)
    group = group_name()
    c = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=SESSION_MS, heartbeat_interval_ms=1000,
                      request_timeout_ms=30_000)
    got = []
    try:
        deadline = time.monotonic() + 60
        while len(got) < 30 and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                got.extend(recs)
        assert len(got) == 30
        c.commit()
        for p in range(3):
            assert c.committed(KTP(topic, p)) == 10
    finally:
        c.close()
    assert committed(server.bootstrap, group, topic, 3) == {0: 10, 1: 10, 2: 10}
    # The next member of the group starts after the commits.
    fill(server.bootstrap, topic, 3, 1)
    c = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=SESSION_MS, heartbeat_interval_ms=1000)
    more = []
    try:
        deadline = time.monotonic() + 60
        while len(more) < 3 and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                more.extend(recs)
        assert sorted(r.offset for r in more) == [10, 10, 10]
    finally:
        c.close()


# --------------------------------------------------------------------------- auto.offset.reset


def _first_records(bootstrap, group, topic, reset, produce_after=False, timeout=30):
    c = group_consumer(bootstrap, group, {"auto.offset.reset": reset, "enable.partition.eof": True})
    c.subscribe([topic])
    out, errors = [], []
    try:
        deadline = time.monotonic() + timeout
        produced = False
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if produce_after and not produced:
                        fill(bootstrap, topic, 1, 2)
                        produced = True
                    elif not produce_after:
                        break
                    continue
                errors.append(m.error())
                break
            out.append(m)
            if produce_after and len(out) >= 2:
                break
        return out, errors
    finally:
        c.close()


def test_auto_offset_reset_earliest_latest_none(server, topic):
    create_topic(server.bootstrap, topic, 1)
    fill(server.bootstrap, topic, 1, 5)
    # earliest: a group with no commit starts at the log start.
    out, errors = _first_records(server.bootstrap, group_name(), topic, "earliest")
    assert not errors and [m.offset() for m in out] == [0, 1, 2, 3, 4]
    # latest: only what is produced after the consumer got its position.
    out, errors = _first_records(server.bootstrap, group_name(), topic, "latest", produce_after=True)
    assert not errors and [m.offset() for m in out] == [5, 6]
    # none (librdkafka spells it "error"): no commit means an error to the application.
    out, errors = _first_records(server.bootstrap, group_name(), topic, "error")
    assert not out and errors and errors[0].code() == KafkaError._AUTO_OFFSET_RESET, errors
    # A commit takes precedence over the reset policy.
    group = group_name()
    c = group_consumer(server.bootstrap, group)
    c.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    c.close()
    out, errors = _first_records(server.bootstrap, group, topic, "error")
    assert not errors and [m.offset() for m in out] == [3, 4, 5, 6]


def test_kafka_python_auto_offset_reset_none_raises(server, topic):
    from kafka import KafkaConsumer
    from kafka.errors import NoOffsetForPartitionError

    create_topic(server.bootstrap, topic, 1)
    fill(server.bootstrap, topic, 1, 2)
    c = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group_name(),
                      auto_offset_reset="none", enable_auto_commit=False,
                      session_timeout_ms=SESSION_MS, heartbeat_interval_ms=1000)
    try:
        with pytest.raises(NoOffsetForPartitionError):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                c.poll(timeout_ms=500)
    finally:
        c.close()


# --------------------------------------------------------------------------- admin and errors


def test_admin_list_describe_alter_delete_groups(server, topic):
    create_topic(server.bootstrap, topic, 2)
    fill(server.bootstrap, topic, 2, 5)
    a = admin(server.bootstrap)
    group = group_name()
    c = group_consumer(server.bootstrap, group, {"client.id": "admin-test-client"})
    c.subscribe([topic])
    try:
        poll_until([c], lambda: len(c.assignment()) == 2, 60)
        listed = a.list_consumer_groups(request_timeout=OP_TIMEOUT).result(timeout=OP_TIMEOUT)
        mine = [g for g in listed.valid if g.group_id == group]
        assert mine and str(mine[0].state).endswith("STABLE"), listed.valid
        desc = a.describe_consumer_groups([group])[group].result(timeout=OP_TIMEOUT)
        assert str(desc.state).endswith("STABLE")
        assert len(desc.members) == 1
        m = desc.members[0]
        assert m.client_id == "admin-test-client"
        assert m.host.lstrip("/") == "127.0.0.1"
        assert sorted(tp.partition for tp in m.assignment.topic_partitions) == [0, 1]
        assert desc.partition_assignor == "range" or desc.partition_assignor
        # A group with members cannot be deleted.
        fut = a.delete_consumer_groups([group], request_timeout=OP_TIMEOUT)[group]
        with pytest.raises(KafkaException) as e:
            fut.result(timeout=OP_TIMEOUT)
        assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    finally:
        c.close()
    # Empty now: alter offsets, read them back, then delete.
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 4)])
    res = a.alter_consumer_group_offsets([req], request_timeout=OP_TIMEOUT)[group].result(timeout=OP_TIMEOUT)
    assert all(tp.error is None for tp in res.topic_partitions), res.topic_partitions
    assert committed(server.bootstrap, group, topic, 2) == {0: 2, 1: 4}
    # Listing every committed partition (no partitions given).
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=OP_TIMEOUT)
    assert {(tp.topic, tp.partition, tp.offset) for tp in res.topic_partitions} == {(topic, 0, 2), (topic, 1, 4)}
    desc = a.describe_consumer_groups([group])[group].result(timeout=OP_TIMEOUT)
    assert str(desc.state).endswith("EMPTY")
    a.delete_consumer_groups([group], request_timeout=OP_TIMEOUT)[group].result(timeout=OP_TIMEOUT)
    listed = a.list_consumer_groups(request_timeout=OP_TIMEOUT).result(timeout=OP_TIMEOUT)
    assert group not in [g.group_id for g in listed.valid]
    # Offsets are gone with the group.
    assert committed(server.bootstrap, group, topic, 2) == {0: -1001, 1: -1001}


def test_commit_to_missing_partition_is_refused_per_partition(server, topic):
    create_topic(server.bootstrap, topic, 1)
    c = group_consumer(server.bootstrap, group_name())
    try:
        res = c.commit(offsets=[TopicPartition(topic, 0, 1), TopicPartition(topic, 7, 1)], asynchronous=False)
        by_p = {tp.partition: tp.error for tp in res}
        assert by_p[0] is None
        assert by_p[7] is not None and by_p[7].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    except KafkaException as e:
        # librdkafka may surface the per-partition error as the commit's error.
        assert e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    finally:
        c.close()


def test_kafka_python_admin_offset_delete_leave_and_states(server, topic):
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient, MemberToRemove
    from kafka import errors as kerr

    create_topic(server.bootstrap, topic, 2)
    fill(server.bootstrap, topic, 2, 3)
    group = group_name()
    ka = KafkaAdminClient(bootstrap_servers=server.bootstrap, request_timeout_ms=30_000)
    c = group_consumer(server.bootstrap, group)
    c.subscribe([topic])
    try:
        poll_until([c], lambda: len(c.assignment()) == 2, 60)
        c.commit(offsets=[TopicPartition(topic, 0, 1), TopicPartition(topic, 1, 2)], asynchronous=False)
        stable = [g["group_id"] for g in ka.list_groups(states_filter=["Stable"])]
        assert group in stable
        assert group not in [g["group_id"] for g in ka.list_groups(states_filter=["Empty"])]
        # OffsetDelete refuses the topics an active member subscribes to.
        res = ka.delete_group_offsets(group, [KTP(topic, 0)])
        assert res[KTP(topic, 0)] is kerr.GroupSubscribedToTopicError, res
        # LeaveGroup v3+ (batch) for a member that is not there.
        res = ka.remove_group_members(group, [MemberToRemove(member_id="nobody")])
        assert res["nobody"] is kerr.UnknownMemberIdError, res
        desc = ka.describe_groups([group])[group]
        assert desc["error"] is None and desc["group_state"] == "Stable"
        assert desc["members"][0]["member_metadata"]["topics"] == [topic]
    finally:
        c.close()
    res = ka.delete_group_offsets(group, [KTP(topic, 0)])
    assert res[KTP(topic, 0)] is kerr.NoError, res
    assert committed(server.bootstrap, group, topic, 2) == {0: -1001, 1: 2}
    with pytest.raises(kerr.GroupIdNotFoundError):
        ka.delete_group_offsets(group_name(), [KTP(topic, 0)])
    missing = ka.describe_groups(["no-such-group-" + uuid.uuid4().hex[:6]])
    (only,) = missing.values()
    # DescribeGroups v6 (KIP-1043): a missing group is Dead with GROUP_ID_NOT_FOUND.
    assert only["group_state"] == "Dead"
    assert "GroupIdNotFoundError" in (only["error"] or ""), only
    ka.close()
