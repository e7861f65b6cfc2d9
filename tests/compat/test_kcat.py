"""kcat (Debian's librdkafka command-line client) against the broker."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from util import create_topic

KCAT_TIMEOUT = 60


@pytest.fixture(scope="session")
def kcat():
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat not found: scripts/install-test-deps.sh installs it (apt-get install kcat)", pytrace=False)
    return path


def run(cmd: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=KCAT_TIMEOUT)
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def test_kcat_metadata(server, topic, kcat):
    create_topic(server.bootstrap, topic, 3)
    md = json.loads(run([kcat, "-b", server.bootstrap, "-L", "-J", "-t", topic]).stdout)
    (broker,) = md["brokers"]
    assert broker["name"] == f"127.0.0.1:{server.port}"
    assert md["controllerid"] == broker["id"]
    (t,) = md["topics"]
    assert t["topic"] == topic and "error" not in t
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    for p in t["partitions"]:
        assert p["leader"] == broker["id"]
        assert p["replicas"] == [{"id": broker["id"]}] and p["isrs"] == [{"id": broker["id"]}]
    # all topics: ours is among them
    md_all = json.loads(run([kcat, "-b", server.bootstrap, "-L", "-J"]).stdout)
    assert topic in [x["topic"] for x in md_all["topics"]]


def test_kcat_produce_consume(server, topic, kcat):
    create_topic(server.bootstrap, topic, 2)
    lines = "k1:v1\nk2:hello world\n:empty key is null with -Z\nline without separator\ntomb:\n"
    before = int(time.time() * 1000)
    run([kcat, "-b", server.bootstrap, "-P", "-t", topic, "-p", "1", "-K:", "-Z",
         "-H", "h1=x", "-H", "h2=y", "-H", "h1=z"], stdin=lines)
    after = int(time.time() * 1000)
    out = run([kcat, "-b", server.bootstrap, "-C", "-t", topic, "-p", "1", "-o", "beginning", "-e",
               "-f", "%p|%o|%T|%k|%K|%s|%S|%h\\n"]).stdout
    rows = [ln.split("|") for ln in out.splitlines()]
    want = [("k1", "v1"), ("k2", "hello world"), (None, "empty key is null with -Z"),
            (None, "line without separator"), ("tomb", None)]
    assert len(rows) == len(want), out
    for i, (row, (k, v)) in enumerate(zip(rows, want)):
        part, off, ts, key, klen, val, vlen, hdrs = row
        assert (int(part), int(off)) == (1, i)
        assert before - 1000 <= int(ts) <= after + 1000
        assert (key, int(klen)) == ((k, len(k)) if k is not None else ("", -1))
        assert (val, int(vlen)) == ((v, len(v)) if v is not None else ("", -1))
        assert hdrs == "h1=x,h2=y,h1=z"
    # partition 0 is empty
    out0 = run([kcat, "-b", server.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e",
                "-f", "%o\\n"]).stdout
    assert out0.strip() == ""
    # from a given offset, with a count
    out2 = run([kcat, "-b", server.bootstrap, "-C", "-t", topic, "-p", "1", "-o", "3", "-c", "1", "-e",
                "-f", "%o %s\\n"]).stdout
    assert out2.strip() == "3 line without separator"


def test_kcat_produce_invalid_topic(server, kcat):
    r = run([kcat, "-b", server.bootstrap, "-P", "-t", "bad topic name"], stdin="x\n", check=False)
    assert r.returncode != 0
    assert "Invalid topic" in r.stderr, r.stderr
