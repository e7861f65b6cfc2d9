//! ListOffsets support: offset for a timestamp at record granularity, and the max timestamp.

mod common;

use common::*;
use kafka_protocol::records::Compression;
use strom_log::LogConfig;

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    log.append(&mut batch(10, 100, "a", Compression::Gzip), 0, 0)
        .expect("append"); // 0..9 @100..109
    log.append(&mut batch(10, 200, "b", Compression::None), 0, 0)
        .expect("append"); // 10..19 @200..209
    assert_eq!(log.offset_for_timestamp(0).expect("ts"), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(100).expect("ts"), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(105).expect("ts"), Some((5, 105)));
    assert_eq!(log.offset_for_timestamp(110).expect("ts"), Some((10, 200)));
    assert_eq!(log.offset_for_timestamp(150).expect("ts"), Some((10, 200)));
    assert_eq!(log.offset_for_timestamp(209).expect("ts"), Some((19, 209)));
    assert_eq!(log.offset_for_timestamp(210).expect("ts"), None);
}

#[test]
fn offset_for_timestamp_handles_unordered_timestamps_inside_a_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    let records = vec![
        record(0, 50, None, Some("a")),
        record(1, 30, None, Some("b")),
        record(2, 70, None, Some("c")),
        record(3, 60, None, Some("d")),
    ];
    log.append(&mut encode(&records, Compression::Zstd), 0, 0)
        .expect("append");
    assert_eq!(log.offset_for_timestamp(20).expect("ts"), Some((0, 50)));
    assert_eq!(log.offset_for_timestamp(55).expect("ts"), Some((2, 70)));
    assert_eq!(log.offset_for_timestamp(70).expect("ts"), Some((2, 70)));
    assert_eq!(log.max_timestamp().expect("max"), Some((2, 70)));
}

#[test]
fn offset_for_timestamp_across_many_segments_and_index_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 1_000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    // 100 batches of 5 records; record i has timestamp 1_000 + 2 * i.
    for b in 0..100 {
        let records: Vec<_> = (0..5)
            .map(|i| record(i, 1_000 + 2 * (b * 5 + i), Some("k"), Some("v")))
            .collect();
        log.append(&mut encode(&records, Compression::Lz4), 0, 0)
            .expect("append");
    }
    assert!(segment_files(dir.path(), "log").len() > 10);
    for offset in [0i64, 1, 4, 5, 137, 250, 333, 499] {
        let ts = 1_000 + 2 * offset;
        assert_eq!(
            log.offset_for_timestamp(ts).expect("ts"),
            Some((offset, ts)),
            "exact {ts}"
        );
        // Between two records: the later one.
        assert_eq!(
            log.offset_for_timestamp(ts - 1).expect("ts"),
            Some((offset, ts)),
            "between {}",
            ts - 1
        );
    }
    assert_eq!(
        log.offset_for_timestamp(1_000 + 2 * 499 + 1).expect("ts"),
        None
    );
    assert_eq!(log.max_timestamp().expect("max"), Some((499, 1_998)));
}

#[test]
fn max_timestamp_points_at_the_record_holding_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 400,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    log.append(&mut batch(3, 100, "a", Compression::None), 0, 0)
        .expect("append");
    let records = vec![
        record(0, 10, None, Some("x")),
        record(1, 900, None, Some("max")),
        record(2, 20, None, Some("y")),
    ];
    log.append(&mut encode(&records, Compression::Snappy), 0, 0)
        .expect("append"); // 3..5
    log.append(&mut batch(3, 500, "c", Compression::None), 0, 0)
        .expect("append"); // 6..8
    log.append(&mut batch(3, 600, "d", Compression::None), 0, 0)
        .expect("append"); // 9..11
    assert!(segment_files(dir.path(), "log").len() >= 2);
    assert_eq!(log.max_timestamp().expect("max"), Some((4, 900)));
    // Equal later timestamps do not move it: the first record reaching the max wins.
    log.append(
        &mut encode(&[record(0, 900, None, None)], Compression::None),
        0,
        0,
    )
    .expect("append");
    assert_eq!(log.max_timestamp().expect("max"), Some((4, 900)));
    log.append(
        &mut encode(&[record(0, 901, None, None)], Compression::None),
        0,
        0,
    )
    .expect("append");
    assert_eq!(log.max_timestamp().expect("max"), Some((13, 901)));
}
