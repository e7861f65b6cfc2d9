//! Arbitrary bytes as the records of one produce partition through strom-log's batch
//! validation (`strom_log::validate::check`: magic, framing, size limit, CRC-32C, counts,
//! producer fields), once with the default `max.message.bytes` and once with a small limit
//! taken from the input's length, which must never accept more than the large one does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_log::{BATCH_HEADER_LEN, validate};

const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

fuzz_target!(|data: &[u8]| {
    let large = validate::check(data, DEFAULT_MAX_MESSAGE_BYTES);
    if let Ok(count) = large {
        // Every accepted batch has at least a header, and an append is never empty.
        assert!(count >= 1);
        assert!(count * BATCH_HEADER_LEN <= data.len());
    }
    let small_limit = data.len() / 2;
    if let Ok(count) = validate::check(data, small_limit) {
        assert_eq!(
            large.as_ref().ok(),
            Some(&count),
            "accepted under a {small_limit}-byte limit but not under the default"
        );
    }
});
