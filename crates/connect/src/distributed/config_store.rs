//! `KafkaConfigBackingStore`: connector configs, task configs, target states and restart requests
//! in the compacted config topic, with Kafka's keys and JSON values (schemas disabled):
//!
//! | key | value |
//! |---|---|
//! | `connector-<name>` | `{"properties": {...}}`, a tombstone deletes the connector |
//! | `task-<name>-<n>` | `{"properties": {...}}` (applies once committed) |
//! | `commit-<name>` | `{"tasks": N}`: the task configs written before it are the connector's N tasks |
//! | `target-state-<name>` | `{"state": "STARTED"/"PAUSED", "state.v2": "STARTED"/"PAUSED"/"STOPPED"}` |
//! | `restart-connector-<name>` | `{"include-tasks": bool, "only-failed": bool}` |
//!
//! Every worker reads the whole topic; its position (the config offset) travels in the group
//! protocol so no worker acts on an assignment computed from configs it has not read yet.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde_json::{Value as Json, json};

use super::kafka_log::KafkaBasedLog;
use crate::config_def::ConfigMap;
use crate::error::{ConnectError, Result};
use crate::herder::TargetState;

/// What every worker knows of the cluster's connectors (`ClusterConfigState`).
#[derive(Clone, Debug, Default)]
pub struct ClusterConfigState {
    /// The config topic's next offset after the last record read.
    pub offset: i64,
    pub connectors: BTreeMap<String, ConfigMap>,
    pub target_states: BTreeMap<String, TargetState>,
    /// Committed task configs, task 0 first.
    pub task_configs: BTreeMap<String, Vec<ConfigMap>>,
    /// Task configs written but not yet committed.
    deferred: BTreeMap<String, BTreeMap<usize, ConfigMap>>,
}

impl ClusterConfigState {
    pub fn target_state(&self, name: &str) -> TargetState {
        self.target_states
            .get(name)
            .copied()
            .unwrap_or(TargetState::Started)
    }

    pub fn task_count(&self, name: &str) -> usize {
        self.task_configs.get(name).map_or(0, Vec::len)
    }
}

/// A change read from the topic, for the herder to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigUpdate {
    /// Created or reconfigured.
    Connector(String),
    Removed(String),
    TargetState(String),
    /// New task configs were committed.
    Tasks(String),
    Restart {
        connector: String,
        include_tasks: bool,
        only_failed: bool,
    },
}

pub struct KafkaConfigBackingStore {
    log: KafkaBasedLog,
    state: Mutex<ClusterConfigState>,
    updates: Mutex<Vec<ConfigUpdate>>,
}

fn properties_value(config: &ConfigMap) -> Vec<u8> {
    json!({ "properties": config }).to_string().into_bytes()
}

fn parse_properties(key: &str, v: &Json) -> Option<ConfigMap> {
    let props = v.get("properties")?.as_object()?;
    let mut out = ConfigMap::new();
    for (k, val) in props {
        match val {
            Json::String(s) => {
                out.insert(k.clone(), s.clone());
            }
            Json::Null => {}
            other => {
                out.insert(k.clone(), other.to_string());
            }
        }
    }
    if out.is_empty() && !props.is_empty() {
        tracing::warn!(key, "config record has no string properties");
    }
    Some(out)
}

fn target_state_name(t: TargetState) -> &'static str {
    match t {
        TargetState::Started => "STARTED",
        TargetState::Paused => "PAUSED",
        TargetState::Stopped => "STOPPED",
    }
}

fn parse_target_state(v: &Json) -> Option<TargetState> {
    let s = v
        .get("state.v2")
        .or_else(|| v.get("state"))
        .and_then(Json::as_str)?;
    match s {
        "STARTED" => Some(TargetState::Started),
        "PAUSED" => Some(TargetState::Paused),
        "STOPPED" => Some(TargetState::Stopped),
        _ => None,
    }
}

/// `task-<name>-<n>`: the connector name may itself contain dashes, the task number cannot.
fn split_task_key(rest: &str) -> Option<(&str, usize)> {
    let (name, n) = rest.rsplit_once('-')?;
    Some((name, n.parse().ok()?))
}

