"""JDBC source and sink connectors (`io.confluent.connect.jdbc.*`) against real databases.

A running `strom connect standalone` worker, driven over its REST API with the JSON users send to
Kafka Connect, moves rows between real PostgreSQL and MariaDB servers (started here on private ports
and data directories, see databases.py) and SQLite files, through a strom broker. Rows are checked
in the databases with their own clients, records in the topics with confluent-kafka.
"""

from __future__ import annotations

import calendar
import json
import sqlite3
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import TARGET
from databases import PASSWORD, MariaDb, Postgres, mariadb_available, postgres_available
from test_connect import JSON_CONVERTER, Worker, http, wait_until

pytestmark = pytest.mark.skipif(
    TARGET != "strom", reason="the Connect worker under test is strom's own (no Kafka worker is started)"
)

WAIT = 60.0  # the longest any single step may take


@pytest.fixture(scope="module")
def pg():
    if not postgres_available():
        pytest.fail("PostgreSQL is not installed: run scripts/install-test-deps.sh", pytrace=False)
    db = Postgres().start()
    yield db
    db.stop()


@pytest.fixture(scope="module")
def mariadb():
    if not mariadb_available():
        pytest.fail("MariaDB is not installed: run scripts/install-test-deps.sh", pytrace=False)
    db = MariaDb().start()
    yield db
    db.stop()


def json_worker(tmp_path, bootstrap: str) -> Worker:
    """A worker configured like Confluent's connect-distributed.properties (JSON with schemas)."""
    return Worker(tmp_path / "worker", bootstrap, {
        "key.converter": JSON_CONVERTER,
        "key.converter.schemas.enable": "true",
        "offset.flush.interval.ms": "300",
    })


def create(w: Worker, name: str, config: dict) -> None:
    status, body, _ = http("POST", w.url + "/connectors", {"name": name, "config": config})
    assert status == 201, (status, body)


def task_state(w: Worker, name: str) -> tuple[str | None, str]:
    status, st, _ = http("GET", f"{w.url}/connectors/{name}/status")
    if status != 200 or not st.get("tasks"):
        return None, ""
    t = st["tasks"][0]
    return t["state"], t.get("trace") or ""


def wait_running(w: Worker, name: str) -> None:
    wait_until(lambda: task_state(w, name)[0] == "RUNNING", WAIT, f"{name} RUNNING", w.log)


def wait_failed(w: Worker, name: str) -> str:
    wait_until(lambda: task_state(w, name)[0] == "FAILED", WAIT, f"{name} FAILED", w.log)
    return task_state(w, name)[1]


class TopicReader:
    """Reads a topic from the start, keeping what it has read."""

    def __init__(self, bootstrap: str, topic: str):
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"jdbc-test-{uuid.uuid4().hex}",
                           "enable.auto.commit": False})
        self.c.assign([TopicPartition(topic, 0, 0)])
        self.records = []

    def read_until(self, n: int, timeout: float = WAIT, settle: float = 0.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.records) < n:
            m = self.c.poll(0.2)
            if m is not None and not m.error():
                self.records.append(m)
        # Anything extra (duplicates) must show up too.
        end = time.monotonic() + settle
        while time.monotonic() < end:
            m = self.c.poll(0.2)
            if m is not None and not m.error():
                self.records.append(m)
        return self.records

    def values(self):
        return [json.loads(m.value()) if m.value() is not None else None for m in self.records]

    def close(self):
        self.c.close()


def utc_millis(s: str) -> int:
    return calendar.timegm(time.strptime(s, "%Y-%m-%d %H:%M:%S")) * 1000


