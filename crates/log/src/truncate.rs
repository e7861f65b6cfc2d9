//! Cutting the end of the log (a follower whose leader changed drops what the new leader never
//! had: Kafka's `UnifiedLog.truncateTo`), replacing the whole log (a follower that fell below
//! the leader's log start: `truncateFullyAndStartAt`), the leader-epoch queries
//! OffsetForLeaderEpoch answers from, and the high-watermark checkpoint.
//!
//! Truncation holds the maintenance lock (no retention or clean runs meanwhile) and the writer
//! lock; readers holding an older snapshot may see a read error for bytes that are gone, never
//! other data: only a follower truncates, and consumers read it only up to the high watermark,
//! which truncation never passes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{LogError, Result};
use crate::log::{Log, Snapshot, rebuild_producer_state, sync_dir};
use crate::producer_state::ProducerStateManager;
use crate::retention::{delete_segment_files, write_atomically, write_log_start_offset};
use crate::segment::LogSegment;
use crate::txn_index::TxnIndex;

/// The high watermark as of the last checkpoint, so a restarted replica does not expose records
/// that were never committed (Kafka keeps the same in `replication-offset-checkpoint`).
pub const HIGH_WATERMARK_FILE: &str = "high-watermark";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Log {
    /// Removes every record at or after `offset`; returns whether anything was removed. An
    /// offset below the log start replaces the whole log with an empty one starting there.
    pub fn truncate_to(&self, offset: i64) -> Result<bool> {
        let _maintenance = self.maintenance.lock();
        let mut producers = self.writer.lock();
        let snapshot = self.snapshot();
        if offset >= snapshot.log_end_offset {
            // No records to remove, but an epoch entry may start at the end: this replica
            // began leading an epoch and died before appending in it. Left there, it is the
            // last fetched epoch a new leader keeps answering with a diverging epoch.
            self.epochs
                .lock()
                .truncate_from_end(snapshot.log_end_offset)?;
            return Ok(false);
        }
        if offset < snapshot.log_start_offset || offset < 0 {
            self.replace_with_empty(&mut producers, &snapshot, offset.max(0))?;
            return Ok(true);
        }
        if self.marker_written.swap(false, Ordering::AcqRel) {
            self.remove_clean_shutdown_marker()?;
        }
        let config = self.config();
        let segments = &snapshot.segments;
        let keep = segments.partition_point(|s| s.base_offset() < offset);
        let removed: Vec<Arc<LogSegment>> = segments[keep..].to_vec();
        let mut kept: Vec<Arc<LogSegment>> = segments[..keep].to_vec();
        let new_end = match kept.last() {
            Some(last) => {
                let i = keep - 1;
                let end = if i + 1 == segments.len() {
                    snapshot.active_end
                } else {
                    last.size()
                };
                let cut = last.locate(offset, end)?.map_or(end, |b| b.position);
                last.truncate_to(cut)?;
                crate::recovery::recover_segment(last, config.index_interval_bytes)?
            }
            None => {
                // The cut is at the first segment's base: an empty segment there.
                for s in &removed {
                    delete_segment_files(&self.dir, s.base_offset())?;
                }
                let fresh = Arc::new(LogSegment::open(&self.dir, offset, now_ms())?);
                fresh.truncate_to(0)?;
                kept.push(fresh);
                offset
            }
        };
        if !removed.is_empty() && keep > 0 {
            for s in &removed {
                delete_segment_files(&self.dir, s.base_offset())?;
            }
        }
        let active = kept.last().cloned();
        let active_base = active.as_ref().map_or(offset, |a| a.base_offset());
        let active_end = active.as_ref().map_or(0, |a| a.size());
        // Aborted transactions whose markers were cut go from memory and from the file.
        let mut aborted = self.aborted.write();
        TxnIndex::truncate_file(&self.dir, active_base, new_end)?;
        let bases: Vec<i64> = kept.iter().map(|s| s.base_offset()).collect();
        *aborted = TxnIndex::load(&self.dir, &bases, new_end)?;
        // Producer state as of the new end: the newest snapshot at or below it (later ones are
        // removed) plus the batches after it.
        let rebuilt = rebuild_producer_state(&self.dir, &kept, new_end, active_end, &mut aborted)?;
        drop(aborted);
        *producers = rebuilt;
        self.epochs.lock().truncate_from_end(new_end)?;
        self.clamp_cleaner_checkpoint(new_end)?;
        let inactive_bytes = kept.iter().rev().skip(1).map(|s| s.size()).sum();
        *self.snapshot.write() = Arc::new(Snapshot {
            segments: Arc::new(kept),
            log_start_offset: snapshot.log_start_offset,
            log_end_offset: new_end,
            active_end,
            inactive_bytes,
            first_unstable_offset: producers.first_unstable_offset(),
        });
        self.dir_dirty.store(true, Ordering::Release);
        self.flush()?;
        tracing::info!(
            dir = %self.dir.display(),
            from = snapshot.log_end_offset,
            to = new_end,
            "truncated log"
        );
        Ok(true)
    }

    /// Deletes every segment and starts an empty log at `offset` (a follower whose fetch
    /// offset is below the leader's log start, as Kafka's `truncateFullyAndStartAt`).
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        let _maintenance = self.maintenance.lock();
        let mut producers = self.writer.lock();
        let snapshot = self.snapshot();
        self.replace_with_empty(&mut producers, &snapshot, offset.max(0))
    }

    fn replace_with_empty(
        &self,
        producers: &mut ProducerStateManager,
        snapshot: &Snapshot,
        offset: i64,
    ) -> Result<()> {
        if self.marker_written.swap(false, Ordering::AcqRel) {
            self.remove_clean_shutdown_marker()?;
        }
        for s in snapshot.segments.iter() {
            delete_segment_files(&self.dir, s.base_offset())?;
        }
        remove_producer_snapshots(&self.dir)?;
        let fresh = Arc::new(LogSegment::open(&self.dir, offset, now_ms())?);
        fresh.truncate_to(0)?;
        write_log_start_offset(&self.dir, offset)?;
        *producers = ProducerStateManager::new();
        *self.aborted.write() = TxnIndex::default();
        self.epochs.lock().clear()?;
        self.clamp_cleaner_checkpoint(offset)?;
        *self.snapshot.write() = Arc::new(Snapshot {
            segments: Arc::new(vec![fresh]),
            log_start_offset: offset,
            log_end_offset: offset,
            active_end: 0,
            inactive_bytes: 0,
            first_unstable_offset: None,
        });
        sync_dir(&self.dir)?;
        tracing::info!(dir = %self.dir.display(), offset, "replaced log with an empty one");
        Ok(())
    }

    fn clamp_cleaner_checkpoint(&self, end: i64) -> Result<()> {
        let name = crate::cleaner::CLEANER_CHECKPOINT_FILE;
        let current = std::fs::read_to_string(self.dir.join(name))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok());
        if current.is_some_and(|c| c > end) {
            write_atomically(&self.dir, name, format!("{end}\n").as_bytes())?;
        }
        Ok(())
    }

    /// A new leader records that its epoch starts at its log end offset (Kafka's
    /// `maybeAssignEpochStartOffset`), before any record of the epoch is written.
    pub fn assign_epoch_start(&self, epoch: i32) -> Result<()> {
        let _writer = self.writer.lock();
        let end = self.snapshot().log_end_offset;
        self.epochs.lock().assign(epoch, end)?;
        Ok(())
    }

    /// The newest leader epoch this log holds records of.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.lock().latest_epoch()
    }

    /// OffsetForLeaderEpoch: the largest epoch <= `epoch` this log knows and the offset where
    /// it ends (the log end offset for the latest); (-1, -1) when unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let _writer = self.writer.lock();
        let end = self.snapshot().log_end_offset;
        self.epochs.lock().end_offset_for(epoch, end)
    }

    /// (epoch, start offset) entries of the leader-epoch cache, oldest first.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.epochs
            .lock()
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    /// Persists the high watermark (atomically; a no-op write is skipped by the caller).
    pub fn checkpoint_high_watermark(&self, high_watermark: i64) -> Result<()> {
        write_atomically(
            &self.dir,
            HIGH_WATERMARK_FILE,
            format!("{high_watermark}\n").as_bytes(),
        )
    }

    /// The last checkpointed high watermark, bounded by the log end offset.
    pub fn high_watermark_checkpoint(&self) -> Option<i64> {
        let text = std::fs::read_to_string(self.dir.join(HIGH_WATERMARK_FILE)).ok()?;
        let hw: i64 = text.trim().parse().ok()?;
        Some(hw.clamp(self.log_start_offset(), self.log_end_offset()))
    }
}

fn remove_producer_snapshots(dir: &std::path::Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("listing", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.ends_with(".snapshot")) {
            std::fs::remove_file(entry.path())
                .map_err(|e| LogError::io("removing", &entry.path(), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Log, LogConfig};

    /// A replica that began leading an epoch and died before appending in it holds an epoch
    /// entry at its log end. As a follower it reports that epoch as its last fetched one, and
    /// the new leader, which never had it, answers with a diverging epoch ending right there.
    /// Truncating to its own end must drop the entry, or the follower asks the same question
    /// forever and never rejoins the ISR.
    #[test]
    fn truncating_to_the_log_end_drops_an_epoch_that_starts_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path(), LogConfig::default(), [7; 16]).expect("open");
        log.epochs.lock().assign(1, 0).expect("assign");
        assert_eq!(log.latest_epoch(), Some(1));
        assert!(
            !log.truncate_to(0).expect("truncate"),
            "no records to remove"
        );
        assert_eq!(log.latest_epoch(), None);
        assert_eq!(log.log_end_offset(), 0);
    }
}
