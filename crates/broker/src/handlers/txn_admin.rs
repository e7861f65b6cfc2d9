//! Transaction administration: DescribeProducers, DescribeTransactions, ListTransactions and
//! WriteTxnMarkers — what
//! kafka-transactions.sh uses to find a transaction pinning the last stable offset.

use super::RequestContext;
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::handlers::now_ms;
use kafka_protocol::messages::describe_producers_request::DescribeProducersRequest;
use kafka_protocol::messages::describe_producers_response::{
    DescribeProducersResponse, PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use kafka_protocol::messages::describe_transactions_response::{
    self as dt, DescribeTransactionsResponse, TopicData,
};
use kafka_protocol::messages::list_transactions_request::ListTransactionsRequest;
use kafka_protocol::messages::list_transactions_response::{self as lt, ListTransactionsResponse};
use kafka_protocol::messages::write_txn_markers_request::WriteTxnMarkersRequest;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    WriteTxnMarkersResponse,
};
use kafka_protocol::messages::{ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

pub fn describe_producers(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let r = PartitionResponse::default().with_partition_index(p);
                    let Some(partition) = broker.replicas.get(&t.name.0, p) else {
                        return r.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
                    };
                    let producers = partition
                        .log
                        .active_producers()
                        .into_iter()
                        .map(|a| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_producer_epoch(i32::from(a.producer_epoch))
                                .with_last_sequence(a.last_sequence)
                                .with_last_timestamp(a.last_timestamp)
                                .with_coordinator_epoch(0)
                                .with_current_txn_start_offset(a.current_txn_start_offset)
                        })
                        .collect();
                    r.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

pub fn describe_transactions(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let known: BTreeMap<String, _> = broker
        .txn
        .snapshot()
        .into_iter()
        .map(|m| (m.transactional_id.clone(), m))
        .collect();
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let out = dt::TransactionState::default().with_transactional_id(id.clone());
            let Some(m) = known.get(id.as_str()) else {
                return out.with_error_code(ErrorCode::TransactionalIdNotFound.code());
            };
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &m.partitions {
                by_topic.entry(t.as_str()).or_default().push(*p);
            }
            out.with_transaction_state(s(m.state.name()))
                .with_transaction_timeout_ms(m.timeout_ms)
                .with_transaction_start_time_ms(m.start_ms)
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_topics(
                    by_topic
                        .into_iter()
                        .map(|(t, parts)| {
                            TopicData::default()
                                .with_topic(TopicName(s(t)))
                                .with_partitions(parts)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

const STATE_NAMES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub fn list_transactions(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let unknown: Vec<StrBytes> = req
        .state_filters
        .iter()
        .filter(|f| !STATE_NAMES.contains(&f.as_str()))
        .cloned()
        .collect();
    let pattern = match req
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        // KIP-1152: the pattern must match the whole id.
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(r) => Some(r),
            Err(_) => {
                return ListTransactionsResponse::default()
                    .with_error_code(ErrorCode::InvalidRegularExpression.code());
            }
        },
        None => None,
    };
    let now = now_ms();
    let states = broker
        .txn
        .snapshot()
        .into_iter()
        .filter(|m| {
            req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == m.state.name())
        })
        .filter(|m| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.iter().any(|p| p.0 == m.producer_id)
        })
        // v1+: only transactions running longer than the duration (-1: no filter).
        .filter(|m| {
            ctx.version < 1
                || req.duration_filter < 0
                || (m.start_ms >= 0 && now - m.start_ms > req.duration_filter)
        })
        .filter(|m| {
            pattern
                .as_ref()
                .is_none_or(|r| r.is_match(&m.transactional_id))
        })
        .map(|m| {
            lt::TransactionState::default()
                .with_transactional_id(TransactionalId(s(m.transactional_id.clone())))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(s(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}

/// WriteTxnMarkers: write commit/abort markers on this broker's partitions. Coordinators send it
/// between brokers; kafka-transactions.sh `abort` sends it to end a hanging transaction.
pub fn write_txn_markers(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let markers = req
        .markers
        .into_iter()
        .map(|m| {
            let marker = strom_log::TxnMarker {
                producer_id: m.producer_id.0,
                producer_epoch: m.producer_epoch,
                commit: m.transaction_result,
                coordinator_epoch: m.coordinator_epoch,
            };
            let topics = m
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&p| {
                            let code =
                                crate::txn::markers::append_local(broker, &t.name.0, p, &marker)
                                    .err()
                                    .unwrap_or(0);
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics)
        })
        .collect();
    broker.notify_appended();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
