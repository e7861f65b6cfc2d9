//! Topic-level configs: Kafka's names, types and defaults (taken from the broker's config), how
//! they validate, and how they become a `strom_log::LogConfig`.

use crate::config::BrokerConfig;
use std::collections::BTreeMap;
use strom_log::{LogConfig, TimestampType};

/// Kafka's ConfigType codes in DescribeConfigs v3+.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Kafka's ConfigSource codes.
pub mod source {
    pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    pub const DEFAULT_CONFIG: i8 = 5;
}

pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker key whose value is this config's default (Kafka's "synonym").
    pub broker_key: &'static str,
    pub config_type: ConfigType,
}

const fn def(
    name: &'static str,
    broker_key: &'static str,
    config_type: ConfigType,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_key,
        config_type,
    }
}

/// The topic configs Kafka 4 defines (tiered-storage ones included, since clients list them).
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", "log.cleanup.policy", ConfigType::List),
    def("compression.type", "compression.type", ConfigType::String),
    def(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        ConfigType::Long,
    ),
    def(
        "file.delete.delay.ms",
        "log.segment.delete.delay.ms",
        ConfigType::Long,
    ),
    def(
        "flush.messages",
        "log.flush.interval.messages",
        ConfigType::Long,
    ),
    def("flush.ms", "log.flush.interval.ms", ConfigType::Long),
    def(
        "index.interval.bytes",
        "log.index.interval.bytes",
        ConfigType::Int,
    ),
    def(
        "local.retention.bytes",
        "log.local.retention.bytes",
        ConfigType::Long,
    ),
    def(
        "local.retention.ms",
        "log.local.retention.ms",
        ConfigType::Long,
    ),
    def(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        ConfigType::Long,
    ),
    def("max.message.bytes", "message.max.bytes", ConfigType::Int),
    def(
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        ConfigType::Long,
    ),
    def(
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        ConfigType::Long,
    ),
    def(
        "message.timestamp.type",
        "log.message.timestamp.type",
        ConfigType::String,
    ),
    def(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        ConfigType::Double,
    ),
    def(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        ConfigType::Long,
    ),
    def(
        "min.insync.replicas",
        "min.insync.replicas",
        ConfigType::Int,
    ),
    def("preallocate", "log.preallocate", ConfigType::Boolean),
    def(
        "remote.storage.enable",
        "remote.log.storage.system.enable",
        ConfigType::Boolean,
    ),
    def("retention.bytes", "log.retention.bytes", ConfigType::Long),
    def("retention.ms", "log.retention.ms", ConfigType::Long),
    def("segment.bytes", "log.segment.bytes", ConfigType::Int),
    def(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        ConfigType::Int,
    ),
    def("segment.jitter.ms", "log.roll.jitter.ms", ConfigType::Long),
    def("segment.ms", "log.roll.ms", ConfigType::Long),
    def(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        ConfigType::Boolean,
    ),
];

pub fn lookup(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// One described config entry.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: i8,
    pub config_type: ConfigType,
}

/// The broker-derived defaults of every topic config, and which were set explicitly.
pub struct TopicConfigs {
    defaults: BTreeMap<&'static str, (String, i8)>,
}

impl TopicConfigs {
    pub fn new(broker: &BrokerConfig) -> TopicConfigs {
        let mut defaults = BTreeMap::new();
        for d in TOPIC_CONFIGS {
            let builtin = match d.name {
                "cleanup.policy" => "delete".to_string(),
                "compression.type" => "producer".to_string(),
                "delete.retention.ms" => "86400000".to_string(),
                "file.delete.delay.ms" => "60000".to_string(),
                "flush.messages"
                | "flush.ms"
                | "max.compaction.lag.ms"
                | "message.timestamp.before.max.ms" => i64::MAX.to_string(),
                "index.interval.bytes" => broker.log_index_interval_bytes.to_string(),
                "local.retention.bytes" | "local.retention.ms" => "-2".to_string(),
                "max.message.bytes" => broker.message_max_bytes.to_string(),
                "message.timestamp.after.max.ms" => "3600000".to_string(),
                "message.timestamp.type" => broker.log_message_timestamp_type.clone(),
                "min.cleanable.dirty.ratio" => "0.5".to_string(),
                "min.compaction.lag.ms" => "0".to_string(),
                "min.insync.replicas" => "1".to_string(),
                "preallocate" | "remote.storage.enable" | "unclean.leader.election.enable" => {
                    "false".to_string()
                }
                "retention.bytes" => "-1".to_string(),
                "retention.ms" => "604800000".to_string(),
                "segment.bytes" => broker.log_segment_bytes.to_string(),
                "segment.index.bytes" => "10485760".to_string(),
                "segment.jitter.ms" => "0".to_string(),
                "segment.ms" => broker.log_roll_ms.to_string(),
                _ => String::new(),
            };
            let source = if broker.explicit.contains_key(d.broker_key) {
                source::STATIC_BROKER_CONFIG
            } else {
                source::DEFAULT_CONFIG
            };
            defaults.insert(d.name, (builtin, source));
        }
        TopicConfigs { defaults }
    }

