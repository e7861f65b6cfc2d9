//! Persistence of the metadata image on a single node.
//!
//! The image is small (topics and their partitions), so every change rewrites one JSON file through
//! a temporary file, fsync and rename: a crash leaves either the old or the new image, never half.
//! `meta.properties` holds the cluster id and node id as Kafka's does, so a data directory cannot be
//! reused by another node by mistake.

use crate::image::{MetadataImage, PartitionMeta, TopicMeta};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

const IMAGE_FILE: &str = "metadata.json";
const META_PROPERTIES: &str = "meta.properties";

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "node.id {configured} does not match node.id {stored} stored in {path}; this data directory belongs to another node"
    )]
    NodeIdMismatch {
        configured: i32,
        stored: i32,
        path: PathBuf,
    },
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    #[error("This server does not host this topic: {0}")]
    UnknownTopic(String),
    #[error(
        "Topic currently has {current} partitions, which is higher than the requested {requested}."
    )]
    PartitionsDecrease { current: i32, requested: i32 },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> MetaError {
    let context = context.into();
    move |source| MetaError::Io { context, source }
}

pub struct MetadataStore {
    dir: PathBuf,
    image: RwLock<Arc<MetadataImage>>,
    /// Serialises writers so two changes never race on the file.
    write_lock: Mutex<()>,
}

impl MetadataStore {
    /// Open the store in `dir` (created if missing), creating a new cluster id the first time.
    pub fn open(dir: &Path, node_id: i32) -> Result<MetadataStore, MetaError> {
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let cluster_id = load_or_init_meta_properties(dir, node_id)?;
        let path = dir.join(IMAGE_FILE);
        let image = match fs::read(&path) {
            Ok(bytes) => {
                let image: MetadataImage =
                    serde_json::from_slice(&bytes).map_err(|e| MetaError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                image
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MetadataImage {
                cluster_id: cluster_id.clone(),
                epoch: 0,
                topics: BTreeMap::new(),
                next_producer_id_block: 0,
                broker_configs: BTreeMap::new(),
            },
            Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
        };
        Ok(MetadataStore {
            dir: dir.to_path_buf(),
            image: RwLock::new(Arc::new(image)),
            write_lock: Mutex::new(()),
        })
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    pub fn cluster_id(&self) -> String {
        self.image.read().cluster_id.clone()
    }

    /// Create a topic with the given replica placement (one replica list per partition).
    pub fn create_topic(
        &self,
        name: &str,
        placement: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, MetaError> {
        self.update(|image| {
            if image.topics.contains_key(name) {
                return Err(MetaError::TopicExists(name.to_string()));
            }
            let topic = TopicMeta {
                name: name.to_string(),
                id: Uuid::new_v4(),
                partitions: partitions_from(0, placement),
                configs,
            };
            image.topics.insert(name.to_string(), topic.clone());
            Ok(topic)
        })
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta, MetaError> {
        self.update(|image| {
            image
                .topics
                .remove(name)
                .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))
        })
    }

    /// Grow a topic to `placement.len()` more partitions (the new partitions' replica lists).
    pub fn add_partitions(
        &self,
        name: &str,
        placement: Vec<Vec<i32>>,
    ) -> Result<TopicMeta, MetaError> {
        self.update(|image| {
            let topic = image
                .topics
                .get_mut(name)
                .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
            let first = topic.partitions.len() as i32;
            topic.partitions.extend(partitions_from(first, placement));
            Ok(topic.clone())
        })
    }

    /// Replace a topic's config overrides (AlterConfigs / IncrementalAlterConfigs).
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, MetaError> {
        self.update(|image| {
            let topic = image
                .topics
                .get_mut(name)
                .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
            topic.configs = configs;
            Ok(topic.clone())
        })
    }

    /// Replace the dynamic broker configs of one resource ("" = cluster default, or a node id).
    pub fn set_broker_configs(
        &self,
        resource: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetaError> {
        self.update(|image| {
            if configs.is_empty() {
                image.broker_configs.remove(resource);
            } else {
                image.broker_configs.insert(resource.to_string(), configs);
            }
            Ok(())
        })
    }

    /// Reserve `size` producer ids; returns the first. Persisted before it is returned, so no id
    /// is ever handed out twice, even across restarts.
    pub fn allocate_producer_ids(&self, size: i64) -> Result<i64, MetaError> {
        self.update(|image| {
            let first = image.next_producer_id_block;
            image.next_producer_id_block = first + size;
            Ok(first)
        })
    }

    /// Apply `change` to a copy of the image, persist it, then publish it.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut MetadataImage) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let _guard = self.write_lock.lock();
        let mut next = (**self.image.read()).clone();
        let out = change(&mut next)?;
        next.epoch += 1;
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| MetaError::Corrupt {
            path: self.dir.join(IMAGE_FILE),
            reason: e.to_string(),
        })?;
        write_atomically(&self.dir, IMAGE_FILE, &bytes)?;
        *self.image.write() = Arc::new(next);
        Ok(out)
    }
}

fn partitions_from(first: i32, placement: Vec<Vec<i32>>) -> Vec<PartitionMeta> {
    placement
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| PartitionMeta {
            partition: first + i as i32,
            leader: replicas.first().copied().unwrap_or(-1),
            leader_epoch: 0,
            isr: replicas.clone(),
            replicas,
        })
        .collect()
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), MetaError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut f = fs::File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io_err(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, &target).map_err(io_err(format!("renaming to {}", target.display())))?;
    // The rename is durable only once the directory entry is.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Kafka's `meta.properties`: version, cluster.id, node.id. Returns the cluster id.
fn load_or_init_meta_properties(dir: &Path, node_id: i32) -> Result<String, MetaError> {
    let path = dir.join(META_PROPERTIES);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let mut cluster_id = None;
            let mut stored_node = None;
            for line in text.lines() {
                let line = line.trim();
                if let Some(v) = line.strip_prefix("cluster.id=") {
                    cluster_id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("node.id=") {
                    stored_node = v.parse::<i32>().ok();
                }
            }
            let cluster_id = cluster_id.ok_or_else(|| MetaError::Corrupt {
                path: path.clone(),
                reason: "no cluster.id".into(),
            })?;
            if let Some(stored) = stored_node
                && stored != node_id
            {
                return Err(MetaError::NodeIdMismatch {
                    configured: node_id,
                    stored,
                    path,
                });
            }
            Ok(cluster_id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = new_cluster_id();
            let text = format!(
                "#\n#strom meta.properties\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n"
            );
            write_atomically(dir, META_PROPERTIES, text.as_bytes())?;
            Ok(cluster_id)
        }
        Err(e) => Err(io_err(format!("reading {}", path.display()))(e)),
    }
}

/// Kafka's cluster ids are random UUIDs in URL-safe base64 without padding (22 characters).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_survive_reopen_and_node_id_is_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetadataStore::open(dir.path(), 1).expect("open");
        let cluster = store.cluster_id();
        assert_eq!(cluster.len(), 22);
        let t = store
            .create_topic("a", vec![vec![1], vec![1]], BTreeMap::new())
            .expect("create");
        assert!(matches!(
            store.create_topic("a", vec![vec![1]], BTreeMap::new()),
            Err(MetaError::TopicExists(_))
        ));
        store.add_partitions("a", vec![vec![1]]).expect("grow");
        drop(store);

