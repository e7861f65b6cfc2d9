//! Fetch: whole stored batches from each partition's log, bounded by the high watermark and the
//! request's byte limits, with long polling when too little is there yet.

use super::RequestContext;
use crate::broker::Broker;
use crate::error::ErrorCode;
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::AbortedTransaction;
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_log::LogError;

const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: FetchRequest,
) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    // Subscribe before the first read so an append racing with it still wakes us.
    let mut appended = broker.subscribe_appended();
    loop {
        appended.borrow_and_update();
        let (resp, bytes, any_error) = read_once(broker, ctx, &req);
        let now = Instant::now();
        if bytes >= min_bytes || any_error || now >= deadline {
            return resp;
        }
        match tokio::time::timeout(deadline - now, appended.changed()).await {
            Ok(Ok(())) => continue,
            // Timed out (or the broker is going away): answer with what there is.
            _ => return read_once(broker, ctx, &req).0,
        }
    }
}

/// One pass over the requested partitions. Returns the response, the record bytes in it, and
/// whether any partition answered with an error (which ends a long poll at once, as in Kafka).
fn read_once(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    req: &FetchRequest,
) -> (FetchResponse, usize, bool) {
    let uses_topic_ids = ctx.version >= 13;
    let read_committed = req.isolation_level == 1;
    let image = broker.metadata.image();
    let mut remaining = req.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut any_error = false;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let meta = if uses_topic_ids {
            image.topic_by_id(&t.topic_id)
        } else {
            image.topic(&t.topic.0)
        };
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut pd = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
                .with_aborted_transactions(if read_committed {
                    Some(Vec::new())
                } else {
                    None
                })
                .with_records(Some(Bytes::new()));
            let partition = meta.and_then(|m| broker.replicas.get(&m.name, p.partition));
            let Some(partition) = partition else {
                pd.error_code = if uses_topic_ids && meta.is_none() {
                    ErrorCode::UnknownTopicId.code()
                } else {
                    ErrorCode::UnknownTopicOrPartition.code()
                };
                any_error = true;
                partitions.push(pd);
                continue;
            };
            let hw = partition.high_watermark();
            let lso = partition.last_stable_offset();
            pd.high_watermark = hw;
            pd.last_stable_offset = lso;
            pd.log_start_offset = partition.log.log_start_offset();
            if p.current_leader_epoch >= 0 && p.current_leader_epoch != partition.leader_epoch {
                pd.error_code = if p.current_leader_epoch < partition.leader_epoch {
                    FENCED_LEADER_EPOCH
                } else {
                    UNKNOWN_LEADER_EPOCH
                };
                any_error = true;
                partitions.push(pd);
                continue;
            }
            let upper = if read_committed { lso } else { hw };
            let max = (p.partition_max_bytes.max(0) as usize).min(remaining);
            // Like Kafka (KIP-74), the first partition with data may exceed the limits by one
            // batch so a consumer can never get stuck behind a large batch.
            match partition.log.read(p.fetch_offset, max, upper, total == 0) {
                Ok(slice) => {
                    let n = slice.records.len();
                    total += n;
                    remaining = remaining.saturating_sub(n);
                    if read_committed && n > 0 {
                        // The consumer skips these producers' records from their first offset
                        // up to the abort marker.
                        let aborted = partition
                            .log
                            .aborted_transactions(p.fetch_offset, upper)
                            .into_iter()
                            .map(|(pid, first)| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(pid))
                                    .with_first_offset(first)
                            })
                            .collect();
                        pd.aborted_transactions = Some(aborted);
                    }
                    pd.records = Some(slice.records);
                }
                Err(e) => {
                    if !matches!(e, LogError::OffsetOutOfRange { .. }) {
                        tracing::warn!(topic = %partition.topic, partition = p.partition, error = %e, "fetch read failed");
                    }
                    pd.error_code = e.kafka_error_code();
                    any_error = true;
                }
            }
            partitions.push(pd);
        }
        let name = match (uses_topic_ids, meta) {
            (true, Some(m)) => TopicName(StrBytes::from_string(m.name.clone())),
            _ => t.topic.clone(),
        };
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(name)
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    // Sessionless answers (session id 0): every fetch is a full fetch, which KIP-227 allows.
    let resp = FetchResponse::default()
        .with_session_id(0)
        .with_responses(topics);
    (resp, total, any_error)
}
