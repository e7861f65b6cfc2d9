"""Java Kafka Streams 4.1 (the reference) and strom-streams run the same topologies on the same
input topic against the same broker; their output topics are compared record by record.

- `wordcount` (strom's example; `StreamsApps wordcount` in java/): with caching disabled on both
  sides (`statestore.cache.max.bytes=0`) every update of every word, in order, with its timestamp
  and the output partition it went to; with the default cache (whose flushes are timing-dependent)
  the final count per word.
- `windowed-counts`: tumbling, hopping, sliding and session windows with caching disabled: every
  update of every windowed key in order, with its timestamp (the tombstones of merged sessions
  included), out-of-order and late records included.

Both engines' counts are also checked against the counts computed here from the input, so the
test fails when both agree on a wrong answer as well as when they disagree.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections import Counter

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

import streams_apps
from streams_apps import StreamsApp, wait_caught_up
from util import consume_all, create_topic, produce_all, producer

CAUGHT_UP_TIMEOUT = 120.0
VOCAB = ["Kafka", "streams", "strom", "rust", "java", "log", "topic", "partition", "offset", "record",
         "café", "Über", "naïve", "x1", "42", "count", "window", "key", "value", "broker"]


@pytest.fixture(scope="module")
def classpath():
    try:
        return streams_apps.java_classpath()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def examples():
    try:
        return streams_apps.build_examples()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


def words(line: str) -> list[str]:
    """The examples' tokenizer: lower-case, split on anything not a letter or digit."""
    return [w for w in re.split(r"[^\w]|_", line.lower()) if w]


