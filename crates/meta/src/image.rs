//! The metadata image: what every node knows about the cluster at one point of the metadata log.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MetadataImage {
    pub cluster_id: String,
    /// Bumped on every change; lets caches tell an old image from a new one.
    pub epoch: u64,
    pub topics: BTreeMap<String, TopicMeta>,
    /// The first producer id not yet handed out in a block (Kafka's AllocateProducerIds).
    #[serde(default)]
    pub next_producer_id_block: i64,
    /// Dynamic broker configs (AlterConfigs on a broker resource), by resource name: "" for the
    /// cluster-wide default, a node id for one broker; each maps Kafka's broker keys to values.
    #[serde(default)]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Registered brokers by node id (Kafka's BrokerRegistration records), fenced or not.
    #[serde(default)]
    pub brokers: BTreeMap<i32, BrokerMeta>,
}

/// One registered broker: where clients reach it and whether it may lead partitions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrokerMeta {
    pub node_id: i32,
    /// New at every start of the broker process: tells a restart from a duplicate node.id.
    pub incarnation_id: Uuid,
    pub listeners: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    /// A fenced broker missed its heartbeats: it leads nothing and is out of every ISR.
    pub fenced: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionMeta>,
    /// Topic-level config overrides (DYNAMIC_TOPIC_CONFIG), by Kafka's key names.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionMeta {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Bumped on every change of leader, ISR or replicas (Kafka's partition epoch); AlterPartition
    /// requests carry it so a stale ISR change is refused.
    #[serde(default)]
    pub partition_epoch: i32,
    /// An ongoing reassignment (AlterPartitionReassignments): replicas being added (already in
    /// `replicas`, catching up) and replicas to drop once every added one is in the ISR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicMeta> {
        self.topics.values().find(|t| &t.id == id)
    }

    /// Brokers that may lead and follow partitions (registered and not fenced).
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerMeta> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    pub fn is_live(&self, node_id: i32) -> bool {
        self.brokers.get(&node_id).is_some_and(|b| !b.fenced)
    }
}

impl TopicMeta {
    /// Internal topics (`__consumer_offsets`, `__transaction_state`) are flagged in Metadata answers.
    pub fn is_internal(&self) -> bool {
        self.name == "__consumer_offsets" || self.name == "__transaction_state"
    }
}
