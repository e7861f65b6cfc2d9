//! The broker settings the group coordinator honours, by Kafka's key names.

use crate::config::BrokerConfig;

#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members, so a group starting up does not rebalance once per member.
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`
    pub max_size: usize,
    /// `offsets.topic.num.partitions` (used when `__consumer_offsets` is created).
    pub offsets_topic_num_partitions: i32,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `offsets.topic.segment.bytes`
    pub offsets_topic_segment_bytes: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
            offsets_topic_num_partitions: 50,
            offsets_retention_ms: 10_080 * 60_000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            offsets_topic_segment_bytes: 104_857_600,
        }
    }
}

/// The keys this module reads. `BrokerConfig::from_pairs` validates them as integers at start.
pub const GROUP_KEYS: &[&str] = &[
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.initial.rebalance.delay.ms",
    "group.max.size",
    "offsets.topic.num.partitions",
    "offsets.retention.minutes",
    "offsets.retention.check.interval.ms",
    "offset.metadata.max.bytes",
    "offsets.topic.segment.bytes",
];

impl GroupConfig {
    /// Read the group keys from the broker configuration (values were range-checked at load).
    pub fn from_broker(config: &BrokerConfig) -> GroupConfig {
        let mut c = GroupConfig::default();
        let get = |key: &str| {
            config
                .explicit
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let clamp_i32 = |v: i64| v.clamp(0, i32::MAX as i64) as i32;
        if let Some(v) = get("group.min.session.timeout.ms") {
            c.min_session_timeout_ms = clamp_i32(v);
        }
        if let Some(v) = get("group.max.session.timeout.ms") {
            c.max_session_timeout_ms = clamp_i32(v);
        }
        if let Some(v) = get("group.initial.rebalance.delay.ms") {
            c.initial_rebalance_delay_ms = clamp_i32(v);
        }
        if let Some(v) = get("group.max.size") {
            c.max_size = v.max(1) as usize;
        }
        if let Some(v) = get("offsets.topic.num.partitions") {
            c.offsets_topic_num_partitions = clamp_i32(v).max(1);
        }
        if let Some(v) = get("offsets.retention.minutes") {
            c.offsets_retention_ms = v.max(1).saturating_mul(60_000);
        }
        if let Some(v) = get("offsets.retention.check.interval.ms") {
            c.offsets_retention_check_interval_ms = v.max(1);
        }
        if let Some(v) = get("offset.metadata.max.bytes") {
            c.offset_metadata_max_bytes = v.max(0) as usize;
        }
        if let Some(v) = get("offsets.topic.segment.bytes") {
            c.offsets_topic_segment_bytes = v.max(1);
        }
        c
    }
}
