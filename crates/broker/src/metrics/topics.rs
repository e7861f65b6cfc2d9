//! Per-topic and all-topics traffic counters (Kafka's `kafka.server:type=BrokerTopicMetrics`).
//!
//! The produce and fetch handlers look a topic's counters up once per topic of a request and
//! then only add to atomics; the map's lock is never taken per record or per partition.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct TopicCounters {
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// One moment's values of a [`TopicCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicTotals {
    pub messages_in: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl TopicCounters {
    fn totals(&self) -> TopicTotals {
        TopicTotals {
            messages_in: self.messages_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
pub struct BrokerTopicMetrics {
    all: TopicCounters,
    /// Bytes sent to follower fetches, all topics (Kafka's ReplicationBytesOutPerSec); kept
    /// apart so BytesOut is what consumers read, as in Kafka.
    replication_bytes_out: AtomicU64,
    by_topic: RwLock<HashMap<String, Arc<TopicCounters>>>,
}

/// A topic's counters and the all-topics ones, updated together.
pub struct TopicHandle<'a> {
    all: &'a TopicCounters,
    topic: Arc<TopicCounters>,
}

impl TopicHandle<'_> {
    /// Records appended by a produce request, and their size as sent.
    pub fn messages_in(&self, records: u64, bytes: u64) {
        for c in [self.all, &*self.topic] {
            c.messages_in.fetch_add(records, Ordering::Relaxed);
            c.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Record bytes a consumer fetch returned.
    pub fn bytes_out(&self, bytes: u64) {
        for c in [self.all, &*self.topic] {
            c.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

impl BrokerTopicMetrics {
    pub fn topic(&self, name: &str) -> TopicHandle<'_> {
        let existing = self.by_topic.read().get(name).cloned();
        let topic = match existing {
            Some(t) => t,
            None => self
                .by_topic
                .write()
                .entry(name.to_string())
                .or_default()
                .clone(),
        };
        TopicHandle {
            all: &self.all,
            topic,
        }
    }

    pub fn replication_bytes_out(&self, bytes: u64) {
        self.replication_bytes_out
            .fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn all_topics(&self) -> TopicTotals {
        self.all.totals()
    }

    pub fn replication_bytes_out_total(&self) -> u64 {
        self.replication_bytes_out.load(Ordering::Relaxed)
    }

    /// Totals by topic, sorted by name. Topics for which `exists` is false (deleted) are dropped,
    /// as Kafka removes a deleted topic's metrics; a topic created again starts from zero.
    pub fn by_topic(&self, exists: impl Fn(&str) -> bool) -> Vec<(String, TopicTotals)> {
        let mut map = self.by_topic.write();
        map.retain(|name, _| exists(name));
        let mut out: Vec<(String, TopicTotals)> =
            map.iter().map(|(n, c)| (n.clone(), c.totals())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// A metric family's name, help text, and the total it reports.
type Family = (&'static str, &'static str, fn(&TopicTotals) -> u64);

/// Writes the BrokerTopicMetrics families: all-topics samples without labels, then one sample per
/// topic with a `topic` label (what the Prometheus JMX exporter's Kafka rules produce).
pub fn write(
    m: &BrokerTopicMetrics,
    image: &strom_meta::MetadataImage,
    e: &mut super::exposition::Exposition,
) {
    let all = m.all_topics();
    let by_topic = m.by_topic(|t| image.topics.contains_key(t));
    let families: [Family; 3] = [
        (
            "kafka_server_brokertopicmetrics_messagesin_total",
            "Records appended by produce requests (MessagesInPerSec).",
            |t| t.messages_in,
        ),
        (
            "kafka_server_brokertopicmetrics_bytesin_total",
            "Record batch bytes received by produce requests and appended (BytesInPerSec).",
            |t| t.bytes_in,
        ),
        (
            "kafka_server_brokertopicmetrics_bytesout_total",
            "Record batch bytes returned to consumer fetches (BytesOutPerSec).",
            |t| t.bytes_out,
        ),
    ];
    for (name, help, value) in families {
        e.family(name, "counter", help);
        e.sample(name, &[], value(&all));
        for (topic, totals) in &by_topic {
            e.sample(name, &[("topic", topic)], value(totals));
        }
    }
    e.single(
        "kafka_server_brokertopicmetrics_replicationbytesout_total",
        "counter",
        "Record batch bytes returned to follower fetches (ReplicationBytesOutPerSec).",
        m.replication_bytes_out_total(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_counters_add_to_all_topics_and_deleted_topics_go() {
        let m = BrokerTopicMetrics::default();
        m.topic("a").messages_in(3, 300);
        m.topic("b").messages_in(1, 10);
        m.topic("a").bytes_out(50);
        let all = m.all_topics();
        assert_eq!((all.messages_in, all.bytes_in, all.bytes_out), (4, 310, 50));
        let by = m.by_topic(|t| t == "a");
        assert_eq!(by.len(), 1);
        assert_eq!(
            by[0].1,
            TopicTotals {
                messages_in: 3,
                bytes_in: 300,
                bytes_out: 50
            }
        );
    }
}
