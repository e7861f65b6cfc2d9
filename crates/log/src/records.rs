//! The records inside a v2 batch, read and rebuilt at the byte level.
//!
//! The cleaner filters records out of stored batches, and compacted topics refuse records without
//! a key. Both need to see the records, but neither may change what is kept: a kept record's bytes
//! (attributes, deltas, key, value, headers, duplicate header keys included) are copied verbatim,
//! so re-encoding through a decoded `Record` (whose header map collapses duplicate keys) is never
//! involved. Only the batch header's counts, last offset delta, max timestamp, length and CRC are
//! recomputed, and the records section is compressed again with the batch's own codec.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{self as codec, Compressor, Decompressor};

use crate::batch::{self, ATTRIBUTES_OFFSET, BATCH_HEADER_LEN, BatchHeader, LOG_OVERHEAD};
use crate::error::{LogError, Result};

// Header fields rewritten when a batch is rebuilt (byte offsets from the start of the batch).
const LENGTH_OFFSET: usize = 8;
const CRC_OFFSET: usize = 17;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const RECORDS_COUNT_OFFSET: usize = 57;

/// One record of a batch: its raw bytes (length prefix included) and the fields the cleaner and
/// the key check look at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRecord<'a> {
    pub bytes: &'a [u8],
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    /// A null value: a tombstone on a compacted topic.
    pub value_is_null: bool,
}

fn corrupt(what: &str) -> LogError {
    LogError::CorruptMessage(format!("malformed record in batch: {what}"))
}

