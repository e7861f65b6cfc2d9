//! `producer.id.expiration.ms`: a producer that has written nothing to a partition for that long
//! is forgotten there (Kafka's `removeExpiredProducers`), so the state of idle idempotent
//! producers does not grow without bound. A producer with an open transaction is never dropped:
//! its transaction pins the last stable offset until a marker closes it.
//!
//! Must not touch: segments, the aborted-transaction index (only the in-memory producer table and
//! the snapshot readers see change).

use crate::log::Log;
use crate::producer_state::ProducerStateManager;

impl ProducerStateManager {
    /// Drops producers without an open transaction whose last batch's timestamp is older than
    /// `now_ms - max_age_ms`; returns how many went.
    pub fn remove_expired(&mut self, now_ms: i64, max_age_ms: i64) -> usize {
        let horizon = now_ms.saturating_sub(max_age_ms.max(0));
        self.retain_producers(|entry_last_timestamp, has_ongoing_txn| {
            has_ongoing_txn || entry_last_timestamp.is_none_or(|ts| ts >= horizon)
        })
    }
}

impl Log {
    /// [`ProducerStateManager::remove_expired`] on this partition's producers.
    pub fn remove_expired_producers(&self, now_ms: i64, max_age_ms: i64) -> usize {
        let removed = self.writer.lock().remove_expired(now_ms, max_age_ms);
        if removed > 0 {
            tracing::debug!(dir = %self.dir.display(), removed, "expired idle producers");
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use crate::batch::BatchHeader;
    use crate::producer_state::{ProducerStateManager, SequenceCheck};

    fn header(pid: i64, seq: i32, ts: i64, transactional: bool) -> BatchHeader {
        BatchHeader {
            base_offset: seq as i64,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: if transactional { 0x10 } else { 0 },
            last_offset_delta: 0,
            base_timestamp: ts,
            max_timestamp: ts,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: seq,
            records_count: 1,
        }
    }

    #[test]
    fn idle_producers_go_open_transactions_stay() {
        let mut s = ProducerStateManager::new();
        s.update(&header(1, 0, 1_000, false));
        s.update(&header(2, 0, 5_000, false));
        s.update(&header(3, 0, 0, true));
        assert!(
            s.check(&header(1, 7, 6_000, false)).is_err(),
            "a gap while known"
        );
        assert_eq!(s.remove_expired(6_000, 2_000), 1);
        assert_eq!(s.len(), 2);
        assert!(s.has_ongoing_txn(3));
        // Forgotten: its next batch starts it afresh, whatever its sequence.
        assert_eq!(
            s.check(&header(1, 7, 6_000, false)).unwrap(),
            SequenceCheck::Append
        );
        assert_eq!(s.remove_expired(6_000, i64::MAX), 0);
    }

    /// Transaction protocol v2: the marker bumps the epoch, which drops the cached batches; the
    /// producer must still expire, counted from the marker.
    #[test]
    fn producers_known_from_an_epoch_bumping_marker_expire_from_it() {
        let mut s = ProducerStateManager::new();
        s.update(&header(1, 0, 1_000, true));
        let mut marker = header(1, -1, 3_000, true);
        marker.attributes |= 0x20; // control
        marker.producer_epoch = 1;
        assert!(s.complete_txn(&marker, true).is_some());
        assert_eq!(s.active_producers()[0].last_timestamp, 3_000);
        assert_eq!(s.remove_expired(4_000, 2_000), 0, "the marker is recent");
        assert_eq!(s.remove_expired(6_000, 2_000), 1);
        assert!(s.is_empty());
    }
}
