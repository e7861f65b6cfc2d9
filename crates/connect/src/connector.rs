//! The connector API: what a plugin implements, mirroring `org.apache.kafka.connect.connector`,
//! `.source` and `.sink`.
//!
//! A **connector** ([`SourceConnector`] or [`SinkConnector`]) validates its configuration and splits
//! the work into task configs; a **task** ([`SourceTask`] or [`SinkTask`]) moves the data. The worker
//! calls every method of one task from one thread, so tasks need no locking of their own.
//!
//! Differences from Kafka's Java API, because Rust has no thread interruption:
//! * [`SourceTask::poll`] must return within about a second when there is nothing to read (an empty
//!   batch is fine); the worker checks for stop and pause requests between polls and calls
//!   [`SourceTask::stop`] afterwards, never concurrently with `poll`.
//! * Source partitions and offsets are JSON maps (`serde_json::Map`), which is how Connect stores
//!   them anyway (JSON with schemas disabled).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::config_def::{ConfigDef, ConfigMap, ConfigValue};
use crate::data::{Schema, Value};
use crate::error::Result;

/// A source partition: where data comes from (for a file, `{"filename": "..."}`).
pub type SourcePartition = serde_json::Map<String, serde_json::Value>;
/// A position within a source partition (for a file, `{"position": 1234}`).
pub type SourceOffset = serde_json::Map<String, serde_json::Value>;

/// A topic partition, as consumed by sink tasks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// One record header. Values stay raw bytes (the worker has no header converter yet).
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// What source and sink records share (`ConnectRecord`); transforms work on this.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectRecord {
    pub topic: String,
    pub kafka_partition: Option<i32>,
    pub key_schema: Option<Arc<Schema>>,
    pub key: Value,
    pub value_schema: Option<Arc<Schema>>,
    pub value: Value,
    /// Milliseconds since the epoch; `None` lets the producer stamp it.
    pub timestamp: Option<i64>,
    pub headers: Vec<Header>,
    /// The record's offset in Kafka, for sink records (InsertField's `offset.field` reads it).
    pub kafka_offset: Option<i64>,
}

impl ConnectRecord {
    /// A record with only a topic and a value.
    pub fn new(topic: &str, value_schema: Option<Arc<Schema>>, value: Value) -> ConnectRecord {
        ConnectRecord {
            topic: topic.to_string(),
            kafka_partition: None,
            key_schema: None,
            key: Value::Null,
            value_schema,
            value,
            timestamp: None,
            headers: Vec::new(),
            kafka_offset: None,
        }
    }
}

/// A record produced by a source task, with the source position it came from (`SourceRecord`).
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRecord {
    pub source_partition: SourcePartition,
    pub source_offset: SourceOffset,
    pub record: ConnectRecord,
}

impl SourceRecord {
    pub fn new(
        source_partition: SourcePartition,
        source_offset: SourceOffset,
        topic: &str,
        value_schema: Option<Arc<Schema>>,
        value: Value,
    ) -> SourceRecord {
        SourceRecord {
            source_partition,
            source_offset,
            record: ConnectRecord::new(topic, value_schema, value),
        }
    }
}

/// A record handed to a sink task (`SinkRecord`): `record.kafka_partition` and
/// `record.kafka_offset` are always set.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkRecord {
    pub record: ConnectRecord,
}

impl SinkRecord {
    pub fn kafka_offset(&self) -> i64 {
        self.record.kafka_offset.unwrap_or(-1)
    }
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition {
            topic: self.record.topic.clone(),
            partition: self.record.kafka_partition.unwrap_or(0),
        }
    }
}

/// Whether a connector reads into Kafka or writes out of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorType {
    Source,
    Sink,
}

/// What every connector implements (`Connector`).
pub trait Connector: Send {
    /// The plugin's version, shown by `GET /connector-plugins`.
    fn version(&self) -> String;
    /// Starts the connector with its (already validated) configuration.
    fn start(&mut self, props: &ConfigMap) -> Result<()>;
    /// Splits the work into at most `max_tasks` task configurations.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>>;
    /// Stops the connector; tasks are stopped before this.
    fn stop(&mut self) -> Result<()>;
    /// The connector's own config keys (the worker adds the common ones: name, tasks.max, ...).
    fn config(&self) -> ConfigDef;
    /// Validates a configuration; by default against [`Connector::config`].
    fn validate(&self, props: &ConfigMap) -> Vec<ConfigValue> {
        self.config().validate(props)
    }
}

/// A connector that reads from an outside system into Kafka (`SourceConnector`).
pub trait SourceConnector: Connector {
    /// The task's class name, reported in task configs as `task.class`.
    fn task_class(&self) -> &'static str;
    fn create_task(&self) -> Box<dyn SourceTask>;
}

/// A connector that writes Kafka records to an outside system (`SinkConnector`).
pub trait SinkConnector: Connector {
    fn task_class(&self) -> &'static str;
    fn create_task(&self) -> Box<dyn SinkTask>;
}

/// Gives a source task the offsets committed before (`OffsetStorageReader`).
pub trait OffsetStorageReader: Send + Sync {
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset>;
}

/// What the worker hands a source task before start (`SourceTaskContext`).
#[derive(Clone)]
pub struct SourceTaskContext {
    pub offset_storage_reader: Arc<dyn OffsetStorageReader>,
}

