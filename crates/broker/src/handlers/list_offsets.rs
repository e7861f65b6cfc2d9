//! ListOffsets: earliest, latest, by timestamp and max timestamp, answered by the partition
//! leader (a follower only to Kafka's debugging replica id, as Kafka allows).

use super::RequestContext;
use crate::broker::Broker;
use crate::error::ErrorCode;
use kafka_protocol::messages::list_offsets_request::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use std::sync::Arc;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
/// Kafka's `ListOffsetsRequest.DEBUGGING_REPLICA_ID`: may read a follower's offsets.
const DEBUGGING_REPLICA_ID: i32 = -2;
/// A consumer's ListOffsets; any other replica id is a replica or a debugging tool.
const CONSUMER_REPLICA_ID: i32 = -1;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let read_committed = req.isolation_level == 1;
    // Only consumers are bounded by the high watermark (or LSO); replicas and debugging tools
    // see the log end, as in Kafka, where their requests carry no isolation level.
    let client = req.replica_id == CONSUMER_REPLICA_ID;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let epoch = if ctx.version >= 4 {
                        p.current_leader_epoch
                    } else {
                        -1
                    };
                    let checked = super::leader_check::leader_partition(
                        broker,
                        &t.name.0,
                        p.partition_index,
                        epoch,
                    );
                    let partition = match checked {
                        Ok(partition) => partition,
                        Err(ErrorCode::NotLeaderOrFollower)
                            if req.replica_id == DEBUGGING_REPLICA_ID =>
                        {
                            match broker.replicas.get(&t.name.0, p.partition_index) {
                                Some(partition) => partition,
                                None => {
                                    r.error_code = ErrorCode::NotLeaderOrFollower.code();
                                    return r;
                                }
                            }
                        }
                        Err(code) => {
                            r.error_code = code.code();
                            return r;
                        }
                    };
                    // The epoch field exists from v4 on; older versions must leave it unset.
                    if ctx.version >= 4 {
                        r.leader_epoch = partition.leader_epoch();
                    }
                    let found = match p.timestamp {
                        LATEST => Ok(Some((
                            if !client {
                                partition.log.log_end_offset()
                            } else if read_committed {
                                partition.last_stable_offset()
                            } else {
                                partition.high_watermark()
                            },
                            -1,
                        ))),
                        EARLIEST | EARLIEST_LOCAL => {
                            Ok(Some((partition.log.log_start_offset(), -1)))
                        }
                        MAX_TIMESTAMP => partition.log.max_timestamp(),
                        // No tiered storage: nothing is tiered.
                        LATEST_TIERED => Ok(None),
                        ts if ts >= 0 => partition.log.offset_for_timestamp(ts),
                        _ => {
                            r.error_code = ErrorCode::InvalidRequest.code();
                            return r;
                        }
                    };
                    match found {
                        Ok(Some((offset, ts))) => {
                            r.offset = offset;
                            r.timestamp = ts;
                        }
                        Ok(None) => {}
                        Err(e) => r.error_code = e.kafka_error_code(),
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
