//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions.

use super::RequestContext;
use crate::broker::Broker;
use crate::error::ErrorCode;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsRequest;
use kafka_protocol::messages::create_partitions_response::{
    CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use kafka_protocol::messages::create_topics_request::CreateTopicsRequest;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::{
    DeletableTopicResult, DeleteTopicsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use strom_meta::{MetaError, validate_topic_name};
use uuid::Uuid;

/// Brokers a replica may be placed on: the registered, unfenced ones (on a single node that has
/// not registered yet, this node).
fn live_brokers(broker: &Broker) -> Vec<i32> {
    let live: Vec<i32> = broker
        .metadata
        .image()
        .live_brokers()
        .map(|b| b.node_id)
        .collect();
    if live.is_empty() && !broker.metadata.is_cluster() {
        vec![broker.node_id()]
    } else {
        live
    }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

pub fn create_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let live = live_brokers(broker);
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let fail = |mut r: CreatableTopicResult, code: ErrorCode, msg: String| {
            r.error_code = code.code();
            r.error_message = Some(s(msg));
            r
        };
        if duplicates.contains(&name) {
            results.push(fail(
                r,
                ErrorCode::InvalidRequest,
                format!("Create topics request from client contains duplicate topic name: {name}"),
            ));
            continue;
        }
        if let Err(e) = validate_topic_name(&name) {
            results.push(fail(r, ErrorCode::InvalidTopicException, e.to_string()));
            continue;
        }
        if broker.metadata.image().topic(&name).is_some() {
            results.push(fail(
                r,
                ErrorCode::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
            continue;
        }
        let (partitions, replication, explicit) = if !t.assignments.is_empty() {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                results.push(fail(r, ErrorCode::InvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into()));
                continue;
            }
            let mut bad = None;
            for (i, a) in t.assignments.iter().enumerate() {
                if a.partition_index != i as i32 {
                    bad = Some("Partitions should be numbered consecutively from 0".to_string());
                } else if a.broker_ids.is_empty() {
                    bad = Some(format!("Replica assignment for partition {i} is empty"));
                } else if let Some(b) = a.broker_ids.iter().find(|b| !live.contains(&b.0)) {
                    bad = Some(format!(
                        "Replica assignment for partition {i} names broker {}, which is not registered",
                        b.0
                    ));
                }
            }
            if let Some(msg) = bad {
                results.push(fail(r, ErrorCode::InvalidReplicaAssignment, msg));
                continue;
            }
            (
                t.assignments.len() as i32,
                t.assignments[0].broker_ids.len() as i16,
                Some(
                    t.assignments
                        .iter()
                        .map(|a| a.broker_ids.iter().map(|b| b.0).collect::<Vec<i32>>())
                        .collect::<Vec<_>>(),
                ),
            )
        } else {
            let partitions = if t.num_partitions == -1 {
                broker.config.num_partitions
            } else {
                t.num_partitions
            };
            let replication = if t.replication_factor == -1 {
                broker.config.default_replication_factor
            } else {
                t.replication_factor
            };
            if partitions <= 0 {
                results.push(fail(
                    r,
                    ErrorCode::InvalidPartitions,
                    "Number of partitions must be larger than 0.".into(),
                ));
                continue;
            }
            if replication <= 0 {
                results.push(fail(
                    r,
                    ErrorCode::InvalidReplicationFactor,
                    "Replication factor must be larger than 0.".into(),
                ));
                continue;
            }
            if replication as usize > live.len() {
                results.push(fail(r, ErrorCode::InvalidReplicationFactor, format!("Unable to replicate the partition {replication} time(s): The target replication factor of {replication} cannot be reached because only {} broker(s) are registered.", live.len())));
                continue;
            }
            (partitions, replication, None)
        };
        let mut configs = BTreeMap::new();
        let mut config_error = None;
        for c in &t.configs {
            let value = c.value.as_ref().map(|v| v.to_string());
            if let Err(msg) = broker.topic_configs.validate(&c.name, value.as_deref()) {
                config_error = Some(msg);
                break;
            }
            if let Some(v) = value {
                configs.insert(c.name.to_string(), v);
            }
        }
        if let Some(msg) = config_error {
            results.push(fail(r, ErrorCode::InvalidConfig, msg));
            continue;
        }
        // v5+ answers with the topic's resulting partitions, replication factor and configs.
        let detailed = ctx.version >= 5;
        let described: Vec<CreatableTopicConfigs> = broker
            .topic_configs
            .describe(&configs)
            .into_iter()
            .map(|e| {
                CreatableTopicConfigs::default()
                    .with_name(s(e.name))
                    .with_value(Some(s(e.value)))
                    .with_config_source(e.source)
            })
            .collect();
        if req.validate_only {
            if detailed {
                r.num_partitions = partitions;
                r.replication_factor = replication;
                r.configs = Some(described);
            }
            results.push(r);
            continue;
        }
        let placement = match explicit {
            Some(p) => Ok(p),
            None => broker.place(0, partitions, replication),
        };
        let created = match placement {
            Ok(p) => broker.create_topic_placed(&name, p, configs),
            Err(e) => Err(e),
        };
        match created {
            Ok(topic) => {
                tracing::info!(topic = %name, partitions, "created topic");
                if ctx.version >= 7 {
                    r.topic_id = topic.id;
                }
                if detailed {
                    r.num_partitions = partitions;
                    r.replication_factor = replication;
                    r.configs = Some(described);
                }
            }
            Err(MetaError::TopicExists(_)) => {
                r = fail(
                    r,
                    ErrorCode::TopicAlreadyExists,
                    format!("Topic '{name}' already exists."),
                );
            }
            Err(MetaError::Refused(msg)) => {
                r = fail(r, ErrorCode::InvalidReplicationFactor, msg);
            }
            Err(e) => {
                tracing::error!(topic = %name, error = %e, "creating topic failed");
                r = fail(r, ErrorCode::UnknownServerError, e.to_string());
            }
        }
        results.push(r);
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub fn delete_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v0-5 name topics in topic_names; v6 in topics, by name or by id.
    let wanted: Vec<(Option<String>, Uuid)> = if ctx.version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let image = broker.metadata.image();
        let topic = match &name {
            Some(n) => image.topic(n),
            None => image.topic_by_id(&id),
        };
        let mut r = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(s(n))))
            .with_topic_id(id);
        match topic {
            None => {
                r.error_code = if name.is_some() {
                    ErrorCode::UnknownTopicOrPartition.code()
                } else {
                    ErrorCode::UnknownTopicId.code()
                };
                r.error_message = Some(s("This server does not host this topic ID or name."));
            }
            Some(t) => {
                let t_name = t.name.clone();
                r.name = Some(TopicName(s(t_name.clone())));
                r.topic_id = t.id;
                if let Err(e) = broker.delete_topic(&t_name) {
                    r.error_code = ErrorCode::UnknownTopicOrPartition.code();
                    r.error_message = Some(s(e.to_string()));
                } else {
                    tracing::info!(topic = %t_name, "deleted topic");
                }
            }
        }
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub fn create_partitions(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let live = live_brokers(broker);
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let mut fail = |code: ErrorCode, msg: String| {
                r.error_code = code.code();
                r.error_message = Some(s(msg));
            };
            let image = broker.metadata.image();
            let Some(topic) = image.topic(&name) else {
                fail(ErrorCode::UnknownTopicOrPartition, format!("The topic '{name}' does not exist."));
                return r;
            };
            let current = topic.partitions.len() as i32;
            if t.count < current {
                fail(ErrorCode::InvalidPartitions, format!("Topic currently has {current} partitions, which is higher than the requested {}.", t.count));
                return r;
            }
            if t.count == current {
                fail(ErrorCode::InvalidPartitions, format!("Topic already has {current} partitions."));
                return r;
            }
            if let Some(assignments) = &t.assignments {
                if assignments.len() as i32 != t.count - current {
                    fail(ErrorCode::InvalidReplicaAssignment, format!("Increasing the number of partitions by {} but {} assignments provided.", t.count - current, assignments.len()));
                    return r;
                }
                if assignments.iter().any(|a| a.broker_ids.is_empty() || a.broker_ids.iter().any(|b| !live.contains(&b.0))) {
                    fail(ErrorCode::InvalidReplicaAssignment, "Replica assignment names an unknown broker or is empty".into());
                    return r;
                }
            }
            if req.validate_only {
                return r;
            }
            let added = match &t.assignments {
                Some(a) => broker.add_partitions_placed(
                    &name,
                    a.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect(),
                ),
                None => broker.add_partitions(&name, t.count - current),
            };
            match added {
                Ok(_) => tracing::info!(topic = %name, partitions = t.count, "added partitions"),
                Err(MetaError::Refused(msg)) => fail(ErrorCode::InvalidReplicationFactor, msg),
                Err(e) => fail(ErrorCode::UnknownServerError, e.to_string()),
            }
            r
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
