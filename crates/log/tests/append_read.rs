//! Appending and reading: round trips, offsets, segment rolls, fetch bounds.

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::records::Compression;
use strom_log::{BatchHeader, LogConfig, LogError, TimestampType};

fn small_segments(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

#[test]
fn round_trip_every_codec_with_keys_headers_and_null_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    let mut expected_offset = 0;
    for codec in ALL_CODECS {
        let records = vec![
            with_header(
                record(0, 1_000, Some("key-a"), Some("value-a")),
                "h1",
                Some("x"),
            ),
            with_header(record(1, 1_001, None, None), "h-null", None),
            record(2, 1_002, Some("key-c"), Some("")),
        ];
        let mut bytes = encode(&records, codec);
        let info = log.append(&mut bytes, 5, 42).expect("append");
        assert_eq!(info.base_offset, expected_offset);
        assert_eq!(info.last_offset, expected_offset + 2);
        assert_eq!(info.record_count, 3);
        assert_eq!(info.batch_count, 1);
        assert_eq!(info.log_append_time, -1);
        assert_eq!(info.log_start_offset, 0);

        let slice = log
            .read(expected_offset, 1 << 20, i64::MAX, false)
            .expect("read");
        assert_eq!(slice.first_offset, expected_offset);
        // Stored exactly as appended, with the offset and epoch patched in.
        assert_eq!(slice.records, Bytes::from(bytes.clone()));
        let sets = decode_all(&slice.records);
        assert_eq!(sets.len(), 1, "{codec:?}");
        assert_eq!(sets[0].compression, codec);
        let got = &sets[0].records;
        assert_eq!(got.len(), 3);
        for (i, (g, want)) in got.iter().zip(&records).enumerate() {
            assert_eq!(g.offset, expected_offset + i as i64);
            assert_eq!(g.timestamp, want.timestamp);
            assert_eq!(g.key, want.key);
            assert_eq!(g.value, want.value);
            assert_eq!(g.headers, want.headers);
            assert_eq!(g.partition_leader_epoch, 5);
        }
        expected_offset += 3;
    }
    assert_eq!(log.log_end_offset(), 15);
}

#[test]
fn several_batches_in_one_append_get_contiguous_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    let mut first = batch(2, 10, "a", Compression::None);
    log.append(&mut first, 0, 0).expect("append");
    let mut bytes = batch(3, 20, "b", Compression::None);
    bytes.extend(batch(1, 30, "c", Compression::Lz4));
    bytes.extend(batch(4, 40, "d", Compression::Zstd));
    let info = log.append(&mut bytes, 0, 0).expect("append");
    assert_eq!((info.base_offset, info.last_offset), (2, 9));
    assert_eq!((info.record_count, info.batch_count), (8, 3));
    let all = read_all(&log, 0);
    let offsets: Vec<i64> = all.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
    assert_eq!(all[2].1, "b-0");
    assert_eq!(all[5].1, "c-0");
    assert_eq!(all[9].1, "d-3");
}

#[test]
fn offsets_stay_contiguous_across_size_rolled_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), small_segments(1_000));
    let mut sizes = 0u64;
    for i in 0..60 {
        let mut bytes = batch(3, i * 10, &format!("b{i}"), Compression::None);
        sizes += bytes.len() as u64;
        let info = log.append(&mut bytes, 1, 0).expect("append");
        assert_eq!(info.base_offset, i * 3);
    }
    assert_eq!(log.log_end_offset(), 180);
    assert_eq!(log.size_bytes(), sizes);
    let logs = segment_files(dir.path(), "log");
    assert!(logs.len() > 5, "expected several segments, got {logs:?}");
    assert_eq!(logs[0], "00000000000000000000.log");
    let mut on_disk = 0;
    for name in &logs {
        let len = std::fs::metadata(dir.path().join(name))
            .expect("stat")
            .len();
        assert!(len <= 1_000, "{name} is {len} bytes");
        on_disk += len;
        // Each segment starts at a batch boundary: its name is a multiple of 3.
        let base: i64 = name.trim_end_matches(".log").parse().expect("name");
        assert_eq!(base % 3, 0);
        assert!(dir.path().join(name.replace(".log", ".index")).exists());
        assert!(dir.path().join(name.replace(".log", ".timeindex")).exists());
    }
    assert_eq!(on_disk, sizes);
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 180);
    for (i, (offset, value)) in all.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(value, &format!("b{}-{}", i / 3, i % 3));
    }
    // A read never spans segments, but every offset is reachable.
    for offset in 0..180 {
        let slice = log.read(offset, 1 << 20, i64::MAX, true).expect("read");
        let got = offsets_and_values(&slice.records);
        assert_eq!(got[0].0, offset - offset % 3);
    }
}

