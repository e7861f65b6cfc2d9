"""Kafka Connect distributed mode (`strom connect distributed`): workers sharing a group.id share
connectors and tasks, a SIGKILLed worker's tasks run again on the survivor, configs and target
states live in the config topic and survive a restart of every worker, and REST calls to any
worker work (followers forward writes to the leader).

VerifiableSource (Kafka's org.apache.kafka.connect.tools.VerifiableSourceConnector) writes key =
task id, value = sequence number, so a reader can check that no number of any task was lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import TARGET, _die_with_parent, free_port, require_strom_bin
from test_connect import http, wait_until
from util import consumer, create_topic

pytestmark = pytest.mark.skipif(
    TARGET != "strom", reason="the Connect worker under test is strom's own (no Kafka worker is started)"
)

JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
VERIFIABLE = "org.apache.kafka.connect.tools.VerifiableSourceConnector"


class DistWorker:
    """One `strom connect distributed` process."""

    def __init__(self, workdir: Path, bootstrap: str, group: str):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        props = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "config.storage.topic": f"{group}-configs",
            "offset.storage.topic": f"{group}-offsets",
            "status.storage.topic": f"{group}-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.storage.partitions": "3",
            "status.storage.partitions": "2",
            "key.converter": JSON_CONVERTER,
            "value.converter": JSON_CONVERTER,
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "offset.flush.interval.ms": "500",
            "listeners": f"http://127.0.0.1:{self.port}",
            "session.timeout.ms": "6000",
            "heartbeat.interval.ms": "1000",
            "rebalance.timeout.ms": "20000",
        }
        self.worker_file = workdir / "worker.properties"
        self.worker_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        self.log_path = workdir / "connect.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def worker_id(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "DistWorker":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(require_strom_bin()), "connect", "distributed", str(self.worker_file)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            cwd=str(self.workdir), env={**os.environ, "RUST_LOG": "info"})
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker exited early:\n{self.log()}"
            try:
                if http("GET", self.url + "/")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"worker REST API did not come up:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"worker did not stop on SIGTERM:\n{self.log()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return "(no log)"


@pytest.fixture
def workers():
    started: list[DistWorker] = []
    yield started
    for w in started:
        w.kill()


def logs(ws: list[DistWorker]):
    return lambda: "\n".join(f"--- worker {w.worker_id}\n{w.log()}" for w in ws)


def verifiable(topic: str, tasks: int, throughput: int = 20) -> dict:
    return {"connector.class": VERIFIABLE, "tasks.max": str(tasks), "topic": topic, "throughput": str(throughput)}


def running(w: DistWorker, name: str, tasks: int):
    """The status when the connector and all its tasks are RUNNING, else None."""
    status, body, _ = http("GET", f"{w.url}/connectors/{name}/status")
    if status != 200 or body["connector"]["state"] != "RUNNING" or len(body["tasks"]) != tasks:
        return None
    return body if all(t["state"] == "RUNNING" for t in body["tasks"]) else None


def read_topic(bootstrap: str, topic: str, partitions: int = 1, idle: float = 2.0) -> list[tuple]:
    """Every (key, value) in the topic, read until it has been quiet for `idle` seconds."""
    from confluent_kafka import TopicPartition

    c = consumer(bootstrap, {"enable.partition.eof": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    last = time.monotonic()
    deadline = last + 60
    try:
        while time.monotonic() - last < idle and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            out.append((json.loads(m.key()), json.loads(m.value())))
            last = time.monotonic()
    finally:
        c.close()
    return out


def seqnos_by_task(records: list[tuple]) -> dict[int, list[int]]:
    by: dict[int, list[int]] = {}
    for k, v in records:
        by.setdefault(k, []).append(v)
    return by


def test_two_workers_share_tasks_and_a_killed_workers_tasks_move(server, topic, tmp_path, workers):
    create_topic(server.bootstrap, topic)
    group = f"connect-{uuid.uuid4().hex[:8]}"
    w1 = DistWorker(tmp_path / "w1", server.bootstrap, group).start()
    workers.append(w1)
    w2 = DistWorker(tmp_path / "w2", server.bootstrap, group).start()
    workers.append(w2)

    # A bad config is refused with every bad key named, through either worker (one forwards).
    for w in (w1, w2):
        status, body, _ = http("POST", f"{w.url}/connectors",
                               {"name": "bad", "config": {"connector.class": VERIFIABLE, "topic": topic}})
        assert status == 400, (status, body, logs(workers)())
        assert body["error_code"] == 400 and "throughput" in body["message"], body

    status, body, _ = http("POST", f"{w2.url}/connectors", {"name": "seq", "config": verifiable(topic, 4)})
    assert status == 201, (status, body, logs(workers)())
    assert body["name"] == "seq" and body["type"] == "source"
    status, body, _ = http("POST", f"{w1.url}/connectors", {"name": "seq", "config": verifiable(topic, 4)})
    assert status == 409 and body["error_code"] == 409, body

    st = wait_until(lambda: running(w1, "seq", 4), 60, "4 RUNNING tasks", logs(workers))
    owners = {t["worker_id"] for t in st["tasks"]}
    assert owners == {w1.worker_id, w2.worker_id}, st
    # Every worker answers reads from the config topic.
    for w in (w1, w2):
        assert http("GET", f"{w.url}/connectors")[1] == ["seq"]
        assert len(http("GET", f"{w.url}/connectors/seq/tasks")[1]) == 4

    # The config topic holds Kafka's records: connector-, task-, commit-.
    cfg = {}
    from confluent_kafka import TopicPartition
    c = consumer(server.bootstrap)
    c.assign([TopicPartition(f"{group}-configs", 0, 0)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "commit-seq" not in cfg:
        m = c.poll(0.5)
        if m is not None and not m.error():
            cfg[m.key().decode()] = json.loads(m.value()) if m.value() is not None else None
    c.close()
    assert cfg["connector-seq"]["properties"]["throughput"] == "20", cfg
    assert cfg["commit-seq"] == {"tasks": 4}, cfg
    assert cfg["task-seq-3"]["properties"]["id"] == "3", cfg

    time.sleep(2)  # let every task write and commit some numbers
    killed_at = time.monotonic()
    w1.kill()
    st = wait_until(
        lambda: (s := running(w2, "seq", 4)) and all(t["worker_id"] == w2.worker_id for t in s["tasks"]) and s,
        60, "every task RUNNING on the surviving worker", logs(workers))
    print(f"tasks running again on the survivor {time.monotonic() - killed_at:.1f} s after SIGKILL")
    assert st["connector"]["worker_id"] == w2.worker_id

    # Numbers keep coming from every task, and none was lost (at-least-once: a crash may repeat some).
    time.sleep(2)
    assert http("PUT", f"{w2.url}/connectors/seq/pause")[0] == 202
    wait_until(lambda: http("GET", f"{w2.url}/connectors/seq/status")[1]["connector"]["state"] == "PAUSED",
               20, "PAUSED", logs(workers))
    status, e, _ = http("DELETE", f"{w2.url}/connectors/seq/offsets")
    assert status == 400 and "STOPPED state" in e["message"], e  # PAUSED is not enough
    time.sleep(1)
    by = seqnos_by_task(read_topic(server.bootstrap, topic))
    assert sorted(by) == [0, 1, 2, 3], by.keys()
    for task, values in by.items():
        top = max(values)
        assert top > 60, f"task {task} wrote only up to {top}"
        missing = set(range(top + 1)) - set(values)
        assert not missing, f"task {task} lost {sorted(missing)[:20]}"

    # Stop (KIP-875) keeps the config and drops the tasks; resume brings them back.
    assert http("PUT", f"{w2.url}/connectors/seq/stop")[0] == 204
    wait_until(lambda: (b := http("GET", f"{w2.url}/connectors/seq/status")[1])["connector"]["state"] == "STOPPED"
               and b["tasks"] == [], 30, "STOPPED without tasks", logs(workers))
    assert http("GET", f"{w2.url}/connectors/seq/tasks")[1] == []
    assert len(http("GET", f"{w2.url}/connectors/seq/offsets")[1]["offsets"]) == 4
    assert http("PUT", f"{w2.url}/connectors/seq/resume")[0] == 202
    wait_until(lambda: running(w2, "seq", 4), 60, "RUNNING again after resume", logs(workers))

    status, _, _ = http("DELETE", f"{w2.url}/connectors/seq")
    assert status == 204
    wait_until(lambda: http("GET", f"{w2.url}/connectors")[1] == [], 20, "connector gone")
    w2.stop()


def test_configs_and_offsets_survive_a_restart_of_every_worker(server, topic, tmp_path, workers):
    create_topic(server.bootstrap, topic)
    group = f"connect-{uuid.uuid4().hex[:8]}"
    first = [DistWorker(tmp_path / f"w{i}", server.bootstrap, group).start() for i in range(2)]
    workers.extend(first)
    for w, name, cfg in ((first[0], "seq", verifiable(topic, 2)), (first[1], "idle", verifiable(topic + "-idle", 1))):
        status, body, _ = http("PUT", f"{w.url}/connectors/{name}/config", cfg)
        assert status == 201, (status, body, logs(workers)())
    wait_until(lambda: running(first[0], "seq", 2), 60, "seq RUNNING", logs(workers))
    wait_until(lambda: running(first[1], "idle", 1), 60, "idle RUNNING", logs(workers))
    assert http("PUT", f"{first[1].url}/connectors/idle/pause")[0] == 202
    # PATCH (KIP-477) through either worker: set one key, remove one with null.
    status, body, _ = http("PATCH", f"{first[1].url}/connectors/idle/config", {"throughput": "7", "tasks.max": None})
    assert status == 200 and body["config"]["throughput"] == "7" and "tasks.max" not in body["config"], body
    status, body, _ = http("PATCH", f"{first[0].url}/connectors/nope/config", {"throughput": "7"})
    assert status == 404 and body["error_code"] == 404, body
    time.sleep(2)
    for w in first:
        w.stop()  # clean stops: everything sent is committed

    w3 = DistWorker(tmp_path / "w3", server.bootstrap, group).start()
    workers.append(w3)
    assert sorted(http("GET", f"{w3.url}/connectors")[1]) == ["idle", "seq"]
    assert http("GET", f"{w3.url}/connectors/idle/config")[1]["throughput"] == "7"
    health = wait_until(lambda: (r := http("GET", f"{w3.url}/health"))[0] == 200 and r[1], 30, "healthy", w3.log)
    assert health["status"] == "healthy", health
    status, cfg, _ = http("GET", f"{w3.url}/connectors/seq/config")
    assert status == 200 and cfg == {**verifiable(topic, 2), "name": "seq"}, cfg
    st = wait_until(lambda: running(w3, "seq", 2), 60, "seq RUNNING after restart", w3.log)
    assert {t["worker_id"] for t in st["tasks"]} == {w3.worker_id}
    wait_until(lambda: http("GET", f"{w3.url}/connectors/idle/status")[1]["connector"] == {
        "state": "PAUSED", "worker_id": w3.worker_id}, 30, "idle still PAUSED", w3.log)
    time.sleep(2)
    w3.stop()

    # Source offsets came back from the offset topic: each task continued exactly where it stopped.
    by = seqnos_by_task(read_topic(server.bootstrap, topic))
    assert sorted(by) == [0, 1], by.keys()
    for task, values in by.items():
        assert values == list(range(len(values))), f"task {task}: gaps or repeats in {values}"
        assert len(values) > 40, f"task {task} wrote only {len(values)}"
