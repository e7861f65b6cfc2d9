//! Arbitrary bytes as one request frame (header + body, no size prefix) through the broker's
//! `decode_request`: the API key/version gate, the request header and kafka-protocol's body
//! decoder for every API strom serves. Errors are fine (the connection closes); panics, aborts,
//! huge allocations and timeouts are bugs.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strom_broker::handlers::{Decoded, decode_request};
use strom_fuzz::tolerate_known_oom;

fuzz_target!(|data: &[u8]| {
    let Some(decoded) = tolerate_known_oom(|| decode_request(Bytes::copy_from_slice(data))) else {
        return;
    };
    match decoded {
        Ok(Decoded::Request {
            header, version, ..
        }) => {
            // What the dispatcher relies on: the header it answers with matches the frame.
            assert_eq!(header.request_api_version, version);
            assert_eq!(
                header.correlation_id,
                i32::from_be_bytes([data[4], data[5], data[6], data[7]])
            );
        }
        Ok(Decoded::Immediate(response)) => assert!(!response.is_empty()),
        Err(message) => assert!(!message.is_empty()),
    }
});
