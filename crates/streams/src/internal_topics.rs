//! Start-up checks and internal topics (Kafka's InternalTopicManager and CopartitionedTopicsEnforcer):
//! source topics must exist, co-partitioned topics must have equal partition counts, repartition
//! and changelog topics are created with the partition counts their sub-topologies need.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::state::StoreKind;
use crate::topology::{NodeKind, SinkTopic, Topology};

/// Partition counts of every topic the application reads or owns (full names).
pub type PartitionCounts = BTreeMap<String, i32>;

fn metadata(config: &StreamsConfig) -> Result<BTreeMap<String, i32>> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.bootstrap_servers);
    for (k, v) in config.overrides("admin") {
        cc.set(k, v);
    }
    let c: BaseConsumer = cc.create()?;
    let md = c.fetch_metadata(None, Duration::from_secs(30))?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// Checks the cluster and creates internal topics. Returns the partition count of every topic the
/// topology touches.
pub fn prepare(topology: &Topology, config: &StreamsConfig) -> Result<PartitionCounts> {
    let app = &config.application_id;
    let existing = metadata(config)?;
    let user = topology.user_source_topics();
    let missing: Vec<String> = user
        .iter()
        .filter(|t| !existing.contains_key(*t))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(StreamsError::MissingSourceTopics(missing));
    }
    let mut counts: BTreeMap<String, i32> = BTreeMap::new();
    for t in &user {
        counts.insert(t.clone(), existing[t]);
    }
    // Co-partitioning of user topics (joins).
    for g in &topology.copartition_groups {
        let user_in: Vec<(&String, i32)> = g
            .iter()
            .filter(|t| !topology.internal_topics.contains(*t))
            .map(|t| (t, counts[t]))
            .collect();
        if user_in
            .iter()
            .map(|(_, n)| n)
            .collect::<BTreeSet<_>>()
            .len()
            > 1
        {
            let names: Vec<String> = user_in.iter().map(|(t, _)| t.to_string()).collect();
            return Err(StreamsError::Topology(format!(
                "Following topics do not have the same number of partitions: [{}]",
                names.join(", ")
            )));
        }
    }
    // Repartition topics: their own count if given, else the most partitions of the inputs of the
    // sub-topology writing them; repeated until stable since repartitions can chain.
    let subs = topology.subtopologies();
    let mut internal: BTreeMap<String, i32> =
        topology.internal_partitions.clone().into_iter().collect();
    for _ in 0..=subs.len() {
        for s in &subs {
            let n = s
                .source_topics
                .iter()
                .filter_map(|t| counts.get(t).or(internal.get(t)).copied())
                .max();
            let Some(n) = n else { continue };
            for &i in &s.nodes {
                if let NodeKind::Sink {
                    topic: SinkTopic::Fixed(t),
                    ..
                } = &topology.nodes[i].kind
                    && topology.internal_topics.contains(t)
                    && !topology.internal_partitions.contains_key(t)
                {
                    let e = internal.entry(t.clone()).or_insert(n);
                    *e = (*e).max(n);
                }
            }
        }
    }
    // Internal topics in a co-partition group follow the group's user topics.
    for g in &topology.copartition_groups {
        let n = g.iter().filter_map(|t| counts.get(t)).copied().max();
        if let Some(n) = n {
            for t in g {
                if topology.internal_topics.contains(t) {
                    if topology.internal_partitions.get(t).is_some_and(|&m| m != n) {
                        return Err(StreamsError::Topology(format!(
                            "Number of partitions [{}] of repartition topic [{t}] doesn't match number of partitions [{n}] of the source topic.",
                            topology.internal_partitions[t]
                        )));
                    }
                    internal.insert(t.clone(), n);
                }
            }
        }
    }
    let mut to_create: Vec<(String, i32, Vec<(&str, String)>)> = Vec::new();
    for t in &topology.internal_topics {
        let n = *internal.get(t).ok_or_else(|| {
            StreamsError::Topology(format!(
                "cannot tell the partition count of repartition topic {t}"
            ))
        })?;
        let full = format!("{app}-{t}");
        counts.insert(full.clone(), n);
        to_create.push((
            full,
            n,
            vec![
                ("cleanup.policy", "delete".into()),
                ("retention.ms", "-1".into()),
                ("segment.bytes", "52428800".into()),
            ],
        ));
    }
    for s in &subs {
        let n = s
            .source_topics
            .iter()
            .filter_map(|t| counts.get(t).or(internal.get(t)).copied())
            .max()
            .unwrap_or(1);
        for store in &s.stores {
            let Some(def) = topology.store_def(store) else {
                continue;
            };
            if !def.logging {
                continue;
            }
            let full = Topology::changelog_topic(app, store);
            counts.insert(full.clone(), n);
            let cfg = match def.kind {
                StoreKind::KeyValue => vec![("cleanup.policy", "compact".to_string())],
                StoreKind::Window { retention_ms, .. } | StoreKind::Session { retention_ms } => {
                    vec![
                        ("cleanup.policy", "compact,delete".to_string()),
                        // Kafka adds windowstore.changelog.additional.retention.ms (1 day).
                        ("retention.ms", (retention_ms + 86_400_000).to_string()),
                    ]
                }
            };
            to_create.push((full, n, cfg));
        }
    }
    for (t, n, _) in &to_create {
        if let Some(&have) = existing.get(t)
            && have != *n
        {
            return Err(StreamsError::Topology(format!(
                "Existing internal topic {t} has invalid partitions: expected: {n}; actual: {have}. Use 'kafka-streams-application-reset' to reset."
            )));
        }
    }
    let new: Vec<_> = to_create
        .iter()
        .filter(|(t, _, _)| !existing.contains_key(t))
        .collect();
    if !new.is_empty() {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &config.bootstrap_servers);
        for (k, v) in config.overrides("admin") {
            cc.set(k, v);
        }
        let admin: AdminClient<DefaultClientContext> = cc.create()?;
        let topics: Vec<NewTopic<'_>> = new
            .iter()
            .map(|(t, n, cfg)| {
                let mut nt =
                    NewTopic::new(t, *n, TopicReplication::Fixed(config.replication_factor));
                for (k, v) in cfg {
                    nt = nt.set(k, v);
                }
                nt
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let res = futures_executor::block_on(admin.create_topics(topics.iter(), &opts))?;
        for r in res {
            match r {
                Ok(t) => tracing::info!(topic = %t, "created internal topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => {
                    return Err(StreamsError::Kafka(format!(
                        "creating internal topic {t}: {e}"
                    )));
                }
            }
        }
    }
    Ok(counts)
}
