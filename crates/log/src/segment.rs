//! One segment of the log: the `.log` file of batches starting at `base_offset`, with its
//! offset and time indexes. Batches are only ever appended; bytes below `size` never change,
//! which is what lets readers read them without the writer's lock.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use parking_lot::Mutex;

use crate::batch::BatchHeader;
use crate::error::{LogError, Result};
use crate::index::{OffsetIndex, OffsetPosition};
use crate::scan::{BatchScanner, ScannedBatch};
use crate::time_index::{TimeIndex, TimestampOffset};
use crate::validate::ValidBatch;

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";

/// Bytes read at a time when stepping over batches from an index entry to a target offset.
const LOCATE_CHUNK: usize = 16 * 1024;

/// `<dir>/<20-digit base offset>.<suffix>`, Kafka's file naming.
pub(crate) fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// A batch's max timestamp and its last offset (Kafka's "shallow" offset of the max timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxTimestamp {
    pub timestamp: i64,
    pub offset: i64,
}

/// Mutable bookkeeping, changed only by the writer (or recovery).
#[derive(Debug, Clone, Default)]
pub(crate) struct SegmentState {
    pub bytes_since_last_index_entry: usize,
    pub max_timestamp: Option<MaxTimestamp>,
    /// Max timestamp of the first batch: what `segment.ms` is measured from, as in Kafka.
    pub rolling_based_timestamp: Option<i64>,
    /// Wall-clock creation (or load) time, used for `segment.ms` when batches carry no timestamps.
    pub created_ms: i64,
}

