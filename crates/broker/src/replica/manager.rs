//! The map from topic-partition to hosted `Partition`, their directories on disk, and applying
//! each new metadata image to them (Kafka's `ReplicaManager.applyDelta`): open the logs of new
//! partitions, make each leader, follower or offline as the image says, start and stop fetching,
//! and delete the logs of deleted topics.

use super::Partition;
use super::fetcher::ReplicaFetcherManager;
use super::partition::Role;
use crate::broker::Broker;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use strom_log::{Log, LogConfig};
use strom_meta::{MetadataImage, TopicMeta};

type TopicPartitions = BTreeMap<i32, Arc<Partition>>;

pub struct ReplicaManager {
    dir: PathBuf,
    node_id: i32,
    /// Keyed by topic name first so a lookup borrows the request's `&str` without allocating.
    topics: RwLock<HashMap<String, TopicPartitions>>,
    pub(crate) fetchers: ReplicaFetcherManager,
    /// Serialises image application (the subscription task and start-up).
    applying: Mutex<()>,
    /// Serialises opening logs, so two callers never open one directory twice.
    opening: Mutex<()>,
    /// `__consumer_offsets` partitions whose groups the group coordinator holds (cluster only;
    /// `None` until the first image is applied).
    coordinating: Mutex<Option<BTreeSet<i32>>>,
    /// Handed to every partition: its high-watermark moves wake the broker's waiters.
    progress: super::Progress,
}

impl ReplicaManager {
    pub fn new(dir: PathBuf, node_id: i32, progress: super::Progress) -> ReplicaManager {
        ReplicaManager {
            dir,
            node_id,
            topics: RwLock::new(HashMap::new()),
            fetchers: ReplicaFetcherManager::default(),
            applying: Mutex::new(()),
            opening: Mutex::new(()),
            coordinating: Mutex::new(None),
            progress,
        }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.topics.read().get(topic)?.get(&partition).cloned()
    }

