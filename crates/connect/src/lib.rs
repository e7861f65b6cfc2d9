//! strom-connect: Kafka Connect for strom.
//!
//! * The **connector API** ([`connector`]): [`SourceConnector`] / [`SourceTask`] (poll, source
//!   partition and offset maps, commit) and [`SinkConnector`] / [`SinkTask`] (put, flush,
//!   pre-commit), with [`ConfigDef`] describing each config key (type, default, importance,
//!   documentation, validator).
//! * Connect's **data model** ([`data`]): [`Schema`], [`Struct`], [`Value`]; **converters**
//!   ([`converter`]): JsonConverter (with or without the schema/payload envelope, the same bytes as
//!   Kafka's), StringConverter, ByteArrayConverter; **transforms** ([`transforms`]).
//! * The **runtime**: [`Worker`] runs tasks against Kafka through librdkafka (never broker
//!   internals), the standalone [`StandaloneHerder`] owns connectors, the [`rest`] module serves
//!   Kafka Connect's REST API (and [`web_console`], a browser console over it), [`offset_store`] keeps source offsets in a file.
//!
//! # Writing a connector
//!
//! Implement [`Connector`] plus [`SourceConnector`] (or [`SinkConnector`]) for the connector, and
//! [`SourceTask`] (or [`SinkTask`]) for its tasks, then register it:
//!
//! ```
//! use strom_connect::*;
//!
//! struct Hello;
//! impl Connector for Hello {
//!     fn version(&self) -> String { "1.0".into() }
//!     fn start(&mut self, _props: &ConfigMap) -> Result<()> { Ok(()) }
//!     fn task_configs(&self, _max: usize) -> Result<Vec<ConfigMap>> { Ok(vec![ConfigMap::new()]) }
//!     fn stop(&mut self) -> Result<()> { Ok(()) }
//!     fn config(&self) -> ConfigDef {
//!         ConfigDef::new().define("topic", ConfigType::String, None, Importance::High, "Where to write.")
//!     }
//! }
//! impl SourceConnector for Hello {
//!     fn task_class(&self) -> &'static str { "com.example.HelloTask" }
//!     fn create_task(&self) -> Box<dyn SourceTask> { Box::new(HelloTask { topic: String::new(), sent: false }) }
//! }
//! struct HelloTask { topic: String, sent: bool }
//! impl SourceTask for HelloTask {
//!     fn version(&self) -> String { "1.0".into() }
//!     fn initialize(&mut self, _ctx: SourceTaskContext) {}
//!     fn start(&mut self, props: &ConfigMap) -> Result<()> {
//!         self.topic = props.get("topic").cloned().unwrap_or_default();
//!         Ok(())
//!     }
//!     fn poll(&mut self) -> Result<Vec<SourceRecord>> {
//!         if self.sent {
//!             std::thread::sleep(std::time::Duration::from_millis(200)); // idle: return soon
//!             return Ok(vec![]);
//!         }
//!         self.sent = true;
//!         Ok(vec![SourceRecord::new(Default::default(), Default::default(), &self.topic,
//!             Some(std::sync::Arc::new(Schema::string())), Value::from("hello"))])
//!     }
//!     fn stop(&mut self) {}
//! }
//!
//! let mut plugins = Plugins::new();
//! plugins.register(ConnectorPlugin {
//!     class_name: "com.example.HelloConnector",
//!     version: "1.0",
//!     factory: ConnectorFactory::Source(|| Box::new(Hello)),
//! });
//! assert!(plugins.find("Hello").is_some()); // alias: simple name without "Connector"
//! ```
//!
//! A program then runs a worker with `strom_connect::run_standalone(worker_props, connector_files,
//! plugins)`; the `strom` binary does this with the built-in plugins of `strom-connectors`.

pub mod active_topics;
pub mod backoff;
pub mod config_def;
pub mod connector;
pub mod connector_config;
pub mod converter;
pub mod data;
pub mod dead_letter;
pub mod distributed;
pub mod error;
pub mod error_handling;
pub mod herder;
pub mod herder_api;
pub mod json;
pub mod loggers;
pub mod number_converter;
pub mod offset_store;
pub mod pending_offsets;
pub mod properties;
pub mod rest;
pub mod rest_forward;
pub mod rest_openapi;
pub mod simple_header_converter;
pub mod standalone;
pub mod task_restart;
pub mod topic_creation;
pub mod transforms;
pub mod web_console;
pub mod worker;
pub mod worker_config;

use std::path::PathBuf;

pub use config_def::{ConfigDef, ConfigMap, ConfigType, ConfigValue, Importance, Validator};
pub use connector::{
    ConnectRecord, Connector, ConnectorFactory, ConnectorPlugin, ConnectorType,
    ErrantRecordReporter, Header, OffsetStorageReader, Plugins, SinkConnector, SinkRecord,
    SinkTask, SinkTaskContext, SourceConnector, SourceOffset, SourcePartition, SourceRecord,
    SourceTask, SourceTaskContext, TopicPartition,
};
pub use converter::{ByteArrayConverter, Converter, JsonConverter, StringConverter};
pub use data::{Field, Schema, SchemaAndValue, SchemaType, Struct, Value};
pub use error::{ConnectError, Result};
pub use herder::StandaloneHerder;
pub use standalone::run_standalone;
pub use worker::Worker;
pub use worker_config::WorkerConfig;

/// `strom connect ...`, like connect-standalone.sh and connect-distributed.sh.
#[derive(clap::Subcommand, Debug)]
pub enum ConnectCommand {
    /// Run a standalone worker: worker.properties, then connector configs (.properties or JSON).
    Standalone {
        /// The worker config (bootstrap.servers, key.converter, value.converter,
        /// offset.storage.file.filename, listeners, ...).
        worker: PathBuf,
        /// Connector configs to start with.
        connectors: Vec<PathBuf>,
    },
    /// Run a distributed worker: workers with the same group.id share connectors and tasks.
    Distributed {
        /// The worker config (group.id, config.storage.topic, offset.storage.topic, ...).
        worker: PathBuf,
    },
}

/// Runs a `strom connect` command with the given plugins.
pub fn run(cmd: ConnectCommand, plugins: Plugins) -> anyhow::Result<()> {
    match cmd {
        ConnectCommand::Standalone { worker, connectors } => {
            run_standalone(&worker, &connectors, plugins)
        }
        ConnectCommand::Distributed { worker } => distributed::run_distributed(&worker, plugins),
    }
}
