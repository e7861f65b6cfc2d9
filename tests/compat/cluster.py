"""A local strom cluster for the compat tests: N nodes on 127.0.0.1, each `strom server` with its own
node.id, ports and data directory, all of them brokers and Raft controllers (as a three-host cluster
runs: the same command with a different node.id).

    from cluster import cluster_factory          # pytest fixture
    c = cluster_factory(n=3)                      # started; quorum formed; every broker registered
    c.bootstrap, c.node(2).kill(), c.node(2).start(), c.controller_id(), c.partition_state(topic)

    c = cluster_factory(n=3, netns=True)          # each node in its own network namespace (netns.py)
    c.network.cut(2), c.network.heal(2)           # node 2's link down / up: a real network partition

Every wait is bounded; a failure shows the tails of the nodes' logs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pytest
from confluent_kafka.admin import AdminClient

from conftest import TARGET, Server, free_port, require_strom_bin
from netns import NodeNetwork, netns_unavailable

# Tests use short sessions so fencing is observable quickly (Kafka's defaults are 9000 / 2000).
SESSION_TIMEOUT_MS = 3000
HEARTBEAT_INTERVAL_MS = 500


class ClusterNode(Server):
    """One node of the cluster: a conftest.Server with a node id and a CONTROLLER listener."""

    def __init__(self, workdir: Path, node_id: int, voters: str, controller_port: int, overrides: dict,
                 host: str = "127.0.0.1", exec_prefix: list[str] | None = None):
        super().__init__(workdir, overrides, name=f"node{node_id}")
        self.node_id = node_id
        self.controller_port = controller_port
        self.voters = voters
        self.host = host
        # `ip netns exec NS` execs the server, so the process we hold (and kill) is strom itself.
        self.exec_prefix = list(exec_prefix or [])

    def command(self) -> list[str]:
        binary = require_strom_bin()
        conf = {
            "node.id": str(self.node_id),
            "process.roles": "broker,controller",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.voters": self.voters,
            "log.dirs": str(self.datadir),
            "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
            "broker.heartbeat.interval.ms": str(HEARTBEAT_INTERVAL_MS),
        }
        conf.update(self.overrides)
        cmd = [*self.exec_prefix, str(binary), "server"]
        for k, v in conf.items():
            cmd += ["--override", f"{k}={v}"]
        return cmd


class Cluster:
    def __init__(self, workdir: Path, n: int = 3, overrides: dict | None = None,
                 network: NodeNetwork | None = None):
        self.network = network
        ports = {i: free_port() for i in range(1, n + 1)}

        def host(i: int) -> str:
            return network.address(i) if network else "127.0.0.1"
        voters = ",".join(f"{i}@{host(i)}:{p}" for i, p in ports.items())
        self.nodes: dict[int, ClusterNode] = {
            i: ClusterNode(Path(workdir) / f"node{i}", i, voters, ports[i], dict(overrides or {}),
                           host=host(i), exec_prefix=network.exec_prefix(i) if network else None)
            for i in range(1, n + 1)
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes.values() if n.alive())

    def node(self, node_id: int) -> ClusterNode:
        return self.nodes[node_id]

    def live_nodes(self) -> list[ClusterNode]:
        return [n for n in self.nodes.values() if n.alive()]

    def start(self, timeout: float = 30.0) -> "Cluster":
        # Start every process first: a node alone cannot form the quorum.
        for n in self.nodes.values():
            n.start()
        self.wait_ready(timeout)
        return self

    def stop(self) -> None:
        for n in self.nodes.values():
            n.kill()

    def logs(self) -> str:
        return "\n".join(f"--- node {i} ---\n{n.log_tail(max_bytes=4000)}" for i, n in self.nodes.items())

    def wait_for(self, check: Callable[[], object], timeout: float = 30.0, what: str = "condition"):
        """Poll `check` until it returns a truthy value (returned) or fail after `timeout`."""
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            try:
                v = check()
                if v:
                    return v
            except Exception as e:  # a node may be restarting: keep polling
                last_err = e
            time.sleep(0.2)
        pytest.fail(f"timed out after {timeout}s waiting for {what} (last error: {last_err})\n{self.logs()}",
                    pytrace=False)

    def metadata(self, node: ClusterNode, topic: str | None = None):
        a = AdminClient({"bootstrap.servers": node.bootstrap})
        return a.list_topics(topic=topic, timeout=5)

    def describe_cluster(self, node: ClusterNode) -> dict:
        from kafka import KafkaAdminClient

        a = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=5000)
        try:
            return a.describe_cluster()
        finally:
            a.close()

    def controller_id(self) -> int:
        """The active controller (Raft leader) as DescribeCluster reports it on every live node
        (they must agree). Metadata names the answering node instead, as Kafka's KRaft brokers do."""
        def agreed():
            ids = {self.describe_cluster(n)["controller_id"] for n in self.live_nodes()}
            if len(ids) == 1:
                (cid,) = ids
                if cid in self.nodes and self.nodes[cid].alive():
                    return cid
            return None
        return self.wait_for(agreed, what="the live nodes to agree on a live controller")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every live node lists exactly the live brokers."""
        want = {n.node_id for n in self.live_nodes()}

        def ready():
            return all(set(self.metadata(n).brokers) == want for n in self.live_nodes())
        self.wait_for(ready, timeout, what=f"every node to list brokers {sorted(want)}")

    def partition_state(self, topic: str, via: ClusterNode | None = None) -> dict:
        """{partition: (leader, leader_epoch, replicas, isr)} as Metadata reports it."""
        from kafka import KafkaAdminClient  # kafka-python reports leader epochs

        node = via or self.live_nodes()[0]
        a = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=10000)
        try:
            (t,) = a.describe_topics([topic])
            def get(p, *names):
                for n in names:
                    if n in p:
                        return p[n]
                raise KeyError(names)
            return {
                get(p, "partition_index", "partition"): (
                    get(p, "leader_id", "leader"),
                    get(p, "leader_epoch"),
                    list(get(p, "replica_nodes", "replicas")),
                    list(get(p, "isr_nodes", "isr")),
                )
                for p in t["partitions"]
            }
        finally:
            a.close()


@pytest.fixture
def cluster_factory(tmp_path_factory, request):
    if TARGET != "strom":
        pytest.skip("the cluster helper starts strom nodes")
    made: list[Cluster] = []
    networks: list[NodeNetwork] = []

    def make(n: int = 3, overrides: dict | None = None, start: bool = True, netns: bool = False) -> Cluster:
        network = None
        if netns:
            reason = netns_unavailable()
            if reason:
                pytest.skip(f"network namespaces unavailable: {reason}")
            network = NodeNetwork(n)
            # Registered before it exists: a half-built network is torn down too.
            networks.append(network)
            network.create()
        c = Cluster(tmp_path_factory.mktemp(f"cluster-{request.node.name[:40]}"), n, overrides, network)
        made.append(c)
        return c.start() if start else c

    try:
        yield make
    finally:
        try:
            for c in made:
                c.stop()
        finally:
            # The nodes are gone first: a namespace with a live process in it would outlive `ip netns del`.
            for net in networks:
                net.destroy()
