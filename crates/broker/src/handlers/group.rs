//! Consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete (the
//! consumer protocol's own APIs are in `consumer_group`).
//!
//! Each handler turns the wire message into a call on `group::GroupCoordinator` and builds the
//! answer for the negotiated version, leaving fields the version does not have at their
//! defaults (the encoder refuses them otherwise).

use super::{RequestContext, now_ms};
use crate::broker::Broker;
use crate::group::BrokerOffsetsLog;
use crate::group::coordinator::{
    CommitOffset, CommitParams, FetchedOffset, JoinParams, Reply, SyncParams,
};
use crate::group::errors::*;
use crate::group::group::{JoinResult, SyncResult};
use crate::group::member::NEW_MEMBER_JOIN_TIMEOUT_MS;
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_groups_response::{
    DeletableGroupResult, DeleteGroupsResponse,
};
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::{
    DescribeGroupsResponse, DescribedGroup, DescribedGroupMember,
};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_request::JoinGroupRequest;
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use kafka_protocol::messages::leave_group_request::LeaveGroupRequest;
use kafka_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_groups_response::{ListGroupsResponse, ListedGroup};
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequest;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_request::OffsetDeleteRequest;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponse, OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition,
    OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequest;
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{BrokerId, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use std::time::Duration;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// DescribeGroups `authorized_operations` without ACLs: READ, DELETE and DESCRIBE.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn opt(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(|s| s.to_string())
}

fn client_id(ctx: &RequestContext<'_>) -> String {
    ctx.header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default()
}

/// Kafka reports a member's host as `InetAddress.toString`: "/127.0.0.1".
fn client_host(ctx: &RequestContext<'_>) -> String {
    format!("/{}", ctx.conn.peer.ip())
}

fn offsets_log(broker: &Broker) -> BrokerOffsetsLog<'_> {
    BrokerOffsetsLog {
        broker,
        config: &broker.groups.config,
    }
}

// ---------------------------------------------------------------- FindCoordinator

pub fn find_coordinator(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let v = ctx.version;
    let keys: Vec<String> = if v >= 4 {
        req.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![req.key.to_string()]
    };
    let key_type = if v >= 1 { req.key_type } else { KEY_TYPE_GROUP };
    let listener = broker.config.advertised_for(&ctx.conn.listener);
    let answer = |key: &str| -> (i16, i32, String, i32, Option<String>) {
        match (key_type, listener) {
            // In a cluster the coordinator is the leader of the key's internal partition.
            (KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION, Some(_)) if broker.config.is_cluster() => {
                cluster_coordinator(broker, key_type, key, &ctx.conn.listener)
            }
            // A single node coordinates every group and every transactional id.
            (KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION, Some(l)) => {
                if key_type == KEY_TYPE_GROUP {
                    // Kafka creates __consumer_offsets when a client first looks for a coordinator.
                    offsets_log(broker).ensure_topic();
                    broker.groups.ensure_started(broker);
                }
                (
                    NONE,
                    broker.node_id(),
                    l.host.clone(),
                    i32::from(l.port),
                    None,
                )
            }
            (KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION, None) => (
                COORDINATOR_NOT_AVAILABLE,
                -1,
                String::new(),
                -1,
                Some("no listener to advertise".into()),
            ),
            (other, _) => (
                INVALID_REQUEST,
                -1,
                String::new(),
                -1,
                Some(format!("unknown coordinator key type {other}")),
            ),
        }
    };
    let mut resp = FindCoordinatorResponse::default();
    if v >= 4 {
        resp.coordinators = keys
            .iter()
            .map(|k| {
                let (error, node, host, port, message) = answer(k);
                Coordinator::default()
                    .with_key(s(k.clone()))
                    .with_node_id(BrokerId(node))
                    .with_host(s(host))
                    .with_port(port)
                    .with_error_code(error)
                    .with_error_message(message.map(s))
            })
            .collect();
    } else {
        let (error, node, host, port, message) = answer(keys.first().map_or("", |k| k.as_str()));
        resp.error_code = error;
        resp.node_id = BrokerId(node);
        resp.host = s(host);
        resp.port = port;
        resp.error_message = if v >= 1 { message.map(s) } else { None };
    }
    resp
}

