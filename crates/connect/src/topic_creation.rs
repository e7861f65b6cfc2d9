//! Topic creation by source connectors (KIP-158): with `topic.creation.enable=true` on the worker
//! (the default) and `topic.creation.default.replication.factor` / `.partitions` in the connector
//! config, the first record a source task sends to a topic creates it with those settings (and
//! any other `topic.creation.default.<topic config>`, e.g. `cleanup.policy`). An existing topic
//! is used as it is. Only the `default` group: `topic.creation.groups` is refused by name.
//! It owns the admin client it creates topics with and nothing else.

use std::collections::HashSet;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode as Code;

use crate::config_def::ConfigMap;
use crate::error::{ConnectError, Result};

const PREFIX: &str = "topic.creation.default.";

pub struct TopicCreation {
    partitions: i32,
    replication_factor: i32,
    topic_configs: Vec<(String, String)>,
    admin: ClientConfig,
    known: Mutex<HashSet<String>>,
}

fn setting(cc: &ConfigMap, key: &str) -> Result<Option<i32>> {
    let Some(v) = cc.get(key) else {
        return Ok(None);
    };
    match v.trim().parse::<i32>() {
        Ok(n) if n == -1 || n >= 1 => Ok(Some(n)),
        _ => Err(ConnectError::config(format!(
            "Invalid value {v} for configuration {key}: Number must be -1 (the broker's default) \
             or at least 1"
        ))),
    }
}

impl TopicCreation {
    /// `None` when topic creation is off for this connector (worker switch off, or the
    /// connector sets no `topic.creation.default.*`).
    pub fn from_config(
        worker: &ConfigMap,
        cc: &ConfigMap,
        admin: ClientConfig,
    ) -> Result<Option<TopicCreation>> {
        let enabled = worker
            .get("topic.creation.enable")
            .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"));
        if !enabled {
            return Ok(None);
        }
        if cc
            .get("topic.creation.groups")
            .is_some_and(|g| !g.trim().is_empty())
        {
            return Err(ConnectError::config(
                "Invalid value for configuration topic.creation.groups: strom supports only the \
                 default topic creation group",
            ));
        }
        let rf_key = format!("{PREFIX}replication.factor");
        let p_key = format!("{PREFIX}partitions");
        let (rf, partitions) = match (setting(cc, &rf_key)?, setting(cc, &p_key)?) {
            (None, None) => return Ok(None),
            (Some(rf), Some(p)) => (rf, p),
            (None, Some(_)) => {
                return Err(ConnectError::config(format!(
                    "Missing required configuration \"{rf_key}\" which has no default value."
                )));
            }
            (Some(_), None) => {
                return Err(ConnectError::config(format!(
                    "Missing required configuration \"{p_key}\" which has no default value."
                )));
            }
        };
        let topic_configs = cc
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?.to_string(), v.clone())))
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "replication.factor" | "partitions" | "include" | "exclude"
                )
            })
            .collect();
        Ok(Some(TopicCreation {
            partitions,
            replication_factor: rf,
            topic_configs,
            admin,
            known: Mutex::new(HashSet::new()),
        }))
    }

    /// Creates the topic unless this task already saw it; an existing topic is left alone.
    pub fn ensure(&self, topic: &str) -> Result<()> {
        if self.known.lock().contains(topic) {
            return Ok(());
        }
        let kafka = |what: String| ConnectError::Kafka(what);
        let admin: AdminClient<DefaultClientContext> = self
            .admin
            .create()
            .map_err(|e| kafka(format!("cannot create admin client: {e}")))?;
        let mut new = NewTopic::new(
            topic,
            self.partitions,
            TopicReplication::Fixed(self.replication_factor),
        );
        for (k, v) in &self.topic_configs {
            new = new.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        // Task threads are plain threads, so a small runtime of their own can drive the future.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| kafka(format!("cannot start a runtime for topic creation: {e}")))?;
        let results = rt
            .block_on(admin.create_topics([&new], &opts))
            .map_err(|e| kafka(format!("cannot create topic {topic}: {e}")))?;
        for r in results {
            match r {
                Ok(_) => tracing::info!(
                    topic,
                    partitions = self.partitions,
                    replication_factor = self.replication_factor,
                    "created source topic (KIP-158)"
                ),
                Err((_, Code::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(kafka(format!(
                        "cannot create topic {name} with {} partition(s) and replication factor \
                         {}: {code}",
                        self.partitions, self.replication_factor
                    )));
                }
            }
        }
        self.known.lock().insert(topic.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config_def::config_map as cfg;

    #[test]
    fn settings_and_errors() {
        let w = ConfigMap::new();
        let off = TopicCreation::from_config(&w, &cfg(&[]), ClientConfig::new()).expect("ok");
        assert!(off.is_none());
        let tc = TopicCreation::from_config(
            &w,
            &cfg(&[
                ("topic.creation.default.replication.factor", "-1"),
                ("topic.creation.default.partitions", "3"),
                ("topic.creation.default.cleanup.policy", "compact"),
            ]),
            ClientConfig::new(),
        )
        .expect("ok")
        .expect("on");
        assert_eq!((tc.partitions, tc.replication_factor), (3, -1));
        assert_eq!(
            tc.topic_configs,
            vec![("cleanup.policy".to_string(), "compact".to_string())]
        );
        let err = |w: &ConfigMap, p: &[(&str, &str)]| {
            TopicCreation::from_config(w, &cfg(p), ClientConfig::new())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            err(&w, &[("topic.creation.default.partitions", "3")])
                .contains("topic.creation.default.replication.factor")
        );
        assert!(
            err(
                &w,
                &[
                    ("topic.creation.default.partitions", "0"),
                    ("topic.creation.default.replication.factor", "1")
                ]
            )
            .contains("topic.creation.default.partitions")
        );
        let disabled = cfg(&[("topic.creation.enable", "false")]);
        assert!(
            TopicCreation::from_config(
                &disabled,
                &cfg(&[
                    ("topic.creation.default.partitions", "3"),
                    ("topic.creation.default.replication.factor", "1")
                ]),
                ClientConfig::new()
            )
            .expect("ok")
            .is_none()
        );
    }
}
