//! Interactive-query metadata (Kafka's StreamsMetadataState, StreamsMetadata, HostInfo,
//! KeyQueryMetadata): which instance of the application, named by its `application.server`, holds
//! which partitions, tasks and stores, and which instance holds a given key. It is rebuilt from the
//! consumer group after every rebalance (see `assignment_info` for how members tell each other).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use parking_lot::RwLock;

use crate::assignment_info::{decode_assignment, server_of_client_id};
use crate::error::{Result, StreamsError};
use crate::partitioner::partition_for_key;
use crate::task::TaskId;
use crate::topology::Topology;

/// Kafka's HostInfo: the `host:port` of an instance (its `application.server`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostInfo {
    pub host: String,
    pub port: u16,
}

impl HostInfo {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostInfo {
            host: host.into(),
            port,
        }
    }

    /// Parses `host:port` (an IPv6 host in brackets: `[::1]:8080`).
    pub fn parse(s: &str) -> std::result::Result<HostInfo, String> {
        let s = s.trim();
        let bad = || format!("'{s}' is not host:port");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(['@', '/', ' ']) {
            return Err(bad());
        }
        let port: u16 = port.parse().map_err(|_| bad())?;
        Ok(HostInfo::new(host, port))
    }

    /// Kafka's `HostInfo.unavailable()`: no instance is known to hold the data (the group is
    /// rebalancing, or the owner has no `application.server`). Port 0 stands for Kafka's -1.
    pub fn unavailable() -> Self {
        HostInfo::new("unavailable", 0)
    }

    pub fn is_available(&self) -> bool {
        *self != HostInfo::unavailable()
    }
}

impl fmt::Display for HostInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Kafka's TopicPartition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// Kafka's StreamsMetadata: one instance of the application and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamsMetadata {
    pub host_info: HostInfo,
    /// Stores of the instance's active tasks, and every global store.
    pub state_store_names: BTreeSet<String>,
    /// Input partitions of the instance's active tasks.
    pub topic_partitions: BTreeSet<TopicPartition>,
    /// Always empty: standby replicas do not exist in strom-streams.
    pub standby_state_store_names: BTreeSet<String>,
    /// Always empty, as `standby_state_store_names`.
    pub standby_topic_partitions: BTreeSet<TopicPartition>,
    /// The instance's active tasks (not in Kafka's StreamsMetadata, which lists partitions only).
    pub tasks: BTreeSet<TaskId>,
}

/// Kafka's KeyQueryMetadata: the instance holding a key and the key's partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    pub active_host: HostInfo,
    /// Always empty: no standby replicas.
    pub standby_hosts: BTreeSet<HostInfo>,
    /// -1 for global stores (every instance holds every key).
    pub partition: i32,
}

impl KeyQueryMetadata {
    /// Kafka's `KeyQueryMetadata.NOT_AVAILABLE`.
    pub fn not_available() -> Self {
        KeyQueryMetadata {
            active_host: HostInfo::unavailable(),
            standby_hosts: BTreeSet::new(),
            partition: -1,
        }
    }
}

/// Where a store lives in the topology.
#[derive(Clone, Debug)]
enum StorePlace {
    Global,
    /// Its sub-topology, that sub-topology's source topics (full names) and their partition count.
    Subtopology {
        id: usize,
        topics: Vec<String>,
        partitions: i32,
    },
}

/// Kafka's StreamsMetadataState: the topology's layout plus the latest group assignment.
pub(crate) struct MetadataState {
    local: Option<HostInfo>,
    stores: HashMap<String, StorePlace>,
    /// Full source topic name -> sub-topology id.
    topic_subtopology: HashMap<String, usize>,
    subtopology_stores: HashMap<usize, BTreeSet<String>>,
    global_stores: BTreeSet<String>,
    current: RwLock<Vec<StreamsMetadata>>,
}

impl MetadataState {
    pub(crate) fn new(
        topology: &Topology,
        application_id: &str,
        local: Option<HostInfo>,
        partition_counts: &BTreeMap<String, i32>,
    ) -> Self {
        let mut stores = HashMap::new();
        let mut topic_subtopology = HashMap::new();
        let mut subtopology_stores = HashMap::new();
        for s in topology.subtopologies() {
            let topics: Vec<String> = s
                .source_topics
                .iter()
                .map(|t| topology.resolve_topic(application_id, t))
                .collect();
            let partitions = topics
                .iter()
                .filter_map(|t| partition_counts.get(t))
                .copied()
                .max()
                .unwrap_or(0);
            for t in &topics {
                topic_subtopology.insert(t.clone(), s.id);
            }
            for name in &s.stores {
                stores.insert(
                    name.clone(),
                    StorePlace::Subtopology {
                        id: s.id,
                        topics: topics.clone(),
                        partitions,
                    },
                );
            }
            subtopology_stores.insert(s.id, s.stores.clone());
        }
        let mut global_stores = BTreeSet::new();
        for g in &topology.globals {
            stores.insert(g.store.name.clone(), StorePlace::Global);
            global_stores.insert(g.store.name.clone());
        }
        MetadataState {
            local,
            stores,
            topic_subtopology,
            subtopology_stores,
            global_stores,
            current: RwLock::new(Vec::new()),
        }
    }