impl ClusterConfigState {
    /// Applies one record; returns the change it makes, if any.
    fn apply(&mut self, key: &str, value: Option<&[u8]>) -> Option<ConfigUpdate> {
        let parsed: Option<Json> = match value {
            None => None,
            Some(b) => match serde_json::from_slice(b) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::error!(key, error = %e, "skipping a config record that is not JSON");
                    return None;
                }
            },
        };
        if let Some(name) = key.strip_prefix("connector-") {
            return match parsed {
                None => {
                    self.connectors.remove(name)?;
                    self.target_states.remove(name);
                    self.task_configs.remove(name);
                    self.deferred.remove(name);
                    Some(ConfigUpdate::Removed(name.to_string()))
                }
                Some(v) => {
                    let props = parse_properties(key, &v)?;
                    self.connectors.insert(name.to_string(), props);
                    Some(ConfigUpdate::Connector(name.to_string()))
                }
            };
        }
        if let Some(rest) = key.strip_prefix("task-") {
            let (name, n) = split_task_key(rest)?;
            let props = parse_properties(key, &parsed?)?;
            self.deferred
                .entry(name.to_string())
                .or_default()
                .insert(n, props);
            return None;
        }
        if let Some(name) = key.strip_prefix("commit-") {
            let n = parsed?.get("tasks")?.as_u64()? as usize;
            let mut deferred = self.deferred.remove(name).unwrap_or_default();
            let old = self.task_configs.remove(name).unwrap_or_default();
            let mut tasks = Vec::with_capacity(n);
            for i in 0..n {
                // A task config written in an earlier round stays valid if not replaced.
                match deferred.remove(&i).or_else(|| old.get(i).cloned()) {
                    Some(c) => tasks.push(c),
                    None => {
                        tracing::error!(
                            connector = name,
                            task = i,
                            "commit record names a task whose config was never written; \
                             ignoring the commit"
                        );
                        self.task_configs.insert(name.to_string(), old);
                        return None;
                    }
                }
            }
            self.task_configs.insert(name.to_string(), tasks);
            return Some(ConfigUpdate::Tasks(name.to_string()));
        }
        if let Some(name) = key.strip_prefix("target-state-") {
            match parsed.as_ref().and_then(parse_target_state) {
                Some(t) => {
                    self.target_states.insert(name.to_string(), t);
                }
                None => {
                    self.target_states.remove(name);
                }
            }
            return Some(ConfigUpdate::TargetState(name.to_string()));
        }
        if let Some(name) = key.strip_prefix("restart-connector-") {
            let v = parsed?;
            return Some(ConfigUpdate::Restart {
                connector: name.to_string(),
                include_tasks: v
                    .get("include-tasks")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
                only_failed: v
                    .get("only-failed")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
            });
        }
        // session-key, task fencing records and others are Kafka features strom does not use.
        None
    }
}

impl KafkaConfigBackingStore {
    pub fn new(log: KafkaBasedLog) -> Result<KafkaConfigBackingStore> {
        if log.partition_count() != 1 {
            return Err(ConnectError::config(format!(
                "Topic '{}' supplied via the 'config.storage.topic' property is required to have a \
                 single partition in order to guarantee consistency of connector configurations, \
                 but found {} partitions.",
                log.topic(),
                log.partition_count()
            )));
        }
        Ok(KafkaConfigBackingStore {
            log,
            state: Mutex::new(ClusterConfigState::default()),
            updates: Mutex::new(Vec::new()),
        })
    }

    pub fn snapshot(&self) -> ClusterConfigState {
        self.state.lock().clone()
    }

    pub fn offset(&self) -> i64 {
        self.state.lock().offset
    }

    /// Reads the topic to its end; the changes queue up for [`Self::take_updates`].
    pub fn read_to_end(&self) -> Result<i64> {
        let mut updates = Vec::new();
        let mut state = self.state.lock();
        let end = self.log.read_to_end(|k, v, _, offset| {
            if let Some(u) = state.apply(k, v) {
                updates.push(u);
            }
            state.offset = offset + 1;
        })?;
        state.offset = state.offset.max(end);
        let offset = state.offset;
        drop(state);
        self.updates.lock().extend(updates);
        Ok(offset)
    }

