//! The metadata store: the image every node reads, and the one way to change it.
//!
//! Every change is a `MetadataCommand`. On a single node (no `controller.quorum.voters`) it is
//! applied at once and the image rewritten as one JSON file through a temporary file, fsync and
//! rename: a crash leaves either the old or the new image, never half. In a cluster the command
//! goes to the active controller (forwarded from any node) and is applied by every node once the
//! Raft metadata log commits it (`crate::raft`).
//! `meta.properties` holds the cluster id and node id as Kafka's does, so a data directory cannot be
//! reused by another node by mistake.

use crate::command::{CommandError, CommandResult, MetadataCommand};
use crate::image::{BrokerMeta, MetadataImage, PartitionMeta, TopicMeta};
use crate::raft::{
    LeaderReply, LeaderRequest, Observer, ObserverConfig, Quorum, QuorumConfig, QuorumStatus,
};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
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
    /// The controller refused the change (stale epochs, unknown partition, ...).
    #[error(transparent)]
    Rejected(CommandError),
    /// The active controller refused this broker (duplicate node.id, wrong cluster).
    #[error("{0}")]
    Refused(String),
    /// No active controller could be reached in time.
    #[error("metadata quorum unavailable: {0}")]
    Unavailable(String),
}

impl From<CommandError> for MetaError {
    fn from(e: CommandError) -> MetaError {
        match e {
            CommandError::TopicExists(t) => MetaError::TopicExists(t),
            CommandError::UnknownTopic(t) => MetaError::UnknownTopic(t),
            CommandError::PartitionsDecrease { current, requested } => {
                MetaError::PartitionsDecrease { current, requested }
            }
            other => MetaError::Rejected(other),
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> MetaError {
    let context = context.into();
    move |source| MetaError::Io { context, source }
}

/// What a heartbeat told the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    Ok,
    /// The active controller does not know this incarnation: register again.
    NeedRegistration,
}

/// The metadata quorum's settings (cluster mode).
pub struct ClusterOptions {
    /// Voter node ids and their CONTROLLER host:port.
    pub voters: BTreeMap<i32, String>,
    /// The bound CONTROLLER listener.
    pub listener: std::net::TcpListener,
    pub session_timeout: Duration,
}

/// How a broker-only node (an observer of the metadata log) finds the quorum.
pub struct ObserverOptions {
    /// `controller.quorum.voters`: voter node ids and their CONTROLLER host:port (may be empty).
    pub voters: BTreeMap<i32, String>,
    /// `controller.quorum.bootstrap.servers` (host:port), used while no voter is known.
    pub bootstrap: Vec<String>,
}

enum Backend {
    /// One node, no quorum: the image in one JSON file.
    Local { write_lock: Mutex<()> },
    /// The Raft metadata log among the controllers.
    Quorum(Quorum),
    /// A broker-only node following the controllers' image.
    Observer(Observer),
}

pub struct MetadataStore {
    dir: PathBuf,
    node_id: i32,
    image: Arc<watch::Sender<Arc<MetadataImage>>>,
    backend: Backend,
}

impl MetadataStore {
    /// Open the single-node store in `dir` (created if missing), creating a new cluster id the
    /// first time.
    pub fn open(dir: &Path, node_id: i32) -> Result<MetadataStore, MetaError> {
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let cluster_id = match read_meta_properties(dir, node_id)? {
            Some(id) => id,
            None => {
                let id = new_cluster_id();
                write_meta_properties(dir, &id, node_id)?;
                id
            }
        };
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
                ..MetadataImage::default()
            },
            Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
        };
        let (tx, _) = watch::channel(Arc::new(image));
        Ok(MetadataStore {
            dir: dir.to_path_buf(),
            node_id,
            image: Arc::new(tx),
            backend: Backend::Local {
                write_lock: Mutex::new(()),
            },
        })
    }

