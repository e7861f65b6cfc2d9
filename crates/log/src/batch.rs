//! The record batch v2 header (Kafka's `DefaultRecordBatch` layout) and the in-place rewrites the
//! log makes to it. Everything is read from raw bytes, so every accessor checks lengths.

use crate::error::{LogError, Result};

/// Bytes of a v2 batch header, up to and including `recordsCount`.
pub const BATCH_HEADER_LEN: usize = 61;

/// `baseOffset` + `batchLength`: the part of the header not counted in `batchLength`.
pub(crate) const LOG_OVERHEAD: usize = 12;
/// The smallest legal `batchLength` (a header with no records).
pub(crate) const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
/// The only record batch format this log stores.
pub(crate) const MAGIC_V2: i8 = 2;
/// Highest compression codec id Kafka defines (zstd).
pub(crate) const MAX_COMPRESSION_CODEC: u8 = 4;

// Field positions inside a batch (byte offsets from the start of the batch).
const BASE_OFFSET_OFFSET: usize = 0;
const LENGTH_OFFSET: usize = 8;
const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
/// The CRC covers everything from the attributes to the end of the batch.
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORDS_COUNT_OFFSET: usize = 57;
/// Enough of the header to step from batch to batch and know its offsets.
pub(crate) const OFFSETS_PREFIX_LEN: usize = LAST_OFFSET_DELTA_OFFSET + 4;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;
const TRANSACTIONAL_MASK: i16 = 0x10;
const CONTROL_MASK: i16 = 0x20;

/// Parsed view of a record batch v2 header. All fields are big-endian on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the 61-byte header at the start of `buf`. Checks only that the bytes are there;
    /// see [`BatchHeader::check_framing`] and [`check_crc`] for the rest.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(LogError::CorruptMessage(format!(
                "record batch header needs {BATCH_HEADER_LEN} bytes, only {} present",
                buf.len()
            )));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_OFFSET),
            batch_length: be_i32(buf, LENGTH_OFFSET),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(buf, BASE_SEQUENCE_OFFSET),
            records_count: be_i32(buf, RECORDS_COUNT_OFFSET),
        })
    }

    /// Whole size of the batch on disk: the 12 bytes of offset and length plus `batch_length`.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        // Saturating: the base offset of a stored batch is not covered by its CRC.
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Compression codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }

    pub fn timestamp_type_is_log_append(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_MASK != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_MASK != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_MASK != 0
    }

    /// Checks what is needed to find the next batch: the magic and a `batch_length` that is at
    /// least a header and fits in `available` bytes.
    pub(crate) fn check_framing(&self, available: usize) -> Result<()> {
        if self.magic != MAGIC_V2 {
            return Err(LogError::UnsupportedMagic(self.magic));
        }
        if self.batch_length < MIN_BATCH_LENGTH {
            return Err(LogError::CorruptMessage(format!(
                "batch length {} is smaller than the minimum {MIN_BATCH_LENGTH}",
                self.batch_length
            )));
        }
        if self.total_len() > available {
            return Err(LogError::CorruptMessage(format!(
                "batch of {} bytes is truncated: only {available} bytes present",
                self.total_len()
            )));
        }
        Ok(())
    }

    /// Checks the fields a producer controls that do not need the records decoded.
    pub(crate) fn check_contents(&self) -> Result<()> {
        if self.compression() > MAX_COMPRESSION_CODEC {
            return Err(LogError::UnsupportedCompression(self.compression()));
        }
        if self.records_count < 1 {
            return Err(LogError::InvalidRecord(format!(
                "record batch has {} records",
                self.records_count
            )));
        }
        if i64::from(self.records_count) != i64::from(self.last_offset_delta) + 1 {
            return Err(LogError::InvalidRecord(format!(
                "records count {} does not match last offset delta {}",
                self.records_count, self.last_offset_delta
            )));
        }
        // An uncompressed record takes at least 7 bytes (length, attributes, timestamp and
        // offset deltas, key and value lengths, header count), so a count the bytes cannot
        // hold is a lie; decoding it later would reserve memory for it.
        let payload = (self.total_len()).saturating_sub(BATCH_HEADER_LEN);
        if self.compression() == 0 && self.records_count as usize > payload / 7 {
            return Err(LogError::CorruptMessage(format!(
                "record batch claims {} records in {payload} bytes",
                self.records_count
            )));
        }
        Ok(())
    }
}

/// The offsets of a batch, read from its first [`OFFSETS_PREFIX_LEN`] bytes, for stepping over
/// batches without parsing the whole header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchOffsets {
    pub base_offset: i64,
    pub batch_length: i32,
    pub last_offset_delta: i32,
}

impl BatchOffsets {
    pub fn parse(buf: &[u8]) -> Result<BatchOffsets> {
        if buf.len() < OFFSETS_PREFIX_LEN {
            return Err(LogError::CorruptMessage(format!(
                "record batch prefix needs {OFFSETS_PREFIX_LEN} bytes, only {} present",
                buf.len()
            )));
        }
        let offsets = BatchOffsets {
            base_offset: be_i64(buf, BASE_OFFSET_OFFSET),
            batch_length: be_i32(buf, LENGTH_OFFSET),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_OFFSET),
        };
        if offsets.batch_length < MIN_BATCH_LENGTH || offsets.last_offset_delta < 0 {
            return Err(LogError::CorruptMessage(format!(
                "stored batch at offset {} has length {} and last offset delta {}",
                offsets.base_offset, offsets.batch_length, offsets.last_offset_delta
            )));
        }
        Ok(offsets)
    }

    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        // Saturating: the base offset of a stored batch is not covered by its CRC.
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }
}

