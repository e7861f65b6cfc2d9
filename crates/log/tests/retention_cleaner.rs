//! Retention (time, size, DeleteRecords) and the log cleaner, including crash recovery of a
//! clean interrupted before or after its commit point.

mod common;

use common::*;
use kafka_protocol::records::Compression;
use std::collections::BTreeMap;
use strom_log::{LogConfig, LogError, TxnMarker};

const NOW: i64 = 1_700_000_000_000;

fn kv_batch(pairs: &[(&str, Option<&str>)], ts: i64, compression: Compression) -> Vec<u8> {
    let records: Vec<_> = pairs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| record(i as i64, ts + i as i64, Some(k), *v))
        .collect();
    encode(&records, compression)
}

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 64,
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.01,
        ..LogConfig::default()
    }
}

/// (offset, key, value) of every record from `offset` on.
fn read_kv(log: &strom_log::Log, from: i64) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let slice = log.read(offset, 1 << 20, i64::MAX, true).expect("read");
        let sets = decode_all(&slice.records);
        let mut last = None;
        for r in sets.into_iter().flat_map(|s| s.records) {
            last = Some(r.offset);
            if r.offset < offset || r.control {
                continue;
            }
            out.push((
                r.offset,
                String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
                r.value.map(|v| String::from_utf8_lossy(&v).into_owned()),
            ));
        }
        offset = last.expect("a read before the log end returns data") + 1;
    }
    out
}

fn latest_by_key(
    records: &[(i64, String, Option<String>)],
) -> BTreeMap<String, (i64, Option<String>)> {
    let mut m = BTreeMap::new();
    for (o, k, v) in records {
        m.insert(k.clone(), (*o, v.clone()));
    }
    m
}

#[test]
fn time_retention_deletes_closed_segments_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 300,
        retention_ms: 60_000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config.clone());
    for i in 0..10 {
        // Old data first, then recent data.
        let ts = if i < 6 { NOW - 3_600_000 } else { NOW - 1_000 };
        log.append(&mut batch(3, ts, "v", Compression::None), 0, NOW)
            .expect("append");
    }
    let before = segment_files(dir.path(), "log");
    assert!(before.len() >= 4, "{before:?}");
    let stats = log.delete_old_segments(NOW).expect("retention");
    assert!(stats.segments_deleted >= 1, "{stats:?}");
    let after = segment_files(dir.path(), "log");
    assert_eq!(after.len(), before.len() - stats.segments_deleted);
    assert_eq!(segment_files(dir.path(), "index").len(), after.len());
    assert_eq!(segment_files(dir.path(), "timeindex").len(), after.len());
    let start = log.log_start_offset();
    assert_eq!(start, stats.log_start_offset);
    assert_eq!(after[0], format!("{start:020}.log"));
    // Everything left is readable from the new start; below it is out of range.
    assert_eq!(read_all(&log, start).last().map(|(o, _)| *o), Some(29));
    assert!(matches!(
        log.read(0, 1 << 20, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // A retention of "everything" still keeps the active segment.
    log.set_config(LogConfig {
        retention_ms: 0,
        ..config.clone()
    });
    log.delete_old_segments(NOW).expect("retention");
    assert_eq!(segment_files(dir.path(), "log").len(), 1);
    let start = log.log_start_offset();
    assert!(start <= 27 && start > 0, "{start}");
    drop(log);
    let log = open(dir.path(), config);
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.log_end_offset(), 30);
}

#[test]
fn size_retention_keeps_the_newest_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 300,
        retention_bytes: 700,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    for _ in 0..12 {
        log.append(&mut batch(3, NOW, "v", Compression::None), 0, NOW)
            .expect("append");
    }
    assert!(log.size_bytes() > 700);
    log.delete_old_segments(NOW).expect("retention");
    let size = log.size_bytes();
    assert!(size <= 700 + 300, "{size}");
    assert!(size > 700 - 300, "{size}");
    // compact-only logs never lose data to retention.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let log2 = open(
        dir2.path(),
        LogConfig {
            retention_bytes: 1,
            retention_ms: 0,
            ..compact_config()
        },
    );
    for _ in 0..12 {
        log2.append(&mut batch(3, 0, "v", Compression::None), 0, NOW)
            .expect("append");
    }
    assert_eq!(
        log2.delete_old_segments(NOW).expect("ret").segments_deleted,
        0
    );
    assert_eq!(log2.log_start_offset(), 0);
}

