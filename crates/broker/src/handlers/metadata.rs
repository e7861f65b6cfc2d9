//! Metadata: brokers, controller and topic/partition leadership, with auto-creation of topics.

use super::RequestContext;
use crate::broker::Broker;
use crate::error::ErrorCode;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use strom_meta::{TopicMeta, validate_topic_name};
use uuid::Uuid;

/// What every topic allows when no authorizer is configured (READ..ALTER_CONFIGS bits).
pub const TOPIC_ALL_OPERATIONS: i32 = 3576;
/// The same for the cluster resource.
pub const CLUSTER_ALL_OPERATIONS: i32 = 32672;
/// "Not requested", Kafka's sentinel.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: MetadataRequest,
) -> MetadataResponse {
    let image_before = broker.metadata.image();
    let mut topics = Vec::new();
    // v0 sends an empty list for "all topics"; v1+ sends null for that and [] for none.
    let all = req.topics.is_none()
        || (ctx.version == 0 && req.topics.as_ref().is_some_and(|t| t.is_empty()));
    let allow_auto_create = req.allow_auto_topic_creation || ctx.version < 4;
    if all {
        for t in image_before.topics.values() {
            topics.push(describe_topic(
                &image_before,
                t,
                req.include_topic_authorized_operations,
            ));
        }
    } else {
        for wanted in req.topics.unwrap_or_default() {
            let name = wanted.name.as_ref().map(|n| n.0.to_string());
            let found = match &name {
                Some(n) => broker.metadata.image().topic(n).cloned(),
                None => broker
                    .metadata
                    .image()
                    .topic_by_id(&wanted.topic_id)
                    .cloned(),
            };
            let entry = match (found, name) {
                (Some(t), _) => describe_topic(
                    &broker.metadata.image(),
                    &t,
                    req.include_topic_authorized_operations,
                ),
                (None, None) => error_topic(None, wanted.topic_id, ErrorCode::UnknownTopicId),
                (None, Some(n)) => {
                    if validate_topic_name(&n).is_err() {
                        error_topic(Some(n), Uuid::nil(), ErrorCode::InvalidTopicException)
                    } else if allow_auto_create && broker.config.auto_create_topics_enable {
                        match broker.create_topic(&n, broker.config.num_partitions, BTreeMap::new())
                        {
                            Ok(t) => {
                                tracing::info!(topic = %n, partitions = t.partitions.len(), "auto-created topic");
                                describe_topic(
                                    &broker.metadata.image(),
                                    &t,
                                    req.include_topic_authorized_operations,
                                )
                            }
                            // Created by a concurrent request in between: describe it.
                            Err(strom_meta::MetaError::TopicExists(_)) => {
                                let image = broker.metadata.image();
                                match image.topic(&n) {
                                    Some(t) => describe_topic(
                                        &image,
                                        t,
                                        req.include_topic_authorized_operations,
                                    ),
                                    None => error_topic(
                                        Some(n),
                                        Uuid::nil(),
                                        ErrorCode::LeaderNotAvailable,
                                    ),
                                }
                            }
                            Err(strom_meta::MetaError::Refused(msg)) => {
                                // Fewer live brokers than default.replication.factor.
                                tracing::warn!(topic = %n, %msg, "auto-creating topic failed");
                                error_topic(
                                    Some(n),
                                    Uuid::nil(),
                                    ErrorCode::InvalidReplicationFactor,
                                )
                            }
                            Err(e) => {
                                tracing::warn!(topic = %n, error = %e, "auto-creating topic failed");
                                error_topic(Some(n), Uuid::nil(), ErrorCode::UnknownServerError)
                            }
                        }
                    } else {
                        error_topic(Some(n), Uuid::nil(), ErrorCode::UnknownTopicOrPartition)
                    }
                }
            };
            topics.push(entry);
        }
    }

    let mut resp = MetadataResponse::default()
        .with_brokers(brokers(broker, ctx))
        .with_cluster_id(Some(StrBytes::from_string(broker.metadata.cluster_id())))
        // As Kafka's KRaft brokers do, clients are not sent to the active controller itself: any
        // node takes admin requests and forwards the change to the Raft leader, so this node
        // (reachable, as it answered) is named; a client keeps working while a new controller is
        // elected. DescribeCluster and DescribeQuorum name the Raft leader.
        .with_controller_id(BrokerId(broker.node_id()))
        .with_topics(topics);
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        CLUSTER_ALL_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    resp
}

/// The active controller (the Raft leader, which may be a controller-only node that clients
/// cannot reach); this node while no leader is known.
pub fn controller_id(broker: &Broker) -> i32 {
    broker
        .metadata
        .controller_id()
        .unwrap_or_else(|| broker.node_id())
}

/// A broker's endpoint on the listener the request came in on (else its first listener).
pub fn endpoint<'a>(
    b: &'a strom_meta::BrokerMeta,
    listener: &str,
) -> Option<&'a strom_meta::BrokerEndpoint> {
    b.listeners
        .iter()
        .find(|l| l.name == listener)
        .or_else(|| b.listeners.first())
}

/// The live brokers as clients should reach them on the listener the request came in on. Before
/// this node has registered (a cluster still forming) it lists itself.
fn brokers(broker: &Broker, ctx: &RequestContext<'_>) -> Vec<MetadataResponseBroker> {
    let image = broker.metadata.image();
    let mut out: Vec<MetadataResponseBroker> = image
        .live_brokers()
        .filter_map(|b| {
            let e = endpoint(b, &ctx.conn.listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.node_id))
                    .with_host(StrBytes::from_string(e.host.clone()))
                    .with_port(e.port as i32)
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect();
    if !image.is_live(broker.node_id())
        && let Some(l) = broker.config.advertised_for(&ctx.conn.listener)
    {
        out.push(
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(broker.node_id()))
                .with_host(StrBytes::from_string(l.host.clone()))
                .with_port(l.port as i32)
                .with_rack(broker.config.broker_rack.clone().map(StrBytes::from_string)),
        );
    }
    out
}

fn describe_topic(
    image: &strom_meta::MetadataImage,
    t: &TopicMeta,
    include_ops: bool,
) -> MetadataResponseTopic {
    // On a single node that has not registered yet (no brokers in the image) every replica is
    // this node and online.
    let offline = |r: &i32| !image.brokers.is_empty() && !image.is_live(*r);
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let code = if p.leader < 0 {
                ErrorCode::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(code)
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
                .with_offline_replicas(
                    p.replicas
                        .iter()
                        .filter(|r| offline(r))
                        .map(|r| BrokerId(*r))
                        .collect(),
                )
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(t.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(if include_ops {
            TOPIC_ALL_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        })
}

fn error_topic(name: Option<String>, id: Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