    /// Check a topic config given at creation; the error names the key, as Kafka's does.
    pub fn validate(&self, name: &str, value: Option<&str>) -> Result<(), String> {
        let d = lookup(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
        let Some(value) = value else {
            return Err(format!(
                "Null value not supported for topic configs: {name}"
            ));
        };
        let bad = |why: &str| format!("Invalid value {value} for configuration {name}: {why}");
        match d.config_type {
            ConfigType::Boolean => {
                if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                    return Err(bad("Expected value to be either true or false"));
                }
            }
            ConfigType::Int => {
                value
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| bad("Not a number of type INT"))?;
            }
            ConfigType::Long => {
                value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| bad("Not a number of type LONG"))?;
            }
            ConfigType::Double => {
                value
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| bad("Not a number of type DOUBLE"))?;
            }
            ConfigType::String | ConfigType::List => {}
        }
        match name {
            "cleanup.policy" => {
                for p in value.split(',').map(str::trim) {
                    if p != "delete" && p != "compact" {
                        return Err(bad("String must be one of: compact, delete"));
                    }
                }
            }
            "message.timestamp.type" if value != "CreateTime" && value != "LogAppendTime" => {
                return Err(bad("String must be one of: CreateTime, LogAppendTime"));
            }
            "compression.type"
                if !["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]
                    .contains(&value) =>
            {
                return Err(bad(
                    "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer",
                ));
            }
            "segment.bytes" if value.trim().parse::<i64>().unwrap_or(0) < 14 => {
                return Err(bad("Value must be at least 14"));
            }
            "max.message.bytes" | "min.insync.replicas"
                if value.trim().parse::<i64>().unwrap_or(-1) < 0 =>
            {
                return Err(bad("Value must be at least 0"));
            }
            _ => {}
        }
        Ok(())
    }

    /// Every topic config with its effective value and source, in Kafka's order (by name).
    pub fn describe(&self, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        TOPIC_CONFIGS
            .iter()
            .map(|d| {
                let (value, source) = match overrides.get(d.name) {
                    Some(v) => (v.clone(), source::DYNAMIC_TOPIC_CONFIG),
                    None => self
                        .defaults
                        .get(d.name)
                        .cloned()
                        .unwrap_or((String::new(), source::DEFAULT_CONFIG)),
                };
                ConfigEntry {
                    name: d.name.to_string(),
                    value,
                    source,
                    config_type: d.config_type,
                }
            })
            .collect()
    }

    fn effective<'a>(
        &'a self,
        overrides: &'a BTreeMap<String, String>,
        name: &str,
    ) -> Option<&'a str> {
        overrides
            .get(name)
            .map(String::as_str)
            .or_else(|| self.defaults.get(name).map(|(v, _)| v.as_str()))
    }

    /// The log settings a topic's partitions run with.
    pub fn log_config(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let defaults = LogConfig::default();
        let num = |name: &str| {
            self.effective(overrides, name)
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        LogConfig {
            segment_bytes: num("segment.bytes")
                .map(|v| v.max(14) as u64)
                .unwrap_or(defaults.segment_bytes),
            segment_ms: num("segment.ms").unwrap_or(defaults.segment_ms),
            index_interval_bytes: num("index.interval.bytes")
                .map(|v| v.max(0) as usize)
                .unwrap_or(defaults.index_interval_bytes),
            max_message_bytes: num("max.message.bytes")
                .map(|v| v.max(0) as usize)
                .unwrap_or(defaults.max_message_bytes),
            timestamp_type: match self.effective(overrides, "message.timestamp.type") {
                Some("LogAppendTime") => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            },
        }
    }
}
