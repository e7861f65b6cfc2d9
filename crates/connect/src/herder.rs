//! The standalone herder (`StandaloneHerder`): owns the connectors of one worker, their configs,
//! target states (STARTED / PAUSED / STOPPED) and tasks, and answers the REST API.
//!
//! As in Kafka's standalone mode, configs live in memory: connectors created over REST are gone
//! after a restart unless they are also given on the command line. Source offsets persist in the
//! offsets file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use crate::config_def::ConfigMap;
use crate::connector::{ConnectorPlugin, ConnectorType, Instance, Plugins};
use crate::connector_config::{ConfigInfos, validate_connector_config};
use crate::worker::{State, Status, TaskHandle, Worker};

/// A herder failure, mapped to an HTTP status by the REST layer.
#[derive(Debug, thiserror::Error)]
pub enum HerderError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

type HResult<T> = Result<T, HerderError>;

/// What a connector should be doing (`TargetState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    Started,
    Paused,
    Stopped,
}

/// `{connector, task}` (`ConnectorTaskId`).
#[derive(Clone, Debug, Serialize)]
pub struct ConnectorTaskId {
    pub connector: String,
    pub task: usize,
}

/// `GET /connectors/{name}` (`ConnectorInfo`).
#[derive(Clone, Debug, Serialize)]
pub struct ConnectorInfo {
    pub name: String,
    pub config: ConfigMap,
    pub tasks: Vec<ConnectorTaskId>,
    #[serde(rename = "type")]
    pub connector_type: ConnectorType,
}

/// A connector's or task's state in a status body.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectorState {
    pub state: State,
    pub worker_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// One task's state (`TaskState`).