/// CRC-32C of a whole batch (`batch` must be exactly one batch) compared with its crc field.
pub(crate) fn check_crc(batch: &[u8], header: &BatchHeader) -> Result<()> {
    let Some(covered) = batch.get(ATTRIBUTES_OFFSET..) else {
        return Err(LogError::CorruptMessage(
            "record batch shorter than its header".into(),
        ));
    };
    let actual = crc32c::crc32c(covered);
    if actual != header.crc {
        return Err(LogError::CorruptMessage(format!(
            "record batch at offset {} has CRC {:#010x}, computed {actual:#010x}",
            header.base_offset, header.crc
        )));
    }
    Ok(())
}

/// Writes the base offset; not covered by the CRC. `batch` must hold at least a header.
pub(crate) fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    put(batch, BASE_OFFSET_OFFSET, &base_offset.to_be_bytes());
}

/// Writes the partition leader epoch; not covered by the CRC.
pub(crate) fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    put(batch, PARTITION_LEADER_EPOCH_OFFSET, &epoch.to_be_bytes());
}

/// Sets the timestamp type bit and (for LogAppendTime) the max timestamp, then recomputes the
/// CRC, as Kafka's `setMaxTimestamp` does. `batch` must be exactly one batch.
pub(crate) fn set_timestamp_type(batch: &mut [u8], log_append_time: Option<i64>) {
    if batch.len() < BATCH_HEADER_LEN {
        return;
    }
    let mut attributes = be_i16(batch, ATTRIBUTES_OFFSET);
    match log_append_time {
        Some(now) => {
            attributes |= TIMESTAMP_TYPE_MASK;
            put(batch, MAX_TIMESTAMP_OFFSET, &now.to_be_bytes());
        }
        None => attributes &= !TIMESTAMP_TYPE_MASK,
    }
    put(batch, ATTRIBUTES_OFFSET, &attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    put(batch, CRC_OFFSET, &crc.to_be_bytes());
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

// Callers have checked `buf` is long enough for the field; a short slice reads as zeros
// rather than panicking.
fn field<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

pub(crate) fn be_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(field(buf, at))
}

pub(crate) fn be_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(field(buf, at))
}

pub(crate) fn be_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(field(buf, at))
}

fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(field(buf, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes() -> Vec<u8> {
        let mut buf = vec![0u8; BATCH_HEADER_LEN];
        buf[0..8].copy_from_slice(&100i64.to_be_bytes());
        buf[8..12].copy_from_slice(&(MIN_BATCH_LENGTH).to_be_bytes());
        buf[12..16].copy_from_slice(&3i32.to_be_bytes());
        buf[16] = 2;
        buf[21..23].copy_from_slice(&(0x3bi16).to_be_bytes()); // lz4, log append, transactional, control
        buf[23..27].copy_from_slice(&4i32.to_be_bytes());
        buf[27..35].copy_from_slice(&1_000i64.to_be_bytes());
        buf[35..43].copy_from_slice(&2_000i64.to_be_bytes());
        buf[43..51].copy_from_slice(&77i64.to_be_bytes());
        buf[51..53].copy_from_slice(&9i16.to_be_bytes());
        buf[53..57].copy_from_slice(&5i32.to_be_bytes());
        buf[57..61].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..]);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        buf
    }

    #[test]
    fn parses_every_field() {
        let buf = header_bytes();
        let h = BatchHeader::parse(&buf).expect("parse");
        assert_eq!(h.base_offset, 100);
        assert_eq!(h.total_len(), BATCH_HEADER_LEN);
        assert_eq!(h.partition_leader_epoch, 3);
        assert_eq!(h.magic, 2);
        assert_eq!(h.last_offset(), 104);
        assert_eq!(h.compression(), 3);
        assert!(h.timestamp_type_is_log_append() && h.is_transactional() && h.is_control());
        assert_eq!((h.base_timestamp, h.max_timestamp), (1_000, 2_000));
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (77, 9, 5)
        );
        assert_eq!(h.records_count, 5);
        check_crc(&buf, &h).expect("crc");
        h.check_framing(buf.len()).expect("framing");
        h.check_contents().expect("contents");
    }

    #[test]
    fn short_input_is_corrupt_not_a_panic() {
        let buf = header_bytes();
        for len in 0..BATCH_HEADER_LEN {
            assert!(matches!(
                BatchHeader::parse(&buf[..len]),
                Err(LogError::CorruptMessage(_))
            ));
        }
        assert!(BatchOffsets::parse(&buf[..OFFSETS_PREFIX_LEN - 1]).is_err());
        let h = BatchHeader::parse(&buf).expect("parse");
        assert!(h.check_framing(buf.len() - 1).is_err());
    }

    #[test]
    fn rewrites_keep_the_crc_valid() {
        let mut buf = header_bytes();
        set_base_offset(&mut buf, 5);
        set_partition_leader_epoch(&mut buf, 11);
        set_timestamp_type(&mut buf, Some(9_999));
        let h = BatchHeader::parse(&buf).expect("parse");
        assert_eq!(
            (h.base_offset, h.partition_leader_epoch, h.max_timestamp),
            (5, 11, 9_999)
        );
        check_crc(&buf, &h).expect("crc after log append time");
        set_timestamp_type(&mut buf, None);
        let h = BatchHeader::parse(&buf).expect("parse");
        assert!(!h.timestamp_type_is_log_append());
        check_crc(&buf, &h).expect("crc after create time");
        // Too short to hold a header: left alone rather than panicking.
        set_timestamp_type(&mut buf[..10], Some(1));
    }
}
