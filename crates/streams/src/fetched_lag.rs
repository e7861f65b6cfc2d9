//! Kafka's fetched lag of an input partition (KIP-695, the consumer's `currentLag`): how many
//! records the broker holds beyond what the consumer has handed to the application. It decides
//! whether a task with an empty partition buffer must wait (see `PartitionGroup::ready`).
//!
//! Everything here is read from librdkafka's local state, never from the broker, since it runs on
//! every processing loop: the high watermark comes from the last fetch response
//! (`rd_kafka_get_watermark_offsets`), the position from the records polled so far
//! (`rd_kafka_position`, which also moves past transaction markers). Before the first record of a
//! partition is polled librdkafka reports no position, so the offset the consumer started from is
//! taken from the group's committed offset, read once per assignment, or (no commit, with
//! `auto.offset.reset=earliest`) the log start offset of that same fetch response.

use std::collections::HashMap;
use std::ffi::CString;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// Where the consumer began reading a partition of the current assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOffset {
    /// The group's committed offset.
    Committed(i64),
    /// No committed offset: `auto.offset.reset=earliest`, the log start.
    LogStart,
    /// The committed offsets could not be read: the lag before the first record is taken as 0, so
    /// the task does not wait on a partition forever (it then behaves as before KIP-695).
    Unknown,
}

/// The fetched lag from the cached watermarks (`low`, `high`; negative when no fetch response has
/// arrived yet), the consumer's position (None before the first polled record) and where the
/// consumer started. None: not known yet.
pub fn lag_from(low: i64, high: i64, position: Option<i64>, start: StartOffset) -> Option<i64> {
    if high < 0 {
        return None;
    }
    let next = match (position, start) {
        (Some(p), _) => p,
        // A commit below the log start (deleted by retention) resets to the log start.
        (None, StartOffset::Committed(c)) => c.max(low),
        (None, StartOffset::LogStart) if low >= 0 => low,
        (None, StartOffset::LogStart) => return None,
        (None, StartOffset::Unknown) => return Some(0),
    };
    Some((high - next).max(0))
}

/// The start offsets of one thread's assignment.
#[derive(Debug, Default)]
pub struct FetchedLags {
    starts: HashMap<(String, i32), StartOffset>,
}

impl FetchedLags {
    /// Reads the committed offsets of a new assignment (one OffsetFetch round trip per rebalance).
    pub fn on_assignment<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        parts: &[(String, i32)],
    ) {
        self.starts.clear();
        let mut tpl = TopicPartitionList::new();
        for (t, p) in parts {
            tpl.add_partition(t, *p);
        }
        match consumer.committed_offsets(tpl, Duration::from_secs(10)) {
            Ok(c) => {
                for e in c.elements() {
                    let start = match e.offset() {
                        Offset::Offset(o) => StartOffset::Committed(o),
                        _ => StartOffset::LogStart,
                    };
                    self.starts
                        .insert((e.topic().to_string(), e.partition()), start);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading committed offsets failed; tasks do not wait on the lag of partitions not yet read");
                for tp in parts {
                    self.starts.insert(tp.clone(), StartOffset::Unknown);
                }
            }
        }
    }

    /// The fetched lag of `topic`-`partition`; `positions` is the consumer's `position()`.
    pub fn lag<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        positions: &TopicPartitionList,
        topic: &str,
        partition: i32,
    ) -> Option<i64> {
        let (low, high) = cached_watermarks(consumer, topic, partition)?;
        let position = positions
            .find_partition(topic, partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        let start = self
            .starts
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(StartOffset::Unknown);
        lag_from(low, high, position, start)
    }
}

/// librdkafka's cached watermarks of a partition (rdkafka 0.39 wraps only the broker query).
fn cached_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` lives; the topic is a NUL-terminated
    // string that outlives the call; librdkafka only writes the two out-parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (RDKafkaErrorCode::from(err) == RDKafkaErrorCode::NoError).then_some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_rules() {
        // No fetch response yet.
        assert_eq!(lag_from(-1001, -1001, None, StartOffset::LogStart), None);
        assert_eq!(
            lag_from(-1001, -1001, Some(5), StartOffset::Committed(5)),
            None
        );
        // The position wins once records were polled.
        assert_eq!(lag_from(0, 10, Some(7), StartOffset::Committed(2)), Some(3));
        assert_eq!(lag_from(0, 10, Some(10), StartOffset::LogStart), Some(0));
        // Before the first record: from the commit, or the log start.
        assert_eq!(lag_from(0, 10, None, StartOffset::Committed(10)), Some(0));
        assert_eq!(lag_from(0, 10, None, StartOffset::Committed(4)), Some(6));
        assert_eq!(lag_from(3, 10, None, StartOffset::LogStart), Some(7));
        assert_eq!(lag_from(0, 0, None, StartOffset::LogStart), Some(0));
        assert_eq!(lag_from(-1, 10, None, StartOffset::LogStart), None);
        assert_eq!(lag_from(10, 10, None, StartOffset::Committed(4)), Some(0));
        assert_eq!(lag_from(0, 10, None, StartOffset::Unknown), Some(0));
    }
}
