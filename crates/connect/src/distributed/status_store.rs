//! `KafkaStatusBackingStore`: connector and task states in the compacted status topic, key
//! `status-connector-<name>` / `status-task-<name>-<n>`, value
//! `{"state": ..., "trace": ..., "worker_id": ..., "generation": N}` (JSON without schemas, as
//! Kafka writes it). Each worker writes the states of the work it runs; every worker reads them
//! all to answer `GET /connectors/{name}/status`.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde_json::json;

use super::kafka_log::KafkaBasedLog;
use crate::error::Result;
use crate::worker::State;

/// One state record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEntry {
    pub state: State,
    pub trace: Option<String>,
    pub worker_id: String,
    pub generation: i32,
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Unassigned => "UNASSIGNED",
        State::Running => "RUNNING",
        State::Paused => "PAUSED",
        State::Failed => "FAILED",
        State::Restarting => "RESTARTING",
        State::Stopped => "STOPPED",
    }
}

fn parse_state(s: &str) -> Option<State> {
    Some(match s {
        "UNASSIGNED" => State::Unassigned,
        "RUNNING" => State::Running,
        "PAUSED" => State::Paused,
        "FAILED" => State::Failed,
        "RESTARTING" => State::Restarting,
        "STOPPED" => State::Stopped,
        _ => return None,
    })
}

impl StatusEntry {
    fn encode(&self) -> Vec<u8> {
        json!({
            "state": state_name(self.state),
            "trace": self.trace,
            "worker_id": self.worker_id,
            "generation": self.generation,
        })
        .to_string()
        .into_bytes()
    }

    fn decode(v: &[u8]) -> Option<StatusEntry> {
        let v: serde_json::Value = serde_json::from_slice(v).ok()?;
        Some(StatusEntry {
            state: parse_state(v.get("state")?.as_str()?)?,
            trace: v.get("trace").and_then(|t| t.as_str()).map(str::to_string),
            worker_id: v.get("worker_id")?.as_str()?.to_string(),
            generation: v.get("generation").and_then(|g| g.as_i64()).unwrap_or(0) as i32,
        })
    }
}

#[derive(Default)]
struct Statuses {
    connectors: BTreeMap<String, StatusEntry>,
    tasks: BTreeMap<(String, usize), StatusEntry>,
}

pub struct KafkaStatusBackingStore {
    log: KafkaBasedLog,
    data: Mutex<Statuses>,
}

impl KafkaStatusBackingStore {
    pub fn new(log: KafkaBasedLog) -> KafkaStatusBackingStore {
        KafkaStatusBackingStore {
            log,
            data: Mutex::new(Statuses::default()),
        }
    }

    pub fn read_to_end(&self) -> Result<()> {
        let mut records = Vec::new();
        self.log.read_to_end(|k, v, _, _| {
            records.push((k.to_string(), v.and_then(StatusEntry::decode)));
        })?;
        let mut data = self.data.lock();
        for (k, v) in records {
            if let Some(name) = k.strip_prefix("status-connector-") {
                match v {
                    Some(v) => data.connectors.insert(name.to_string(), v),
                    None => data.connectors.remove(name),
                };
            } else if let Some(rest) = k.strip_prefix("status-task-")
                && let Some((name, n)) = rest.rsplit_once('-')
                && let Ok(n) = n.parse::<usize>()
            {
                match v {
                    Some(v) => data.tasks.insert((name.to_string(), n), v),
                    None => data.tasks.remove(&(name.to_string(), n)),
                };
            }
        }
        Ok(())
    }

    pub fn put_connector(&self, name: &str, e: StatusEntry) -> Result<()> {
        self.log
            .send(&[(format!("status-connector-{name}"), Some(e.encode()))])?;
        self.data.lock().connectors.insert(name.to_string(), e);
        Ok(())
    }

    pub fn put_task(&self, name: &str, task: usize, e: StatusEntry) -> Result<()> {
        self.log
            .send(&[(format!("status-task-{name}-{task}"), Some(e.encode()))])?;
        self.data.lock().tasks.insert((name.to_string(), task), e);
        Ok(())
    }

    /// Tombstones for a deleted connector and its tasks.
    pub fn remove(&self, name: &str) -> Result<()> {
        let mut records = vec![(format!("status-connector-{name}"), None)];
        let tasks: Vec<usize> = {
            let data = self.data.lock();
            data.tasks
                .keys()
                .filter(|(c, _)| c == name)
                .map(|(_, t)| *t)
                .collect()
        };
        for t in tasks {
            records.push((format!("status-task-{name}-{t}"), None));
        }
        self.log.send(&records)?;
        let mut data = self.data.lock();
        data.connectors.remove(name);
        data.tasks.retain(|(c, _), _| c != name);
        Ok(())
    }

    pub fn connector(&self, name: &str) -> Option<StatusEntry> {
        self.data.lock().connectors.get(name).cloned()
    }

    pub fn task(&self, name: &str, task: usize) -> Option<StatusEntry> {
        self.data
            .lock()
            .tasks
            .get(&(name.to_string(), task))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json() {
        let e = StatusEntry {
            state: State::Failed,
            trace: Some("boom".into()),
            worker_id: "h:1".into(),
            generation: 3,
        };
        let b = e.encode();
        assert_eq!(
            String::from_utf8_lossy(&b),
            r#"{"generation":3,"state":"FAILED","trace":"boom","worker_id":"h:1"}"#
        );
        assert_eq!(StatusEntry::decode(&b), Some(e));
        assert_eq!(StatusEntry::decode(b"{}"), None);
    }
}
