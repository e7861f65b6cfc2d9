//! Idempotent producers: a retried batch is answered with its first offsets and written once,
//! also after a clean restart and after a crash; gaps and stale epochs are refused.

mod common;

use common::*;
use kafka_protocol::records::Compression;
use strom_log::{LogConfig, LogError};

/// One idempotent batch of `count` records from producer `pid` starting at sequence `seq`.
fn idempotent(pid: i64, epoch: i16, seq: i32, count: i64) -> Vec<u8> {
    let records: Vec<_> = (0..count)
        .map(|i| {
            let mut r = record(
                i,
                1_000 + i,
                Some("k"),
                Some(&format!("s{}", i64::from(seq) + i)),
            );
            r.producer_id = pid;
            r.producer_epoch = epoch;
            r.sequence = seq + i as i32;
            r
        })
        .collect();
    encode(&records, Compression::None)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        ..LogConfig::default()
    }
}

#[test]
fn retries_are_written_once_across_restarts_and_crashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), config());
    let first = log
        .append(&mut idempotent(42, 0, 0, 3), 0, 0)
        .expect("first");
    assert_eq!(
        (first.base_offset, first.last_offset, first.duplicate),
        (0, 2, false)
    );
    let retry = log
        .append(&mut idempotent(42, 0, 0, 3), 0, 0)
        .expect("retry");
    assert_eq!(
        (retry.base_offset, retry.last_offset, retry.duplicate),
        (0, 2, true)
    );
    assert_eq!(log.log_end_offset(), 3);

    // A gap is refused with the error the producer expects, and nothing is written.
    let gap = log
        .append(&mut idempotent(42, 0, 5, 1), 0, 0)
        .expect_err("gap");
    assert!(matches!(gap, LogError::OutOfOrderSequence(_)), "{gap}");
    assert_eq!(gap.kafka_error_code(), 45);

    // Enough batches to roll segments (each roll writes a producer snapshot).
    let mut seq = 3;
    for _ in 0..10 {
        log.append(&mut idempotent(42, 0, seq, 2), 0, 0)
            .expect("append");
        seq += 2;
    }
    let end = log.log_end_offset();
    log.close().expect("close");
    drop(log);

    let log = open(dir.path(), config());
    let retry = log
        .append(&mut idempotent(42, 0, seq - 2, 2), 0, 0)
        .expect("retry after restart");
    assert!(retry.duplicate);
    assert_eq!(retry.last_offset, end - 1);
    log.append(&mut idempotent(42, 0, seq, 2), 0, 0)
        .expect("next");
    seq += 2;
    // Crash: no close, so the state comes from the last roll's snapshot plus the tail.
    drop(log);

    let log = open(dir.path(), config());
    let retry = log
        .append(&mut idempotent(42, 0, seq - 2, 2), 0, 0)
        .expect("retry after crash");
    assert!(
        retry.duplicate,
        "batch written before the crash must be known"
    );
    let fenced = log
        .append(&mut idempotent(42, 1, 0, 1), 0, 0)
        .expect("new epoch");
    assert!(!fenced.duplicate);
    let zombie = log
        .append(&mut idempotent(42, 0, seq, 1), 0, 0)
        .expect_err("zombie");
    assert_eq!(zombie.kafka_error_code(), 47);
    assert_eq!(read_all(&log, 0).len() as i64, log.log_end_offset());
}
