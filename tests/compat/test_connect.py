"""Kafka Connect (`strom connect standalone`) end to end: file -> topic -> file, restarts, REST API.

The worker reaches the broker only over the Kafka protocol. REST calls are plain HTTP (urllib), the
way a user's curl would make them, and check Kafka Connect's status codes and bodies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import TARGET, _die_with_parent, free_port, require_strom_bin
from util import consumer, create_topic

pytestmark = pytest.mark.skipif(
    TARGET != "strom", reason="the Connect worker under test is strom's own (no Kafka worker is started)"
)

JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
STRING_CONVERTER = "org.apache.kafka.connect.storage.StringConverter"


class Worker:
    """One `strom connect standalone` process with its REST port."""

    start_timeout = 30.0  # seconds for the REST API to answer 200

    def __init__(self, workdir: Path, bootstrap: str, extra: dict[str, str] | None = None):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.props = {
            "bootstrap.servers": bootstrap,
            "key.converter": STRING_CONVERTER,
            "value.converter": JSON_CONVERTER,
            "value.converter.schemas.enable": "true",
            "offset.storage.file.filename": str(workdir / "connect.offsets"),
            "offset.flush.interval.ms": "500",
            "listeners": f"http://127.0.0.1:{self.port}",
            "plugin.path": "/usr/share/java",
        }
        self.props.update(extra or {})
        self.worker_file = workdir / "worker.properties"
        self.worker_file.write_text("".join(f"{k}={v}\n" for k, v in self.props.items()))
        self.log_path = workdir / "connect.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, connector_files: list[Path]) -> list[str]:
        # A hook so bench/connect_bench.py can start Apache Kafka's worker through the same helper.
        return [str(require_strom_bin()), "connect", "standalone", str(self.worker_file),
                *map(str, connector_files)]

    def start(self, connector_files: list[Path] = ()) -> "Worker":
        cmd = self.command(list(connector_files))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent, cwd=str(self.workdir),
                                     env={**os.environ, "RUST_LOG": "info"})
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker exited early:\n{self.log()}"
            try:
                status, _, _ = http("GET", self.url + "/")
                if status == 200:
                    return self
            except (OSError, ValueError):
                # Refused, or up but not yet serving JSON (Kafka's worker answers with a start-up page
                # until its herder runs): both mean "not ready yet".
                pass
            time.sleep(0.1)
        raise AssertionError(f"worker REST API did not come up:\n{self.log()}")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"worker did not stop on SIGTERM:\n{self.log()}")
        return self.proc.returncode

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except FileNotFoundError:
            return "(no log)"


def http(method: str, url: str, body=None, raw: bytes | None = None):
    """(status, parsed JSON body or None, headers) for one request; HTTP errors are answers too."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
            return resp.status, (json.loads(text) if text else None), resp.headers
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, (json.loads(text) if text else None), e.headers


def wait_until(pred, timeout: float = 30.0, what: str = "condition", log=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})" + (f"\n{log()}" if log else ""))


