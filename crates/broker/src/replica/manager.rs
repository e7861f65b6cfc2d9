//! The map from topic-partition to hosted `Partition`, and their directories on disk.

use super::Partition;
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use strom_log::{Log, LogConfig};
use strom_meta::TopicMeta;

type TopicPartitions = BTreeMap<i32, Arc<Partition>>;

pub struct ReplicaManager {
    dir: PathBuf,
    node_id: i32,
    /// Keyed by topic name first so a lookup borrows the request's `&str` without allocating.
    topics: RwLock<HashMap<String, TopicPartitions>>,
}

impl ReplicaManager {
    pub fn new(dir: PathBuf, node_id: i32) -> ReplicaManager {
        ReplicaManager {
            dir,
            node_id,
            topics: RwLock::new(HashMap::new()),
        }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.topics.read().get(topic)?.get(&partition).cloned()
    }

    /// Open (creating if needed) the logs of every partition of `topic` that this node hosts and
    /// that is not open yet.
    pub fn open_topic(
        &self,
        topic: &TopicMeta,
        config: LogConfig,
    ) -> Result<(), strom_log::LogError> {
        let name: Arc<str> = Arc::from(topic.name.as_str());
        for p in &topic.partitions {
            if !p.replicas.contains(&self.node_id) || self.get(&topic.name, p.partition).is_some() {
                continue;
            }
            let dir = self.dir.join(format!("{}-{}", topic.name, p.partition));
            let log = Log::open(&dir, config.clone(), topic.id.into_bytes())?;
            let partition = Arc::new(Partition {
                topic: name.clone(),
                index: p.partition,
                topic_id: topic.id,
                leader_epoch: p.leader_epoch,
                log,
            });
            self.topics
                .write()
                .entry(topic.name.clone())
                .or_default()
                .insert(p.partition, partition);
        }
        Ok(())
    }

    pub fn delete_topic(&self, topic: &TopicMeta) {
        let removed = self.topics.write().remove(&topic.name).unwrap_or_default();
        for (_, p) in removed {
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
        for partitions in self.topics.read().values() {
            for p in partitions.values() {
                if let Err(e) = p.log.close() {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "closing log failed");
                }
            }
        }
    }
}
