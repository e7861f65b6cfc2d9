"""The Java client (org.apache.kafka:kafka-clients 4.x) against the broker, via tests/compat/java."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, SCRIPTS
from util import consume_range, create_topic

JAVA_TIMEOUT = 120


@pytest.fixture(scope="session")
def java_classpath():
    if shutil.which("java") is None:
        pytest.fail("java not found on PATH (the Java compat program needs a JDK 17+)", pytrace=False)
    r = subprocess.run(["bash", str(SCRIPTS / "build-java-compat.sh")], capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
    if r.returncode != 0:
        pytest.fail(f"building tests/compat/java failed:\n{r.stderr[-4000:]}", pytrace=False)
    return r.stdout.strip().splitlines()[-1]


def run_java(cp: str, *args) -> dict:
    cmd = ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
           "-cp", cp, "dev.strom.compat.Compat", *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=JAVA_TIMEOUT, env=dict(os.environ))
    assert r.returncode == 0, f"java {' '.join(map(str, args))} exited {r.returncode}\n--- stderr ---\n{r.stderr[-6000:]}"
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no JSON from java {args}: stdout={r.stdout[-2000:]!r} stderr={r.stderr[-2000:]!r}"
    return json.loads(lines[-1])


def test_java_admin(server, topic, java_classpath):
    out = run_java(java_classpath, "admin", server.bootstrap, topic)
    assert out["create"] == "ok"
    assert out["create_again"] == {"code": 36, "error": "TopicExistsException"}
    assert out["create_invalid_name"] == {"code": 17, "error": "InvalidTopicException"}

    d = out["describe"]
    assert d["name"] == topic and d["internal"] is False
    assert d["topic_id"] and d["topic_id"] != "AAAAAAAAAAAAAAAAAAAAAA"
    assert [p["partition"] for p in d["partitions"]] == [0, 1, 2]
    (node,) = out["cluster"]["nodes"]
    assert (node["host"], node["port"]) == ("127.0.0.1", server.port)
    for p in d["partitions"]:
        assert p["leader"] == node["id"] and p["replicas"] == [node["id"]] and p["isr"] == [node["id"]]
    assert out["describe_missing"] == {"code": 3, "error": "UnknownTopicOrPartitionException"}
    assert out["cluster"]["cluster_id"]
    assert out["cluster"]["controller"] == node["id"]

    base = out["base_ts"]
    o = out["offsets"]
    assert o["earliest"]["offset"] == 0
    assert o["latest"]["offset"] == 5
    assert o["for_ts_2500"] == {"offset": 1, "timestamp": base + 5000}
    assert o["for_ts_6000"] == {"offset": 3, "timestamp": base + 7000}
    assert o["for_ts_future"]["offset"] == -1
    assert o["max_ts"] == {"offset": 3, "timestamp": base + 7000}
    assert o["empty_earliest"]["offset"] == 0 and o["empty_latest"]["offset"] == 0
    assert o["empty_max_ts"]["offset"] == -1

    assert out["delete"] == "ok" and out["gone_after_delete"] is True
    assert out["delete_again"] == {"code": 3, "error": "UnknownTopicOrPartitionException"}


def expected_record(codec: str, i: int, base_ts: int) -> dict:
    return {
        "key": None if i % 7 == 3 else f"k-{i}",
        "value": None if i % 11 == 5 else f"{codec}-{i} " + "x" * (i % 50),
        "headers": [["i", str(i)], ["dup", "a"], ["dup", "b"], ["nil", None]],
        "timestamp": base_ts + i,
        "timestamp_type": "CreateTime",
    }


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_java_produce_consume(server, topic, java_classpath, codec):
    n, parts = 300, 2
    create_topic(server.bootstrap, topic, parts)
    out = run_java(java_classpath, "produce", server.bootstrap, topic, codec, n, parts)
    base = out["base_ts"]
    acks = out["acks"]
    assert len(acks) == n
    for part in range(parts):
        assert [a["offset"] for a in acks if a["partition"] == part] == list(range(n // parts))
    assert [a["timestamp"] for a in acks] == [base + i for i in range(n)]

    # assign + seek, read back with the Java consumer: partition 0 from 0, partition 1 from 40
    for part, start in ((0, 0), (1, 40)):
        got = run_java(java_classpath, "consume", server.bootstrap, topic, part, start, n // parts - start)["records"]
        idx = [i for i in range(n) if i % parts == part][start:]
        assert [r["offset"] for r in got] == list(range(start, n // parts))
        assert [{k: r[k] for k in ("key", "value", "headers", "timestamp", "timestamp_type")} for r in got] == [
            expected_record(codec, i, base) for i in idx
        ]

    # and librdkafka reads the Java client's batches the same way
    msgs = consume_range(server.bootstrap, topic, 1, 0, n // parts)
    for m, i in zip(msgs, [i for i in range(n) if i % parts == 1]):
        want = expected_record(codec, i, base)
        assert m.key() == (want["key"].encode() if want["key"] is not None else None)
        assert m.value() == (want["value"].encode() if want["value"] is not None else None)
        assert m.headers() == [(k, v.encode() if v is not None else None) for k, v in want["headers"]]
        assert m.timestamp()[1] == want["timestamp"]
