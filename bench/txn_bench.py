#!/usr/bin/env python3
"""Transactional produce throughput vs plain (idempotent) produce, strom vs Apache Kafka, with
librdkafka (issue 5's benchmark): the same record size, 100 records per transaction, one producer,
acks=all, one partition.

    plain: records/s of an idempotent producer (enable.idempotence, linger.ms=5)
    txn:   records/s of a transactional producer: begin, 100 records, commit, repeated; each commit
           waits for its markers, so this is bounded by the transaction round trips

    STROM_BIN=target/release/strom bench/txn_bench.py --target strom [--records 20000 --size 100]
    bench/txn_bench.py --target kafka
"""
import argparse
import os
import sys
import tempfile
import time
import uuid

from confluent_kafka import Producer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from groups_bench import create, start  # noqa: E402


def plain(bootstrap, topic, records, size):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5})
    value = b"x" * size
    t0 = time.monotonic()
    for _ in range(records):
        while True:
            try:
                p.produce(topic, value=value, partition=0)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    assert p.flush(120) == 0
    return records / (time.monotonic() - t0)


def transactional(bootstrap, topic, records, size, per_txn):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-{uuid.uuid4()}",
                  "acks": "all", "linger.ms": 5})
    p.init_transactions(30)
    value = b"x" * size
    t0 = time.monotonic()
    for _ in range(records // per_txn):
        p.begin_transaction()
        for _ in range(per_txn):
            p.produce(topic, value=value, partition=0)
        p.commit_transaction(30)
    return (records // per_txn) * per_txn / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", choices=["strom", "kafka"], required=True)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--per-txn", type=int, default=100)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        proc, bootstrap = start(args.target, work)
        try:
            for run in range(args.runs):
                t1, t2 = f"plain-{run}-{uuid.uuid4().hex[:6]}", f"txn-{run}-{uuid.uuid4().hex[:6]}"
                create(bootstrap, t1, 1)
                create(bootstrap, t2, 1)
                a = plain(bootstrap, t1, args.records, args.size)
                b = transactional(bootstrap, t2, args.records, args.size, args.per_txn)
                print(f"{args.target} run {run}: plain {a:,.0f} records/s, transactional "
                      f"({args.per_txn}/txn) {b:,.0f} records/s ({b / a:.0%} of plain)", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