    pub fn take_updates(&self) -> Vec<ConfigUpdate> {
        std::mem::take(&mut *self.updates.lock())
    }

    /// A new connector's initial state goes first, so it never runs in the wrong state.
    pub fn put_connector_config(
        &self,
        name: &str,
        config: &ConfigMap,
        initial: Option<TargetState>,
    ) -> Result<()> {
        let mut records = Vec::new();
        if let Some(t) = initial {
            records.push(target_state_record(name, t));
        }
        records.push((format!("connector-{name}"), Some(properties_value(config))));
        self.log.send(&records)
    }

    pub fn remove_connector(&self, name: &str) -> Result<()> {
        self.log.send(&[
            (format!("connector-{name}"), None),
            (format!("target-state-{name}"), None),
        ])
    }

    pub fn put_target_state(&self, name: &str, state: TargetState) -> Result<()> {
        self.log.send(&[target_state_record(name, state)])
    }

    /// Writes task configs then the commit record that makes them the connector's tasks.
    pub fn put_task_configs(&self, name: &str, configs: &[ConfigMap]) -> Result<()> {
        let mut records: Vec<(String, Option<Vec<u8>>)> = configs
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("task-{name}-{i}"), Some(properties_value(c))))
            .collect();
        records.push((
            format!("commit-{name}"),
            Some(json!({ "tasks": configs.len() }).to_string().into_bytes()),
        ));
        self.log.send(&records)
    }

    pub fn put_restart_request(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<()> {
        self.log.send(&[(
            format!("restart-connector-{name}"),
            Some(
                json!({"include-tasks": include_tasks, "only-failed": only_failed})
                    .to_string()
                    .into_bytes(),
            ),
        )])
    }
}

fn target_state_record(name: &str, t: TargetState) -> (String, Option<Vec<u8>>) {
    // Workers that predate STOPPED read "state": they see PAUSED, as Kafka arranges.
    let v1 = if t == TargetState::Stopped {
        TargetState::Paused
    } else {
        t
    };
    (
        format!("target-state-{name}"),
        Some(
            json!({"state": target_state_name(v1), "state.v2": target_state_name(t)})
                .to_string()
                .into_bytes(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_kafka_records() {
        let mut s = ClusterConfigState::default();
        let u = s.apply(
            "connector-my-conn",
            Some(br#"{"properties":{"connector.class":"FileStreamSource","tasks.max":"2"}}"#),
        );
        assert_eq!(u, Some(ConfigUpdate::Connector("my-conn".into())));
        assert_eq!(s.task_count("my-conn"), 0);
        assert_eq!(
            s.apply("task-my-conn-0", Some(br#"{"properties":{"a":"0"}}"#)),
            None
        );
        assert_eq!(
            s.apply("task-my-conn-1", Some(br#"{"properties":{"a":"1"}}"#)),
            None
        );
        assert_eq!(
            s.task_count("my-conn"),
            0,
            "uncommitted task configs do not count"
        );
        assert_eq!(
            s.apply("commit-my-conn", Some(br#"{"tasks":2}"#)),
            Some(ConfigUpdate::Tasks("my-conn".into()))
        );
        assert_eq!(s.task_configs["my-conn"][1]["a"], "1");
        s.apply(
            "target-state-my-conn",
            Some(br#"{"state":"PAUSED","state.v2":"STOPPED"}"#),
        );
        assert_eq!(s.target_state("my-conn"), TargetState::Stopped);
        assert_eq!(
            s.apply("connector-my-conn", None),
            Some(ConfigUpdate::Removed("my-conn".into()))
        );
        assert!(s.task_configs.is_empty() && s.target_states.is_empty());
        assert_eq!(s.apply("connector-x", Some(b"not json")), None);
        assert_eq!(
            target_state_record("a", TargetState::Stopped).1.as_deref(),
            Some(&br#"{"state":"PAUSED","state.v2":"STOPPED"}"#[..])
        );
    }
}