    /// Every hosted partition.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|ps| ps.values().cloned())
            .collect()
    }

    /// Open (creating if needed) the logs of every partition of `topic` that this node hosts and
    /// that is not open yet, in the role the metadata gives it.
    pub fn open_topic(
        &self,
        topic: &TopicMeta,
        config: LogConfig,
    ) -> Result<(), strom_log::LogError> {
        let _opening = self.opening.lock();
        let name: Arc<str> = Arc::from(topic.name.as_str());
        for p in &topic.partitions {
            if !p.replicas.contains(&self.node_id) || self.get(&topic.name, p.partition).is_some() {
                continue;
            }
            let dir = self.dir.join(format!("{}-{}", topic.name, p.partition));
            let log = Log::open(&dir, config.clone(), topic.id.into_bytes())?;
            let partition = Arc::new(Partition::new(
                name.clone(),
                p.partition,
                topic.id,
                log,
                self.node_id,
                p,
                self.progress.clone(),
            ));
            self.topics
                .write()
                .entry(topic.name.clone())
                .or_default()
                .insert(p.partition, partition);
        }
        Ok(())
    }

    /// Brings the hosted partitions in line with `image`. Idempotent: called at start and for
    /// every new image.
    pub fn apply_image(&self, broker: &Arc<Broker>, image: &MetadataImage) {
        let _applying = self.applying.lock();
        // Topics deleted (or deleted and re-created under a new id) since the last image.
        let gone: Vec<TopicMeta> = {
            let topics = self.topics.read();
            topics
                .iter()
                .filter_map(|(name, parts)| {
                    let first = parts.values().next()?;
                    let current = image.topic(name);
                    if current.is_some_and(|t| t.id == first.topic_id) {
                        return None;
                    }
                    Some(TopicMeta {
                        name: name.clone(),
                        id: first.topic_id,
                        partitions: Vec::new(),
                        configs: BTreeMap::new(),
                    })
                })
                .collect()
        };
        for topic in gone {
            tracing::info!(topic = %topic.name, "topic deleted: removing its partitions");
            self.delete_topic(&topic);
        }
        let now = crate::handlers::now_ms();
        for topic in image.topics.values() {
            let hosted = topic
                .partitions
                .iter()
                .any(|p| p.replicas.contains(&self.node_id));
            if hosted {
                let config = broker.topic_configs.log_config(&topic.configs);
                if let Err(e) = self.open_topic(topic, config) {
                    tracing::error!(topic = %topic.name, error = %e, "opening partition logs failed");
                }
            }
            for meta in &topic.partitions {
                let Some(partition) = self.get(&topic.name, meta.partition) else {
                    continue;
                };
                partition.apply(meta, now);
                match partition.role() {
                    Role::Follower { leader } => {
                        let epoch = partition.leader_epoch();
                        if !self.fetchers.is_fetching(&partition, leader, epoch) {
                            self.fetchers.add(broker, partition.clone(), leader, epoch);
                        }
                    }
                    Role::Leader | Role::Offline => {
                        self.fetchers.remove(&topic.name, meta.partition);
                    }
                }
            }
        }
        self.move_group_coordination(broker, image);
        broker.txn.follow_leaders(broker, image);
    }

    /// In a cluster the group coordinator holds the groups of exactly the `__consumer_offsets`
    /// partitions led here: it loads a partition's groups from the local replica when this node
    /// becomes its leader and drops them when it stops (Kafka's onElection / onResignation).
    fn move_group_coordination(&self, broker: &Arc<Broker>, image: &MetadataImage) {
        use crate::group::persistence::OFFSETS_TOPIC;
        if !broker.config.is_cluster() {
            return;
        }
        let Some(topic) = image.topic(OFFSETS_TOPIC) else {
            return;
        };
        let n = topic.partitions.len() as i32;
        let led: BTreeSet<i32> = topic
            .partitions
            .iter()
            .filter(|m| {
                self.get(OFFSETS_TOPIC, m.partition)
                    .is_some_and(|p| p.is_leader())
            })
            .map(|m| m.partition)
            .collect();
        let mut coordinating = self.coordinating.lock();
        // Before the first image every group loaded at start is held: drop those not led here.
        let first = coordinating.is_none();
        let held = coordinating.get_or_insert_with(BTreeSet::new);
        for m in &topic.partitions {
            let p = m.partition;
            let (was, is) = (held.contains(&p), led.contains(&p));
            // Unchanged, except that the first image drops what the start-up load held.
            let drop_at_first = first && !is;
            if was == is && !drop_at_first {
                continue;
            }
            if let Err(e) = broker.groups.reload_partition(broker, p, n, is) {
                tracing::error!(partition = p, error = %e, "loading consumer groups failed");
                continue;
            }
            if is {
                held.insert(p);
            } else {
                held.remove(&p);
            }
        }
    }

    /// Whether the group coordinator holds (has loaded) `__consumer_offsets`-`partition`.
    pub fn coordinates_groups_of(&self, partition: i32) -> bool {
        self.coordinating
            .lock()
            .as_ref()
            .is_some_and(|held| held.contains(&partition))
    }

    pub fn delete_topic(&self, topic: &TopicMeta) {
        let removed = self.topics.write().remove(&topic.name).unwrap_or_default();
        for (_, p) in removed {
            self.fetchers.remove(&topic.name, p.index);
            let dir = p.log.dir().to_path_buf();
            let result = match Arc::try_unwrap(p) {
                Ok(p) => p.log.delete(),
                // A fetch still holds it: remove the directory anyway; open files stay readable.
                Err(_) => std::fs::remove_dir_all(&dir).map_err(|source| strom_log::LogError::Io {
                    context: format!("removing {}", dir.display()),
                    source,
                }),
            };
            if let Err(e) = result {
                tracing::warn!(dir = %dir.display(), error = %e, "deleting partition directory failed");
            }
        }
    }

    pub fn close_all(&self) {
        self.fetchers.shutdown();
        for partitions in self.topics.read().values() {
            for p in partitions.values() {
                if let Err(e) = p.checkpoint_high_watermark() {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "checkpointing high watermark failed");
                }
                if let Err(e) = p.log.close() {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "closing log failed");
                }
            }
        }
    }
}
