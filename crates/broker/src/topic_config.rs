//! Topic-level configs: Kafka's names, types and defaults (taken from the broker's config), how
//! they validate, and how they become a `strom_log::LogConfig`.

use crate::config::BrokerConfig;
use parking_lot::RwLock;
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
    pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
    pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
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
    def(
        "compression.gzip.level",
        "compression.gzip.level",
        ConfigType::Int,
    ),
    def(
        "compression.lz4.level",
        "compression.lz4.level",
        ConfigType::Int,
    ),
    def("compression.type", "compression.type", ConfigType::String),
    def(
        "compression.zstd.level",
        "compression.zstd.level",
        ConfigType::Int,
    ),
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
    /// Broker keys changed at run time (AlterConfigs on the broker resource): key -> (value,
    /// DYNAMIC_BROKER_CONFIG or DYNAMIC_DEFAULT_BROKER_CONFIG). They override `defaults`.
    dynamic: RwLock<BTreeMap<String, (String, i8)>>,
}

/// `log.retention.ms`, else `log.retention.minutes`, else `log.retention.hours` (Kafka's order).
fn broker_retention_ms(broker: &BrokerConfig) -> Option<String> {
    let get = |k: &str| {
        broker
            .explicit
            .get(k)
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    get("log.retention.ms")
        .or_else(|| get("log.retention.minutes").map(|m| m.saturating_mul(60_000)))
        .or_else(|| get("log.retention.hours").map(|h| h.saturating_mul(3_600_000)))
        .map(|v| v.to_string())
}

/// Kafka's validators of the topic configs with a numeric range (LogConfig's `atLeast` and
/// `between`), as (min, max).
fn numeric_range(name: &str) -> Option<(f64, f64)> {
    let max = i64::MAX as f64;
    Some(match name {
        "delete.retention.ms"
        | "file.delete.delay.ms"
        | "flush.ms"
        | "index.interval.bytes"
        | "max.message.bytes"
        | "message.timestamp.after.max.ms"
        | "message.timestamp.before.max.ms"
        | "min.compaction.lag.ms"
        | "segment.jitter.ms" => (0.0, max),
        "flush.messages" | "max.compaction.lag.ms" | "min.insync.replicas" | "segment.ms" => {
            (1.0, max)
        }
        "retention.ms" => (-1.0, max),
        "local.retention.bytes" | "local.retention.ms" => (-2.0, max),
        "min.cleanable.dirty.ratio" => (0.0, 1.0),
        // Kafka 4 (KIP-1030) raised the minimum from 14 bytes to 1 MiB.
        "segment.bytes" => (1_048_576.0, i32::MAX as f64),
        "segment.index.bytes" => (4.0, i32::MAX as f64),
        "compression.lz4.level" => (1.0, 17.0),
        "compression.zstd.level" => (-131_072.0, 22.0),
        _ => return None,
    })
}

fn fmt_bound(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e19 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The record batch codec id a `compression.type` value stores batches in; `None` for
/// `producer` (the producer's codec is kept) and for anything unknown (refused on the way in).
fn compression_codec(value: &str) -> Option<u8> {
    match value {
        "uncompressed" => Some(0),
        "gzip" => Some(1),
        "snappy" => Some(2),
        "lz4" => Some(3),
        "zstd" => Some(4),
        _ => None,
    }
}

impl TopicConfigs {
    pub fn new(broker: &BrokerConfig) -> TopicConfigs {
        let mut defaults = BTreeMap::new();
        for d in TOPIC_CONFIGS {
            let builtin = match d.name {
                "cleanup.policy" => "delete".to_string(),
                "compression.type" => "producer".to_string(),
                "compression.gzip.level" => "-1".to_string(),
                "compression.lz4.level" => "9".to_string(),
                "compression.zstd.level" => "3".to_string(),
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
                "retention.ms" => {
                    broker_retention_ms(broker).unwrap_or_else(|| "604800000".to_string())
                }
                "segment.bytes" => broker.log_segment_bytes.to_string(),
                "segment.index.bytes" => "10485760".to_string(),
                "segment.jitter.ms" => "0".to_string(),
                "segment.ms" => broker.log_roll_ms.to_string(),
                _ => String::new(),
            };
            // Keys with a typed field in BrokerConfig are resolved there; the rest take the
            // broker file's value as given (checked at start by `validate_broker_key`).
            let typed = matches!(
                d.name,
                "index.interval.bytes"
                    | "max.message.bytes"
                    | "message.timestamp.type"
                    | "segment.bytes"
                    | "segment.ms"
                    | "retention.ms"
            );
            let value = match broker.explicit.get(d.broker_key) {
                Some(v) if !typed => v.trim().to_string(),
                _ => builtin,
            };
            let explicit = broker.explicit.contains_key(d.broker_key)
                || (d.name == "retention.ms" && broker_retention_ms(broker).is_some())
                || (d.name == "segment.ms" && broker.explicit.contains_key("log.roll.hours"));
            let source = if explicit {
                source::STATIC_BROKER_CONFIG
            } else {
                source::DEFAULT_CONFIG
            };
            defaults.insert(d.name, (value, source));
        }
        TopicConfigs {
            defaults,
            dynamic: RwLock::new(BTreeMap::new()),
        }
    }

    /// Replaces the dynamic broker configs (broker key -> (value, source)).
    pub fn set_dynamic(&self, dynamic: BTreeMap<String, (String, i8)>) {
        *self.dynamic.write() = dynamic;
    }

    /// A topic config's default: a dynamic broker config, else the static broker config or
    /// Kafka's default. Returns (value, source, the broker key it came from).
    pub fn default_of(&self, name: &str) -> Option<(String, i8)> {
        let d = lookup(name)?;
        if let Some((v, src)) = self.dynamic.read().get(d.broker_key) {
            return Some((v.clone(), *src));
        }
        self.defaults.get(name).cloned()
    }

    /// Validates a broker key that backs a topic config (its topic config's rules apply), so a
    /// bad `log.retention.ms` in server.properties or a dynamic update names the key. `None`
    /// for keys that back no topic config; the error is the reason only.
    pub fn validate_broker_key(key: &str, value: &str) -> Option<Result<(), String>> {
        let d = TOPIC_CONFIGS.iter().find(|d| d.broker_key == key)?;
        Some(Self::check_value(d, value))
    }

    /// The type and range checks of one topic config's value; the error is the reason only.
    fn check_value(d: &TopicConfigDef, value: &str) -> Result<(), String> {
        let v = value.trim();
        match d.config_type {
            ConfigType::Boolean => {
                if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                    return Err("Expected value to be either true or false".into());
                }
            }
            ConfigType::Int => {
                v.parse::<i32>()
                    .map_err(|_| "Not a number of type INT".to_string())?;
            }
            ConfigType::Long => {
                v.parse::<i64>()
                    .map_err(|_| "Not a number of type LONG".to_string())?;
            }
            ConfigType::Double => {
                v.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| "Not a number of type DOUBLE".to_string())?;
            }
            ConfigType::String | ConfigType::List => {}
        }
        if let Some((min, max)) = numeric_range(d.name) {
            let n: f64 = v.parse().unwrap_or(f64::NAN);
            if n < min {
                return Err(format!("Value must be at least {}", fmt_bound(min)));
            }
            if n > max {
                return Err(format!("Value must be no more than {}", fmt_bound(max)));
            }
        }
        match d.name {
            "cleanup.policy" => {
                for p in v.split(',').map(str::trim) {
                    if p != "delete" && p != "compact" {
                        return Err("String must be one of: compact, delete".into());
                    }
                }
            }
            "message.timestamp.type" if v != "CreateTime" && v != "LogAppendTime" => {
                return Err("String must be one of: CreateTime, LogAppendTime".into());
            }
            "compression.type"
                if !["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"].contains(&v) =>
            {
                return Err(
                    "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer".into(),
                );
            }
            "compression.gzip.level"
                if !(v == "-1" || v.parse::<i32>().is_ok_and(|n| (1..=9).contains(&n))) =>
            {
                return Err("Value must be -1 or between 1 and 9".into());
            }
            _ => {}
        }
        Ok(())
    }

    /// Check a topic config given at creation; the error names the key, as Kafka's does.
    pub fn validate(&self, name: &str, value: Option<&str>) -> Result<(), String> {
        let d = lookup(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
        let Some(value) = value else {
            return Err(format!(
                "Null value not supported for topic configs: {name}"
            ));
        };
        Self::check_value(d, value)
            .map_err(|why| format!("Invalid value {value} for configuration {name}: {why}"))
    }

    /// Every topic config with its effective value and source, in Kafka's order (by name).
    pub fn describe(&self, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        TOPIC_CONFIGS
            .iter()
            .map(|d| {
                let (value, source) = match overrides.get(d.name) {
                    Some(v) => (v.clone(), source::DYNAMIC_TOPIC_CONFIG),
                    None => self
                        .default_of(d.name)
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

    fn effective(&self, overrides: &BTreeMap<String, String>, name: &str) -> Option<String> {
        overrides
            .get(name)
            .cloned()
            .or_else(|| self.default_of(name).map(|(v, _)| v))
    }

    /// `min.insync.replicas` for a topic: the ISR size acks=all produce requires.
    pub fn min_insync_replicas(&self, overrides: &BTreeMap<String, String>) -> usize {
        self.effective(overrides, "min.insync.replicas")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1)
            .max(1)
    }

    /// The log settings a topic's partitions run with.
    pub fn log_config(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let defaults = LogConfig::default();
        let policy: Vec<String> = self
            .effective(overrides, "cleanup.policy")
            .unwrap_or_else(|| "delete".into())
            .split(',')
            .map(|p| p.trim().to_string())
            .collect();
        let num = |name: &str| {
            self.effective(overrides, name)
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let compression = self
            .effective(overrides, "compression.type")
            .and_then(|v| compression_codec(v.trim()));
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
            timestamp_type: match self
                .effective(overrides, "message.timestamp.type")
                .as_deref()
            {
                Some("LogAppendTime") => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            },
            cleanup_delete: policy.iter().any(|p| p == "delete"),
            cleanup_compact: policy.iter().any(|p| p == "compact"),
            retention_ms: num("retention.ms").unwrap_or(defaults.retention_ms),
            retention_bytes: num("retention.bytes").unwrap_or(defaults.retention_bytes),
            delete_retention_ms: num("delete.retention.ms").unwrap_or(defaults.delete_retention_ms),
            min_compaction_lag_ms: num("min.compaction.lag.ms")
                .unwrap_or(defaults.min_compaction_lag_ms),
            max_compaction_lag_ms: num("max.compaction.lag.ms")
                .unwrap_or(defaults.max_compaction_lag_ms),
            min_cleanable_dirty_ratio: self
                .effective(overrides, "min.cleanable.dirty.ratio")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(defaults.min_cleanable_dirty_ratio),
            compression,
            compression_level: compression
                .and_then(|codec| match codec {
                    1 => Some("compression.gzip.level"),
                    3 => Some("compression.lz4.level"),
                    4 => Some("compression.zstd.level"),
                    _ => None,
                })
                .and_then(|key| self.effective(overrides, key))
                .and_then(|v| v.trim().parse::<i32>().ok())
                // gzip's -1 is zlib's default level.
                .filter(|&level| !(compression == Some(1) && level == -1)),
            timestamp_before_max_ms: num("message.timestamp.before.max.ms")
                .unwrap_or(defaults.timestamp_before_max_ms),
            timestamp_after_max_ms: num("message.timestamp.after.max.ms")
                .unwrap_or(defaults.timestamp_after_max_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> TopicConfigs {
        let broker = BrokerConfig::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .expect("broker config");
        TopicConfigs::new(&broker)
    }

    #[test]
    fn values_are_checked_against_kafkas_ranges() {
        let c = configs(&[]);
        c.validate("retention.ms", Some("-1")).expect("forever");
        c.validate("min.cleanable.dirty.ratio", Some("0.01"))
            .expect("ratio");
        for (k, v) in [
            ("retention.ms", "-2"),
            ("retention.ms", "soon"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("segment.bytes", "1000"),
            ("cleanup.policy", "compact,sometimes"),
            ("compression.gzip.level", "12"),
            ("max.compaction.lag.ms", "0"),
        ] {
            let err = c.validate(k, Some(v)).expect_err(k);
            assert!(err.contains(k), "{err}");
        }
        assert!(c.validate("no.such", Some("1")).is_err());
    }

    #[test]
    fn log_config_follows_overrides_static_and_dynamic_defaults() {
        let c = configs(&[
            ("log.retention.hours", "2"),
            ("log.cleanup.policy", "compact"),
        ]);
        let none = BTreeMap::new();
        let lc = c.log_config(&none);
        assert_eq!(lc.retention_ms, 7_200_000);
        assert!(lc.cleanup_compact && !lc.cleanup_delete);
        let described = c.describe(&none);
        let retention = described
            .iter()
            .find(|e| e.name == "retention.ms")
            .expect("retention.ms");
        assert_eq!(retention.source, source::STATIC_BROKER_CONFIG);

        c.set_dynamic(BTreeMap::from([(
            "log.retention.ms".to_string(),
            ("5000".to_string(), source::DYNAMIC_DEFAULT_BROKER_CONFIG),
        )]));
        assert_eq!(c.log_config(&none).retention_ms, 5_000);
        let overrides = BTreeMap::from([
            ("retention.ms".to_string(), "100".to_string()),
            ("cleanup.policy".to_string(), "compact,delete".to_string()),
            ("min.cleanable.dirty.ratio".to_string(), "0.2".to_string()),
        ]);
        let lc = c.log_config(&overrides);
        assert_eq!(lc.retention_ms, 100);
        assert!(lc.cleanup_compact && lc.cleanup_delete);
        assert!((lc.min_cleanable_dirty_ratio - 0.2).abs() < 1e-9);
        assert!(
            BrokerConfig::from_pairs(vec![("log.retention.bytes".into(), "x".into())]).is_err()
        );
    }

    #[test]
    fn compression_level_is_the_one_of_the_topic_codec() {
        let c = configs(&[]);
        let level = |pairs: &[(&str, &str)]| {
            let o = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let lc = c.log_config(&o);
            (lc.compression, lc.compression_level)
        };
        assert_eq!(level(&[]), (None, None));
        assert_eq!(level(&[("compression.type", "lz4")]), (Some(3), Some(9)));
        assert_eq!(level(&[("compression.type", "zstd")]), (Some(4), Some(3)));
        // gzip's default -1 means zlib's own default.
        assert_eq!(level(&[("compression.type", "gzip")]), (Some(1), None));
        assert_eq!(
            level(&[
                ("compression.type", "gzip"),
                ("compression.gzip.level", "1"),
                ("compression.zstd.level", "19"),
            ]),
            (Some(1), Some(1))
        );
        assert_eq!(
            level(&[
                ("compression.type", "zstd"),
                ("compression.zstd.level", "-5")
            ]),
            (Some(4), Some(-5))
        );
        assert_eq!(
            level(&[
                ("compression.type", "snappy"),
                ("compression.lz4.level", "1")
            ]),
            (Some(2), None)
        );
    }
}
