#!/usr/bin/env python3
"""Connect file -> topic -> file throughput for docs/benchmarks.md (issues 7 and 8): `strom connect
standalone` side by side with Apache Kafka Connect standalone 4.1.2, both against one strom broker.

    STROM_BIN=~/.cache/strom/target/release/strom ~/.cache/strom/venv/bin/python bench/connect_bench.py \
        --lines 1000000 --reps 5 --out bench/results/$(date -u +%Y%m%d-%H%M%S)-connect \
        [--worker-bin $CARGO_TARGET_DIR/release/strom]   # a strom worker other than the broker's binary

Each run: a fresh worker process (REST up before the clock starts), a fresh 1-partition topic and fresh
files. The clock starts when the sink and source connectors are created over REST (FileStreamSink then
FileStreamSource, the JSON converter with schemas.enable=true for values, StringConverter for keys, the
same worker and connector settings on both) and stops when the sink file is as long as the source file.
Then the sink file must equal the source file line for line, after a settle pause that would show
duplicates. Peak RSS (VmHWM, start-up included) and CPU time (from the connectors' creation to the last line) of
the worker process are read from /proc before it stops.
Runs alternate kafka, strom, kafka, strom, ...; the summary gives medians.

Kafka's worker is `org.apache.kafka.connect.cli.ConnectStandalone` from the jars that
scripts/kafka-dist.sh resolves, plus connect-file (not in that set), which this script resolves once
from Maven Central into ~/.cache/strom/bench/connect-file-<version>/libs. It runs with the JVM flags
Kafka's connect-standalone.sh uses (-Xms256M -Xmx2G, G1) and logs at INFO, as shipped.
"""
import argparse
import json
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "compat"))
os.environ.setdefault("COMPAT_TARGET", "strom")  # the broker is always strom's

from conftest import Server  # noqa: E402
from test_connect import Worker, http  # noqa: E402
from util import create_topic  # noqa: E402

KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.1.2")
# Kafka's bin/connect-standalone.sh heap and kafka-run-class.sh's default GC flags.
KAFKA_JVM = ["-Xms256M", "-Xmx2G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
             "-Djava.awt.headless=true"]
LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = stdout
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = stdout
"""


def kafka_classpath() -> str:
    libs = subprocess.run([str(REPO / "scripts" / "kafka-dist.sh")], check=True, capture_output=True,
                          text=True).stdout.strip()
    cache = Path(os.environ.get("STROM_CACHE", Path.home() / ".cache" / "strom"))
    dist = cache / "bench" / f"connect-file-{KAFKA_VERSION}"
    jar = dist / "libs" / f"connect-file-{KAFKA_VERSION}.jar"
    if not jar.exists():
        # connect-file's own dependencies (connect-api) are already among Kafka's jars.
        dist.mkdir(parents=True, exist_ok=True)
        (dist / "pom.xml").write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>dev.strom.tools</groupId><artifactId>connect-file-bench</artifactId><version>1</version>
<packaging>pom</packaging><dependencies><dependency><groupId>org.apache.kafka</groupId>
<artifactId>connect-file</artifactId><version>{KAFKA_VERSION}</version></dependency></dependencies></project>
""")
        subprocess.run(["mvn", "-q", "-B", "-f", str(dist / "pom.xml"), "dependency:copy-dependencies",
                        f"-DoutputDirectory={dist / 'libs'}", "-DincludeScope=runtime",
                        "-DexcludeTransitive=true"], check=True)
    return f"{libs}/*:{jar}"


class KafkaWorker(Worker):
    """Apache Kafka Connect standalone, started through the same helper as strom's worker."""

    classpath = ""
    # The JVM's start-up took up to 31 s on this 2-core machine at a load of 12.
    start_timeout = 180.0

    def __init__(self, workdir: Path, bootstrap: str, extra: dict[str, str]):
        super().__init__(workdir, bootstrap, extra)
        # Kafka would scan every jar in strom's plugin.path; its file connectors are on the classpath.
        self.props.pop("plugin.path", None)
        self.worker_file.write_text("".join(f"{k}={v}\n" for k, v in self.props.items()))
        self.log4j = workdir / "log4j2.properties"
        self.log4j.write_text(LOG4J2)

    def command(self, connector_files: list[Path]) -> list[str]:
        return ["java", *KAFKA_JVM, f"-Dlog4j2.configurationFile={self.log4j}", "-cp", self.classpath,
                "org.apache.kafka.connect.cli.ConnectStandalone", str(self.worker_file),
                *map(str, connector_files)]


