"""A real network partition on three strom nodes, each in its own network namespace (netns.py):
while an idempotent acks=all producer writes (RF=3, min.insync.replicas=2), the leader of a
partition loses its link, so it can reach neither its peers nor the client. The others fence it
and elect a new leader; a write sent to the cut-off leader from inside its namespace is not
acknowledged. Healed, the old leader steps down and truncates what it accepted but never
committed: its log ends where the new leader's does, batch for batch. Every acknowledged record
is read back exactly once, in production order, and the write the old leader took is gone.
Every wait is bounded.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

from cluster import SESSION_TIMEOUT_MS, cluster_factory  # noqa: F401  (pytest fixture)
from test_cluster_faults import check_read_back
from test_java import java_classpath  # noqa: F401  (pytest fixture)
from test_replication import OVERRIDES, WAIT, AckedProducer, create_replicated_topic
from util import consume_range

HERE = Path(__file__).resolve().parent
PARTITIONS = 3
PROBE_TIMEOUT_MS = 6000

# Requests sent to the leader just before the cut get no answer; give up on them quickly and resend
# to the new leader (librdkafka's 30 s default would take most of the test's time).
PRODUCER_CONF = {"request.timeout.ms": 4000, "socket.timeout.ms": 4000}


def batches(node, topic: str, partition: int) -> list[tuple[int, int, int]]:
    """(base offset, last offset, CRC) of every record batch in the replica's segment files, read
    from disk as Kafka's format lays them out: what the replica holds, committed or not."""
    out = []
    for seg in sorted((node.datadir / f"{topic}-{partition}").glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base, length = struct.unpack_from(">qi", data, pos)
            if length <= 0 or pos + 12 + length > len(data):
                break
            (crc,) = struct.unpack_from(">I", data, pos + 17)
            (last_delta,) = struct.unpack_from(">i", data, pos + 23)
            out.append((base, base + last_delta, crc))
            pos += 12 + length
    return out


def holds(node, topic: str, partition: int, value: bytes) -> bool:
    """Whether the value's bytes are in the replica's segment files (records are uncompressed)."""
    return any(value in seg.read_bytes() for seg in (node.datadir / f"{topic}-{partition}").glob("*.log"))


def test_partitioned_leader_is_fenced_replaced_and_truncated(cluster_factory, topic, java_classpath):
    c = cluster_factory(n=3, overrides=OVERRIDES, netns=True)
    net = c.network
    create_replicated_topic(c, topic, PARTITIONS, 3, {"min.insync.replicas": "2"})
    prod = AckedProducer(c.bootstrap, topic, PARTITIONS, conf=PRODUCER_CONF)
    prod.thread.start()
    c.wait_for(lambda: prod.acked_count() >= 300, WAIT, what="acknowledged writes before the partition")

    leader, epoch, _, _ = c.partition_state(topic)[0]
    old = c.node(leader)
    others = [n for n in c.nodes.values() if n is not old]
    probe_value = f"probe-{uuid.uuid4().hex}"
    net.cut(leader)
    try:
        # From inside its namespace the cut-off leader is still reachable; it must not acknowledge.
        probe = subprocess.Popen(
            [*net.exec_prefix(leader), sys.executable, str(HERE / "netns_client.py"), old.bootstrap, topic, "0",
             probe_value, str(PROBE_TIMEOUT_MS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def moved():
            new_leader, new_epoch, _, isr = c.partition_state(topic, via=others[0])[0]
            return new_leader not in (-1, leader) and new_epoch > epoch and leader not in isr
        c.wait_for(moved, WAIT, what=f"partition 0 to move off cut-off node {leader}")
        before = prod.acked_count()
        c.wait_for(lambda: prod.acked_count() >= before + 100, WAIT,
                   what=f"acknowledged writes on the new leaders while node {leader} is cut off")

        out, err = probe.communicate(timeout=PROBE_TIMEOUT_MS / 1000 + 30)
        assert probe.returncode == 0, f"probe client failed: {err[-2000:]}"
        result = json.loads(out.strip().splitlines()[-1])
        assert not result["acked"], \
            f"the cut-off leader acknowledged an acks=all write at offset {result['offset']}"
        # It did take the write into its log: that is what it must truncate once healed.
        assert holds(old, topic, 0, probe_value.encode()), \
            f"the cut-off leader never appended the probe write (the client got: {result['error']})"
        # Past the broker session timeout it is certainly fenced, not merely slow.
        time.sleep(SESSION_TIMEOUT_MS / 1000)
    finally:
        net.heal(leader)

    def rejoined():
        # Every node's view, the healed one's too: until it hears the new metadata it still
        # describes itself as partition 0's leader with a full ISR.
        views = [c.partition_state(topic, via=n) for n in c.nodes.values()]
        return all(v == views[0] for v in views) and views[0][0][1] > epoch and all(
            len(isr) == 3 for (_, _, _, isr) in views[0].values()) and views[0]
    state = c.wait_for(rejoined, WAIT, what=f"healed node {leader} back in every ISR, every node agreeing")
    assert state[0][0] != leader, f"partition 0 went back to node {leader}: {state[0]}"
    before = prod.acked_count()
    c.wait_for(lambda: prod.acked_count() >= before + 100, WAIT, what="writes after the heal")
    prod.finish()
    assert not prod.errors, f"delivery errors: {prod.errors[:5]}"

    ends = check_read_back(c, prod, topic, PARTITIONS, java_cp=java_classpath)
    for part in range(PARTITIONS):
        seqs = [int(v.split("-")[1]) for _, v in sorted(prod.acked[part])]
        assert seqs == sorted(seqs), f"partition {part}: records stored out of production order"
    # The probe record is nowhere a consumer can read.
    got = consume_range(c.bootstrap, topic, 0, 0, ends[0], timeout=WAIT)
    assert probe_value.encode() not in {m.value() for m in got}, "the unacknowledged probe write is readable"

    # Caught up, the old leader holds exactly the new leader's batches: the uncommitted tail is gone.
    new_leader = c.node(state[0][0])

    def same_log():
        want = batches(new_leader, topic, 0)
        return want and want[-1][1] + 1 >= ends[0] and batches(old, topic, 0) == want
    c.wait_for(same_log, WAIT, what=f"node {leader}'s log of partition 0 to equal the new leader's")
    assert not holds(old, topic, 0, probe_value.encode()), "the old leader kept its uncommitted write"
