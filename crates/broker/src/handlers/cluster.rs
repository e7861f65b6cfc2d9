//! DescribeCluster: the cluster id, the controller and the brokers.

use super::RequestContext;
use super::metadata::CLUSTER_ALL_OPERATIONS;
use crate::broker::Broker;
use crate::error::ErrorCode;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::{
    DescribeClusterBroker, DescribeClusterResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

/// Kafka's endpoint types (v1+): brokers (1) or controllers (2).
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn describe_cluster(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.metadata.cluster_id()))
        .with_controller_id(BrokerId(super::metadata::controller_id(broker)))
        .with_endpoint_type(req.endpoint_type);
    if ctx.version >= 1 && req.endpoint_type != ENDPOINT_TYPE_BROKERS {
        resp.error_code = ErrorCode::UnsupportedEndpointType.code();
        resp.error_message = Some(StrBytes::from_static_str(
            "The endpoint type is not supported by this broker listener",
        ));
        return resp;
    }
    // Every registered broker; v2 flags fenced ones (IsFenced), older versions list live ones.
    let image = broker.metadata.image();
    for b in image.brokers.values() {
        if b.fenced && ctx.version < 2 {
            continue;
        }
        if let Some(e) = super::metadata::endpoint(b, &ctx.conn.listener) {
            let mut entry = DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(e.host.clone()))
                .with_port(e.port as i32)
                .with_rack(b.rack.clone().map(StrBytes::from_string));
            entry.is_fenced = b.fenced;
            resp.brokers.push(entry);
        }
    }
    if resp.brokers.is_empty()
        && let Some(l) = broker.config.advertised_for(&ctx.conn.listener)
    {
        resp.brokers.push(
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(broker.node_id()))
                .with_host(StrBytes::from_string(l.host.clone()))
                .with_port(l.port as i32)
                .with_rack(None),
        );
    }
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        CLUSTER_ALL_OPERATIONS
    } else {
        i32::MIN
    };
    resp
}

/// Kafka's name for the metadata log, which DescribeQuorum reports on.
const METADATA_TOPIC: &str = "__cluster_metadata";
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
const ELECTION_NOT_NEEDED: i16 = 84;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// DescribeQuorum (kafka-metadata-quorum.sh, `strom cluster describe`): the Raft leader, its
/// term, and each voter's log end offset. Offsets and lags are known on the active controller;
/// another node reports -1 for the voters it cannot see.
pub fn describe_quorum(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    _req: kafka_protocol::messages::DescribeQuorumRequest,
) -> kafka_protocol::messages::DescribeQuorumResponse {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::describe_quorum_response::{
        DescribeQuorumResponse, PartitionData, ReplicaState, TopicData,
    };
    let (leader, epoch, end, voters) = match broker.metadata.quorum_status() {
        Some(st) => {
            let end = st.last_log_index.map(|i| i as i64 + 1).unwrap_or(0);
            let voters = st
                .voters
                .iter()
                .map(|v| (v.node_id, v.lag.map(|l| end - l as i64).unwrap_or(-1)))
                .collect::<Vec<_>>();
            (st.leader.unwrap_or(-1), st.term as i32, end, voters)
        }
        // A single node is its own quorum; its "log" is the image's change count.
        None => {
            let end = broker.metadata.image().epoch as i64;
            (broker.node_id(), 1, end, vec![(broker.node_id(), end)])
        }
    };
    let current_voters = voters
        .into_iter()
        .map(|(id, leo)| {
            ReplicaState::default()
                .with_replica_id(BrokerId(id))
                .with_log_end_offset(leo)
                .with_last_fetch_timestamp(-1)
                .with_last_caught_up_timestamp(-1)
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![
                PartitionData::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch)
                    .with_high_watermark(end)
                    .with_current_voters(current_voters),
            ]),
    ])
}

/// ElectLeaders (kafka-leader-election.sh): preferred-leader election through the controller.
/// Unclean election on request is not supported (answered with INVALID_REQUEST per partition).
pub fn elect_leaders(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: kafka_protocol::messages::ElectLeadersRequest,
) -> kafka_protocol::messages::ElectLeadersResponse {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::elect_leaders_response::{
        ElectLeadersResponse, PartitionResult, ReplicaElectionResult,
    };
    let image = broker.metadata.image();
    // null = every partition.
    let wanted: Vec<(String, i32)> = match &req.topic_partitions {
        Some(tps) => tps
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
        None => image
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition)))
            .collect(),
    };
    let elected = if req.election_type == 0 {
        match broker
            .metadata
            .submit(strom_meta::MetadataCommand::ElectPreferred {
                partitions: Some(wanted.clone()),
            }) {
            Ok(strom_meta::CommandResult::Elected(e)) => Ok(e),
            Ok(_) => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    } else {
        Err("unclean election on request is not supported; set unclean.leader.election.enable on the topic".to_string())
    };
    let mut by_topic: std::collections::BTreeMap<String, Vec<PartitionResult>> = Default::default();
    for (topic, partition) in wanted {
        let p = image
            .topic(&topic)
            .and_then(|t| t.partitions.get(partition as usize));
        let (code, msg) = match (&elected, p) {
            (_, None) => (
                UNKNOWN_TOPIC_OR_PARTITION,
                Some("The partition does not exist.".to_string()),
            ),
            (Err(e), _) => (INVALID_REQUEST, Some(e.clone())),
            (Ok(done), Some(p)) => {
                if done.iter().any(|(t, i)| *t == topic && *i == partition) {
                    (0, None)
                } else if p.replicas.first() == Some(&p.leader) {
                    (
                        ELECTION_NOT_NEEDED,
                        Some("Leader election not needed for topic partition.".to_string()),
                    )
                } else {
                    (
                        PREFERRED_LEADER_NOT_AVAILABLE,
                        Some(format!(
                            "Failed to elect leader for partition {topic}-{partition} under strategy PreferredReplicaPartitionLeaderElectionStrategy"
                        )),
                    )
                }
            }
        };
        by_topic.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(code)
                .with_error_message(msg.map(StrBytes::from_string)),
        );
    }
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(t, r)| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(t)))
                    .with_partition_result(r)
            })
            .collect(),
    )
}