    /// Open the store of a cluster node: the Raft metadata log in `dir/raft`, replicated among
    /// `options.voters`. Returns at once; the image fills as the log is replayed and replicated.
    pub fn open_cluster(
        dir: &Path,
        node_id: i32,
        options: ClusterOptions,
    ) -> Result<MetadataStore, MetaError> {
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let stored_cluster_id = read_meta_properties(dir, node_id)?;
        if dir.join(IMAGE_FILE).exists() && !dir.join("raft").exists() {
            tracing::warn!(
                dir = %dir.display(),
                "this directory has single-node metadata ({IMAGE_FILE}); cluster mode starts a new metadata log and does not import it"
            );
        }
        let (tx, _) = watch::channel(Arc::new(MetadataImage::default()));
        let image = Arc::new(tx);
        let quorum = Quorum::start(
            dir,
            QuorumConfig {
                node_id,
                voters: options.voters,
                session_timeout: options.session_timeout,
                stored_cluster_id,
                new_cluster_id: new_cluster_id(),
            },
            options.listener,
            image.clone(),
        )?;
        Ok(MetadataStore {
            dir: dir.to_path_buf(),
            node_id,
            image,
            backend: Backend::Quorum(quorum),
        })
    }

    /// Open the store of a broker-only node: no Raft log here; the image follows the active
    /// controller's. Returns at once; the image fills once a controller answers.
    pub fn open_observer(
        dir: &Path,
        node_id: i32,
        options: ObserverOptions,
    ) -> Result<MetadataStore, MetaError> {
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let stored_cluster_id = read_meta_properties(dir, node_id)?;
        let (tx, _) = watch::channel(Arc::new(MetadataImage::default()));
        let image = Arc::new(tx);
        let observer = Observer::start(
            ObserverConfig {
                node_id,
                voters: options.voters,
                bootstrap: options.bootstrap,
                dir: dir.to_path_buf(),
                stored_cluster_id,
            },
            image.clone(),
        )?;
        Ok(MetadataStore {
            dir: dir.to_path_buf(),
            node_id,
            image,
            backend: Backend::Observer(observer),
        })
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// Every new image, as it is applied (contract item 2 of the cluster issue).
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.subscribe()
    }

    pub fn cluster_id(&self) -> String {
        self.image.borrow().cluster_id.clone()
    }

    pub fn is_cluster(&self) -> bool {
        !matches!(self.backend, Backend::Local { .. })
    }

    /// The active controller's node id: this node on a single node, the Raft leader otherwise.
    pub fn controller_id(&self) -> Option<i32> {
        match &self.backend {
            Backend::Local { .. } => Some(self.node_id),
            Backend::Quorum(q) => q.status().leader,
            Backend::Observer(o) => o.status().leader,
        }
    }

    /// Whether this node is the active controller.
    pub fn is_active_controller(&self) -> bool {
        match &self.backend {
            Backend::Local { .. } => true,
            Backend::Quorum(q) => q.is_leader(),
            Backend::Observer(_) => false,
        }
    }

    pub fn quorum_status(&self) -> Option<QuorumStatus> {
        match &self.backend {
            Backend::Local { .. } => None,
            Backend::Quorum(q) => Some(q.status()),
            Backend::Observer(o) => Some(o.status()),
        }
    }

    /// Last heartbeat per broker as the active controller saw it (empty elsewhere).
    pub fn broker_liveness(&self) -> std::collections::HashMap<i32, (Uuid, std::time::Instant)> {
        match &self.backend {
            Backend::Local { .. } | Backend::Observer(_) => Default::default(),
            Backend::Quorum(q) => q.liveness(),
        }
    }

    /// Err if the quorum's cluster id differs from this node's meta.properties.
    pub fn check_cluster_id(&self) -> Result<(), MetaError> {
        match &self.backend {
            Backend::Quorum(q) => match q.cluster_id_conflict() {
                Some(msg) => Err(MetaError::Refused(msg)),
                None => Ok(()),
            },
            Backend::Observer(o) => match o.cluster_id_conflict() {
                Some(msg) => Err(MetaError::Refused(msg)),
                None => Ok(()),
            },
            Backend::Local { .. } => Ok(()),
        }
    }

