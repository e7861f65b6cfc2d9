//! `KafkaBasedLog`: one of the worker's internal topics (config, offsets, status) read from the
//! beginning into memory and written through a producer. Reads go to the topic's end as it was when
//! asked (`readToEnd`), so a reader never acts on less than was written before it looked.
//!
//! Kafka is reached through librdkafka only; the topic is created compacted when missing, with the
//! partitions and replication factor of the worker config, as Kafka's `TopicAdmin` does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode as Code;
use rdkafka::util::Timeout;

use crate::error::{ConnectError, Result};

/// How long a read to the end may take before it is an error.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Deliveries {
    failed: Mutex<Option<String>>,
    /// partition -> the offset after the last record this producer wrote there (acknowledged).
    written: Mutex<BTreeMap<i32, i64>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = result {
            let mut w = self.written.lock();
            let end = w.entry(m.partition()).or_insert(0);
            *end = (*end).max(m.offset() + 1);
        }
        if let Err((e, m)) = result {
            let mut f = self.failed.lock();
            if f.is_none() {
                *f = Some(format!("failed to write to topic {}: {e}", m.topic()));
            }
        }
    }
}

/// One internal topic.
pub struct KafkaBasedLog {
    topic: String,
    producer: BaseProducer<Deliveries>,
    consumer: Mutex<BaseConsumer>,
    partitions: Vec<i32>,
}

/// The settings an internal topic is created with.
#[derive(Clone, Debug)]
pub struct TopicSettings {
    pub name: String,
    pub partitions: i32,
    /// -1: the broker's default (KIP-464).
    pub replication_factor: i32,
}

fn kafka(what: &str, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Kafka(format!("{what}: {e}"))
}

/// Creates the topic compacted if it does not exist (an existing topic is used as it is).
pub async fn ensure_topic(base: &ClientConfig, t: &TopicSettings) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = base
        .create()
        .map_err(|e| kafka("cannot create admin client", e))?;
    let replication = TopicReplication::Fixed(t.replication_factor);
    let topic = NewTopic::new(&t.name, t.partitions, replication).set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .map_err(|e| kafka(&format!("cannot create topic {}", t.name), e))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic = %t.name, partitions = t.partitions,
                replication_factor = t.replication_factor, "created internal topic (compacted)"),
            Err((_, Code::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(ConnectError::Kafka(format!(
                    "cannot create internal topic {name} with {} partition(s) and replication \
                     factor {}: {code}",
                    t.partitions, t.replication_factor
                )));
            }
        }
    }
    Ok(())
}

impl KafkaBasedLog {
    /// Opens a topic that exists: a producer, and a consumer assigned every partition from the
    /// start (no consumer group: the log is read whole by every worker).
    pub fn open(base: &ClientConfig, topic: &str, murmur2: bool) -> Result<KafkaBasedLog> {
        let mut pc = base.clone();
        pc.set("acks", "all").set("enable.idempotence", "true");
        if murmur2 {
            // Java's default partitioner, so a key lands where a Kafka worker would put it.
            pc.set("partitioner", "murmur2_random");
        }
        let producer: BaseProducer<Deliveries> = pc
            .create_with_context(Deliveries::default())
            .map_err(|e| kafka("cannot create producer", e))?;
        let mut cc = base.clone();
        // librdkafka wants a group.id even for assign(); the group is never joined or committed to.
        cc.set("group.id", "strom-connect-internal-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer = cc
            .create()
            .map_err(|e| kafka("cannot create consumer", e))?;
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(|e| kafka(&format!("cannot read metadata of topic {topic}"), e))?;
        let partitions: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(ConnectError::Kafka(format!(
                "internal topic {topic} has no partitions (does it exist?)"
            )));
        }
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .map_err(|e| kafka("assign", e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| kafka(&format!("cannot read topic {topic}"), e))?;
        Ok(KafkaBasedLog {
            topic: topic.to_string(),
            producer,
            consumer: Mutex::new(consumer),
            partitions,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// Writes records (a `None` value is a tombstone) and waits until Kafka has them all.
    pub fn send(&self, records: &[(String, Option<Vec<u8>>)]) -> Result<()> {
        for (k, v) in records {
            let mut rec: BaseRecord<'_, str, [u8]> = BaseRecord::to(&self.topic).key(k.as_str());
            if let Some(v) = v {
                rec = rec.payload(v.as_slice());
            }
            let mut rec = rec;
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        rec = r;
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => return Err(kafka(&format!("write to {}", self.topic), e)),
                }
            }
        }
        self.producer
            .flush(Timeout::After(READ_TIMEOUT))
            .map_err(|e| kafka(&format!("write to {}", self.topic), e))?;
        if let Some(err) = self.producer.context().failed.lock().take() {
            return Err(ConnectError::Kafka(err));
        }
        Ok(())
    }

    /// Reads every record up to the end each partition had when called, in offset order per
    /// partition; `apply(key, value, partition, offset)`. Returns the next offset of partition 0
    /// (the config topic's position).
    pub fn read_to_end(&self, mut apply: impl FnMut(&str, Option<&[u8]>, i32, i64)) -> Result<i64> {
        let consumer = self.consumer.lock();
        // The latest offsets of every partition in one request (timestamp -1 = the end).
        let mut query = TopicPartitionList::new();
        for p in &self.partitions {
            query
                .add_partition_offset(&self.topic, *p, Offset::End)
                .map_err(|e| kafka("offsets query", e))?;
        }
        let ends = consumer
            .offsets_for_times(query, READ_TIMEOUT)
            .map_err(|e| kafka(&format!("cannot read the end of {}", self.topic), e))?;
        let mut high: BTreeMap<i32, i64> = BTreeMap::new();
        for e in ends.elements() {
            if let Offset::Offset(o) = e.offset() {
                high.insert(e.partition(), o);
            }
        }
        // What this worker wrote itself is read back even if the broker's answer lagged.
        for (p, end) in self.producer.context().written.lock().iter() {
            let h = high.entry(*p).or_insert(0);
            *h = (*h).max(*end);
        }
        let mut position: BTreeMap<i32, i64> = BTreeMap::new();
        if let Ok(tpl) = consumer.position() {
            for e in tpl.elements() {
                if let Offset::Offset(o) = e.offset() {
                    position.insert(e.partition(), o);
                }
            }
        }
        let done = |position: &BTreeMap<i32, i64>| {
            high.iter()
                .all(|(p, h)| *h == 0 || position.get(p).is_some_and(|o| o >= h))
        };
        let deadline = Instant::now() + READ_TIMEOUT;
        while !done(&position) {
            if Instant::now() > deadline {
                return Err(ConnectError::Kafka(format!(
                    "timed out reading topic {} to its end (at {position:?}, end {high:?})",
                    self.topic
                )));
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) => {
                    let key = m
                        .key()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .unwrap_or_default();
                    apply(&key, m.payload(), m.partition(), m.offset());
                    position.insert(m.partition(), m.offset() + 1);
                }
                Some(Err(e)) => {
                    tracing::warn!(topic = %self.topic, error = %e, "error reading internal topic");
                }
            }
        }
        Ok(position.get(&0).copied().unwrap_or(0))
    }
}
