//! Kafka 4's consumer group protocol (KIP-848): ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe.
//!
//! Translates the wire messages (topic ids, nullable "unchanged" fields) into calls on
//! `group::GroupCoordinator` and its answers back, with topic names resolved from the metadata
//! image for ConsumerGroupDescribe.

use super::{RequestContext, now_ms};
use crate::broker::Broker;
use crate::group::BrokerOffsetsLog;
use crate::group::assignor::Assignment;
use crate::group::consumer_group::HeartbeatParams;
use crate::group::errors::NONE;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::consumer_group_describe_request::ConsumerGroupDescribeRequest;
use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe, ConsumerGroupDescribeResponse, DescribedGroup, Member,
};
use kafka_protocol::messages::consumer_group_heartbeat_request::ConsumerGroupHeartbeatRequest;
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    self as heartbeat, ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

/// ConsumerGroupDescribe `authorized_operations` without ACLs: READ, DELETE and DESCRIBE.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);
/// ConsumerGroupDescribe v1 `MemberType`: the member speaks the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

pub fn consumer_group_heartbeat(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let owned: Option<Assignment> = req.topic_partitions.map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id).or_default().extend(tp.partitions);
        }
        a.retain(|_, ps| !ps.is_empty());
        a
    });
    let params = HeartbeatParams {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: if ctx.version >= 1 {
            req.subscribed_topic_regex.map(|s| s.to_string())
        } else {
            None
        },
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: ctx
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: format!("/{}", ctx.conn.peer.ip()),
        api_version: ctx.version,
    };
    // Kafka creates __consumer_offsets when a group first needs it.
    let log = BrokerOffsetsLog {
        broker,
        config: &broker.groups.config,
    };
    broker.groups.ensure_started(broker);
    let image = broker.metadata.image();
    let r = broker
        .groups
        .consumer_group_heartbeat(params, &*image, now_ms(), &log);
    let mut resp = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(r.error)
        .with_error_message(r.message.map(s));
    if r.error != NONE {
        return resp;
    }
    resp.member_id = Some(s(r.member_id));
    resp.member_epoch = r.member_epoch;
    resp.heartbeat_interval_ms = r.heartbeat_interval_ms;
    resp.assignment = r.assignment.map(|a| {
        heartbeat::Assignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(topic_id, ps)| {
                    heartbeat::TopicPartitions::default()
                        .with_topic_id(topic_id)
                        .with_partitions(ps.into_iter().collect())
                })
                .collect(),
        )
    });
    resp
}

fn described_assignment(image: &strom_meta::MetadataImage, a: &Assignment) -> describe::Assignment {
    describe::Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(id, ps)| {
                describe::TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(TopicName(s(image
                        .topic_by_id(id)
                        .map(|t| t.name.clone())
                        .unwrap_or_default())))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}

pub fn consumer_group_describe(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let image = broker.metadata.image();
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let mut d = DescribedGroup::default().with_group_id(id.clone());
            match broker.groups.describe_consumer_group(id.0.as_str()) {
                Err((code, message)) => {
                    d.error_code = code;
                    d.error_message = Some(s(message));
                    d.group_state = s("Dead");
                }
                Ok(g) => {
                    if req.include_authorized_operations {
                        d.authorized_operations = GROUP_OPERATIONS;
                    }
                    d.group_state = s(g.state.name());
                    d.group_epoch = g.group_epoch;
                    d.assignment_epoch = g.assignment_epoch;
                    d.assignor_name = s(g.assignor_name);
                    d.members = g
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut member = Member::default()
                                .with_member_id(s(m.member_id))
                                .with_instance_id(m.instance_id.map(s))
                                .with_rack_id(m.rack_id.map(s))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed_topic_names
                                        .into_iter()
                                        .map(|t| TopicName(s(t)))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(m.subscribed_topic_regex.map(s))
                                .with_assignment(described_assignment(&image, &m.assignment))
                                .with_target_assignment(described_assignment(
                                    &image,
                                    &m.target_assignment,
                                ));
                            if ctx.version >= 1 {
                                member.member_type = MEMBER_TYPE_CONSUMER;
                            }
                            member
                        })
                        .collect();
                }
            }
            d
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
