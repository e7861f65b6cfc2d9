//! DeleteRecords (v0–2), on the partition leader: move each partition's log start offset
//! forward. Records below it are gone for readers at once; whole segments below it are
//! deleted; the new start survives a restart and reaches the followers with their next fetch.
//! An offset of -1 means the high watermark.

use super::RequestContext;
use crate::broker::Broker;
use kafka_protocol::messages::delete_records_request::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};
use std::sync::Arc;

/// Kafka's `DeleteRecordsRequest.HIGH_WATERMARK`.
const HIGH_WATERMARK: i64 = -1;

pub fn handle(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let partition = match super::leader_check::leader_partition(
                        broker,
                        &t.name.0,
                        p.partition_index,
                        -1,
                    ) {
                        Ok(partition) => partition,
                        Err(code) => {
                            r.error_code = code.code();
                            return r;
                        }
                    };
                    let hw = partition.high_watermark();
                    let offset = if p.offset == HIGH_WATERMARK {
                        hw
                    } else {
                        p.offset
                    };
                    match partition.log.delete_records_before(offset, hw) {
                        Ok(low) => r.low_watermark = low,
                        Err(e) => {
                            tracing::debug!(topic = %partition.topic, partition = p.partition_index, error = %e, "delete records refused");
                            r.error_code = e.kafka_error_code();
                        }
                    }
                    r
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
