//! Topic ids for `strom topic describe`.
//!
//! The `rdkafka` crate's safe API has no DescribeTopics (the only admin call that returns topic ids),
//! so this module calls librdkafka's `rd_kafka_DescribeTopics` directly. It is best effort: the
//! describe output only loses its `TopicId` when this fails (e.g. a broker without topic ids), so
//! every failure here yields an empty map rather than an error.

use rdkafka::bindings as rd;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::time::Duration;

/// Owns a native pointer and frees it with its librdkafka destructor when dropped, so the early
/// returns below cannot leak.
struct Owned<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from the matching librdkafka constructor and is freed once.
            unsafe { (self.1)(self.0) }
        }
    }
}

/// Topic name -> topic id (Kafka's URL-safe base64 form) for the named topics.
///
/// `rk` must be a live client handle (e.g. `AdminClient::inner().native_ptr()`) that outlives the call.
pub fn topic_ids(
    rk: *mut rd::rd_kafka_t,
    names: &[&str],
    timeout: Duration,
) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if names.is_empty() || rk.is_null() {
        return out;
    }
    let c_names: Vec<CString> = match names.iter().map(|n| CString::new(*n)).collect() {
        Ok(v) => v,
        Err(_) => return out,
    };
    let mut ptrs: Vec<*const c_char> = c_names.iter().map(|c| c.as_ptr()).collect();
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);

    // SAFETY: every pointer passed to librdkafka is either created here (and kept alive by an
    // `Owned` guard until after the last use) or borrowed from the result event, which is kept alive
    // while its contents are read; strings are copied out before the event is destroyed.
    unsafe {
        let queue = Owned(rd::rd_kafka_queue_new(rk), rd::rd_kafka_queue_destroy);
        let topics = Owned(
            rd::rd_kafka_TopicCollection_of_topic_names(ptrs.as_mut_ptr(), ptrs.len()),
            rd::rd_kafka_TopicCollection_destroy,
        );
        let options = Owned(
            rd::rd_kafka_AdminOptions_new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
            ),
            rd::rd_kafka_AdminOptions_destroy,
        );
        if queue.0.is_null() || topics.0.is_null() || options.0.is_null() {
            return out;
        }
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options.0,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        rd::rd_kafka_DescribeTopics(rk, topics.0, options.0, queue.0);
        let event = Owned(
            rd::rd_kafka_queue_poll(queue.0, timeout_ms.saturating_add(1000)),
            rd::rd_kafka_event_destroy,
        );
        if event.0.is_null()
            || rd::rd_kafka_event_error(event.0)
                != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            return out;
        }
        let result = rd::rd_kafka_event_DescribeTopics_result(event.0);
        if result.is_null() {
            return out;
        }
        let mut count = 0usize;
        let descs = rd::rd_kafka_DescribeTopics_result_topics(result, &mut count);
        if descs.is_null() {
            return out;
        }
        for i in 0..count {
            let desc = *descs.add(i);
            if desc.is_null() || !rd::rd_kafka_TopicDescription_error(desc).is_null() {
                continue;
            }
            let name = rd::rd_kafka_TopicDescription_name(desc);
            let id = rd::rd_kafka_TopicDescription_topic_id(desc);
            if name.is_null() || id.is_null() {
                continue;
            }
            let id_str = rd::rd_kafka_Uuid_base64str(id);
            if id_str.is_null() {
                continue;
            }
            out.insert(
                CStr::from_ptr(name).to_string_lossy().into_owned(),
                url_safe_base64(&CStr::from_ptr(id_str).to_string_lossy()),
            );
        }
    }
    out
}

/// Kafka prints topic ids as URL-safe base64 without padding; normalise whatever librdkafka gives.
fn url_safe_base64(s: &str) -> String {
    s.trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_safe() {
        assert_eq!(super::url_safe_base64("ab+/cd=="), "ab-_cd");
        assert_eq!(
            super::url_safe_base64("Q6o1FkCaSlWlT1PZIrzPSg"),
            "Q6o1FkCaSlWlT1PZIrzPSg"
        );
    }
}