/// A source task (`SourceTask`).
pub trait SourceTask: Send {
    fn version(&self) -> String;
    /// Called once before [`SourceTask::start`].
    fn initialize(&mut self, context: SourceTaskContext);
    fn start(&mut self, props: &ConfigMap) -> Result<()>;
    /// The next records; may be empty. Must not block for more than about a second.
    fn poll(&mut self) -> Result<Vec<SourceRecord>>;
    /// Called after the offsets of everything polled so far were committed.
    fn commit(&mut self) -> Result<()> {
        Ok(())
    }
    fn stop(&mut self);
}

/// Sends a record the sink task could not write to the dead letter queue
/// (`ErrantRecordReporter`); the worker hands one to tasks when `errors.tolerance=all`.
pub trait ErrantRecordReporter: Send + Sync {
    fn report(&self, record: &SinkRecord, error: &crate::error::ConnectError) -> Result<()>;
}

/// What the worker hands a sink task before start (`SinkTaskContext`).
#[derive(Clone, Default)]
pub struct SinkTaskContext {
    /// Present when `errors.tolerance=all`: records reported here are skipped (and go to the
    /// dead letter queue when `errors.deadletterqueue.topic.name` is set) instead of failing.
    pub errant_record_reporter: Option<Arc<dyn ErrantRecordReporter>>,
}

/// A sink task (`SinkTask`).
pub trait SinkTask: Send {
    fn version(&self) -> String;
    /// Called once before [`SinkTask::start`].
    fn initialize(&mut self, _context: SinkTaskContext) {}
    fn start(&mut self, props: &ConfigMap) -> Result<()>;
    /// Writes (or buffers) a batch of records.
    fn put(&mut self, records: Vec<SinkRecord>) -> Result<()>;
    /// Makes everything put so far durable; `offsets` are the next offsets to consume.
    fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        Ok(())
    }
    /// Returns the offsets safe to commit; by default flushes and returns all of them.
    fn pre_commit(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.flush(offsets)?;
        Ok(offsets.clone())
    }
    fn stop(&mut self);
}

/// Builds a connector instance.
#[derive(Clone, Copy)]
pub enum ConnectorFactory {
    Source(fn() -> Box<dyn SourceConnector>),
    Sink(fn() -> Box<dyn SinkConnector>),
}

/// A connector plugin the worker can run (`PluginDesc`).
#[derive(Clone, Copy)]
pub struct ConnectorPlugin {
    /// The full (Java) class name, e.g. `org.apache.kafka.connect.file.FileStreamSourceConnector`.
    pub class_name: &'static str,
    pub version: &'static str,
    pub factory: ConnectorFactory,
}

impl ConnectorPlugin {
    pub fn connector_type(&self) -> ConnectorType {
        match self.factory {
            ConnectorFactory::Source(_) => ConnectorType::Source,
            ConnectorFactory::Sink(_) => ConnectorType::Sink,
        }
    }

    /// The class name after the last dot.
    pub fn simple_name(&self) -> &'static str {
        self.class_name
            .rsplit('.')
            .next()
            .unwrap_or(self.class_name)
    }

    /// The names this plugin answers to: full name, simple name, and the simple name without
    /// its `Connector` suffix (Kafka's alias rule: `FileStreamSourceConnector` → `FileStreamSource`).
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim();
        let simple = self.simple_name();
        name == self.class_name
            || name == simple
            || simple
                .strip_suffix("Connector")
                .is_some_and(|alias| !alias.is_empty() && alias == name)
    }

    /// A fresh connector instance as a plain [`Connector`] (for validation).
    pub fn instantiate(&self) -> Instance {
        match self.factory {
            ConnectorFactory::Source(f) => Instance::Source(f()),
            ConnectorFactory::Sink(f) => Instance::Sink(f()),
        }
    }
}

/// A running connector instance of either kind.
pub enum Instance {
    Source(Box<dyn SourceConnector>),
    Sink(Box<dyn SinkConnector>),
}

impl Instance {
    pub fn as_connector(&self) -> &dyn Connector {
        match self {
            Instance::Source(c) => c.as_ref(),
            Instance::Sink(c) => c.as_ref(),
        }
    }
    pub fn as_connector_mut(&mut self) -> &mut dyn Connector {
        match self {
            Instance::Source(c) => c.as_mut(),
            Instance::Sink(c) => c.as_mut(),
        }
    }
}

/// The connector plugins a worker knows (`Plugins`). Built-in plugins come from the
/// `strom-connectors` crate; a program embedding the worker can register its own.
#[derive(Clone, Default)]
pub struct Plugins {
    connectors: Vec<ConnectorPlugin>,
}

impl Plugins {
    pub fn new() -> Plugins {
        Plugins::default()
    }

    pub fn register(&mut self, plugin: ConnectorPlugin) {
        self.connectors
            .retain(|p| p.class_name != plugin.class_name);
        self.connectors.push(plugin);
    }

    pub fn connectors(&self) -> &[ConnectorPlugin] {
        &self.connectors
    }

    /// Finds a connector plugin by full name, simple name or alias.
    pub fn find(&self, name: &str) -> Option<&ConnectorPlugin> {
        self.connectors.iter().find(|p| p.matches(name))
    }

    /// The error message Kafka gives for an unknown connector class, listing what is available.
    pub fn not_found_message(&self, name: &str) -> String {
        let available: Vec<String> = self
            .connectors
            .iter()
            .map(|p| {
                format!(
                    "PluginDesc{{klass={}, name='{}', version='{}', type={}}}",
                    p.class_name,
                    p.class_name,
                    p.version,
                    match p.connector_type() {
                        ConnectorType::Source => "source",
                        ConnectorType::Sink => "sink",
                    }
                )
            })
            .collect();
        format!(
            "Failed to find any class that implements Connector and which name matches {name}, \
             available connectors are: {}",
            available.join(", ")
        )
    }
}
