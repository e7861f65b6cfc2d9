//! Validation of a producer's record batches before anything is written: what Kafka's
//! `LogValidator` checks for magic v2 without decompressing the records.

use crate::batch::{self, BATCH_HEADER_LEN, BatchHeader};
use crate::config::TimestampType;
use crate::error::{LogError, Result};

/// One batch of an append, as found in the caller's buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ValidBatch {
    /// Byte position of the batch in the appended buffer.
    pub position: usize,
    pub header: BatchHeader,
}

/// Checks every batch in `records`; any failure rejects the whole append.
pub(crate) fn validate_batches(
    records: &[u8],
    max_message_bytes: usize,
) -> Result<Vec<ValidBatch>> {
    if records.is_empty() {
        return Err(LogError::InvalidRecord(
            "produce request has no record batches".into(),
        ));
    }
    let mut batches = Vec::new();
    let mut position = 0;
    while position < records.len() {
        let rest = &records[position..];
        let header = BatchHeader::parse(rest)?;
        header.check_framing(rest.len())?;
        let len = header.total_len();
        if len > max_message_bytes {
            return Err(LogError::MessageTooLarge {
                size: len,
                max: max_message_bytes,
            });
        }
        batch::check_crc(&rest[..len], &header)?;
        header.check_contents()?;
        check_producer_fields(&header)?;
        batches.push(ValidBatch { position, header });
        position += len;
    }
    Ok(batches)
}

/// Checks batches a follower copies from its leader: framing, CRC and codec, and offsets that
/// only move forward from `log_end_offset`. Record counts and producer fields were checked by
/// the leader, and a compacted leader's batches may have offset gaps, so neither is re-checked.
pub(crate) fn validate_replicated(records: &[u8], log_end_offset: i64) -> Result<Vec<ValidBatch>> {
    let mut batches = Vec::new();
    let mut position = 0;
    let mut next_offset = log_end_offset;
    while position < records.len() {
        let rest = &records[position..];
        let header = BatchHeader::parse(rest)?;
        header.check_framing(rest.len())?;
        let len = header.total_len();
        batch::check_crc(&rest[..len], &header)?;
        if header.compression() > batch::MAX_COMPRESSION_CODEC {
            return Err(LogError::UnsupportedCompression(header.compression()));
        }
        if header.base_offset < next_offset || header.last_offset() < header.base_offset {
            return Err(LogError::InvalidRecord(format!(
                "replicated batch at offset {} does not follow offset {}",
                header.base_offset,
                next_offset - 1
            )));
        }
        next_offset = header.last_offset() + 1;
        batches.push(ValidBatch { position, header });
        position += len;
    }
    Ok(batches)
}

/// Checks the record batches of one produce request partition as [`crate::Log::append`] does
/// before writing anything (magic, framing, `max_message_bytes`, CRC-32C, record counts,
/// producer fields), without a log. Returns the number of batches. Public for the fuzz targets
/// and for callers that want to reject a request early.
pub fn check(records: &[u8], max_message_bytes: usize) -> Result<usize> {
    validate_batches(records, max_message_bytes).map(|batches| batches.len())
}

/// Kafka rejects batches whose producer fields cannot be right.
fn check_producer_fields(header: &BatchHeader) -> Result<()> {
    let has_producer_id = header.producer_id >= 0;
    // Transaction markers carry the producer id but no sequence.
    if has_producer_id && header.base_sequence < 0 && !header.is_control() {
        return Err(LogError::InvalidRecord(format!(
            "producer id {} with invalid base sequence {}",
            header.producer_id, header.base_sequence
        )));
    }
    if header.is_transactional() && !has_producer_id {
        return Err(LogError::InvalidRecord(
            "transactional record batch without a producer id".into(),
        ));
    }
    Ok(())
}

/// Makes the batches carry the topic's timestamp type: with LogAppendTime the max timestamp
/// becomes `now_ms`; with CreateTime a LogAppendTime bit a producer set is cleared. The CRC is
/// recomputed only for batches that change. Returns each batch's max timestamp after the rewrite.
pub(crate) fn apply_timestamp_type(
    records: &mut [u8],
    batches: &mut [ValidBatch],
    timestamp_type: TimestampType,
    now_ms: i64,
) {
    for valid in batches.iter_mut() {
        let header = &mut valid.header;
        let wanted_log_append = timestamp_type == TimestampType::LogAppendTime;
        let unchanged = match timestamp_type {
            TimestampType::LogAppendTime => {
                header.timestamp_type_is_log_append() && header.max_timestamp == now_ms
            }
            TimestampType::CreateTime => !header.timestamp_type_is_log_append(),
        };
        if unchanged {
            continue;
        }
        let Some(bytes) = records.get_mut(valid.position..valid.position + header.total_len())
        else {
            continue;
        };
        if bytes.len() < BATCH_HEADER_LEN {
            continue;
        }
        batch::set_timestamp_type(bytes, wanted_log_append.then_some(now_ms));
        if let Ok(rewritten) = BatchHeader::parse(bytes) {
            *header = rewritten;
        }
    }
}

/// Kafka's `message.timestamp.(before|after).max.ms`: with CreateTime, every record's timestamp
/// must lie in `[now - before_max_ms, now + after_max_ms]`, else the append fails with
/// INVALID_TIMESTAMP naming the first record out of range. Records without a timestamp (-1) are
/// exempt, as are control batches (the broker writes those with its own clock).
///
/// A batch's records are only decompressed when its header cannot settle it: the header's
/// base timestamp is the first record's and its max timestamp bounds them all, so a batch whose
/// max is in range needs no look inside when the lower bound is unlimited (the default).
pub(crate) fn check_timestamps(
    records: &[u8],
    batches: &[ValidBatch],
    config: &crate::config::LogConfig,
    now_ms: i64,
) -> Result<()> {
    if config.timestamp_type != TimestampType::CreateTime {
        return Ok(());
    }
    let before = config.timestamp_before_max_ms.max(0);
    let after = config.timestamp_after_max_ms.max(0);
    let lowest = now_ms.saturating_sub(before);
    let highest = now_ms.saturating_add(after);
    let unbounded_below = before == i64::MAX || lowest <= 0;
    if unbounded_below && after == i64::MAX {
        return Ok(());
    }
    let out_of_range = |ts: i64| ts != -1 && (ts < lowest || ts > highest);
    for valid in batches {
        let header = &valid.header;
        if header.is_control() {
            continue;
        }
        if unbounded_below && header.max_timestamp <= highest && header.compression() != 0 {
            continue;
        }
        let end = valid.position + header.total_len();
        let Some(bytes) = records.get(valid.position..end) else {
            continue;
        };
        let data = crate::records::records_section(bytes, header)?;
        for (index, record) in crate::records::parse_records(&data, header.records_count)?
            .iter()
            .enumerate()
        {
            let ts = header.base_timestamp.saturating_add(record.timestamp_delta);
            if out_of_range(ts) {
                return Err(LogError::InvalidTimestamp {
                    batch_index: i32::try_from(index).unwrap_or(i32::MAX),
                    message: format!(
                        "Timestamp {ts} of message with offset {} is out of range. The \
                         timestamp should be within [{lowest}, {highest}]",
                        i64::from(record.offset_delta)
                    ),
                });
            }
        }
    }
    Ok(())
}
