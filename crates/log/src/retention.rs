//! Deleting old data: whole closed segments by `retention.ms` and `retention.bytes` (Kafka's
//! `UnifiedLog.deleteOldSegments`), and moving the log start offset forward (DeleteRecords).
//!
//! The active segment is never deleted. Segments are deleted as a prefix of the log: the new
//! segment list is published first (readers holding the old one keep reading their open files),
//! then the files go. The log start offset is kept in `log-start-offset` in the partition
//! directory when it is past the first segment's base (Kafka keeps the same number in its
//! per-directory `log-start-offset-checkpoint`).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::error::{LogError, Result};
use crate::log::{Log, Snapshot};
use crate::segment::{INDEX_SUFFIX, LOG_SUFFIX, LogSegment, TIME_INDEX_SUFFIX, segment_file};
use crate::txn_index::TXN_INDEX_SUFFIX;

/// The log start offset, written whenever it moves.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";

/// What one retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionStats {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: i64,
}

pub(crate) fn read_log_start_offset(dir: &Path) -> Result<Option<i64>> {
    let path = dir.join(LOG_START_OFFSET_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().parse::<i64>().ok().filter(|o| *o >= 0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io("reading", &path, e)),
    }
}

/// Replaces the checkpoint atomically (temporary file, fsync, rename, directory fsync).
pub(crate) fn write_log_start_offset(dir: &Path, offset: i64) -> Result<()> {
    write_atomically(dir, LOG_START_OFFSET_FILE, format!("{offset}\n").as_bytes())
}

pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(|e| LogError::io("writing", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| LogError::io("renaming to", &path, e))?;
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("syncing directory", dir, e))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("deleting", path, e)),
    }
}

/// Deletes a segment's files: the `.log` first, so a crash part way leaves at most index files
/// without data, which the next open removes.
pub(crate) fn delete_segment_files(dir: &Path, base_offset: i64) -> Result<()> {
    for suffix in [
        LOG_SUFFIX,
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        TXN_INDEX_SUFFIX,
    ] {
        remove_if_present(&segment_file(dir, base_offset, suffix))?;
    }
    Ok(())
}

/// Producer snapshots below `offset` (the first segment's base) describe deleted data.
fn delete_snapshots_below(dir: &Path, offset: i64) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| LogError::io("listing", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".snapshot")
            && stem.len() == 20
            && stem.parse::<i64>().is_ok_and(|o| o < offset)
        {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}

/// A segment's newest timestamp, or its file's modification time when its batches carry none
/// (Kafka's `largestTimestamp`).
fn largest_timestamp(segment: &LogSegment) -> i64 {
    if let Some(max) = segment.max_timestamp()
        && max.timestamp >= 0
    {
        return max.timestamp;
    }
    fs::metadata(segment.path())
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(i64::MAX, |d| {
            i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
        })
}

impl Log {
    /// Publishes a new segment list (and start offset), keeping the current end. Call with the
    /// writer lock held.
    pub(crate) fn publish_segments(
        &self,
        current: &Snapshot,
        segments: Vec<Arc<LogSegment>>,
        log_start_offset: i64,
    ) {
        let inactive_bytes = segments.iter().rev().skip(1).map(|s| s.size()).sum();
        *self.snapshot.write() = Arc::new(Snapshot {
            segments: Arc::new(segments),
            log_start_offset,
            log_end_offset: current.log_end_offset,
            active_end: current.active_end,
            inactive_bytes,
            first_unstable_offset: current.first_unstable_offset,
        });
    }

