"""Separate controllers and brokers (#6, process.roles): three controller-only nodes form the Raft
metadata quorum and three broker-only nodes follow it. Clients see only the brokers; replicas land
only on brokers; losing the active controller elects another while the brokers carry on; losing a
broker moves its leaderships. One broker finds the quorum through controller.quorum.bootstrap.servers
alone. Clients: confluent-kafka (librdkafka), kafka-python admin for DescribeCluster.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from confluent_kafka.admin import NewTopic

from cluster import SESSION_TIMEOUT_MS, cluster_factory  # noqa: F401  (pytest fixture)
from conftest import api_versions_probe, require_strom_bin
from util import OP_TIMEOUT, admin, consume_all, produce_all, producer

CONTROLLERS = {1, 2, 3}
BROKERS = {4, 5, 6}
ROLES = {**{i: "controller" for i in CONTROLLERS}, **{i: "broker" for i in BROKERS}}


def create(bootstrap: str, name: str, partitions: int, rf: int):
    a = admin(bootstrap)  # kept alive until the result is in
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf)],
                         request_timeout=OP_TIMEOUT)
    return fs[name].result(timeout=OP_TIMEOUT)


def records(topic: str, start: int, n: int) -> list[dict]:
    return [{"topic": topic, "key": f"k{i}".encode(), "value": f"v{i}".encode()} for i in range(start, start + n)]


def values(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    got = consume_all(bootstrap, topic, partitions)
    return sorted(m.value() for ms in got.values() for m in ms)


@pytest.mark.timeout(90)
def test_controller_only_and_broker_only_nodes(cluster_factory):
    t0 = time.monotonic()
    c = cluster_factory(roles=ROLES, start=False)
    # Node 6 is told only where two controllers are, not who the voters are.
    c.node(6).overrides.update({
        "controller.quorum.voters": "",
        "controller.quorum.bootstrap.servers": ",".join(
            f"127.0.0.1:{c.node(i).controller_port}" for i in (1, 2)),
    })
    c.start()

    # Clients see the brokers only; a controller's listener does not speak the Kafka protocol.
    for b in c.brokers():
        assert set(c.metadata(b).brokers) == BROKERS
    for ctl in c.controllers():
        assert not api_versions_probe("127.0.0.1", ctl.controller_port, timeout=1.0)
    cid = c.controller_id()
    assert cid in CONTROLLERS

    # Replicas go to brokers only: RF=3 uses all three, RF=4 cannot be met by six nodes.
    create(c.bootstrap, "rf3", partitions=3, rf=3)
    create(c.bootstrap, "rf2", partitions=4, rf=2)
    for topic, rf in (("rf3", 3), ("rf2", 2)):
        state = c.wait_for(lambda t=topic: len(c.partition_state(t)) > 0 and c.partition_state(t),
                           what=f"{topic} described")
        for p, (leader, _epoch, replicas, isr) in state.items():
            assert len(replicas) == rf and set(replicas) <= BROKERS, (topic, p, replicas)
            assert leader in BROKERS, (topic, p, leader)
    with pytest.raises(Exception) as e:
        create(c.bootstrap, "rf4", partitions=1, rf=4)
    assert "INVALID_REPLICATION_FACTOR" in str(e.value) or "replication factor" in str(e.value).lower()

    p = producer(c.bootstrap)
    log = produce_all(p, records("rf2", 0, 200))
    assert not log.errors and len(log.ok) == 200
    assert values(c.bootstrap, "rf2", 4) == sorted(f"v{i}".encode() for i in range(200))

    # The active controller dies: another controller takes over; brokers stay registered (not
    # fenced for missed heartbeats) and writes and topic creation go on.
    c.node(cid).kill()
    # While no leader is known a broker names itself in DescribeCluster: wait for a controller.
    new = c.wait_for(lambda: (x := c.controller_id()) in CONTROLLERS - {cid} and x, what="a new active controller")
    time.sleep(SESSION_TIMEOUT_MS / 1000 + 1)
    for b in c.brokers():
        assert set(c.metadata(b).brokers) == BROKERS, "a broker was fenced across the controller failover"
    create(c.bootstrap, "after-failover", partitions=2, rf=2)
    log = produce_all(p, records("rf2", 200, 100))
    assert not log.errors and len(log.ok) == 100

    # A broker dies: it is fenced and the partitions it led move to the other brokers.
    before = c.partition_state("rf2")
    victim = before[0][0]
    led = [q for q, s in before.items() if s[0] == victim]
    c.node(victim).kill()

    def moved():
        now = c.partition_state("rf2")
        return all(now[q][0] in BROKERS - {victim} and now[q][1] > before[q][1] for q in led) and now
    c.wait_for(moved, timeout=SESSION_TIMEOUT_MS / 1000 + 15, what=f"leadership to move off broker {victim}")
    c.wait_for(lambda: all(set(c.metadata(b).brokers) == BROKERS - {victim} for b in c.live_nodes()),
               what=f"broker {victim} to leave the broker list")
    log = produce_all(p, records("rf2", 300, 100))
    assert not log.errors and len(log.ok) == 100
    assert values(c.bootstrap, "rf2", 4) == sorted(f"v{i}".encode() for i in range(400))

    # strom cluster describe through a broker-only node names the controllers as the voters.
    out = subprocess.run([str(require_strom_bin()), "cluster", "describe", "--bootstrap-server", c.bootstrap],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"Leader: {new}" in out.stdout, out.stdout
    for i in sorted(CONTROLLERS):
        assert f"Voter: {i}" in out.stdout, out.stdout
    assert time.monotonic() - t0 < 90


def test_bad_role_configs_stop_the_node_naming_the_key(tmp_path):
    strom = str(require_strom_bin())
    cases = [
        # A broker-only node listed among the voters.
        (["process.roles=broker", "node.id=2", "listeners=PLAINTEXT://127.0.0.1:0",
          "controller.quorum.voters=1@127.0.0.1:1,2@127.0.0.1:2"], "controller.quorum.voters"),
        # A controller-only node without a CONTROLLER listener.
        (["process.roles=controller", "node.id=1", "listeners=PLAINTEXT://127.0.0.1:0",
          "controller.quorum.voters=1@127.0.0.1:1"], "listeners"),
        # A broker-only node with no way to find the quorum.
        (["process.roles=broker", "node.id=4", "listeners=PLAINTEXT://127.0.0.1:0"], "process.roles"),
    ]
    for overrides, key in cases:
        cmd = [strom, "server", f"--override=log.dirs={tmp_path / 'data'}"]
        cmd += [f"--override={o}" for o in overrides]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        assert out.returncode != 0, (overrides, out.stdout, out.stderr)
        assert f"for configuration {key}" in out.stderr + out.stdout, (overrides, out.stderr)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(require_strom_bin()), "cluster", *args], capture_output=True, text=True, timeout=60)


SEEN: dict[str, str] = {}


def voters(c) -> set[int]:
    out = cli("describe", "--bootstrap-server", c.bootstrap)
    assert out.returncode == 0, out.stderr
    SEEN["describe"] = out.stdout  # shown when a wait on it fails
    return {int(line.split("Voter: ")[1].split()[0]) for line in out.stdout.splitlines() if "Voter: " in line}


def wait_voters(c, want: set[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while voters(c) != want:
        if time.monotonic() > deadline:
            pytest.fail(f"voters never became {sorted(want)}; last describe:\n{SEEN['describe']}\n{c.logs()}",
                        pytrace=False)
        time.sleep(0.3)


def test_voters_are_added_and_removed_at_runtime(cluster_factory):
    """KIP-853 style: controller 4 starts outside the quorum and is added with `strom cluster
    add-voter`; two original voters are removed and stopped; the quorum (the leader and 4) still
    commits, which it could not if 4 did not vote."""
    c = cluster_factory(roles={1: "controller", 2: "controller", 3: "controller", 4: "controller", 5: "broker"},
                        joining={4})
    assert voters(c) == CONTROLLERS
    ctl = c.controller_id()
    out = cli("add-voter", "--node-id", "4", "--controller", f"127.0.0.1:{c.node(4).controller_port}",
              "--bootstrap-server", c.bootstrap)
    assert out.returncode == 0, out.stderr + out.stdout
    wait_voters(c, CONTROLLERS | {4})
    out = cli("add-voter", "--node-id", "4", "--controller", f"127.0.0.1:{c.node(4).controller_port}",
              "--bootstrap-server", c.bootstrap)
    assert out.returncode != 0 and "already a voter" in out.stderr, out.stderr

    gone = sorted(CONTROLLERS - {ctl})
    out = cli("remove-voter", "--node-id", str(gone[0]), "--bootstrap-server", c.bootstrap)
    assert out.returncode == 0, out.stderr + out.stdout
    wait_voters(c, {ctl, gone[1], 4})
    out = cli("remove-voter", "--node-id", "9", "--bootstrap-server", c.bootstrap)
    assert out.returncode != 0 and "not a voter" in out.stderr, out.stderr
    c.node(gone[0]).kill()
    c.node(gone[1]).kill()

    # Two of the three voters left: the leader and the added one.
    create(c.bootstrap, "after-voter-change", partitions=1, rf=1)
    log = produce_all(producer(c.bootstrap), records("after-voter-change", 0, 10))
    assert not log.errors and len(log.ok) == 10
    time.sleep(SESSION_TIMEOUT_MS / 1000 + 1)
    assert set(c.metadata(c.node(5)).brokers) == {5}, "the broker was fenced"
