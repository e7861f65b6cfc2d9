//! The state every connection shares: configuration, metadata, hosted partitions.

use crate::config::BrokerConfig;
use crate::producer_id_manager::ProducerIdManager;
use crate::replica::ReplicaManager;
use crate::topic_config::TopicConfigs;
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::Arc;
use strom_meta::{MetadataStore, TopicMeta};
use tokio::sync::watch;

pub struct Broker {
    pub config: BrokerConfig,
    pub metadata: MetadataStore,
    pub replicas: ReplicaManager,
    pub topic_configs: TopicConfigs,
    pub producer_ids: ProducerIdManager,
    /// Consumer groups and committed offsets (classic protocol), kept in `__consumer_offsets`.
    pub groups: crate::group::GroupCoordinator,
    /// Transactional ids, their producers and open transactions, kept in `__transaction_state`.
    pub txn: crate::txn::TransactionCoordinator,
    /// Counters for the metrics endpoint (`metrics.listener`).
    pub metrics: crate::metrics::Metrics,
    /// Bumped after every append and high-watermark move, so long-polling fetches and acks=all
    /// producers wake up and look again.
    appended: crate::replica::Progress,
    /// New at every start: the controller tells a restart of this node from a second process
    /// with the same node.id by it.
    pub incarnation_id: uuid::Uuid,
}

impl Broker {
    /// Open the data directory of a single node: metadata first, then the log of every hosted
    /// partition.
    pub fn open(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
        let dir = config.data_dir().to_path_buf();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating log.dirs directory {}", dir.display()))?;
        let metadata = MetadataStore::open(&dir, config.node_id)
            .with_context(|| format!("opening metadata in {}", dir.display()))?;
        Self::open_with(config, metadata)
    }

