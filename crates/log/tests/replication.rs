//! The follower's side of the log: appends that keep the leader's offsets and epochs, the
//! leader-epoch cache (`leader-epoch-checkpoint`) and truncation to an offset.

mod common;

use common::*;
use kafka_protocol::records::Compression;
use strom_log::{LogConfig, LogError};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

/// Reads the leader's log from `from` as a follower's fetch would (whole batches).
fn fetch_all(log: &strom_log::Log, from: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let slice = log.read(offset, 1 << 20, i64::MAX, true).expect("read");
        let got = offsets_and_values(&slice.records);
        offset = got.last().map(|(o, _)| o + 1).expect("batches");
        out.extend_from_slice(&slice.records);
    }
    out
}

#[test]
fn leader_appends_record_epochs_and_follower_copies_them_exactly() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = open(leader_dir.path(), config());
    for (epoch, tag) in [(0, "a"), (0, "b"), (3, "c"), (5, "d")] {
        leader
            .append(&mut batch(4, 1_000, tag, Compression::None), epoch, 0)
            .unwrap();
    }
    assert_eq!(leader.epoch_entries(), vec![(0, 0), (3, 8), (5, 12)]);
    let text = std::fs::read_to_string(leader_dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n3\n0 0\n3 8\n5 12\n");

    let follower = open(follower_dir.path(), config());
    let mut bytes = fetch_all(&leader, 0);
    let info = follower.append_as_follower(&mut bytes, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 15));
    assert_eq!(follower.log_end_offset(), 16);
    assert_eq!(read_all(&follower, 0), read_all(&leader, 0));
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    // Byte for byte the same batches (offsets, epochs, CRCs kept).
    assert_eq!(fetch_all(&follower, 0), fetch_all(&leader, 0));

    // What OffsetForLeaderEpoch answers from.
    assert_eq!(follower.end_offset_for_epoch(5), (5, 16));
    assert_eq!(follower.end_offset_for_epoch(3), (3, 12));
    assert_eq!(follower.end_offset_for_epoch(4), (3, 12));
    assert_eq!(follower.end_offset_for_epoch(9), (-1, -1));
}

#[test]
fn follower_refuses_batches_that_go_backwards_or_are_corrupt() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = open(leader_dir.path(), config());
    leader
        .append(&mut batch(3, 1_000, "a", Compression::Lz4), 1, 0)
        .unwrap();
    let follower = open(follower_dir.path(), config());
    let mut bytes = fetch_all(&leader, 0);
    follower.append_as_follower(&mut bytes.clone(), 0).unwrap();
    let again = follower.append_as_follower(&mut bytes, 0).unwrap_err();
    assert!(matches!(again, LogError::InvalidRecord(_)), "{again}");
    let mut corrupt = fetch_all(&leader, 0);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    follower.truncate_to(0).unwrap();
    let err = follower.append_as_follower(&mut corrupt, 0).unwrap_err();
    assert!(matches!(err, LogError::CorruptMessage(_)), "{err}");
    assert_eq!(follower.log_end_offset(), 0);
}

#[test]
fn truncation_cuts_segments_indexes_epochs_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    for i in 0..12 {
        let epoch = if i < 6 { 1 } else { 2 };
        log.append(
            &mut batch(3, 1_000 + i, &format!("b{i}"), Compression::None),
            epoch,
            0,
        )
        .unwrap();
    }
    assert_eq!(log.log_end_offset(), 36);
    assert!(
        segment_files(dir.path(), "log").len() > 2,
        "test needs several segments"
    );
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 18)]);

    // Cut inside the older epoch: everything from offset 15 goes, epoch 2 with it.
    assert!(log.truncate_to(15).unwrap());
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    let kept = read_all(&log, 0);
    assert_eq!(kept.len(), 15);
    assert_eq!(kept.last().unwrap(), &(14, "b4-2".to_string()));
    assert!(matches!(
        log.read(20, 1024, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(!log.truncate_to(40).unwrap(), "nothing past the end to cut");

    // New data continues at the cut, in a new epoch.
    log.append(&mut batch(2, 5_000, "new", Compression::None), 4, 0)
        .unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 0), (4, 15)]);
    let expected = read_all(&log, 0);
    log.close().unwrap();
    drop(log);

    let reopened = open(dir.path(), config());
    assert_eq!(reopened.log_end_offset(), 17);
    assert_eq!(read_all(&reopened, 0), expected);
    assert_eq!(reopened.epoch_entries(), vec![(1, 0), (4, 15)]);
    // The index was rebuilt at the cut: a read in the middle finds its batch.
    let mid = reopened.read(9, 1024, i64::MAX, true).unwrap();
    assert_eq!(offsets_and_values(&mid.records)[0].0, 9);
}

#[test]
fn truncation_after_a_crash_reopens_without_the_cut_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), config());
        for i in 0..5 {
            log.append(
                &mut batch(2, 1_000 + i, &format!("x{i}"), Compression::None),
                1,
                0,
            )
            .unwrap();
        }
        log.truncate_to(4).unwrap();
        log.flush().unwrap();
        // No close: the next open recovers.
    }
    let log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(read_all(&log, 0).len(), 4);
}

#[test]
fn truncate_fully_starts_an_empty_log_at_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    for i in 0..4 {
        log.append(&mut batch(3, 1_000 + i, "y", Compression::None), 2, 0)
            .unwrap();
    }
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert!(log.epoch_entries().is_empty());
    assert_eq!(
        segment_files(dir.path(), "log"),
        vec!["00000000000000000100.log"]
    );
    // A follower then appends the leader's batches from there.
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = open(leader_dir.path(), config());
    leader.truncate_fully_and_start_at(100).unwrap();
    leader
        .append(&mut batch(2, 1_000, "z", Compression::None), 7, 0)
        .unwrap();
    log.append_as_follower(&mut fetch_all(&leader, 100), 0)
        .unwrap();
    assert_eq!(log.log_end_offset(), 102);
    assert_eq!(log.epoch_entries(), vec![(7, 100)]);
    log.close().unwrap();
    drop(log);
    let reopened = open(dir.path(), config());
    assert_eq!(
        (reopened.log_start_offset(), reopened.log_end_offset()),
        (100, 102)
    );
}

#[test]
fn high_watermark_checkpoint_is_bounded_by_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    assert_eq!(log.high_watermark_checkpoint(), None);
    for i in 0..5 {
        log.append(&mut batch(1, 1_000 + i, "h", Compression::None), 0, 0)
            .unwrap();
    }
    log.checkpoint_high_watermark(3).unwrap();
    assert_eq!(log.high_watermark_checkpoint(), Some(3));
    log.truncate_to(2).unwrap();
    assert_eq!(log.high_watermark_checkpoint(), Some(2));
    // A cut inside a batch takes the whole batch.
    log.append(&mut batch(4, 2_000, "w", Compression::None), 0, 0)
        .unwrap();
    log.truncate_to(4).unwrap();
    assert_eq!(log.log_end_offset(), 2);
}