class StromWorker(Worker):
    """`strom connect standalone` from `--worker-bin` when given (the broker stays STROM_BIN's)."""

    binary: Path | None = None

    def command(self, connector_files: list[Path]) -> list[str]:
        cmd = super().command(connector_files)
        if self.binary is not None:
            cmd[0] = str(self.binary)
        return cmd


def make_lines(n: int, size: int, seed: int = 7) -> bytes:
    """n distinct lines of `size` bytes (newline included): a sequence number, then text that
    includes characters JSON must escape, so the converter does real work."""
    rnd = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + ' "\\/{}:,'
    out = []
    for i in range(n):
        head = f"{i:09d} "
        out.append(head + "".join(rnd.choices(alphabet, k=max(0, size - len(head) - 1))) + "\n")
    return "".join(out).encode()


def proc_stats(pid: int) -> tuple[int, float]:
    """(peak RSS in bytes, CPU seconds user+system) of one process, from /proc."""
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm, (int(fields[11]) + int(fields[12])) / ticks


def first_difference(a: list[bytes], b: list[bytes]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"line {i}: source {x[:60]!r} sink {y[:60]!r}"
    return f"source has {len(a)} lines, sink {len(b)}"


def one_run(system: str, rep: int, broker: Server, work: Path, src: Path, data: bytes, args) -> dict:
    run = work / f"{system}-{rep}"
    run.mkdir()
    topic = f"bench-{system}-{rep}"
    create_topic(broker.bootstrap, topic)
    dst = run / "sink.txt"
    worker_props = {"offset.flush.interval.ms": "1000", **dict(kv.split("=", 1) for kv in args.worker_prop)}
    cls = KafkaWorker if system == "kafka" else StromWorker
    w = cls(run / "worker", broker.bootstrap, worker_props)
    t_start = time.monotonic()
    w.start()
    startup_s = time.monotonic() - t_start
    try:
        load = os.getloadavg()
        _, cpu_at_start = proc_stats(w.proc.pid)  # the JVM's start-up is not part of the run
        t0 = time.monotonic()
        for name, config in (
            (f"sink-{rep}", {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
                             "file": str(dst), "topics": topic}),
            (f"source-{rep}", {"connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                               "file": str(src), "topic": topic, "batch.size": str(args.batch_size)}),
        ):
            status, body, _ = http("POST", w.url + "/connectors", {"name": name, "config": config})
            assert status == 201, (status, body)
        want = len(data)
        while not (dst.exists() and dst.stat().st_size >= want):
            assert w.proc.poll() is None, f"{system} worker died:\n{w.log()}"
            assert time.monotonic() - t0 < args.timeout, f"{system}: sink incomplete after {args.timeout}s"
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        rss, cpu = proc_stats(w.proc.pid)
        cpu -= cpu_at_start
        time.sleep(args.settle)  # anything duplicated would arrive now
        got = dst.read_bytes()
        ok = got == data
        if not ok:
            print(f"  MISMATCH ({system} run {rep}): {first_difference(data.splitlines(), got.splitlines())}")
        load_end = os.getloadavg()
    finally:
        code = w.stop()
    n = data.count(b"\n")
    r = {"system": system, "rep": rep, "lines": n, "bytes": len(data), "seconds": round(elapsed, 3),
         "records_per_s": round(n / elapsed), "mb_per_s": round(len(data) / elapsed / 1e6, 2),
         "peak_rss_mb": round(rss / 2**20, 1), "cpu_s": round(cpu, 2), "startup_s": round(startup_s, 2),
         "correct": ok, "exit_code": code, "load_start": [round(x, 2) for x in load],
         "load_end": [round(x, 2) for x in load_end]}
    print(f"  {system:5} run {rep}: {r['seconds']:7.2f} s  {r['records_per_s']:>9,} rec/s  "
          f"{r['mb_per_s']:6.2f} MB/s  peak RSS {r['peak_rss_mb']:7.1f} MiB  CPU {r['cpu_s']:6.2f} s  "
          f"start {r['startup_s']:.2f} s  correct={ok}  load {load[0]:.2f}->{load_end[0]:.2f}", flush=True)
    return r


def summarize(results: list[dict]) -> str:
    rows = ["| worker | runs | seconds | records/s | MB/s | peak RSS (MiB) | CPU s | correct |",
            "|---|---|---|---|---|---|---|---|"]
    med = {}
    for system, label in (("strom", "`strom connect standalone`"), ("kafka", f"Kafka Connect {KAFKA_VERSION}")):
        rs = [r for r in results if r["system"] == system]
        if not rs:
            continue
        m = {k: statistics.median(r[k] for r in rs)
             for k in ("seconds", "records_per_s", "mb_per_s", "peak_rss_mb", "cpu_s")}
        med[system] = m

        def rng(k, fmt):
            return f"{fmt.format(m[k])} ({fmt.format(min(r[k] for r in rs))}–{fmt.format(max(r[k] for r in rs))})"
        rows.append(f"| {label} | {len(rs)} | {rng('seconds', '{:.2f}')} | {rng('records_per_s', '{:,.0f}')} | "
                    f"{rng('mb_per_s', '{:.2f}')} | {rng('peak_rss_mb', '{:.0f}')} | {rng('cpu_s', '{:.1f}')} | "
                    f"{sum(r['correct'] for r in rs)}/{len(rs)} |")
    if "strom" in med and "kafka" in med:
        s, k = med["strom"], med["kafka"]
        rows.append(f"| **ratio strom/Kafka** | | {s['seconds'] / k['seconds']:.2f} | "
                    f"{s['records_per_s'] / k['records_per_s']:.2f} | {s['mb_per_s'] / k['mb_per_s']:.2f} | "
                    f"{s['peak_rss_mb'] / k['peak_rss_mb']:.2f} | {s['cpu_s'] / k['cpu_s']:.2f} | |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--line-bytes", type=int, default=100, help="bytes per line, newline included")
    ap.add_argument("--reps", type=int, default=3, help="runs per system, alternating kafka, strom, ...")
    ap.add_argument("--systems", default="kafka,strom")
    ap.add_argument("--batch-size", type=int, default=2000, help="FileStreamSource batch.size (Kafka's default)")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds to wait for duplicates after the last line")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--worker-bin", type=Path,
                    help="strom binary for strom's worker (default: STROM_BIN, the broker's)")
    ap.add_argument("--worker-prop", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra worker setting for both workers (repeatable)")
    ap.add_argument("--out", type=Path, help="directory for results.json and summary.md")
    args = ap.parse_args()
    systems = args.systems.split(",")
    StromWorker.binary = args.worker_bin
    if "kafka" in systems:
        KafkaWorker.classpath = kafka_classpath()
    work = Path(tempfile.mkdtemp(prefix="strom-connect-bench-"))
    src = work / "source.txt"
    data = make_lines(args.lines, args.line_bytes)
    src.write_bytes(data)
    print(f"{args.lines:,} lines x {args.line_bytes} B = {len(data) / 1e6:.1f} MB; work dir {work}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    broker = Server(work / "broker", name="bench")
    broker.start()
    results = []
    try:
        for rep in range(1, args.reps + 1):
            for system in systems:
                results.append(one_run(system, rep, broker, work, src, data, args))
    finally:
        broker.stop()
    table = summarize(results)
    print()
    print(table)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(
            {"lines": args.lines, "line_bytes": args.line_bytes, "batch_size": args.batch_size,
             "kafka_version": KAFKA_VERSION, "argv": sys.argv, "runs": results}, indent=1) + "\n")
        (args.out / "summary.md").write_text(table + "\n")
    if not all(r["correct"] for r in results):
        sys.exit("some runs lost, duplicated or changed lines (see MISMATCH above)")


if __name__ == "__main__":
    main()
