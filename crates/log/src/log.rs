//! The partition log: an ordered list of segments, the last of which takes appends.
//!
//! Concurrency: appends serialise on `writer`; they write the data, then publish a new
//! [`Snapshot`] (segment list, log end offset, end position of the active segment). Readers only
//! clone the current snapshot's `Arc` and then read bytes below the ends it records, which never
//! change because segments are append-only, so a read never waits behind an append's I/O.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::batch;
use crate::control::{self, TxnMarker};
use crate::error::{LogError, Result};
use crate::leader_epoch::LeaderEpochCache;
use crate::partition_metadata;
use crate::producer_state::{ProducerStateManager, SequenceCheck};
use crate::recompress;
use crate::recovery;
use crate::segment::{INDEX_SUFFIX, LOG_SUFFIX, LogSegment, TIME_INDEX_SUFFIX, segment_file};
use crate::txn_index::{AbortedTxn, TxnIndex};
use crate::validate::{self, ValidBatch};

pub use crate::config::{LogConfig, TimestampType};
use crate::file_range::FileRange;

/// Present in the partition directory only between a clean `close` and the next `open`.
pub const CLEAN_SHUTDOWN_FILE: &str = ".strom_cleanshutdown";

/// Index positions are u32 and Kafka caps `segment.bytes` at `Int.MaxValue`.
const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// What an append did.
#[derive(Debug, Clone)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The timestamp given to the batches with LogAppendTime, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    pub record_count: i64,
    pub batch_count: usize,
    /// The batch was a retry of one already written: nothing was appended and the offsets are
    /// those it got the first time.
    pub duplicate: bool,
}

/// The bytes a fetch returns: whole batches, concatenated, exactly as stored (offsets assigned).
#[derive(Debug, Clone)]
pub struct FetchSlice {
    pub records: Bytes,
    /// Base offset of the first batch, or -1 when `records` is empty.
    pub first_offset: i64,
}

impl FetchSlice {
    fn empty() -> FetchSlice {
        FetchSlice {
            records: Bytes::new(),
            first_offset: -1,
        }
    }
}

/// An immutable view of the log that readers work from.
pub(crate) struct Snapshot {
    pub(crate) segments: Arc<Vec<Arc<LogSegment>>>,
    pub(crate) log_start_offset: i64,
    pub(crate) log_end_offset: i64,
    /// Bytes of the active (last) segment that hold complete batches.
    pub(crate) active_end: u64,
    /// Sum of the sizes of all segments but the active one.
    pub(crate) inactive_bytes: u64,
    /// First offset of the oldest open transaction, if any: the last stable offset's bound.
    pub(crate) first_unstable_offset: Option<i64>,
}

impl Snapshot {
    fn active(&self) -> Option<&Arc<LogSegment>> {
        self.segments.last()
    }

    /// The end position readers may read up to in segment `i`.
    fn end_of(&self, i: usize) -> u64 {
        if i + 1 == self.segments.len() {
            self.active_end
        } else {
            self.segments[i].size()
        }
    }
}

pub struct Log {
    pub(crate) dir: PathBuf,
    topic_id: [u8; 16],
    config: RwLock<LogConfig>,
    /// Serialises appends, rolls and close, and holds the idempotent producers' state, which
    /// only changes with appends. Retention and the cleaner take it to swap segments.
    pub(crate) writer: Mutex<ProducerStateManager>,
    /// Aborted transactions, for read_committed fetches; changed only under `writer`.
    pub(crate) aborted: RwLock<TxnIndex>,
    pub(crate) snapshot: RwLock<Arc<Snapshot>>,
    /// Held by retention and the cleaner for a whole pass, so they never work on one log at once.
    pub(crate) maintenance: Mutex<()>,
    /// Set by `close`: the clean-shutdown marker is on disk and must go before new data does.
    pub(crate) marker_written: AtomicBool,
    /// A segment was created since the directory was last fsynced.
    pub(crate) dir_dirty: AtomicBool,
    /// Where each leader epoch began (`leader-epoch-checkpoint`); changed only under `writer`.
    pub(crate) epochs: Mutex<LeaderEpochCache>,
}