def wordcount_lines(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    seps = [" ", "  ", ", ", "; ", " -- ", "!", "\t", "/"]
    lines = []
    for _ in range(n):
        k = rnd.randint(0, 9)
        parts = [rnd.choice(VOCAB).upper() if rnd.random() < 0.1 else rnd.choice(VOCAB) for _ in range(k)]
        line = ""
        for p in parts:
            line += p + rnd.choice(seps)
        lines.append(line if k else rnd.choice(["", "...", " "]))
    return lines


def updates_by_key(bootstrap: str, topic: str, partitions: int) -> dict[bytes, tuple[int, list]]:
    """{key: (partition, [(value, timestamp), ...] in offset order)}; a key must stay in one partition."""
    out: dict[bytes, tuple[int, list]] = {}
    for p, msgs in consume_all(bootstrap, topic, partitions, timeout=60).items():
        for m in msgs:
            part, seq = out.setdefault(m.key(), (p, []))
            assert part == p, f"{topic}: key {m.key()!r} in partitions {part} and {p}"
            seq.append((m.value(), m.timestamp()[1]))
    return out


def i64(b: bytes | None) -> int | None:
    return None if b is None else int.from_bytes(b, "big", signed=True)


def first_difference(java: dict, strom: dict) -> str:
    """The first key whose updates differ, and where (the whole sequences would drown the report)."""
    for k in sorted(set(java) | set(strom), key=lambda b: (b is None, b or b"")):
        j, s = java.get(k), strom.get(k)
        if j == s:
            continue
        if not (isinstance(j, tuple) and isinstance(s, tuple)):
            return f"key {k!r}: java {str(j)[:300]}, strom {str(s)[:300]}"
        if j[0] != s[0]:
            return f"key {k!r}: java wrote it to partition {j[0]}, strom to {s[0]}"
        (jq, sq) = (j[1], s[1])
        i = next((i for i, (a, b) in enumerate(zip(jq, sq)) if a != b), min(len(jq), len(sq)))
        return (f"key {k!r}: {len(jq)} updates from java, {len(sq)} from strom; first difference at update {i}:"
                f"\n  java : {jq[i:i + 3]}\n  strom: {sq[i:i + 3]}")
    return "none"


def run_both(server, classpath, app: str, input_topic: str, outputs: dict[str, list[str]],
             internal: dict[str, int], input_partitions: int, configs: dict[str, str], tmp_path):
    """Runs `app` on both engines (output base names in `outputs`) until both are caught up."""
    apps = []
    try:
        for engine in ("java", "strom"):
            app_id = f"{engine}-{app}-{uuid.uuid4().hex[:6]}"
            apps.append(StreamsApp(engine, app, server.bootstrap, input_topic, outputs[engine][0], app_id,
                                   tmp_path / engine, configs, classpath=classpath))

        def topics_of(a: StreamsApp) -> dict[str, int]:
            return {input_topic: input_partitions, **{f"{a.app_id}-{t}": n for t, n in internal.items()}}

        took = wait_caught_up(server.bootstrap, apps, topics_of, CAUGHT_UP_TIMEOUT)
        print(f"{app}: both engines caught up after {took:.1f}s")
    finally:
        for a in apps:
            a.stop()


def make_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    for n in names:
        create_topic(bootstrap, n, partitions)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("cached", [False, True], ids=["cache-disabled", "default-cache"])
def test_wordcount_matches_java_kafka_streams(server, topic, classpath, examples, tmp_path, cached):
    input_topic = f"{topic}-in"
    outs = {"java": [f"{topic}-out-java"], "strom": [f"{topic}-out-strom"]}
    # Uncached, one input partition: each word's records reach its counting task in input order,
    # so the updates (and their timestamps: the largest record timestamp so far, as Kafka's
    # timestamped stores keep it) are the same on any engine. With three, the upstream tasks'
    # interleaving in the repartition topic decides the timestamps.
    in_partitions = 3 if cached else 1
    create_topic(server.bootstrap, input_topic, in_partitions)
    make_topics(server.bootstrap, outs["java"] + outs["strom"], 2)
    lines = wordcount_lines(1500, seed=7)
    rnd = random.Random(3)
    base_ts = int(time.time() * 1000) - 3_600_000
    produce_all(producer(server.bootstrap, {"enable.idempotence": True}),
                [{"topic": input_topic, "value": ln.encode(), "timestamp": base_ts + i * 10 - rnd.randint(0, 500)}
                 for i, ln in enumerate(lines)])
    want = Counter(w for ln in lines for w in words(ln))
    assert len(want) == len(VOCAB) and sum(want.values()) > 5000  # the input exercises the tokenizer

    configs = {} if cached else {"statestore.cache.max.bytes": "0"}
    run_both(server, classpath, "wordcount", input_topic, outs, {"counts-store-repartition": in_partitions},
             in_partitions, configs,
             tmp_path)
    java = updates_by_key(server.bootstrap, outs["java"][0], 2)
    strom = updates_by_key(server.bootstrap, outs["strom"][0], 2)

    final = lambda u: {k.decode(): i64(seq[-1][0]) for k, (_, seq) in u.items()}  # noqa: E731
    assert final(java) == dict(want), "Java Kafka Streams' final counts are not the input's"
    assert final(strom) == final(java), first_difference(final(java), final(strom))
    if not cached:
        # Every input word is one update: 1, 2, ..., n per word, with its timestamp, in the
        # partition the default partitioner picks for the word.
        assert sum(len(seq) for _, seq in java.values()) == sum(want.values())
        assert all([i64(v) for v, _ in seq] == list(range(1, len(seq) + 1)) for _, seq in java.values())
        assert strom == java, first_difference(java, strom)
    else:
        for k, (_, seq) in strom.items():
            counts = [i64(v) for v, _ in seq]
            assert counts == sorted(set(counts)), f"{k!r}: counts not strictly increasing: {counts}"


def windowed_input(n: int, seed: int, base: int) -> list[tuple[str, int]]:
    """(key, timestamp): mostly advancing time, some records out of order within the 10 s grace,
    some late by minutes (dropped by windows that closed), bursts that merge sessions."""
    rnd = random.Random(seed)
    out, t = [], base
    for i in range(n):
        t += rnd.choice([200, 700, 1500, 4000, 9000, 25000, 45000])
        ts = t
        if i % 17 == 5:
            ts = t - rnd.randint(1000, 9000)  # out of order, within grace
        if i % 29 == 11:
            ts = t - rnd.randint(90_000, 200_000)  # late: its windows closed
        out.append((f"k{rnd.randint(0, 5)}", ts))
    return out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_windowed_counts_match_java_kafka_streams(server, topic, classpath, examples, tmp_path):
    input_topic = f"{topic}-in"
    suffixes = ["", "-hopping", "-sliding", "-session"]
    outs = {e: [f"{topic}-out-{e}{s}" for s in suffixes] for e in ("java", "strom")}
    create_topic(server.bootstrap, input_topic, 2)
    make_topics(server.bootstrap, outs["java"] + outs["strom"], 2)
    base = (int(time.time() * 1000) - 6 * 3_600_000) // 60_000 * 60_000
    recs = windowed_input(800, seed=11, base=base)
    produce_all(producer(server.bootstrap, {"enable.idempotence": True}),
                [{"topic": input_topic, "key": k.encode(), "value": b"v", "timestamp": ts} for k, ts in recs])

    run_both(server, classpath, "windowed-counts", input_topic, outs, {}, 2,
             {"statestore.cache.max.bytes": "0"}, tmp_path)
    got = {e: [updates_by_key(server.bootstrap, t, 2) for t in outs[e]] for e in ("java", "strom")}
    (jt, jh, js, jse), (st, sh, ss, sse) = got["java"], got["strom"]

    # Tumbling: the final count per window must be what the input says for windows no record was
    # late for (a dropped late record is why Java's count of its window is lower).
    def window_of(k: bytes) -> tuple[str, int]:
        return k[:-8].decode(), int.from_bytes(k[-8:], "big")

    expect = Counter((k, (ts - base) // 60_000 * 60_000 + base) for k, ts in recs)
    java_final = {window_of(k): i64(seq[-1][0]) for k, (_, seq) in jt.items()}
    assert len(java_final) > 50
    exact = sum(1 for w, c in java_final.items() if expect[w] == c)
    assert exact >= len(java_final) * 0.8 and all(c <= expect[w] for w, c in java_final.items())

    for name, j, s in [("tumbling", jt, st), ("hopping", jh, sh), ("sliding", js, ss), ("session", jse, sse)]:
        assert sum(len(q) for _, q in j.values()) > 100, name
        assert s == j, f"{name} windows differ: " + first_difference(j, s)
    # Session merges forward tombstones for the sessions merged away.
    assert any(v is None for _, q in jse.values() for v, _ in q)
    # Sliding windows: the final count of a window that no record was late for is the number of
    # input records of its key in [start, start + d] (both ends inclusive).
    by_key: dict[str, list[int]] = {}
    for k, ts in recs:
        by_key.setdefault(k, []).append(ts)
    sliding_final = {window_of(k): i64(q[-1][0]) for k, (_, q) in js.items()}
    assert len(sliding_final) > 50
    count_in = lambda k, s: sum(1 for t in by_key[k] if s <= t <= s + 60_000)  # noqa: E731
    exact = sum(1 for (k, s), c in sliding_final.items() if count_in(k, s) == c)
    assert exact >= len(sliding_final) * 0.8 and all(c <= count_in(k, s) for (k, s), c in sliding_final.items())
