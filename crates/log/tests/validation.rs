//! Validation of produced batches: bad input is rejected before anything is written.

mod common;

use common::*;
use kafka_protocol::records::Compression;
use strom_log::{LogConfig, LogError};

/// Recomputes the CRC after a test edits a batch's covered bytes.
fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn assert_rejected(bytes: Vec<u8>, code: i16, what: &str) -> LogError {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(
        dir.path(),
        LogConfig {
            max_message_bytes: 2_000,
            ..LogConfig::default()
        },
    );
    log.append(&mut batch(1, 0, "ok", Compression::None), 0, 0)
        .expect("good append");
    let size = log.size_bytes();
    let mut bytes = bytes;
    let err = log.append(&mut bytes, 0, 0).expect_err(what);
    assert_eq!(err.kafka_error_code(), code, "{what}: {err}");
    // Nothing of a rejected append reaches the log.
    assert_eq!(log.log_end_offset(), 1, "{what}");
    assert_eq!(log.size_bytes(), size, "{what}");
    let len = std::fs::metadata(dir.path().join("00000000000000000000.log"))
        .expect("stat")
        .len();
    assert_eq!(len, size, "{what}");
    log.append(&mut batch(1, 0, "ok", Compression::None), 0, 0)
        .expect("log still usable");
    err
}

#[test]
fn crc_mismatch_is_corrupt_message() {
    let mut bytes = batch(3, 0, "v", Compression::Snappy);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    let err = assert_rejected(bytes, 2, "flipped payload bit");
    assert!(matches!(err, LogError::CorruptMessage(_)));

    let mut bytes = batch(3, 0, "v", Compression::None);
    bytes[17] ^= 1;
    assert_rejected(bytes, 2, "wrong crc field");
}

#[test]
fn truncated_or_padded_batches_are_corrupt_message() {
    let bytes = batch(3, 0, "v", Compression::None);
    assert_rejected(bytes[..bytes.len() - 5].to_vec(), 2, "torn batch");
    assert_rejected(bytes[..40].to_vec(), 2, "shorter than a header");
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0, 0, 0]);
    assert_rejected(padded, 2, "trailing garbage");
    let mut short_length = bytes.clone();
    short_length[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert_rejected(short_length, 2, "batch length below a header");
    let mut negative = bytes;
    negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert_rejected(negative, 2, "negative batch length");
}

#[test]
fn records_count_must_match_last_offset_delta() {
    let mut bytes = batch(3, 0, "v", Compression::None);
    bytes[57..61].copy_from_slice(&4i32.to_be_bytes());
    fix_crc(&mut bytes);
    let err = assert_rejected(bytes, 87, "records count 4 for 3 offsets");
    assert!(matches!(err, LogError::InvalidRecord(_)));

    let mut bytes = batch(3, 0, "v", Compression::None);
    bytes[57..61].copy_from_slice(&(-1i32).to_be_bytes());
    bytes[23..27].copy_from_slice(&(-2i32).to_be_bytes());
    fix_crc(&mut bytes);
    assert_rejected(bytes, 87, "negative count");
}

#[test]
fn only_magic_v2_is_accepted() {
    let mut bytes = batch(1, 0, "v", Compression::None);
    bytes[16] = 1;
    let err = assert_rejected(bytes, 43, "magic 1");
    assert!(matches!(err, LogError::UnsupportedMagic(1)));
}

#[test]
fn unknown_compression_codec_is_rejected() {
    let mut bytes = batch(1, 0, "v", Compression::None);
    bytes[22] = (bytes[22] & !7) | 5;
    fix_crc(&mut bytes);
    let err = assert_rejected(bytes, 76, "codec 5");
    assert!(matches!(err, LogError::UnsupportedCompression(5)));
}

#[test]
fn batches_over_max_message_bytes_are_too_large() {
    let big: Vec<_> = (0..1)
        .map(|i| record(i, 0, None, Some(&"x".repeat(3_000))))
        .collect();
    let err = assert_rejected(encode(&big, Compression::None), 10, "3 KB batch, 2 KB max");
    assert!(
        matches!(err, LogError::MessageTooLarge { max: 2_000, .. }),
        "{err}"
    );
}

#[test]
fn empty_append_is_invalid() {
    assert_rejected(Vec::new(), 87, "no batches");
}

#[test]
fn one_bad_batch_rejects_the_whole_append() {
    let mut bytes = batch(2, 0, "a", Compression::None);
    let mut bad = batch(2, 0, "b", Compression::Gzip);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    bytes.extend(bad);
    bytes.extend(batch(2, 0, "c", Compression::None));
    assert_rejected(bytes, 2, "good, corrupt, good");
}

#[test]
fn producer_id_without_sequence_is_invalid() {
    let mut bytes = batch(1, 0, "v", Compression::None);
    bytes[43..51].copy_from_slice(&12i64.to_be_bytes());
    bytes[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    fix_crc(&mut bytes);
    assert_rejected(bytes, 87, "producer id with sequence -1");
}

/// Found by fuzzing: a batch whose record count its bytes cannot hold (here i32::MAX records in
/// no bytes, with a correct CRC) must be refused, not stored and decoded later.
#[test]
fn impossible_record_count_is_refused() {
    let mut bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/records_count_i32_max.bin"
    ))
    .expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), strom_log::LogConfig::default());
    let err = log.append(&mut bytes, 0, 0).expect_err("must be refused");
    assert_eq!(err.kafka_error_code(), 2, "{err}");
    assert_eq!(log.log_end_offset(), 0);
}
