//! The transaction coordinator: producer ids and epochs per `transactional.id`, the partitions of
//! each open transaction, and the two-phase end (prepare, markers, complete), persisted in the
//! internal topic `__transaction_state` before anything is answered.
//!
//! One lock guards every transactional id: transaction control requests are rare next to
//! produce traffic, and the lock keeps the prepare/markers/complete sequence atomic. Markers
//! for partitions led by other brokers go out in the background (`markers`); the id stays in
//! its Prepare state, answering CONCURRENT_TRANSACTIONS, until they are all written.
//!
//! In a cluster the coordinator holds the ids of exactly the `__transaction_state` partitions
//! led here (`follow_leaders`), loading them from the local replica when it becomes their
//! leader and finishing any transaction its predecessor left prepared.

use super::markers::{self, MarkerJob};
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
use std::sync::Arc;
use strom_log::TxnMarker;
use strom_meta::MetadataImage;

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// Kafka's `transaction.state.log.num.partitions` default.
pub const DEFAULT_NUM_PARTITIONS: i32 = 50;
/// Kafka's `transaction.max.timeout.ms` default.
pub const MAX_TIMEOUT_MS: i32 = 900_000;

pub struct TransactionCoordinator {
    pub(super) txns: Mutex<HashMap<String, TransactionMetadata>>,
    num_partitions: i32,
    /// Cluster only: the `__transaction_state` partitions whose ids are loaded here (`None`
    /// until the first metadata image). Locked before, never while holding, `txns`.
    coordinating: Mutex<Option<BTreeSet<i32>>>,
}