def test_seed_pipeline_mariadb_source_to_mariadb_sink(server, mariadb, tmp_path):
    """The seed's two REST calls, as written (only the port differs), against MariaDB."""
    mariadb.sql("CREATE TABLE users(id INT AUTO_INCREMENT PRIMARY KEY, user_id VARCHAR(20), pwd VARCHAR(20), "
                "name VARCHAR(20), created_at DATETIME DEFAULT CURRENT_TIMESTAMP)", "mydb")
    w = json_worker(tmp_path, server.bootstrap).start()
    reader = TopicReader(server.bootstrap, "my_topic_users")
    try:
        create(w, "my-source-connect", {
            "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
            "connection.url": f"jdbc:mariadb://localhost:{mariadb.port}/mydb",
            "connection.user": "root",
            "connection.password": PASSWORD,
            "mode": "incrementing",
            "incrementing.column.name": "id",
            "table.whitelist": "mydb.users",
            "topic.prefix": "my_topic_",
            "tasks.max": "1",
        })
        wait_running(w, "my-source-connect")
        mariadb.sql("insert into users(user_id, pwd, name) values ('users1', 'test1111', 'user name')", "mydb")
        [first] = reader.read_until(1)
        created = mariadb.rows("SELECT DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s') FROM users WHERE id = 1")[0][0]
        # The shape the seed shows (Kafka's JsonConverter with schemas).
        assert json.loads(first.value()) == {
            "schema": {
                "type": "struct",
                "fields": [
                    {"type": "int32", "optional": False, "field": "id"},
                    {"type": "string", "optional": True, "field": "user_id"},
                    {"type": "string", "optional": True, "field": "pwd"},
                    {"type": "string", "optional": True, "field": "name"},
                    {"type": "int64", "optional": True, "name": "org.apache.kafka.connect.data.Timestamp",
                     "version": 1, "field": "created_at"},
                ],
                "optional": False,
                "name": "users",
            },
            "payload": {"id": 1, "user_id": "users1", "pwd": "test1111", "name": "user name",
                        "created_at": utc_millis(created)},
        }

        # The seed's sink call, its URL typo (`jdbc:mariadb//`) included.
        create(w, "my-sink-connect", {
            "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
            "connection.url": f"jdbc:mariadb//localhost:{mariadb.port}/mydb",
            "connection.user": "root",
            "connection.password": PASSWORD,
            "auto.create": "true",
            "auto.evolve": "true",
            "delete.enabled": "false",
            "tasks.max": "1",
            "topics": "my_topic_users",
        })
        wait_running(w, "my-sink-connect")
        mariadb.sql("insert into users(user_id, pwd, name) values ('users2', 'test33', 'user name1');"
                    "insert into users(user_id, pwd, name) values ('users3', 'test333', 'user name3')", "mydb")
        # DATETIME(3) in the copy prints milliseconds; compare the instants to the second the source has.
        cols = "id, user_id, pwd, name, DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s')"
        src = lambda: mariadb.rows(f"SELECT {cols} FROM users ORDER BY id")  # noqa: E731
        dst = lambda: mariadb.rows(f"SELECT {cols} FROM my_topic_users ORDER BY id")  # noqa: E731

        def copied():
            try:
                return dst() == src() and len(src()) == 3
            except RuntimeError:
                return False  # table not created yet
        wait_until(copied, WAIT, "the sink table to match users", w.log)
        desc = {r[0]: r[1:] for r in mariadb.rows("DESCRIBE my_topic_users")}
        assert desc["id"][0].startswith("int") and desc["id"][1] == "NO", desc
        assert desc["created_at"][0].startswith("datetime"), desc

        # A new column evolves the sink table (auto.evolve).
        mariadb.sql("ALTER TABLE users ADD COLUMN email VARCHAR(50); "
                    "insert into users(user_id, pwd, name, email) values ('users4', 'pw4', 'four', 'u4@example.com')",
                    "mydb")

        def evolved():
            try:
                return mariadb.rows("SELECT id, email FROM my_topic_users ORDER BY id") == \
                    [["1", "NULL"], ["2", "NULL"], ["3", "NULL"], ["4", "u4@example.com"]]
            except RuntimeError:
                return False
        wait_until(evolved, WAIT, "the email column in the sink table", w.log)
        assert len(reader.read_until(4, settle=0.5)) == 4
    finally:
        reader.close()
        assert w.stop() == 0, w.log()


PG_TABLE = """CREATE TABLE orders(
  id SERIAL PRIMARY KEY,
  customer TEXT NOT NULL,
  amount NUMERIC(10,2),
  qty SMALLINT,
  big BIGINT,
  ratio DOUBLE PRECISION,
  paid BOOLEAN,
  day DATE,
  note BYTEA,
  updated_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'))"""