    /// Run one command through the metadata log (or the local file) and wait for its outcome.
    pub fn submit(&self, cmd: MetadataCommand) -> Result<CommandResult, MetaError> {
        match &self.backend {
            Backend::Local { write_lock } => self.apply_local(write_lock, &cmd),
            Backend::Quorum(q) => outcome(q.leader_request_blocking(LeaderRequest::Write(cmd))?),
            Backend::Observer(o) => outcome(o.leader_request_blocking(LeaderRequest::Write(cmd))?),
        }
    }

    pub async fn submit_async(&self, cmd: MetadataCommand) -> Result<CommandResult, MetaError> {
        match &self.backend {
            Backend::Local { write_lock } => self.apply_local(write_lock, &cmd),
            Backend::Quorum(q) => outcome(q.leader_request(LeaderRequest::Write(cmd)).await?),
            Backend::Observer(o) => outcome(o.leader_request(LeaderRequest::Write(cmd)).await?),
        }
    }

    /// Register this broker with the active controller (a new incarnation at every start).
    pub fn register_broker(&self, broker: BrokerMeta) -> Result<(), MetaError> {
        match &self.backend {
            Backend::Local { write_lock } => self
                .apply_local(write_lock, &MetadataCommand::RegisterBroker { broker })
                .map(|_| ()),
            Backend::Quorum(q) => {
                outcome(q.leader_request_blocking(LeaderRequest::Register(broker))?).map(|_| ())
            }
            Backend::Observer(o) => {
                outcome(o.leader_request_blocking(LeaderRequest::Register(broker))?).map(|_| ())
            }
        }
    }

    pub async fn register_broker_async(&self, broker: BrokerMeta) -> Result<(), MetaError> {
        match &self.backend {
            Backend::Local { write_lock } => self
                .apply_local(write_lock, &MetadataCommand::RegisterBroker { broker })
                .map(|_| ()),
            Backend::Quorum(q) => {
                outcome(q.leader_request(LeaderRequest::Register(broker)).await?).map(|_| ())
            }
            Backend::Observer(o) => {
                outcome(o.leader_request(LeaderRequest::Register(broker)).await?).map(|_| ())
            }
        }
    }

    pub async fn broker_heartbeat(
        &self,
        node_id: i32,
        incarnation_id: Uuid,
    ) -> Result<HeartbeatOutcome, MetaError> {
        let req = LeaderRequest::Heartbeat {
            node_id,
            incarnation_id,
        };
        let reply = match &self.backend {
            Backend::Local { .. } => return Ok(HeartbeatOutcome::Ok),
            Backend::Quorum(q) => q.leader_request(req).await?,
            Backend::Observer(o) => o.leader_request(req).await?,
        };
        match reply {
            LeaderReply::NeedRegistration => Ok(HeartbeatOutcome::NeedRegistration),
            _ => Ok(HeartbeatOutcome::Ok),
        }
    }

    /// Kafka's AddRaftVoter: make the running controller `node_id` (CONTROLLER listener at
    /// `address`, host:port) a voter. Refused on a single node.
    pub fn add_voter(&self, node_id: i32, address: &str) -> Result<(), MetaError> {
        self.voter_change(LeaderRequest::AddVoter {
            node_id,
            address: address.to_string(),
        })
    }

    /// Kafka's RemoveRaftVoter: take `node_id` out of the voters.
    pub fn remove_voter(&self, node_id: i32) -> Result<(), MetaError> {
        self.voter_change(LeaderRequest::RemoveVoter { node_id })
    }

    fn voter_change(&self, req: LeaderRequest) -> Result<(), MetaError> {
        let reply = match &self.backend {
            Backend::Local { .. } => {
                return Err(MetaError::Refused(
                    "a single node has no metadata quorum to change (controller.quorum.voters is not set)".into(),
                ));
            }
            Backend::Quorum(q) => q.leader_request_blocking(req)?,
            Backend::Observer(o) => o.leader_request_blocking(req)?,
        };
        match reply {
            LeaderReply::VotersChanged => Ok(()),
            other => Err(MetaError::Unavailable(format!(
                "unexpected controller reply {other:?}"
            ))),
        }
    }

