//! A committed offset as the coordinator keeps it (Kafka's OffsetAndMetadata).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub committed_offset: i64,
    /// The leader epoch of the last consumed record (OffsetCommit v6+); clients use it to detect
    /// log truncation when they resume.
    pub leader_epoch: Option<i32>,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only set by OffsetCommit v2–4 with an explicit `retention_time_ms`.
    pub expire_timestamp: Option<i64>,
}

impl OffsetAndMetadata {
    /// Whether retention has run out: an explicit expiry wins, else `base_timestamp` (when the
    /// group became empty, or the commit time) plus `retention_ms`.
    pub fn is_expired(&self, now_ms: i64, base_timestamp: i64, retention_ms: i64) -> bool {
        match self.expire_timestamp {
            Some(at) => now_ms >= at,
            None => now_ms.saturating_sub(base_timestamp) >= retention_ms,
        }
    }
}
