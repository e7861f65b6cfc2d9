#!/usr/bin/env python3
"""Consumer-group figures for docs/benchmarks.md (issue 3), strom vs Apache Kafka, with librdkafka:

1. rebalance: a 10-member group (10-partition topic, range assignor) stabilises after the 10th
   member joins: seconds from the 10th member's subscribe() until every member holds exactly one
   partition. With librdkafka's default heartbeat.interval.ms (3000) the existing members only learn
   of the rebalance at their next heartbeat, so it is measured with 3000 and with 100.
2. commits: synchronous OffsetCommit round trips per second from one group member, and
   asynchronous commits completed per second with many in flight.

With --protocol consumer the members use Kafka 4's consumer group protocol (KIP-848,
group.protocol=consumer, the broker's `uniform` assignor): the heartbeat interval is then the
broker's group.consumer.heartbeat.interval.ms (default 5000; measured with 5000 and 100), and
--members sets the group size (the topic has as many partitions).

    STROM_BIN=target/release/strom bench/groups_bench.py --target strom [--protocol consumer --members 10]
    bench/groups_bench.py --target kafka [--protocol consumer --members 10]
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(target, workdir, overrides=None):
    port = free_port()
    extra = []
    for k, v in (overrides or {}).items():
        extra += ["--override", f"{k}={v}"]
    if target == "strom":
        cmd = [os.environ.get("STROM_BIN", os.path.join(ROOT, "target/release/strom")), "server",
               "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
               "--override", f"log.dirs={workdir}/data", *extra]
    else:
        cmd = ["bash", os.path.join(ROOT, "scripts/kafka-run.sh"), "--port", str(port),
               "--controller-port", str(free_port()), "--dir", f"{workdir}/kafka", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
            return proc, bootstrap
        except Exception:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not start")


def create(bootstrap, topic, partitions):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    time.sleep(1)


PROTOCOL = "classic"


def group_conf(bootstrap, group, hb=None):
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    if PROTOCOL == "consumer":
        conf["group.protocol"] = "consumer"  # session and heartbeat are the broker's settings
    else:
        conf.update({"session.timeout.ms": 10000, "heartbeat.interval.ms": hb or 3000})
    return conf


class Member(threading.Thread):
    def __init__(self, bootstrap, group, topic, hb):
        super().__init__(daemon=True)
        self.c = Consumer(group_conf(bootstrap, group, hb))
        self.topic = topic
        self.count = 0
        self.subscribed_at = None
        self.stop = False

    def run(self):
        self.subscribed_at = time.monotonic()
        self.c.subscribe([self.topic])
        while not self.stop:
            self.c.poll(0.05)
            self.count = len(self.c.assignment())
        self.c.close()


def rebalance(bootstrap, hb, reps, n=10):
    out = []
    for _ in range(reps):
        topic = f"bench-groups-{uuid.uuid4().hex[:8]}"
        create(bootstrap, topic, n)
        group = f"bench-{uuid.uuid4().hex[:8]}"
        members = [Member(bootstrap, group, topic, hb) for _ in range(n - 1)]
        for m in members:
            m.start()
        deadline = time.monotonic() + 120
        while not (sum(m.count for m in members) == n and all(m.count >= 1 for m in members)):
            if time.monotonic() > deadline:
                raise SystemExit(f"{n - 1}-member group did not stabilise")
            time.sleep(0.02)
        time.sleep(1)
        tenth = Member(bootstrap, group, topic, hb)
        members.append(tenth)
        tenth.start()
        while not all(m.count == 1 for m in members):
            if time.monotonic() > deadline:
                raise SystemExit(f"{n}-member group did not stabilise")
            time.sleep(0.005)
        out.append(time.monotonic() - tenth.subscribed_at)
        for m in members:
            m.stop = True
        for m in members:
            m.join(30)
    return out


def commits(bootstrap, seconds):
    topic = f"bench-commits-{uuid.uuid4().hex[:8]}"
    create(bootstrap, topic, 1)
    c = Consumer(group_conf(bootstrap, f"bench-{uuid.uuid4().hex[:8]}"))
    c.subscribe([topic])
    deadline = time.monotonic() + 60
    while not c.assignment() and time.monotonic() < deadline:
        c.poll(0.1)
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        n += 1
        c.commit(offsets=[TopicPartition(topic, 0, n)], asynchronous=False)
    sync_rate = n / (time.monotonic() - t0)
    done = [0]
    c2 = Consumer({**group_conf(bootstrap, f"bench-{uuid.uuid4().hex[:8]}"),
                   "on_commit": lambda err, parts: done.__setitem__(0, done[0] + 1)})
    c2.subscribe([topic])
    deadline = time.monotonic() + 60
    while not c2.assignment() and time.monotonic() < deadline:
        c2.poll(0.1)
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        if sent - done[0] < 500:
            sent += 1
            c2.commit(offsets=[TopicPartition(topic, 0, sent)], asynchronous=True)
        else:
            c2.poll(0.001)
    while done[0] < sent and time.monotonic() - t0 < seconds + 30:
        c2.poll(0.01)
    async_rate = done[0] / (time.monotonic() - t0)
    c.close()
    c2.close()
    return sync_rate, async_rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", choices=["strom", "kafka"], required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--protocol", choices=["classic", "consumer"], default="classic")
    ap.add_argument("--members", type=int, default=10)
    args = ap.parse_args()
    global PROTOCOL
    PROTOCOL = args.protocol
    n = args.members
    # classic: the members' heartbeat.interval.ms; consumer: the broker's, one server per value.
    intervals = (3000, 100) if PROTOCOL == "classic" else (5000, 100)
    servers = [None] if PROTOCOL == "classic" else intervals
    for server_hb in servers:
        overrides = {} if server_hb is None else {
            "group.consumer.heartbeat.interval.ms": server_hb,
            "group.consumer.min.heartbeat.interval.ms": min(server_hb, 5000)}
        work = tempfile.mkdtemp(prefix=f"groups-bench-{args.target}-")
        proc, bootstrap = start(args.target, work, overrides)
        try:
            # Warm up: the offsets topic and a first group.
            commits(bootstrap, 1)
            for hb in (intervals if server_hb is None else (server_hb,)):
                r = rebalance(bootstrap, hb, args.reps, n)
                print(f"{args.target} {PROTOCOL} rebalance {n - 1}->{n} members, heartbeat interval {hb} ms: "
                      + ", ".join(f"{x:.2f}s" for x in r), flush=True)
            if server_hb == servers[-1]:
                s, a = commits(bootstrap, args.seconds)
                print(f"{args.target} {PROTOCOL} commits: sync {s:.0f}/s, async {a:.0f}/s", flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
