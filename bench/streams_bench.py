#!/usr/bin/env python3
"""strom-streams vs Java Kafka Streams 4.1.2: records/s of the same topology on the same broker and
input (docs/benchmarks.md, "Kafka Streams"). The topologies are strom-streams' examples
(`wordcount`, `windowed-counts`) and their Java twins (tests/compat/java/.../StreamsApps.java),
run with the same settings: one stream thread, at_least_once, the default 10 MB record cache,
commit.interval.ms=1000.

One input topic is filled once; then the engines take turns (java, strom, java, strom, ...), each
run with a fresh application id, state dir and output topic, and the medians are reported. A run
is timed from its first output record to the moment its consumer group has committed every input
and repartition partition at its end (the output is then flushed): records/s = input records /
that time. Start-up (JVM, rebalance, first commit) is excluded that way, and reported separately
as the time from process start to the first output.

    STROM_BIN=~/.cache/strom/target/release/strom bench/streams_bench.py --app wordcount \\
        --records 200000 --runs 3
    STREAMS_PROFILE=release ...  # strom-streams examples from target/release (default: debug)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "compat"))
import streams_apps  # noqa: E402
from streams_apps import StreamsApp, caught_up  # noqa: E402

VOCAB = [f"w{i}" for i in range(2000)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    binary = os.environ.get("STROM_BIN", str(Path.home() / ".cache/strom/target/release/strom"))
    proc = subprocess.Popen([binary, "server", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                             "--override", f"log.dirs={workdir}/data"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
            return proc, bootstrap
        except Exception:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("broker did not start")


def create(bootstrap: str, name: str, partitions: int) -> None:
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def fill(bootstrap: str, topic: str, app: str, n: int, seed: int) -> int:
    """Produces the input; returns the number of records the topology's aggregations see."""
    rnd = random.Random(seed)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20,
                  "compression.type": "lz4", "enable.idempotence": True})
    units = 0
    base = int(time.time() * 1000) - 24 * 3_600_000
    for i in range(n):
        if app == "wordcount":
            k = rnd.randint(4, 12)
            value, key = " ".join(rnd.choice(VOCAB) for _ in range(k)), None
            units += k
        else:
            value, key = "v", f"k{rnd.randint(0, 999)}"
            units += 1
        while True:
            try:
                p.produce(topic, value=value.encode(), key=key and key.encode(),
                          timestamp=base + i * 50 - rnd.randint(0, 2000))
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(120) == 0
    return units


def high_watermarks(c: Consumer, topic: str, partitions: int) -> int:
    return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions))


def one_run(engine: str, args, bootstrap: str, input_topic: str, classpath: str, work: Path) -> dict:
    tag = uuid.uuid4().hex[:6]
    out = f"out-{engine}-{tag}"
    outputs = [out] if args.app == "wordcount" else [out, f"{out}-hopping", f"{out}-sliding", f"{out}-session"]
    for t in outputs:
        create(bootstrap, t, args.partitions)
    app_id = f"bench-{engine}-{args.app}-{tag}"
    internal = {"counts-store-repartition": args.partitions} if args.app == "wordcount" else {}
    topics = {input_topic: args.partitions, **{f"{app_id}-{t}": n for t, n in internal.items()}}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-probe"})
    t0 = time.monotonic()
    a = StreamsApp(engine, args.app, bootstrap, input_topic, out, app_id, work / app_id,
                   {"num.stream.threads": "1"}, classpath=classpath, log=work / f"{app_id}.log",
                   commit_interval_ms=1000)
    try:
        first = None
        while True:
            if not a.alive():
                raise SystemExit(f"{engine} exited:\n{a.log_tail()}")
            now = time.monotonic()
            if first is None and high_watermarks(c, out, args.partitions) > 0:
                first = now
            if first is not None and caught_up(bootstrap, app_id, topics):
                done = now
                break
            if now - t0 > args.timeout:
                raise SystemExit(f"{engine} run timed out:\n{a.log_tail()}")
            time.sleep(0.05)
    finally:
        a.stop()
        c.close()
    return {"engine": engine, "startup_s": round(first - t0, 2), "processing_s": round(done - first, 2),
            "records_per_s": round(args.records / (done - first)),
            "units_per_s": round(args.units / (done - first))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", choices=["wordcount", "windowed-counts"], default="wordcount")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="runs per engine (alternating)")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--out", help="write the results as JSON here too")
    args = ap.parse_args()
    streams_apps.build_examples()
    classpath = streams_apps.java_classpath()
    work = Path(tempfile.mkdtemp(prefix="streams-bench-"))
    broker, bootstrap = start_broker(work)
    try:
        input_topic = f"in-{args.app}"
        create(bootstrap, input_topic, args.partitions)
        args.units = fill(bootstrap, input_topic, args.app, args.records, seed=1)
        results = []
        for i in range(args.runs):
            for engine in ("java", "strom"):
                r = one_run(engine, args, bootstrap, input_topic, classpath, work)
                r["run"] = i + 1
                print(json.dumps(r), flush=True)
                results.append(r)
        unit = "words" if args.app == "wordcount" else "records"
        summary = {}
        for engine in ("java", "strom"):
            rs = [r for r in results if r["engine"] == engine]
            summary[engine] = {k: statistics.median(r[k] for r in rs)
                               for k in ("records_per_s", "units_per_s", "processing_s", "startup_s")}
        print(f"\n{args.app}: {args.records} input records ({args.units} {unit} aggregated), "
              f"{args.partitions} partitions, {args.runs} runs each, medians; "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"| engine | input records/s | {unit}/s | processing (s) | start-up to first output (s) |")
        print("|---|---|---|---|---|")
        for engine, s in summary.items():
            print(f"| {engine} | {s['records_per_s']:,.0f} | {s['units_per_s']:,.0f} | {s['processing_s']} | "
                  f"{s['startup_s']} |")
        if args.out:
            Path(args.out).write_text(json.dumps({"args": vars(args), "runs": results, "summary": summary},
                                                 indent=2))
    finally:
        broker.kill()
        broker.wait()


if __name__ == "__main__":
    main()
