//! Per-partition log configuration (Kafka's topic-level `LogConfig`).

/// `message.timestamp.type`: which timestamp a batch carries once stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamps are kept.
    CreateTime,
    /// The broker stamps each batch with the append time.
    LogAppendTime,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes` (`log.segment.bytes`): a segment is rolled before it would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms` (`log.roll.ms`): a segment is rolled once its timestamps span this long.
    pub segment_ms: i64,
    /// `index.interval.bytes`: bytes of batches between two index entries.
    pub index_interval_bytes: usize,
    /// `max.message.bytes` (`message.max.bytes`): the largest batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
        }
    }
}
