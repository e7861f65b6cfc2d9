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
    /// `cleanup.policy` contains `delete`: closed segments expire by `retention.ms` and
    /// `retention.bytes`.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`: the cleaner keeps the latest record per key.
    pub cleanup_compact: bool,
    /// `retention.ms`: a closed segment whose newest timestamp is older than this is deleted;
    /// -1 keeps data forever.
    pub retention_ms: i64,
    /// `retention.bytes`: the oldest closed segments are deleted while the log is larger than
    /// this; -1 means no limit.
    pub retention_bytes: i64,
    /// `delete.retention.ms`: how long a tombstone survives on a compacted topic.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log with dirty records older than this is cleaned whatever
    /// its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: the share of dirty bytes at which a log is cleaned.
    pub min_cleanable_dirty_ratio: f64,
    /// `compression.type`: the codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd) every stored
    /// batch must carry, batches in another codec being recompressed on append; `None` for
    /// `producer` (keep the producer's codec).
    pub compression: Option<u8>,
    /// `compression.gzip.level` / `compression.lz4.level` / `compression.zstd.level`, whichever
    /// belongs to `compression`: the level recompression uses; `None` for the codec's default.
    pub compression_level: Option<i32>,
    /// `message.timestamp.before.max.ms`: with CreateTime, a record whose timestamp is more than
    /// this far behind the broker's clock is refused (INVALID_TIMESTAMP).
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: with CreateTime, a record whose timestamp is more than
    /// this far ahead of the broker's clock is refused.
    pub timestamp_after_max_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            cleanup_delete: true,
            cleanup_compact: false,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            compression: None,
            compression_level: None,
            // The library accepts any timestamp unless told otherwise; the broker passes the
            // topic's bounds (Kafka 4 defaults: unbounded behind, one hour ahead).
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
        }
    }
}
