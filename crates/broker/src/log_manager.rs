//! Log maintenance: the background retention task (every `log.retention.check.interval.ms`) and
//! the log cleaner (compacted topics, every `log.cleaner.backoff.ms` when idle), and applying
//! topic and dynamic broker config changes to the open logs (Kafka's `LogManager` and
//! `DynamicLogConfig`).

use crate::broker::Broker;
use crate::replica::Partition;
use crate::topic_config::{TopicConfigs, source};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use strom_meta::{MetaError, MetadataImage, TopicMeta};

/// Broker keys that may change at run time besides the topic defaults (topic_config.rs): they
/// are read again before every pass.
pub const DYNAMIC_LOG_MANAGER_KEYS: &[&str] = &[
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.threads",
];

/// The dynamic broker configs that apply to `node_id`: the cluster-wide defaults, overridden by
/// the node's own, with their sources.
pub fn dynamic_broker_configs(
    image: &MetadataImage,
    node_id: i32,
) -> BTreeMap<String, (String, i8)> {
    let mut out = BTreeMap::new();
    if let Some(defaults) = image.broker_configs.get("") {
        for (k, v) in defaults {
            out.insert(
                k.clone(),
                (v.clone(), source::DYNAMIC_DEFAULT_BROKER_CONFIG),
            );
        }
    }
    if let Some(own) = image.broker_configs.get(&node_id.to_string()) {
        for (k, v) in own {
            out.insert(k.clone(), (v.clone(), source::DYNAMIC_BROKER_CONFIG));
        }
    }
    out
}

fn now_ms() -> i64 {
    crate::handlers::now_ms()
}

impl Broker {
    /// Every hosted partition.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        let image = self.metadata.image();
        image
            .topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter_map(|p| self.replicas.get(&t.name, p.partition))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Replace a topic's config overrides: persisted in the metadata image, then applied to
    /// the topic's open logs at once.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, MetaError> {
        let topic = self.metadata.set_topic_configs(name, configs)?;
        self.apply_topic_log_config(&topic);
        Ok(topic)
    }

    fn apply_topic_log_config(&self, topic: &TopicMeta) {
        let config = self.topic_configs.log_config(&topic.configs);
        for p in &topic.partitions {
            if let Some(partition) = self.replicas.get(&topic.name, p.partition) {
                partition.log.set_config(config.clone());
            }
        }
    }

    /// Replace the dynamic configs of one broker resource ("" = every broker), then apply the
    /// new topic defaults to every open log.
    pub fn set_broker_configs(
        &self,
        resource: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetaError> {
        self.metadata.set_broker_configs(resource, configs)?;
        self.refresh_dynamic_configs();
        Ok(())
    }

    /// Load the dynamic broker configs from the metadata image into the topic defaults and
    /// re-apply every topic's log config.
    pub fn refresh_dynamic_configs(&self) {
        let image = self.metadata.image();
        self.topic_configs
            .set_dynamic(dynamic_broker_configs(&image, self.node_id()));
        for topic in image.topics.values() {
            self.apply_topic_log_config(topic);
        }
    }

    /// A broker setting's current value: dynamic if set, else the static config.
    fn log_manager_setting(&self, key: &str, static_value: u64) -> u64 {
        dynamic_broker_configs(&self.metadata.image(), self.node_id())
            .get(key)
            .and_then(|(v, _)| v.trim().parse::<u64>().ok())
            .unwrap_or(static_value)
    }

    /// One retention pass over every log; returns the segments deleted.
    pub fn run_retention(&self) -> usize {
        let now = now_ms();
        let mut deleted = 0;
        for p in self.all_partitions() {
            match p.log.delete_old_segments(now) {
                Ok(stats) => deleted += stats.segments_deleted,
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                }
            }
        }
        deleted
    }

    /// One cleaner pass over every compacted log; returns how many logs were cleaned.
    pub fn run_cleaner(&self, force: bool) -> usize {
        let now = now_ms();
        let threads = self
            .log_manager_setting(
                "log.cleaner.threads",
                self.config.log_cleaner_threads as u64,
            )
            .max(1);
        let buffer = self.log_manager_setting(
            "log.cleaner.dedupe.buffer.size",
            self.config.log_cleaner_dedupe_buffer_size as u64,
        ) / threads;
        let mut cleaned = 0;
        for p in self.all_partitions() {
            if !p.log.config().cleanup_compact {
                continue;
            }
            match p.log.clean(now, buffer as usize, force) {
                Ok(Some(_)) => cleaned += 1,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cleaning failed")
                }
            }
        }
        cleaned
    }
}

/// Start the retention task and (with `log.cleaner.enable`) the cleaner. Both run their passes
/// on the blocking pool: they read and write whole segments.
pub fn spawn(broker: &Arc<Broker>) {
    let b = broker.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(b.config.log_initial_task_delay_ms)).await;
        let period = Duration::from_millis(b.config.log_retention_check_interval_ms.max(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let b2 = b.clone();
            if tokio::task::spawn_blocking(move || b2.run_retention())
                .await
                .is_err()
            {
                tracing::error!("log retention pass panicked");
            }
        }
    });
    if !broker.config.log_cleaner_enable || broker.config.log_cleaner_threads == 0 {
        tracing::info!("log cleaner disabled (log.cleaner.enable)");
        return;
    }
    let b = broker.clone();
    tokio::spawn(async move {
        loop {
            let b2 = b.clone();
            let cleaned = match tokio::task::spawn_blocking(move || b2.run_cleaner(false)).await {
                Ok(n) => n,
                Err(_) => {
                    tracing::error!("log cleaner pass panicked");
                    0
                }
            };
            if cleaned == 0 {
                let backoff = b
                    .log_manager_setting("log.cleaner.backoff.ms", b.config.log_cleaner_backoff_ms);
                tokio::time::sleep(Duration::from_millis(backoff.max(10))).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
    });
}

/// Whether a broker key may be changed at run time.
pub fn is_dynamic_broker_key(key: &str) -> bool {
    DYNAMIC_LOG_MANAGER_KEYS.contains(&key) || TopicConfigs::validate_broker_key(key, "").is_some()
}

/// Checks a dynamic broker config update; the error names the key.
pub fn validate_dynamic_broker_key(key: &str, value: Option<&str>) -> Result<(), String> {
    let Some(value) = value else {
        return Err(format!("Null value not supported for broker config: {key}"));
    };
    if let Some(checked) = TopicConfigs::validate_broker_key(key, value) {
        return checked
            .map_err(|why| format!("Invalid value {value} for configuration {key}: {why}"));
    }
    if DYNAMIC_LOG_MANAGER_KEYS.contains(&key) {
        let min = match key {
            "log.cleaner.backoff.ms" => 0,
            "log.cleaner.threads" => 1,
            _ => 1024 * 1024,
        };
        return match value.trim().parse::<i64>() {
            Ok(n) if n >= min => Ok(()),
            Ok(_) => Err(format!(
                "Invalid value {value} for configuration {key}: Value must be at least {min}"
            )),
            Err(_) => Err(format!(
                "Invalid value {value} for configuration {key}: Not a number of type LONG"
            )),
        };
    }
    Err(format!(
        "Cannot update these configs dynamically: [{key}] (unknown or read-only broker config)"
    ))
}