/// Reads an unsigned LEB128 varint of at most `max_bytes` bytes.
fn read_uvarint(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Result<u64> {
    let mut value = 0u64;
    for i in 0..max_bytes {
        let Some(&b) = buf.get(*pos) else {
            return Err(corrupt("varint runs past the end"));
        };
        *pos += 1;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(corrupt("varint too long"))
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32> {
    let raw = read_uvarint(buf, pos, 5)? as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64> {
    let raw = read_uvarint(buf, pos, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// A length-prefixed field: `None` for length -1.
fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>> {
    let len = read_varint(buf, pos)?;
    if len < 0 {
        return Ok(None);
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| corrupt("field runs past the end of the record"))?;
    let out = &buf[*pos..end];
    *pos = end;
    Ok(Some(out))
}

/// The uncompressed records section of one stored batch (`batch` is exactly one batch).
pub(crate) fn records_section(batch: &[u8], header: &BatchHeader) -> Result<Bytes> {
    let Some(payload) = batch.get(BATCH_HEADER_LEN..) else {
        return Err(corrupt("batch shorter than its header"));
    };
    let mut src = Bytes::copy_from_slice(payload);
    let fail = |e: anyhow::Error| {
        LogError::CorruptMessage(format!(
            "cannot decompress batch at offset {}: {e}",
            header.base_offset
        ))
    };
    let out = |b: &mut Bytes| Ok(std::mem::take(b));
    match header.compression() {
        0 => Ok(src),
        1 => codec::Gzip::decompress(&mut src, out).map_err(fail),
        2 => codec::Snappy::decompress(&mut src, out).map_err(fail),
        3 => codec::Lz4::decompress(&mut src, out).map_err(fail),
        4 => codec::Zstd::decompress(&mut src, out).map_err(fail),
        other => Err(LogError::UnsupportedCompression(other)),
    }
}

/// Compresses a records section with the codec id of a batch's attributes, at `level` when one
/// is given (the topic config gives one only for gzip, lz4 and zstd), else at the codec's default.
pub(crate) fn compress(codec_id: u8, raw: &[u8], level: Option<i32>) -> Result<Vec<u8>> {
    if let Some(level) = level {
        return crate::codec_level::compress(codec_id, raw, level)
            .map_err(|e| LogError::InvalidRecord(format!("compressing a batch: {e}")));
    }
    let mut out = BytesMut::with_capacity(raw.len() / 2 + 64);
    let fill = |b: &mut BytesMut| {
        b.put_slice(raw);
        Ok(())
    };
    let done = match codec_id {
        0 => {
            out.put_slice(raw);
            Ok(())
        }
        1 => codec::Gzip::compress(&mut out, fill),
        2 => codec::Snappy::compress(&mut out, fill),
        3 => codec::Lz4::compress(&mut out, fill),
        4 => codec::Zstd::compress(&mut out, fill),
        other => return Err(LogError::UnsupportedCompression(other)),
    };
    done.map_err(|e| LogError::InvalidRecord(format!("compressing a cleaned batch: {e}")))?;
    Ok(out.to_vec())
}

/// Splits an uncompressed records section into its `count` records.
pub(crate) fn parse_records(data: &[u8], count: i32) -> Result<Vec<RawRecord<'_>>> {
    let mut out = Vec::with_capacity(count.clamp(0, 1 << 16) as usize);
    let mut pos = 0usize;
    for _ in 0..count.max(0) {
        let start = pos;
        let len = read_varint(data, &mut pos)?;
        if len < 0 {
            return Err(corrupt("negative record length"));
        }
        let end = pos
            .checked_add(len as usize)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| corrupt("record runs past the end of the batch"))?;
        let body = &data[..end];
        let mut p = pos + 1; // attributes (int8), unused
        let timestamp_delta = read_varlong(body, &mut p)?;
        let offset_delta = read_varint(body, &mut p)?;
        let key = read_bytes(body, &mut p)?;
        let value = read_bytes(body, &mut p)?;
        out.push(RawRecord {
            bytes: &data[start..end],
            offset_delta,
            timestamp_delta,
            key,
            value_is_null: value.is_none(),
        });
        pos = end;
    }
    if pos != data.len() {
        return Err(corrupt("bytes left over after the last record"));
    }
    Ok(out)
}

/// Compacted topics refuse records without a key (Kafka's LogValidator does the same). Control
/// batches are exempt.
pub(crate) fn check_keys(batch: &[u8], header: &BatchHeader) -> Result<()> {
    if header.is_control() {
        return Ok(());
    }
    let data = records_section(batch, header)?;
    for record in parse_records(&data, header.records_count)? {
        if record.key.is_none() {
            return Err(LogError::InvalidRecord(
                "Compacted topic cannot accept message without key".into(),
            ));
        }
    }
    Ok(())
}

/// Rebuilds `batch` with only the records `keep` chose: the same base offset, base timestamp,
/// attributes and producer fields; the records' own bytes unchanged; count, last offset delta,
/// max timestamp (CreateTime), length and CRC recomputed; compressed again with the batch's
/// codec. `None` when no record is kept.
pub(crate) fn rebuild(
    batch: &[u8],
    header: &BatchHeader,
    records: &[RawRecord<'_>],
    keep: &[bool],
) -> Result<Option<Vec<u8>>> {
    let kept: Vec<&RawRecord<'_>> = records
        .iter()
        .zip(keep)
        .filter_map(|(r, &k)| k.then_some(r))
        .collect();
    let Some(last) = kept.last() else {
        return Ok(None);
    };
    let mut raw = Vec::with_capacity(kept.iter().map(|r| r.bytes.len()).sum());
    for r in &kept {
        raw.extend_from_slice(r.bytes);
    }
    let section = compress(header.compression(), &raw, None)?;
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + section.len());
    out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
    out.extend_from_slice(&section);
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    out[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    out[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
        .copy_from_slice(&last.offset_delta.to_be_bytes());
    if !header.timestamp_type_is_log_append() {
        let max = kept
            .iter()
            .map(|r| header.base_timestamp.saturating_add(r.timestamp_delta))
            .max()
            .unwrap_or(header.max_timestamp);
        out[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&max.to_be_bytes());
    }
    out[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4]
        .copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    debug_assert!(batch::check_crc(&out, &BatchHeader::parse(&out)?).is_ok());
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn record(offset: i64, key: Option<&str>, value: Option<&str>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            // The encoder splits a batch where offset - sequence changes.
            sequence: offset as i32,
            timestamp: 1_000 + offset,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: IndexMap::new(),
        }
    }

    fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode");
        buf.to_vec()
    }

    #[test]
    fn filters_records_in_every_codec() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let recs = vec![
                record(10, Some("a"), Some("1")),
                record(11, Some("b"), None),
                record(12, Some("c"), Some("3")),
                record(13, Some("d"), Some("4")),
            ];
            let batch = encode(&recs, compression);
            let header = BatchHeader::parse(&batch).expect("header");
            let data = records_section(&batch, &header).expect("section");
            let parsed = parse_records(&data, header.records_count).expect("parse");
            assert_eq!(parsed.len(), 4);
            assert!(parsed[1].value_is_null);
            assert_eq!(parsed[2].key, Some(&b"c"[..]));
            let out = rebuild(&batch, &header, &parsed, &[false, true, true, false])
                .expect("rebuild")
                .expect("not empty");
            let h = BatchHeader::parse(&out).expect("header");
            batch::check_crc(&out, &h).expect("crc");
            assert_eq!(h.records_count, 2);
            assert_eq!(h.last_offset(), 12);
            assert_eq!(h.max_timestamp, 1_012);
            let mut bytes = Bytes::from(out);
            let set = RecordBatchDecoder::decode(&mut bytes).expect("decode");
            let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, vec![11, 12], "{compression:?}");
            assert!(set.records[0].value.is_none());
            assert!(
                rebuild(&batch, &header, &parsed, &[false; 4])
                    .expect("rebuild")
                    .is_none()
            );
        }
    }

    #[test]
    fn keyless_records_are_found() {
        let batch = encode(
            &[record(0, Some("a"), Some("1")), record(1, None, Some("2"))],
            Compression::Lz4,
        );
        let header = BatchHeader::parse(&batch).expect("header");
        assert!(matches!(
            check_keys(&batch, &header),
            Err(LogError::InvalidRecord(_))
        ));
        let batch = encode(&[record(0, Some("a"), None)], Compression::None);
        let header = BatchHeader::parse(&batch).expect("header");
        check_keys(&batch, &header).expect("keyed tombstone is fine");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for data in [&[0x80u8][..], &[0x02, 0x00][..], &[0xff; 12][..]] {
            assert!(parse_records(data, 1).is_err());
        }
    }
}
