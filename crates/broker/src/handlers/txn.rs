//! Producer ids and transactions: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn.
//! The state lives in `txn::TransactionCoordinator`; these handlers translate the wire messages.

use super::RequestContext;
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::group::{BrokerOffsetsLog, GroupConfig, OFFSETS_TOPIC};
use crate::txn::coordinator::PartitionResults;
use kafka_protocol::messages::ProducerId;
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
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Fenced producers learn it as PRODUCER_FENCED from the versions that know that code (KIP-588);
/// older versions only know INVALID_PRODUCER_EPOCH.
fn fenced_code(code: ErrorCode, version: i16, first_version_with_fenced: i16) -> ErrorCode {
    if code == ErrorCode::ProducerFenced && version < first_version_with_fenced {
        ErrorCode::InvalidProducerEpoch
    } else {
        code
    }
}

pub fn init_producer_id(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(txn_id) = &req.transactional_id {
        let expected = (ctx.version >= 3).then_some((req.producer_id.0, req.producer_epoch));
        return match broker.txn.init_producer_id(
            broker,
            txn_id.as_str(),
            req.transaction_timeout_ms,
            expected,
        ) {
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

pub fn add_partitions_to_txn(
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
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(topic_results(&partitions, &outcome));
    }
    // v4+: a batch of transactions, as brokers send it to verify (KIP-890).
    let results = req
        .transactions
        .iter()
        .map(|t| {
            let partitions = flatten(&t.topics);
            let outcome = broker.txn.add_partitions(
                broker,
                &t.transactional_id,
                t.producer_id.0,
                t.producer_epoch,
                &partitions,
                t.verify_only,
            );
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topic_results(&partitions, &outcome))
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

pub fn add_offsets_to_txn(
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
    let code = match outcome {
        Ok(codes) => codes.first().map_or(ErrorCode::None, |c| c.1),
        Err(code) => fenced_code(code, ctx.version, 2),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code.code())
}

pub fn end_txn(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: EndTxnRequest,
) -> EndTxnResponse {
    let code = match broker.txn.end_txn(
        broker,
        &req.transactional_id,
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
    ) {
        Ok(()) => ErrorCode::None,
        Err(code) => fenced_code(code, ctx.version, 2),
    };
    EndTxnResponse::default().with_error_code(code.code())
}
