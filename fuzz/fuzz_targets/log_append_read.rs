//! A partition log in a temporary directory driven by a fuzzed sequence of operations: appends
//! of structure-aware batches (mostly valid) or raw bytes, reads, ListOffsets lookups by
//! timestamp and max timestamp, and reopening (clean close or crash-style drop, which runs
//! recovery). Optionally the log starts from a fuzzed segment file, so recovery also sees
//! arbitrary bytes on disk. Never panics, and a reopen keeps exactly the offsets and bytes a
//! reader saw before it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use strom_fuzz::FuzzAppend;
use strom_log::{BatchHeader, Log, LogConfig, TimestampType};

#[derive(Debug, Arbitrary)]
enum Op {
    Append {
        append: FuzzAppend,
        leader_epoch: i32,
        now_ms: i64,
    },
    AppendRaw {
        bytes: Vec<u8>,
        now_ms: i64,
    },
    Read {
        offset: u16,
        max_bytes: u16,
        max_offset: Option<u16>,
        min_one_batch: bool,
    },
    ByTimestamp(i64),
    MaxTimestamp,
    Reopen {
        clean: bool,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    log_append_time: bool,
    /// Small segments make appends roll.
    segment_bytes: Option<u16>,
    index_interval_bytes: u8,
    /// Written as the first segment file before the log is opened.
    existing_segment: Option<Vec<u8>>,
    ops: Vec<Op>,
}

const TOPIC_ID: [u8; 16] = [7; 16];

/// Every batch from the log start to the log end, read batch run after batch run, as
/// (base offset, bytes) pairs.
fn read_all(log: &Log) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    while offset < end {
        let slice = log
            .read(offset, 1 << 16, i64::MAX, true)
            .expect("read below the log end");
        assert!(
            !slice.records.is_empty(),
            "empty read at {offset} below the log end {end}"
        );
        let mut rest = &slice.records[..];
        while !rest.is_empty() {
            let header = BatchHeader::parse(rest).expect("a read returns whole batches");
            let len = header.total_len();
            assert!(len <= rest.len(), "a read returned a torn batch");
            out.push((header.base_offset, rest[..len].to_vec()));
            offset = header.last_offset() + 1;
            rest = &rest[len..];
        }
    }
    assert_eq!(offset, end, "batches do not end at the log end offset");
    out
}

fn open(dir: &Path, config: &LogConfig) -> Option<Log> {
    // Opening can fail on a fuzzed segment file; that is an error, not a bug.
    Log::open(dir, config.clone(), TOPIC_ID).ok()
}

fuzz_target!(|input: Input| {
    // Lookups by timestamp (and recovery of transaction markers) decode stored batches with
    // kafka-protocol, whose known unbounded pre-allocation is skipped, not reported.
    strom_fuzz::tolerate_known_oom(std::panic::AssertUnwindSafe(|| run(&input)));
});

fn run(input: &Input) {
    let tmp = tempfile::Builder::new()
        .prefix("strom-fuzz-")
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .expect("tempdir");
    let dir = tmp.path().join("topic-0");
    let config = LogConfig {
        segment_bytes: input.segment_bytes.map_or(1 << 30, |b| u64::from(b).max(1)),
        index_interval_bytes: usize::from(input.index_interval_bytes),
        timestamp_type: if input.log_append_time {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        ..LogConfig::default()
    };
    if let Some(bytes) = &input.existing_segment {
        std::fs::create_dir_all(&dir).expect("create partition dir");
        std::fs::write(dir.join("00000000000000000000.log"), bytes).expect("write segment");
    }
    let Some(mut log) = open(&dir, &config) else {
        return;
    };
    // Whatever was recovered must already read back consistently.
    read_all(&log);

    for op in input.ops.iter().take(24) {
        match op {
            Op::Append {
                append,
                leader_epoch,
                now_ms,
            } => {
                let mut records = append.encode();
                let before = log.log_end_offset();
                if let Ok(info) = log.append(&mut records, *leader_epoch, *now_ms) {
                    if !info.duplicate {
                        assert_eq!(info.base_offset, before);
                        assert!(info.last_offset >= info.base_offset);
                        assert_eq!(log.log_end_offset(), info.last_offset + 1);
                    }
                } else {
                    assert_eq!(
                        log.log_end_offset(),
                        before,
                        "a failed append moved the log end"
                    );
                }
            }
            Op::AppendRaw { bytes, now_ms } => {
                let mut records = bytes.clone();
                let before = log.log_end_offset();
                if log.append(&mut records, 0, *now_ms).is_err() {
                    assert_eq!(
                        log.log_end_offset(),
                        before,
                        "a failed append moved the log end"
                    );
                }
            }
            Op::Read {
                offset,
                max_bytes,
                max_offset,
                min_one_batch,
            } => {
                let offset = log.log_start_offset() + i64::from(*offset);
                let max_offset =
                    max_offset.map_or(i64::MAX, |m| log.log_start_offset() + i64::from(m));
                let _ = log.read(offset, usize::from(*max_bytes), max_offset, *min_one_batch);
            }
            Op::ByTimestamp(ts) => {
                if let Ok(Some((offset, _))) = log.offset_for_timestamp(*ts) {
                    assert!(offset < log.log_end_offset());
                }
            }
            Op::MaxTimestamp => {
                let _ = log.max_timestamp();
            }
            Op::Reopen { clean } => {
                let seen = read_all(&log);
                let (start, end) = (log.log_start_offset(), log.log_end_offset());
                if *clean {
                    log.close().expect("close");
                }
                drop(log);
                log = Log::open(&dir, config.clone(), TOPIC_ID)
                    .expect("reopen a log this process wrote");
                assert_eq!(
                    (log.log_start_offset(), log.log_end_offset()),
                    (start, end),
                    "reopen (clean: {clean}) moved the log"
                );
                assert!(
                    read_all(&log) == seen,
                    "reopen (clean: {clean}) changed the batches"
                );
            }
        }
    }
}
