//! Log compaction (Kafka's `LogCleaner`, for one log at a time): keep the latest record of every
//! key in the closed segments.
//!
//! A pass:
//! 1. picks the cleanable range: closed segments below the first open transaction and older than
//!    `min.compaction.lag.ms`; the part from the cleaner checkpoint on is "dirty". The pass runs
//!    when dirty bytes are more than `min.cleanable.dirty.ratio` of the range (or the oldest
//!    dirty record is older than `max.compaction.lag.ms`);
//! 2. maps every key of the dirty segments to its last offset (records of aborted transactions
//!    left out), bounded by the dedupe buffer size: the range ends after the segment that
//!    fills it;
//! 3. rewrites every segment from the log start to the end of the range, in groups whose total
//!    size fits a segment: a record stays when no later record has its key, unless it is keyless,
//!    in an aborted transaction, or a tombstone older than `delete.retention.ms`. Transaction
//!    markers always stay. Offsets never change (gaps are fine); kept records are copied byte
//!    for byte (see `records`);
//! 4. swaps each group in crash-safely: the output is written to `<base>.log.cleaned` (and
//!    `.index.cleaned`, `.timeindex.cleaned`), fsynced, renamed to `.swap` (the log file last:
//!    that rename is the commit point), then the old segments' files are deleted and the swap
//!    files renamed into place. On open, `recover_swaps` deletes `.cleaned` files (the clean
//!    never committed) and finishes any `.swap` (Kafka's rule: it replaces the segments whose
//!    base offsets fall inside its offsets).
//!
//! Appends are only held up while the segment list is swapped (renames and unlinks), never
//! while data is read or written.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batch::{self, BatchHeader};
use crate::error::{LogError, Result};
use crate::index::OffsetPosition;
use crate::log::Log;
use crate::records;
use crate::recovery;
use crate::retention::{delete_segment_files, sync_dir, write_atomically};
use crate::scan::BatchScanner;
use crate::segment::{INDEX_SUFFIX, LOG_SUFFIX, LogSegment, SegmentState, TIME_INDEX_SUFFIX};
use crate::time_index::TimestampOffset;

/// Where the next pass's dirty section starts (Kafka's `cleaner-offset-checkpoint`, kept per
/// partition directory).
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
const CLEANED_SUFFIX: &str = ".cleaned";
const SWAP_SUFFIX: &str = ".swap";
const SCAN_CHUNK: usize = 1 << 20;
/// What one map entry costs besides its key (hash table slot, box, offset).
const MAP_ENTRY_OVERHEAD: usize = 48;

/// What one cleaning pass did.
#[derive(Debug, Clone, Default)]
pub struct CleanStats {
    /// Offsets `[first_dirty_offset, end_offset)` were deduplicated.
    pub first_dirty_offset: i64,
    pub end_offset: i64,
    pub segments_read: usize,
    pub segments_written: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_kept: u64,
    pub keys: usize,
    pub elapsed: Duration,
}

impl CleanStats {
    /// Log bytes cleaned per second.
    pub fn mb_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64().max(1e-6);
        self.bytes_read as f64 / secs / 1_048_576.0
    }
}

fn file_with_suffix(dir: &Path, base: i64, suffix: &str, extra: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}{extra}"))
}

