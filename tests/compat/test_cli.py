"""strom's console tools (`strom topic|produce|consume`), checked through a real client (confluent-kafka).

In COMPAT_TARGET=kafka mode the same tools run against Apache Kafka (skipped if the strom binary is not
built). A subcommand that says it is "not implemented" is skipped with that reason; anything else that
fails, fails.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from confluent_kafka.admin import ConfigResource

from conftest import TARGET, find_strom_bin, require_strom_bin
from util import OP_TIMEOUT, admin, consume_range, create_topic, produce_all, producer, wait_for_topic

CLI_TIMEOUT = 60


@pytest.fixture(scope="session")
def strom_cli():
    if TARGET == "kafka" and find_strom_bin() is None:
        pytest.skip("strom binary not built: the console tools cannot be run against Kafka")
    return str(require_strom_bin())


def cli(binary: str, server, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [binary, *args, "--bootstrap-server", server.bootstrap]
    try:
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`{' '.join(cmd)}` did not finish within {CLI_TIMEOUT}s; stderr: {e.stderr!r}")
    said = (r.stdout + r.stderr).lower()
    if r.returncode != 0 and "not implemented" in said:
        pytest.skip(f"`strom {' '.join(args[:2])}` is not implemented yet: {r.stderr.strip()[:200]}")
    if check:
        assert r.returncode == 0, f"`{' '.join(cmd)}` exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def test_cli_topic_create_list_describe_delete(server, topic, strom_cli):
    cli(strom_cli, server, "topic", "create", topic, "--partitions", "3", "--replication-factor", "1",
        "--config", "retention.ms=7200000", "--config", "cleanup.policy=compact")
    wait_for_topic(server.bootstrap, topic, 3)
    a = admin(server.bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    cfg = a.describe_configs([res], request_timeout=OP_TIMEOUT)[res].result(timeout=OP_TIMEOUT)
    assert cfg["retention.ms"].value == "7200000"
    assert cfg["cleanup.policy"].value == "compact"

    listed = cli(strom_cli, server, "topic", "list").stdout
    assert topic in [ln.strip() for ln in listed.splitlines()], listed

    described = cli(strom_cli, server, "topic", "describe", topic).stdout
    assert topic in described, described
    for p in ("0", "1", "2"):
        assert p in described

    # creating it again fails
    again = cli(strom_cli, server, "topic", "create", topic, "--partitions", "1", check=False)
    assert again.returncode != 0

    cli(strom_cli, server, "topic", "delete", topic)
    deadline = time.monotonic() + OP_TIMEOUT
    while topic in a.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    assert topic not in a.list_topics(timeout=10).topics
    assert topic not in [ln.strip() for ln in cli(strom_cli, server, "topic", "list").stdout.splitlines()]


def test_cli_describe_missing_topic_fails(server, topic, strom_cli):
    r = cli(strom_cli, server, "topic", "describe", topic + "-missing", check=False)
    assert r.returncode != 0


def test_cli_produce(server, topic, strom_cli):
    create_topic(server.bootstrap, topic, 1)
    cli(strom_cli, server, "produce", "--topic", topic, "--key-separator", ":", "--header", "src=cli",
        stdin="k1:v1\nk2:value with spaces\nk3:v3:with:colons\n")
    got = consume_range(server.bootstrap, topic, 0, 0, 3)
    assert [(m.key(), m.value()) for m in got] == [
        (b"k1", b"v1"), (b"k2", b"value with spaces"), (b"k3", b"v3:with:colons")
    ]
    assert all(m.headers() == [("src", b"cli")] for m in got)

    # without a key separator: the whole line is the value, no key
    cli(strom_cli, server, "produce", "--topic", topic, stdin="plain:line\n")
    (m,) = consume_range(server.bootstrap, topic, 0, 3, 1)
    assert (m.key(), m.value()) == (None, b"plain:line")


def test_cli_consume(server, topic, strom_cli):
    create_topic(server.bootstrap, topic, 2)
    ts = int(time.time() * 1000) - 5000
    produce_all(producer(server.bootstrap), [
        dict(topic=topic, partition=0, key=b"key%d" % i, value=b"value-%d" % i,
             headers=[("hk", b"hv%d" % i)], timestamp=ts + i) for i in range(6)
    ])
    out = cli(strom_cli, server, "consume", "--topic", topic, "--partition", "0", "--from-beginning",
              "--max-messages", "6").stdout
    assert [ln for ln in out.splitlines() if ln.strip()] == [f"value-{i}" for i in range(6)]

    out = cli(strom_cli, server, "consume", "--topic", topic, "--partition", "0", "--offset", "2",
              "--max-messages", "3", "--print-key").stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 3, out
    for i, ln in zip(range(2, 5), lines):
        assert f"key{i}" in ln and f"value-{i}" in ln and ln.index(f"key{i}") < ln.index(f"value-{i}"), ln

    out = cli(strom_cli, server, "consume", "--topic", topic, "--partition", "0", "--from-beginning",
              "--max-messages", "1", "--print-headers", "--print-timestamp").stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    assert "hk" in lines[0] and "hv0" in lines[0] and str(ts) in lines[0] and "value-0" in lines[0], lines[0]


def test_cli_group_list_describe_reset_delete(server, topic, strom_cli):
    """`strom group` like kafka-consumer-groups.sh: lag per partition, offsets reset, deletion."""
    from confluent_kafka import Consumer, TopicPartition

    create_topic(server.bootstrap, topic, 2)
    produce_all(producer(server.bootstrap), [{"topic": topic, "value": b"v%d" % i, "partition": i % 2}
                                             for i in range(10)])
    group = f"cli-group-{topic}"
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": group, "enable.auto.commit": False})
    # Commit 3 of partition 0's 5 records and all of partition 1's: lag 2 and 0.
    deadline = time.monotonic() + OP_TIMEOUT
    while True:  # a fresh Kafka answers NOT_COORDINATOR while it loads __consumer_offsets
        try:
            c.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 5)], asynchronous=False)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    c.close()

    assert group in cli(strom_cli, server, "group", "list").stdout.split()
    rows = [line.split("\t") for line in cli(strom_cli, server, "group", "describe", group).stdout.splitlines()[1:]]
    lag = {int(r[2]): (int(r[3]), int(r[4]), int(r[5])) for r in rows if r[1] == topic}
    assert lag == {0: (3, 5, 2), 1: (5, 5, 0)}, rows

    dry = cli(strom_cli, server, "group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--dry-run")
    assert sorted(line.split("\t")[3] for line in dry.stdout.splitlines()[1:]) == ["0", "0"]
    rows = [line.split("\t") for line in cli(strom_cli, server, "group", "describe", group).stdout.splitlines()[1:]]
    assert {int(r[2]): int(r[3]) for r in rows} == {0: 3, 1: 5}, "a dry run changes nothing"
    cli(strom_cli, server, "group", "reset-offsets", group, "--topic", f"{topic}:1", "--shift-by", "-2", "--execute")
    rows = [line.split("\t") for line in cli(strom_cli, server, "group", "describe", group).stdout.splitlines()[1:]]
    assert {int(r[2]): int(r[3]) for r in rows} == {0: 3, 1: 3}

    cli(strom_cli, server, "group", "delete", group)
    assert group not in cli(strom_cli, server, "group", "list").stdout.split()