#[test]
fn segment_rolls_when_timestamps_span_segment_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    log.append(&mut batch(2, 10_000, "a", Compression::None), 0, 0)
        .expect("append");
    log.append(&mut batch(2, 10_900, "b", Compression::None), 0, 0)
        .expect("append");
    // Exactly segment.ms after the first batch's max timestamp (10_001) is not yet past it.
    log.append(&mut batch(2, 11_000, "b", Compression::None), 0, 0)
        .expect("append");
    assert_eq!(segment_files(dir.path(), "log").len(), 1);
    // Max timestamp 11_101 is more than segment.ms after the first batch's 10_001.
    log.append(&mut batch(2, 11_100, "c", Compression::None), 0, 0)
        .expect("append");
    assert_eq!(
        segment_files(dir.path(), "log"),
        vec!["00000000000000000000.log", "00000000000000000006.log"]
    );
    assert_eq!(read_all(&log, 0).len(), 8);
}

#[test]
fn segment_rolls_by_wall_clock_when_batches_have_no_timestamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_ms: 60_000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    log.append(&mut batch(1, -1, "a", Compression::None), 0, now)
        .expect("append");
    // batch(1, -1, ..) has timestamp -1: no usable rolling timestamp.
    log.append(&mut batch(1, -1, "b", Compression::None), 0, now + 1_000)
        .expect("append");
    assert_eq!(segment_files(dir.path(), "log").len(), 1);
    log.append(&mut batch(1, -1, "c", Compression::None), 0, now + 120_000)
        .expect("append");
    assert_eq!(segment_files(dir.path(), "log").len(), 2);
}

#[test]
fn set_config_applies_to_later_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    log.append(&mut batch(5, 0, "a", Compression::None), 0, 0)
        .expect("append");
    let mut config = log.config();
    config.segment_bytes = 200;
    log.set_config(config);
    assert_eq!(log.config().segment_bytes, 200);
    log.append(&mut batch(5, 0, "b", Compression::None), 0, 0)
        .expect("append");
    assert_eq!(segment_files(dir.path(), "log").len(), 2);
    // An append larger than a whole segment can never fit (Kafka's RecordBatchTooLarge).
    let err = log
        .append(&mut batch(40, 0, "c", Compression::None), 0, 0)
        .expect_err("too big");
    assert!(matches!(err, LogError::RecordListTooLarge { .. }), "{err}");
    assert_eq!(err.kafka_error_code(), 18);
}

fn five_batches() -> (tempfile::TempDir, strom_log::Log, Vec<usize>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    let mut lens = Vec::new();
    for i in 0..5 {
        let mut bytes = batch(10, i * 100, &format!("b{i}"), Compression::None);
        lens.push(bytes.len());
        log.append(&mut bytes, 0, 0).expect("append");
    }
    (dir, log, lens)
}

#[test]
fn read_respects_max_bytes_and_min_one_batch() {
    let (_dir, log, lens) = five_batches();
    let two_and_a_half = lens[0] + lens[1] + lens[2] / 2;
    let slice = log.read(0, two_and_a_half, i64::MAX, false).expect("read");
    assert_eq!(slice.records.len(), lens[0] + lens[1]);
    assert_eq!(decode_all(&slice.records).len(), 2);

    // Exactly fitting batches are all returned.
    let slice = log
        .read(0, lens[0] + lens[1], i64::MAX, false)
        .expect("read");
    assert_eq!(decode_all(&slice.records).len(), 2);

    // First batch larger than max_bytes: only with min_one_batch (KIP-74).
    let slice = log.read(10, 10, i64::MAX, true).expect("read");
    assert_eq!(slice.records.len(), lens[1]);
    assert_eq!(slice.first_offset, 10);
    let slice = log.read(10, 10, i64::MAX, false).expect("read");
    assert!(slice.records.is_empty());
    assert_eq!(slice.first_offset, -1);

    let slice = log.read(0, 1 << 20, i64::MAX, false).expect("read");
    assert_eq!(slice.records.len(), lens.iter().sum::<usize>());
}

#[test]
fn read_from_the_middle_of_a_batch_returns_the_whole_batch() {
    let (_dir, log, lens) = five_batches();
    for offset in [5, 9, 15, 41, 49] {
        let slice = log.read(offset, lens[0], i64::MAX, false).expect("read");
        let header = BatchHeader::parse(&slice.records).expect("header");
        assert_eq!(header.base_offset, offset - offset % 10);
        assert_eq!(slice.first_offset, header.base_offset);
        let got = offsets_and_values(&slice.records);
        assert_eq!(got.len(), 10);
        assert!(got.iter().any(|(o, _)| *o == offset));
    }
}

#[test]
fn read_stops_below_max_offset() {
    let (_dir, log, _) = five_batches();
    let got = offsets_and_values(&log.read(0, 1 << 20, 20, true).expect("read").records);
    assert_eq!(got.last().map(|(o, _)| *o), Some(19));
    // The batch holding offset 25 ends at 29 >= max_offset 25: not visible yet.
    let got = offsets_and_values(&log.read(0, 1 << 20, 25, true).expect("read").records);
    assert_eq!(got.len(), 20);
    let slice = log.read(20, 1 << 20, 25, true).expect("read");
    assert!(slice.records.is_empty());
    assert_eq!(slice.first_offset, -1);
    let slice = log.read(0, 1 << 20, 0, true).expect("read");
    assert!(slice.records.is_empty());
    let got = offsets_and_values(&log.read(0, 1 << 20, 50, true).expect("read").records);
    assert_eq!(got.len(), 50);
}