#[test]
fn delete_records_moves_the_start_and_survives_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 300,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config.clone());
    for _ in 0..10 {
        log.append(&mut batch(3, NOW, "v", Compression::Lz4), 0, NOW)
            .expect("append");
    }
    let segments = segment_files(dir.path(), "log").len();
    assert!(matches!(
        log.delete_records_before(31, 30),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.delete_records_before(17, 30).expect("delete"), 17);
    assert_eq!(log.log_start_offset(), 17);
    // Going backwards is a no-op that reports the current start.
    assert_eq!(log.delete_records_before(5, 30).expect("delete"), 17);
    assert!(segment_files(dir.path(), "log").len() < segments);
    assert!(matches!(
        log.read(16, 1 << 20, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let got = read_all(&log, 17);
    assert!(got.iter().any(|(o, _)| *o == 17));
    // Clean restart, then a crash (no close) after moving it further.
    log.close().expect("close");
    drop(log);
    let log = open(dir.path(), config.clone());
    assert_eq!(log.log_start_offset(), 17);
    assert_eq!(log.delete_records_before(30, 30).expect("delete all"), 30);
    drop(log);
    let log = open(dir.path(), config);
    assert_eq!(log.log_start_offset(), 30);
    assert_eq!(log.log_end_offset(), 30);
    log.append(&mut batch(1, NOW, "x", Compression::None), 0, NOW)
        .expect("append after");
    assert_eq!(read_all(&log, 30), vec![(30, "x-0".to_string())]);
}

/// Writes rounds of updates to 8 keys (with some tombstones) and returns everything written.
fn write_updates(log: &strom_log::Log, rounds: usize, compression: Compression) {
    for round in 0..rounds {
        let values: Vec<String> = (0..8).map(|k| format!("r{round}-k{k}")).collect();
        let pairs: Vec<(String, Option<&str>)> = (0..8)
            .map(|k| {
                let tombstone = round == rounds - 2 && k == 3;
                (
                    format!("key{k}"),
                    (!tombstone).then_some(values[k].as_str()),
                )
            })
            .collect();
        // Two batches per round, to interleave keys across batches and segments.
        for half in pairs.chunks(4) {
            let refs: Vec<(&str, Option<&str>)> =
                half.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            log.append(&mut kv_batch(&refs, NOW, compression), 0, NOW)
                .expect("append");
        }
    }
}

#[test]
fn cleaner_keeps_the_latest_value_per_key_in_every_codec() {
    for compression in ALL_CODECS {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(dir.path(), compact_config());
        write_updates(&log, 12, compression);
        let before = read_kv(&log, 0);
        let size_before = log.size_bytes();
        let stats = log
            .clean(NOW, 1 << 20, false)
            .expect("clean")
            .expect("dirty enough");
        assert!(stats.records_kept < stats.records_read, "{stats:?}");
        let after = read_kv(&log, 0);
        assert!(log.size_bytes() < size_before);
        // Same latest value (at the same offset) for every key; offsets only increase.
        assert_eq!(
            latest_by_key(&after),
            latest_by_key(&before),
            "{compression:?}"
        );
        assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
        // In the cleaned range, no key appears twice.
        let end = stats.end_offset;
        let mut seen = std::collections::HashSet::new();
        for (o, k, _) in after.iter().filter(|(o, _, _)| *o < end) {
            assert!(seen.insert(k.clone()), "{k} twice below {end} (at {o})");
        }
        // Nothing to do until more is written.
        assert!(log.clean(NOW, 1 << 20, false).expect("clean").is_none());
        // The result survives a clean restart and a crash.
        log.close().expect("close");
        drop(log);
        let log = open(dir.path(), compact_config());
        assert_eq!(read_kv(&log, 0), after);
        write_updates(&log, 3, compression);
        let before = read_kv(&log, 0);
        log.clean(NOW, 1 << 20, true).expect("clean again");
        drop(log);
        let log = open(dir.path(), compact_config());
        assert_eq!(latest_by_key(&read_kv(&log, 0)), latest_by_key(&before));
    }
}

#[test]
fn tombstones_go_after_delete_retention_and_lag_is_respected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        delete_retention_ms: 60_000,
        ..compact_config()
    };
    let log = open(dir.path(), config.clone());
    let old = NOW - 3_600_000;
    log.append(
        &mut kv_batch(
            &[("a", Some("1")), ("b", Some("1"))],
            old,
            Compression::None,
        ),
        0,
        NOW,
    )
    .expect("append");
    log.append(
        &mut kv_batch(&[("a", None), ("c", Some("1"))], old, Compression::None),
        0,
        NOW,
    )
    .expect("old tombstone");
    log.append(
        &mut kv_batch(&[("b", None)], NOW - 1_000, Compression::None),
        0,
        NOW,
    )
    .expect("recent tombstone");
    for i in 0..20 {
        log.append(
            &mut kv_batch(&[("filler", Some(&format!("{i}")))], NOW, Compression::None),
            0,
            NOW,
        )
        .expect("filler");
    }
    // A lag longer than the data's age: nothing is cleanable.
    log.set_config(LogConfig {
        min_compaction_lag_ms: 7_200_000,
        ..config.clone()
    });
    assert!(log.clean(NOW, 1 << 20, true).expect("clean").is_none());
    log.set_config(config);
    log.clean(NOW, 1 << 20, true)
        .expect("clean")
        .expect("cleaned");
    let after = latest_by_key(&read_kv(&log, 0));
    assert!(
        !after.contains_key("a"),
        "the old tombstone and a's value are gone: {after:?}"
    );
    assert_eq!(
        after.get("b").map(|(_, v)| v.clone()),
        Some(None),
        "recent tombstone stays"
    );
    assert_eq!(
        after.get("c").map(|(_, v)| v.clone()),
        Some(Some("1".into()))
    );
}

#[test]
fn aborted_transactions_are_dropped_and_markers_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), compact_config());
    let txn = |pid: i64, key: &str, value: &str| {
        let mut r = record(0, NOW, Some(key), Some(value));
        r.producer_id = pid;
        r.producer_epoch = 0;
        r.sequence = 0;
        r.transactional = true;
        encode(&[r], Compression::None)
    };
    let marker = |pid: i64, commit: bool| TxnMarker {
        producer_id: pid,
        producer_epoch: 0,
        commit,
        coordinator_epoch: 0,
    };
    log.append(
        &mut kv_batch(&[("k", Some("plain"))], NOW, Compression::None),
        0,
        NOW,
    )
    .expect("plain");
    log.append(&mut txn(5, "k", "aborted"), 0, NOW).expect("t5");
    log.append(&mut txn(6, "j", "committed"), 0, NOW)
        .expect("t6");
    log.append_marker(&marker(5, false), 0, NOW).expect("abort");
    log.append_marker(&marker(6, true), 0, NOW).expect("commit");
    for i in 0..20 {
        log.append(
            &mut kv_batch(&[("filler", Some(&format!("{i}")))], NOW, Compression::None),
            0,
            NOW,
        )
        .expect("filler");
    }
    log.clean(NOW, 1 << 20, true)
        .expect("clean")
        .expect("cleaned");
    let after = latest_by_key(&read_kv(&log, 0));
    // The aborted write must not hide the earlier committed value of "k".
    assert_eq!(
        after.get("k").map(|(_, v)| v.clone()),
        Some(Some("plain".into()))
    );
    assert_eq!(
        after.get("j").map(|(_, v)| v.clone()),
        Some(Some("committed".into()))
    );
    let all = log.read(0, 1 << 20, i64::MAX, true).expect("read");
    let controls = decode_all(&all.records)
        .into_iter()
        .flat_map(|s| s.records)
        .filter(|r| r.control)
        .count();
    assert_eq!(controls, 2, "both markers are kept");
    assert!(
        !read_kv(&log, 0)
            .iter()
            .any(|(_, _, v)| v.as_deref() == Some("aborted")),
        "aborted records are gone"
    );
}

