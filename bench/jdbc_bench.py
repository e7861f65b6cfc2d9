#!/usr/bin/env python3
"""JDBC connector throughput for docs/benchmarks.md (issue 9): rows/s for the source
(PostgreSQL table -> topic) and the sink (topic -> PostgreSQL table) with ~1 KB rows, through a
strom broker and a `strom connect standalone` worker with the JSON converter (schemas on).

    STROM_BIN=target/release/strom ~/.cache/strom/venv/bin/python bench/jdbc_bench.py --rows 50000

The PostgreSQL server is started on a private port and data directory (tests/compat/databases.py).
Source: mode incrementing, batch.max.rows 1000, timed from connector creation until the last record
is in the topic. Sink: insert.mode insert, batch.size 3000, auto.create, timed from connector creation
until the table holds every row.
"""
import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "compat"))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from conftest import Server  # noqa: E402
from databases import PASSWORD, Postgres  # noqa: E402
from test_connect import JSON_CONVERTER, Worker  # noqa: E402


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 201, r.status


def end_offset(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-probe"})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return high
    except Exception:
        return 0
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    args = ap.parse_args()
    n = args.rows
    work = Path(tempfile.mkdtemp(prefix="strom-jdbc-bench-"))
    os.environ.setdefault("COMPAT_TARGET", "strom")
    broker = Server(work / "broker", name="bench")
    broker.start()
    pg = Postgres().start()
    worker = None
    try:
        pg.sql("CREATE TABLE rows_src(id BIGSERIAL PRIMARY KEY, a TEXT NOT NULL, b TEXT NOT NULL, "
               "c TEXT NOT NULL, d TEXT NOT NULL, n BIGINT NOT NULL)", "mydb")
        # Four 250-character columns and a number: ~1 KB of data per row.
        pg.sql(f"INSERT INTO rows_src(a, b, c, d, n) SELECT repeat(md5(g::text), 8)::varchar(250), "
               f"repeat(md5((g+1)::text), 8)::varchar(250), repeat(md5((g+2)::text), 8)::varchar(250), "
               f"repeat(md5((g+3)::text), 8)::varchar(250), g FROM generate_series(1, {n}) g", "mydb")
        worker = Worker(work / "worker", broker.bootstrap, {
            "key.converter": JSON_CONVERTER, "offset.flush.interval.ms": "1000"}).start()
        t0 = time.monotonic()
        post(worker.url + "/connectors", {"name": "bench-source", "config": {
            "connector.class": "JdbcSourceConnector", "connection.url": pg.url(),
            "connection.user": "postgres", "connection.password": PASSWORD, "mode": "incrementing",
            "incrementing.column.name": "id", "table.whitelist": "rows_src", "topic.prefix": "bench_",
            "batch.max.rows": "1000", "poll.interval.ms": "100"}})
        while end_offset(broker.bootstrap, "bench_rows_src") < n:
            assert time.monotonic() - t0 < 900, "source too slow"
            time.sleep(0.2)
        src_s = time.monotonic() - t0
        t1 = time.monotonic()
        post(worker.url + "/connectors", {"name": "bench-sink", "config": {
            "connector.class": "JdbcSinkConnector", "connection.url": pg.url(),
            "connection.user": "postgres", "connection.password": PASSWORD, "topics": "bench_rows_src",
            "table.name.format": "rows_dst", "auto.create": "true", "batch.size": "3000"}})
        while True:
            try:
                done = int(pg.sql("SELECT count(*) FROM rows_dst", "mydb")) >= n
            except Exception:
                done = False
            if done:
                break
            assert time.monotonic() - t1 < 900, "sink too slow"
            time.sleep(0.2)
        sink_s = time.monotonic() - t1
        print(f"rows: {n} (~1 KB each)")
        print(f"source PostgreSQL -> topic: {src_s:.1f} s, {n / src_s:,.0f} rows/s")
        print(f"sink topic -> PostgreSQL:   {sink_s:.1f} s, {n / sink_s:,.0f} rows/s")
    finally:
        if worker:
            worker.stop()
        pg.stop()
        broker.stop()


if __name__ == "__main__":
    main()
