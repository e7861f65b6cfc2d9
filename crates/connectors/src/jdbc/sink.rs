//! `io.confluent.connect.jdbc.JdbcSinkConnector` (also `JdbcSinkConnector`, `JdbcSink`): writes
//! records to tables named by `table.name.format`, creating and evolving them on request.
//!
//! Every `put` is written and committed before it returns, so the offsets the worker commits
//! afterwards never cover rows the database has not committed. Connection failures are retried
//! `max.retries` times, `retry.backoff.ms` apart, reconnecting each time; a record the database
//! refuses fails the task, or with `errors.tolerance=all` goes to the errant record reporter (the
//! dead letter queue) while the rest of its batch is written.

use std::sync::Arc;
use std::time::Duration;

use strom_connect::{
    ConfigDef, ConfigMap, ConfigType, ConnectError, Connector, ConnectorFactory, ConnectorPlugin,
    ErrantRecordReporter, Importance, Result, SinkConnector, SinkRecord, SinkTask, SinkTaskContext,
    Validator,
};

use super::config::{boolean, connect_settings, connection_def, list, long, string};
use super::connection::{ConnectSettings, Db};
use super::schema_mapping::parse_timezone;
use super::table_writer::{InsertMode, PkMode, TableWriter, WriteError, WriterSettings};

pub const SINK_CLASS: &str = "io.confluent.connect.jdbc.JdbcSinkConnector";
const SINK_TASK_CLASS: &str = "io.confluent.connect.jdbc.sink.JdbcSinkTask";
const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn sink_plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class_name: SINK_CLASS,
        version: VERSION,
        factory: ConnectorFactory::Sink(|| Box::new(JdbcSinkConnector::default())),
    }
}

/// The sink's config keys (Confluent's `JdbcSinkConfig`, the parts strom implements).
pub fn sink_config_def() -> ConfigDef {
    connection_def()
        .define("insert.mode", ConfigType::String, Some("insert"), Importance::High,
            "The insertion mode: insert, upsert (the dialect's upsert) or update.")
        .with_validator(Validator::OneOf(vec!["insert", "upsert", "update"]))
        .in_group("Writes", "Insert Mode")
        .define("batch.size", ConfigType::Int, Some("3000"), Importance::Medium,
            "How many records to write in one transaction, when possible.")
        .with_validator(Validator::Range { min: Some(1.0), max: None })
        .in_group("Writes", "Batch Size")
        .define("delete.enabled", ConfigType::Boolean, Some("false"), Importance::Medium,
            "Whether a null record value (tombstone) deletes the row with its key; needs pk.mode=record_key.")
        .in_group("Writes", "Enable deletes")
        .define("table.name.format", ConfigType::String, Some("${topic}"), Importance::Medium,
            "The destination table name; ${topic} is replaced by the record's topic.")
        .in_group("Data Mapping", "Table Name Format")
        .define("pk.mode", ConfigType::String, Some("none"), Importance::High,
            "Where the primary key comes from: none, kafka, record_key, record_value.")
        .with_validator(Validator::OneOf(vec!["none", "kafka", "record_key", "record_value"]))
        .in_group("Data Mapping", "Primary Key Mode")
        .define("pk.fields", ConfigType::List, Some(""), Importance::Medium,
            "Primary key field names; their meaning depends on pk.mode.")
        .in_group("Data Mapping", "Primary Key Fields")
        .define("fields.whitelist", ConfigType::List, Some(""), Importance::Medium,
            "Record value fields to write; empty means all.")
        .in_group("Data Mapping", "Fields Whitelist")
        .define("auto.create", ConfigType::Boolean, Some("false"), Importance::Medium,
            "Whether to create a missing destination table from the record schema.")
        .in_group("DDL Support", "Auto-Create")
        .define("auto.evolve", ConfigType::Boolean, Some("false"), Importance::Medium,
            "Whether to add columns (ALTER TABLE ADD) for fields the table lacks.")
        .in_group("DDL Support", "Auto-Evolve")
        .define("max.retries", ConfigType::Int, Some("10"), Importance::Medium,
            "How many times to retry a batch after a connection failure before the task fails.")
        .with_validator(Validator::Range { min: Some(0.0), max: None })
        .in_group("Retries", "Maximum Retries")
        .define("retry.backoff.ms", ConfigType::Int, Some("3000"), Importance::Medium,
            "Milliseconds to wait before retrying.")
        .with_validator(Validator::Range { min: Some(0.0), max: None })
        .in_group("Retries", "Retry Backoff (millis)")
}

/// The parsed sink configuration.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    pub connection: ConnectSettings,
    pub writer: WriterSettings,
    pub batch_size: usize,
    pub max_retries: u32,
    pub retry_backoff: Duration,
}

