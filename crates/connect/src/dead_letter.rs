//! The dead letter queue of sink connectors (`DeadLetterQueueReporter`, `WorkerErrantRecordReporter`):
//! with `errors.tolerance=all` and `errors.deadletterqueue.topic.name` set, records that cannot be
//! converted, transformed or written go to that topic instead of failing the task, with the
//! `__connect.errors.*` context headers when `errors.deadletterqueue.context.headers.enable=true`.
//!
//! Owns its own producer; the worker flushes it before committing consumer offsets, so a record is
//! never skipped past before it is safely in the dead letter queue.

use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::message::{Header as KHeader, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;

use crate::config_def::ConfigMap;
use crate::connector::{ErrantRecordReporter, SinkRecord};
use crate::converter::Converter;
use crate::error::{ConnectError, Result};

/// Where a record failed (`ToleranceType` stages, as Kafka names them in the headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    KeyConverter,
    ValueConverter,
    Transformation,
    TaskPut,
    /// Sending a source record to Kafka (with topic creation).
    KafkaProduce,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
        }
    }
}

/// The original record, as it came from Kafka.
pub struct FailedRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// A producer to the dead letter queue topic of one task.
pub struct DeadLetterQueue {
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
    context_headers: bool,
    connector: String,
    task: usize,
}

impl DeadLetterQueue {
    /// `None` unless `errors.tolerance=all` and `errors.deadletterqueue.topic.name` is set.
    pub fn from_config(
        producer_config: &ClientConfig,
        cc: &ConfigMap,
        connector: &str,
        task: usize,
    ) -> Result<Option<DeadLetterQueue>> {
        let tolerate = cc
            .get("errors.tolerance")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("all"));
        let topic = cc
            .get("errors.deadletterqueue.topic.name")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let (true, Some(topic)) = (tolerate, topic) else {
            return Ok(None);
        };
        let mut pc = producer_config.clone();
        if pc.get("acks").is_none() {
            pc.set("acks", "all");
        }
        let producer: ThreadedProducer<DefaultProducerContext> = pc.create().map_err(|e| {
            ConnectError::Kafka(format!("cannot create the dead letter queue producer: {e}"))
        })?;
        Ok(Some(DeadLetterQueue {
            producer,
            topic,
            context_headers: cc
                .get("errors.deadletterqueue.context.headers.enable")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            connector: connector.to_string(),
            task,
        }))
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queues a failed record for the dead letter queue topic.
    pub fn send(&self, r: &FailedRecord<'_>, stage: Stage, error: &ConnectError) -> Result<()> {
        let mut headers = OwnedHeaders::new();
        if self.context_headers {
            let partition = r.partition.to_string();
            let offset = r.offset.to_string();
            let task = self.task.to_string();
            let message = error.to_string();
            for (k, v) in [
                ("__connect.errors.topic", r.topic),
                ("__connect.errors.partition", partition.as_str()),
                ("__connect.errors.offset", offset.as_str()),
                ("__connect.errors.connector.name", self.connector.as_str()),
                ("__connect.errors.task.id", task.as_str()),
                ("__connect.errors.stage", stage.name()),
                ("__connect.errors.class.name", "strom"),
                (
                    "__connect.errors.exception.class.name",
                    "org.apache.kafka.connect.errors.DataException",
                ),
                ("__connect.errors.exception.message", message.as_str()),
            ] {
                headers = headers.insert(KHeader {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
        }
        let mut br: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic).headers(headers);
        if let Some(k) = r.key {
            br = br.key(k);
        }
        if let Some(v) = r.value {
            br = br.payload(v);
        }
        self.producer.send(br).map_err(|(e, _)| {
            ConnectError::Kafka(format!(
                "cannot send a failed record to the dead letter queue {}: {e}",
                self.topic
            ))
        })
    }

    /// Waits until everything sent is acknowledged.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(Timeout::After(timeout)).map_err(|e| {
            ConnectError::Kafka(format!(
                "dead letter queue {} did not acknowledge in time: {e}",
                self.topic
            ))
        })
    }
}

/// The reporter handed to sink tasks: serializes the record back with the task's converters and
/// sends it to the dead letter queue (or only logs it when there is none).
pub struct TaskErrantReporter {
    dlq: Option<std::sync::Arc<DeadLetterQueue>>,
    converters: Mutex<(Box<dyn Converter>, Box<dyn Converter>)>,
    task_id: String,
}

impl TaskErrantReporter {
    pub fn new(
        dlq: Option<std::sync::Arc<DeadLetterQueue>>,
        key_converter: Box<dyn Converter>,
        value_converter: Box<dyn Converter>,
        task_id: String,
    ) -> TaskErrantReporter {
        TaskErrantReporter {
            dlq,
            converters: Mutex::new((key_converter, value_converter)),
            task_id,
        }
    }
}

impl ErrantRecordReporter for TaskErrantReporter {
    fn report(&self, record: &SinkRecord, error: &ConnectError) -> Result<()> {
        let r = &record.record;
        tracing::warn!(task = %self.task_id, topic = %r.topic, partition = r.kafka_partition.unwrap_or(0),
            offset = record.kafka_offset(), error = %error, "record skipped (errors.tolerance=all)");
        let Some(dlq) = &self.dlq else {
            return Ok(());
        };
        let (key, value) = {
            let c = self.converters.lock();
            (
                c.0.from_connect_data(&r.topic, r.key_schema.as_deref(), &r.key)?,
                c.1.from_connect_data(&r.topic, r.value_schema.as_deref(), &r.value)?,
            )
        };
        dlq.send(
            &FailedRecord {
                topic: &r.topic,
                partition: r.kafka_partition.unwrap_or(0),
                offset: record.kafka_offset(),
                key: key.as_deref(),
                value: value.as_deref(),
            },
            Stage::TaskPut,
            error,
        )
    }
}
