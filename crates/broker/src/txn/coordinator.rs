//! The transaction coordinator: producer ids and epochs per `transactional.id`, the partitions of
//! each open transaction, and the two-phase end (prepare, markers, complete), persisted in the
//! internal topic `__transaction_state` before anything is answered.
//!
//! One lock guards every transactional id: transaction control requests are rare next to
//! produce traffic, and the lock keeps the prepare/markers/complete sequence atomic.

use super::metadata::{self, TransactionMetadata, TransactionState};
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::handlers::now_ms;
use bytes::BytesMut;
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use strom_log::TxnMarker;

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// Kafka's `transaction.state.log.num.partitions` default.
pub const DEFAULT_NUM_PARTITIONS: i32 = 50;
/// Kafka's `transaction.max.timeout.ms` default.
pub const MAX_TIMEOUT_MS: i32 = 900_000;

pub struct TransactionCoordinator {
    pub(super) txns: Mutex<HashMap<String, TransactionMetadata>>,
    num_partitions: i32,
}

/// Each partition of an AddPartitionsToTxn with its outcome.
pub type PartitionResults = Vec<((String, i32), ErrorCode)>;

/// A transaction as the admin APIs show it.
pub type TxnView = TransactionMetadata;

impl Default for TransactionCoordinator {
    fn default() -> Self {
        TransactionCoordinator {
            txns: Mutex::new(HashMap::new()),
            num_partitions: DEFAULT_NUM_PARTITIONS,
        }
    }
}

fn check_producer(
    meta: &TransactionMetadata,
    producer_id: i64,
    epoch: i16,
) -> Result<(), ErrorCode> {
    if meta.producer_id != producer_id {
        return Err(ErrorCode::InvalidProducerIdMapping);
    }
    if meta.producer_epoch != epoch {
        return Err(ErrorCode::ProducerFenced);
    }
    Ok(())
}