fn read_checkpoint(dir: &Path) -> Option<i64> {
    fs::read_to_string(dir.join(CLEANER_CHECKPOINT_FILE))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Finishes or discards what a crash left of a clean. Runs before the segments are listed.
pub(crate) fn recover_swaps(dir: &Path) -> Result<()> {
    let mut swaps = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| LogError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("listing", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(CLEANED_SUFFIX) {
            tracing::warn!(file = %entry.path().display(), "removing output of an interrupted clean");
            fs::remove_file(entry.path())
                .map_err(|e| LogError::io("removing", &entry.path(), e))?;
        } else if let Some(stem) = name.strip_suffix(&format!(".{LOG_SUFFIX}{SWAP_SUFFIX}"))
            && stem.len() == 20
            && let Ok(base) = stem.parse::<i64>()
        {
            swaps.push(base);
        }
    }
    for base in swaps {
        let swap = file_with_suffix(dir, base, LOG_SUFFIX, SWAP_SUFFIX);
        let next = next_offset_of_file(&swap, base)?;
        // Kafka's rule: the swap replaces the segments whose base offsets it covers.
        for old in list_segment_bases(dir)? {
            if old >= base && old < next.max(base + 1) {
                delete_segment_files(dir, old)?;
            }
        }
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let from = file_with_suffix(dir, base, suffix, SWAP_SUFFIX);
            if from.exists() {
                let to = file_with_suffix(dir, base, suffix, "");
                fs::rename(&from, &to).map_err(|e| LogError::io("renaming", &from, e))?;
            }
        }
        let to = file_with_suffix(dir, base, LOG_SUFFIX, "");
        fs::rename(&swap, &to).map_err(|e| LogError::io("renaming", &swap, e))?;
        tracing::warn!(segment = %to.display(), "finished the swap of an interrupted clean");
    }
    // Index swap files without their log swap belong to a clean that never committed.
    let entries = fs::read_dir(dir).map_err(|e| LogError::io("listing", dir, e))?;
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(SWAP_SUFFIX))
        {
            fs::remove_file(entry.path())
                .map_err(|e| LogError::io("removing", &entry.path(), e))?;
        }
    }
    sync_dir(dir)
}

fn list_segment_bases(dir: &Path) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| LogError::io("listing", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log"))
            && stem.len() == 20
            && let Ok(base) = stem.parse::<i64>()
        {
            out.push(base);
        }
    }
    Ok(out)
}

