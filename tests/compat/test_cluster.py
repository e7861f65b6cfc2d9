"""Three strom nodes on 127.0.0.1 form a Raft metadata quorum (#6, controller side): every node
lists every broker and the topics' leader/replicas/ISR; the quorum survives the loss of the active
controller; a silent broker is fenced and its partitions get new leaders with a bumped leader
epoch; a restarted node rejoins. Clients: confluent-kafka (librdkafka) and kafka-python admin.
"""

from __future__ import annotations

import subprocess

import pytest
from confluent_kafka.admin import NewPartitions, NewTopic

from cluster import SESSION_TIMEOUT_MS, cluster_factory  # noqa: F401  (pytest fixture)
from conftest import require_strom_bin
from util import OP_TIMEOUT, admin


def create(bootstrap: str, name: str, partitions: int, rf: int, config: dict | None = None):
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf, config=config or {})],
                         request_timeout=OP_TIMEOUT)
    return fs[name].result(timeout=OP_TIMEOUT)


def test_three_nodes_form_a_quorum_and_share_metadata(cluster_factory):
    c = cluster_factory(n=3)
    cid = c.controller_id()
    assert cid in (1, 2, 3)
    create(c.bootstrap, "rf3", partitions=6, rf=3)

    def everywhere():
        for n in c.live_nodes():
            md = c.metadata(n, "rf3")
            t = md.topics.get("rf3")
            if t is None or t.error is not None or len(t.partitions) != 6:
                return False
            for p in t.partitions.values():
                if sorted(p.replicas) != [1, 2, 3] or sorted(p.isrs) != [1, 2, 3] or p.leader not in (1, 2, 3):
                    return False
            if set(md.brokers) != {1, 2, 3}:
                return False
        return True
    c.wait_for(everywhere, what="rf3 with 3 replicas on every node")
    # Leaders are spread: every broker leads two of the six partitions.
    state = c.partition_state("rf3")
    leaders = sorted(s[0] for s in state.values())
    assert leaders == [1, 1, 2, 2, 3, 3], state

    # More replicas than brokers: Kafka's INVALID_REPLICATION_FACTOR.
    with pytest.raises(Exception) as e:
        create(c.bootstrap, "rf4", partitions=1, rf=4)
    assert "INVALID_REPLICATION_FACTOR" in str(e.value) or "replication factor" in str(e.value).lower()

    # CreatePartitions and DeleteTopics go through the quorum too, seen from every node.
    a = admin(c.node(3).bootstrap)
    a.create_partitions([NewPartitions("rf3", 8)])["rf3"].result(timeout=OP_TIMEOUT)
    c.wait_for(lambda: all(len(c.metadata(n, "rf3").topics["rf3"].partitions) == 8 for n in c.live_nodes()),
               what="8 partitions everywhere")
    a.delete_topics(["rf3"])["rf3"].result(timeout=OP_TIMEOUT)
    c.wait_for(lambda: all("rf3" not in c.metadata(n).topics for n in c.live_nodes()),
               what="rf3 deleted everywhere")


def test_default_replication_factor_for_auto_created_topics(cluster_factory):
    c = cluster_factory(n=3, overrides={"default.replication.factor": "2"})
    from kafka import KafkaAdminClient
    # kafka-python's metadata request auto-creates the topic.
    md = c.metadata(c.node(2), "auto-rf2")
    assert "auto-rf2" in md.topics
    state = c.wait_for(lambda: c.partition_state("auto-rf2"), what="auto-rf2 described")
    assert all(len(s[2]) == 2 for s in state.values()), state
    del KafkaAdminClient


def test_active_controller_sigkill_elects_a_new_one(cluster_factory):
    c = cluster_factory(n=3)
    old = c.controller_id()
    c.node(old).kill()
    new = c.wait_for(lambda: (cid := c.controller_id()) != old and cid, what="a new controller")
    assert new != old
    # Topic creation still works through the new controller, from any node.
    create(c.bootstrap, "after-failover", partitions=2, rf=2)
    c.wait_for(lambda: all("after-failover" in c.metadata(n).topics for n in c.live_nodes()),
               what="after-failover on the live nodes")
    # The killed node comes back and catches up with what happened while it was down.
    c.node(old).start()
    c.wait_ready()
    c.wait_for(lambda: "after-failover" in c.metadata(c.node(old)).topics,
               what="the restarted node to learn the topic created while it was down")