def pg_insert(pg: Postgres, first: int, count: int) -> None:
    values = ",".join(
        f"('c{i}', {i}.{i % 100:02d}, {i % 300}, {i * 10_000_000_000}, {i}.5, {'true' if i % 2 else 'false'}, "
        f"DATE '2024-01-01' + {i}, '\\x{i:04x}'::bytea)"
        for i in range(first, first + count))
    pg.sql(f"INSERT INTO orders(customer, amount, qty, big, ratio, paid, day, note) VALUES {values}", "mydb")


def test_postgres_to_mariadb_upserts_and_restart_without_duplicates(server, pg, mariadb, tmp_path):
    pg.sql(PG_TABLE, "mydb")
    pg_insert(pg, 1, 20)
    source = {
        "connector.class": "JdbcSourceConnector",
        "connection.url": pg.url(),
        "connection.user": "postgres",
        "connection.password": PASSWORD,
        "mode": "timestamp+incrementing",
        "incrementing.column.name": "id",
        "timestamp.column.name": "updated_at",
        "table.whitelist": "orders",
        "topic.prefix": "pg_",
        "poll.interval.ms": "200",
        "batch.max.rows": "7",
    }
    sink = {
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
        "connection.url": mariadb.url(sub="mysql"),
        "connection.user": "root",
        "connection.password": PASSWORD,
        "topics": "pg_orders",
        "table.name.format": "copy_${topic}",
        "insert.mode": "upsert",
        "pk.mode": "record_value",
        "pk.fields": "id",
        "auto.create": "true",
        "auto.evolve": "true",
    }
    pg_cols = ("id, customer, amount, qty, big, ratio, CASE WHEN paid THEN 1 ELSE 0 END, day, "
               "upper(encode(note, 'hex'))")
    my_cols = "id, customer, amount, qty, big, ratio, paid, day, hex(note)"

    def same():
        try:
            a = pg.rows(f"SELECT {pg_cols} FROM orders ORDER BY id")
            b = mariadb.rows(f"SELECT {my_cols} FROM copy_pg_orders ORDER BY id")
        except RuntimeError:
            return False
        norm = lambda rows: [[str(float(c)) if i == 5 else c for i, c in enumerate(r)] for r in rows]  # noqa: E731
        return norm(a) == norm(b) and (len(a), b)

    w = json_worker(tmp_path, server.bootstrap).start()
    try:
        create(w, "pg-source", source)
        create(w, "maria-sink", sink)
        wait_until(lambda: (r := same()) and r[0] == 20, WAIT, "20 rows copied to MariaDB", w.log)
    finally:
        assert w.stop() == 0, w.log()

    # While the worker is down: new rows, and an update of row 1.
    pg_insert(pg, 21, 10)
    pg.sql("UPDATE orders SET customer = 'changed', updated_at = (now() AT TIME ZONE 'utc') + interval '1 second' "
           "WHERE id = 1", "mydb")
    time.sleep(1.1)  # let the updated timestamp pass, so the (delay-free) source may read it
    same_config = {k: v for k, v in w.props.items() if k != "listeners"}  # same offsets file, new port
    w2 = Worker(tmp_path / "worker", server.bootstrap, same_config).start()
    try:
        # A standalone worker keeps connectors in memory (as Kafka's does): create them again; the
        # source offsets come back from the offsets file under the same connector name.
        create(w2, "pg-source", source)
        create(w2, "maria-sink", sink)
        wait_until(lambda: (r := same()) and r[0] == 30, WAIT, "30 rows with the update in MariaDB", w2.log)
        assert mariadb.rows("SELECT customer FROM copy_pg_orders WHERE id = 1") == [["changed"]]
    finally:
        assert w2.stop() == 0, w2.log()

    # Every row went to the topic exactly once, plus the update: no duplicates across the restart.
    reader = TopicReader(server.bootstrap, "pg_orders")
    try:
        recs = reader.read_until(31, settle=1.0)
        ids = [v["payload"]["id"] for v in reader.values()]
        assert sorted(ids) == sorted(list(range(1, 31)) + [1]), ids
        fields = {f["field"]: f for f in reader.values()[0]["schema"]["fields"]}
        assert fields["amount"]["name"] == "org.apache.kafka.connect.data.Decimal"
        assert fields["amount"]["parameters"] == {"scale": "2"}
        assert fields["day"]["name"] == "org.apache.kafka.connect.data.Date"
        assert fields["qty"]["type"] == "int16" and fields["big"]["type"] == "int64"
        assert fields["note"]["type"] == "bytes" and fields["paid"]["type"] == "boolean"
        assert fields["customer"]["optional"] is False and fields["amount"]["optional"] is True
        assert len(recs) == 31
    finally:
        reader.close()
    desc = {r[0]: r[1:] for r in mariadb.rows("DESCRIBE copy_pg_orders")}
    assert desc["id"][2] == "PRI", desc