    /// One retention pass (Kafka's `deleteOldSegments`): closed segments wholly below the log
    /// start offset always go; with `cleanup.policy=delete`, so do those whose newest timestamp
    /// is more than `retention.ms` before `now_ms`, and the oldest ones while the log is more
    /// than `retention.bytes` too large. The active segment stays.
    pub fn delete_old_segments(&self, now_ms: i64) -> Result<RetentionStats> {
        let _maintenance = self.maintenance.lock();
        let config = self.config();
        let snapshot = self.snapshot();
        let segments = &snapshot.segments;
        let closed = segments.len().saturating_sub(1);
        let next_base = |i: usize| segments[i + 1].base_offset();

        let mut count = 0;
        while count < closed && next_base(count) <= snapshot.log_start_offset {
            count += 1;
        }
        if config.cleanup_delete {
            if config.retention_ms >= 0 {
                let mut n = 0;
                while n < closed
                    && now_ms.saturating_sub(largest_timestamp(&segments[n])) > config.retention_ms
                {
                    n += 1;
                }
                count = count.max(n);
            }
            if config.retention_bytes >= 0 {
                let total = snapshot.inactive_bytes + snapshot.active_end;
                let mut excess = total as i64 - config.retention_bytes;
                let mut n = 0;
                while n < closed && excess >= segments[n].size() as i64 {
                    excess -= segments[n].size() as i64;
                    n += 1;
                }
                count = count.max(n);
            }
        }
        if count == 0 {
            return Ok(RetentionStats {
                log_start_offset: snapshot.log_start_offset,
                ..RetentionStats::default()
            });
        }
        let stats = self.remove_prefix(count)?;
        tracing::info!(
            dir = %self.dir.display(),
            segments = stats.segments_deleted,
            bytes = stats.bytes_deleted,
            log_start_offset = stats.log_start_offset,
            "deleted old segments"
        );
        Ok(stats)
    }

    /// Drops the first `count` segments (never the active one) and their files. Call with the
    /// maintenance lock held, so the prefix is the one the caller looked at.
    fn remove_prefix(&self, count: usize) -> Result<RetentionStats> {
        let removed: Vec<Arc<LogSegment>>;
        let log_start_offset;
        {
            let _writer = self.writer.lock();
            let current = self.snapshot();
            let count = count.min(current.segments.len().saturating_sub(1));
            removed = current.segments[..count].to_vec();
            let remaining = current.segments[count..].to_vec();
            let first_base = remaining.first().map_or(0, |s| s.base_offset());
            log_start_offset = current.log_start_offset.max(first_base);
            self.publish_segments(&current, remaining, log_start_offset);
        }
        if removed.is_empty() {
            return Ok(RetentionStats {
                log_start_offset,
                ..RetentionStats::default()
            });
        }
        write_log_start_offset(&self.dir, log_start_offset)?;
        let mut bytes_deleted = 0;
        for segment in &removed {
            bytes_deleted += segment.size();
            delete_segment_files(&self.dir, segment.base_offset())?;
        }
        let first_base = self
            .snapshot()
            .segments
            .first()
            .map_or(log_start_offset, |s| s.base_offset());
        delete_snapshots_below(&self.dir, first_base)?;
        sync_dir(&self.dir)?;
        Ok(RetentionStats {
            segments_deleted: removed.len(),
            bytes_deleted,
            log_start_offset,
        })
    }

    /// DeleteRecords: makes `offset` the log start offset (records below it are gone for
    /// readers at once) and deletes the segments wholly below it. `offset` must not pass
    /// `high_watermark`. Returns the new start offset (the answer's low watermark).
    pub fn delete_records_before(&self, offset: i64, high_watermark: i64) -> Result<i64> {
        let _maintenance = self.maintenance.lock();
        let snapshot = self.snapshot();
        if offset < 0 || offset > high_watermark.min(snapshot.log_end_offset) {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: snapshot.log_start_offset,
                end: high_watermark.min(snapshot.log_end_offset),
            });
        }
        if offset <= snapshot.log_start_offset {
            return Ok(snapshot.log_start_offset);
        }
        {
            let _writer = self.writer.lock();
            let current = self.snapshot();
            self.publish_segments(&current, current.segments.to_vec(), offset);
        }
        // Persisted before the answer, so an acknowledged deletion survives a crash.
        write_log_start_offset(&self.dir, offset)?;
        let segments = &snapshot.segments;
        let closed = segments.len().saturating_sub(1);
        let mut count = 0;
        while count < closed && segments[count + 1].base_offset() <= offset {
            count += 1;
        }
        if count > 0 {
            self.remove_prefix(count)?;
        }
        tracing::info!(dir = %self.dir.display(), log_start_offset = offset, "deleted records");
        Ok(offset)
    }
}
