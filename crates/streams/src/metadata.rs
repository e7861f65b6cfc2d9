//! Interactive-query metadata (Kafka's StreamsMetadataState, StreamsMetadata, HostInfo,
//! KeyQueryMetadata): which instance of the application, named by its `application.server`, holds
//! which partitions, tasks and stores, and which instance holds a given key. It is rebuilt from the
//! consumer group after every rebalance (see `assignment_info` for how members tell each other),
//! together with the standby placement (`standby_placement`) every instance derives from it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use parking_lot::RwLock;

use crate::assignment_info::{decode_assignment, process_of_client_id, server_of_client_id};
use crate::error::{Result, StreamsError};
use crate::partitioner::partition_for_key;
use crate::standby_placement::standby_tasks;
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
    /// Changelogged stores of the instance's standby tasks (`num.standby.replicas`).
    pub standby_state_store_names: BTreeSet<String>,
    /// Input partitions of the instance's standby tasks.
    pub standby_topic_partitions: BTreeSet<TopicPartition>,
    /// The instance's active tasks (not in Kafka's StreamsMetadata, which lists partitions only).
    pub tasks: BTreeSet<TaskId>,
    /// The instance's standby tasks (strom's addition, as `tasks`).
    pub standby_tasks: BTreeSet<TaskId>,
}