impl TransactionCoordinator {
    /// Rebuild the state from `__transaction_state` and finish what a crash interrupted: a
    /// transaction caught between prepare and complete gets its markers now.
    pub fn load(&self, broker: &Broker) {
        let image = broker.metadata.image();
        let Some(topic) = image.topic(TRANSACTION_STATE_TOPIC) else {
            return;
        };
        let mut latest: BTreeMap<String, Option<TransactionMetadata>> = BTreeMap::new();
        for p in &topic.partitions {
            let Some(partition) = broker.replicas.get(TRANSACTION_STATE_TOPIC, p.partition) else {
                continue;
            };
            let end = partition.log.log_end_offset();
            let mut offset = partition.log.log_start_offset();
            while offset < end {
                let slice = match partition.log.read(offset, 1 << 20, end, true) {
                    Ok(s) if !s.records.is_empty() => s,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(partition = p.partition, error = %e, "reading __transaction_state failed");
                        break;
                    }
                };
                let mut bytes = slice.records.clone();
                let sets = match RecordBatchDecoder::decode_all(&mut bytes) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(partition = p.partition, error = %e, "decoding __transaction_state failed");
                        break;
                    }
                };
                let mut next = offset;
                for set in sets {
                    for r in set.records {
                        next = next.max(r.offset + 1);
                        let Some(id) = r.key.and_then(metadata::decode_key) else {
                            continue;
                        };
                        let meta = r
                            .value
                            .and_then(|v| TransactionMetadata::decode_value(id.clone(), v));
                        latest.insert(id, meta);
                    }
                }
                if next <= offset {
                    break;
                }
                offset = next;
            }
        }
        let mut txns = self.txns.lock();
        for (id, meta) in latest {
            let Some(mut meta) = meta else { continue };
            match meta.state {
                TransactionState::PrepareCommit | TransactionState::PrepareAbort => {
                    let commit = meta.state == TransactionState::PrepareCommit;
                    tracing::info!(transactional_id = %id, commit, "completing a transaction interrupted by a restart");
                    if let Err(code) = self.complete(broker, &mut meta, commit) {
                        tracing::error!(transactional_id = %id, ?code, "completing transaction failed");
                    }
                }
                _ => {}
            }
            txns.insert(id, meta);
        }
        if !txns.is_empty() {
            tracing::info!(transactions = txns.len(), "loaded transaction state");
        }
    }

    /// Creates `__transaction_state` if missing; its partition count (the hash modulus).
    pub fn ensure_topic(&self, broker: &Broker) -> i32 {
        if let Some(t) = broker.metadata.image().topic(TRANSACTION_STATE_TOPIC) {
            return t.partitions.len() as i32;
        }
        let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        match broker.create_topic(TRANSACTION_STATE_TOPIC, self.num_partitions, configs) {
            Ok(t) => t.partitions.len() as i32,
            Err(e) => {
                if !matches!(e, strom_meta::MetaError::TopicExists(_)) {
                    tracing::error!(error = %e, "creating __transaction_state failed");
                }
                self.num_partitions
            }
        }
    }

    fn persist(&self, broker: &Broker, meta: &TransactionMetadata) -> Result<(), ErrorCode> {
        self.write_record(broker, &meta.transactional_id, Some(meta.encode_value()))
    }

    /// Appends one `__transaction_state` record: the id's state, or a tombstone (`None`) when
    /// the id expired.
    pub(super) fn write_record(
        &self,
        broker: &Broker,
        transactional_id: &str,
        value: Option<bytes::Bytes>,
    ) -> Result<(), ErrorCode> {
        if broker
            .metadata
            .image()
            .topic(TRANSACTION_STATE_TOPIC)
            .is_none()
        {
            let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
            match broker.create_topic(TRANSACTION_STATE_TOPIC, self.num_partitions, configs) {
                Ok(_) | Err(strom_meta::MetaError::TopicExists(_)) => {}
                Err(e) => {
                    tracing::error!(error = %e, "creating __transaction_state failed");
                    return Err(ErrorCode::CoordinatorNotAvailable);
                }
            }
        }
        // Same placement rule as groups in __consumer_offsets: Kafka's abs(String.hashCode) % n.
        let p = crate::group::persistence::partition_for(transactional_id, self.num_partitions);
        let Some(partition) = broker.replicas.get(TRANSACTION_STATE_TOPIC, p) else {
            return Err(ErrorCode::CoordinatorNotAvailable);
        };
        // In a cluster only the partition's leader coordinates its transactional ids; a
        // follower's copy is written by its fetcher alone.
        if broker.config.is_cluster() && !partition.is_leader() {
            return Err(ErrorCode::NotCoordinator);
        }
        let now = now_ms();
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: now,
            key: Some(metadata::encode_key(transactional_id)),
            value,
            headers: IndexMap::new(),
        };
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, std::iter::once(&record), &options).map_err(|e| {
            tracing::error!(error = %e, "encoding a transaction state record failed");
            ErrorCode::UnknownServerError
        })?;
        partition
            .log
            .append(&mut buf, partition.leader_epoch(), now)
            .map_err(|e| {
                tracing::error!(error = %e, "writing __transaction_state failed");
                ErrorCode::KafkaStorageError
            })?;
        Ok(())
    }

    /// InitProducerId with a transactional id: a producer id and a new epoch, fencing any
    /// previous producer with the same id and aborting its open transaction.
    pub fn init_producer_id(
        &self,
        broker: &Broker,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ErrorCode> {
        if timeout_ms <= 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(ErrorCode::InvalidTransactionTimeout);
        }
        let now = now_ms();
        let mut txns = self.txns.lock();
        let mut meta = match txns.get(transactional_id) {
            None => {
                let id = broker
                    .producer_ids
                    .generate(&broker.metadata)
                    .map_err(|_| ErrorCode::UnknownServerError)?;
                TransactionMetadata {
                    transactional_id: transactional_id.to_string(),
                    producer_id: id,
                    producer_epoch: 0,
                    timeout_ms,
                    state: TransactionState::Empty,
                    partitions: BTreeSet::new(),
                    last_update_ms: now,
                    start_ms: -1,
                }
            }
            Some(existing) => {
                let mut meta = existing.clone();
                // KIP-360: a producer that states its id and epoch must be the current one.
                if let Some((pid, epoch)) = expected
                    && pid >= 0
                    && (pid != meta.producer_id || epoch != meta.producer_epoch)
                {
                    return Err(ErrorCode::ProducerFenced);
                }
                match meta.state {
                    TransactionState::PrepareCommit
                    | TransactionState::PrepareAbort
                    | TransactionState::PrepareEpochFence => {
                        return Err(ErrorCode::ConcurrentTransactions);
                    }
                    TransactionState::Ongoing => {
                        // Fence the old producer: its transaction is aborted under a new epoch.
                        self.bump_epoch(broker, &mut meta)?;
                        self.complete(broker, &mut meta, false)?;
                    }
                    _ => {}
                }
                self.bump_epoch(broker, &mut meta)?;
                meta.timeout_ms = timeout_ms;
                meta.state = TransactionState::Empty;
                meta.partitions.clear();
                meta.start_ms = -1;
                meta.last_update_ms = now;
                meta
            }
        };
        meta.last_update_ms = now;
        self.persist(broker, &meta)?;
        let out = (meta.producer_id, meta.producer_epoch);
        txns.insert(transactional_id.to_string(), meta);
        Ok(out)
    }

    /// A new epoch, or a new producer id when the epoch would overflow.
    fn bump_epoch(&self, broker: &Broker, meta: &mut TransactionMetadata) -> Result<(), ErrorCode> {
        if meta.producer_epoch >= i16::MAX - 1 {
            meta.producer_id = broker
                .producer_ids
                .generate(&broker.metadata)
                .map_err(|_| ErrorCode::UnknownServerError)?;
            meta.producer_epoch = 0;
        } else {
            meta.producer_epoch += 1;
        }
        Ok(())
    }

    /// AddPartitionsToTxn (and, with `verify_only`, the v4+ check that they are already in it).
    pub fn add_partitions(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        verify_only: bool,
    ) -> Result<PartitionResults, ErrorCode> {
        let mut txns = self.txns.lock();
        let meta = txns
            .get_mut(transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        check_producer(meta, producer_id, epoch)?;
        if verify_only {
            return Ok(partitions
                .iter()
                .map(|tp| {
                    let code = if meta.partitions.contains(tp) {
                        ErrorCode::None
                    } else {
                        ErrorCode::InvalidTxnState
                    };
                    (tp.clone(), code)
                })
                .collect());
        }
        if matches!(
            meta.state,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        ) {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        let image = broker.metadata.image();
        let unknown: Vec<&(String, i32)> = partitions
            .iter()
            .filter(|(t, p)| {
                image
                    .topic(t)
                    .is_none_or(|m| *p < 0 || *p as usize >= m.partitions.len())
            })
            .collect();
        if !unknown.is_empty() {
            // Kafka adds nothing then: the unknown ones fail, the rest were not attempted.
            return Ok(partitions
                .iter()
                .map(|tp| {
                    let code = if unknown.contains(&tp) {
                        ErrorCode::UnknownTopicOrPartition
                    } else {
                        ErrorCode::OperationNotAttempted
                    };
                    (tp.clone(), code)
                })
                .collect());
        }
        let mut next = meta.clone();
        let now = now_ms();
        if next.state != TransactionState::Ongoing {
            next.start_ms = now;
        }
        next.state = TransactionState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now;
        self.persist(broker, &next)?;
        *meta = next;
        Ok(partitions
            .iter()
            .map(|tp| (tp.clone(), ErrorCode::None))
            .collect())
    }

    /// EndTxn: prepare (persisted), write the markers, complete (persisted).
    pub fn end_txn(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), ErrorCode> {
        let mut txns = self.txns.lock();
        let meta = txns
            .get_mut(transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        check_producer(meta, producer_id, epoch)?;
        match (meta.state, commit) {
            (TransactionState::Ongoing, _) => {
                let mut next = meta.clone();
                let result = self.complete(broker, &mut next, commit);
                *meta = next;
                result
            }
            // A retry of an end that already happened.
            (TransactionState::CompleteCommit, true) | (TransactionState::CompleteAbort, false) => {
                Ok(())
            }
            (TransactionState::PrepareCommit | TransactionState::PrepareAbort, _) => {
                Err(ErrorCode::ConcurrentTransactions)
            }
            _ => Err(ErrorCode::InvalidTxnState),
        }
    }

    /// Prepare, markers, complete. The prepare record makes a crash in between resumable.
    fn complete(
        &self,
        broker: &Broker,
        meta: &mut TransactionMetadata,
        commit: bool,
    ) -> Result<(), ErrorCode> {
        if !matches!(
            meta.state,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        ) {
            meta.state = if commit {
                TransactionState::PrepareCommit
            } else {
                TransactionState::PrepareAbort
            };
            meta.last_update_ms = now_ms();
            self.persist(broker, meta)?;
        }
        let marker = TxnMarker {
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            commit,
            coordinator_epoch: 0,
        };
        let now = now_ms();
        for (topic, p) in &meta.partitions {
            let Some(partition) = broker.replicas.get(topic, *p) else {
                // Deleted since it joined the transaction: nothing to mark.
                continue;
            };
            if let Err(e) = partition
                .log
                .append_marker(&marker, partition.leader_epoch(), now)
            {
                tracing::error!(topic = %topic, partition = p, error = %e, "writing a transaction marker failed");
                return Err(ErrorCode::KafkaStorageError);
            }
            broker.on_txn_marker(topic, *p, meta.producer_id, commit);
        }
        broker.notify_appended();
        meta.state = if commit {
            TransactionState::CompleteCommit
        } else {
            TransactionState::CompleteAbort
        };
        meta.partitions.clear();
        meta.start_ms = -1;
        meta.last_update_ms = now_ms();
        self.persist(broker, meta)
    }

    /// Abort every transaction open longer than its timeout, fencing its producer with a new
    /// epoch (Kafka does the same, so a late commit from the producer fails).
    pub fn abort_expired(&self, broker: &Broker) {
        let now = now_ms();
        let mut txns = self.txns.lock();
        for meta in txns.values_mut() {
            if meta.state != TransactionState::Ongoing
                || meta.start_ms < 0
                || now - meta.start_ms <= i64::from(meta.timeout_ms)
            {
                continue;
            }
            tracing::info!(transactional_id = %meta.transactional_id, timeout_ms = meta.timeout_ms, "aborting a timed-out transaction");
            let mut next = meta.clone();
            let result = self
                .bump_epoch(broker, &mut next)
                .and_then(|_| self.complete(broker, &mut next, false));
            match result {
                Ok(()) => *meta = next,
                Err(code) => {
                    tracing::error!(transactional_id = %meta.transactional_id, ?code, "aborting timed-out transaction failed")
                }
            }
        }
    }

    /// Whether a transactional batch from this producer may go to this partition: it must have
    /// been added to the producer's open transaction first.
    pub fn partition_in_txn(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ErrorCode> {
        let txns = self.txns.lock();
        let Some(meta) = txns.values().find(|m| m.producer_id == producer_id) else {
            return Err(ErrorCode::InvalidProducerIdMapping);
        };
        if epoch < meta.producer_epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        if meta.state != TransactionState::Ongoing
            || !meta.partitions.contains(&(topic.to_string(), partition))
        {
            return Err(ErrorCode::InvalidTxnState);
        }
        Ok(())
    }

    /// Every transactional id's state (ListTransactions / DescribeTransactions).
    pub fn snapshot(&self) -> Vec<TxnView> {
        let mut out: Vec<TxnView> = self.txns.lock().values().cloned().collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }
}