/// The coordinator of `key` in a cluster: the leader of partition
/// `abs(hashCode(key)) % partitions` of `__consumer_offsets` (groups) or `__transaction_state`
/// (transactional ids), as Kafka places them; COORDINATOR_NOT_AVAILABLE while it has no leader.
fn cluster_coordinator(
    broker: &Arc<Broker>,
    key_type: i8,
    key: &str,
    listener: &str,
) -> (i16, i32, String, i32, Option<String>) {
    let (topic, partitions) = if key_type == KEY_TYPE_GROUP {
        (
            crate::group::persistence::OFFSETS_TOPIC,
            offsets_log(broker).ensure_topic(),
        )
    } else {
        (
            crate::txn::coordinator::TRANSACTION_STATE_TOPIC,
            broker.txn.ensure_topic(broker),
        )
    };
    let partition = crate::group::persistence::partition_for(key, partitions);
    let image = broker.metadata.image();
    let hint = super::leader_hint::leader_hint(&image, topic, partition, listener);
    match hint {
        Some(h) if h.leader_id >= 0 => match h.endpoint {
            Some((host, port, _)) => {
                if h.leader_id == broker.node_id() && key_type == KEY_TYPE_GROUP {
                    broker.groups.ensure_started(broker);
                }
                (NONE, h.leader_id, host, i32::from(port), None)
            }
            None => (
                COORDINATOR_NOT_AVAILABLE,
                -1,
                String::new(),
                -1,
                Some(format!(
                    "the leader of {topic}-{partition} has no {listener} listener"
                )),
            ),
        },
        _ => (
            COORDINATOR_NOT_AVAILABLE,
            -1,
            String::new(),
            -1,
            Some(format!("{topic}-{partition} has no leader yet")),
        ),
    }
}

/// How long a coordinator write may wait for the in-sync replicas (Kafka's
/// offsets.commit.timeout.ms default).
const OFFSETS_COMMIT_TIMEOUT: Duration = Duration::from_millis(5_000);

/// Waits until the high watermark of the group's `__consumer_offsets` partition passes what
/// this node wrote, so an answered commit survives the loss of this node. NONE at once on a
/// single node; NOT_COORDINATOR if the leadership moved meanwhile; COORDINATOR_NOT_AVAILABLE
/// at the timeout (as Kafka maps a coordinator append's REQUEST_TIMED_OUT).
async fn await_replicated(broker: &Arc<Broker>, group_id: &str) -> i16 {
    if !broker.config.is_cluster() {
        return NONE;
    }
    let partitions = offsets_log(broker).ensure_topic();
    let index = crate::group::persistence::partition_for(group_id, partitions);
    match crate::replica::await_replicated(
        broker,
        crate::group::persistence::OFFSETS_TOPIC,
        index,
        OFFSETS_COMMIT_TIMEOUT,
    )
    .await
    {
        Ok(()) => NONE,
        Err(crate::replica::NotReplicated::NotLeader) => NOT_COORDINATOR,
        Err(crate::replica::NotReplicated::TimedOut) => COORDINATOR_NOT_AVAILABLE,
    }
}

/// NOT_COORDINATOR when, in a cluster, this node does not lead the group's partition of
/// `__consumer_offsets`: the client looks the coordinator up again. A single node coordinates
/// everything.
pub(super) fn not_coordinator_for(broker: &Broker, group_id: &str) -> bool {
    if !broker.config.is_cluster() {
        return false;
    }
    let partitions = offsets_log(broker).ensure_topic();
    let partition = crate::group::persistence::partition_for(group_id, partitions);
    !broker.replicas.coordinates_groups_of(partition)
}

// ---------------------------------------------------------------- JoinGroup

