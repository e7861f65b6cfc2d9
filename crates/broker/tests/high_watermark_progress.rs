//! Every move of a leader's high watermark wakes the broker's waiters (acks=all producers,
//! long-polling fetches), whichever caller made the move. A move made by a reader that did not
//! signal once left an acks=all producer waiting its whole request timeout on a three-node
//! cluster although its records were committed (bench rf3-p1k-aall-1p, 1 run in 6).

mod common;

use bytes::{Bytes, BytesMut};
use strom_broker::replica::{Partition, Progress};
use strom_log::{Log, LogConfig};
use strom_meta::PartitionMeta;

fn leader(dir: &std::path::Path, replicas: Vec<i32>, progress: &Progress) -> Partition {
    let log = Log::open(&dir.join("t-0"), LogConfig::default(), [7; 16]).expect("open log");
    let meta = PartitionMeta {
        partition: 0,
        leader: 1,
        leader_epoch: 0,
        isr: replicas.clone(),
        replicas,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    };
    let p = Partition::new(
        "t".into(),
        0,
        uuid::Uuid::nil(),
        log,
        1,
        &meta,
        progress.clone(),
    );
    p.apply(&meta, 0);
    p
}

fn append(p: &Partition, n: usize) {
    let batch = common::plain_batch((0..n).map(|i| Bytes::from(format!("v{i}"))));
    let mut bytes = BytesMut::from(&batch[..]);
    p.log.append(&mut bytes, 0, 0).expect("append");
}

#[test]
fn a_reader_that_moves_the_high_watermark_wakes_the_waiters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let progress = Progress::new();
    let p = leader(dir.path(), vec![1], &progress);
    append(&p, 3);
    let mut waiter = progress.subscribe();
    waiter.borrow_and_update();
    // A single-replica ISR: the first reader of the high watermark (a consumer's fetch, a
    // Metadata answer) is the one that moves it.
    assert_eq!(p.high_watermark(), 3);
    assert!(waiter.has_changed().expect("open"), "the move woke nobody");
    waiter.borrow_and_update();
    assert_eq!(p.high_watermark(), 3);
    assert!(!waiter.has_changed().expect("open"), "no move, no wake-up");
}

#[test]
fn the_last_follower_to_catch_up_wakes_the_waiters_even_if_a_reader_moved_it_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let progress = Progress::new();
    let p = leader(dir.path(), vec![1, 2, 3], &progress);
    append(&p, 5);
    p.update_follower_fetch(2, 5, 5, 0);
    assert_eq!(p.high_watermark(), 0, "follower 3 has nothing yet");
    let mut waiter = progress.subscribe();
    waiter.borrow_and_update();
    p.update_follower_fetch(3, 5, 5, 0);
    assert!(
        waiter.has_changed().expect("open"),
        "the commit woke nobody"
    );
    assert_eq!(p.high_watermark(), 5);
}
