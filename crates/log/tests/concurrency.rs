//! Many appenders and readers at once, and a long random sequence checked against a model.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use strom_log::{Log, LogConfig};

#[test]
fn concurrent_appends_and_reads_see_whole_contiguous_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 20_000,
        index_interval_bytes: 512,
        ..LogConfig::default()
    };
    let log = Arc::new(open(dir.path(), config));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (log, done) = (log.clone(), done.clone());
            std::thread::spawn(move || {
                let mut checks = 0;
                while !done.load(Ordering::Acquire) {
                    let leo = log.log_end_offset();
                    let from = leo / 2;
                    if from == leo {
                        continue;
                    }
                    let slice = log.read(from, 4_096, leo, true).expect("read");
                    let got = offsets_and_values(&slice.records);
                    assert!(!got.is_empty());
                    assert!(got.windows(2).all(|w| w[1].0 == w[0].0 + 1));
                    assert!(got.iter().any(|(o, _)| *o == from));
                    assert!(got.last().expect("records").0 < leo);
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..150 {
                    let codec = ALL_CODECS[(w + i) % ALL_CODECS.len()];
                    let mut bytes = batch(1 + i % 7, i as i64, &format!("w{w}"), codec);
                    let info = log.append(&mut bytes, 0, 0).expect("append");
                    assert_eq!(info.last_offset - info.base_offset, (i % 7) as i64);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        assert!(reader.join().expect("reader") > 0);
    }
    let expected: i64 = (0..150).map(|i| 1 + (i % 7) as i64).sum::<i64>() * 4;
    assert_eq!(log.log_end_offset(), expected);
    let all = read_all(&log, 0);
    assert_eq!(all.len() as i64, expected);
    // Each writer's batches are intact: values of one batch are "w{n}-0", "w{n}-1", ...
    for w in 0..4 {
        let count = all
            .iter()
            .filter(|(_, v)| v.starts_with(&format!("w{w}-")))
            .count() as i64;
        assert_eq!(count, expected / 4);
    }
}

/// A small deterministic generator so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn random_appends_reads_and_reopens_match_a_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 4_000,
        index_interval_bytes: 300,
        ..LogConfig::default()
    };
    let mut log: Log = open(dir.path(), config.clone());
    let mut model: Vec<(String, i64)> = Vec::new(); // value and timestamp by offset
    let mut rng = Lcg(0x5eed);
    let mut ts = 1_000i64;
    for step in 0..400 {
        match rng.next(10) {
            0..=5 => {
                let count = 1 + rng.next(8) as usize;
                let codec = ALL_CODECS[rng.next(5) as usize];
                let records: Vec<_> = (0..count as i64)
                    .map(|i| {
                        ts += rng.next(3) as i64;
                        let value = format!("s{step}-{i}");
                        model.push((value.clone(), ts));
                        record(i, ts, Some("k"), Some(&value))
                    })
                    .collect();
                let info = log
                    .append(&mut encode(&records, codec), 0, 0)
                    .expect("append");
                assert_eq!(info.last_offset, model.len() as i64 - 1);
            }
            6..=7 if !model.is_empty() => {
                let offset = rng.next(model.len() as u64) as i64;
                let max_bytes = rng.next(2_000) as usize;
                let slice = log.read(offset, max_bytes, i64::MAX, true).expect("read");
                assert!(slice.records.len() <= max_bytes.max(1_000));
                let got = offsets_and_values(&slice.records);
                assert!(got.first().expect("min one batch").0 <= offset);
                assert!(got.iter().any(|(o, _)| *o == offset));
                for (o, v) in got {
                    assert_eq!(v, model[o as usize].0);
                }
                let target = model[offset as usize].1;
                let expected = model
                    .iter()
                    .position(|(_, t)| *t >= target)
                    .expect("exists");
                assert_eq!(
                    log.offset_for_timestamp(target).expect("ts"),
                    Some((expected as i64, model[expected].1))
                );
            }
            8 => {
                if rng.next(2) == 0 {
                    log.close().expect("close");
                }
                drop(log);
                log = open(dir.path(), config.clone());
                assert_eq!(log.log_end_offset(), model.len() as i64);
            }
            _ => log.flush().expect("flush"),
        }
    }
    let all = read_all(&log, 0);
    assert_eq!(all.len(), model.len());
    for ((offset, value), (i, (want, _))) in all.iter().zip(model.iter().enumerate()) {
        assert_eq!((*offset, value), (i as i64, want));
    }
    let max = model.iter().map(|(_, t)| *t).max().expect("records");
    let first_max = model.iter().position(|(_, t)| *t == max).expect("max");
    assert_eq!(
        log.max_timestamp().expect("max"),
        Some((first_max as i64, max))
    );
}
