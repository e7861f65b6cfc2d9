//! Broker-side recompression: a topic whose `compression.type` names a codec stores every
//! producer batch in that codec, whatever the producer used (Kafka's LogValidator does the same
//! when the topic's codec differs from the batch's).
//!
//! Only the records section is recompressed: the records' own bytes (offset and timestamp
//! deltas, keys, values, headers) are decompressed and compressed again unchanged, so every
//! record keeps its offset and timestamp. The header keeps base offset, timestamps, producer
//! fields and sequence (a retried idempotent batch is still recognised); only the codec bits of
//! the attributes, the batch length and the CRC change.
//!
//! Must not touch: offsets assignment, timestamps, the producer state (the caller's append does
//! those on the rewritten buffer).

use crate::batch::{ATTRIBUTES_OFFSET, BATCH_HEADER_LEN, BatchHeader, LOG_OVERHEAD};
use crate::error::{LogError, Result};
use crate::records;
use crate::validate::ValidBatch;

const LENGTH_OFFSET: usize = 8;
const CRC_OFFSET: usize = 17;
const COMPRESSION_MASK: i16 = 0x07;

/// Whether any batch of an append must be rewritten into `target`'s codec. Control batches are
/// written by the broker itself and never compressed.
pub(crate) fn needed(batches: &[ValidBatch], target: Option<u8>) -> bool {
    let Some(target) = target else {
        return false;
    };
    batches
        .iter()
        .any(|b| !b.header.is_control() && b.header.compression() != target)
}

/// `records` with every batch whose codec is not `target` recompressed into it (at `level`, or
/// the codec's default); the other batches are copied as they are.
pub(crate) fn recompress(
    records: &[u8],
    batches: &[ValidBatch],
    target: u8,
    level: Option<i32>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(records.len());
    for valid in batches {
        let header = &valid.header;
        let end = valid.position + header.total_len();
        let Some(bytes) = records.get(valid.position..end) else {
            return Err(LogError::CorruptMessage(
                "record batch runs past the end of the request".into(),
            ));
        };
        if header.is_control() || header.compression() == target {
            out.extend_from_slice(bytes);
            continue;
        }
        rewrite_batch(bytes, header, target, level, &mut out)?;
    }
    Ok(out)
}

/// Appends `batch` recompressed with `target` to `out`.
fn rewrite_batch(
    batch: &[u8],
    header: &BatchHeader,
    target: u8,
    level: Option<i32>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let raw = records::records_section(batch, header)?;
    // Kafka validates the records while it recompresses them: a batch whose count does not match
    // its records is corrupt, and must not be stored under a fresh CRC.
    records::parse_records(&raw, header.records_count)?;
    let section = records::compress(target, &raw, level)?;
    let start = out.len();
    out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
    out.extend_from_slice(&section);
    let written = &mut out[start..];
    let batch_length = i32::try_from(written.len() - LOG_OVERHEAD).map_err(|_| {
        LogError::InvalidRecord("recompressed batch larger than a batch may be".into())
    })?;
    written[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = (header.attributes & !COMPRESSION_MASK) | i16::from(target);
    written[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&written[ATTRIBUTES_OFFSET..]);
    written[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::validate_batches;
    use bytes::Bytes;
    use indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn batch(compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..20)
            .map(|i| Record {
                transactional: false,
                delete_horizon: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: i as i32,
                // Out of order on purpose: a negative timestamp delta must survive.
                timestamp: 1_000 + (i * 37) % 11,
                key: Some(Bytes::from(format!("k{i}"))),
                value: (i % 5 != 0).then(|| Bytes::from(format!("value {i} {}", "x".repeat(50)))),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    fn decode(bytes: Vec<u8>) -> Vec<Record> {
        let mut b = Bytes::from(bytes);
        RecordBatchDecoder::decode_all(&mut b)
            .unwrap()
            .into_iter()
            .flat_map(|set| set.records)
            .collect()
    }

    #[test]
    fn every_codec_pair_keeps_the_records() {
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        for (from_id, from) in codecs.iter().enumerate() {
            let original = batch(*from);
            let want = decode(original.clone());
            for to in 0..codecs.len() as u8 {
                let batches = validate_batches(&original, usize::MAX).unwrap();
                let out = if needed(&batches, Some(to)) {
                    recompress(&original, &batches, to, None).unwrap()
                } else {
                    assert_eq!(from_id as u8, to);
                    original.clone()
                };
                let again = validate_batches(&out, usize::MAX).unwrap();
                assert_eq!(again[0].header.compression(), to);
                assert_eq!(again[0].header.producer_id, 7);
                assert_eq!(again[0].header.base_sequence, 0);
                assert_eq!(decode(out), want, "{from:?} -> codec {to}");
            }
        }
    }

    #[test]
    fn producer_keeps_the_batch() {
        let original = batch(Compression::Lz4);
        let batches = validate_batches(&original, usize::MAX).unwrap();
        assert!(!needed(&batches, None));
        assert!(!needed(&batches, Some(3)));
        assert!(needed(&batches, Some(0)));
    }
}