def envelope(schema: dict, payload) -> bytes:
    return json.dumps({"schema": schema, "payload": payload}).encode()


KEY_SCHEMA = {"type": "struct", "optional": False, "fields": [{"type": "int32", "optional": False, "field": "id"}]}
VALUE_SCHEMA = {"type": "struct", "optional": False, "name": "item", "fields": [
    {"type": "int32", "optional": False, "field": "id"},
    {"type": "string", "optional": True, "field": "label"},
    {"type": "double", "optional": True, "field": "price"},
]}


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for k, v in records:
        p.produce(topic, key=k, value=v)
    assert p.flush(30) == 0


def test_sqlite_sink_upserts_and_deletes_and_sqlite_source_finds_new_tables(server, topic, tmp_path):
    db_path = tmp_path / "items.db"
    key = lambda i: envelope(KEY_SCHEMA, {"id": i})  # noqa: E731
    val = lambda i, label, price=None: envelope(VALUE_SCHEMA, {"id": i, "label": label, "price": price})  # noqa: E731
    produce(server.bootstrap, topic, [(key(1), val(1, "one", 1.5)), (key(2), val(2, "two")),
                                      (key(3), val(3, "three"))])
    w = json_worker(tmp_path, server.bootstrap).start()
    try:
        create(w, "sqlite-sink", {
            "connector.class": "JdbcSinkConnector",
            "connection.url": f"jdbc:sqlite:{db_path}",
            "topics": topic,
            "table.name.format": "items",
            "insert.mode": "upsert",
            "pk.mode": "record_key",
            "delete.enabled": "true",
            "auto.create": "true",
        })

        def rows():
            try:
                with sqlite3.connect(db_path) as c:
                    return c.execute("SELECT id, label, price FROM items ORDER BY id").fetchall()
            except sqlite3.OperationalError:
                return None
        wait_until(lambda: rows() == [(1, "one", 1.5), (2, "two", None), (3, "three", None)], WAIT,
                   "three rows in SQLite", w.log)
        # An upsert of 2 and a tombstone for 3.
        produce(server.bootstrap, topic, [(key(2), val(2, "deux", 2.25)), (key(3), None)])
        wait_until(lambda: rows() == [(1, "one", 1.5), (2, "deux", 2.25)], WAIT, "upsert and delete", w.log)

        # The SQLite file as a source: tables appearing later are picked up (table.poll.interval.ms).
        create(w, "sqlite-source", {
            "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
            "connection.url": f"jdbc:sqlite:{db_path}",
            "mode": "bulk",
            "topic.prefix": f"{topic}-lite-",
            "poll.interval.ms": "60000",
            "table.poll.interval.ms": "300",
        })
        wait_running(w, "sqlite-source")
        reader = TopicReader(server.bootstrap, f"{topic}-lite-items")
        try:
            got = reader.read_until(2)
            assert sorted(v["payload"]["label"] for v in reader.values()) == ["deux", "one"], got
        finally:
            reader.close()
        with sqlite3.connect(db_path) as c:
            c.execute("CREATE TABLE later(n INTEGER NOT NULL, s TEXT)")
            c.execute("INSERT INTO later VALUES (7, 'seven')")
        reader = TopicReader(server.bootstrap, f"{topic}-lite-later")
        try:
            reader.read_until(1)
            assert [v["payload"] for v in reader.values()] == [{"n": 7, "s": "seven"}]
            assert reader.values()[0]["schema"]["fields"][0] == {"type": "int64", "optional": False, "field": "n"}
        finally:
            reader.close()
    finally:
        assert w.stop() == 0, w.log()