#[test]
fn offsets_outside_the_log_are_out_of_range() {
    let (_dir, log, _) = five_batches();
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), 50);
    let at_end = log
        .read(50, 1 << 20, i64::MAX, true)
        .expect("read at log end");
    assert!(at_end.records.is_empty());
    assert_eq!(at_end.first_offset, -1);
    for offset in [-1, 51, i64::MAX] {
        let err = log
            .read(offset, 1 << 20, i64::MAX, true)
            .expect_err("out of range");
        assert!(
            matches!(
                err,
                LogError::OffsetOutOfRange {
                    start: 0,
                    end: 50,
                    ..
                }
            ),
            "{offset}: {err}"
        );
        assert_eq!(err.kafka_error_code(), 1);
    }
}

#[test]
fn empty_log_reads_empty_and_has_no_timestamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
    assert!(
        log.read(0, 100, i64::MAX, true)
            .expect("read")
            .records
            .is_empty()
    );
    assert_eq!(log.offset_for_timestamp(0).expect("ts"), None);
    assert_eq!(log.max_timestamp().expect("max"), None);
    assert!(segment_files(dir.path(), "log") == vec!["00000000000000000000.log"]);
}

#[test]
fn log_append_time_rewrites_max_timestamp_with_a_valid_crc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    for codec in ALL_CODECS {
        let mut bytes = batch(3, 1_000, "v", codec);
        let info = log.append(&mut bytes, 7, 99_999).expect("append");
        assert_eq!(info.log_append_time, 99_999);
        let slice = log
            .read(info.base_offset, 1 << 20, i64::MAX, true)
            .expect("read");
        let header = BatchHeader::parse(&slice.records).expect("header");
        assert!(header.timestamp_type_is_log_append());
        assert_eq!(header.max_timestamp, 99_999);
        assert_eq!(header.partition_leader_epoch, 7);
        assert_eq!(header.compression(), codec as u8);
        assert_eq!(
            header.crc,
            crc32c::crc32c(&slice.records[21..header.total_len()])
        );
        // The decoder checks the CRC too.
        let sets = decode_all(&slice.records);
        assert_eq!(sets[0].records.len(), 3);
        assert_eq!(
            sets[0].records[0].timestamp_type,
            kafka_protocol::records::TimestampType::LogAppend
        );
    }
    // Every record of a LogAppendTime batch carries the append time.
    assert_eq!(
        log.offset_for_timestamp(99_999).expect("ts"),
        Some((0, 99_999))
    );
    assert_eq!(log.offset_for_timestamp(100_000).expect("ts"), None);
}

#[test]
fn create_time_clears_a_log_append_time_bit_set_by_a_producer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    let mut bytes = batch(2, 500, "v", Compression::None);
    // Set bit 3 of the attributes and fix up the CRC, as a confused producer might.
    bytes[22] |= 0x08;
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    log.append(&mut bytes, 0, 12_345).expect("append");
    let slice = log.read(0, 1 << 20, i64::MAX, true).expect("read");
    let header = BatchHeader::parse(&slice.records).expect("header");
    assert!(!header.timestamp_type_is_log_append());
    assert_eq!(header.max_timestamp, 501);
    assert_eq!(decode_all(&slice.records)[0].records[1].timestamp, 501);
}

#[test]
fn index_files_get_sparse_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        index_interval_bytes: 1_000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    let mut total = 0;
    for i in 0..40 {
        let mut bytes = batch(4, i * 10, "x", Compression::None);
        total += bytes.len();
        log.append(&mut bytes, 0, 0).expect("append");
    }
    let index = std::fs::read(dir.path().join("00000000000000000000.index")).expect("index");
    assert_eq!(index.len() % 8, 0);
    let entries = index.len() / 8;
    // About one entry per interval, never one per batch.
    assert!(
        entries >= total / 1_500 && entries <= total / 1_000,
        "{entries} entries for {total} bytes"
    );
    let mut last = (0u32, 0u32);
    for entry in index.chunks(8) {
        let rel = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
        let pos = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]);
        assert!(rel > last.0 && pos > last.1);
        // Kafka's layout: the batch's last offset maps to its start position.
        let slice = log.read(i64::from(rel), 1, i64::MAX, true).expect("read");
        let header = BatchHeader::parse(&slice.records).expect("header");
        assert_eq!(header.last_offset(), i64::from(rel));
        last = (rel, pos);
    }
    let time_index = std::fs::read(dir.path().join("00000000000000000000.timeindex")).expect("ti");
    assert_eq!(time_index.len() % 12, 0);
    let timestamps: Vec<i64> = time_index
        .chunks(12)
        .map(|e| i64::from_be_bytes(e[..8].try_into().expect("8 bytes")))
        .collect();
    assert!(timestamps.windows(2).all(|w| w[0] < w[1]), "{timestamps:?}");
}