    /// Create a topic with the given replica placement (one replica list per partition).
    pub fn create_topic(
        &self,
        name: &str,
        placement: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, MetaError> {
        topic(self.submit(MetadataCommand::CreateTopic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            placement,
            configs,
        })?)
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta, MetaError> {
        topic(self.submit(MetadataCommand::DeleteTopic {
            name: name.to_string(),
        })?)
    }

    /// Grow a topic to `placement.len()` more partitions (the new partitions' replica lists).
    pub fn add_partitions(
        &self,
        name: &str,
        placement: Vec<Vec<i32>>,
    ) -> Result<TopicMeta, MetaError> {
        topic(self.submit(MetadataCommand::AddPartitions {
            name: name.to_string(),
            placement,
        })?)
    }

    /// Replace a topic's config overrides (AlterConfigs / IncrementalAlterConfigs).
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, MetaError> {
        topic(self.submit(MetadataCommand::SetTopicConfigs {
            name: name.to_string(),
            configs,
        })?)
    }

    /// Replace the dynamic broker configs of one resource ("" = cluster default, or a node id).
    pub fn set_broker_configs(
        &self,
        resource: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetaError> {
        self.submit(MetadataCommand::SetBrokerConfigs {
            resource: resource.to_string(),
            configs,
        })
        .map(|_| ())
    }

    /// Reserve `size` producer ids; returns the first. Persisted (committed to the metadata
    /// log) before it is returned, so no id is ever handed out twice, even across restarts.
    pub fn allocate_producer_ids(&self, size: i64) -> Result<i64, MetaError> {
        match self.submit(MetadataCommand::AllocateProducerIds { size })? {
            CommandResult::ProducerIdBlock(first) => Ok(first),
            other => Err(unexpected(other)),
        }
    }

    /// Kafka's AlterPartition: the partition leader changes the ISR. Refused with
    /// `Rejected(FencedLeaderEpoch | InvalidUpdateVersion | IneligibleReplica)` when the
    /// leader's view is stale (contract item 3 of the cluster issue).
    pub async fn alter_partition(
        &self,
        topic: &str,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> Result<PartitionMeta, MetaError> {
        match self
            .submit_async(MetadataCommand::AlterPartition {
                topic: topic.to_string(),
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                new_isr,
            })
            .await?
        {
            CommandResult::Partition(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }

    /// Apply `cmd` to a copy of the image, persist it, then publish it (single node).
    fn apply_local(
        &self,
        write_lock: &Mutex<()>,
        cmd: &MetadataCommand,
    ) -> Result<CommandResult, MetaError> {
        let _guard = write_lock.lock();
        let mut next = (**self.image.borrow()).clone();
        let out = crate::command::apply(&mut next, cmd)?;
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| MetaError::Corrupt {
            path: self.dir.join(IMAGE_FILE),
            reason: e.to_string(),
        })?;
        write_atomically(&self.dir, IMAGE_FILE, &bytes)?;
        self.image.send_replace(Arc::new(next));
        Ok(out)
    }
}

fn outcome(reply: LeaderReply) -> Result<CommandResult, MetaError> {
    match reply {
        LeaderReply::Outcome(r) => r.map_err(MetaError::from),
        other => Err(MetaError::Unavailable(format!(
            "unexpected controller reply {other:?}"
        ))),
    }
}

fn topic(r: CommandResult) -> Result<TopicMeta, MetaError> {
    match r {
        CommandResult::Topic(t) => Ok(t),
        other => Err(unexpected(other)),
    }
}

fn unexpected(r: CommandResult) -> MetaError {
    MetaError::Unavailable(format!("unexpected command result {r:?}"))
}

pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), MetaError> {
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

/// Kafka's `meta.properties`: version, cluster.id, node.id. Returns the stored cluster id.
fn read_meta_properties(dir: &Path, node_id: i32) -> Result<Option<String>, MetaError> {
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
            Ok(Some(cluster_id))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(format!("reading {}", path.display()))(e)),
    }
}

pub(crate) fn write_meta_properties(
    dir: &Path,
    cluster_id: &str,
    node_id: i32,
) -> Result<(), MetaError> {
    let text = format!(
        "#\n#strom meta.properties\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n"
    );
    write_atomically(dir, META_PROPERTIES, text.as_bytes())
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
