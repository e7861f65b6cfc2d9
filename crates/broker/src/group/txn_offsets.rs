//! Offsets committed inside a transaction (TxnOffsetCommit), made durable the way Kafka does:
//! written to `__consumer_offsets` as a transactional batch under the producer's id and epoch,
//! so they survive a restart between TxnOffsetCommit and EndTxn. The transaction's marker on that
//! partition decides them: commit makes them the group's committed offsets, abort drops them,
//! both while running (`GroupCoordinator::complete_txn`) and when the log is read back at start
//! ([`TxnOffsetLoader`]).
//!
//! Owns: writing those batches and sorting records read back into decided and pending ones.
//! Must not touch: group membership, the transaction coordinator's state, the markers (the
//! transaction coordinator writes them).

use super::coordinator::PendingTxnOffset;
use super::persistence::{CoordinatorRecord, OFFSETS_TOPIC, offset_key, offset_value};
use crate::broker::Broker;
use crate::error::ErrorCode;
use bytes::BytesMut;
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::Mutex;
use std::collections::HashMap;

/// The sequence of a producer's next batch is read from the partition's producer state and used
/// in the append; two commits of one producer racing would otherwise take the same sequence.
static APPEND: Mutex<()> = Mutex::new(());

/// Writes `offsets` (all of one group) to `__consumer_offsets` partition `partition` as one
/// transactional batch of `producer_id` at `producer_epoch`.
pub fn append(
    broker: &Broker,
    partition: i32,
    producer_id: i64,
    producer_epoch: i16,
    offsets: &[PendingTxnOffset],
    now_ms: i64,
) -> Result<(), ErrorCode> {
    if offsets.is_empty() {
        return Ok(());
    }
    let Some(p) = broker.replicas.get(OFFSETS_TOPIC, partition) else {
        return Err(ErrorCode::CoordinatorNotAvailable);
    };
    let _guard = APPEND.lock();
    // The log checks idempotent sequences per producer: continue this producer's sequence on
    // this partition, or start at 0 in a new epoch.
    let base_sequence = p
        .log
        .active_producers()
        .into_iter()
        .find(|a| a.producer_id == producer_id)
        .filter(|a| a.producer_epoch == producer_epoch && a.last_sequence >= 0)
        .map_or(0, |a| {
            if a.last_sequence == i32::MAX {
                0
            } else {
                a.last_sequence + 1
            }
        });
    let records: Vec<Record> = offsets
        .iter()
        .enumerate()
        .map(|(i, o)| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: now_ms,
            key: Some(offset_key(&o.group, &o.topic, o.partition)),
            value: Some(offset_value(&o.value)),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::with_capacity(128);
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| {
        tracing::error!(error = %e, "encoding transactional offset commits failed");
        ErrorCode::UnknownServerError
    })?;
    match p.log.append(&mut buf, p.leader_epoch(), now_ms) {
        Ok(_) => {
            broker.notify_appended();
            Ok(())
        }
        Err(e) => {
            tracing::warn!(partition, producer_id, error = %e, "writing transactional offset commits failed");
            match e.kafka_error_code() {
                // Kafka answers an oversized commit with INVALID_COMMIT_OFFSET_SIZE.
                10 | 18 => Err(ErrorCode::InvalidCommitOffsetSize),
                // A zombie's epoch: the transaction coordinator's checks normally catch it first.
                47 => Err(ErrorCode::ProducerFenced),
                _ => Err(ErrorCode::CoordinatorNotAvailable),
            }
        }
    }
}

