//! OffsetForLeaderEpoch (API key 23): for each partition, the largest leader epoch at or below
//! the one asked for that this leader's log knows, and the offset where it ends. A follower
//! whose leader changed truncates its log there (Kafka's KIP-101/KIP-279).

use super::RequestContext;
use crate::broker::Broker;
use crate::error::ErrorCode;
use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderEpochRequest;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};
use std::sync::Arc;

const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

pub fn handle(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    // A follower (replica id >= 0) may only ask the leader; consumers (-1, KIP-320 log
    // truncation detection) likewise ask the leader, as Kafka requires.
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut out = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) = broker.replicas.get(&t.topic.0, p.partition) else {
                        let exists = broker.metadata.image().topic(&t.topic.0).is_some_and(|m| {
                            m.partitions.iter().any(|x| x.partition == p.partition)
                        });
                        out.error_code = if exists {
                            ErrorCode::NotLeaderOrFollower.code()
                        } else {
                            ErrorCode::UnknownTopicOrPartition.code()
                        };
                        return out;
                    };
                    let epoch = partition.leader_epoch();
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch < epoch {
                        out.error_code = FENCED_LEADER_EPOCH;
                    } else if p.current_leader_epoch > epoch {
                        out.error_code = UNKNOWN_LEADER_EPOCH;
                    } else if !partition.is_leader() {
                        out.error_code = ErrorCode::NotLeaderOrFollower.code();
                    } else {
                        let (e, end) = partition.log.end_offset_for_epoch(p.leader_epoch);
                        out.leader_epoch = e;
                        out.end_offset = end;
                    }
                    out
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
