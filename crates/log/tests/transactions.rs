//! Transactions on one partition: the last stable offset stops at the oldest open transaction,
//! markers close transactions, aborted ranges are indexed, and all of it survives a crash.

mod common;

use common::*;
use kafka_protocol::records::Compression;
use strom_log::{LogConfig, TxnMarker};

fn txn_batch(pid: i64, epoch: i16, seq: i32, count: i64) -> Vec<u8> {
    let records: Vec<_> = (0..count)
        .map(|i| {
            let mut r = record(i, 5_000 + i, Some("k"), Some("v"));
            r.producer_id = pid;
            r.producer_epoch = epoch;
            r.sequence = seq + i as i32;
            r.transactional = true;
            r
        })
        .collect();
    encode(&records, Compression::None)
}

fn marker(pid: i64, commit: bool) -> TxnMarker {
    TxnMarker {
        producer_id: pid,
        producer_epoch: 0,
        commit,
        coordinator_epoch: 0,
    }
}

#[test]
fn last_stable_offset_markers_and_aborted_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 500,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config.clone());
    log.append(&mut batch(2, 0, "plain", Compression::None), 0, 0)
        .expect("plain"); // offsets 0-1
    log.append(&mut txn_batch(7, 0, 0, 3), 0, 0).expect("t7"); // 2-4
    log.append(&mut txn_batch(8, 0, 0, 2), 0, 0).expect("t8"); // 5-6
    assert_eq!(log.last_stable_offset(log.log_end_offset()), 2);
    assert!(log.has_ongoing_txn(7));

    // Clients may not write markers themselves.
    let mut forged = {
        let dir2 = tempfile::tempdir().expect("tempdir");
        let other = open(dir2.path(), LogConfig::default());
        other.append_marker(&marker(7, true), 0, 0).expect("marker");
        other
            .read(0, 1 << 20, 1, true)
            .expect("read")
            .records
            .to_vec()
    };
    assert!(log.append(&mut forged, 0, 0).is_err());

    let abort = log.append_marker(&marker(7, false), 0, 0).expect("abort 7"); // 7
    assert_eq!(abort.base_offset, 7);
    // Producer 8's transaction is still open from offset 5.
    assert_eq!(log.last_stable_offset(log.log_end_offset()), 5);
    log.append_marker(&marker(8, true), 0, 0).expect("commit 8"); // 8
    assert_eq!(log.last_stable_offset(log.log_end_offset()), 9);
    assert_eq!(log.aborted_transactions(0, 9), vec![(7, 2)]);
    assert_eq!(log.aborted_transactions(8, 9), vec![]);

    // A new transaction stays open across a crash (no close) and is found again.
    log.append(&mut txn_batch(7, 0, 3, 1), 0, 0)
        .expect("t7 again"); // 9
    drop(log);
    let log = open(dir.path(), config);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.last_stable_offset(10), 9);
    assert_eq!(log.aborted_transactions(0, 10), vec![(7, 2)]);
    log.append_marker(&marker(7, false), 0, 0)
        .expect("abort again"); // 10
    assert_eq!(log.aborted_transactions(0, 11), vec![(7, 2), (7, 9)]);
    assert_eq!(log.last_stable_offset(11), 11);
}