pub async fn join_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    broker.groups.ensure_started(broker);
    let v = ctx.version;
    let group_instance_id = if v >= 5 {
        opt(&req.group_instance_id)
    } else {
        None
    };
    let params = JoinParams {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        require_known_member_id: v >= 4 && group_instance_id.is_none(),
        group_instance_id,
        supports_skip_assignment: v >= 9,
        client_id: client_id(ctx),
        client_host: client_host(ctx),
        // v0 has no rebalance timeout: the session timeout was both.
        rebalance_timeout_ms: if v >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        session_timeout_ms: req.session_timeout_ms,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
    };
    let member_id = params.member_id.clone();
    let limit = i64::from(params.rebalance_timeout_ms.max(0)).max(NEW_MEMBER_JOIN_TIMEOUT_MS);
    let not_coordinator = not_coordinator_for(broker, &params.group_id);
    let reply = if not_coordinator {
        Reply::Now(JoinResult::error(&member_id, NOT_COORDINATOR))
    } else {
        broker
            .groups
            .join_group(params, now_ms(), &offsets_log(broker))
    };
    let result = match reply {
        Reply::Now(r) => r,
        Reply::Wait(rx) => {
            // The coordinator answers every parked join by its deadlines; this bound only keeps
            // a connection from waiting forever should that ever fail.
            match tokio::time::timeout(Duration::from_millis(limit as u64 + 30_000), rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => JoinResult::error(&member_id, COORDINATOR_NOT_AVAILABLE),
                Err(_) => {
                    tracing::warn!(member = %member_id, "JoinGroup was never answered; telling the client to rejoin");
                    JoinResult::error(&member_id, REBALANCE_IN_PROGRESS)
                }
            }
        }
    };
    let mut resp = JoinGroupResponse::default()
        .with_error_code(result.error)
        .with_generation_id(result.generation_id)
        .with_leader(s(result.leader_id))
        .with_member_id(s(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(if v >= 5 {
                            m.group_instance_id.map(s)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata)
                })
                .collect(),
        );
    if v >= 7 {
        resp.protocol_type = result.protocol_type.map(s);
        resp.protocol_name = result.protocol_name.map(s);
    } else {
        // Not nullable before v7.
        resp.protocol_name = Some(s(result.protocol_name.unwrap_or_default()));
    }
    if v >= 9 {
        resp.skip_assignment = result.skip_assignment;
    }
    resp
}

// ---------------------------------------------------------------- SyncGroup

pub async fn sync_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    let v = ctx.version;
    let params = SyncParams {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: if v >= 3 {
            opt(&req.group_instance_id)
        } else {
            None
        },
        protocol_type: if v >= 5 {
            opt(&req.protocol_type)
        } else {
            None
        },
        protocol_name: if v >= 5 {
            opt(&req.protocol_name)
        } else {
            None
        },
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let reply = if not_coordinator_for(broker, &params.group_id) {
        Reply::Now(SyncResult::error(NOT_COORDINATOR))
    } else {
        broker
            .groups
            .sync_group(params, now_ms(), &offsets_log(broker))
    };
    let result = match reply {
        Reply::Now(r) => r,
        Reply::Wait(rx) => {
            let limit = Duration::from_millis(NEW_MEMBER_JOIN_TIMEOUT_MS as u64 + 30_000);
            match tokio::time::timeout(limit, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => SyncResult::error(COORDINATOR_NOT_AVAILABLE),
                Err(_) => SyncResult::error(REBALANCE_IN_PROGRESS),
            }
        }
    };
    let mut resp = SyncGroupResponse::default()
        .with_error_code(result.error)
        .with_assignment(result.assignment);
    if v >= 5 {
        resp.protocol_type = result.protocol_type.map(s);
        resp.protocol_name = result.protocol_name.map(s);
    }
    resp
}

// ---------------------------------------------------------------- Heartbeat, LeaveGroup

pub fn heartbeat(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    let instance = if ctx.version >= 3 {
        opt(&req.group_instance_id)
    } else {
        None
    };
    if not_coordinator_for(broker, req.group_id.0.as_str()) {
        return HeartbeatResponse::default().with_error_code(NOT_COORDINATOR);
    }
    let code = broker.groups.heartbeat(
        req.group_id.0.as_str(),
        req.member_id.as_str(),
        instance.as_deref(),
        req.generation_id,
        now_ms(),
    );
    HeartbeatResponse::default().with_error_code(code)
}

