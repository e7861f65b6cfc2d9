//! Bringing a segment back after a restart: either trusting its indexes (clean shutdown) or
//! scanning and validating its batches, cutting a torn tail and rebuilding the indexes.

use std::os::unix::fs::FileExt;

use crate::batch::{self, BatchHeader};
use crate::error::{LogError, Result};
use crate::index::OffsetPosition;
use crate::scan::BatchScanner;
use crate::segment::{LogSegment, MaxTimestamp, SegmentState};
use crate::time_index::TimestampOffset;

/// Bytes read at a time when scanning a whole segment.
const RECOVERY_CHUNK: usize = 1024 * 1024;

/// Validates the next batch of a scan: framing, CRC, and offsets that only move forward and
/// stay within the index's relative range of the segment base.
fn next_valid_batch(
    scanner: &mut BatchScanner<'_>,
    segment_base: i64,
    expected_offset: i64,
) -> Result<Option<(u64, BatchHeader)>> {
    let Some(scanned) = scanner.next_batch()? else {
        return Ok(None);
    };
    let bytes = scanner.batch_bytes(&scanned)?;
    let header = BatchHeader::parse(bytes)?;
    header.check_framing(bytes.len())?;
    batch::check_crc(bytes, &header)?;
    if header.base_offset < expected_offset {
        return Err(LogError::CorruptMessage(format!(
            "batch base offset {} is below the expected {expected_offset}",
            header.base_offset
        )));
    }
    if header.last_offset() - segment_base > i64::from(i32::MAX) {
        return Err(LogError::CorruptMessage(format!(
            "batch last offset {} is too far above the segment base offset {segment_base}",
            header.last_offset()
        )));
    }
    Ok(Some((scanned.position, header)))
}

fn relative(segment: &LogSegment, offset: i64) -> u32 {
    (offset - segment.base_offset()).clamp(0, i64::from(u32::MAX)) as u32
}

/// Scans the whole segment, cuts it at the first invalid or torn batch and rewrites both indexes
/// from what remains. Returns the offset after the last valid batch.
pub(crate) fn recover_segment(segment: &LogSegment, index_interval_bytes: usize) -> Result<i64> {
    let file_size = segment.size();
    let created_ms = segment.state.lock().created_ms;
    let mut state = SegmentState {
        created_ms,
        ..SegmentState::default()
    };
    let mut next_offset = segment.base_offset();
    let mut valid_end = 0u64;
    let mut index_entries = Vec::new();
    let mut time_entries = Vec::new();
    let mut last_indexed_timestamp: Option<i64> = None;
    let mut push_time_entry = |max: MaxTimestamp, entries: &mut Vec<u8>| {
        if last_indexed_timestamp.is_none_or(|last| max.timestamp > last) {
            last_indexed_timestamp = Some(max.timestamp);
            let entry = TimestampOffset {
                timestamp: max.timestamp,
                relative_offset: relative(segment, max.offset),
            };
            entries.extend_from_slice(&entry.to_bytes());
        }
    };

    let mut scanner = segment.scanner(0, file_size, RECOVERY_CHUNK);
    loop {
        match next_valid_batch(&mut scanner, segment.base_offset(), next_offset) {
            Ok(Some((position, header))) => {
                if state.note_batch(&header, index_interval_bytes) {
                    let entry = OffsetPosition {
                        relative_offset: relative(segment, header.last_offset()),
                        position: position as u32,
                    };
                    index_entries.extend_from_slice(&entry.to_bytes());
                    if let Some(max) = state.max_timestamp {
                        push_time_entry(max, &mut time_entries);
                    }
                }
                next_offset = header.last_offset() + 1;
                valid_end = position + header.total_len() as u64;
            }
            Ok(None) => break,
            Err(LogError::Io { context, source }) => return Err(LogError::Io { context, source }),
            Err(e) => {
                tracing::warn!(
                    segment = %segment.path().display(),
                    valid_bytes = valid_end,
                    truncated_bytes = file_size - valid_end,
                    error = %e,
                    "cutting invalid or torn tail of segment"
                );
                break;
            }
        }
    }
    if valid_end < file_size {
        segment.truncate_to(valid_end)?;
    }
    // The final max timestamp is indexed too, as at a roll, so it survives the next clean open.
    if let Some(max) = state.max_timestamp {
        push_time_entry(max, &mut time_entries);
    }
    segment.index.rewrite(index_entries)?;
    segment.time_index.rewrite(time_entries)?;
    *segment.state.lock() = state;
    tracing::info!(
        segment = %segment.path().display(),
        bytes = valid_end,
        next_offset,
        "recovered segment by scanning"
    );
    Ok(next_offset)
}

/// Whether the indexes pass Kafka-style sanity checks: whole entries, last offset entry inside
/// the log, and a time index entry for any non-empty segment (written at roll and close).
pub(crate) fn indexes_look_sane(segment: &LogSegment) -> Result<bool> {
    let size = segment.size();
    Ok(segment.index.is_sane(size)?
        && segment.time_index.is_sane()?
        && (size == 0 || !segment.time_index.is_empty()))
}

/// Loads a segment's state from its trusted indexes without scanning its data. For the active
/// segment the batches after the last offset index entry (at most about one index interval)
/// are validated to find the log end offset. Returns `None` when the indexes or that tail do
/// not hold up, in which case the caller recovers the segment by scanning.
pub(crate) fn load_from_indexes(
    segment: &LogSegment,
    is_active: bool,
    index_interval_bytes: usize,
) -> Result<Option<i64>> {
    if !indexes_look_sane(segment)? {
        return Ok(None);
    }
    let base = segment.base_offset();
    let mut state = SegmentState {
        created_ms: segment.state.lock().created_ms,
        max_timestamp: segment.time_index.last_entry().map(|entry| MaxTimestamp {
            timestamp: entry.timestamp,
            offset: base + i64::from(entry.relative_offset),
        }),
        ..SegmentState::default()
    };
    if !is_active {
        *segment.state.lock() = state;
        return Ok(Some(-1));
    }

    let size = segment.size();
    let last_entry = segment.index.last_entry();
    let start = last_entry.map_or(0, |entry| u64::from(entry.position));
    let mut next_offset = base;
    let mut scanner = segment.scanner(start, size, RECOVERY_CHUNK);
    loop {
        match next_valid_batch(&mut scanner, segment.base_offset(), next_offset) {
            Ok(Some((position, header))) => {
                // The count restarts at the last entry's batch, as it did when it was written;
                // an entry due later is missing (never written) and is added now.
                if state.note_batch(&header, index_interval_bytes) {
                    segment.index.append(OffsetPosition {
                        relative_offset: relative(segment, header.last_offset()),
                        position: position as u32,
                    })?;
                }
                next_offset = header.last_offset() + 1;
            }
            Ok(None) => break,
            Err(LogError::Io { context, source }) => return Err(LogError::Io { context, source }),
            Err(e) => {
                tracing::warn!(
                    segment = %segment.path().display(),
                    error = %e,
                    "tail of cleanly closed segment is invalid; scanning it"
                );
                return Ok(None);
            }
        }
    }
    if size >= batch::BATCH_HEADER_LEN as u64 {
        let mut head = [0u8; batch::BATCH_HEADER_LEN];
        segment
            .file()
            .read_exact_at(&mut head, 0)
            .map_err(|e| LogError::io("reading first batch of", segment.path(), e))?;
        state.rolling_based_timestamp = Some(BatchHeader::parse(&head)?.max_timestamp);
    }
    *segment.state.lock() = state;
    Ok(Some(next_offset))
}