/// Kafka's KeyQueryMetadata: the instance holding a key and the key's partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    pub active_host: HostInfo,
    /// The instances keeping a standby replica of the key's partition (that advertise a server).
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
    application_id: String,
    local: Option<HostInfo>,
    num_standby_replicas: usize,
    /// Sub-topology id -> its full source topic names.
    subtopology_topics: HashMap<usize, Vec<String>>,
    /// Sub-topology id -> its changelogged stores (what a standby replica keeps).
    subtopology_changelogged: HashMap<usize, BTreeSet<String>>,
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
        num_standby_replicas: usize,
        partition_counts: &BTreeMap<String, i32>,
    ) -> Self {
        let mut stores = HashMap::new();
        let mut subtopology_topics = HashMap::new();
        let mut subtopology_changelogged = HashMap::new();
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
            let logged: BTreeSet<String> = topology
                .stores
                .iter()
                .filter(|d| d.logging && s.stores.contains(&d.name))
                .map(|d| d.name.clone())
                .collect();
            if !logged.is_empty() {
                subtopology_changelogged.insert(s.id, logged);
            }
            subtopology_topics.insert(s.id, topics);
        }
        let mut global_stores = BTreeSet::new();
        for g in &topology.globals {
            stores.insert(g.store.name.clone(), StorePlace::Global);
            global_stores.insert(g.store.name.clone());
        }
        MetadataState {
            application_id: application_id.to_string(),
            local,
            num_standby_replicas,
            subtopology_topics,
            subtopology_changelogged,
            stores,
            topic_subtopology,
            subtopology_stores,
            global_stores,
            current: RwLock::new(Vec::new()),
        }
    }

    /// Replaces the metadata with what the group's members (client id, member assignment) hold,
    /// and returns the standby placement: process id -> the tasks it keeps standby replicas of
    /// (every process in the group, with or without a server). Members without an
    /// `application.server` are left out of the metadata, as Kafka leaves them out of
    /// `partitionsByHost`; members of one instance (its stream threads) are merged by host.
    pub(crate) fn on_group<'a>(
        &self,
        members: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> BTreeMap<String, BTreeSet<TaskId>> {
        let mut by_host: BTreeMap<HostInfo, StreamsMetadata> = BTreeMap::new();
        let mut active_by_process: BTreeMap<String, BTreeSet<TaskId>> = BTreeMap::new();
        let mut host_of_process: BTreeMap<String, HostInfo> = BTreeMap::new();
        for (client_id, assignment) in members {
            let process = process_of_client_id(&self.application_id, client_id);
            let host = server_of_client_id(client_id);
            let parts = match decode_assignment(assignment) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(client_id, error = %e, "ignoring a group member's assignment");
                    continue;
                }
            };
            let mut tasks = BTreeSet::new();
            for (topic, partition) in &parts {
                if let Some(&sub) = self.topic_subtopology.get(topic) {
                    tasks.insert(TaskId {
                        subtopology: sub,
                        partition: *partition,
                    });
                }
            }
            if let Some(p) = &process {
                active_by_process
                    .entry(p.clone())
                    .or_default()
                    .extend(tasks.iter().copied());
                if let Some(h) = &host {
                    host_of_process.insert(p.clone(), h.clone());
                }
            }
            let Some(host) = host else {
                continue;
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
                    standby_tasks: BTreeSet::new(),
                });
            for task in &tasks {
                if let Some(s) = self.subtopology_stores.get(&task.subtopology) {
                    md.state_store_names.extend(s.iter().cloned());
                }
            }
            md.tasks.extend(tasks);
            for (topic, partition) in parts {
                md.topic_partitions
                    .insert(TopicPartition { topic, partition });
            }
        }
        let placement = standby_tasks(&active_by_process, self.num_standby_replicas, |t| {
            self.subtopology_changelogged.contains_key(&t.subtopology)
        });
        for (process, standbys) in &placement {
            let Some(md) = host_of_process
                .get(process)
                .and_then(|h| by_host.get_mut(h))
            else {
                continue;
            };
            for task in standbys {
                if let Some(s) = self.subtopology_changelogged.get(&task.subtopology) {
                    md.standby_state_store_names.extend(s.iter().cloned());
                }
                for topic in self
                    .subtopology_topics
                    .get(&task.subtopology)
                    .into_iter()
                    .flatten()
                {
                    md.standby_topic_partitions.insert(TopicPartition {
                        topic: topic.clone(),
                        partition: task.partition,
                    });
                }
                md.standby_tasks.insert(*task);
            }
        }
        *self.current.write() = by_host.into_values().collect();
        placement
    }

    /// Kafka's `metadataForAllClients()`.
    pub(crate) fn all(&self) -> Vec<StreamsMetadata> {
        self.current.read().clone()
    }

    /// Kafka's `streamsMetadataForStore(store)`: the instances holding a part of the store, as an
    /// active or a standby replica.
    pub(crate) fn for_store(&self, store: &str) -> Vec<StreamsMetadata> {
        self.current
            .read()
            .iter()
            .filter(|m| {
                m.state_store_names.contains(store) || m.standby_state_store_names.contains(store)
            })
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
                let current = self.current.read();
                let owner = current.iter().find_map(|m| {
                    (m.tasks.contains(&task)
                        || topics.iter().any(|t| {
                            m.topic_partitions.contains(&TopicPartition {
                                topic: t.clone(),
                                partition,
                            })
                        }))
                    .then(|| m.host_info.clone())
                });
                let standby_hosts = current
                    .iter()
                    .filter(|m| m.standby_tasks.contains(&task))
                    .map(|m| m.host_info.clone())
                    .collect();
                Ok(KeyQueryMetadata {
                    active_host: owner.unwrap_or_else(HostInfo::unavailable),
                    standby_hosts,
                    partition,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignment_info::consumer_client_id;
    use crate::options::{Consumed, Grouped, Materialized};
    use crate::serde::Serdes;

    /// A ConsumerProtocolAssignment (version 1, no userdata) of `topic` partitions.
    fn assignment(parts: &[(&str, i32)]) -> Vec<u8> {
        let mut b = 1i16.to_be_bytes().to_vec();
        b.extend((parts.len() as i32).to_be_bytes());
        for (t, p) in parts {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend(1i32.to_be_bytes());
            b.extend(p.to_be_bytes());
        }
        b.extend((-1i32).to_be_bytes());
        b
    }

    #[test]
    fn standby_placement_fills_the_metadata() {
        let b = crate::dsl::StreamsBuilder::new();
        let s = Serdes::string;
        b.stream("in", Consumed::with(s(), s()))
            .group_by(|_, v: &String| v.clone(), Grouped::with(s(), s()))
            .count(Materialized::as_("counts"));
        let topology = b.build().unwrap();
        let rep = "app-counts-repartition";
        let counts: BTreeMap<String, i32> = [("in".to_string(), 2), (rep.to_string(), 2)].into();
        let (ha, hb) = (HostInfo::new("a", 1), HostInfo::new("b", 2));
        let md = MetadataState::new(&topology, "app", Some(ha.clone()), 1, &counts);
        let (ca, cb, cc) = (
            consumer_client_id("app", "p-a", 1, Some(&ha)),
            consumer_client_id("app", "p-b", 1, Some(&hb)),
            // A third process without a server: it holds standbys but is not in the metadata.
            consumer_client_id("app", "p-c", 1, None),
        );
        let (aa, ab, ac) = (
            assignment(&[("in", 0), (rep, 0)]),
            assignment(&[("in", 1), (rep, 1)]),
            assignment(&[]),
        );
        let placement = md.on_group([
            (ca.as_str(), aa.as_slice()),
            (cb.as_str(), ab.as_slice()),
            (cc.as_str(), ac.as_slice()),
        ]);
        let t = |partition| TaskId {
            subtopology: 1,
            partition,
        };
        // Only the count sub-topology (1) has a changelogged store.
        assert_eq!(placement["p-a"], BTreeSet::new());
        assert_eq!(placement["p-b"], [t(0)].into());
        assert_eq!(placement["p-c"], [t(1)].into());
        let all = md.all();
        assert_eq!(all.len(), 2);
        let b_md = all.iter().find(|m| m.host_info == hb).unwrap();
        assert_eq!(b_md.standby_tasks, [t(0)].into());
        assert_eq!(
            b_md.standby_state_store_names,
            ["counts".to_string()].into()
        );
        assert_eq!(
            b_md.standby_topic_partitions,
            [TopicPartition {
                topic: rep.into(),
                partition: 0
            }]
            .into()
        );
        let key_on = |p: i32| {
            (0..100)
                .map(|i| format!("k{i}").into_bytes())
                .find(|k| partition_for_key(k, 2) == p)
                .unwrap()
        };
        let k0 = md.for_key_bytes("counts", &key_on(0)).unwrap();
        assert_eq!(
            (k0.active_host, k0.standby_hosts),
            (ha, [hb.clone()].into())
        );
        // Partition 1's standby is on the process without a server: no standby host to name.
        let k1 = md.for_key_bytes("counts", &key_on(1)).unwrap();
        assert_eq!((k1.active_host, k1.standby_hosts), (hb, BTreeSet::new()));
    }

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