def test_killed_broker_is_fenced_and_leadership_moves(cluster_factory):
    c = cluster_factory(n=3)
    create(c.bootstrap, "fence", partitions=3, rf=3)
    before = c.wait_for(lambda: len(c.partition_state("fence")) == 3 and c.partition_state("fence"),
                        what="fence described")
    victim = before[0][0]
    led = [p for p, s in before.items() if s[0] == victim]
    c.node(victim).kill()

    def moved():
        now = c.partition_state("fence")
        for p in led:
            leader, epoch, _replicas, isr = now[p]
            if leader == victim or leader < 0 or victim in isr:
                return None
            if epoch <= before[p][1]:
                return None
        return now
    after = c.wait_for(moved, timeout=SESSION_TIMEOUT_MS / 1000 + 20, what=f"leadership to move off broker {victim}")
    for p in led:
        assert after[p][1] > before[p][1], (before[p], after[p])
    # Metadata no longer lists the fenced broker.
    c.wait_for(lambda: all(victim not in c.metadata(n).brokers for n in c.live_nodes()),
               what="the fenced broker to leave the broker list")

    # Restart: it registers again and is listed by every node.
    c.node(victim).start()
    c.wait_ready()


def test_cli_describes_cluster_and_topic(cluster_factory):
    c = cluster_factory(n=3)
    create(c.bootstrap, "cli-topic", partitions=2, rf=3)
    strom = str(require_strom_bin())
    out = subprocess.run([strom, "cluster", "describe", "--bootstrap-server", c.bootstrap],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    cid = c.controller_id()
    assert f"Controller: {cid}" in out.stdout, out.stdout
    for i in (1, 2, 3):
        assert f"127.0.0.1:{c.node(i).port}" in out.stdout, out.stdout
    out = subprocess.run([strom, "topic", "describe", "--bootstrap-server", c.bootstrap, "--topic", "cli-topic"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "Replicas:" in out.stdout and "Isr:" in out.stdout, out.stdout


def test_duplicate_node_id_is_refused(cluster_factory, tmp_path):
    c = cluster_factory(n=3)
    c.controller_id()
    # A fourth process claiming node.id 2 (with node 2 alive) is refused and exits.
    from cluster import ClusterNode
    from conftest import free_port
    n2 = c.node(2)
    dup = ClusterNode(tmp_path / "dup", 2, n2.voters, free_port(), {})
    proc = subprocess.run(dup.command(), capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "node.id 2 is already registered by another live broker" in proc.stderr, proc.stderr[-2000:]
    # The original node 2 is still a member.
    c.wait_ready()


def test_partition_reassignment_moves_replicas_and_data(cluster_factory):
    from kafka import KafkaAdminClient, TopicPartition
    from util import consume_range, produce_all, producer

    c = cluster_factory(n=3)
    a = admin(c.bootstrap)
    a.create_topics([NewTopic("move", num_partitions=1, replica_assignment=[[1]])])["move"].result(timeout=OP_TIMEOUT)
    c.wait_for(lambda: c.partition_state("move").get(0, (-1,))[0] == 1, what="move led by 1")
    p = producer(c.bootstrap)
    log = produce_all(p, [dict(topic="move", value=b"r%d" % i) for i in range(5)])
    assert not log.errors
    k = KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=15000)
    try:
        res = k.alter_partition_reassignments({TopicPartition("move", 0): [2, 3]})
        assert res == {TopicPartition("move", 0): None}, res
        # Added replicas catch up, join the ISR, then broker 1 is dropped and leadership moves.
        state = c.wait_for(lambda: (s := c.partition_state("move")[0])[2] == [2, 3] and s[0] in (2, 3) and s,
                           what="move reassigned to [2, 3]")
        assert 1 not in state[3]
        assert k.list_partition_reassignments() == {} or not k.list_partition_reassignments()
        # Nothing left to cancel.
        res = k.alter_partition_reassignments({TopicPartition("move", 0): None})
        assert res[TopicPartition("move", 0)].__name__ == "NoReassignmentInProgressError", res
    finally:
        k.close()
    msgs = consume_range(c.bootstrap, "move", 0, 0, 5)
    assert [m.value() for m in msgs] == [b"r%d" % i for i in range(5)]
