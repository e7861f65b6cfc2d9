"""Durability: SIGKILL the broker in the middle of a produce stream, restart it on the same data dir,
and check that every acknowledged record is there exactly once, in order, at the offset it was acked with."""

from __future__ import annotations

import threading
import time

from confluent_kafka import KafkaError

from util import OP_TIMEOUT, consume_all, create_topic, produce_all, producer

PARTS = 3


def _produce_until_stopped(bootstrap: str, topic: str, stop: threading.Event, acked: dict, failed: list,
                           window: int = 64) -> None:
    """acks=all, records seq-N to partition N % PARTS; every delivery report is recorded."""
    p = producer(bootstrap, {
        "linger.ms": 1, "message.timeout.ms": 3000, "request.timeout.ms": 2000,
        "retries": 0, "max.in.flight.requests.per.connection": 5,
        "reconnect.backoff.max.ms": 200,
    })
    inflight = [0]

    def report(err, msg):
        inflight[0] -= 1
        seq = int(msg.value().split(b"-")[1])
        if err is None:
            acked[seq] = (msg.partition(), msg.offset())
        else:
            failed.append((seq, err.code()))

    seq = 0
    while not stop.is_set():
        if inflight[0] >= window:
            p.poll(0.01)
            continue
        p.produce(topic, value=b"seq-%d" % seq, key=b"%d" % seq, partition=seq % PARTS, on_delivery=report)
        inflight[0] += 1
        seq += 1
        p.poll(0)
    # Let everything outstanding be acked or fail (the broker is down: fail within message.timeout.ms).
    p.flush(30)
    acked["_sent"] = seq


def test_sigkill_mid_stream_loses_no_acknowledged_record(server_factory, topic):
    srv = server_factory()
    create_topic(srv.bootstrap, topic, PARTS)
    stop = threading.Event()
    acked: dict = {}
    failed: list = []
    t = threading.Thread(target=_produce_until_stopped, args=(srv.bootstrap, topic, stop, acked, failed))
    t.start()
    try:
        deadline = time.monotonic() + OP_TIMEOUT
        while len(acked) < 3000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(acked) >= 3000, f"only {len(acked)} records acked before the crash point"
        srv.kill()  # crash, mid-stream: records are in flight right now
        time.sleep(0.5)
    finally:
        stop.set()
        t.join(60)
    assert not t.is_alive(), "producer thread did not finish"
    sent = acked.pop("_sent")
    assert len(acked) + len(failed) == sent, (len(acked), len(failed), sent)

    srv.start()  # same data dir, same port
    got = consume_all(srv.bootstrap, topic, PARTS, timeout=60)

    seen: dict[int, tuple[int, int]] = {}
    for part, msgs in got.items():
        offsets = [m.offset() for m in msgs]
        assert offsets == list(range(len(msgs))), f"partition {part}: offsets not contiguous from 0"
        seqs = [int(m.value().split(b"-")[1]) for m in msgs]
        assert seqs == sorted(seqs), f"partition {part}: records out of order"
        for m, s in zip(msgs, seqs):
            assert s % PARTS == part
            assert s not in seen, f"record seq-{s} present twice"
            seen[s] = (part, m.offset())
    unacked_present = [s for s in seen if s not in acked]
    print(f"crash: sent={sent} acked={len(acked)} failed={len(failed)} present={len(seen)} "
          f"present-but-unacked={len(unacked_present)}")
    lost = [s for s in acked if s not in seen]
    assert not lost, f"{len(lost)} acknowledged records lost, e.g. {sorted(lost)[:10]}"
    moved = [(s, acked[s], seen[s]) for s in acked if acked[s] != seen[s]]
    assert not moved, f"acknowledged records at other offsets than acked: {moved[:10]}"

    # The log goes on after the crash: new records get new offsets, nothing is overwritten.
    ends = {part: len(msgs) for part, msgs in got.items()}
    log = produce_all(producer(srv.bootstrap), [dict(topic=topic, partition=p, value=b"after-crash")
                                                 for p in range(PARTS)])
    assert not log.errors, log.errors
    assert sorted((m.partition(), m.offset()) for m in log.ok) == sorted(ends.items())


def test_sigterm_is_a_clean_shutdown_and_restart_keeps_everything(server_factory, topic):
    srv = server_factory()
    create_topic(srv.bootstrap, topic, 2)
    records = [dict(topic=topic, partition=i % 2, key=b"%d" % i, value=b"v%d" % i) for i in range(1000)]
    log = produce_all(producer(srv.bootstrap), records)
    assert not log.errors
    t0 = time.monotonic()
    srv.proc.terminate()
    try:
        code = srv.proc.wait(30)
    except Exception:
        srv.kill()
        raise AssertionError("broker did not exit within 30s of SIGTERM")
    assert code in (0, 143, -15), f"exit code after SIGTERM: {code}"  # 143: the JVM's SIGTERM exit
    assert time.monotonic() - t0 < 30
    srv.start()
    got = consume_all(srv.bootstrap, topic, 2)
    for part in (0, 1):
        assert [m.value() for m in got[part]] == [r["value"] for r in records if r["partition"] == part]