    /// Replaces the metadata with what the group's members (client id, member assignment) hold.
    /// Members without an `application.server` are left out, as Kafka leaves them out of
    /// `partitionsByHost`; members of one instance (its stream threads) are merged by host.
    pub(crate) fn on_group<'a>(&self, members: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
        let mut by_host: BTreeMap<HostInfo, StreamsMetadata> = BTreeMap::new();
        for (client_id, assignment) in members {
            let Some(host) = server_of_client_id(client_id) else {
                continue;
            };
            let parts = match decode_assignment(assignment) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(client_id, error = %e, "ignoring a group member's assignment");
                    continue;
                }
            };
            let md = by_host
                .entry(host.clone())
                .or_insert_with(|| StreamsMetadata {
                    host_info: host,
                    state_store_names: self.global_stores.clone(),
                    topic_partitions: BTreeSet::new(),
                    standby_state_store_names: BTreeSet::new(),
                    standby_topic_partitions: BTreeSet::new(),
                    tasks: BTreeSet::new(),
                });
            for (topic, partition) in parts {
                if let Some(&sub) = self.topic_subtopology.get(&topic) {
                    md.tasks.insert(TaskId {
                        subtopology: sub,
                        partition,
                    });
                    if let Some(s) = self.subtopology_stores.get(&sub) {
                        md.state_store_names.extend(s.iter().cloned());
                    }
                }
                md.topic_partitions
                    .insert(TopicPartition { topic, partition });
            }
        }
        *self.current.write() = by_host.into_values().collect();
    }

    /// Kafka's `metadataForAllClients()`.
    pub(crate) fn all(&self) -> Vec<StreamsMetadata> {
        self.current.read().clone()
    }

    /// Kafka's `streamsMetadataForStore(store)`: the instances holding a part of the store.
    pub(crate) fn for_store(&self, store: &str) -> Vec<StreamsMetadata> {
        self.current
            .read()
            .iter()
            .filter(|m| m.state_store_names.contains(store))
            .cloned()
            .collect()
    }

    /// Kafka's `queryMetadataForKey` once the key is serialized.
    pub(crate) fn for_key_bytes(&self, store: &str, key: &[u8]) -> Result<KeyQueryMetadata> {
        let place = self.stores.get(store).ok_or_else(|| {
            StreamsError::Streams(format!(
                "Cannot get state store {store} because no such store is registered in the topology."
            ))
        })?;
        match place {
            // Every instance holds a global store; Kafka answers with this instance.
            StorePlace::Global => Ok(KeyQueryMetadata {
                active_host: self.local.clone().unwrap_or_else(HostInfo::unavailable),
                standby_hosts: BTreeSet::new(),
                partition: -1,
            }),
            StorePlace::Subtopology {
                id,
                topics,
                partitions,
            } => {
                if *partitions <= 0 {
                    return Ok(KeyQueryMetadata::not_available());
                }
                let partition = partition_for_key(key, *partitions);
                let task = TaskId {
                    subtopology: *id,
                    partition,
                };
                let owner = self.current.read().iter().find_map(|m| {
                    (m.tasks.contains(&task)
                        || topics.iter().any(|t| {
                            m.topic_partitions.contains(&TopicPartition {
                                topic: t.clone(),
                                partition,
                            })
                        }))
                    .then(|| m.host_info.clone())
                });
                Ok(KeyQueryMetadata {
                    active_host: owner.unwrap_or_else(HostInfo::unavailable),
                    standby_hosts: BTreeSet::new(),
                    partition,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_info_parses_and_prints() {
        assert_eq!(
            HostInfo::parse("localhost:8080").unwrap(),
            HostInfo::new("localhost", 8080)
        );
        let v6 = HostInfo::parse("[::1]:9000").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:9000");
        for bad in ["localhost", ":80", "h:port", "h:70000", "a@b:1"] {
            assert!(HostInfo::parse(bad).is_err(), "{bad}");
        }
    }
}