pub fn leave_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let v = ctx.version;
    let leaving: Vec<(String, Option<String>)> = if v >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), opt(&m.group_instance_id)))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let codes = if not_coordinator_for(broker, req.group_id.0.as_str()) {
        vec![NOT_COORDINATOR; leaving.len()]
    } else {
        broker.groups.leave_group(
            req.group_id.0.as_str(),
            &leaving,
            now_ms(),
            &offsets_log(broker),
        )
    };
    if v >= 3 {
        LeaveGroupResponse::default().with_members(
            leaving
                .into_iter()
                .zip(codes)
                .map(|((member_id, instance), code)| {
                    MemberResponse::default()
                        .with_member_id(s(member_id))
                        .with_group_instance_id(instance.map(s))
                        .with_error_code(code)
                })
                .collect(),
        )
    } else {
        LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(NONE))
    }
}

// ---------------------------------------------------------------- OffsetCommit, OffsetFetch

pub async fn offset_commit(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let v = ctx.version;
    let image = broker.metadata.image();
    // (topic index, partition index) of each offset passed to the coordinator.
    let mut slots = Vec::new();
    let mut offsets = Vec::new();
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::with_capacity(req.topics.len());
    for (ti, t) in req.topics.iter().enumerate() {
        let name = t.name.0.to_string();
        let partitions_known = image.topic(&name).map(|m| m.partitions.len() as i32);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            let exists =
                partitions_known.is_some_and(|n| p.partition_index >= 0 && p.partition_index < n);
            partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(if exists {
                        NONE
                    } else {
                        UNKNOWN_TOPIC_OR_PARTITION
                    }),
            );
            if exists {
                slots.push((ti, pi));
                offsets.push(CommitOffset {
                    topic: name.clone(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if v >= 6 {
                        Some(p.committed_leader_epoch)
                    } else {
                        None
                    },
                    metadata: opt(&p.committed_metadata),
                });
            }
        }
        topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    if !offsets.is_empty() {
        let params = CommitParams {
            group_id: req.group_id.0.to_string(),
            member_id: req.member_id.to_string(),
            group_instance_id: if v >= 7 {
                opt(&req.group_instance_id)
            } else {
                None
            },
            generation_id: req.generation_id_or_member_epoch,
            api_version: v,
            retention_time_ms: if (2..=4).contains(&v) {
                req.retention_time_ms
            } else {
                -1
            },
            offsets,
        };
        let group_id = params.group_id.clone();
        let outcome = if not_coordinator_for(broker, &group_id) {
            Err(NOT_COORDINATOR)
        } else {
            broker
                .groups
                .commit_offsets(params, now_ms(), &offsets_log(broker))
        };
        // In a cluster a commit is answered once the in-sync replicas have it (acks=all).
        let outcome = match outcome {
            Ok(codes) if codes.contains(&NONE) => match await_replicated(broker, &group_id).await {
                NONE => Ok(codes),
                code => Err(code),
            },
            other => other,
        };
        let codes = match outcome {
            Ok(codes) => codes,
            Err(code) => vec![code; slots.len()],
        };
        for ((ti, pi), code) in slots.into_iter().zip(codes) {
            topics[ti].partitions[pi].error_code = code;
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

pub fn offset_fetch(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let v = ctx.version;
    if v >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                if not_coordinator_for(broker, g.group_id.0.as_str()) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(NOT_COORDINATOR);
                }
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let fetched =
                    broker
                        .groups
                        .fetch_offsets(g.group_id.0.as_str(), topics, req.require_stable);
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(
                        fetched
                            .into_iter()
                            .map(|(name, ps)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(s(name)))
                                    .with_partitions(ps.into_iter().map(partition_v8).collect())
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    if not_coordinator_for(broker, req.group_id.0.as_str()) {
        // v0-1 have no top-level error: an empty answer makes the client look again.
        return OffsetFetchResponse::default().with_error_code(if v >= 2 {
            NOT_COORDINATOR
        } else {
            NONE
        });
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let fetched = broker.groups.fetch_offsets(
        req.group_id.0.as_str(),
        topics,
        v >= 7 && req.require_stable,
    );
    OffsetFetchResponse::default().with_topics(
        fetched
            .into_iter()
            .map(|(name, ps)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(s(name)))
                    .with_partitions(
                        ps.into_iter()
                            .map(|p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p.partition)
                                    .with_error_code(p.error_code)
                                    .with_committed_offset(p.offset)
                                    .with_committed_leader_epoch(if v >= 5 {
                                        p.leader_epoch
                                    } else {
                                        -1
                                    })
                                    .with_metadata(Some(s(p.metadata)))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn partition_v8(p: FetchedOffset) -> OffsetFetchResponsePartitions {
    OffsetFetchResponsePartitions::default()
        .with_partition_index(p.partition)
        .with_error_code(p.error_code)
        .with_committed_offset(p.offset)
        .with_committed_leader_epoch(p.leader_epoch)
        .with_metadata(Some(s(p.metadata)))
}

// ---------------------------------------------------------------- admin

pub fn list_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let v = ctx.version;
    let states: Vec<String> = if v >= 4 {
        req.states_filter
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if v >= 5 {
        req.types_filter
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    let groups = broker
        .groups
        .list_groups()
        .into_iter()
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .filter(|g| states.is_empty() || states.contains(&g.state_name.to_ascii_lowercase()))
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(s(g.group_id)))
                .with_protocol_type(s(g.protocol_type));
            if v >= 4 {
                l.group_state = s(g.state_name);
            }
            if v >= 5 {
                l.group_type = s(g.group_type);
            }
            l
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub fn describe_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let v = ctx.version;
    let with_ops = v >= 3 && req.include_authorized_operations;
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let mut d = DescribedGroup::default().with_group_id(id.clone());
            if with_ops {
                d.authorized_operations = GROUP_OPERATIONS;
            }
            match broker.groups.describe_group(id.0.as_str()) {
                None => {
                    d.group_state = s("Dead");
                    // KIP-1043: v6 says the group does not exist instead of describing it Dead.
                    if v >= 6 {
                        d.error_code = GROUP_ID_NOT_FOUND;
                        d.error_message = Some(s(format!("Group {} not found.", id.0)));
                    }
                }
                Some(g) => {
                    d.group_state = s(g.state.name());
                    d.protocol_type = s(g.protocol_type);
                    d.protocol_data = s(g.protocol_data);
                    d.members = g
                        .members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(s(m.member_id))
                                .with_group_instance_id(if v >= 4 {
                                    m.group_instance_id.map(s)
                                } else {
                                    None
                                })
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect();
                }
            }
            d
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn delete_groups(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let ids: Vec<String> = req.groups_names.iter().map(|g| g.0.to_string()).collect();
    let codes = broker
        .groups
        .delete_groups(&ids, now_ms(), &offsets_log(broker));
    DeleteGroupsResponse::default().with_results(
        req.groups_names
            .into_iter()
            .zip(codes)
            .map(|(g, code)| {
                DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(code)
            })
            .collect(),
    )
}

pub fn offset_delete(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let image = broker.metadata.image();
    let mut known = Vec::new();
    let mut slots = Vec::new();
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::with_capacity(req.topics.len());
    for (ti, t) in req.topics.iter().enumerate() {
        let count = image
            .topic(t.name.0.as_str())
            .map(|m| m.partitions.len() as i32);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            let exists = count.is_some_and(|n| p.partition_index >= 0 && p.partition_index < n);
            partitions.push(
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(if exists {
                        NONE
                    } else {
                        UNKNOWN_TOPIC_OR_PARTITION
                    }),
            );
            if exists {
                known.push((t.name.0.to_string(), p.partition_index));
                slots.push((ti, pi));
            }
        }
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    match broker.groups.delete_offsets(
        req.group_id.0.as_str(),
        &known,
        now_ms(),
        &offsets_log(broker),
    ) {
        Ok(codes) => {
            for ((ti, pi), code) in slots.into_iter().zip(codes) {
                topics[ti].partitions[pi].error_code = code;
            }
            OffsetDeleteResponse::default().with_topics(topics)
        }
        Err(code) => OffsetDeleteResponse::default().with_error_code(code),
    }
}
