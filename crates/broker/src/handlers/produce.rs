//! Produce: validate and append each partition's batches on the partition leader; answer at
//! once for acks 0/1, and for acks=all once the high watermark passes the appended batches
//! (Kafka's DelayedProduce purgatory: a wait on the broker's "appended" watch, which also
//! fires when a follower's fetch or an ISR change moves a high watermark), or at the request's
//! `timeout_ms` with REQUEST_TIMED_OUT.

use super::txn_verification::{Verification, for_producer, uses_transaction_v2, verify};
use super::{RequestContext, now_ms};
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::replica::Partition;
use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::LeaderIdAndEpoch;
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_log::BatchHeader;

/// The first transactional batch of a transaction in each partition led here, checked with
/// (transaction protocol v2: added to) its producer's transaction at the coordinator (KIP-890).
/// Wire error codes by partition; a partition not listed needs no check (no transactional
/// batch, or its producer's transaction is already open there).
async fn verify_transactions(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: &ProduceRequest,
    image: &strom_meta::MetadataImage,
) -> HashMap<(String, i32), i16> {
    let mut producer = None;
    let mut needed = Vec::new();
    for topic in &req.topic_data {
        let meta = if ctx.version >= 13 {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(&topic.name.0)
        };
        let Some(meta) = meta else { continue };
        for pd in &topic.partition_data {
            // Malformed batches are the log's to answer.
            let Some(h) = pd.records.as_ref().and_then(|r| BatchHeader::parse(r).ok()) else {
                continue;
            };
            if !h.is_transactional() {
                continue;
            }
            let Some(partition) = broker.replicas.get(&meta.name, pd.index) else {
                continue;
            };
            if !partition.is_leader() || partition.log.has_ongoing_txn(h.producer_id) {
                continue;
            }
            producer = Some((h.producer_id, h.producer_epoch));
            needed.push((meta.name.clone(), pd.index));
        }
    }
    let Some((producer_id, producer_epoch)) = producer else {
        return HashMap::new();
    };
    let Some(transactional_id) = req.transactional_id.as_deref() else {
        // A transactional batch without its transactional id: only this node's view can judge.
        return needed
            .into_iter()
            .map(|(t, p)| {
                let code = broker
                    .txn
                    .partition_in_txn(broker, producer_id, producer_epoch, &t, p)
                    .err()
                    .map_or(0, |c| c.code());
                ((t, p), code)
            })
            .collect();
    };
    let verification = Verification {
        transactional_id,
        producer_id,
        producer_epoch,
        add: uses_transaction_v2(broker, ApiKey::Produce, ctx.version),
    };
    let mut codes = verify(broker, &verification, &needed).await;
    for code in codes.values_mut() {
        *code = for_producer(*code);
    }
    codes
}