/// Whether a control record's key says commit (`Some(true)`) or abort (`Some(false)`).
pub fn marker_commits(key: &[u8]) -> Option<bool> {
    let kind = i16::from_be_bytes([*key.get(2)?, *key.get(3)?]);
    match kind {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// Offsets of open transactions, by producer id.
pub type PendingByProducer = HashMap<i64, Vec<PendingTxnOffset>>;

/// Reading `__consumer_offsets` back: transactional offset records wait for their producer's
/// marker; what no marker decided yet is still pending when the log ends.
#[derive(Default)]
pub struct TxnOffsetLoader {
    /// By (`__consumer_offsets` partition, producer id): a marker decides only its partition.
    held: HashMap<(i32, i64), Vec<PendingTxnOffset>>,
}

impl TxnOffsetLoader {
    /// A record from a transactional batch of `producer_id` in `partition`. Only offset commits
    /// are held; anything else a transaction could carry is passed through as it is.
    pub fn hold(
        &mut self,
        partition_of_log: i32,
        producer_id: i64,
        record: CoordinatorRecord,
    ) -> Option<CoordinatorRecord> {
        match record {
            CoordinatorRecord::Offset {
                group,
                topic,
                partition,
                value: Some(value),
            } => {
                let held = self
                    .held
                    .entry((partition_of_log, producer_id))
                    .or_default();
                held.retain(|p| {
                    !(p.group == group && p.topic == topic && p.partition == partition)
                });
                held.push(PendingTxnOffset {
                    group,
                    topic,
                    partition,
                    value,
                });
                None
            }
            other => Some(other),
        }
    }

    /// A non-transactional record: an offset commit written after a transactional one for the
    /// same partition wins over it when the transaction commits (Kafka compares their log
    /// positions the same way).
    pub fn observe(&mut self, record: &CoordinatorRecord) {
        if let CoordinatorRecord::Offset {
            group,
            topic,
            partition,
            ..
        } = record
        {
            for held in self.held.values_mut() {
                held.retain(|p| {
                    !(&p.group == group && &p.topic == topic && p.partition == *partition)
                });
            }
        }
    }

    /// `producer_id`'s marker in `partition`: its held offsets there, as committed offset
    /// records on commit.
    pub fn marker(
        &mut self,
        partition_of_log: i32,
        producer_id: i64,
        commit: bool,
    ) -> Vec<CoordinatorRecord> {
        let held = self
            .held
            .remove(&(partition_of_log, producer_id))
            .unwrap_or_default();
        if !commit {
            return Vec::new();
        }
        held.into_iter()
            .map(|p| CoordinatorRecord::Offset {
                group: p.group,
                topic: p.topic,
                partition: p.partition,
                value: Some(p.value),
            })
            .collect()
    }

    /// Offsets of transactions still open at the end of the log, by producer id.
    pub fn into_pending(self) -> PendingByProducer {
        let mut out = PendingByProducer::new();
        for ((_, producer_id), offsets) in self.held {
            if !offsets.is_empty() {
                out.entry(producer_id).or_default().extend(offsets);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::offsets::OffsetAndMetadata;

    fn offset(group: &str, partition: i32, committed: i64) -> CoordinatorRecord {
        CoordinatorRecord::Offset {
            group: group.into(),
            topic: "t".into(),
            partition,
            value: Some(OffsetAndMetadata {
                committed_offset: committed,
                leader_epoch: None,
                metadata: String::new(),
                commit_timestamp: 0,
                expire_timestamp: None,
            }),
        }
    }

    fn committed(records: &[CoordinatorRecord]) -> Vec<(i32, i64)> {
        records
            .iter()
            .filter_map(|r| match r {
                CoordinatorRecord::Offset {
                    partition,
                    value: Some(v),
                    ..
                } => Some((*partition, v.committed_offset)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn commit_applies_abort_drops_open_stays_pending() {
        let mut l = TxnOffsetLoader::default();
        assert!(l.hold(0, 1, offset("g", 0, 10)).is_none());
        assert!(l.hold(0, 1, offset("g", 0, 12)).is_none());
        assert!(l.hold(0, 2, offset("g", 1, 20)).is_none());
        assert!(l.hold(0, 3, offset("g", 2, 30)).is_none());
        assert_eq!(committed(&l.marker(0, 1, true)), vec![(0, 12)]);
        assert!(l.marker(0, 2, false).is_empty());
        assert!(
            l.marker(0, 1, true).is_empty(),
            "a marker applies a transaction once"
        );
        assert!(l.hold(5, 4, offset("g", 3, 40)).is_none());
        assert!(
            l.marker(6, 4, true).is_empty(),
            "a marker decides its own partition only"
        );
        let pending = l.into_pending();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[&3][0].value.committed_offset, 30);
    }

    #[test]
    fn a_later_plain_commit_wins() {
        let mut l = TxnOffsetLoader::default();
        assert!(l.hold(0, 1, offset("g", 0, 10)).is_none());
        assert!(l.hold(0, 1, offset("g", 1, 11)).is_none());
        l.observe(&offset("g", 0, 99));
        assert_eq!(committed(&l.marker(0, 1, true)), vec![(1, 11)]);
    }

    #[test]
    fn control_keys() {
        assert_eq!(marker_commits(&[0, 0, 0, 1]), Some(true));
        assert_eq!(marker_commits(&[0, 0, 0, 0]), Some(false));
        assert_eq!(marker_commits(&[0, 0]), None);
    }
}
