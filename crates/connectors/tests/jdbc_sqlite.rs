//! The JDBC sink and source tasks against a real SQLite file, without Kafka: what the sink writes
//! (create, upsert, evolve, delete) the source reads back with the same Connect schemas, and an
//! incrementing source resumes after its stored offset.

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_connect::{
    ConfigMap, ConnectRecord, OffsetStorageReader, Schema, SinkRecord, SinkTask, SourceOffset,
    SourcePartition, SourceTask, SourceTaskContext, Struct, Value,
};
use strom_connectors::jdbc::sink::JdbcSinkTask;
use strom_connectors::jdbc::source::JdbcSourceTask;

struct Offsets(BTreeMap<String, SourceOffset>);

impl OffsetStorageReader for Offsets {
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset> {
        self.0
            .get(&serde_json::Value::Object(partition.clone()).to_string())
            .cloned()
    }
}

fn props(pairs: &[(&str, &str)]) -> ConfigMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn value_schema(with_email: bool) -> Arc<Schema> {
    let mut s = Schema::struct_()
        .name("item")
        .field("id", Schema::int32())
        .unwrap()
        .field("label", Schema::string().optional())
        .unwrap()
        .field("when", Schema::timestamp().optional())
        .unwrap();
    if with_email {
        s = s.field("email", Schema::string().optional()).unwrap();
    }
    Arc::new(s)
}

fn record(offset: i64, id: i32, label: Option<&str>, email: Option<&str>) -> SinkRecord {
    let key_schema = Arc::new(Schema::struct_().field("id", Schema::int32()).unwrap());
    let key = Struct::new(key_schema.clone())
        .unwrap()
        .put("id", id)
        .unwrap();
    let vs = value_schema(email.is_some());
    let mut v = Struct::new(vs.clone())
        .unwrap()
        .put("id", id)
        .unwrap()
        .put("label", label.map(Value::from).unwrap_or(Value::Null))
        .unwrap()
        .put("when", Value::Int64(1_721_536_482_000 + i64::from(id)))
        .unwrap();
    if let Some(e) = email {
        v = v.put("email", e).unwrap();
    }
    SinkRecord {
        record: ConnectRecord {
            topic: "items".into(),
            kafka_partition: Some(0),
            key_schema: Some(key_schema),
            key: Value::Struct(key),
            value_schema: Some(vs),
            value: Value::Struct(v),
            timestamp: None,
            headers: Vec::new(),
            kafka_offset: Some(offset),
        },
    }
}

fn tombstone(offset: i64, id: i32) -> SinkRecord {
    let mut r = record(offset, id, None, None);
    r.record.value = Value::Null;
    r.record.value_schema = None;
    r
}

fn read_all(
    url: &str,
    extra: &[(&str, &str)],
    offsets: BTreeMap<String, SourceOffset>,
) -> Vec<Value> {
    let mut task = JdbcSourceTask::default();
    task.initialize(SourceTaskContext {
        offset_storage_reader: Arc::new(Offsets(offsets)),
    });
    let mut p = props(&[
        ("connection.url", url),
        ("topic.prefix", "lite_"),
        ("poll.interval.ms", "60000"),
    ]);
    p.extend(props(extra));
    task.start(&p).unwrap();
    let mut out = Vec::new();
    for _ in 0..4 {
        for r in task.poll().unwrap() {
            assert_eq!(r.record.topic, "lite_items");
            out.push(r.record.value);
        }
    }
    task.stop();
    out
}

#[test]
fn sink_writes_what_the_source_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("jdbc:sqlite:{}", dir.path().join("t.db").display());
    let mut sink = JdbcSinkTask::default();
    sink.start(&props(&[
        ("connection.url", &url),
        ("insert.mode", "upsert"),
        ("pk.mode", "record_key"),
        ("delete.enabled", "true"),
        ("auto.create", "true"),
        ("auto.evolve", "true"),
    ]))
    .unwrap();
    sink.put(vec![
        record(0, 1, Some("one"), None),
        record(1, 2, Some("two"), None),
        record(2, 3, None, None),
        record(3, 2, Some("deux"), None), // upsert in the same batch
    ])
    .unwrap();
    sink.put(vec![
        tombstone(4, 3),
        record(5, 4, Some("four"), Some("4@example.com")),
    ])
    .unwrap();
    sink.stop();

    let rows = read_all(&url, &[("mode", "bulk")], BTreeMap::new());
    let summary: Vec<(Value, Value, Value, Value)> = rows
        .iter()
        .map(|v| match v {
            Value::Struct(s) => (
                s.get("id").cloned().unwrap(),
                s.get("label").cloned().unwrap(),
                s.get("email").cloned().unwrap(),
                s.get("when").cloned().unwrap(),
            ),
            other => panic!("not a struct: {other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                Value::Int64(1),
                Value::from("one"),
                Value::Null,
                Value::Int64(1_721_536_482_001)
            ),
            (
                Value::Int64(2),
                Value::from("deux"),
                Value::Null,
                Value::Int64(1_721_536_482_002)
            ),
            (
                Value::Int64(4),
                Value::from("four"),
                Value::from("4@example.com"),
                Value::Int64(1_721_536_482_004)
            ),
        ]
    );
    // The key column is NOT NULL (a required field), the others optional.
    let Value::Struct(first) = &rows[0] else {
        unreachable!()
    };
    let schema = first.schema();
    assert_eq!(schema.name.as_deref(), Some("items"));
    assert!(!schema.field_by_name("id").unwrap().schema.optional);
    assert!(schema.field_by_name("label").unwrap().schema.optional);

    // Incrementing mode resumes after a stored offset.
    let mut stored = BTreeMap::new();
    let mut partition = SourcePartition::new();
    partition.insert("protocol".into(), serde_json::json!("1"));
    partition.insert("table".into(), serde_json::json!("items"));
    let mut offset = SourceOffset::new();
    offset.insert("incrementing".into(), serde_json::json!(2));
    stored.insert(serde_json::Value::Object(partition).to_string(), offset);
    let rest = read_all(
        &url,
        &[("mode", "incrementing"), ("incrementing.column.name", "id")],
        stored,
    );
    assert_eq!(rest.len(), 1);
    let Value::Struct(s) = &rest[0] else {
        unreachable!()
    };
    assert_eq!(s.get("id"), Some(&Value::Int64(4)));
}

#[test]
fn sink_refuses_records_without_schema_and_missing_tables() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("jdbc:sqlite:{}", dir.path().join("t.db").display());
    let mut sink = JdbcSinkTask::default();
    sink.start(&props(&[("connection.url", &url)])).unwrap();
    let err = sink
        .put(vec![record(0, 1, Some("x"), None)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Table items is missing and auto-creation is disabled"),
        "{err}"
    );
    let mut schemaless = record(1, 1, Some("x"), None);
    schemaless.record.value_schema = None;
    let err = sink.put(vec![schemaless]).unwrap_err().to_string();
    assert!(err.contains("needs a value schema"), "{err}");
}
