//! The `Herder` interface the REST API talks to: what every mode (standalone, distributed) must
//! answer. It owns no state of its own; the modes implement it.

use crate::config_def::ConfigMap;
use crate::connector::{ConnectorType, Plugins, SourceOffset, SourcePartition};
use crate::connector_config::ConfigInfos;
use crate::herder::{
    ConnectorInfo, ConnectorStateInfo, HerderError, StandaloneHerder, TargetState, TaskInfo,
    TaskState,
};
use crate::offset_store::OffsetBackingStore;

pub type HResult<T> = Result<T, HerderError>;

/// Offsets to write for `PATCH /connectors/{name}/offsets` (`Some` offset sets it, `None` removes
/// it); `None` as a whole is `DELETE` (every partition of the connector is reset).
pub type OffsetChanges = Option<Vec<(SourcePartition, Option<SourceOffset>)>>;

/// KIP-875's rule and write, shared by both modes: only a STOPPED connector without tasks may have
/// its offsets changed (Kafka's message otherwise); sink connectors' offsets live in their
/// consumer group, which strom does not alter from here yet.
pub(crate) fn modify_source_offsets(
    name: &str,
    kind: ConnectorType,
    stopped: bool,
    store: &dyn OffsetBackingStore,
    changes: OffsetChanges,
) -> HResult<()> {
    if !stopped {
        return Err(HerderError::BadRequest(format!(
            "Connectors must be in the STOPPED state before their offsets can be modified. This \
             can be done for the specified connector by issuing a 'PUT' request to the \
             '/connectors/{name}/stop' endpoint"
        )));
    }
    if kind == ConnectorType::Sink {
        return Err(HerderError::BadRequest(format!(
            "Offsets of sink connector {name} are the committed offsets of its consumer group \
             connect-{name}; strom alters offsets of source connectors only for now"
        )));
    }
    let entries: Vec<(SourcePartition, Option<SourceOffset>)> = match changes {
        Some(c) => c,
        None => store
            .connector_offsets(name)
            .into_iter()
            .filter_map(|(p, _)| match p {
                serde_json::Value::Object(p) => Some((p, None)),
                _ => None,
            })
            .collect(),
    };
    store.write_offsets(name, &entries).map_err(|e| {
        HerderError::Internal(format!("Failed to write offsets of connector {name}: {e}"))
    })
}

/// Where a request that changes cluster state must be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaderRoute {
    /// This worker answers it (standalone, or the distributed leader).
    Local,
    /// Another worker leads the group: forward to its REST URL (`http://host:port/`).
    Forward(String),
    /// No leader is known (a rebalance is in progress): wait and ask again.
    Rebalancing,
}

/// Kafka's `Herder`: connector lifecycle and state, as the REST resources need it.
pub trait Herder: Send + Sync {
    fn worker_id(&self) -> &str;
    fn plugins(&self) -> &Plugins;
    fn connectors(&self) -> Vec<String>;
    fn connector_info(&self, name: &str) -> HResult<ConnectorInfo>;
    fn connector_config(&self, name: &str) -> HResult<ConfigMap>;
    fn status(&self, name: &str) -> HResult<ConnectorStateInfo>;
    fn task_status(&self, name: &str, task: usize) -> HResult<TaskState>;
    fn task_configs(&self, name: &str) -> HResult<Vec<TaskInfo>>;
    fn validate(&self, config: &ConfigMap) -> HResult<ConfigInfos>;
    /// Creates or replaces a connector; returns whether it was created.
    fn put_connector_config(
        &self,
        name: &str,
        config: ConfigMap,
        allow_replace: bool,
        initial: TargetState,
    ) -> HResult<(bool, ConnectorInfo)>;
    fn delete(&self, name: &str) -> HResult<()>;
    fn pause(&self, name: &str) -> HResult<()>;
    fn resume(&self, name: &str) -> HResult<()>;
    fn stop(&self, name: &str) -> HResult<()>;
    fn restart_connector(&self, name: &str, include_tasks: bool, only_failed: bool) -> HResult<()>;
    fn restart_task(&self, name: &str, task: usize) -> HResult<()>;
    fn offsets(&self, name: &str) -> HResult<Vec<(serde_json::Value, serde_json::Value)>>;
    /// `PATCH` / `DELETE /connectors/{name}/offsets` (KIP-875).
    fn alter_offsets(&self, name: &str, changes: OffsetChanges) -> HResult<()>;
    /// Whether startup is complete (`GET /health`); a distributed worker is ready once it joined.
    fn ready(&self) -> bool {
        true
    }
    /// Where requests that change cluster state go; standalone answers everything itself.
    fn leader_route(&self) -> LeaderRoute {
        LeaderRoute::Local
    }
}

impl Herder for StandaloneHerder {
    fn worker_id(&self) -> &str {
        StandaloneHerder::worker_id(self)
    }
    fn plugins(&self) -> &Plugins {
        StandaloneHerder::plugins(self)
    }
    fn connectors(&self) -> Vec<String> {
        StandaloneHerder::connectors(self)
    }
    fn connector_info(&self, name: &str) -> HResult<ConnectorInfo> {
        StandaloneHerder::connector_info(self, name)
    }
    fn connector_config(&self, name: &str) -> HResult<ConfigMap> {
        StandaloneHerder::connector_config(self, name)
    }
    fn status(&self, name: &str) -> HResult<ConnectorStateInfo> {
        StandaloneHerder::status(self, name)
    }
    fn task_status(&self, name: &str, task: usize) -> HResult<TaskState> {
        StandaloneHerder::task_status(self, name, task)
    }
    fn task_configs(&self, name: &str) -> HResult<Vec<TaskInfo>> {
        StandaloneHerder::task_configs(self, name)
    }
    fn validate(&self, config: &ConfigMap) -> HResult<ConfigInfos> {
        StandaloneHerder::validate(self, config)
    }
    fn put_connector_config(
        &self,
        name: &str,
        config: ConfigMap,
        allow_replace: bool,
        initial: TargetState,
    ) -> HResult<(bool, ConnectorInfo)> {
        StandaloneHerder::put_connector_config(self, name, config, allow_replace, initial)
    }
    fn delete(&self, name: &str) -> HResult<()> {
        StandaloneHerder::delete(self, name)
    }
    fn pause(&self, name: &str) -> HResult<()> {
        StandaloneHerder::pause(self, name)
    }
    fn resume(&self, name: &str) -> HResult<()> {
        StandaloneHerder::resume(self, name)
    }
    fn stop(&self, name: &str) -> HResult<()> {
        StandaloneHerder::stop(self, name)
    }
    fn restart_connector(&self, name: &str, include_tasks: bool, only_failed: bool) -> HResult<()> {
        StandaloneHerder::restart_connector(self, name, include_tasks, only_failed)
    }
    fn restart_task(&self, name: &str, task: usize) -> HResult<()> {
        StandaloneHerder::restart_task(self, name, task)
    }
    fn offsets(&self, name: &str) -> HResult<Vec<(serde_json::Value, serde_json::Value)>> {
        StandaloneHerder::offsets(self, name)
    }
    fn alter_offsets(&self, name: &str, changes: OffsetChanges) -> HResult<()> {
        StandaloneHerder::alter_offsets(self, name, changes)
    }
}