#[derive(Clone, Debug, Serialize)]
pub struct TaskState {
    pub id: usize,
    pub state: State,
    pub worker_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// `GET /connectors/{name}/status` (`ConnectorStateInfo`).
#[derive(Clone, Debug, Serialize)]
pub struct ConnectorStateInfo {
    pub name: String,
    pub connector: ConnectorState,
    pub tasks: Vec<TaskState>,
    #[serde(rename = "type")]
    pub connector_type: ConnectorType,
}

/// `GET /connectors/{name}/tasks` entries (`TaskInfo`).
#[derive(Clone, Debug, Serialize)]
pub struct TaskInfo {
    pub id: ConnectorTaskId,
    pub config: ConfigMap,
}

struct Entry {
    config: ConfigMap,
    plugin: ConnectorPlugin,
    instance: Option<Instance>,
    target: TargetState,
    status: Status,
    task_configs: Vec<ConfigMap>,
    tasks: Vec<TaskHandle>,
}

/// The standalone herder.
pub struct StandaloneHerder {
    worker: Arc<Worker>,
    plugins: Plugins,
    connectors: Mutex<BTreeMap<String, Entry>>,
}

impl StandaloneHerder {
    pub fn new(worker: Arc<Worker>, plugins: Plugins) -> StandaloneHerder {
        StandaloneHerder {
            worker,
            plugins,
            connectors: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn worker_id(&self) -> &str {
        &self.worker.config.worker_id
    }

    pub fn plugins(&self) -> &Plugins {
        &self.plugins
    }

    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    fn graceful(&self) -> Duration {
        Duration::from_millis(self.worker.config.task_shutdown_graceful_timeout_ms)
    }

    /// Finds the plugin a config names, or a 400 listing what is available.
    pub fn plugin_for(&self, config: &ConfigMap) -> HResult<ConnectorPlugin> {
        let class = config
            .get("connector.class")
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| {
                HerderError::BadRequest(format!(
                    "Connector config {} contains no connector type",
                    java_map(config)
                ))
            })?;
        self.plugins
            .find(class)
            .copied()
            .ok_or_else(|| HerderError::BadRequest(self.plugins.not_found_message(class)))
    }

    /// Validates a config (`PUT /connector-plugins/{p}/config/validate`).
    pub fn validate(&self, config: &ConfigMap) -> HResult<ConfigInfos> {
        let plugin = self.plugin_for(config)?;
        Ok(validate_connector_config(&plugin, config))
    }

    /// Creates or replaces a connector (`putConnectorConfig`). Returns whether it was created.
    pub fn put_connector_config(
        &self,
        name: &str,
        mut config: ConfigMap,
        allow_replace: bool,
        initial: TargetState,
    ) -> HResult<(bool, ConnectorInfo)> {
        config
            .entry("name".to_string())
            .or_insert_with(|| name.to_string());
        let plugin = self.plugin_for(&config)?;
        let infos = validate_connector_config(&plugin, &config);
        if infos.error_count > 0 {
            let errors = infos.error_messages();
            return Err(HerderError::BadRequest(format!(
                "Connector configuration is invalid and contains the following {} error(s):\n{}\n\
                 You can also find the above list of errors at the endpoint \
                 `/connector-plugins/{{connectorType}}/config/validate`",
                errors.len(),
                errors.join("\n")
            )));
        }
        let mut map = self.connectors.lock();
        let created = match map.get_mut(name) {
            Some(existing) => {
                if !allow_replace {
                    return Err(HerderError::Conflict(format!(
                        "Connector {name} already exists"
                    )));
                }
                self.stop_connector(existing);
                existing.config = config;
                existing.plugin = plugin;
                false
            }
            None => {
                map.insert(
                    name.to_string(),
                    Entry {
                        config,
                        plugin,
                        instance: None,
                        target: initial,
                        status: Status {
                            state: State::Unassigned,
                            trace: None,
                        },
                        task_configs: Vec::new(),
                        tasks: Vec::new(),
                    },
                );
                true
            }
        };
        let Some(entry) = map.get_mut(name) else {
            return Err(HerderError::Internal(format!("Connector {name} vanished")));
        };
        self.start_connector(name, entry);
        tracing::info!(connector = name, created, "connector configured");
        Ok((created, info_of(name, entry)))
    }

    fn start_connector(&self, name: &str, e: &mut Entry) {
        if self.start_instance(name, e) {
            self.start_tasks(name, e);
        }
    }

    /// Starts the connector instance and computes task configs; false when there is nothing to run.
    fn start_instance(&self, name: &str, e: &mut Entry) -> bool {
        if e.target == TargetState::Stopped {
            e.status = Status {
                state: State::Stopped,
                trace: None,
            };
            e.task_configs.clear();
            return false;
        }
        let mut instance = e.plugin.instantiate();
        if let Err(err) = instance.as_connector_mut().start(&e.config) {
            tracing::error!(connector = name, error = %err, "connector failed to start");
            e.status = failed(&err.to_string());
            return false;
        }
        let max_tasks = e
            .config
            .get("tasks.max")
            .and_then(|t| t.trim().parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        match instance.as_connector().task_configs(max_tasks) {
            Ok(mut configs) => {
                let task_class = match &instance {
                    Instance::Source(c) => c.task_class(),
                    Instance::Sink(c) => c.task_class(),
                };
                configs.truncate(max_tasks);
                for c in &mut configs {
                    c.insert("task.class".to_string(), task_class.to_string());
                }
                e.task_configs = configs;
            }
            Err(err) => {
                e.status = failed(&err.to_string());
                let _ = instance.as_connector_mut().stop();
                return false;
            }
        }
        e.status = Status {
            state: if e.target == TargetState::Paused {
                State::Paused
            } else {
                State::Running
            },
            trace: None,
        };
        e.instance = Some(instance);
        true
    }

    fn start_tasks(&self, name: &str, e: &mut Entry) {
        if e.instance.is_none() {
            return;
        }
        let paused = e.target == TargetState::Paused;
        for (i, tc) in e.task_configs.iter().enumerate() {
            let handle = self
                .worker
                .start_task(name, i, e.plugin, tc.clone(), &e.config, paused);
            e.tasks.push(handle);
        }
    }

    fn start_task(&self, name: &str, e: &mut Entry, id: usize) -> Option<TaskHandle> {
        e.instance.as_ref()?;
        let tc = e.task_configs.get(id)?.clone();
        let paused = e.target == TargetState::Paused;
        Some(
            self.worker
                .start_task(name, id, e.plugin, tc, &e.config, paused),
        )
    }

    fn stop_tasks(&self, e: &mut Entry) {
        // Ask every task first so they wind down in parallel, then wait for each.
        for t in &e.tasks {
            t.request_stop();
        }
        let timeout = self.graceful();
        for mut t in e.tasks.drain(..) {
            t.stop(timeout);
        }
    }

    fn stop_connector(&self, e: &mut Entry) {
        self.stop_tasks(e);
        if let Some(mut inst) = e.instance.take()
            && let Err(err) = inst.as_connector_mut().stop()
        {
            tracing::warn!(error = %err, "connector stop failed");
        }
    }

    fn with_entry<T>(&self, name: &str, f: impl FnOnce(&mut Entry) -> T) -> HResult<T> {
        let mut map = self.connectors.lock();
        let e = map
            .get_mut(name)
            .ok_or_else(|| HerderError::NotFound(format!("Connector {name} not found")))?;
        Ok(f(e))
    }

    pub fn connectors(&self) -> Vec<String> {
        self.connectors.lock().keys().cloned().collect()
    }

    pub fn connector_info(&self, name: &str) -> HResult<ConnectorInfo> {
        self.with_entry(name, |e| info_of(name, e))
    }

    pub fn connector_config(&self, name: &str) -> HResult<ConfigMap> {
        self.with_entry(name, |e| e.config.clone())
    }

    pub fn status(&self, name: &str) -> HResult<ConnectorStateInfo> {
        let worker_id = self.worker_id().to_string();
        self.with_entry(name, |e| ConnectorStateInfo {
            name: name.to_string(),
            connector: ConnectorState {
                state: e.status.state,
                worker_id: worker_id.clone(),
                trace: e.status.trace.clone(),
            },
            tasks: e
                .tasks
                .iter()
                .map(|t| {
                    let s = t.control.status();
                    TaskState {
                        id: t.id,
                        state: s.state,
                        worker_id: worker_id.clone(),
                        trace: s.trace,
                    }
                })
                .collect(),
            connector_type: e.plugin.connector_type(),
        })
    }

    pub fn task_status(&self, name: &str, task: usize) -> HResult<TaskState> {
        let st = self.status(name)?;
        st.tasks
            .into_iter()
            .find(|t| t.id == task)
            .ok_or_else(|| HerderError::NotFound(format!("No status found for task {name}-{task}")))
    }

    pub fn task_configs(&self, name: &str) -> HResult<Vec<TaskInfo>> {
        self.with_entry(name, |e| {
            e.task_configs
                .iter()
                .enumerate()
                .map(|(i, c)| TaskInfo {
                    id: ConnectorTaskId {
                        connector: name.to_string(),
                        task: i,
                    },
                    config: c.clone(),
                })
                .collect()
        })
    }

    pub fn delete(&self, name: &str) -> HResult<()> {
        let mut map = self.connectors.lock();
        let mut e = map
            .remove(name)
            .ok_or_else(|| HerderError::NotFound(format!("Connector {name} not found")))?;
        self.stop_connector(&mut e);
        tracing::info!(connector = name, "connector deleted");
        Ok(())
    }

    pub fn pause(&self, name: &str) -> HResult<()> {
        self.with_entry(name, |e| {
            e.target = TargetState::Paused;
            if e.status.state == State::Running {
                e.status.state = State::Paused;
            }
            for t in &e.tasks {
                t.control.set_paused(true);
            }
        })
    }

    /// Resumes a paused or stopped connector.
    pub fn resume(&self, name: &str) -> HResult<()> {
        let mut map = self.connectors.lock();
        let e = map
            .get_mut(name)
            .ok_or_else(|| HerderError::NotFound(format!("Connector {name} not found")))?;
        let was = e.target;
        e.target = TargetState::Started;
        match was {
            TargetState::Stopped => self.start_connector(name, e),
            _ => {
                if e.status.state == State::Paused {
                    e.status.state = State::Running;
                }
                for t in &e.tasks {
                    t.control.set_paused(false);
                }
            }
        }
        Ok(())
    }

    /// Stops the connector and its tasks, keeping its config (KIP-875).
    pub fn stop(&self, name: &str) -> HResult<()> {
        let mut map = self.connectors.lock();
        let e = map
            .get_mut(name)
            .ok_or_else(|| HerderError::NotFound(format!("Connector {name} not found")))?;
        e.target = TargetState::Stopped;
        self.stop_connector(e);
        e.task_configs.clear();
        e.status = Status {
            state: State::Stopped,
            trace: None,
        };
        Ok(())
    }

    /// Restarts the connector and, as asked, its (failed) tasks (KIP-745).
    pub fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> HResult<()> {
        let mut map = self.connectors.lock();
        let e = map
            .get_mut(name)
            .ok_or_else(|| HerderError::NotFound(format!("Connector {name} not found")))?;
        let connector_failed = e.status.state == State::Failed;
        if !include_tasks {
            if only_failed && !connector_failed {
                return Ok(());
            }
            // The connector instance only; running tasks keep running unless their configs change.
            if let Some(mut inst) = e.instance.take() {
                let _ = inst.as_connector_mut().stop();
            }
            let old = std::mem::take(&mut e.task_configs);
            if self.start_instance(name, e) && e.task_configs != old {
                self.stop_tasks(e);
                self.start_tasks(name, e);
            }
            return Ok(());
        }
        if only_failed {
            let failed_ids: Vec<usize> = e
                .tasks
                .iter()
                .filter(|t| t.control.status().state == State::Failed)
                .map(|t| t.id)
                .collect();
            if connector_failed {
                self.stop_connector(e);
                self.start_connector(name, e);
                return Ok(());
            }
            for id in failed_ids {
                self.restart_task_locked(name, e, id);
            }
            return Ok(());
        }
        self.stop_connector(e);
        self.start_connector(name, e);
        Ok(())
    }

    pub fn restart_task(&self, name: &str, task: usize) -> HResult<()> {
        let mut map = self.connectors.lock();
        let e = map
            .get_mut(name)
            .ok_or_else(|| HerderError::NotFound(format!("Connector {name} not found")))?;
        if task >= e.task_configs.len() {
            return Err(HerderError::NotFound(format!(
                "Task {name}-{task} not found"
            )));
        }
        self.restart_task_locked(name, e, task);
        Ok(())
    }

    fn restart_task_locked(&self, name: &str, e: &mut Entry, id: usize) {
        if let Some(pos) = e.tasks.iter().position(|t| t.id == id) {
            let mut old = e.tasks.remove(pos);
            old.stop(self.graceful());
        }
        if let Some(h) = self.start_task(name, e, id) {
            e.tasks.push(h);
            e.tasks.sort_by_key(|t| t.id);
        }
    }

    /// The committed source offsets of a connector (`GET /connectors/{name}/offsets`).
    pub fn offsets(&self, name: &str) -> HResult<Vec<(serde_json::Value, serde_json::Value)>> {
        let kind = self.with_entry(name, |e| e.plugin.connector_type())?;
        if kind == ConnectorType::Sink {
            return Err(HerderError::BadRequest(format!(
                "Offsets of sink connector {name} are the committed offsets of its consumer group \
                 connect-{name}; this endpoint serves source connectors only for now"
            )));
        }
        Ok(self.worker.offsets.connector_offsets(name))
    }

    /// `PATCH` / `DELETE /connectors/{name}/offsets`: only while STOPPED (KIP-875).
    pub fn alter_offsets(
        &self,
        name: &str,
        changes: crate::herder_api::OffsetChanges,
    ) -> HResult<()> {
        let (kind, stopped) = self.with_entry(name, |e| {
            (
                e.plugin.connector_type(),
                e.target == TargetState::Stopped && e.tasks.is_empty(),
            )
        })?;
        crate::herder_api::modify_source_offsets(
            name,
            kind,
            stopped,
            self.worker.offsets.as_ref(),
            changes,
        )
    }

    /// Stops every connector (tasks commit their offsets first).
    pub fn shutdown(&self) {
        let mut map = self.connectors.lock();
        for (name, e) in map.iter_mut() {
            tracing::info!(connector = %name, "stopping connector");
            self.stop_connector(e);
        }
    }
}

fn failed(msg: &str) -> Status {
    Status {
        state: State::Failed,
        trace: Some(format!(
            "org.apache.kafka.connect.errors.ConnectException: {msg}"
        )),
    }
}

fn info_of(name: &str, e: &Entry) -> ConnectorInfo {
    ConnectorInfo {
        name: name.to_string(),
        config: e.config.clone(),
        tasks: (0..e.task_configs.len())
            .map(|task| ConnectorTaskId {
                connector: name.to_string(),
                task,
            })
            .collect(),
        connector_type: e.plugin.connector_type(),
    }
}

/// A config map printed as Java's `Map.toString` (`{a=b, c=d}`), as Kafka's messages show it.
fn java_map(m: &ConfigMap) -> String {
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Lets the REST layer build an `Arc` once.
pub type SharedHerder = Arc<StandaloneHerder>;
