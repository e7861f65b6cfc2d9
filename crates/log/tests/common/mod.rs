//! Builders for record batches, made with kafka-protocol's encoder as a producer would.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, RecordSet,
    TimestampType,
};
use strom_log::{Log, LogConfig};

pub const ALL_CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

pub fn record(i: i64, timestamp: i64, key: Option<&str>, value: Option<&str>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i,
        // The encoder splits a batch where offset - sequence changes.
        sequence: i as i32,
        timestamp,
        key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        headers: IndexMap::new(),
    }
}

pub fn with_header(mut record: Record, key: &str, value: Option<&str>) -> Record {
    record.headers.insert(
        StrBytes::from_string(key.to_string()),
        value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
    );
    record
}

/// One batch holding `records` (their `offset` fields are relative: 0, 1, ...).
pub fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode batch");
    buf.to_vec()
}

/// A batch of `count` records with values `"{tag}-{i}"` and timestamps `ts0 + i`.
pub fn batch(count: usize, ts0: i64, tag: &str, compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = (0..count as i64)
        .map(|i| {
            record(
                i,
                ts0 + i,
                Some(&format!("k{i}")),
                Some(&format!("{tag}-{i}")),
            )
        })
        .collect();
    encode(&records, compression)
}

pub fn decode_all(bytes: &Bytes) -> Vec<RecordSet> {
    let mut buf = bytes.clone();
    RecordBatchDecoder::decode_all(&mut buf).expect("decode fetched batches")
}

/// (offset, value) of every record in `bytes`.
pub fn offsets_and_values(bytes: &Bytes) -> Vec<(i64, String)> {
    decode_all(bytes)
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            let value = r
                .value
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default();
            (r.offset, value)
        })
        .collect()
}

pub fn open(dir: &std::path::Path, config: LogConfig) -> Log {
    Log::open(dir, config, [7; 16]).expect("open log")
}

/// Reads everything from `offset` to the log end, batch after batch.
pub fn read_all(log: &Log, mut offset: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    while offset < log.log_end_offset() {
        let slice = log.read(offset, 1 << 20, i64::MAX, true).expect("read");
        let got = offsets_and_values(&slice.records);
        assert!(!got.is_empty(), "empty read at {offset} before the log end");
        offset = got.last().map(|(o, _)| o + 1).unwrap_or(offset);
        out.extend(got);
    }
    out
}

pub fn segment_files(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(&format!(".{suffix}")))
        .collect();
    names.sort();
    names
}
