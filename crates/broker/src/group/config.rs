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
    /// `group.consumer.session.timeout.ms`: a consumer-protocol member that does not heartbeat
    /// for this long is fenced.
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: how often consumer-protocol members heartbeat.
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.assignors`: the server assignors offered, the first the default.
    pub consumer_assignors: Vec<String>,
    /// `group.consumer.max.size`
    pub consumer_max_size: usize,
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
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_assignors: vec!["uniform".to_string(), "range".to_string()],
            consumer_max_size: i32::MAX as usize,
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
    "group.consumer.session.timeout.ms",
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.max.size",
    // Kafka's bounds for the two settings above; accepted (and range-checked) so one
    // server.properties serves both brokers.
    "group.consumer.min.session.timeout.ms",
    "group.consumer.max.session.timeout.ms",
    "group.consumer.min.heartbeat.interval.ms",
    "group.consumer.max.heartbeat.interval.ms",
];

/// `group.consumer.assignors`: a list of assignor names or Kafka's class names for them.
pub const ASSIGNORS_KEY: &str = "group.consumer.assignors";

/// Parse `group.consumer.assignors` (comma separated; Kafka's class names map to the short
/// names), refusing assignors this broker does not have.
pub fn parse_assignors(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for raw in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name = match raw {
            "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => "uniform",
            "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => "range",
            other => other,
        };
        if !super::assignor::ASSIGNORS.contains(&name) {
            return Err(format!(
                "unknown assignor `{raw}` (available: {})",
                super::assignor::ASSIGNORS.join(", ")
            ));
        }
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    if out.is_empty() {
        return Err("at least one assignor is required".to_string());
    }
    Ok(out)
}

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
        if let Some(v) = get("group.consumer.session.timeout.ms") {
            c.consumer_session_timeout_ms = clamp_i32(v).max(1);
        }
        if let Some(v) = get("group.consumer.heartbeat.interval.ms") {
            c.consumer_heartbeat_interval_ms = clamp_i32(v).max(1);
        }
        if let Some(v) = get("group.consumer.max.size") {
            c.consumer_max_size = v.max(1) as usize;
        }
        if let Some(v) = config.explicit.get(ASSIGNORS_KEY)
            && let Ok(list) = parse_assignors(v)
        {
            c.consumer_assignors = list;
        }
        c
    }
}