/// The offset after the last whole, valid batch of a segment file.
fn next_offset_of_file(path: &Path, base: i64) -> Result<i64> {
    let file = File::open(path).map_err(|e| LogError::io("opening", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| LogError::io("reading metadata of", path, e))?
        .len();
    let mut scanner = BatchScanner::new(&file, path, 0, len, SCAN_CHUNK);
    let mut next = base;
    while let Ok(Some(found)) = scanner.next_batch() {
        next = found.offsets.last_offset() + 1;
    }
    Ok(next)
}

/// Whether a batch of producer `pid` starting at `offset` belongs to an aborted transaction.
struct AbortedRanges(HashMap<i64, Vec<(i64, i64)>>);

impl AbortedRanges {
    fn contains(&self, pid: i64, offset: i64) -> bool {
        self.0
            .get(&pid)
            .is_some_and(|ranges| ranges.iter().any(|&(f, l)| f <= offset && offset <= l))
    }
}

/// The key → last offset map of the dirty section (Kafka's `OffsetMap`, with whole keys rather
/// than hashes, so two keys never collide).
struct OffsetMap {
    map: HashMap<Box<[u8]>, i64>,
    bytes: usize,
}

impl OffsetMap {
    fn put(&mut self, key: &[u8], offset: i64) {
        match self.map.get_mut(key) {
            Some(o) => *o = offset,
            None => {
                self.bytes += key.len() + MAP_ENTRY_OVERHEAD;
                self.map.insert(key.into(), offset);
            }
        }
    }
}

/// The first batch's timestamp of a segment: when its oldest record was written.
fn first_timestamp(segment: &LogSegment) -> Option<i64> {
    let mut head = [0u8; batch::BATCH_HEADER_LEN];
    use std::os::unix::fs::FileExt;
    if segment.size() < head.len() as u64 {
        return None;
    }
    segment.file().read_exact_at(&mut head, 0).ok()?;
    BatchHeader::parse(&head).ok().map(|h| h.base_timestamp)
}

fn largest_timestamp(segment: &LogSegment) -> i64 {
    segment.max_timestamp().map_or(-1, |m| m.timestamp)
}

/// Builds the offset and time index entries of a segment being written, as recovery would.
struct IndexBuilder {
    base: i64,
    interval: usize,
    state: SegmentState,
    index: Vec<u8>,
    time_index: Vec<u8>,
    last_indexed_timestamp: Option<i64>,
}

impl IndexBuilder {
    fn note(&mut self, header: &BatchHeader, position: u64) {
        let relative = |o: i64| (o - self.base).clamp(0, i64::from(u32::MAX)) as u32;
        if self.state.note_batch(header, self.interval) {
            self.index.extend_from_slice(
                &OffsetPosition {
                    relative_offset: relative(header.last_offset()),
                    position: position as u32,
                }
                .to_bytes(),
            );
            self.time_entry();
        }
    }

    fn time_entry(&mut self) {
        if let Some(max) = self.state.max_timestamp
            && self
                .last_indexed_timestamp
                .is_none_or(|last| max.timestamp > last)
        {
            self.last_indexed_timestamp = Some(max.timestamp);
            let relative = (max.offset - self.base).clamp(0, i64::from(u32::MAX)) as u32;
            self.time_index.extend_from_slice(
                &TimestampOffset {
                    timestamp: max.timestamp,
                    relative_offset: relative,
                }
                .to_bytes(),
            );
        }
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    File::create(path)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(|e| LogError::io("writing", path, e))
}

/// What the retain decision needs to know.
struct Retain<'a> {
    map: &'a OffsetMap,
    aborted: &'a AbortedRanges,
    now_ms: i64,
    delete_retention_ms: i64,
}

impl Log {
    /// One cleaning pass if the log is compacted and dirty enough (or `force`). `max_map_bytes`
    /// bounds the key map (`log.cleaner.dedupe.buffer.size`). `None` when there was nothing to do.
    pub fn clean(
        &self,
        now_ms: i64,
        max_map_bytes: usize,
        force: bool,
    ) -> Result<Option<CleanStats>> {
        let _maintenance = self.maintenance.lock();
        let started = Instant::now();
        let config = self.config();
        if !config.cleanup_compact {
            return Ok(None);
        }
        let snapshot = self.snapshot();
        let segments = snapshot.segments.clone();
        let closed = segments.len().saturating_sub(1);
        let next_base = |i: usize| segments[i + 1].base_offset();
        let first_unstable = snapshot.first_unstable_offset.unwrap_or(i64::MAX);

        // Cleanable: a prefix of the closed segments, below any open transaction and old enough.
        let mut cleanable = 0;
        while cleanable < closed
            && next_base(cleanable) <= first_unstable
            && (config.min_compaction_lag_ms <= 0
                || largest_timestamp(&segments[cleanable])
                    <= now_ms.saturating_sub(config.min_compaction_lag_ms))
        {
            cleanable += 1;
        }
        let checkpoint = read_checkpoint(&self.dir).unwrap_or(snapshot.log_start_offset);
        // The first dirty segment: the first whose end passes the checkpoint.
        let mut first_dirty = 0;
        while first_dirty < cleanable && next_base(first_dirty) <= checkpoint {
            first_dirty += 1;
        }
        if first_dirty >= cleanable {
            return Ok(None);
        }
        let clean_bytes: u64 = segments[..first_dirty].iter().map(|s| s.size()).sum();
        let dirty_bytes: u64 = segments[first_dirty..cleanable]
            .iter()
            .map(|s| s.size())
            .sum();
        let ratio = dirty_bytes as f64 / (clean_bytes + dirty_bytes).max(1) as f64;
        let overdue = config.max_compaction_lag_ms < i64::MAX
            && first_timestamp(&segments[first_dirty])
                .is_some_and(|t| now_ms.saturating_sub(t) > config.max_compaction_lag_ms);
        if !force && !overdue && ratio <= config.min_cleanable_dirty_ratio {
            return Ok(None);
        }

        let aborted = {
            let entries = self
                .aborted
                .read()
                .entries_overlapping(0, next_base(cleanable - 1));
            let mut ranges: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
            for e in entries {
                ranges
                    .entry(e.producer_id)
                    .or_default()
                    .push((e.first_offset, e.last_offset));
            }
            AbortedRanges(ranges)
        };

        // The key map of the dirty section, up to the segment that fills the buffer.
        let mut map = OffsetMap {
            map: HashMap::new(),
            bytes: 0,
        };
        let mut stats = CleanStats {
            first_dirty_offset: segments[first_dirty].base_offset(),
            ..CleanStats::default()
        };
        let mut end = first_dirty;
        while end < cleanable {
            self.map_segment(&segments[end], &aborted, &mut map)?;
            end += 1;
            if map.bytes >= max_map_bytes {
                break;
            }
        }
        stats.end_offset = next_base(end - 1);
        stats.keys = map.map.len();

        // Rewrite [0, end) in groups that fit a segment.
        let retain = Retain {
            map: &map,
            aborted: &aborted,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
        };
        let max_group_bytes = config.segment_bytes.min(i32::MAX as u64);
        let mut i = 0;
        while i < end {
            let mut j = i + 1;
            let mut bytes = segments[i].size();
            while j < end
                && bytes + segments[j].size() <= max_group_bytes
                && next_base(j) - 1 - segments[i].base_offset() <= i64::from(i32::MAX)
            {
                bytes += segments[j].size();
                j += 1;
            }
            self.clean_group(
                &segments[i..j],
                &retain,
                config.index_interval_bytes,
                &mut stats,
            )?;
            i = j;
        }
        write_atomically(
            &self.dir,
            CLEANER_CHECKPOINT_FILE,
            format!("{}\n", stats.end_offset).as_bytes(),
        )?;
        stats.elapsed = started.elapsed();
        tracing::info!(
            dir = %self.dir.display(),
            dirty_from = stats.first_dirty_offset,
            dirty_to = stats.end_offset,
            segments_in = stats.segments_read,
            segments_out = stats.segments_written,
            bytes_in = stats.bytes_read,
            bytes_out = stats.bytes_written,
            records_in = stats.records_read,
            records_kept = stats.records_kept,
            mb_per_sec = format!("{:.1}", stats.mb_per_sec()),
            "cleaned log"
        );
        Ok(Some(stats))
    }

    /// Adds the keys of one dirty segment to the map (aborted transactions' records left out).
    fn map_segment(
        &self,
        segment: &LogSegment,
        aborted: &AbortedRanges,
        map: &mut OffsetMap,
    ) -> Result<()> {
        let mut scanner = segment.scanner(0, segment.size(), SCAN_CHUNK);
        while let Some(found) = scanner.next_batch()? {
            let bytes = scanner.batch_bytes(&found)?;
            let header = BatchHeader::parse(bytes)?;
            if header.is_control()
                || (header.is_transactional()
                    && aborted.contains(header.producer_id, header.base_offset))
            {
                continue;
            }
            let data = records::records_section(bytes, &header)?;
            for record in records::parse_records(&data, header.records_count)? {
                if let Some(key) = record.key {
                    map.put(key, header.base_offset + i64::from(record.offset_delta));
                }
            }
        }
        Ok(())
    }

    /// Rewrites one group of consecutive closed segments into one and swaps it in.
    fn clean_group(
        &self,
        group: &[Arc<LogSegment>],
        retain: &Retain<'_>,
        index_interval_bytes: usize,
        stats: &mut CleanStats,
    ) -> Result<()> {
        let base = group[0].base_offset();
        let cleaned = |suffix: &str| file_with_suffix(&self.dir, base, suffix, CLEANED_SUFFIX);
        let log_path = cleaned(LOG_SUFFIX);
        let file = File::create(&log_path).map_err(|e| LogError::io("creating", &log_path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut position = 0u64;
        let mut changed = group.len() > 1;
        let mut index = IndexBuilder {
            base,
            interval: index_interval_bytes,
            state: SegmentState::default(),
            index: Vec::new(),
            time_index: Vec::new(),
            last_indexed_timestamp: None,
        };
        for segment in group {
            stats.segments_read += 1;
            stats.bytes_read += segment.size();
            let mut scanner = segment.scanner(0, segment.size(), SCAN_CHUNK);
            while let Some(found) = scanner.next_batch()? {
                let bytes = scanner.batch_bytes(&found)?;
                let header = BatchHeader::parse(bytes)?;
                let kept = filter_batch(bytes, &header, retain, stats)?;
                let kept: &[u8] = match &kept {
                    Filtered::All => bytes,
                    Filtered::Some(b) => {
                        changed = true;
                        b
                    }
                    Filtered::None => {
                        changed = true;
                        continue;
                    }
                };
                let kept_header = BatchHeader::parse(kept)?;
                index.note(&kept_header, position);
                out.write_all(kept)
                    .map_err(|e| LogError::io("writing", &log_path, e))?;
                position += kept.len() as u64;
            }
        }
        index.time_entry();
        let file = out
            .into_inner()
            .map_err(|e| LogError::io("writing", &log_path, e.into_error()))?;
        if !changed {
            drop(file);
            fs::remove_file(&log_path).map_err(|e| LogError::io("removing", &log_path, e))?;
            return Ok(());
        }
        file.sync_all()
            .map_err(|e| LogError::io("syncing", &log_path, e))?;
        drop(file);
        write_file(&cleaned(INDEX_SUFFIX), &index.index)?;
        write_file(&cleaned(TIME_INDEX_SUFFIX), &index.time_index)?;
        stats.segments_written += 1;
        stats.bytes_written += position;
        self.swap_in(group, base, index_interval_bytes)
    }

    /// Replaces `group` by the cleaned files of `base` (see the module comment for the order).
    fn swap_in(
        &self,
        group: &[Arc<LogSegment>],
        base: i64,
        index_interval_bytes: usize,
    ) -> Result<()> {
        let dir = &self.dir;
        let rename = |suffix: &str, from: &str, to: &str| -> Result<()> {
            let a = file_with_suffix(dir, base, suffix, from);
            let b = file_with_suffix(dir, base, suffix, to);
            fs::rename(&a, &b).map_err(|e| LogError::io("renaming", &a, e))
        };
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            rename(suffix, CLEANED_SUFFIX, SWAP_SUFFIX)?;
        }
        sync_dir(dir)?; // committed: a crash from here on finishes the swap at open

        let writer = self.writer.lock();
        let current = self.snapshot();
        let Some(at) = current
            .segments
            .iter()
            .position(|s| Arc::ptr_eq(s, &group[0]))
        else {
            return Err(LogError::CorruptPartition {
                path: dir.display().to_string(),
                reason: "a segment being cleaned left the log".into(),
            });
        };
        for segment in group {
            delete_segment_files(dir, segment.base_offset())?;
        }
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            rename(suffix, SWAP_SUFFIX, "")?;
        }
        let segment = LogSegment::open(dir, base, 0)?;
        if recovery::load_from_indexes(&segment, false, index_interval_bytes)?.is_none() {
            recovery::recover_segment(&segment, index_interval_bytes)?;
        }
        let mut list = Vec::with_capacity(current.segments.len());
        list.extend(current.segments[..at].iter().cloned());
        list.push(Arc::new(segment));
        list.extend(current.segments[at + group.len()..].iter().cloned());
        self.publish_segments(&current, list, current.log_start_offset);
        drop(writer);
        sync_dir(dir)
    }
}

enum Filtered {
    All,
    Some(Vec<u8>),
    None,
}

fn filter_batch(
    bytes: &[u8],
    header: &BatchHeader,
    retain: &Retain<'_>,
    stats: &mut CleanStats,
) -> Result<Filtered> {
    if header.is_control() {
        // Transaction markers stay, so read_committed consumers always see every decision.
        stats.records_read += 1;
        stats.records_kept += 1;
        return Ok(Filtered::All);
    }
    if header.is_transactional()
        && retain
            .aborted
            .contains(header.producer_id, header.base_offset)
    {
        stats.records_read += header.records_count.max(0) as u64;
        return Ok(Filtered::None);
    }
    let data = records::records_section(bytes, header)?;
    let parsed = records::parse_records(&data, header.records_count)?;
    let log_append = header.timestamp_type_is_log_append();
    let keep: Vec<bool> = parsed
        .iter()
        .map(|r| {
            let Some(key) = r.key else {
                return false;
            };
            let offset = header.base_offset + i64::from(r.offset_delta);
            if retain.map.map.get(key).is_some_and(|&last| offset < last) {
                return false;
            }
            if r.value_is_null {
                let ts = if log_append {
                    header.max_timestamp
                } else {
                    header.base_timestamp.saturating_add(r.timestamp_delta)
                };
                if retain.now_ms.saturating_sub(ts) > retain.delete_retention_ms {
                    return false;
                }
            }
            true
        })
        .collect();
    let kept = keep.iter().filter(|&&k| k).count();
    stats.records_read += parsed.len() as u64;
    stats.records_kept += kept as u64;
    if kept == parsed.len() {
        return Ok(Filtered::All);
    }
    Ok(match records::rebuild(bytes, header, &parsed, &keep)? {
        Some(b) => Filtered::Some(b),
        None => Filtered::None,
    })
}