        let store = MetadataStore::open(dir.path(), 1).expect("reopen");
        assert_eq!(store.cluster_id(), cluster);
        let image = store.image();
        let topic = image.topic("a").expect("topic kept");
        assert_eq!(topic.id, t.id);
        assert_eq!(topic.partitions.len(), 3);
        assert_eq!(topic.partitions[2].partition, 2);
        store.delete_topic("a").expect("delete");
        assert!(store.image().topic("a").is_none());
        drop(store);

        assert!(matches!(
            MetadataStore::open(dir.path(), 2),
            Err(MetaError::NodeIdMismatch { .. })
        ));
    }

    #[test]
    fn topic_and_broker_configs_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetadataStore::open(dir.path(), 1).expect("open");
        store
            .create_topic("t", vec![vec![1]], BTreeMap::new())
            .expect("create");
        let configs = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        store.set_topic_configs("t", configs.clone()).expect("set");
        assert!(matches!(
            store.set_topic_configs("missing", BTreeMap::new()),
            Err(MetaError::UnknownTopic(_))
        ));
        let broker = BTreeMap::from([("log.retention.ms".to_string(), "5".to_string())]);
        store
            .set_broker_configs("", broker.clone())
            .expect("broker");
        drop(store);
        let store = MetadataStore::open(dir.path(), 1).expect("reopen");
        let image = store.image();
        assert_eq!(image.topic("t").expect("t").configs, configs);
        assert_eq!(image.broker_configs.get(""), Some(&broker));
    }
}