impl SegmentState {
    /// Folds one appended batch in, returning whether an index entry is due before it.
    pub fn note_batch(&mut self, header: &BatchHeader, index_interval_bytes: usize) -> bool {
        if self
            .max_timestamp
            .is_none_or(|max| header.max_timestamp > max.timestamp)
        {
            self.max_timestamp = Some(MaxTimestamp {
                timestamp: header.max_timestamp,
                offset: header.last_offset(),
            });
        }
        self.rolling_based_timestamp
            .get_or_insert(header.max_timestamp);
        let index_due = self.bytes_since_last_index_entry > index_interval_bytes;
        if index_due {
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += header.total_len();
        index_due
    }
}

pub struct LogSegment {
    base_offset: i64,
    path: PathBuf,
    file: File,
    pub(crate) index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    /// Bytes of complete batches; published after each write.
    size: AtomicU64,
    /// Written since the last fsync.
    dirty: AtomicBool,
    pub(crate) state: Mutex<SegmentState>,
}

impl LogSegment {
    /// Opens (creating when missing) the three files of the segment at `base_offset`. The size is
    /// the `.log` file's length; recovery decides whether to trust it.
    pub(crate) fn open(dir: &Path, base_offset: i64, now_ms: i64) -> Result<LogSegment> {
        let path = segment_file(dir, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LogError::io("opening segment", &path, e))?;
        let size = file
            .metadata()
            .map_err(|e| LogError::io("reading metadata of segment", &path, e))?
            .len();
        let index = OffsetIndex::open(&segment_file(dir, base_offset, INDEX_SUFFIX))?;
        let time_index = TimeIndex::open(&segment_file(dir, base_offset, TIME_INDEX_SUFFIX))?;
        Ok(LogSegment {
            base_offset,
            path,
            file,
            index,
            time_index,
            size: AtomicU64::new(size),
            dirty: AtomicBool::new(false),
            state: Mutex::new(SegmentState {
                created_ms: now_ms,
                ..SegmentState::default()
            }),
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn max_timestamp(&self) -> Option<MaxTimestamp> {
        self.state.lock().max_timestamp
    }

    /// Offset relative to the base offset, as stored in the indexes. Callers keep offsets within
    /// `i32::MAX` of the base by rolling.
    fn relative(&self, offset: i64) -> u32 {
        (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32
    }

    /// Cuts the `.log` file to `size` bytes (recovery of a torn tail, or undoing a failed write).
    pub(crate) fn truncate_to(&self, size: u64) -> Result<()> {
        self.file
            .set_len(size)
            .map_err(|e| LogError::io("truncating segment", &self.path, e))?;
        self.size.store(size, Ordering::Release);
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Writes `records` (already validated, offsets assigned) in one write at the end of the
    /// segment, then adds index entries as the intervals require.
    pub(crate) fn append(
        &self,
        records: &[u8],
        batches: &[ValidBatch],
        index_interval_bytes: usize,
    ) -> Result<()> {
        let start = self.size();
        if let Err(e) = self.file.write_all_at(records, start) {
            // Leave no partial batch behind for readers or recovery to stumble on.
            if let Err(undo) = self.file.set_len(start) {
                tracing::error!(path = %self.path.display(), error = %undo, "could not undo failed append");
            }
            return Err(LogError::io("appending to segment", &self.path, e));
        }
        self.dirty.store(true, Ordering::Release);
        let mut state = self.state.lock();
        for batch in batches {
            let header = &batch.header;
            if state.note_batch(header, index_interval_bytes) {
                let position = start + batch.position as u64;
                self.index.append(OffsetPosition {
                    relative_offset: self.relative(header.last_offset()),
                    position: position as u32,
                })?;
                if let Some(max) = state.max_timestamp {
                    self.time_index.maybe_append(TimestampOffset {
                        timestamp: max.timestamp,
                        relative_offset: self.relative(max.offset),
                    })?;
                }
            }
        }
        drop(state);
        self.size
            .store(start + records.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Records the final max timestamp in the time index so a clean open can trust it; Kafka's
    /// `onBecomeInactiveSegment` and close do the same.
    pub(crate) fn finish_time_index(&self) -> Result<()> {
        let max = self.state.lock().max_timestamp;
        if let Some(max) = max {
            self.time_index.maybe_append(TimestampOffset {
                timestamp: max.timestamp,
                relative_offset: self.relative(max.offset),
            })?;
        }
        Ok(())
    }

    /// fsyncs the data and both indexes if anything was written since the last flush.
    pub(crate) fn flush(&self) -> Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let synced = self
            .file
            .sync_data()
            .map_err(|e| LogError::io("syncing segment", &self.path, e))
            .and_then(|()| self.index.flush())
            .and_then(|()| self.time_index.flush());
        if synced.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        synced
    }

    pub(crate) fn scanner(&self, start: u64, end: u64, chunk: usize) -> BatchScanner<'_> {
        BatchScanner::new(&self.file, &self.path, start, end, chunk)
    }

    /// The first batch in `[.., end)` whose last offset >= `offset`, starting from the offset
    /// index's nearest entry.
    pub(crate) fn locate(&self, offset: i64, end: u64) -> Result<Option<ScannedBatch>> {
        Ok(self.locate_scanning(offset, end)?.map(|(batch, _)| batch))
    }

    /// [`Self::locate`], plus the scanner positioned just after that batch.
    fn locate_scanning(
        &self,
        offset: i64,
        end: u64,
    ) -> Result<Option<(ScannedBatch, BatchScanner<'_>)>> {
        let start = self
            .index
            .lookup(self.relative(offset))?
            .map_or(0, |entry| u64::from(entry.position))
            .min(end);
        let mut scanner = self.scanner(start, end, LOCATE_CHUNK);
        while let Some(batch) = scanner.next_batch()? {
            if batch.offsets.last_offset() >= offset {
                return Ok(Some((batch, scanner)));
            }
        }
        Ok(None)
    }

    /// Where the whole batches from the one holding `offset` lie in the file: within
    /// `max_bytes` (but at least the first when `min_one_batch`) and below `max_offset`, as
    /// (position, length, base offset of the first). `None` when this segment has no batch at
    /// or after `offset` before `end`; a length of 0 when none of them qualifies. Only batch
    /// headers are read (a chunk at each), so a fetch can send the bytes without copying them.
    pub(crate) fn locate_batches(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
        end: u64,
    ) -> Result<Option<(u64, usize, i64)>> {
        let Some((first, mut scanner)) = self.locate_scanning(offset, end)? else {
            return Ok(None);
        };
        let first_len = first.offsets.total_len();
        if first.offsets.last_offset() >= max_offset || (first_len > max_bytes && !min_one_batch) {
            return Ok(Some((first.position, 0, -1)));
        }
        let limit = max_bytes.max(first_len);
        let mut len = first_len;
        while len < limit
            && let Some(batch) = scanner.next_batch()?
        {
            let next = len + batch.offsets.total_len();
            if next > limit || batch.offsets.last_offset() >= max_offset {
                break;
            }
            len = next;
        }
        Ok(Some((first.position, len, first.offsets.base_offset)))
    }

    /// `len` bytes at `position`, read with one `pread`.
    pub(crate) fn read_at(&self, position: u64, len: usize) -> Result<Bytes> {
        crate::pread::read_exact_at(&self.file, len, position)
            .map(Bytes::from)
            .map_err(|e| LogError::io("reading segment", &self.path, e))
    }

    /// The first record with timestamp >= `timestamp` in this segment, as (offset, timestamp).
    pub(crate) fn find_offset_by_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let start_offset = self
            .time_index
            .lookup(timestamp)?
            .map_or(self.base_offset, |entry| {
                self.base_offset + i64::from(entry.relative_offset)
            });
        let start = self
            .index
            .lookup(self.relative(start_offset))?
            .map_or(0, |entry| u64::from(entry.position));
        let end = self.size();
        let mut scanner = self.scanner(start.min(end), end, LOCATE_CHUNK);
        while let Some(batch) = scanner.next_batch()? {
            let bytes = scanner.batch_bytes(&batch)?;
            let header = BatchHeader::parse(bytes)?;
            if header.max_timestamp < timestamp {
                continue;
            }
            let found = first_record(bytes, &header, |t| t >= timestamp)?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The record holding this segment's max timestamp, as (offset, timestamp).
    pub(crate) fn offset_of_max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        let Some(max) = self.max_timestamp() else {
            return Ok(None);
        };
        let end = self.size();
        let Some(batch) = self.locate(max.offset, end)? else {
            return Ok(Some((max.offset, max.timestamp)));
        };
        let mut scanner = self.scanner(batch.position, end, batch.offsets.total_len());
        let bytes = scanner.batch_bytes(&batch)?;
        let header = BatchHeader::parse(bytes)?;
        let found = first_record(bytes, &header, |t| t == max.timestamp)?;
        Ok(Some(found.unwrap_or((max.offset, max.timestamp))))
    }
}

/// Decodes one stored batch (the rare ListOffsets path) and returns the first record whose
/// timestamp matches. A LogAppendTime batch's records all carry its max timestamp.
fn first_record(
    batch: &[u8],
    header: &BatchHeader,
    matches: impl Fn(i64) -> bool,
) -> Result<Option<(i64, i64)>> {
    let mut bytes = Bytes::copy_from_slice(batch);
    let set = RecordBatchDecoder::decode(&mut bytes).map_err(|e| {
        LogError::CorruptMessage(format!(
            "cannot decode stored batch at offset {}: {e}",
            header.base_offset
        ))
    })?;
    let log_append = header.timestamp_type_is_log_append();
    Ok(set.records.iter().find_map(|record| {
        let timestamp = if log_append {
            header.max_timestamp
        } else {
            record.timestamp
        };
        matches(timestamp).then_some((record.offset, timestamp))
    }))
}
