//! `VerifiableSourceConnector` (Kafka's `org.apache.kafka.connect.tools.VerifiableSourceConnector`):
//! each of `tasks.max` tasks writes a counted sequence to `topic` at `throughput` records/s, key =
//! the task id (int32), value = the sequence number (int64), source partition `{"id": <task>}`,
//! offset `{"seqno": <n>}`. A restarted or moved task continues after its committed seqno, so a
//! reader can check that nothing was lost (every seqno of every task present) — which is what
//! Kafka's system tests use it for, and what strom's distributed-mode tests do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_connect::{
    ConfigDef, ConfigMap, ConfigType, ConnectError, Connector, ConnectorFactory, ConnectorPlugin,
    Importance, Result, Schema, SourceConnector, SourceOffset, SourcePartition, SourceRecord,
    SourceTask, SourceTaskContext, Validator, Value,
};

pub const CLASS: &str = "org.apache.kafka.connect.tools.VerifiableSourceConnector";
const TASK_CLASS: &str = "org.apache.kafka.connect.tools.VerifiableSourceTask";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The most records one poll returns, so stop requests are seen quickly.
const MAX_BATCH: u64 = 1000;

pub fn plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class_name: CLASS,
        version: VERSION,
        factory: ConnectorFactory::Source(|| Box::new(VerifiableSourceConnector::default())),
    }
}

#[derive(Default)]
pub struct VerifiableSourceConnector {
    props: ConfigMap,
}

impl Connector for VerifiableSourceConnector {
    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn start(&mut self, props: &ConfigMap) -> Result<()> {
        let errors: Vec<String> = self
            .config()
            .validate(props)
            .into_iter()
            .flat_map(|v| v.errors)
            .collect();
        if !errors.is_empty() {
            return Err(ConnectError::config(errors.join("; ")));
        }
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        Ok((0..max_tasks.max(1))
            .map(|i| {
                let mut c = self.props.clone();
                c.insert("id".to_string(), i.to_string());
                c
            })
            .collect())
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn config(&self) -> ConfigDef {
        ConfigDef::new()
            .define(
                "topic",
                ConfigType::String,
                None,
                Importance::High,
                "The topic to write the sequence to.",
            )
            .with_validator(Validator::NonEmptyString)
            .define(
                "throughput",
                ConfigType::Long,
                None,
                Importance::High,
                "Records per second each task writes.",
            )
            .with_validator(Validator::Range {
                min: Some(1.0),
                max: None,
            })
    }
}

impl SourceConnector for VerifiableSourceConnector {
    fn task_class(&self) -> &'static str {
        TASK_CLASS
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(VerifiableSourceTask::default())
    }
}

#[derive(Default)]
pub struct VerifiableSourceTask {
    id: i32,
    topic: String,
    throughput: u64,
    seqno: i64,
    ctx: Option<SourceTaskContext>,
    started: Option<Instant>,
    sent: u64,
}

fn required<'a>(props: &'a ConfigMap, key: &str) -> Result<&'a str> {
    props
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConnectError::config(format!("Missing required configuration \"{key}\"")))
}

impl SourceTask for VerifiableSourceTask {
    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn initialize(&mut self, ctx: SourceTaskContext) {
        self.ctx = Some(ctx);
    }

    fn start(&mut self, props: &ConfigMap) -> Result<()> {
        let id = required(props, "id")?;
        self.id = id.parse().map_err(|_| {
            ConnectError::config(format!("Invalid value {id} for configuration id"))
        })?;
        self.topic = required(props, "topic")?.to_string();
        let t = required(props, "throughput")?;
        self.throughput = t.parse::<u64>().ok().filter(|t| *t > 0).ok_or_else(|| {
            ConnectError::config(format!("Invalid value {t} for configuration throughput"))
        })?;
        // Continue after the last committed number.
        self.seqno = self
            .ctx
            .as_ref()
            .and_then(|c| c.offset_storage_reader.offset(&self.partition()))
            .and_then(|o| o.get("seqno").and_then(|s| s.as_i64()))
            .map_or(0, |s| s + 1);
        self.started = Some(Instant::now());
        self.sent = 0;
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = (started.elapsed().as_secs_f64() * self.throughput as f64) as u64;
        let n = due.saturating_sub(self.sent).min(MAX_BATCH);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(20));
            return Ok(Vec::new());
        }
        let key_schema = Some(Arc::new(Schema::int32()));
        let value_schema = Some(Arc::new(Schema::int64()));
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let mut offset = SourceOffset::new();
            offset.insert("seqno".into(), self.seqno.into());
            let mut r = SourceRecord::new(
                self.partition(),
                offset,
                &self.topic,
                value_schema.clone(),
                Value::Int64(self.seqno),
            );
            r.record.key_schema = key_schema.clone();
            r.record.key = Value::Int32(self.id);
            out.push(r);
            self.seqno += 1;
        }
        self.sent += n;
        Ok(out)
    }

    fn stop(&mut self) {}
}

impl VerifiableSourceTask {
    fn partition(&self) -> SourcePartition {
        let mut p = SourcePartition::new();
        p.insert("id".into(), self.id.into());
        p
    }
}
