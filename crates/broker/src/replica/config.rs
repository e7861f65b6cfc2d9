//! The broker settings replication honours, by Kafka's key names, with Kafka's defaults.

use crate::config::BrokerConfig;

/// The keys this module reads; `BrokerConfig::from_pairs` checks them as integers at start.
pub const REPLICA_KEYS: &[&str] = &[
    "replica.lag.time.max.ms",
    "replica.fetch.wait.max.ms",
    "replica.fetch.min.bytes",
    "replica.fetch.max.bytes",
    "replica.fetch.response.max.bytes",
    "replica.fetch.backoff.ms",
    "replica.socket.timeout.ms",
    "replica.high.watermark.checkpoint.interval.ms",
    "num.replica.fetchers",
];

#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// `replica.lag.time.max.ms`: a follower that has not caught up to the leader's log end for
    /// this long leaves the ISR.
    pub lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits at the leader for data.
    pub fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes`
    pub fetch_min_bytes: i32,
    /// `replica.fetch.max.bytes`: per partition.
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: per fetch.
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: pause after a failed fetch.
    pub fetch_backoff_ms: u64,
    /// `replica.socket.timeout.ms`: a fetch not answered within this is abandoned.
    pub socket_timeout_ms: u64,
    /// `replica.high.watermark.checkpoint.interval.ms`
    pub hw_checkpoint_interval_ms: u64,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            lag_time_max_ms: 30_000,
            fetch_wait_max_ms: 500,
            fetch_min_bytes: 1,
            fetch_max_bytes: 1_048_576,
            fetch_response_max_bytes: 10_485_760,
            fetch_backoff_ms: 1_000,
            socket_timeout_ms: 30_000,
            hw_checkpoint_interval_ms: 5_000,
        }
    }
}

impl ReplicaConfig {
    pub fn from_broker(broker: &BrokerConfig) -> ReplicaConfig {
        let mut c = ReplicaConfig::default();
        let get = |key: &str| {
            broker
                .explicit
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        if let Some(v) = get("replica.lag.time.max.ms") {
            c.lag_time_max_ms = v.max(1);
        }
        if let Some(v) = get("replica.fetch.wait.max.ms") {
            c.fetch_wait_max_ms = v.clamp(0, i64::from(i32::MAX)) as i32;
        }
        if let Some(v) = get("replica.fetch.min.bytes") {
            c.fetch_min_bytes = v.clamp(1, i64::from(i32::MAX)) as i32;
        }
        if let Some(v) = get("replica.fetch.max.bytes") {
            c.fetch_max_bytes = v.clamp(1, i64::from(i32::MAX)) as i32;
        }
        if let Some(v) = get("replica.fetch.response.max.bytes") {
            c.fetch_response_max_bytes = v.clamp(1, i64::from(i32::MAX)) as i32;
        }
        if let Some(v) = get("replica.fetch.backoff.ms") {
            c.fetch_backoff_ms = v.max(0) as u64;
        }
        if let Some(v) = get("replica.socket.timeout.ms") {
            c.socket_timeout_ms = v.max(1) as u64;
        }
        if let Some(v) = get("replica.high.watermark.checkpoint.interval.ms") {
            c.hw_checkpoint_interval_ms = v.max(1) as u64;
        }
        // A fetch must be able to wait its full time before the socket timeout gives up.
        c.socket_timeout_ms = c.socket_timeout_ms.max(c.fetch_wait_max_ms as u64 + 1_000);
        c
    }
}
