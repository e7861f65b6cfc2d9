//! Measures the log cleaner: builds a compacted log of updates to a fixed key space, then times
//! one full cleaning pass and, separately, appends racing with a pass.
//!
//! `cargo run --release -p strom-log --example cleaner_throughput -- [MB] [keys] [codec]`
//! (codec: none, lz4, zstd, snappy, gzip; defaults 256 MB, 100000 keys, none).

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use strom_log::{Log, LogConfig};

fn batch(first_key: u64, keys: u64, count: u64, value_len: usize, codec: Compression) -> Vec<u8> {
    let value = Bytes::from(vec![b'v'; value_len]);
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(format!(
                "key-{:08}",
                (first_key + i * 7919) % keys
            ))),
            value: Some(value.clone()),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: codec,
        },
    )
    .expect("encode");
    buf.to_vec()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(256);
    let keys: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let codec = match args.get(3).map(String::as_str) {
        Some("lz4") => Compression::Lz4,
        Some("zstd") => Compression::Zstd,
        Some("snappy") => Compression::Snappy,
        Some("gzip") => Compression::Gzip,
        _ => Compression::None,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 64 << 20,
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    };
    let log = Arc::new(Log::open(dir.path(), config, [1; 16]).expect("open"));
    let started = Instant::now();
    let mut n = 0u64;
    while log.size_bytes() < mb << 20 {
        let mut b = batch(n, keys, 100, 100, codec);
        log.append(&mut b, 0, 1_700_000_000_000).expect("append");
        n += 100;
    }
    println!(
        "wrote {} records ({} MB, {codec:?}) in {:.1}s",
        n,
        log.size_bytes() >> 20,
        started.elapsed().as_secs_f64()
    );

    // Produce latency while the cleaner runs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut lat = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut b = batch(i, keys, 10, 100, codec);
                let t = Instant::now();
                log.append(&mut b, 0, 1_700_000_000_000).expect("append");
                lat.push(t.elapsed().as_micros() as u64);
                i += 10;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            lat.sort_unstable();
            lat
        })
    };
    let stats = log
        .clean(1_700_000_000_000, 128 << 20, true)
        .expect("clean")
        .expect("something to clean");
    stop.store(true, Ordering::Relaxed);
    let lat = writer.join().expect("writer");
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    println!(
        "cleaned {} MB -> {} MB ({} -> {} records, {} keys) in {:.2}s: {:.1} MB/s",
        stats.bytes_read >> 20,
        stats.bytes_written >> 20,
        stats.records_read,
        stats.records_kept,
        stats.keys,
        stats.elapsed.as_secs_f64(),
        stats.mb_per_sec()
    );
    println!(
        "appends during the clean: {} (p50 {} us, p99 {} us, max {} us)",
        lat.len(),
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0)
    );
}
