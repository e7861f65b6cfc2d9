"""Running one streams topology on either engine: strom-streams' example programs
(crates/streams/examples) or the same topologies written with Java Kafka Streams
(java/.../StreamsApps.java), with the same command line, and knowing when one has processed its
input (its consumer group committed every partition it reads up to that partition's end).

Used by test_streams_java.py and bench/streams_bench.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("strom", "java")


def examples_dir() -> Path:
    """Where the strom-streams example binaries are: $STREAMS_EXAMPLES_DIR, else
    $CARGO_TARGET_DIR/<$STREAMS_PROFILE or debug>/examples."""
    if os.environ.get("STREAMS_EXAMPLES_DIR"):
        return Path(os.environ["STREAMS_EXAMPLES_DIR"])
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache" / "strom" / "target")
    return Path(target) / os.environ.get("STREAMS_PROFILE", "debug") / "examples"


def build_examples(timeout: float = 1200) -> Path:
    """Builds the examples (debug unless STREAMS_PROFILE=release) if they are missing."""
    d = examples_dir()
    if all((d / n).is_file() for n in ("wordcount", "windowed-counts")):
        return d
    if os.environ.get("STREAMS_EXAMPLES_DIR"):
        raise RuntimeError(f"STREAMS_EXAMPLES_DIR={d} has no wordcount / windowed-counts binaries")
    cmd = ["cargo", "build", "-p", "strom-streams", "--examples"]
    if os.environ.get("STREAMS_PROFILE", "debug") == "release":
        cmd.append("--release")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-4000:]}")
    return d


def java_classpath() -> str:
    if shutil.which("java") is None:
        raise RuntimeError("java not found on PATH (Java Kafka Streams needs a JDK 17+)")
    r = subprocess.run(["bash", str(ROOT / "scripts" / "build-java-compat.sh")], capture_output=True,
                       text=True, timeout=600, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"building tests/compat/java failed:\n{r.stderr[-4000:]}")
    return r.stdout.strip().splitlines()[-1]


class StreamsApp:
    """One running instance of `app` (wordcount or windowed-counts) on `engine`."""

    def __init__(self, engine: str, app: str, bootstrap: str, input_topic: str, output: str,
                 app_id: str, state_dir: Path, configs: dict[str, str] | None = None,
                 classpath: str | None = None, log: Path | None = None, commit_interval_ms: int = 100):
        assert engine in ENGINES, engine
        self.engine, self.app, self.app_id = engine, app, app_id
        args = ["--bootstrap-servers", bootstrap, "--input", input_topic, "--output", output,
                "--application-id", app_id, "--state-dir", str(state_dir),
                "--commit-interval-ms", str(commit_interval_ms)]
        for k, v in (configs or {}).items():
            args += ["--config", f"{k}={v}"]
        if engine == "strom":
            cmd = [str(examples_dir() / app), *args]
        else:
            assert classpath, "the Java engine needs the compat classpath"
            cmd = ["java", "-Xmx1g", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath,
                   "dev.strom.compat.StreamsApps", app, *args]
        self.log_path = log or (Path(state_dir) / f"{engine}-{app}.log")
        Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        out.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 6000) -> str:
        try:
            return Path(self.log_path).read_bytes()[-n:].decode("utf-8", "replace")
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def end_offsets(c: Consumer, topic: str, partitions: int) -> dict[int, int]:
    return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}


def caught_up(bootstrap: str, group: str, topics: dict[str, int]) -> bool:
    """Whether `group` committed every partition of `topics` ({name: partitions}) at its end
    offset. Streams apps commit only after their output is flushed, so this means the output is
    complete for the input so far."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        want = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
        committed = {(tp.topic, tp.partition): tp.offset for tp in c.committed(want, timeout=10)}
        for t, n in topics.items():
            for p, end in end_offsets(c, t, n).items():
                # An empty partition has nothing to commit (and may never get a commit).
                if end > 0 and committed.get((t, p), -1) < end:
                    return False
        return True
    finally:
        c.close()


def wait_caught_up(bootstrap: str, apps: list[StreamsApp], topics_of, timeout: float) -> float:
    """Waits until every app is caught up (topics_of(app) -> {topic: partitions}); returns the
    seconds it took. Fails if an app exits or the time runs out."""
    t0 = time.monotonic()
    pending = list(apps)
    while pending:
        for a in list(pending):
            if not a.alive():
                raise AssertionError(f"{a.engine} {a.app} exited with {a.proc.returncode}:\n{a.log_tail()}")
            if caught_up(bootstrap, a.app_id, topics_of(a)):
                print(f"{a.engine} {a.app} caught up after {time.monotonic() - t0:.1f}s")
                pending.remove(a)
        if pending and time.monotonic() - t0 > timeout:
            raise AssertionError(
                f"not caught up within {timeout:.0f}s: "
                + ", ".join(f"{a.engine} {a.app}" for a in pending)
                + "\n" + "\n".join(f"--- {a.engine} log ---\n{a.log_tail()}" for a in pending))
        if pending:
            time.sleep(0.2)
    return time.monotonic() - t0
