//! Fetch: whole stored batches from each partition's log, bounded by the high watermark (the
//! last stable offset for read_committed) and the request's byte limits, with long polling when
//! too little is there yet. Only the leader serves. A fetch carrying a replica id comes from a
//! follower: it reads up to the log end, and its fetch offset tells the leader how far that
//! follower got (ISR and high watermark, `replica::Partition::update_follower_fetch`).

use super::RequestContext;
use crate::broker::Broker;
use crate::error::ErrorCode;
use bytes::Bytes;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, LeaderIdAndEpoch,
};
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_log::{FileRange, LogError};

const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

/// A fetch response and the segment file ranges its placeholder records stand for, in the
/// order the encoder meets them (see `response.rs`).
pub struct FetchAnswer {
    pub response: FetchResponse,
    pub ranges: Vec<FileRange>,
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: FetchRequest,
) -> FetchAnswer {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    // Subscribe before the first read so an append racing with it still wakes us.
    let mut appended = broker.subscribe_appended();
    loop {
        appended.borrow_and_update();
        let (answer, bytes, any_error) = read_once(broker, ctx, &req);
        let now = Instant::now();
        if bytes >= min_bytes || any_error || now >= deadline {
            return count_bytes_out(broker, &req, ctx.version, answer);
        }
        match tokio::time::timeout(deadline - now, appended.changed()).await {
            Ok(Ok(())) => continue,
            // Timed out (or the broker is going away): answer with what there is.
            _ => return count_bytes_out(broker, &req, ctx.version, read_once(broker, ctx, &req).0),
        }
    }
}

/// A fetch with a replica id comes from a follower.
pub(super) fn from_follower(req: &FetchRequest, version: i16) -> bool {
    let replica_id = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    replica_id >= 0
}

/// Adds the response's record bytes to BytesOut (by topic) or, for a follower,
/// ReplicationBytesOut: once per answered request, as a long poll may read several times.
fn count_bytes_out(
    broker: &Broker,
    req: &FetchRequest,
    version: i16,
    answer: FetchAnswer,
) -> FetchAnswer {
    let follower = from_follower(req, version);
    for t in &answer.response.responses {
        let bytes: usize = t
            .partitions
            .iter()
            .filter_map(|p| p.records.as_ref().map(|r| r.len()))
            .sum();
        if bytes == 0 {
            continue;
        }
        if follower {
            broker.metrics.topics.replication_bytes_out(bytes as u64);
        } else {
            broker
                .metrics
                .topics
                .topic(&t.topic.0)
                .bytes_out(bytes as u64);
        }
    }
    answer
}

/// One pass over the requested partitions. Returns the response, the record bytes in it, and
/// whether any partition answered with an error (which ends a long poll at once, as in Kafka).
fn read_once(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: &FetchRequest,
) -> (FetchAnswer, usize, bool) {
    let uses_topic_ids = ctx.version >= 13;
    let read_committed = req.isolation_level == 1;
    let replica_id = if ctx.version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let follower = from_follower(req, ctx.version);
    let now = super::now_ms();
    let mut not_leader = Vec::new();
    let image = broker.metadata.image();
    let mut remaining = req.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut any_error = false;
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut ranges = Vec::new();
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
            let exists =
                meta.is_some_and(|m| m.partitions.iter().any(|x| x.partition == p.partition));
            let Some(partition) = partition else {
                pd.error_code = if exists {
                    if let Some(m) = meta {
                        not_leader.push((topics.len(), partitions.len(), m.name.clone()));
                    }
                    ErrorCode::NotLeaderOrFollower.code()
                } else if uses_topic_ids && meta.is_none() {
                    ErrorCode::UnknownTopicId.code()
                } else {
                    ErrorCode::UnknownTopicOrPartition.code()
                };
                any_error = true;
                partitions.push(pd);
                continue;
            };
            let leader_epoch = partition.leader_epoch();
            if p.current_leader_epoch >= 0 && p.current_leader_epoch != leader_epoch {
                pd.error_code = if p.current_leader_epoch < leader_epoch {
                    FENCED_LEADER_EPOCH
                } else {
                    UNKNOWN_LEADER_EPOCH
                };
                any_error = true;
                partitions.push(pd);
                continue;
            }
            if !partition.is_leader() {
                not_leader.push((topics.len(), partitions.len(), partition.topic.to_string()));
                pd.error_code = ErrorCode::NotLeaderOrFollower.code();
                any_error = true;
                partitions.push(pd);
                continue;
            }
            let leader_leo = partition.log.log_end_offset();
            if follower {
                let update =
                    partition.update_follower_fetch(replica_id, p.fetch_offset, leader_leo, now);
                if let Some(change) = update.expand_isr {
                    crate::replica::request_isr_change(broker, partition.clone(), change);
                }
            }
            let hw = partition.high_watermark();
            let lso = partition.last_stable_offset();
            pd.high_watermark = hw;
            pd.last_stable_offset = lso;
            pd.log_start_offset = partition.log.log_start_offset();
            // A follower whose last fetched epoch ended earlier here has records the leader
            // never had: it must truncate before fetching on (KIP-595's diverging epoch).
            if follower && ctx.version >= 12 && p.last_fetched_epoch >= 0 {
                let (epoch, end) = partition.log.end_offset_for_epoch(p.last_fetched_epoch);
                if epoch >= 0 && (epoch < p.last_fetched_epoch || end < p.fetch_offset) {
                    pd.diverging_epoch = EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end);
                    partitions.push(pd);
                    continue;
                }
            }
            // Followers copy everything; consumers see only committed records.
            let upper = if follower {
                leader_leo
            } else if read_committed {
                lso
            } else {
                hw
            };
            let max = (p.partition_max_bytes.max(0) as usize).min(remaining);
            // Like Kafka (KIP-74), the first partition with data may exceed the limits by one
            // batch so a consumer can never get stuck behind a large batch.
            let read = partition
                .log
                .read_range(p.fetch_offset, max, upper, total == 0)
                .and_then(|range| match range {
                    None => Ok(Bytes::new()),
                    Some(range) => match super::response::placeholder(&range) {
                        Some(records) => {
                            ranges.push(range);
                            Ok(records)
                        }
                        None => range.read(),
                    },
                });
            match read {
                Ok(records) => {
                    let n = records.len();
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
                    pd.records = Some(records);
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
    let mut resp = FetchResponse::default()
        .with_session_id(0)
        .with_responses(topics);
    // KIP-951: where the leader is, in the versions that carry it.
    if ctx.version >= 12 {
        for (t, i, topic) in not_leader {
            let Some(pd) = resp
                .responses
                .get_mut(t)
                .and_then(|t| t.partitions.get_mut(i))
            else {
                continue;
            };
            let Some(hint) = super::leader_hint::leader_hint(
                &image,
                &topic,
                pd.partition_index,
                &ctx.conn.listener,
            ) else {
                continue;
            };
            pd.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(hint.leader_id))
                .with_leader_epoch(hint.leader_epoch);
            if ctx.version >= 16
                && let Some(e) = super::leader_hint::fetch_endpoint(&hint)
                && !resp.node_endpoints.iter().any(|n| n.node_id == e.node_id)
            {
                resp.node_endpoints.push(e);
            }
        }
    }
    (
        FetchAnswer {
            response: resp,
            ranges,
        },
        total,
        any_error,
    )
}