/// How an end of transaction stands once `complete` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completion {
    /// Every marker is written and the Complete state persisted.
    Done,
    /// Markers for other brokers' partitions are on their way; the id stays prepared.
    MarkersPending,
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
            coordinating: Mutex::new(None),
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
    /// transaction caught between prepare and complete gets its markers now. A cluster node
    /// loads partitions as it becomes their leader instead (`follow_leaders`).
    pub fn load(&self, broker: &Arc<Broker>) {
        if broker.config.is_cluster() {
            return;
        }
        let image = broker.metadata.image();
        let Some(topic) = image.topic(TRANSACTION_STATE_TOPIC) else {
            return;
        };
        let mut latest = BTreeMap::new();
        for p in &topic.partitions {
            latest.append(&mut read_partition(broker, p.partition));
        }
        self.adopt(broker, latest);
    }

    /// Takes over the ids read from the log, completing those left prepared.
    fn adopt(&self, broker: &Arc<Broker>, latest: BTreeMap<String, Option<TransactionMetadata>>) {
        let mut txns = self.txns.lock();
        let mut loaded = 0;
        for (id, meta) in latest {
            let Some(mut meta) = meta else { continue };
            if let TransactionState::PrepareCommit | TransactionState::PrepareAbort = meta.state {
                let commit = meta.state == TransactionState::PrepareCommit;
                tracing::info!(transactional_id = %id, commit, "completing a transaction its coordinator left prepared");
                if let Err(code) = self.complete(broker, &mut meta, commit) {
                    tracing::error!(transactional_id = %id, ?code, "completing transaction failed");
                }
            }
            txns.insert(id, meta);
            loaded += 1;
        }
        if loaded > 0 {
            tracing::info!(transactions = loaded, "loaded transaction state");
        }
    }

    /// Leadership of `__transaction_state` partitions moved (cluster only): the ids of a
    /// partition no longer led here are dropped, those of a newly led one loaded (Kafka's
    /// onElection / onResignation of the transaction coordinator).
    pub fn follow_leaders(&self, broker: &Arc<Broker>, image: &MetadataImage) {
        if !broker.config.is_cluster() {
            return;
        }
        let Some(topic) = image.topic(TRANSACTION_STATE_TOPIC) else {
            return;
        };
        let n = topic.partitions.len() as i32;
        let mut coordinating = self.coordinating.lock();
        let held = coordinating.get_or_insert_with(BTreeSet::new);
        for m in &topic.partitions {
            let p = m.partition;
            let leads = broker
                .replicas
                .get(TRANSACTION_STATE_TOPIC, p)
                .is_some_and(|r| r.is_leader());
            if leads == held.contains(&p) {
                continue;
            }
            self.txns
                .lock()
                .retain(|id, _| crate::group::persistence::partition_for(id, n) != p);
            if leads {
                // Held first: marker senders that `adopt` starts check it.
                held.insert(p);
                let latest = read_partition(broker, p);
                tracing::info!(
                    partition = p,
                    ids = latest.len(),
                    "now coordinating this partition's transactional ids"
                );
                self.adopt(broker, latest);
            } else {
                tracing::info!(
                    partition = p,
                    "no longer coordinating this partition's transactional ids"
                );
                held.remove(&p);
            }
        }
    }

    /// NOT_COORDINATOR unless this node coordinates `transactional_id` (always, on one node).
    pub fn check_coordinator(
        &self,
        broker: &Broker,
        transactional_id: &str,
    ) -> Result<(), ErrorCode> {
        if !broker.config.is_cluster() {
            return Ok(());
        }
        let p = crate::group::persistence::partition_for(
            transactional_id,
            self.partition_count(broker),
        );
        let held = self.coordinating.lock();
        if held.as_ref().is_some_and(|h| h.contains(&p)) {
            Ok(())
        } else {
            Err(ErrorCode::NotCoordinator)
        }
    }

    /// The partition count of `__transaction_state` (the hash modulus of transactional ids).
    fn partition_count(&self, broker: &Broker) -> i32 {
        broker
            .metadata
            .image()
            .topic(TRANSACTION_STATE_TOPIC)
            .map_or(self.num_partitions, |t| t.partitions.len() as i32)
    }

    /// Every marker of a transaction end has been written (`markers`): the id completes, unless
    /// it moved on meanwhile (a new coordinator finished it already).
    pub(super) fn finish_markers(&self, broker: &Broker, job: &MarkerJob) {
        let mut txns = self.txns.lock();
        let Some(meta) = txns.get_mut(&job.transactional_id) else {
            return;
        };
        let prepared = if job.marker.commit {
            TransactionState::PrepareCommit
        } else {
            TransactionState::PrepareAbort
        };
        if meta.producer_id != job.marker.producer_id
            || meta.producer_epoch != job.marker.producer_epoch
            || meta.state != prepared
        {
            return;
        }
        let mut next = meta.clone();
        mark_complete(&mut next, job.marker.commit);
        match self.persist(broker, &next) {
            Ok(()) => *meta = next,
            Err(code) => {
                tracing::warn!(transactional_id = %job.transactional_id, ?code, "persisting a completed transaction failed; its next coordinator completes it")
            }
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
        let p = crate::group::persistence::partition_for(
            transactional_id,
            self.partition_count(broker),
        );
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
        broker: &Arc<Broker>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ErrorCode> {
        if timeout_ms <= 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(ErrorCode::InvalidTransactionTimeout);
        }
        self.check_coordinator(broker, transactional_id)?;
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
                        let done = self.complete(broker, &mut meta, false);
                        let pending = done == Ok(Completion::MarkersPending);
                        if done.is_ok() {
                            txns.insert(transactional_id.to_string(), meta.clone());
                        }
                        done?;
                        if pending {
                            // The producer retries until the abort's markers are written.
                            return Err(ErrorCode::ConcurrentTransactions);
                        }
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
        broker: &Arc<Broker>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        verify_only: bool,
    ) -> Result<PartitionResults, ErrorCode> {
        self.check_coordinator(broker, transactional_id)?;
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

    /// EndTxn: prepare (persisted), write the markers, complete (persisted). With transaction
    /// protocol v2 (`v2`) every end bumps the producer epoch, the markers carry the new epoch
    /// (fencing any late batch of the ended transaction) and the new id and epoch are returned;
    /// a retry from the previous epoch of an end that already happened succeeds. An abort of a
    /// transaction with nothing in it is then allowed too (it only bumps the epoch).
    pub fn end_txn(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        v2: bool,
    ) -> Result<(i64, i16), ErrorCode> {
        use TransactionState::*;
        self.check_coordinator(broker, transactional_id)?;
        let mut txns = self.txns.lock();
        let meta = txns
            .get_mut(transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if meta.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        let current = (meta.producer_id, meta.producer_epoch);
        if v2 && i32::from(epoch) + 1 == i32::from(meta.producer_epoch) {
            return match (meta.state, commit) {
                (CompleteCommit, true) | (CompleteAbort, false) => Ok(current),
                (PrepareCommit, true) | (PrepareAbort, false) => {
                    Err(ErrorCode::ConcurrentTransactions)
                }
                // Ended otherwise meanwhile (a timeout aborted it, or a new producer fenced it).
                _ => Err(ErrorCode::ProducerFenced),
            };
        }
        if meta.producer_epoch != epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        match (meta.state, commit) {
            (Ongoing, _) => {
                let mut next = meta.clone();
                // At the last epoch the id keeps it; Kafka would move to a new producer id.
                if v2 && next.producer_epoch < i16::MAX - 1 {
                    next.producer_epoch += 1;
                }
                let result = self.complete(broker, &mut next, commit);
                *meta = next;
                result.map(|_| (meta.producer_id, meta.producer_epoch))
            }
            (Empty | CompleteCommit | CompleteAbort, false) if v2 => {
                let mut next = meta.clone();
                self.bump_epoch(broker, &mut next)?;
                mark_complete(&mut next, false);
                self.persist(broker, &next)?;
                *meta = next;
                Ok((meta.producer_id, meta.producer_epoch))
            }
            // A retry of an end that already happened.
            (CompleteCommit, true) | (CompleteAbort, false) => Ok(current),
            (PrepareCommit | PrepareAbort, _) => Err(ErrorCode::ConcurrentTransactions),
            _ => Err(ErrorCode::InvalidTxnState),
        }
    }

    /// Prepare, markers, complete. The prepare record makes a crash in between resumable.
    /// Partitions led here get their markers now; the others through `markers`, after which
    /// `finish_markers` completes the id.
    fn complete(
        &self,
        broker: &Arc<Broker>,
        meta: &mut TransactionMetadata,
        commit: bool,
    ) -> Result<Completion, ErrorCode> {
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
        let mut remote = BTreeSet::new();
        for (topic, p) in &meta.partitions {
            match markers::append_local(broker, topic, *p, &marker) {
                Ok(()) => {}
                // Deleted since it joined the transaction: nothing to mark.
                Err(code) if code == ErrorCode::UnknownTopicOrPartition.code() => {}
                Err(code) if code == ErrorCode::NotLeaderOrFollower.code() => {
                    remote.insert((topic.clone(), *p));
                }
                Err(code) => {
                    tracing::error!(topic = %topic, partition = p, code, "writing a transaction marker failed");
                    return Err(ErrorCode::KafkaStorageError);
                }
            }
        }
        broker.notify_appended();
        if !remote.is_empty() {
            markers::spawn(
                broker,
                MarkerJob {
                    transactional_id: meta.transactional_id.clone(),
                    marker,
                    partitions: remote,
                },
            );
            return Ok(Completion::MarkersPending);
        }
        mark_complete(meta, commit);
        self.persist(broker, meta)?;
        Ok(Completion::Done)
    }

    /// Abort every transaction open longer than its timeout, fencing its producer with a new
    /// epoch (Kafka does the same, so a late commit from the producer fails).
    pub fn abort_expired(&self, broker: &Arc<Broker>) {
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
                .and_then(|_| self.complete(broker, &mut next, false).map(|_| ()));
            match result {
                Ok(()) => *meta = next,
                Err(code) => {
                    tracing::error!(transactional_id = %meta.transactional_id, ?code, "aborting timed-out transaction failed")
                }
            }
        }
    }

    /// Whether a transactional batch from this producer may go to this partition: it must have
    /// been added to the producer's open transaction first. In a cluster a producer whose
    /// coordinator is another broker is let through: the coordinator checked its
    /// AddPartitionsToTxn (as Kafka before KIP-890's verification).
    pub fn partition_in_txn(
        &self,
        broker: &Broker,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ErrorCode> {
        let txns = self.txns.lock();
        let Some(meta) = txns.values().find(|m| m.producer_id == producer_id) else {
            if broker.config.is_cluster() {
                return Ok(());
            }
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

/// The Complete state after every marker of the transaction end is written.
fn mark_complete(meta: &mut TransactionMetadata, commit: bool) {
    meta.state = if commit {
        TransactionState::CompleteCommit
    } else {
        TransactionState::CompleteAbort
    };
    meta.partitions.clear();
    meta.start_ms = -1;
    meta.last_update_ms = now_ms();
}

/// The latest state of each transactional id in the local replica of `__transaction_state`
/// partition `index` (`None` for a tombstoned id).
fn read_partition(broker: &Broker, index: i32) -> BTreeMap<String, Option<TransactionMetadata>> {
    let mut latest = BTreeMap::new();
    let Some(partition) = broker.replicas.get(TRANSACTION_STATE_TOPIC, index) else {
        return latest;
    };
    let end = partition.log.log_end_offset();
    let mut offset = partition.log.log_start_offset();
    while offset < end {
        let slice = match partition.log.read(offset, 1 << 20, end, true) {
            Ok(s) if !s.records.is_empty() => s,
            Ok(_) => break,
            Err(e) => {
                tracing::error!(partition = index, error = %e, "reading __transaction_state failed");
                break;
            }
        };
        let mut bytes = slice.records.clone();
        let sets = match RecordBatchDecoder::decode_all(&mut bytes) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(partition = index, error = %e, "decoding __transaction_state failed");
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
    latest
}