impl SinkConfig {
    pub fn parse(props: &ConfigMap) -> Result<SinkConfig> {
        let connection = connect_settings(props, true)?;
        let insert_mode = match string(props, "insert.mode", "insert")
            .to_ascii_lowercase()
            .as_str()
        {
            "insert" => InsertMode::Insert,
            "upsert" => InsertMode::Upsert,
            "update" => InsertMode::Update,
            other => {
                return Err(ConnectError::config(format!(
                    "Invalid value {other} for configuration insert.mode: String must be one of: insert, upsert, update"
                )));
            }
        };
        let pk_mode = match string(props, "pk.mode", "none")
            .to_ascii_lowercase()
            .as_str()
        {
            "none" => PkMode::None,
            "kafka" => PkMode::Kafka,
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            other => {
                return Err(ConnectError::config(format!(
                    "Invalid value {other} for configuration pk.mode: String must be one of: none, kafka, record_key, record_value"
                )));
            }
        };
        let delete_enabled = boolean(props, "delete.enabled", false)?;
        if delete_enabled && pk_mode != PkMode::RecordKey {
            return Err(ConnectError::config(
                "Deletes are only supported for pk.mode record_key (delete.enabled=true needs pk.mode=record_key)",
            ));
        }
        if insert_mode != InsertMode::Insert && pk_mode == PkMode::None {
            return Err(ConnectError::config(format!(
                "insert.mode {} needs a primary key: set pk.mode (kafka, record_key or record_value)",
                string(props, "insert.mode", "")
            )));
        }
        let tz =
            parse_timezone(&string(props, "db.timezone", "UTC")).map_err(ConnectError::config)?;
        Ok(SinkConfig {
            connection,
            writer: WriterSettings {
                insert_mode,
                pk_mode,
                pk_fields: list(props, "pk.fields"),
                fields_whitelist: list(props, "fields.whitelist"),
                auto_create: boolean(props, "auto.create", false)?,
                auto_evolve: boolean(props, "auto.evolve", false)?,
                delete_enabled,
                table_name_format: string(props, "table.name.format", "${topic}"),
                tz,
            },
            batch_size: long(props, "batch.size", 3000)?.clamp(1, 1_000_000) as usize,
            max_retries: long(props, "max.retries", 10)?.clamp(0, 1_000_000) as u32,
            retry_backoff: Duration::from_millis(
                long(props, "retry.backoff.ms", 3000)?.max(0) as u64
            ),
        })
    }
}

/// JdbcSinkConnector.
#[derive(Default)]
pub struct JdbcSinkConnector {
    props: ConfigMap,
}

impl Connector for JdbcSinkConnector {
    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn start(&mut self, props: &ConfigMap) -> Result<()> {
        SinkConfig::parse(props)?;
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        Ok(vec![self.props.clone(); max_tasks.max(1)])
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn config(&self) -> ConfigDef {
        sink_config_def()
    }
}

impl SinkConnector for JdbcSinkConnector {
    fn task_class(&self) -> &'static str {
        SINK_TASK_CLASS
    }
    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(JdbcSinkTask::default())
    }
}

/// JdbcSinkTask.
#[derive(Default)]
pub struct JdbcSinkTask {
    config: Option<SinkConfig>,
    db: Option<Db>,
    writer: TableWriter,
    reporter: Option<Arc<dyn ErrantRecordReporter>>,
}

impl JdbcSinkTask {
    /// Writes one batch, retrying connection failures.
    fn write_with_retries(
        &mut self,
        records: &[SinkRecord],
    ) -> std::result::Result<(), WriteError> {
        let (Some(cfg), Some(db)) = (self.config.as_ref(), self.db.as_mut()) else {
            return Err(WriteError::Record("JdbcSinkTask was not started".into()));
        };
        let mut retries_left = cfg.max_retries;
        loop {
            match self.writer.write(db, &cfg.writer, records) {
                Ok(_) => return Ok(()),
                Err(WriteError::Transient(e)) if retries_left > 0 => {
                    retries_left -= 1;
                    tracing::warn!(error = %e, retries_left, "write failed; reconnecting and retrying");
                    self.writer.forget();
                    std::thread::sleep(cfg.retry_backoff);
                    if let Err(e) = db.reconnect() {
                        tracing::warn!(error = %e, "reconnect failed");
                    }
                }
                Err(e) => {
                    self.writer.forget();
                    return Err(e);
                }
            }
        }
    }
}

impl SinkTask for JdbcSinkTask {
    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn initialize(&mut self, context: SinkTaskContext) {
        self.reporter = context.errant_record_reporter;
    }

    fn start(&mut self, props: &ConfigMap) -> Result<()> {
        let cfg = SinkConfig::parse(props)?;
        let db = Db::connect(&cfg.connection).map_err(|e| ConnectError::connect(e.to_string()))?;
        tracing::info!(dialect = db.dialect.name(), "JDBC sink connected");
        self.db = Some(db);
        self.config = Some(cfg);
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        let batch = self.config.as_ref().map(|c| c.batch_size).unwrap_or(3000);
        for chunk in records.chunks(batch) {
            match self.write_with_retries(chunk) {
                Ok(()) => {}
                Err(WriteError::Record(e)) if self.reporter.is_some() => {
                    // Find the refused records one by one; write the rest.
                    tracing::warn!(error = %e, "batch refused; writing its records one at a time");
                    for r in chunk {
                        match self.write_with_retries(std::slice::from_ref(r)) {
                            Ok(()) => {}
                            Err(WriteError::Record(e)) => {
                                if let Some(rep) = &self.reporter {
                                    rep.report(r, &ConnectError::Data(e))?;
                                }
                            }
                            Err(WriteError::Transient(e)) => return Err(ConnectError::connect(e)),
                        }
                    }
                }
                Err(e) => return Err(ConnectError::connect(e.to_string())),
            }
        }
        Ok(())
    }

    fn stop(&mut self) {
        self.db = None;
    }
}