    /// Open the broker over an opened metadata store (single node or cluster).
    pub fn open_with(config: BrokerConfig, metadata: MetadataStore) -> anyhow::Result<Arc<Broker>> {
        let dir = config.data_dir().to_path_buf();
        let incarnation_id = uuid::Uuid::new_v4();
        let topic_configs = TopicConfigs::new(&config);
        let appended = crate::replica::Progress::new();
        let replicas = ReplicaManager::new(dir, config.node_id, appended.clone());
        let image = metadata.image();
        // Dynamic broker configs (AlterConfigs) change topic defaults: load them first.
        topic_configs.set_dynamic(crate::log_manager::dynamic_broker_configs(
            &image,
            config.node_id,
        ));
        for topic in image.topics.values() {
            let log_config = topic_configs.log_config(&topic.configs);
            replicas
                .open_topic(topic, log_config)
                .with_context(|| format!("opening the logs of topic {}", topic.name))?;
        }
        let groups =
            crate::group::GroupCoordinator::new(crate::group::GroupConfig::from_broker(&config));
        let broker = Arc::new(Broker {
            config,
            metadata,
            replicas,
            topic_configs,
            producer_ids: ProducerIdManager::default(),
            groups,
            txn: crate::txn::TransactionCoordinator::default(),
            metrics: crate::metrics::Metrics::default(),
            appended,
            incarnation_id,
        });
        // A single node is its own controller: it registers itself at once, so Metadata lists
        // it from the image. Cluster nodes register with the active controller in the
        // background (controller::spawn).
        if !broker.metadata.is_cluster() {
            broker
                .metadata
                .register_broker(crate::controller::registration(&broker))
                .context("registering this broker in the metadata")?;
        }
        broker.txn.load(&broker);
        broker
            .groups
            .load(&broker)
            .context("loading consumer groups from __consumer_offsets")?;
        Ok(broker)
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn notify_appended(&self) {
        self.appended.notify();
    }

    pub fn subscribe_appended(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Create a topic with `default.replication.factor` replicas per partition (internal
    /// topics: up to 3, as many as there are live brokers), spread over the live brokers.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, strom_meta::MetaError> {
        let live = crate::controller::live_candidates(&self.metadata.image());
        let internal = name.starts_with("__");
        let rf = match self.internal_replication_factor(name) {
            Some(rf) => rf,
            None if internal => (live.len() as i16).clamp(1, 3),
            None => self.config.default_replication_factor,
        };
        let placement = self.place(0, partitions, rf)?;
        self.create_topic_placed(name, placement, configs)
    }

    /// `offsets.topic.replication.factor` / `transaction.state.log.replication.factor` when set:
    /// then exactly that many replicas, and no topic until that many brokers are live (as
    /// Kafka). Unset, strom takes up to 3, so a single node needs no setting.
    fn internal_replication_factor(&self, name: &str) -> Option<i16> {
        let key = match name {
            crate::group::OFFSETS_TOPIC => "offsets.topic.replication.factor",
            crate::txn::coordinator::TRANSACTION_STATE_TOPIC => {
                "transaction.state.log.replication.factor"
            }
            _ => return None,
        };
        // Checked when the configuration was read.
        self.config.explicit.get(key)?.trim().parse::<i16>().ok()
    }

    /// Replica lists for `count` new partitions from `first`, over the live brokers.
    pub fn place(
        &self,
        first: i32,
        count: i32,
        replication_factor: i16,
    ) -> Result<Vec<Vec<i32>>, strom_meta::MetaError> {
        let mut live = crate::controller::live_candidates(&self.metadata.image());
        if live.is_empty() && !self.metadata.is_cluster() {
            live.push((self.node_id(), self.config.broker_rack.clone()));
        }
        crate::controller::placement::assign(&live, first, count, replication_factor)
            .map_err(strom_meta::MetaError::Refused)
    }

    /// Create a topic with the given replica lists (the first replica leads).
    pub fn create_topic_placed(
        &self,
        name: &str,
        placement: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, strom_meta::MetaError> {
        let topic = self.metadata.create_topic(name, placement, configs)?;
        let log_config = self.topic_configs.log_config(&topic.configs);
        if let Err(e) = self.replicas.open_topic(&topic, log_config) {
            tracing::error!(topic = name, error = %e, "creating partition logs failed");
        }
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta, strom_meta::MetaError> {
        let topic = self.metadata.delete_topic(name)?;
        self.replicas.delete_topic(&topic);
        Ok(topic)
    }

    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
    ) -> Result<TopicMeta, strom_meta::MetaError> {
        let image = self.metadata.image();
        let existing = image
            .topic(name)
            .ok_or_else(|| strom_meta::MetaError::UnknownTopic(name.to_string()))?;
        let rf = existing
            .partitions
            .first()
            .map(|p| p.replicas.len() as i16)
            .unwrap_or(1);
        let placement = self.place(existing.partitions.len() as i32, count, rf)?;
        self.add_partitions_placed(name, placement)
    }

    pub fn add_partitions_placed(
        &self,
        name: &str,
        placement: Vec<Vec<i32>>,
    ) -> Result<TopicMeta, strom_meta::MetaError> {
        let topic = self.metadata.add_partitions(name, placement)?;
        let log_config = self.topic_configs.log_config(&topic.configs);
        if let Err(e) = self.replicas.open_topic(&topic, log_config) {
            tracing::error!(topic = name, error = %e, "creating partition logs failed");
        }
        Ok(topic)
    }

    /// A transaction marker was written to `topic`-`partition`: offsets committed inside the
    /// transaction become visible (commit) or are dropped (abort).
    pub fn on_txn_marker(&self, topic: &str, partition: i32, producer_id: i64, commit: bool) {
        let _ = partition;
        if topic == crate::group::OFFSETS_TOPIC {
            let config = crate::group::GroupConfig::from_broker(&self.config);
            let log = crate::group::BrokerOffsetsLog {
                broker: self,
                config: &config,
            };
            self.groups
                .complete_txn(producer_id, commit, crate::handlers::now_ms(), &log);
        }
    }

    /// Flush every log and mark it cleanly shut down, so the next start skips recovery.
    pub fn shutdown(&self) {
        self.replicas.close_all();
    }
}