def write_props(path: Path, props: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def topic_values(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[bytes]:
    from confluent_kafka import TopicPartition

    c = consumer(bootstrap)
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                if len(out) >= expected:
                    break
                continue
            if m.error():
                if len(out) >= expected:
                    break
                continue
            out.append(m.value())
    finally:
        c.close()
    return out


def test_file_to_topic_to_file_survives_restart(server, topic, tmp_path):
    create_topic(server.bootstrap, topic)
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    first = [f"line {i} ünïcödé \"quoted\" \\ {i * 7}" for i in range(300)] + ["", "  spaced  "]
    src.write_text("".join(x + "\n" for x in first), encoding="utf-8")
    source = write_props(tmp_path / "source.properties", {
        "name": "file-source",
        "connector.class": "FileStreamSource",
        "file": str(src),
        "topic": topic,
        "batch.size": "50",
    })
    sink = write_props(tmp_path / "sink.properties", {
        "name": "file-sink",
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "file": str(dst),
        "topics": topic,
    })
    w = Worker(tmp_path / "worker", server.bootstrap).start([source, sink])
    try:
        wait_until(lambda: len(read_lines(dst)) >= len(first), what="the sink file", log=w.log)
        time.sleep(1.0)  # nothing extra may arrive
        assert read_lines(dst) == first
        status, st, _ = http("GET", w.url + "/connectors/file-source/status")
        assert status == 200 and st["connector"]["state"] == "RUNNING", st
        assert [t["state"] for t in st["tasks"]] == ["RUNNING"], st
    finally:
        assert w.stop() == 0, w.log()

    # The topic holds exactly what Kafka's JsonConverter writes for a string schema.
    values = topic_values(server.bootstrap, topic, len(first))
    assert len(values) == len(first)
    assert values[0] == json.dumps(
        {"schema": {"type": "string", "optional": False}, "payload": first[0]},
        separators=(",", ":"), ensure_ascii=False,
    ).encode()

    # More input while the worker is down; a restart picks up exactly where it stopped.
    more = [f"after restart {i}" for i in range(120)]
    with open(src, "a", encoding="utf-8") as f:
        f.write("".join(x + "\n" for x in more))
    offsets = json.loads((tmp_path / "worker" / "connect.offsets").read_text())
    assert offsets["offsets"], offsets
    w2 = Worker(tmp_path / "worker", server.bootstrap)
    w2.start([source, sink])
    try:
        wait_until(lambda: len(read_lines(dst)) >= len(first) + len(more), what="the sink file after restart",
                   log=w2.log)
        # Appends while running are picked up too.
        with open(src, "a", encoding="utf-8") as f:
            f.write("live 1\nlive 2\n")
        wait_until(lambda: len(read_lines(dst)) >= len(first) + len(more) + 2, what="live appends", log=w2.log)
        time.sleep(1.5)
        assert read_lines(dst) == first + more + ["live 1", "live 2"], "lost or duplicated lines"
        _, offs, _ = http("GET", w2.url + "/connectors/file-source/offsets")
        assert offs["offsets"][0]["partition"] == {"filename": str(src)}
        assert offs["offsets"][0]["offset"]["position"] <= src.stat().st_size
    finally:
        assert w2.stop() == 0, w2.log()
    assert len(topic_values(server.bootstrap, topic, len(first) + len(more) + 2)) == len(first) + len(more) + 2


def test_rest_api(server, topic, tmp_path):
    create_topic(server.bootstrap, topic)
    src = tmp_path / "in.txt"
    src.write_text("a\nb\n")
    w = Worker(tmp_path / "worker", server.bootstrap).start()
    base = w.url
    try:
        status, root, _ = http("GET", base + "/")
        assert status == 200 and set(root) >= {"version", "commit", "kafka_cluster_id"}, root

        assert http("GET", base + "/connectors")[:2] == (200, [])

        status, plugins, _ = http("GET", base + "/connector-plugins")
        assert status == 200
        classes = {p["class"]: p["type"] for p in plugins}
        assert classes["org.apache.kafka.connect.file.FileStreamSourceConnector"] == "source"
        assert classes["org.apache.kafka.connect.file.FileStreamSinkConnector"] == "sink"
        _, everything, _ = http("GET", base + "/connector-plugins?connectorsOnly=false")
        assert {"class": JSON_CONVERTER, "type": "converter"}.items() <= next(
            p for p in everything if p["class"] == JSON_CONVERTER).items()

        # Validation names every bad key.
        status, v, _ = http("PUT", base + "/connector-plugins/FileStreamSource/config/validate",
                            {"connector.class": "FileStreamSource", "topic": "a,b", "batch.size": "x",
                             "tasks.max": "0"})
        assert status == 200, v
        assert v["name"] == "org.apache.kafka.connect.file.FileStreamSourceConnector"
        bad = {c["value"]["name"] for c in v["configs"] if c["value"]["errors"]}
        assert bad == {"name", "topic", "batch.size", "tasks.max"}, v
        assert v["error_count"] == 4
        assert "Common" in v["groups"]
        status, e, _ = http("PUT", base + "/connector-plugins/FileStreamSink/config/validate",
                            {"connector.class": "FileStreamSource"})
        assert status == 400 and e["error_code"] == 400, e

        # Unknown class: 400 listing the available plugins.
        status, e, _ = http("POST", base + "/connectors",
                            {"name": "x", "config": {"connector.class": "com.example.NoSuchConnector"}})
        assert status == 400 and e["error_code"] == 400, e
        assert "FileStreamSourceConnector" in e["message"] and "FileStreamSinkConnector" in e["message"]

        # Bad config: 400 naming each bad key.
        status, e, _ = http("POST", base + "/connectors", {"name": "bad", "config": {
            "connector.class": "FileStreamSource", "topic": "a,b", "batch.size": "x"}})
        assert status == 400, e
        assert "2 error(s)" in e["message"] and "batch.size" in e["message"] and "single topic" in e["message"], e
        status, e, _ = http("POST", base + "/connectors", {"name": "sink-bad", "config": {
            "connector.class": "FileStreamSink"}})
        assert status == 400 and "topics" in e["message"], e
        assert http("POST", base + "/connectors", raw=b"{not json")[0] == 400

        config = {"connector.class": "FileStreamSource", "file": str(src), "topic": topic, "tasks.max": "1"}
        status, info, headers = http("POST", base + "/connectors", {"name": "src", "config": config})
        assert status == 201, info
        assert headers["Location"].endswith("/connectors/src")
        assert info["name"] == "src" and info["type"] == "source"
        assert info["config"] == {**config, "name": "src"}
        assert info["tasks"] == [{"connector": "src", "task": 0}]
        status, e, _ = http("POST", base + "/connectors", {"name": "src", "config": config})
        assert status == 409 and e["error_code"] == 409, e

        assert http("GET", base + "/connectors")[:2] == (200, ["src"])
        assert http("GET", base + "/connectors/src")[1]["name"] == "src"
        assert http("GET", base + "/connectors/src/config")[1] == {**config, "name": "src"}

        def state():
            _, st, _ = http("GET", base + "/connectors/src/status")
            return (st["connector"]["state"], tuple(t["state"] for t in st["tasks"]))

        wait_until(lambda: state() == ("RUNNING", ("RUNNING",)), what="RUNNING", log=w.log)
        _, st, _ = http("GET", base + "/connectors/src/status")
        assert st["name"] == "src" and st["type"] == "source"
        assert st["connector"]["worker_id"] == f"127.0.0.1:{w.port}"

        status, tasks, _ = http("GET", base + "/connectors/src/tasks")
        assert status == 200 and tasks[0]["id"] == {"connector": "src", "task": 0}
        assert tasks[0]["config"]["task.class"] == "org.apache.kafka.connect.file.FileStreamSourceTask"
        status, ts, _ = http("GET", base + "/connectors/src/tasks/0/status")
        assert status == 200 and ts["id"] == 0 and ts["state"] == "RUNNING", ts
        assert http("GET", base + "/connectors/src/tasks/7/status")[0] == 404

        assert http("PUT", base + "/connectors/src/pause")[0] == 202
        wait_until(lambda: state() == ("PAUSED", ("PAUSED",)), what="PAUSED", log=w.log)
        assert http("PUT", base + "/connectors/src/resume")[0] == 202
        wait_until(lambda: state() == ("RUNNING", ("RUNNING",)), what="RUNNING after resume", log=w.log)

        assert http("POST", base + "/connectors/src/restart")[0] == 204
        status, st, _ = http("POST", base + "/connectors/src/restart?includeTasks=true&onlyFailed=false")
        assert status == 202 and st["name"] == "src", st
        assert http("POST", base + "/connectors/src/tasks/0/restart")[0] == 204
        assert http("POST", base + "/connectors/src/tasks/3/restart")[0] == 404
        wait_until(lambda: state() == ("RUNNING", ("RUNNING",)), what="RUNNING after restarts", log=w.log)

        assert http("PUT", base + "/connectors/src/stop")[0] == 204
        wait_until(lambda: state() == ("STOPPED", ()), what="STOPPED", log=w.log)
        assert http("GET", base + "/connectors/src/tasks")[1] == []
        assert http("PUT", base + "/connectors/src/resume")[0] == 202
        wait_until(lambda: state() == ("RUNNING", ("RUNNING",)), what="RUNNING after stop", log=w.log)

        # Update in place (200) and create through PUT (201).
        status, info, _ = http("PUT", base + "/connectors/src/config", {**config, "batch.size": "10"})
        assert status == 200 and info["config"]["batch.size"] == "10", info
        status, e, _ = http("PUT", base + "/connectors/src/config", {**config, "name": "other"})
        assert status == 400, e
        sink_cfg = {"connector.class": "FileStreamSink", "file": str(tmp_path / "out.txt"), "topics": topic}
        status, info, _ = http("PUT", base + "/connectors/snk/config", sink_cfg)
        assert status == 201 and info["type"] == "sink", info

        status, expanded, _ = http("GET", base + "/connectors?expand=status&expand=info")
        assert status == 200 and set(expanded) == {"src", "snk"}, expanded
        assert set(expanded["snk"]) == {"status", "info"}
        assert expanded["snk"]["info"]["config"]["topics"] == topic
        assert set(http("GET", base + "/connectors?expand=status")[1]["src"]) == {"status"}

        # A task that fails (its "file" is a directory) shows FAILED with a trace, and restarts.
        broken = {"connector.class": "FileStreamSource", "file": str(tmp_path), "topic": topic}
        assert http("POST", base + "/connectors", {"name": "broken", "config": broken})[0] == 201

        def broken_task():
            return http("GET", base + "/connectors/broken/tasks/0/status")[1]

        ts = wait_until(lambda: (lambda t: t if t["state"] == "FAILED" else None)(broken_task()),
                        what="FAILED task", log=w.log)
        assert "trace" in ts and str(tmp_path) in ts["trace"], ts
        _, st, _ = http("GET", base + "/connectors/broken/status")
        assert st["connector"]["state"] == "RUNNING" and st["tasks"][0]["state"] == "FAILED", st
        status, st, _ = http("POST", base + "/connectors/broken/restart?includeTasks=true&onlyFailed=true")
        assert status == 202, st
        assert http("POST", base + "/connectors/broken/tasks/0/restart")[0] == 204
        wait_until(lambda: broken_task()["state"] == "FAILED", what="FAILED again", log=w.log)
        assert http("DELETE", base + "/connectors/broken")[0] == 204

        status, e, _ = http("GET", base + "/connectors/nope")
        assert (status, e["error_code"]) == (404, 404) and "nope" in e["message"], e
        assert http("GET", base + "/connectors/nope/status")[0] == 404
        assert http("DELETE", base + "/connectors/nope")[0] == 404
        assert http("GET", base + "/no/such/path")[0] == 404

        # Active topics (KIP-558): the topic the source wrote to; reset empties it.
        status, t, _ = http("GET", base + "/connectors/src/topics")
        assert (status, t) == (200, {"src": {"topics": [topic]}}), t
        assert http("PUT", base + "/connectors/src/topics/reset")[0] == 202
        assert http("GET", base + "/connectors/src/topics")[1] == {"src": {"topics": []}}
        assert http("GET", base + "/connectors/nope/topics")[0] == 404

        # Log levels (KIP-495): tracing targets are the loggers, changed live.
        status, loggers, _ = http("GET", base + "/admin/loggers")
        assert status == 200 and loggers["root"]["level"] == "INFO", loggers
        status, affected, _ = http("PUT", base + "/admin/loggers/strom_connect", {"level": "DEBUG"})
        assert (status, affected) == (200, ["strom_connect"]), affected
        status, lv, _ = http("GET", base + "/admin/loggers/strom_connect::worker")
        assert status == 200 and lv["level"] == "DEBUG" and lv["last_modified"] > 0, lv
        assert http("GET", base + "/admin/loggers")[1]["strom_connect"]["level"] == "DEBUG"
        status, e, _ = http("PUT", base + "/admin/loggers/strom_connect", {"level": "LOUD"})
        assert status == 404 and e["message"] == "invalid log level 'LOUD'.", e
        status, e, _ = http("PUT", base + "/admin/loggers/strom_connect", {})
        assert status == 400 and "'level'" in e["message"], e
        assert http("PUT", base + "/admin/loggers/strom_connect", {"level": "INFO"})[0] == 200
        assert "log level changed through the REST API" in w.log()

        assert http("DELETE", base + "/connectors/snk")[0] == 204
        assert http("DELETE", base + "/connectors/src")[0] == 204
        assert http("GET", base + "/connectors/src")[0] == 404
        assert http("GET", base + "/connectors")[1] == []
    finally:
        assert w.stop() == 0, w.log()


def test_offsets_alter_and_reset_only_when_stopped(server, topic, tmp_path):
    """KIP-875: PATCH / DELETE /connectors/{name}/offsets move a stopped source connector."""
    create_topic(server.bootstrap, topic)
    src = tmp_path / "in.txt"
    src.write_text("a\nb\n")
    w = Worker(tmp_path / "worker", server.bootstrap).start()
    base = w.url
    try:
        config = {"connector.class": "FileStreamSource", "file": str(src), "topic": topic}
        assert http("POST", base + "/connectors", {"name": "src", "config": config})[0] == 201
        assert len(topic_values(server.bootstrap, topic, 2)) == 2

        # Running: refused with Kafka's message.
        status, e, _ = http("DELETE", base + "/connectors/src/offsets")
        assert status == 400 and e["message"].startswith(
            "Connectors must be in the STOPPED state before their offsets can be modified"), e
        assert "'/connectors/src/stop'" in e["message"], e
        status, e, _ = http("PATCH", base + "/connectors/src/offsets", {"offsets": []})
        assert status == 400, e
        assert http("DELETE", base + "/connectors/nope/offsets")[0] == 404

        assert http("PUT", base + "/connectors/src/stop")[0] == 204
        wait_until(lambda: http("GET", base + "/connectors/src/status")[1]["connector"]["state"]
                   == "STOPPED", what="STOPPED", log=w.log)
        _, offs, _ = http("GET", base + "/connectors/src/offsets")
        assert offs["offsets"] == [{"partition": {"filename": str(src)}, "offset": {"position": 4}}], offs

        # Reset: every partition forgotten, the file is read again from its start.
        status, body, _ = http("DELETE", base + "/connectors/src/offsets")
        assert status == 200 and body == {
            "message": "The offsets for this connector have been reset successfully"}, body
        assert http("GET", base + "/connectors/src/offsets")[1] == {"offsets": []}
        assert http("PUT", base + "/connectors/src/resume")[0] == 202
        assert len(topic_values(server.bootstrap, topic, 4)) == 4

        # Alter: position 2 (after "a\n") makes the task read "b" once more.
        assert http("PUT", base + "/connectors/src/stop")[0] == 204
        wait_until(lambda: http("GET", base + "/connectors/src/offsets")[1]["offsets"]
                   and http("GET", base + "/connectors/src/status")[1]["connector"]["state"] == "STOPPED",
                   what="STOPPED with offsets", log=w.log)
        status, e, _ = http("PATCH", base + "/connectors/src/offsets",
                            {"offsets": [{"partition": "x", "offset": {}}]})
        assert status == 400 and "partition" in e["message"], e
        status, body, _ = http("PATCH", base + "/connectors/src/offsets", {"offsets": [
            {"partition": {"filename": str(src)}, "offset": {"position": 2}}]})
        assert status == 200 and body == {
            "message": "The offsets for this connector have been altered successfully"}, body
        _, offs, _ = http("GET", base + "/connectors/src/offsets")
        assert offs["offsets"][0]["offset"] == {"position": 2}, offs
        assert http("PUT", base + "/connectors/src/resume")[0] == 202
        values = topic_values(server.bootstrap, topic, 5)
        assert len(values) == 5 and b'"b"' in values[-1], values
    finally:
        assert w.stop() == 0, w.log()


def test_source_creates_its_topic(server, topic, tmp_path):
    """KIP-158: topic.creation.default.* make the source create its topic with those settings."""
    from confluent_kafka.admin import AdminClient

    src = tmp_path / "in.txt"
    src.write_text("a\nb\n")
    w = Worker(tmp_path / "worker", server.bootstrap).start()
    try:
        config = {"connector.class": "FileStreamSource", "file": str(src), "topic": topic,
                  "topic.creation.default.replication.factor": "1",
                  "topic.creation.default.partitions": "3"}
        assert http("POST", w.url + "/connectors", {"name": "src", "config": config})[0] == 201
        admin = AdminClient({"bootstrap.servers": server.bootstrap})
        wait_until(lambda: topic in admin.list_topics(timeout=10).topics, what="topic created",
                   log=w.log)
        assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3
        status, e, _ = http("POST", w.url + "/connectors", {"name": "bad", "config": {
            **config, "topic.creation.default.partitions": "0"}})
        # A bad setting: the task shows FAILED, its trace naming the key.
        assert status == 201, e
        ts = wait_until(lambda: (lambda t: t if t["state"] == "FAILED" else None)(
            http("GET", w.url + "/connectors/bad/tasks/0/status")[1]), what="FAILED", log=w.log)
        assert "topic.creation.default.partitions" in ts["trace"], ts
    finally:
        assert w.stop() == 0, w.log()


def test_bad_worker_config_names_keys(tmp_path):
    wf = write_props(tmp_path / "worker.properties", {"bootstrap.servers": "127.0.0.1:1"})
    r = subprocess.run([str(require_strom_bin()), "connect", "standalone", str(wf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    for key in ("key.converter", "value.converter", "offset.storage.file.filename"):
        assert key in r.stderr, r.stderr