/// Who is appending: the leader (offsets and its epoch assigned here), the transaction
/// coordinator's markers (same, control batches allowed), or a follower copying the leader's
/// batches with their offsets and epochs as they are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AppendOrigin {
    Client { leader_epoch: i32 },
    Coordinator { leader_epoch: i32 },
    Replication,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Parses a `<20 digits>.log` file name into its base offset.
fn base_offset_of(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

impl Log {
    /// Opens or creates the partition directory and recovers it.
    pub fn open(dir: &Path, config: LogConfig, topic_id: [u8; 16]) -> Result<Log> {
        fs::create_dir_all(dir)
            .map_err(|e| LogError::io("creating partition directory", dir, e))?;
        let topic_id = partition_metadata::load_or_create(dir, topic_id)?;
        // A clean interrupted by a crash: finish its swap or throw its output away.
        crate::cleaner::recover_swaps(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let now = now_ms();

        let mut bases = Vec::new();
        let entries = fs::read_dir(dir).map_err(|e| LogError::io("listing", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| LogError::io("listing", dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = base_offset_of(name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        if bases.is_empty() {
            bases.push(0);
        }
        remove_orphan_indexes(dir, &bases)?;

        let mut segments = Vec::with_capacity(bases.len());
        let mut log_end_offset = 0;
        for (i, &base) in bases.iter().enumerate() {
            let is_active = i + 1 == bases.len();
            let indexes_present = segment_file(dir, base, INDEX_SUFFIX).exists()
                && segment_file(dir, base, TIME_INDEX_SUFFIX).exists();
            let segment = LogSegment::open(dir, base, now)?;
            let trusted = if indexes_present && (clean || !is_active) {
                recovery::load_from_indexes(&segment, is_active, config.index_interval_bytes)?
            } else {
                None
            };
            let next_offset = match trusted {
                Some(next) => next,
                None => recovery::recover_segment(&segment, config.index_interval_bytes)?,
            };
            if is_active {
                log_end_offset = next_offset;
            }
            segments.push(Arc::new(segment));
        }

        if clean {
            fs::remove_file(&marker).map_err(|e| LogError::io("removing", &marker, e))?;
        }
        // DeleteRecords may have moved the start past the first segment's base.
        let log_start_offset = crate::retention::read_log_start_offset(dir)?
            .map_or(bases[0], |checkpoint| checkpoint.max(bases[0]))
            .min(log_end_offset);
        let active_end = segments.last().map_or(0, |s| s.size());
        let inactive_bytes = segments.iter().rev().skip(1).map(|s| s.size()).sum();
        let mut aborted = TxnIndex::load(dir, &bases, log_end_offset)?;
        let producers =
            rebuild_producer_state(dir, &segments, log_end_offset, active_end, &mut aborted)?;
        let first_unstable_offset = producers.first_unstable_offset();
        let mut epochs = LeaderEpochCache::load(dir)?;
        // Epochs whose first batch a crash cut off describe data that is not there.
        epochs.truncate_from_end(log_end_offset)?;
        tracing::info!(
            dir = %dir.display(),
            segments = segments.len(),
            producers = producers.len(),
            log_start_offset,
            log_end_offset,
            clean_shutdown = clean,
            "opened log"
        );
        Ok(Log {
            dir: dir.to_path_buf(),
            topic_id,
            config: RwLock::new(config),
            writer: Mutex::new(producers),
            aborted: RwLock::new(aborted),
            snapshot: RwLock::new(Arc::new(Snapshot {
                segments: Arc::new(segments),
                log_start_offset,
                log_end_offset,
                active_end,
                inactive_bytes,
                first_unstable_offset,
            })),
            maintenance: Mutex::new(()),
            marker_written: AtomicBool::new(false),
            dir_dirty: AtomicBool::new(true),
            epochs: Mutex::new(epochs),
        })
    }

    pub fn topic_id(&self) -> [u8; 16] {
        self.topic_id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    /// Applies to future appends and rolls.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().clone()
    }

    /// Validates, then appends the record batches of one produce request partition. Nothing is
    /// written unless every batch is valid. Control batches are refused: only a transaction
    /// coordinator writes them, through [`Log::append_marker`].
    pub fn append(&self, records: &mut [u8], leader_epoch: i32, now_ms: i64) -> Result<AppendInfo> {
        self.append_batches(records, AppendOrigin::Client { leader_epoch }, now_ms)
    }

    /// Appends batches fetched from the leader as they are: their offsets, leader epochs and
    /// timestamps were assigned there. The first batch must start at or after the log end
    /// offset (a compacted leader may have gaps); producer state and the leader-epoch cache
    /// follow the batches. Nothing is written unless every batch is sound.
    pub fn append_as_follower(&self, records: &mut [u8], now_ms: i64) -> Result<AppendInfo> {
        if records.is_empty() {
            let snapshot = self.snapshot();
            return Ok(AppendInfo {
                base_offset: snapshot.log_end_offset,
                last_offset: snapshot.log_end_offset - 1,
                log_append_time: -1,
                log_start_offset: snapshot.log_start_offset,
                record_count: 0,
                batch_count: 0,
                duplicate: false,
            });
        }
        self.append_batches(records, AppendOrigin::Replication, now_ms)
    }

    /// Write a transaction marker (commit or abort) for `marker.producer_id`, closing its open
    /// transaction on this partition.
    pub fn append_marker(
        &self,
        marker: &TxnMarker,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let mut batch = control::build(marker, now_ms)?;
        self.append_batches(
            &mut batch,
            AppendOrigin::Coordinator { leader_epoch },
            now_ms,
        )
    }

    fn append_batches(
        &self,
        records: &mut [u8],
        origin: AppendOrigin,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let config = self.config();
        let (leader_epoch, markers) = match origin {
            AppendOrigin::Client { leader_epoch } => (leader_epoch, false),
            AppendOrigin::Coordinator { leader_epoch } => (leader_epoch, true),
            AppendOrigin::Replication => return self.append_replicated(records, &config, now_ms),
        };
        // CPU-heavy checks (CRC) happen before taking the writer lock.
        let mut batches = validate::validate_batches(records, config.max_message_bytes)?;
        if !markers && batches.iter().any(|b| b.header.is_control()) {
            return Err(LogError::InvalidRecord(
                "client produce requests must not contain control batches".into(),
            ));
        }
        if config.cleanup_compact && !markers {
            for valid in &batches {
                let end = valid.position + valid.header.total_len();
                if let Some(bytes) = records.get(valid.position..end) {
                    crate::records::check_keys(bytes, &valid.header)?;
                }
            }
        }
        // Timestamp bounds, then the topic's codec (Kafka's LogValidator order), for producer
        // batches only; the recompressed buffer is validated again (sizes and CRCs changed).
        let mut recompressed;
        let records: &mut [u8] = if markers {
            records
        } else {
            validate::check_timestamps(records, &batches, &config, now_ms)?;
            match config.compression {
                Some(codec) if recompress::needed(&batches, Some(codec)) => {
                    recompressed =
                        recompress::recompress(records, &batches, codec, config.compression_level)?;
                    batches = validate::validate_batches(&recompressed, config.max_message_bytes)?;
                    &mut recompressed[..]
                }
                _ => records,
            }
        };
        let segment_bytes = config.segment_bytes.min(MAX_SEGMENT_BYTES);
        if records.len() as u64 > segment_bytes {
            return Err(LogError::RecordListTooLarge {
                size: records.len(),
                max: segment_bytes,
            });
        }
        validate::apply_timestamp_type(records, &mut batches, config.timestamp_type, now_ms);

        let mut producers = self.writer.lock();
        let snapshot = self.snapshot();
        for valid in &batches {
            if let SequenceCheck::Duplicate(dup) = producers.check(&valid.header)? {
                if batches.len() > 1 {
                    return Err(LogError::InvalidRecord(
                        "a retried idempotent batch must be sent alone".into(),
                    ));
                }
                return Ok(AppendInfo {
                    base_offset: dup.first_offset,
                    last_offset: dup.last_offset,
                    log_append_time: -1,
                    log_start_offset: snapshot.log_start_offset,
                    record_count: 0,
                    batch_count: 0,
                    duplicate: true,
                });
            }
        }
        if self.marker_written.swap(false, Ordering::AcqRel) {
            self.remove_clean_shutdown_marker()?;
        }
        let base_offset = snapshot.log_end_offset;
        assign_offsets(records, &mut batches, base_offset, leader_epoch);
        // Before the data: a crash in between leaves an entry past the end, which open drops.
        self.epochs.lock().assign(leader_epoch, base_offset)?;
        let info = self.write_batches(
            &mut producers,
            &snapshot,
            records,
            &batches,
            &config,
            now_ms,
        )?;
        let log_append_time = match config.timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => -1,
        };
        Ok(AppendInfo {
            log_append_time,
            ..info
        })
    }

    /// The follower's append: checks, then the same write path without assigning anything.
    fn append_replicated(
        &self,
        records: &mut [u8],
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let segment_bytes = config.segment_bytes.min(MAX_SEGMENT_BYTES);
        if records.len() as u64 > segment_bytes {
            return Err(LogError::RecordListTooLarge {
                size: records.len(),
                max: segment_bytes,
            });
        }
        let mut producers = self.writer.lock();
        let snapshot = self.snapshot();
        let batches = validate::validate_replicated(records, snapshot.log_end_offset)?;
        if self.marker_written.swap(false, Ordering::AcqRel) {
            self.remove_clean_shutdown_marker()?;
        }
        {
            let mut epochs = self.epochs.lock();
            for valid in &batches {
                epochs.assign(
                    valid.header.partition_leader_epoch,
                    valid.header.base_offset,
                )?;
            }
        }
        self.write_batches(&mut producers, &snapshot, records, &batches, config, now_ms)
    }

    /// Writes validated batches whose offsets are final to the active segment (rolling first
    /// when due), folds them into the producer state and publishes the new end. Called with
    /// the writer lock held (`producers`).
    fn write_batches(
        &self,
        producers: &mut ProducerStateManager,
        snapshot: &Snapshot,
        records: &[u8],
        batches: &[ValidBatch],
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let segment_bytes = config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let max_batch_timestamp = batches
            .iter()
            .map(|b| b.header.max_timestamp)
            .max()
            .unwrap_or(-1);
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            return Err(LogError::InvalidRecord("no record batches".into()));
        };
        let base_offset = first.header.base_offset;
        let last_offset = last.header.last_offset();
        let next_offset = last_offset + 1;

        let mut segments = snapshot.segments.clone();
        let mut inactive_bytes = snapshot.inactive_bytes;
        let Some(mut active) = snapshot.active().cloned() else {
            return Err(LogError::CorruptPartition {
                path: self.dir.display().to_string(),
                reason: "log has no segment".into(),
            });
        };
        let roll = should_roll(
            &active,
            records.len() as u64,
            segment_bytes,
            last_offset,
            max_batch_timestamp,
            now_ms,
            config.segment_ms,
        );
        if roll {
            active.finish_time_index()?;
            // A snapshot per segment keeps recovery after a crash to the newest segment.
            producers.write_snapshot(&self.dir, base_offset)?;
            let new = Arc::new(LogSegment::open(&self.dir, base_offset, now_ms)?);
            if new.size() > 0 {
                // Only a stray file could be here: its offsets would clash with ours.
                tracing::warn!(
                    segment = %new.path().display(),
                    bytes = new.size(),
                    "discarding stale data in the file of a new segment"
                );
                new.truncate_to(0)?;
            }
            tracing::info!(
                dir = %self.dir.display(),
                base_offset,
                previous_size = active.size(),
                "rolled new segment"
            );
            inactive_bytes += active.size();
            let mut list = Vec::with_capacity(segments.len() + 1);
            list.extend(segments.iter().cloned());
            list.push(new.clone());
            segments = Arc::new(list);
            active = new;
            self.dir_dirty.store(true, Ordering::Release);
        }
        active.append(records, batches, config.index_interval_bytes)?;
        for valid in batches {
            if valid.header.is_control() {
                let end = valid.position + valid.header.total_len();
                let commit = records
                    .get(valid.position..end)
                    .map(control::is_commit)
                    .transpose()?
                    .flatten();
                if let Some(commit) = commit {
                    self.close_txn(producers, &valid.header, commit, active.base_offset())?;
                }
            } else {
                producers.update(&valid.header);
            }
        }

        let log_start_offset = snapshot.log_start_offset;
        *self.snapshot.write() = Arc::new(Snapshot {
            segments,
            log_start_offset,
            log_end_offset: next_offset,
            active_end: active.size(),
            inactive_bytes,
            first_unstable_offset: producers.first_unstable_offset(),
        });
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time: -1,
            log_start_offset,
            record_count: batches
                .iter()
                .map(|b| i64::from(b.header.records_count))
                .sum(),
            batch_count: batches.len(),
            duplicate: false,
        })
    }

    /// Close a producer's transaction at a marker; an abort goes into the aborted index.
    fn close_txn(
        &self,
        producers: &mut ProducerStateManager,
        header: &batch::BatchHeader,
        commit: bool,
        segment_base: i64,
    ) -> Result<()> {
        if let Some(done) = producers.complete_txn(header, commit)
            && done.aborted
        {
            let lso = producers
                .first_unstable_offset()
                .unwrap_or(done.last_offset);
            self.aborted.write().append(
                &self.dir,
                segment_base,
                AbortedTxn {
                    producer_id: done.producer_id,
                    first_offset: done.first_offset,
                    last_offset: done.last_offset,
                    last_stable_offset: lso,
                },
            )?;
        }
        Ok(())
    }

    /// The last stable offset: below it every transaction is decided. `high_watermark` is the
    /// bound replication sets (the log end offset while this node is the only replica).
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        let snapshot = self.snapshot();
        snapshot
            .first_unstable_offset
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Aborted transactions overlapping `[from, to)`, as (producer id, first offset): what a
    /// read_committed fetch returning that range tells the consumer to skip.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        self.aborted.read().overlapping(from, to)
    }

    /// The producers this partition has state for (DescribeProducers).
    pub fn active_producers(&self) -> Vec<crate::producer_state::ActiveProducer> {
        self.writer.lock().active_producers()
    }

    /// Whether `producer_id` has an open transaction on this partition.
    pub fn has_ongoing_txn(&self, producer_id: i64) -> bool {
        self.writer.lock().has_ongoing_txn(producer_id)
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes`, below `max_offset`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<FetchSlice> {
        Ok(
            match self.read_range(offset, max_bytes, max_offset, min_one_batch)? {
                Some(range) => FetchSlice {
                    records: range.read()?,
                    first_offset: range.first_offset,
                },
                None => FetchSlice::empty(),
            },
        )
    }

    /// Where [`Self::read`]'s batches lie in their segment file, without reading them; `None`
    /// when there are none.
    pub fn read_range(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<Option<FileRange>> {
        let snapshot = self.snapshot();
        if offset < snapshot.log_start_offset || offset > snapshot.log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: snapshot.log_start_offset,
                end: snapshot.log_end_offset,
            });
        }
        if offset == snapshot.log_end_offset {
            return Ok(None);
        }
        let segments = &snapshot.segments;
        let first = segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        for (i, segment) in segments.iter().enumerate().skip(first) {
            let end = snapshot.end_of(i);
            if let Some((position, len, first_offset)) =
                segment.locate_batches(offset, max_bytes, max_offset, min_one_batch, end)?
            {
                return Ok(
                    (len > 0).then(|| FileRange::new(segment.clone(), position, len, first_offset))
                );
            }
        }
        Ok(None)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.snapshot().log_start_offset
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.snapshot().log_end_offset
    }

    /// Sum of the segment sizes.
    pub fn size_bytes(&self) -> u64 {
        let snapshot = self.snapshot();
        snapshot.inactive_bytes + snapshot.active_end
    }

    /// ListOffsets by timestamp: the first record with timestamp >= `ts`, as (offset, timestamp).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        let snapshot = self.snapshot();
        for segment in snapshot.segments.iter() {
            if segment
                .max_timestamp()
                .is_some_and(|max| max.timestamp >= ts)
                && let Some(found) = segment.find_offset_by_timestamp(ts)?
                && found.0 < snapshot.log_end_offset
            {
                if found.0 < snapshot.log_start_offset {
                    // Records below the start are deleted (DeleteRecords): the first one left.
                    return Ok(Some((snapshot.log_start_offset, found.1)));
                }
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the record with the largest timestamp, as (offset, timestamp).
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        let snapshot = self.snapshot();
        let mut best: Option<(&Arc<LogSegment>, i64)> = None;
        for segment in snapshot.segments.iter() {
            if let Some(max) = segment.max_timestamp()
                && best.is_none_or(|(_, ts)| max.timestamp > ts)
            {
                best = Some((segment, max.timestamp));
            }
        }
        match best {
            Some((segment, _)) => segment.offset_of_max_timestamp(),
            None => Ok(None),
        }
    }

    /// fsyncs every segment written since the last flush, and the directory after a roll.
    pub fn flush(&self) -> Result<()> {
        let snapshot = self.snapshot();
        for segment in snapshot.segments.iter() {
            segment.flush()?;
        }
        if self.dir_dirty.swap(false, Ordering::AcqRel)
            && let Err(e) = sync_dir(&self.dir)
        {
            self.dir_dirty.store(true, Ordering::Release);
            return Err(e);
        }
        Ok(())
    }

    /// Flushes and writes the clean-shutdown marker so the next open trusts the indexes.
    pub fn close(&self) -> Result<()> {
        let producers = self.writer.lock();
        let snapshot = self.snapshot();
        if let Some(active) = snapshot.active() {
            active.finish_time_index()?;
        }
        // Written even when empty, so a clean restart scans nothing to rebuild it.
        producers.write_snapshot(&self.dir, snapshot.log_end_offset)?;
        self.flush()?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        fs::File::create(&marker)
            .and_then(|file| file.sync_all())
            .map_err(|e| LogError::io("writing", &marker, e))?;
        sync_dir(&self.dir)?;
        self.marker_written.store(true, Ordering::Release);
        tracing::info!(dir = %self.dir.display(), "closed log cleanly");
        Ok(())
    }

    /// Removes the partition directory (topic deletion).
    pub fn delete(self) -> Result<()> {
        let _writer = self.writer.lock();
        fs::remove_dir_all(&self.dir)
            .map_err(|e| LogError::io("deleting partition directory", &self.dir, e))?;
        tracing::info!(dir = %self.dir.display(), "deleted log");
        Ok(())
    }

    pub(crate) fn remove_clean_shutdown_marker(&self) -> Result<()> {
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        match fs::remove_file(&marker) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LogError::io("removing", &marker, e)),
        }
    }
}

/// The idempotent producers' state at the log end: the newest snapshot at or below it, then every
/// batch after the snapshot (without one, the batches of the last two segments, as Kafka does).
pub(crate) fn rebuild_producer_state(
    dir: &Path,
    segments: &[Arc<LogSegment>],
    log_end_offset: i64,
    active_end: u64,
    aborted: &mut TxnIndex,
) -> Result<ProducerStateManager> {
    let (mut state, from) = match ProducerStateManager::load_latest(dir, log_end_offset)? {
        Some((state, offset)) => (state, offset),
        None => {
            let first = segments.len().saturating_sub(2);
            let from = segments.get(first).map_or(0, |s| s.base_offset());
            (ProducerStateManager::new(), from)
        }
    };
    for (i, segment) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let next_base = segments.get(i + 1).map(|s| s.base_offset());
        if next_base.is_some_and(|n| n <= from) {
            continue;
        }
        let end = if is_last { active_end } else { segment.size() };
        // Start at the batch holding `from` (found through the offset index): a snapshot at the log
        // end must not cost a scan of the whole active segment on every clean start.
        let start = if segment.base_offset() < from {
            match segment.locate(from, end)? {
                Some(batch) => batch.position,
                None => continue,
            }
        } else {
            0
        };
        let mut scanner = segment.scanner(start, end, 1 << 20);
        while let Some(found) = scanner.next_batch()? {
            if found.offsets.base_offset < from {
                continue;
            }
            let bytes = scanner.batch_bytes(&found)?;
            let header = batch::BatchHeader::parse(bytes)?;
            if !header.is_control() {
                state.update(&header);
                continue;
            }
            let Some(commit) = control::is_commit(bytes)? else {
                continue;
            };
            if let Some(done) = state.complete_txn(&header, commit)
                && done.aborted
            {
                let lso = state.first_unstable_offset().unwrap_or(done.last_offset);
                aborted.append(
                    dir,
                    segment.base_offset(),
                    AbortedTxn {
                        producer_id: done.producer_id,
                        first_offset: done.first_offset,
                        last_offset: done.last_offset,
                        last_stable_offset: lso,
                    },
                )?;
            }
        }
    }
    Ok(state)
}

/// Writes base offsets and the leader epoch into the batches, returning the next offset.
fn assign_offsets(
    records: &mut [u8],
    batches: &mut [ValidBatch],
    mut next_offset: i64,
    leader_epoch: i32,
) -> i64 {
    for valid in batches.iter_mut() {
        if let Some(bytes) = records.get_mut(valid.position..) {
            batch::set_base_offset(bytes, next_offset);
            batch::set_partition_leader_epoch(bytes, leader_epoch);
        }
        valid.header.base_offset = next_offset;
        valid.header.partition_leader_epoch = leader_epoch;
        next_offset = valid.header.last_offset() + 1;
    }
    next_offset
}

/// Kafka's `LogSegment.shouldRoll`: a non-empty active segment is rolled when the append would
/// overflow it, when `segment.ms` has passed since its first batch's timestamp (or its creation
/// if batches carry none), or when offsets would no longer fit the index's relative offsets.
fn should_roll(
    active: &LogSegment,
    append_bytes: u64,
    segment_bytes: u64,
    last_offset: i64,
    max_batch_timestamp: i64,
    now_ms: i64,
    segment_ms: i64,
) -> bool {
    let size = active.size();
    if size == 0 {
        return false;
    }
    let state = active.state.lock();
    let time_waited = match state.rolling_based_timestamp {
        Some(first) if first >= 0 => max_batch_timestamp.saturating_sub(first),
        _ => now_ms.saturating_sub(state.created_ms),
    };
    size + append_bytes > segment_bytes
        || time_waited > segment_ms
        || last_offset - active.base_offset() > i64::from(i32::MAX)
}

/// Deletes `.index`/`.timeindex` files left without their `.log` (as Kafka does at load).
fn remove_orphan_indexes(dir: &Path, bases: &[i64]) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| LogError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("listing", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, suffix)) = name.split_once('.') else {
            continue;
        };
        if suffix != INDEX_SUFFIX && suffix != TIME_INDEX_SUFFIX {
            continue;
        }
        let Some(base) = base_offset_of(&format!("{stem}.{LOG_SUFFIX}")) else {
            continue;
        };
        if !bases.contains(&base) {
            tracing::warn!(file = %entry.path().display(), "removing index without a segment");
            fs::remove_file(entry.path())
                .map_err(|e| LogError::io("removing", &entry.path(), e))?;
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("syncing directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_segment_names() {
        assert_eq!(base_offset_of("00000000000000000000.log"), Some(0));
        assert_eq!(base_offset_of("00000000000000012345.log"), Some(12345));
        assert_eq!(base_offset_of("0000000000000001234.log"), None);
        assert_eq!(base_offset_of("0000000000000001234x.log"), None);
        assert_eq!(base_offset_of("00000000000000012345.index"), None);
    }

    #[test]
    fn log_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Log>();
    }
}