#[test]
fn compacted_logs_refuse_records_without_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), compact_config());
    let mut keyless = encode(&[record(0, NOW, None, Some("v"))], Compression::Zstd);
    assert!(matches!(
        log.append(&mut keyless, 0, NOW),
        Err(LogError::InvalidRecord(_))
    ));
    log.append(
        &mut kv_batch(&[("k", None)], NOW, Compression::None),
        0,
        NOW,
    )
    .expect("a keyed tombstone is fine");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

#[test]
fn a_crash_mid_clean_loses_nothing() {
    // Build a dirty log and keep a copy of it before cleaning.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), compact_config());
    write_updates(&log, 10, Compression::Snappy);
    let expected = latest_by_key(&read_kv(&log, 0));
    log.close().expect("close");
    drop(log);
    let pristine = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), pristine.path());

    // Clean it for real: the first group's cleaned output is what a swap file would hold.
    let log = open(dir.path(), compact_config());
    log.clean(NOW, 1 << 20, true)
        .expect("clean")
        .expect("cleaned");
    let cleaned_segment = std::fs::read(dir.path().join("00000000000000000000.log")).expect("read");
    drop(log);

    // 1. Crash before the commit point: a .cleaned file is left and thrown away at open.
    let crashed = tempfile::tempdir().expect("tempdir");
    copy_dir(pristine.path(), crashed.path());
    std::fs::write(
        crashed.path().join("00000000000000000000.log.cleaned"),
        &cleaned_segment,
    )
    .expect("write");
    std::fs::write(
        crashed.path().join("00000000000000000000.index.cleaned"),
        b"junk",
    )
    .expect("write");
    let log = open(crashed.path(), compact_config());
    assert_eq!(latest_by_key(&read_kv(&log, 0)), expected);
    assert!(
        !crashed
            .path()
            .join("00000000000000000000.log.cleaned")
            .exists()
    );
    assert!(
        !crashed
            .path()
            .join("00000000000000000000.index.cleaned")
            .exists()
    );
    drop(log);

    // 2. Crash after the commit point, before the old segments were deleted: the swap is
    // finished at open.
    let crashed = tempfile::tempdir().expect("tempdir");
    copy_dir(pristine.path(), crashed.path());
    std::fs::write(
        crashed.path().join("00000000000000000000.log.swap"),
        &cleaned_segment,
    )
    .expect("write");
    let log = open(crashed.path(), compact_config());
    assert_eq!(latest_by_key(&read_kv(&log, 0)), expected);
    assert!(
        !crashed
            .path()
            .join("00000000000000000000.log.swap")
            .exists()
    );
    let records = read_kv(&log, 0);
    assert!(
        records.windows(2).all(|w| w[0].0 < w[1].0),
        "no offset appears twice"
    );
    drop(log);

    // 3. Crash part way through deleting the old segments (the first one already gone).
    let crashed = tempfile::tempdir().expect("tempdir");
    copy_dir(pristine.path(), crashed.path());
    std::fs::remove_file(crashed.path().join("00000000000000000000.log")).expect("rm");
    std::fs::write(
        crashed.path().join("00000000000000000000.log.swap"),
        &cleaned_segment,
    )
    .expect("write");
    let log = open(crashed.path(), compact_config());
    assert_eq!(latest_by_key(&read_kv(&log, 0)), expected);
    log.clean(NOW, 1 << 20, true).expect("clean after recovery");
    assert_eq!(latest_by_key(&read_kv(&log, 0)), expected);
}
