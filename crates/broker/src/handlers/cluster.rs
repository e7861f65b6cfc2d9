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
    let mut by_topic: std::collections::BTreeMap<String, Vec<PartitionResult>> =
        Default::default();
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
