//! Structure-aware batch validation: record batches v2 built field by field from the fuzz
//! input (mostly valid, CRC fixed up, so the checks past the CRC are reached), then
//! `strom_log::validate::check`. When every batch's framing is exact, the answer must match a
//! model of Kafka's rules (accept, or reject with the right kind of error); otherwise it must
//! just not panic.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use strom_fuzz::{FuzzAppend, kind};
use strom_log::validate;

#[derive(Debug, Arbitrary)]
struct Input {
    small_limit: Option<u16>,
    append: FuzzAppend,
}

fuzz_target!(|input: Input| {
    let max_message_bytes = input.small_limit.map_or(1_048_588, usize::from);
    let records = input.append.encode();
    let got = validate::check(&records, max_message_bytes).map_err(|e| kind(&e));
    if let Some(expected) = input.append.expected(max_message_bytes) {
        assert_eq!(
            got, expected,
            "validation disagrees with the model for {input:?}"
        );
    }
});
