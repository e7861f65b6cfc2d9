//! Producer ids and transactions: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//! TxnOffsetCommit.
//! The state lives in `txn::TransactionCoordinator`; these handlers translate the wire messages.

use super::RequestContext;
use super::txn_verification::{Verification, uses_transaction_v2, verify};
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::group::coordinator::PendingTxnOffset;
use crate::group::offsets::OffsetAndMetadata;
use crate::group::{BrokerOffsetsLog, GroupConfig, OFFSETS_TOPIC};
use crate::handlers::now_ms;
use crate::txn::coordinator::PartitionResults;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_offsets_to_txn_response::AddOffsetsToTxnResponse;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnResult,
    AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::end_txn_response::EndTxnResponse;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequest;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, ProducerId};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How long a `__transaction_state` write may wait for the in-sync replicas.
const STATE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(5_000);

/// Waits until what the coordinator wrote for `transactional_id` is on every in-sync replica
/// (Kafka appends transaction state with acks=all), so an answered step survives the loss of
/// this node. NOT_COORDINATOR if the leadership moved meanwhile, COORDINATOR_NOT_AVAILABLE at
/// the timeout (Kafka's mapping of NOT_ENOUGH_REPLICAS and REQUEST_TIMED_OUT here).
pub(super) async fn replicated(
    broker: &Arc<Broker>,
    transactional_id: &str,
) -> Result<(), ErrorCode> {
    if !broker.config.is_cluster() {
        return Ok(());
    }
    let partitions = broker.txn.ensure_topic(broker);
    let p = crate::group::persistence::partition_for(transactional_id, partitions);
    crate::replica::await_replicated(
        broker,
        crate::txn::coordinator::TRANSACTION_STATE_TOPIC,
        p,
        STATE_WRITE_TIMEOUT,
    )
    .await
    .map_err(|e| match e {
        crate::replica::NotReplicated::NotLeader => ErrorCode::NotCoordinator,
        crate::replica::NotReplicated::TimedOut => ErrorCode::CoordinatorNotAvailable,
    })
}

/// Fenced producers learn it as PRODUCER_FENCED from the versions that know that code (KIP-588);
/// older versions only know INVALID_PRODUCER_EPOCH.
fn fenced_code(code: ErrorCode, version: i16, first_version_with_fenced: i16) -> ErrorCode {
    if code == ErrorCode::ProducerFenced && version < first_version_with_fenced {
        ErrorCode::InvalidProducerEpoch
    } else {
        code
    }
}

pub async fn init_producer_id(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(txn_id) = &req.transactional_id {
        let expected = (ctx.version >= 3).then_some((req.producer_id.0, req.producer_epoch));
        let outcome = broker.txn.init_producer_id(
            broker,
            txn_id.as_str(),
            req.transaction_timeout_ms,
            expected,
        );
        let outcome = match outcome {
            Ok(ids) => replicated(broker, txn_id.as_str()).await.map(|()| ids),
            Err(code) => Err(code),
        };
        return match outcome {
            Ok((pid, epoch)) => resp
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            Err(code) => resp.with_error_code(fenced_code(code, ctx.version, 4).code()),
        };
    }
    // KIP-360: an idempotent producer that knows its id may ask for the epoch to be bumped to
    // reset its sequences; it keeps the id until the epoch would overflow.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return resp
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match broker.producer_ids.generate(&broker.metadata) {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "allocating a producer id failed");
            resp.with_error_code(ErrorCode::UnknownServerError.code())
        }
    }
}

fn flatten(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect()
}

/// Per-topic results in the wire shape, every partition carrying `codes[tp]` or `all`.
fn topic_results(
    partitions: &[(String, i32)],
    outcome: &Result<PartitionResults, ErrorCode>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut by_topic: BTreeMap<&str, Vec<AddPartitionsToTxnPartitionResult>> = BTreeMap::new();
    for (i, (t, p)) in partitions.iter().enumerate() {
        let code = match outcome {
            Ok(codes) => codes.get(i).map_or(ErrorCode::UnknownServerError, |c| c.1),
            Err(code) => *code,
        };
        by_topic.entry(t.as_str()).or_default().push(
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(*p)
                .with_partition_error_code(code.code()),
        );
    }
    by_topic
        .into_iter()
        .map(|(t, results)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(StrBytes::from_string(t.to_string())))
                .with_results_by_partition(results)
        })
        .collect()
}

pub async fn add_partitions_to_txn(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if ctx.version <= 3 {
        let partitions = flatten(&req.v3_and_below_topics);
        let outcome = broker
            .txn
            .add_partitions(
                broker,
                &req.v3_and_below_transactional_id,
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                &partitions,
                false,
            )
            .map_err(|c| fenced_code(c, ctx.version, 2));
        let outcome = match outcome {
            Ok(codes) => replicated(broker, &req.v3_and_below_transactional_id)
                .await
                .map(|()| codes),
            Err(code) => Err(code),
        };
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(topic_results(&partitions, &outcome));
    }
    // v4+: a batch of transactions, as brokers send it to verify (KIP-890).
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let partitions = flatten(&t.topics);
        let mut outcome = broker.txn.add_partitions(
            broker,
            &t.transactional_id,
            t.producer_id.0,
            t.producer_epoch,
            &partitions,
            t.verify_only,
        );
        if outcome.is_ok()
            && !t.verify_only
            && let Err(code) = replicated(broker, &t.transactional_id).await
        {
            outcome = Err(code);
        }
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topic_results(&partitions, &outcome)),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

