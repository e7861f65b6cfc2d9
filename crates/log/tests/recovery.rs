//! Reopening a log: after a clean close (indexes trusted, no scan) and after a crash (torn
//! tail cut, indexes rebuilt).

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use common::*;
use kafka_protocol::records::Compression;
use strom_log::{Log, LogConfig, LogError};

const MARKER: &str = ".strom_cleanshutdown";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 3_000,
        index_interval_bytes: 300,
        ..LogConfig::default()
    }
}

/// 60 batches of 4 records over several segments; record i has timestamp 10 * i.
fn fill(log: &Log) {
    for b in 0..60i64 {
        let records: Vec<_> = (0..4)
            .map(|i| {
                record(
                    i,
                    10 * (b * 4 + i),
                    Some("key"),
                    Some(&format!("v{}", b * 4 + i)),
                )
            })
            .collect();
        log.append(&mut encode(&records, Compression::None), 3, 0)
            .expect("append");
    }
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let logs = segment_files(dir, "log");
    dir.join(logs.last().expect("a segment"))
}

fn append_raw(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open segment");
    file.write_all(bytes).expect("write");
}

fn assert_contents(log: &Log, count: i64) {
    let all = read_all(log, 0);
    assert_eq!(all.len() as i64, count);
    for (i, (offset, value)) in all.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(value, &format!("v{i}"));
    }
}

#[test]
fn clean_reopen_keeps_everything_without_scanning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), config());
    fill(&log);
    let (leo, size) = (log.log_end_offset(), log.size_bytes());
    let max = log.max_timestamp().expect("max");
    log.close().expect("close");
    drop(log);
    assert!(dir.path().join(MARKER).exists());
    let segments = segment_files(dir.path(), "log");
    assert!(segments.len() >= 3, "{segments:?}");

    // Corrupt a payload byte early in a non-final segment and early in the active one (well
    // before its last index entry): a scan would cut there; a trusted open does not look.
    for name in [&segments[1], segments.last().expect("last")] {
        let path = dir.path().join(name);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[70] ^= 0xff;
        std::fs::write(&path, bytes).expect("write");
    }
    // And the active segment's first batch length: rebuilding the producer state from the
    // snapshot written at close must start at the snapshot, not scan the segment from its start.
    let active = dir.path().join(segments.last().expect("last"));
    let mut bytes = std::fs::read(&active).expect("read");
    bytes[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    std::fs::write(&active, bytes).expect("write");

    let log = open(dir.path(), config());
    assert!(
        !dir.path().join(MARKER).exists(),
        "marker is consumed at open"
    );
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.max_timestamp().expect("max"), max);
    assert_eq!(
        log.offset_for_timestamp(1_001).expect("ts"),
        Some((101, 1_010))
    );
    log.append(&mut batch(2, 5_000, "after", Compression::None), 0, 0)
        .expect("append");
    assert_eq!(log.log_end_offset(), leo + 2);

    // Counter-check: without the marker the active segment is scanned and cut at the damage.
    drop(log);
    let active_base: i64 = segments
        .last()
        .expect("last")
        .trim_end_matches(".log")
        .parse()
        .expect("base");
    let log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), active_base);
}

#[test]
fn clean_reopen_round_trips_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), config());
    fill(&log);
    log.close().expect("close");
    drop(log);
    let log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 240);
    assert_contents(&log, 240);
    assert_eq!(log.max_timestamp().expect("max"), Some((239, 2_390)));
    assert_eq!(log.offset_for_timestamp(0).expect("ts"), Some((0, 0)));
    // Appends after a clean reopen continue the index and the log.
    fill_more(&log, 240);
    log.close().expect("close");
    drop(log);
    let log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 280);
}

fn fill_more(log: &Log, from: i64) {
    for b in 0..10i64 {
        let records: Vec<_> = (0..4)
            .map(|i| {
                let n = from + b * 4 + i;
                record(i, 10 * n, Some("key"), Some(&format!("v{n}")))
            })
            .collect();
        log.append(&mut encode(&records, Compression::None), 3, 0)
            .expect("append");
    }
}

#[test]
fn crash_with_garbage_tail_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), config());
    fill(&log);
    let size = log.size_bytes();
    drop(log); // no close: as after kill -9
    append_raw(
        &last_segment(dir.path()),
        &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );

    let log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 240);
    assert_eq!(log.size_bytes(), size);
    assert_contents(&log, 240);
    fill_more(&log, 240);
    assert_contents(&log, 280);
}

#[test]
fn crash_with_torn_half_batch_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), config());
    fill(&log);
    let size = log.size_bytes();
    let last = log
        .read(236, 1 << 20, i64::MAX, true)
        .expect("read")
        .records;
    drop(log);
    // Half of a valid-looking batch (offsets 240..243) as a crash mid-write would leave.
    let mut torn = last.to_vec();
    torn[..8].copy_from_slice(&240i64.to_be_bytes());
    append_raw(&last_segment(dir.path()), &torn[..torn.len() / 2]);
    let log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 240);
    assert_eq!(log.size_bytes(), size);
    let segment_len = std::fs::metadata(last_segment(dir.path()))
        .expect("stat")
        .len();
    assert!(segment_len > 0);
    fill_more(&log, 240);
    assert_contents(&log, 280);
    assert_eq!(
        log.offset_for_timestamp(2_400).expect("ts"),
        Some((240, 2_400))
    );
}