/// `None` for acks=0: the client expects no response at all.
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let uses_topic_ids = ctx.version >= 13;
    let valid_acks = matches!(acks, -1..=1);
    let image = broker.metadata.image();
    let verified = verify_transactions(broker, ctx, &req, &image).await;
    let now = now_ms();
    let mut appended_any = false;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // acks=all: (topic response index, partition response index, partition, offset the high
    // watermark must reach, min.insync.replicas).
    let mut waiting: Vec<(usize, usize, Arc<Partition>, i64, usize)> = Vec::new();
    let mut hints = Vec::new();
    for topic in req.topic_data {
        let topic_meta = if uses_topic_ids {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(&topic.name.0)
        };
        let missing_code = if uses_topic_ids {
            ErrorCode::UnknownTopicId
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        // Looked up once per topic of the request; each append then only adds to atomics.
        let counters = topic_meta.map(|t| broker.metrics.topics.topic(&t.name));
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for pd in topic.partition_data {
            let sent_bytes = pd.records.as_ref().map_or(0, |r| r.len() as u64);
            let mut resp = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let partition = topic_meta.and_then(|t| broker.replicas.get(&t.name, pd.index));
            let exists =
                topic_meta.is_some_and(|t| t.partitions.iter().any(|p| p.partition == pd.index));
            // Kafka caps the effective minimum ISR at the replication factor: min.insync.replicas=2
            // on a single-replica topic does not refuse acks=all writes.
            let replication_factor = topic_meta
                .and_then(|t| t.partitions.iter().find(|p| p.partition == pd.index))
                .map_or(1, |p| p.replicas.len().max(1));
            let min_isr = topic_meta
                .map_or(1, |t| broker.topic_configs.min_insync_replicas(&t.configs))
                .min(replication_factor);
            let mut record_errors = Vec::new();
            let leader_here = partition.as_ref().is_some_and(|p| p.is_leader());
            let result = if !valid_acks {
                Err((ErrorCode::InvalidRequiredAcks.code(), None))
            } else if exists && !leader_here {
                if let Some(t) = topic_meta {
                    hints.push((responses.len(), partitions.len(), t.name.clone(), pd.index));
                }
                Err((ErrorCode::NotLeaderOrFollower.code(), None))
            } else if let Some(partition) = partition
                .as_ref()
                .filter(|p| acks == -1 && p.isr().len() < min_isr)
            {
                Err((
                    ErrorCode::NotEnoughReplicas.code(),
                    Some(format!(
                        "the in-sync replicas {:?} are fewer than min.insync.replicas {min_isr}",
                        partition.isr()
                    )),
                ))
            } else if let Some(partition) = partition.as_ref() {
                let refused = verified
                    .get(&(partition.topic.to_string(), pd.index))
                    .copied()
                    .filter(|c| *c != 0);
                match pd.records {
                    Some(records) => match refused {
                        Some(code) => Err((code, None)),
                        None => {
                            // The request buffer is shared and immutable; offsets are patched
                            // in a copy of the partition's batches (one memcpy, not per record).
                            let mut buf = BytesMut::from(&records[..]);
                            partition
                                .log
                                .append(&mut buf, partition.leader_epoch(), now)
                                .map_err(|e| {
                                    record_errors = super::produce_errors::record_errors(&e);
                                    (
                                        e.kafka_error_code(),
                                        Some(super::produce_errors::message(&e)),
                                    )
                                })
                        }
                    },
                    None => Err((
                        ErrorCode::CorruptMessage.code(),
                        Some("no records".to_string()),
                    )),
                }
            } else {
                Err((missing_code.code(), None))
            };
            match result {
                Ok(info) => {
                    appended_any = true;
                    // A retried batch already counted the first time.
                    if !info.duplicate
                        && let Some(c) = &counters
                    {
                        c.messages_in(info.record_count.max(0) as u64, sent_bytes);
                    }
                    if acks == -1
                        && let Some(partition) = partition
                    {
                        waiting.push((
                            responses.len(),
                            partitions.len(),
                            partition,
                            info.last_offset + 1,
                            min_isr,
                        ));
                    }
                    resp.base_offset = info.base_offset;
                    resp.log_append_time_ms = info.log_append_time;
                    resp.log_start_offset = info.log_start_offset;
                }
                Err((code, message)) => {
                    if let Some(m) = &message {
                        tracing::debug!(topic = %topic.name.0, partition = pd.index, error = %m, "produce rejected");
                    }
                    resp.error_code = code;
                    resp.error_message = message.map(StrBytes::from_string);
                    resp.record_errors = record_errors;
                }
            }
            partitions.push(resp);
        }
        let name = match (uses_topic_ids, topic_meta) {
            (true, Some(t)) => TopicName(StrBytes::from_string(t.name.clone())),
            _ => topic.name,
        };
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if appended_any {
        broker.notify_appended();
    }
    if acks == 0 {
        return None;
    }
    if !waiting.is_empty() {
        let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
        wait_for_replication(broker, &mut responses, waiting, timeout).await;
    }
    let mut resp = ProduceResponse::default().with_responses(responses);
    // KIP-951: tell the client where the leader is, in the versions that carry it.
    if ctx.version >= 10 && !hints.is_empty() {
        let image = broker.metadata.image();
        for (t, p, topic, partition) in hints {
            let Some(hint) =
                super::leader_hint::leader_hint(&image, &topic, partition, &ctx.conn.listener)
            else {
                continue;
            };
            if let Some(r) = resp
                .responses
                .get_mut(t)
                .and_then(|t| t.partition_responses.get_mut(p))
            {
                r.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(hint.leader_id))
                    .with_leader_epoch(hint.leader_epoch);
            }
            if let Some(e) = super::leader_hint::produce_endpoint(&hint)
                && !resp.node_endpoints.iter().any(|n| n.node_id == e.node_id)
            {
                resp.node_endpoints.push(e);
            }
        }
    }
    Some(resp)
}

/// Waits until each appended partition's high watermark reaches its batches, then checks the
/// ISR still meets min.insync.replicas; what is left at `timeout` gets REQUEST_TIMED_OUT.
async fn wait_for_replication(
    broker: &Arc<Broker>,
    responses: &mut [TopicProduceResponse],
    mut waiting: Vec<(usize, usize, Arc<Partition>, i64, usize)>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    let mut appended = broker.subscribe_appended();
    loop {
        appended.borrow_and_update();
        waiting.retain(|(t, p, partition, required, min_isr)| {
            let outcome = if !partition.is_leader() {
                Some((ErrorCode::NotLeaderOrFollower, None))
            } else if partition.high_watermark() >= *required {
                let isr = partition.isr();
                if isr.len() < *min_isr {
                    Some((
                        ErrorCode::NotEnoughReplicasAfterAppend,
                        Some(format!(
                            "written, but the in-sync replicas {isr:?} are fewer than min.insync.replicas {min_isr}"
                        )),
                    ))
                } else {
                    Some((ErrorCode::None, None))
                }
            } else {
                None
            };
            let Some((code, message)) = outcome else {
                return true;
            };
            if code != ErrorCode::None
                && let Some(r) = responses
                    .get_mut(*t)
                    .and_then(|t| t.partition_responses.get_mut(*p))
            {
                r.error_code = code.code();
                r.error_message = message.map(StrBytes::from_string);
                r.base_offset = -1;
            }
            false
        });
        if waiting.is_empty() {
            return;
        }
        let now = Instant::now();
        if now >= deadline
            || tokio::time::timeout(deadline - now, appended.changed())
                .await
                .is_err()
        {
            break;
        }
    }
    for (t, p, _, _, _) in waiting {
        if let Some(r) = responses
            .get_mut(t)
            .and_then(|t| t.partition_responses.get_mut(p))
        {
            r.error_code = ErrorCode::RequestTimedOut.code();
            r.error_message = Some(StrBytes::from_static_str(
                "not replicated to the in-sync replicas within the request timeout",
            ));
            r.base_offset = -1;
        }
    }
}