pub async fn add_offsets_to_txn(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    // The group's offsets partition joins the transaction, so the EndTxn marker reaches it.
    let config = GroupConfig::from_broker(&broker.config);
    let partitions = BrokerOffsetsLog {
        broker,
        config: &config,
    }
    .ensure_topic();
    let p = crate::group::persistence::partition_for(&req.group_id, partitions);
    let outcome = broker.txn.add_partitions(
        broker,
        &req.transactional_id,
        req.producer_id.0,
        req.producer_epoch,
        &[(OFFSETS_TOPIC.to_string(), p)],
        false,
    );
    let outcome = match outcome {
        Ok(codes) => replicated(broker, &req.transactional_id)
            .await
            .map(|()| codes),
        Err(code) => Err(code),
    };
    let code = match outcome {
        Ok(codes) => codes.first().map_or(ErrorCode::None, |c| c.1),
        Err(code) => fenced_code(code, ctx.version, 2),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code.code())
}

pub async fn end_txn(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: EndTxnRequest,
) -> EndTxnResponse {
    let v2 = uses_transaction_v2(broker, ApiKey::EndTxn, ctx.version);
    let outcome = broker.txn.end_txn(
        broker,
        &req.transactional_id,
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
        v2,
    );
    let outcome = match outcome {
        Ok(ids) => replicated(broker, &req.transactional_id)
            .await
            .map(|()| ids),
        Err(code) => Err(code),
    };
    let mut resp = EndTxnResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Ok((pid, epoch)) = outcome
        && ctx.version >= 5
    {
        // v5 carries the producer's id and epoch for its next transaction.
        resp.producer_id = ProducerId(pid);
        resp.producer_epoch = epoch;
    }
    let code = match outcome {
        Ok(_) => ErrorCode::None,
        Err(code) => fenced_code(code, ctx.version, 2),
    };
    resp.with_error_code(code.code())
}

/// TxnOffsetCommit: offsets a transactional producer commits for a consumer group, applied when
/// its transaction commits (send_offsets_to_transaction, the heart of exactly-once pipelines).
pub async fn txn_offset_commit(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let config = GroupConfig::from_broker(&broker.config);
    let partitions = BrokerOffsetsLog {
        broker,
        config: &config,
    }
    .ensure_topic();
    let offsets_partition = crate::group::persistence::partition_for(&group, partitions);
    // KIP-890: the coordinator confirms the group's partition is in the transaction; with
    // transaction protocol v2 (v5+) it adds it, as the client sent no AddOffsetsToTxn.
    let tp = (OFFSETS_TOPIC.to_string(), offsets_partition);
    let verification = Verification {
        transactional_id: &req.transactional_id,
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        add: uses_transaction_v2(broker, ApiKey::TxnOffsetCommit, ctx.version),
    };
    let verified = verify(broker, &verification, std::slice::from_ref(&tp)).await;
    let mut code = match verified.get(&tp).copied().unwrap_or(0) {
        c if c == ErrorCode::ProducerFenced.code() && ctx.version < 3 => {
            ErrorCode::InvalidProducerEpoch.code()
        }
        c => c,
    };
    if code == 0
        && ctx.version >= 3
        && let Err(c) = broker.groups.check_txn_member(
            &group,
            req.member_id.as_str(),
            req.group_instance_id.as_deref(),
            req.generation_id,
        )
    {
        code = c;
    }
    let now = now_ms();
    let mut pending = Vec::new();
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = req
        .topics
        .iter()
        .map(|t| {
            let image = broker.metadata.image();
            let known = image.topic(&t.name.0);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let exists = known.is_some_and(|m| {
                        p.partition_index >= 0 && (p.partition_index as usize) < m.partitions.len()
                    });
                    let c = if code != 0 {
                        code
                    } else if !exists {
                        ErrorCode::UnknownTopicOrPartition.code()
                    } else {
                        pending.push(PendingTxnOffset {
                            group: group.clone(),
                            topic: t.name.0.to_string(),
                            partition: p.partition_index,
                            value: OffsetAndMetadata {
                                committed_offset: p.committed_offset,
                                leader_epoch: (p.committed_leader_epoch >= 0)
                                    .then_some(p.committed_leader_epoch),
                                metadata: p
                                    .committed_metadata
                                    .as_ref()
                                    .map(|m| m.to_string())
                                    .unwrap_or_default(),
                                commit_timestamp: now,
                                expire_timestamp: None,
                            },
                        });
                        0
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(c)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    if !pending.is_empty() {
        // Durable first (Kafka writes them as transactional records), then held for the marker.
        match crate::group::txn_offsets::append(
            broker,
            offsets_partition,
            req.producer_id.0,
            req.producer_epoch,
            &pending,
            now,
        ) {
            Ok(()) => broker.groups.txn_commit_offsets(req.producer_id.0, pending),
            Err(code) => {
                let code = fenced_code(code, ctx.version, 3).code();
                for p in topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                    if p.error_code == 0 {
                        p.error_code = code;
                    }
                }
            }
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}