#[test]
fn crash_with_corruption_inside_the_last_segment_cuts_from_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 300,
            ..LogConfig::default()
        },
    );
    fill(&log);
    let third = log.read(8, 1, i64::MAX, true).expect("read");
    assert_eq!(third.first_offset, 8);
    drop(log);
    let path = last_segment(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    // Flip a byte in the payload of the third batch (offsets 8..11).
    let third_start = bytes
        .windows(8)
        .position(|w| w == 8i64.to_be_bytes())
        .expect("batch 8");
    bytes[third_start + 70] ^= 0x01;
    std::fs::write(&path, bytes).expect("write");

    let log = open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 300,
            ..LogConfig::default()
        },
    );
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(log.size_bytes(), third_start as u64);
    assert_contents(&log, 8);
    assert_eq!(log.max_timestamp().expect("max"), Some((7, 70)));
    // The rebuilt index must not point past the cut.
    let index = std::fs::read(path.with_extension("index")).expect("index");
    for entry in index.chunks(8) {
        let pos = u32::from_be_bytes(entry[4..8].try_into().expect("4 bytes"));
        assert!((pos as usize) < third_start);
    }
    fill_more(&log, 8);
    assert_contents(&log, 48);
}

#[test]
fn crash_after_clean_close_and_more_appends_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), config());
    fill(&log);
    log.close().expect("close");
    // Appending after close invalidates the marker: the data moved on.
    fill_more(&log, 240);
    assert!(!dir.path().join(MARKER).exists());
    drop(log);
    append_raw(&last_segment(dir.path()), &[7; 30]);
    let log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 280);
    assert_contents(&log, 280);
}

#[test]
fn missing_indexes_are_rebuilt_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), config());
    fill(&log);
    log.close().expect("close");
    drop(log);
    let index_names = segment_files(dir.path(), "index");
    let time_names = segment_files(dir.path(), "timeindex");
    assert_eq!(index_names.len(), segment_files(dir.path(), "log").len());
    let originals: Vec<(String, Vec<u8>)> = index_names
        .iter()
        .chain(time_names.iter())
        .map(|n| {
            (
                n.clone(),
                std::fs::read(dir.path().join(n)).expect("read index"),
            )
        })
        .collect();
    assert!(originals.iter().any(|(_, bytes)| !bytes.is_empty()));
    for (name, _) in &originals {
        std::fs::remove_file(dir.path().join(name)).expect("remove index");
    }

    let log = open(dir.path(), config());
    for (name, bytes) in &originals {
        let rebuilt = std::fs::read(dir.path().join(name)).expect("rebuilt index");
        assert_eq!(&rebuilt, bytes, "{name}");
    }
    assert_eq!(log.log_end_offset(), 240);
    assert_contents(&log, 240);
    assert_eq!(
        log.offset_for_timestamp(1_234).expect("ts"),
        Some((124, 1_240))
    );
    assert_eq!(log.max_timestamp().expect("max"), Some((239, 2_390)));
}

#[test]
fn torn_index_file_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), config());
    fill(&log);
    log.close().expect("close");
    drop(log);
    let first_index = dir.path().join("00000000000000000000.index");
    let good = std::fs::read(&first_index).expect("index");
    assert!(good.len() >= 8);
    // A partial entry and an entry pointing past the end of the segment.
    let mut bad = good.clone();
    bad.extend_from_slice(&[0, 0, 0, 99, 0xff, 0xff, 0xff]);
    std::fs::write(&first_index, &bad).expect("write");
    let log = open(dir.path(), config());
    assert_eq!(std::fs::read(&first_index).expect("index"), good);
    assert_contents(&log, 240);
    log.close().expect("close");
    drop(log);

    let mut bad = good.clone();
    bad.extend_from_slice(&[0, 0, 0, 99, 0x7f, 0xff, 0xff, 0xff]);
    std::fs::write(&first_index, &bad).expect("write");
    let log = open(dir.path(), config());
    assert_eq!(std::fs::read(&first_index).expect("index"), good);
    assert_contents(&log, 240);
}

#[test]
fn orphan_index_files_are_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), config());
    log.append(&mut batch(1, 0, "v", Compression::None), 0, 0)
        .expect("append");
    log.close().expect("close");
    drop(log);
    let orphan = dir.path().join("00000000000000000500.index");
    std::fs::write(&orphan, [0u8; 8]).expect("write");
    let log = open(dir.path(), config());
    assert!(!orphan.exists());
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn partition_metadata_keeps_the_first_topic_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = [0xab; 16];
    let log = Log::open(dir.path(), LogConfig::default(), id).expect("open");
    assert_eq!(log.topic_id(), id);
    assert_eq!(log.dir(), dir.path());
    let text = std::fs::read_to_string(dir.path().join("partition.metadata")).expect("metadata");
    assert_eq!(text, "version: 0\ntopic_id: q6urq6urq6urq6urq6urqw\n");
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default(), [1; 16]).expect("reopen");
    assert_eq!(log.topic_id(), id);
}

#[test]
fn unreadable_partition_metadata_is_a_storage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("partition.metadata"),
        "version: 0\ntopic_id: nope\n",
    )
    .expect("write");
    let err = Log::open(dir.path(), LogConfig::default(), [1; 16])
        .err()
        .expect("error");
    assert!(matches!(err, LogError::CorruptPartition { .. }), "{err}");
    assert_eq!(err.kafka_error_code(), 56);
}

#[test]
fn delete_removes_the_partition_directory() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("topic-0");
    let log = open(&dir, config());
    fill(&log);
    log.flush().expect("flush");
    log.delete().expect("delete");
    assert!(!dir.exists());
}

#[test]
fn batch_with_an_impossible_offset_is_treated_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), config());
    fill(&log);
    let tail = log
        .read(236, 1 << 20, i64::MAX, true)
        .expect("read")
        .records;
    drop(log);
    // A whole, CRC-valid batch whose base offset (not covered by the CRC) is absurd.
    let mut bogus = tail.to_vec();
    bogus[..8].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
    append_raw(&last_segment(dir.path()), &bogus);
    let log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 240);
    assert_contents(&log, 240);
}