const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
const INVALID_REPLICATION_FACTOR: i16 = 38;

/// AlterPartitionReassignments (kafka-reassign-partitions.sh): start or cancel moves; the active
/// controller completes a move once every added replica is in the ISR.
pub fn alter_partition_reassignments(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: kafka_protocol::messages::AlterPartitionReassignmentsRequest,
) -> kafka_protocol::messages::AlterPartitionReassignmentsResponse {
    use kafka_protocol::messages::alter_partition_reassignments_response::{
        AlterPartitionReassignmentsResponse, ReassignablePartitionResponse,
        ReassignableTopicResponse,
    };
    use strom_meta::{CommandError, MetaError, MetadataCommand};
    // v0 has no flag: changing the replication factor is allowed.
    let allow_rf_change = ctx.version == 0 || req.allow_replication_factor_change;
    let mut responses = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut partitions = Vec::new();
        for p in t.partitions {
            let target: Option<Vec<i32>> =
                p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let current = broker
                .metadata
                .image()
                .topic(&name)
                .and_then(|t| t.partitions.get(p.partition_index as usize).cloned());
            let original_rf = current.as_ref().map(|c| {
                c.replicas
                    .iter()
                    .filter(|r| !c.adding_replicas.contains(r))
                    .count()
            });
            let result = match (&target, original_rf) {
                (Some(t), Some(rf)) if !allow_rf_change && t.len() != rf => Err((
                    INVALID_REPLICATION_FACTOR,
                    "The replication factor is changed but allowReplicationFactorChange is false"
                        .to_string(),
                )),
                _ => broker
                    .metadata
                    .submit(MetadataCommand::ReassignPartition {
                        topic: name.clone(),
                        partition: p.partition_index,
                        target,
                    })
                    .map(|_| ())
                    .map_err(|e| match e {
                        MetaError::UnknownTopic(m) => (UNKNOWN_TOPIC_OR_PARTITION, m),
                        MetaError::Rejected(CommandError::UnknownPartition(..)) => {
                            (UNKNOWN_TOPIC_OR_PARTITION, e.to_string())
                        }
                        MetaError::Rejected(CommandError::InvalidReplicaAssignment(m)) => {
                            (INVALID_REPLICA_ASSIGNMENT, m)
                        }
                        MetaError::Rejected(CommandError::NoReassignmentInProgress(..)) => {
                            (NO_REASSIGNMENT_IN_PROGRESS, e.to_string())
                        }
                        other => (ErrorCode::UnknownServerError.code(), other.to_string()),
                    }),
            };
            let (code, msg) = match result {
                Ok(()) => (0, None),
                Err((c, m)) => (c, Some(StrBytes::from_string(m))),
            };
            partitions.push(
                ReassignablePartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
                    .with_error_message(msg),
            );
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    let mut resp = AlterPartitionReassignmentsResponse::default().with_responses(responses);
    resp.allow_replication_factor_change = allow_rf_change;
    resp
}

/// ListPartitionReassignments: the ongoing moves, from the local image.
pub fn list_partition_reassignments(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: kafka_protocol::messages::ListPartitionReassignmentsRequest,
) -> kafka_protocol::messages::ListPartitionReassignmentsResponse {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::list_partition_reassignments_response::{
        ListPartitionReassignmentsResponse, OngoingPartitionReassignment, OngoingTopicReassignment,
    };
    let image = broker.metadata.image();
    let wanted = |topic: &str, p: i32| match &req.topics {
        None => true,
        Some(ts) => ts
            .iter()
            .any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&p)),
    };
    let ids = |v: &[i32]| v.iter().map(|r| BrokerId(*r)).collect::<Vec<_>>();
    let topics = image
        .topics
        .values()
        .filter_map(|t| {
            let partitions: Vec<_> = t
                .partitions
                .iter()
                .filter(|p| !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty())
                .filter(|p| wanted(&t.name, p.partition))
                .map(|p| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(p.partition)
                        .with_replicas(ids(&p.replicas))
                        .with_adding_replicas(ids(&p.adding_replicas))
                        .with_removing_replicas(ids(&p.removing_replicas))
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