def committed(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        [tp] = c.committed([TopicPartition(topic, 0)], timeout=20)
        return tp.offset
    finally:
        c.close()


def test_bad_input_fails_tasks_with_precise_messages(server, pg, tmp_path):
    pg.sql("CREATE TABLE IF NOT EXISTS present(id INT PRIMARY KEY, n INT)", "mydb")
    w = json_worker(tmp_path, server.bootstrap).start()
    base = {"connector.class": "JdbcSourceConnector", "connection.url": pg.url(), "connection.user": "postgres",
            "connection.password": PASSWORD, "mode": "incrementing", "incrementing.column.name": "id",
            "topic.prefix": "bad_", "connection.attempts": "1"}
    secret = "Wr0ngSecretPw"
    try:
        create(w, "wrong-password", {**base, "connection.password": secret, "table.whitelist": "present"})
        trace = wait_failed(w, "wrong-password")
        assert "password authentication failed" in trace and "postgres" in trace, trace
        assert secret not in trace and secret not in w.log()

        create(w, "wrong-table", {**base, "table.whitelist": "absent_table"})
        trace = wait_failed(w, "wrong-table")
        assert "absent_table" in trace and "does not exist" in trace, trace

        create(w, "wrong-column", {**base, "table.whitelist": "present", "incrementing.column.name": "idx"})
        trace = wait_failed(w, "wrong-column")
        assert "incrementing.column.name 'idx'" in trace and "present" in trace, trace

        create(w, "nullable-column", {**base, "table.whitelist": "present", "incrementing.column.name": "n"})
        trace = wait_failed(w, "nullable-column")
        assert "incrementing column n on public.present because this column is nullable" in trace, trace

        create(w, "wrong-host", {**base, "table.whitelist": "present",
                                 "connection.url": "jdbc:postgresql://127.0.0.1:1/mydb"})
        trace = wait_failed(w, "wrong-host")
        assert "127.0.0.1:1" in trace, trace

        # The plugins are listed, and validate names every bad key.
        status, plugins, _ = http("GET", w.url + "/connector-plugins")
        classes = {p["class"] for p in plugins}
        assert {"io.confluent.connect.jdbc.JdbcSourceConnector", "io.confluent.connect.jdbc.JdbcSinkConnector"} <= classes
        bad = {k: v for k, v in base.items() if k != "topic.prefix"}
        bad.update({"name": "checked", "mode": "sometimes", "numeric.mapping": "exact"})
        status, v, _ = http("PUT", w.url + "/connector-plugins/JdbcSourceConnector/config/validate", bad)
        assert status == 200, v
        errors = {c["value"]["name"]: c["value"]["errors"] for c in v["configs"] if c["value"]["errors"]}
        assert set(errors) == {"topic.prefix", "mode", "numeric.mapping"}, errors
        assert v["error_count"] == 3

        status, body, _ = http("POST", w.url + "/connectors", {"name": "wrong-url", "config": {
            **base, "connection.url": "jdbc:oracle:thin:@h:1521:x"}})
        assert status == 400 and "connection.url" in body["message"], body
    finally:
        assert w.stop() == 0, w.log()


def test_sink_never_commits_refused_rows_and_dlq_takes_type_mismatches(server, pg, tmp_path):
    pg.sql("CREATE TABLE strict_t(id INT PRIMARY KEY, n INT)", "mydb")
    schema_int = {"type": "struct", "optional": False, "fields": [
        {"type": "int32", "optional": False, "field": "id"}, {"type": "int32", "optional": True, "field": "n"}]}
    schema_str = {"type": "struct", "optional": False, "fields": [
        {"type": "int32", "optional": False, "field": "id"}, {"type": "string", "optional": True, "field": "n"}]}
    run = uuid.uuid4().hex[:8]
    strict_topic, dlq_topic, tolerant_topic = f"strict-{run}", f"dlq-{run}", f"tolerant-{run}"
    records = [(None, envelope(schema_int, {"id": 1, "n": 1})),
               (None, envelope(schema_str, {"id": 2, "n": "not a number"})),
               (None, envelope(schema_int, {"id": 3, "n": 3}))]
    produce(server.bootstrap, strict_topic, records)
    produce(server.bootstrap, tolerant_topic, records)
    sink = {"connector.class": "JdbcSinkConnector", "connection.url": pg.url(), "connection.user": "postgres",
            "connection.password": PASSWORD, "table.name.format": "strict_t", "max.retries": "0"}
    w = json_worker(tmp_path, server.bootstrap).start()
    try:
        # errors.tolerance=none: the batch is refused, the task fails naming the problem, nothing is
        # written and no offset is committed.
        create(w, "strict-sink", {**sink, "topics": strict_topic})
        trace = wait_failed(w, "strict-sink")
        assert "strict_t" in trace and "integer" in trace, trace
        assert pg.rows("SELECT count(*) FROM strict_t") == [["0"]]
        assert committed(server.bootstrap, "connect-strict-sink", strict_topic) < 0

        # errors.tolerance=all: the mismatched record goes to the dead letter queue, the rest is written.
        create(w, "tolerant-sink", {**sink, "topics": tolerant_topic, "errors.tolerance": "all",
                                    "errors.deadletterqueue.topic.name": dlq_topic,
                                    "errors.deadletterqueue.context.headers.enable": "true"})
        wait_until(lambda: pg.rows("SELECT id, n FROM strict_t ORDER BY id") == [["1", "1"], ["3", "3"]], WAIT,
                   "the good rows", w.log)
        reader = TopicReader(server.bootstrap, dlq_topic)
        try:
            [m] = reader.read_until(1)
            assert json.loads(m.value())["payload"] == {"id": 2, "n": "not a number"}
            headers = dict(m.headers())
            assert headers["__connect.errors.topic"] == tolerant_topic.encode()
            assert headers["__connect.errors.offset"] == b"1"
        finally:
            reader.close()
        wait_until(lambda: committed(server.bootstrap, "connect-tolerant-sink", tolerant_topic) == 3, WAIT,
                   "offsets committed past the dead-lettered record", w.log)
        assert task_state(w, "tolerant-sink")[0] == "RUNNING"

        # A record a transform cannot handle (Cast of "not a number" to int32) goes to the dead
        # letter queue too, with the stage TRANSFORMATION and the record as it was in Kafka.
        cast_dlq = f"dlq-cast-{run}"
        create(w, "cast-sink", {**sink, "topics": tolerant_topic, "table.name.format": "cast_t",
                                "auto.create": "true", "errors.tolerance": "all",
                                "transforms": "num", "transforms.num.type": "org.apache.kafka.connect.transforms.Cast$Value",
                                "transforms.num.spec": "n:int32",
                                "errors.deadletterqueue.topic.name": cast_dlq,
                                "errors.deadletterqueue.context.headers.enable": "true"})
        wait_until(lambda: _rows_or_none(pg, "SELECT id, n FROM cast_t ORDER BY id") == [["1", "1"], ["3", "3"]],
                   WAIT, "the rows the transform handled", w.log)
        reader = TopicReader(server.bootstrap, cast_dlq)
        try:
            [m] = reader.read_until(1)
            assert json.loads(m.value())["payload"] == {"id": 2, "n": "not a number"}
            headers = dict(m.headers())
            assert headers["__connect.errors.stage"] == b"TRANSFORMATION", headers
            assert headers["__connect.errors.offset"] == b"1"
        finally:
            reader.close()
        wait_until(lambda: committed(server.bootstrap, "connect-cast-sink", tolerant_topic) == 3, WAIT,
                   "offsets committed past the record the transform refused", w.log)
        assert task_state(w, "cast-sink")[0] == "RUNNING"
    finally:
        assert w.stop() == 0, w.log()


def test_postgres_timestamp_mode_numeric_mapping_query_mode_and_kafka_keys(server, pg, tmp_path):
    pg.sql("CREATE TABLE prices(id INT PRIMARY KEY, price NUMERIC(8,2), qty NUMERIC(5,0), label TEXT, "
           "ts TIMESTAMPTZ NOT NULL DEFAULT now())", "mydb")
    pg.sql("INSERT INTO prices(id, price, qty, label) VALUES (1, 9.99, 3, 'a'), (2, 0.50, 10, 'hidden'), "
           "(3, 120.00, 1, 'c')", "mydb")
    run = uuid.uuid4().hex[:6]
    base = {"connection.url": pg.url(), "connection.user": "postgres", "connection.password": PASSWORD,
            "poll.interval.ms": "200"}
    w = json_worker(tmp_path, server.bootstrap).start()
    ts_reader = TopicReader(server.bootstrap, f"ts{run}_prices")
    q_reader = TopicReader(server.bootstrap, f"q{run}")
    try:
        create(w, "ts-source", {**base, "connector.class": "JdbcSourceConnector", "mode": "timestamp",
                                "timestamp.column.name": "ts", "table.include.list": "public\\.pri.*",
                                "topic.prefix": f"ts{run}_", "numeric.mapping": "best_fit"})
        create(w, "query-source", {**base, "connector.class": "JdbcSourceConnector", "mode": "incrementing",
                                   "incrementing.column.name": "id", "topic.prefix": f"q{run}",
                                   "query": "SELECT id, label FROM prices WHERE label <> 'hidden'"})
        create(w, "kafka-keyed-sink", {**base, "connector.class": "JdbcSinkConnector", "topics": f"ts{run}_prices",
                                       "table.name.format": "kafka_${topic}", "pk.mode": "kafka",
                                       "fields.whitelist": "id,price", "auto.create": "true"})
        create(w, "pg-upsert-sink", {**base, "connector.class": "JdbcSinkConnector", "topics": f"ts{run}_prices",
                                     "table.name.format": "latest_${topic}", "insert.mode": "upsert",
                                     "pk.mode": "record_value", "pk.fields": "id", "auto.create": "true"})
        ts_reader.read_until(3)
        values = ts_reader.values()
        assert sorted(v["payload"]["id"] for v in values) == [1, 2, 3]
        fields = {f["field"]: f["type"] for f in values[0]["schema"]["fields"]}
        assert fields == {"id": "int32", "price": "double", "qty": "int32", "label": "string", "ts": "int64"}
        assert {v["payload"]["id"]: v["payload"]["price"] for v in values} == {1: 9.99, 2: 0.5, 3: 120.0}

        # Query mode: only what the query selects, and its WHERE composes with the connector's.
        q_reader.read_until(2)
        assert [v["payload"] for v in q_reader.values()] == [{"id": 1, "label": "a"}, {"id": 3, "label": "c"}]

        # Timestamp mode sees changed rows again.
        pg.sql("UPDATE prices SET price = 10.49, ts = now() WHERE id = 3", "mydb")
        ts_reader.read_until(4)
        assert ts_reader.values()[3]["payload"]["price"] == 10.49

        # pk.mode=kafka: the rows are keyed by topic, partition and offset; only the listed fields.
        table = f"kafka_ts{run}_prices"
        wait_until(lambda: _rows_or_none(pg, f"SELECT __connect_offset, id, price FROM {table} ORDER BY 1")
                   is not None and len(pg.rows(f"SELECT 1 FROM {table}")) == 4, WAIT, "4 kafka-keyed rows", w.log)
        cols = [r[0] for r in pg.rows(f"SELECT column_name FROM information_schema.columns WHERE table_name = "
                                      f"'{table}' ORDER BY ordinal_position")]
        assert cols == ["__connect_topic", "__connect_partition", "__connect_offset", "id", "price"], cols
        assert pg.rows(f"SELECT __connect_offset, id, price FROM {table} WHERE __connect_offset = 3") == \
            [["3", "3", "10.49"]]
        # The PostgreSQL upsert (INSERT ... ON CONFLICT DO UPDATE) keeps one row per id, the latest.
        wait_until(lambda: _rows_or_none(pg, f"SELECT id, price, label FROM latest_ts{run}_prices ORDER BY id") ==
                   [["1", "9.99", "a"], ["2", "0.5", "hidden"], ["3", "10.49", "c"]], WAIT, "upserted rows", w.log)
        # Nothing else arrived in query mode (incrementing saw no new id).
        assert len(q_reader.read_until(3, timeout=1.0)) == 2
    finally:
        ts_reader.close()
        q_reader.close()
        assert w.stop() == 0, w.log()


def _rows_or_none(pg: Postgres, query: str):
    try:
        return pg.rows(query)
    except Exception:
        return None


def test_postgres_source_tasks_split_tables_exclusions_and_zone_names(server, pg, tmp_path):
    """tasks.max spreads the tables over tasks (each row exactly once), table.blacklist and
    table.exclude.list skip tables, and db.timezone takes a zone name (Asia/Seoul)."""
    pg.sql("CREATE DATABASE spread")
    tables = ["t_a", "t_b", "t_c", "t_d", "t_e"]
    for t in tables + ["skip_me"]:
        pg.sql(f"CREATE TABLE {t}(id SERIAL PRIMARY KEY, name TEXT, at TIMESTAMP NOT NULL)", "spread")
        pg.sql(f"INSERT INTO {t}(name, at) VALUES ('{t}-1', '2024-07-21 13:34:42'), "
               f"('{t}-2', '2024-01-21 09:00:00')", "spread")
    run = uuid.uuid4().hex[:6]
    base = {"connector.class": "JdbcSourceConnector", "connection.url": pg.url("spread"),
            "connection.user": "postgres", "connection.password": PASSWORD, "mode": "incrementing",
            "incrementing.column.name": "id", "poll.interval.ms": "200", "db.timezone": "Asia/Seoul"}
    w = json_worker(tmp_path, server.bootstrap).start()
    readers = {t: TopicReader(server.bootstrap, f"s{run}_{t}") for t in tables}
    excl = TopicReader(server.bootstrap, f"x{run}_t_a")
    try:
        create(w, "spread-source", {**base, "tasks.max": "3", "topic.prefix": f"s{run}_",
                                    "table.blacklist": "skip_me"})
        create(w, "exclude-source", {**base, "tasks.max": "1", "topic.prefix": f"x{run}_",
                                     "table.exclude.list": r"public\.(skip_me|t_[b-e])"})

        def states():
            status, st, _ = http("GET", f"{w.url}/connectors/spread-source/status")
            return [t["state"] for t in st.get("tasks", [])] if status == 200 else []
        # Five tables over three tasks: groups of 2, 2 and 1, as Confluent's connector makes them.
        wait_until(lambda: states() == ["RUNNING"] * 3, WAIT, "3 RUNNING tasks", w.log)

        for t, r in readers.items():
            r.read_until(2)
        # New rows after the start, then each row must arrive exactly once across the tasks.
        for t in tables:
            pg.sql(f"INSERT INTO {t}(name, at) VALUES ('{t}-3', '2024-07-21 00:00:00')", "spread")
        for t, r in readers.items():
            r.read_until(3, settle=1.0)
            assert sorted(v["payload"]["name"] for v in r.values()) == [f"{t}-1", f"{t}-2", f"{t}-3"], t
        # Asia/Seoul is UTC+9 all year: 13:34:42 there is 04:34:42 UTC.
        at = {v["payload"]["name"]: v["payload"]["at"] for v in readers["t_a"].values()}
        assert at == {"t_a-1": utc_millis("2024-07-21 04:34:42"), "t_a-2": utc_millis("2024-01-21 00:00:00"),
                      "t_a-3": utc_millis("2024-07-20 15:00:00")}, at

        excl.read_until(3)
        assert sorted(v["payload"]["name"] for v in excl.values()) == ["t_a-1", "t_a-2", "t_a-3"]
        # Neither connector wrote the excluded tables (both have copied everything else by now).
        from confluent_kafka.admin import AdminClient
        names = set(AdminClient({"bootstrap.servers": server.bootstrap}).list_topics(timeout=10).topics)
        assert f"s{run}_skip_me" not in names and f"x{run}_skip_me" not in names
        assert not any(n.startswith(f"x{run}_t_") and n != f"x{run}_t_a" for n in names), sorted(names)
        assert f"s{run}_t_e" in names
    finally:
        for r in list(readers.values()) + [excl]:
            r.close()
        assert w.stop() == 0, w.log()
