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
