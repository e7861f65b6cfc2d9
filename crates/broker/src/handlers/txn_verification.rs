//! KIP-890 on the partition's side: before the first transactional batch of a transaction goes
//! into a partition (no open transaction of that producer there yet), its leader asks the
//! transaction coordinator. Transaction protocol v1 clients (Produce up to v11, TxnOffsetCommit
//! up to v4) added the partition themselves, so the leader only verifies (AddPartitionsToTxn
//! `verify_only`); v2 clients (Produce v12+, TxnOffsetCommit v5+, when `transaction.version` is
//! 2) never send AddPartitionsToTxn, so the leader adds the partition for them. This is what
//! keeps a late batch of an ended transaction from opening a transaction nobody will end.
//!
//! Owns the leader-to-coordinator call. The coordinator's rules stay in `txn::coordinator`.

use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::replica::client::LeaderConnection;
use crate::txn::coordinator::TRANSACTION_STATE_TOPIC;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnResponse;
use kafka_protocol::messages::{ApiKey, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use std::collections::HashMap;
use std::sync::Arc;

/// The first AddPartitionsToTxn version with the brokers' batched, verifying form.
const ADD_PARTITIONS_BROKER_VERSION: i16 = 5;
const NETWORK_EXCEPTION: i16 = 13;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;

/// Whether a request of `version` for `api` speaks transaction protocol v2 on this broker.
pub fn uses_transaction_v2(broker: &Broker, api: ApiKey, version: i16) -> bool {
    let first_v2 = match api {
        ApiKey::Produce => 12,
        ApiKey::TxnOffsetCommit | ApiKey::EndTxn => 5,
        _ => return false,
    };
    broker.config.transaction_version >= 2 && version >= first_v2
}

/// One producer's request to verify or add `partitions` in its transaction.
pub struct Verification<'a> {
    pub transactional_id: &'a str,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Transaction protocol v2: add the partitions rather than check them.
    pub add: bool,
}

/// The coordinator's answer per partition, as a wire error code (0 for none; NETWORK_EXCEPTION
/// when it could not be asked).
pub async fn verify(
    broker: &Arc<Broker>,
    v: &Verification<'_>,
    partitions: &[(String, i32)],
) -> HashMap<(String, i32), i16> {
    if partitions.is_empty() {
        return HashMap::new();
    }
    if broker
        .txn
        .check_coordinator(broker, v.transactional_id)
        .is_ok()
    {
        local(broker, v, partitions).await
    } else {
        match remote(broker, v, partitions).await {
            Ok(codes) => codes,
            Err(e) => {
                tracing::debug!(transactional_id = v.transactional_id, error = %e, "transaction verification failed");
                partitions
                    .iter()
                    .map(|tp| (tp.clone(), NETWORK_EXCEPTION))
                    .collect()
            }
        }
    }
}

/// A coordinator's answer as a Produce response carries it, as Kafka maps them: retriable
/// coordinator trouble becomes NOT_ENOUGH_REPLICAS (which every client retries without a
/// metadata refresh), a fenced epoch INVALID_PRODUCER_EPOCH.
pub fn for_producer(code: i16) -> i16 {
    const RETRIABLE: [i16; 5] = [
        ErrorCode::ConcurrentTransactions as i16,
        NETWORK_EXCEPTION,
        COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode::CoordinatorNotAvailable as i16,
        ErrorCode::NotCoordinator as i16,
    ];
    if RETRIABLE.contains(&code) {
        ErrorCode::NotEnoughReplicas.code()
    } else if code == ErrorCode::ProducerFenced.code() {
        ErrorCode::InvalidProducerEpoch.code()
    } else {
        code
    }
}

async fn local(
    broker: &Arc<Broker>,
    v: &Verification<'_>,
    partitions: &[(String, i32)],
) -> HashMap<(String, i32), i16> {
    let outcome = broker.txn.add_partitions(
        broker,
        v.transactional_id,
        v.producer_id,
        v.producer_epoch,
        partitions,
        !v.add,
    );
    let outcome = match outcome {
        Ok(codes) if v.add => super::txn::replicated(broker, v.transactional_id)
            .await
            .map(|()| codes),
        other => other,
    };
    match outcome {
        Ok(codes) => codes.into_iter().map(|(tp, c)| (tp, c.code())).collect(),
        Err(code) => partitions
            .iter()
            .map(|tp| (tp.clone(), code.code()))
            .collect(),
    }
}

/// AddPartitionsToTxn to the coordinator: the leader of the id's `__transaction_state`
/// partition.
async fn remote(
    broker: &Arc<Broker>,
    v: &Verification<'_>,
    partitions: &[(String, i32)],
) -> Result<HashMap<(String, i32), i16>, String> {
    let image = broker.metadata.image();
    let state = image
        .topic(TRANSACTION_STATE_TOPIC)
        .ok_or("__transaction_state does not exist")?;
    let index =
        crate::group::persistence::partition_for(v.transactional_id, state.partitions.len() as i32);
    let coordinator = state
        .partitions
        .iter()
        .find(|p| p.partition == index)
        .map(|p| p.leader)
        .filter(|l| *l >= 0)
        .ok_or_else(|| format!("{TRANSACTION_STATE_TOPIC}-{index} has no leader"))?;
    let mut conn = LeaderConnection::to_broker(broker, coordinator, "txn-verifier").await?;
    let topics = crate::replica::client::by_topic(partitions);
    let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                v.transactional_id.to_string(),
            )))
            .with_producer_id(ProducerId(v.producer_id))
            .with_producer_epoch(v.producer_epoch)
            .with_verify_only(!v.add)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps)
                    })
                    .collect(),
            ),
    ]);
    let resp: AddPartitionsToTxnResponse = conn
        .send(
            ApiKey::AddPartitionsToTxn,
            ADD_PARTITIONS_BROKER_VERSION,
            &req,
        )
        .await?;
    let mut codes: HashMap<(String, i32), i16> = partitions
        .iter()
        .map(|tp| (tp.clone(), resp.error_code))
        .collect();
    if resp.error_code == 0 {
        for result in resp.results_by_transaction {
            for t in result.topic_results {
                for p in t.results_by_partition {
                    codes.insert(
                        (t.name.0.to_string(), p.partition_index),
                        p.partition_error_code,
                    );
                }
            }
        }
    }
    Ok(codes)
}
