//! The distributed herder (`DistributedHerder`): one worker of a Connect cluster. It keeps the
//! cluster's configs from the config topic, takes part in the group (eager protocol: every
//! rebalance revokes all work, then each worker starts what the leader assigned it), runs the
//! connectors and tasks assigned to it, publishes their states to the status topic, and answers
//! the REST API. Only the leader writes connector configs and target states; a connector's owner
//! writes its task configs (Kafka routes those through the leader; strom's owner writes them
//! itself, and the leader rebalances when it reads the commit record).
//!
//! One herder thread runs the group protocol and reacts to config changes; REST calls run on
//! their own threads and share the local work under a lock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::config_store::{ClusterConfigState, ConfigUpdate, KafkaConfigBackingStore};
use super::membership::{JoinError, JoinResult, WorkerGroupMember};
use super::offset_store::KafkaOffsetBackingStore;
use super::protocol::{Assignment, CONFIG_MISMATCH, NO_ERROR, WorkerState};
use super::status_store::{KafkaStatusBackingStore, StatusEntry};
use crate::config_def::ConfigMap;
use crate::connector::{ConnectorPlugin, ConnectorType, Instance, Plugins};
use crate::connector_config::{ConfigInfos, validate_connector_config};
use crate::herder::{
    ConnectorInfo, ConnectorState, ConnectorStateInfo, ConnectorTaskId, HerderError, TargetState,
    TaskInfo, TaskState,
};
use crate::herder_api::{HResult, Herder, LeaderRoute};
use crate::offset_store::OffsetBackingStore;
use crate::rest_forward::http_request;
use crate::worker::{State, Status, TaskHandle, Worker};

/// What this worker knows of the group.
#[derive(Clone, Debug, Default)]
struct GroupView {
    generation: i32,
    rebalancing: bool,
    is_leader: bool,
    leader_url: Option<String>,
    assignment: Assignment,
    /// The leader's record of every connector it assigned, to notice new ones.
    leader_assigned: BTreeSet<String>,
}

struct LocalConnector {
    instance: Option<Instance>,
    status: Status,
}

#[derive(Default)]
struct LocalWork {
    connectors: BTreeMap<String, LocalConnector>,
    tasks: BTreeMap<(String, usize), TaskHandle>,
    /// The last state written to the status topic, per `connector` / `connector-task` key.
    published: BTreeMap<String, (State, Option<String>)>,
}

pub struct DistributedHerder {
    worker: Arc<Worker>,
    plugins: Plugins,
    config: Arc<KafkaConfigBackingStore>,
    offsets: Arc<KafkaOffsetBackingStore>,
    status: Arc<KafkaStatusBackingStore>,
    /// This worker's REST URL as others reach it (`http://host:port/`).
    url: String,
    group: Mutex<GroupView>,
    local: Mutex<LocalWork>,
    stop: AtomicBool,
}

fn not_found(name: &str) -> HerderError {
    HerderError::NotFound(format!("Connector {name} not found"))
}

fn failed(msg: &str) -> Status {
    Status {
        state: State::Failed,
        trace: Some(format!(
            "org.apache.kafka.connect.errors.ConnectException: {msg}"
        )),
    }
}

impl DistributedHerder {
    pub fn new(
        worker: Arc<Worker>,
        plugins: Plugins,
        config: Arc<KafkaConfigBackingStore>,
        offsets: Arc<KafkaOffsetBackingStore>,
        status: Arc<KafkaStatusBackingStore>,
    ) -> DistributedHerder {
        let url = format!("http://{}/", worker.config.worker_id);
        DistributedHerder {
            worker,
            plugins,
            config,
            offsets,
            status,
            url,
            group: Mutex::new(GroupView {
                rebalancing: true,
                ..GroupView::default()
            }),
            local: Mutex::new(LocalWork::default()),
            stop: AtomicBool::new(false),
        }
    }

    /// Asks the herder thread to leave the group and stop every connector and task.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn graceful(&self) -> Duration {
        Duration::from_millis(self.worker.config.task_shutdown_graceful_timeout_ms)
    }

    fn plugin_for(&self, config: &ConfigMap) -> HResult<ConnectorPlugin> {
        let class = config
            .get("connector.class")
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| {
                HerderError::BadRequest(
                    "Connector config contains no connector type (connector.class)".to_string(),
                )
            })?;
        self.plugins
            .find(class)
            .copied()
            .ok_or_else(|| HerderError::BadRequest(self.plugins.not_found_message(class)))
    }

    // ---------------------------------------------------------------- the herder thread

    /// The herder thread: group membership, config changes, status publishing.
    pub fn run(self: Arc<Self>, mut member: WorkerGroupMember) {
        while !self.stop.load(Ordering::SeqCst) {
            if let Err(e) = self.config.read_to_end() {
                tracing::warn!(error = %e, "cannot read the config topic");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            if let Err(e) = self.status.read_to_end() {
                tracing::warn!(error = %e, "cannot read the status topic");
            }
            if member.rejoin_needed() {
                self.rebalance(&mut member);
                continue;
            }
            for u in self.config.take_updates() {
                self.handle_update(u, &member);
            }
            self.publish_statuses();
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::info!("stopping: committing offsets, stopping tasks, leaving the group");
        self.revoke_all();
        member.leave();
    }

    /// Eager rebalance: give everything up, join, and start what the leader assigns.
    fn rebalance(&self, member: &mut WorkerGroupMember) {
        self.group.lock().rebalancing = true;
        self.revoke_all();
        while !self.stop.load(Ordering::SeqCst) {
            if let Err(e) = self.config.read_to_end() {
                tracing::warn!(error = %e, "cannot read the config topic before joining");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            let me = WorkerState {
                url: self.url.clone(),
                config_offset: self.config.offset(),
            };
            let join = match member.join(&me) {
                Ok(j) => j,
                Err(JoinError::Retry(why)) => {
                    tracing::info!(%why, "joining the Connect group again");
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                Err(JoinError::Fatal(e)) => {
                    tracing::warn!(error = %e, "cannot join the Connect group; retrying");
                    std::thread::sleep(Duration::from_secs(2));
                    continue;
                }
            };
            let assignments = if join.is_leader() {
                self.assign(&join)
            } else {
                Vec::new()
            };
            let a = match member.sync(&join, assignments) {
                Ok(a) => a,
                Err(JoinError::Retry(why)) => {
                    tracing::info!(%why, "rebalance interrupted; joining again");
                    continue;
                }
                Err(JoinError::Fatal(e)) => {
                    tracing::warn!(error = %e, "SyncGroup failed; joining again");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            if a.error == CONFIG_MISMATCH {
                tracing::info!(
                    "the leader had not read the config topic as far as a member; rejoining"
                );
                continue;
            }
            // Never run work from an assignment computed at a config this worker has not read.
            if self.config.offset() < a.config_offset {
                if let Err(e) = self.config.read_to_end() {
                    tracing::warn!(error = %e, "cannot read the config topic");
                }
                if self.config.offset() < a.config_offset {
                    tracing::warn!(
                        mine = self.config.offset(),
                        assignment = a.config_offset,
                        "config topic behind the assignment; rejoining"
                    );
                    member.request_rejoin();
                    return;
                }
            }
            tracing::info!(
                generation = join.generation,
                leader = %a.leader,
                connectors = ?a.connectors,
                tasks = ?a.tasks,
                "joined the Connect group"
            );
            // What changed before the assignment is already in the snapshot it starts from.
            let _ = self.config.take_updates();
            {
                let mut g = self.group.lock();
                g.generation = join.generation;
                g.is_leader = join.is_leader();
                g.leader_url = Some(a.leader_url.clone());
                g.assignment = a.clone();
                g.rebalancing = false;
            }
            self.start_assigned(&a);
            return;
        }
    }

    /// The leader's eager assignment (`EagerAssignor`): connectors, then tasks, round-robin over
    /// the members sorted by id.
    fn assign(&self, join: &JoinResult) -> Vec<(String, Assignment)> {
        if let Err(e) = self.config.read_to_end() {
            tracing::warn!(error = %e, "leader cannot read the config topic");
        }
        let snapshot = self.config.snapshot();
        let mut members: Vec<&String> = join.members.iter().map(|(m, _)| m).collect();
        members.sort();
        let max_offset = join
            .members
            .iter()
            .map(|(_, s)| s.config_offset)
            .max()
            .unwrap_or(0);
        let base = Assignment {
            error: NO_ERROR,
            leader: join.member_id.clone(),
            leader_url: self.url.clone(),
            config_offset: snapshot.offset,
            ..Assignment::default()
        };
        if snapshot.offset < max_offset {
            return members
                .into_iter()
                .map(|m| {
                    (
                        m.clone(),
                        Assignment {
                            error: CONFIG_MISMATCH,
                            ..base.clone()
                        },
                    )
                })
                .collect();
        }
        let mut out: BTreeMap<String, Assignment> = members
            .iter()
            .map(|m| ((*m).clone(), base.clone()))
            .collect();
        if members.is_empty() {
            return Vec::new();
        }
        let mut next = members.iter().cycle();
        for name in snapshot.connectors.keys() {
            if let Some(m) = next.next()
                && let Some(a) = out.get_mut(*m)
            {
                a.connectors.push(name.clone());
            }
        }
        for name in snapshot.connectors.keys() {
            for t in 0..snapshot.task_count(name) {
                if let Some(m) = next.next()
                    && let Some(a) = out.get_mut(*m)
                {
                    a.tasks.push((name.clone(), t));
                }
            }
        }
        self.group.lock().leader_assigned = snapshot.connectors.keys().cloned().collect();
        out.into_iter().collect()
    }

    fn start_assigned(&self, a: &Assignment) {
        let snapshot = self.config.snapshot();
        for name in &a.connectors {
            self.start_connector(name, &snapshot);
        }
        for (name, t) in &a.tasks {
            self.start_task(name, *t, &snapshot);
        }
        self.publish_statuses();
    }

    /// Starts an assigned connector, and writes its task configs when they changed.
    fn start_connector(&self, name: &str, snapshot: &ClusterConfigState) {
        let Some(config) = snapshot.connectors.get(name) else {
            return;
        };
        let target = snapshot.target_state(name);
        let mut lc = LocalConnector {
            instance: None,
            status: Status {
                state: State::Unassigned,
                trace: None,
            },
        };
        if target == TargetState::Stopped {
            lc.status.state = State::Stopped;
            self.local.lock().connectors.insert(name.to_string(), lc);
            return;
        }
        let plugin = match self.plugin_for(config) {
            Ok(p) => p,
            Err(e) => {
                lc.status = failed(&e.to_string());
                self.local.lock().connectors.insert(name.to_string(), lc);
                return;
            }
        };
        let mut instance = plugin.instantiate();
        if let Err(e) = instance.as_connector_mut().start(config) {
            tracing::error!(connector = name, error = %e, "connector failed to start");
            lc.status = failed(&e.to_string());
            self.local.lock().connectors.insert(name.to_string(), lc);
            return;
        }
        let max_tasks = config
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
                let current = snapshot.task_configs.get(name);
                if current != Some(&configs) {
                    tracing::info!(
                        connector = name,
                        tasks = configs.len(),
                        "writing task configs"
                    );
                    if let Err(e) = self.config.put_task_configs(name, &configs) {
                        lc.status = failed(&format!("cannot write task configs: {e}"));
                    }
                }
            }
            Err(e) => {
                lc.status = failed(&e.to_string());
                let _ = instance.as_connector_mut().stop();
                self.local.lock().connectors.insert(name.to_string(), lc);
                return;
            }
        }
        if lc.status.state != State::Failed {
            lc.status.state = if target == TargetState::Paused {
                State::Paused
            } else {
                State::Running
            };
        }
        lc.instance = Some(instance);
        self.local.lock().connectors.insert(name.to_string(), lc);
    }

    fn start_task(&self, name: &str, id: usize, snapshot: &ClusterConfigState) {
        let (Some(cc), Some(tc)) = (
            snapshot.connectors.get(name),
            snapshot.task_configs.get(name).and_then(|t| t.get(id)),
        ) else {
            return;
        };
        let target = snapshot.target_state(name);
        if target == TargetState::Stopped {
            return;
        }
        let plugin = match self.plugin_for(cc) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(connector = name, task = id, error = %e, "cannot start task");
                return;
            }
        };
        let paused = target == TargetState::Paused;
        let handle = self
            .worker
            .start_task(name, id, plugin, tc.clone(), cc, paused);
        let old = self
            .local
            .lock()
            .tasks
            .insert((name.to_string(), id), handle);
        if let Some(mut old) = old {
            old.stop(self.graceful());
        }
    }

    fn stop_task(&self, name: &str, id: usize) {
        let handle = self.local.lock().tasks.remove(&(name.to_string(), id));
        if let Some(mut h) = handle {
            h.stop(self.graceful());
            self.publish(
                &format!("{name}-{id}"),
                Some((name, id)),
                State::Unassigned,
                None,
            );
        }
    }

    fn stop_connector_instance(&self, name: &str) -> Option<LocalConnector> {
        let mut lc = self.local.lock().connectors.remove(name)?;
        if let Some(mut inst) = lc.instance.take()
            && let Err(e) = inst.as_connector_mut().stop()
        {
            tracing::warn!(connector = name, error = %e, "connector stop failed");
        }
        Some(lc)
    }

    /// Stops every connector and task here (eager rebalance, shutdown).
    fn revoke_all(&self) {
        let (tasks, connectors) = {
            let mut l = self.local.lock();
            let tasks: Vec<((String, usize), TaskHandle)> =
                std::mem::take(&mut l.tasks).into_iter().collect();
            let connectors: Vec<String> = l.connectors.keys().cloned().collect();
            (tasks, connectors)
        };
        for (_, h) in &tasks {
            h.request_stop();
        }
        for ((name, id), mut h) in tasks {
            h.stop(self.graceful());
            self.publish(
                &format!("{name}-{id}"),
                Some((&name, id)),
                State::Unassigned,
                None,
            );
        }
        for name in connectors {
            if self.stop_connector_instance(&name).is_some() {
                self.publish(&name, None, State::Unassigned, None);
            }
        }
    }

    fn handle_update(&self, u: ConfigUpdate, member: &WorkerGroupMember) {
        let (is_leader, assignment, leader_assigned) = {
            let g = self.group.lock();
            (g.is_leader, g.assignment.clone(), g.leader_assigned.clone())
        };
        let owns = |name: &str| assignment.connectors.iter().any(|c| c == name);
        match u {
            ConfigUpdate::Connector(name) => {
                if is_leader && !leader_assigned.contains(&name) {
                    tracing::info!(connector = %name, "new connector: rebalancing");
                    member.request_rejoin();
                } else if owns(&name) {
                    tracing::info!(connector = %name, "connector reconfigured: restarting it");
                    self.stop_connector_instance(&name);
                    self.start_connector(&name, &self.config.snapshot());
                }
            }
            ConfigUpdate::Removed(name) => {
                let mine: Vec<usize> = assignment
                    .tasks
                    .iter()
                    .filter(|(c, _)| *c == name)
                    .map(|(_, t)| *t)
                    .collect();
                for t in &mine {
                    self.stop_task(&name, *t);
                }
                if owns(&name) {
                    self.stop_connector_instance(&name);
                    if let Err(e) = self.status.remove(&name) {
                        tracing::warn!(connector = %name, error = %e, "cannot remove statuses");
                    }
                    let mut l = self.local.lock();
                    l.published
                        .retain(|k, _| k != &name && !k.starts_with(&format!("{name}-")));
                }
                if is_leader {
                    tracing::info!(connector = %name, "connector deleted: rebalancing");
                    member.request_rejoin();
                }
            }
            ConfigUpdate::TargetState(name) => {
                let snapshot = self.config.snapshot();
                let target = snapshot.target_state(&name);
                {
                    let l = self.local.lock();
                    for ((c, _), h) in l.tasks.iter() {
                        if *c == name {
                            h.control.set_paused(target == TargetState::Paused);
                        }
                    }
                }
                if owns(&name) {
                    let running = self
                        .local
                        .lock()
                        .connectors
                        .get(&name)
                        .is_some_and(|c| c.instance.is_some());
                    match target {
                        TargetState::Stopped => {
                            self.stop_connector_instance(&name);
                            self.local.lock().connectors.insert(
                                name.clone(),
                                LocalConnector {
                                    instance: None,
                                    status: Status {
                                        state: State::Stopped,
                                        trace: None,
                                    },
                                },
                            );
                        }
                        _ if !running => {
                            self.stop_connector_instance(&name);
                            self.start_connector(&name, &snapshot);
                        }
                        t => {
                            if let Some(c) = self.local.lock().connectors.get_mut(&name)
                                && c.status.state != State::Failed
                            {
                                c.status.state = if t == TargetState::Paused {
                                    State::Paused
                                } else {
                                    State::Running
                                };
                            }
                        }
                    }
                }
            }
            ConfigUpdate::Tasks(name) => {
                if is_leader {
                    tracing::info!(connector = %name, "task configs committed: rebalancing");
                    member.request_rejoin();
                }
            }
            ConfigUpdate::Restart {
                connector,
                include_tasks,
                only_failed,
            } => self.handle_restart(&connector, include_tasks, only_failed, &assignment),
        }
    }

    fn handle_restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
        assignment: &Assignment,
    ) {
        let snapshot = self.config.snapshot();
        if assignment.connectors.iter().any(|c| c == name) {
            let failed_now = self
                .local
                .lock()
                .connectors
                .get(name)
                .is_some_and(|c| c.status.state == State::Failed);
            if !only_failed || failed_now {
                tracing::info!(connector = name, "restarting connector");
                self.publish(name, None, State::Restarting, None);
                self.stop_connector_instance(name);
                self.start_connector(name, &snapshot);
            }
        }
        if include_tasks {
            for (c, t) in &assignment.tasks {
                if c != name {
                    continue;
                }
                let failed_now = self
                    .local
                    .lock()
                    .tasks
                    .get(&(c.clone(), *t))
                    .is_some_and(|h| h.control.status().state == State::Failed);
                if !only_failed || failed_now {
                    tracing::info!(connector = name, task = t, "restarting task");
                    self.stop_task(c, *t);
                    self.start_task(c, *t, &snapshot);
                }
            }
        }
        self.publish_statuses();
    }

    /// Writes a state to the status topic unless it is already the one written.
    fn publish(&self, key: &str, task: Option<(&str, usize)>, state: State, trace: Option<String>) {
        {
            let l = self.local.lock();
            if l.published.get(key) == Some(&(state, trace.clone())) {
                return;
            }
        }
        let entry = StatusEntry {
            state,
            trace: trace.clone(),
            worker_id: self.worker.config.worker_id.clone(),
            generation: self.group.lock().generation,
        };
        let r = match task {
            Some((c, t)) => self.status.put_task(c, t, entry),
            None => self.status.put_connector(key, entry),
        };
        match r {
            Ok(()) => {
                self.local
                    .lock()
                    .published
                    .insert(key.to_string(), (state, trace));
            }
            Err(e) => tracing::warn!(key, error = %e, "cannot write a status"),
        }
    }

    fn publish_statuses(&self) {
        let (connectors, tasks) = {
            let l = self.local.lock();
            let c: Vec<(String, Status)> = l
                .connectors
                .iter()
                .map(|(n, c)| (n.clone(), c.status.clone()))
                .collect();
            let t: Vec<((String, usize), Status)> = l
                .tasks
                .iter()
                .map(|(k, h)| (k.clone(), h.control.status()))
                .collect();
            (c, t)
        };
        for (name, s) in connectors {
            self.publish(&name, None, s.state, s.trace);
        }
        for ((name, id), s) in tasks {
            // A task that has not begun yet is about to run: show it as such once it does.
            if s.state == State::Unassigned {
                continue;
            }
            self.publish(&format!("{name}-{id}"), Some((&name, id)), s.state, s.trace);
        }
    }

    // ---------------------------------------------------------------- REST side

    /// Config writes happen on the leader only.
    fn require_leader(&self) -> HResult<()> {
        let g = self.group.lock();
        if g.rebalancing {
            return Err(HerderError::Conflict(
                "Cannot complete request momentarily due to a worker rebalance in progress"
                    .to_string(),
            ));
        }
        if !g.is_leader {
            return Err(HerderError::Conflict(format!(
                "Cannot complete request because this worker is not the leader; the leader is at {}",
                g.leader_url.as_deref().unwrap_or("(unknown)")
            )));
        }
        Ok(())
    }

    fn refreshed(&self) -> HResult<ClusterConfigState> {
        self.config
            .read_to_end()
            .map_err(|e| HerderError::Internal(format!("cannot read the config topic: {e}")))?;
        Ok(self.config.snapshot())
    }

    fn internal(e: crate::error::ConnectError) -> HerderError {
        HerderError::Internal(e.to_string())
    }

    fn info(&self, name: &str, s: &ClusterConfigState) -> HResult<ConnectorInfo> {
        let config = s.connectors.get(name).ok_or_else(|| not_found(name))?;
        let connector_type = self
            .plugin_for(config)
            .map(|p| p.connector_type())
            .unwrap_or(ConnectorType::Source);
        Ok(ConnectorInfo {
            name: name.to_string(),
            config: config.clone(),
            tasks: (0..s.task_count(name))
                .map(|task| ConnectorTaskId {
                    connector: name.to_string(),
                    task,
                })
                .collect(),
            connector_type,
        })
    }
}

impl Herder for DistributedHerder {
    fn worker_id(&self) -> &str {
        &self.worker.config.worker_id
    }

    fn plugins(&self) -> &Plugins {
        &self.plugins
    }

    fn connectors(&self) -> Vec<String> {
        self.config.snapshot().connectors.keys().cloned().collect()
    }

    fn connector_info(&self, name: &str) -> HResult<ConnectorInfo> {
        self.info(name, &self.config.snapshot())
    }

    fn connector_config(&self, name: &str) -> HResult<ConfigMap> {
        self.config
            .snapshot()
            .connectors
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))
    }

    fn status(&self, name: &str) -> HResult<ConnectorStateInfo> {
        let s = self.config.snapshot();
        let info = self.info(name, &s)?;
        let c = self.status.connector(name).ok_or_else(|| {
            HerderError::NotFound(format!("No status found for connector {name}"))
        })?;
        let tasks = (0..s.task_count(name))
            .filter_map(|t| {
                let e = self.status.task(name, t)?;
                Some(TaskState {
                    id: t,
                    state: e.state,
                    worker_id: e.worker_id,
                    trace: e.trace,
                })
            })
            .collect();
        Ok(ConnectorStateInfo {
            name: name.to_string(),
            connector: ConnectorState {
                state: c.state,
                worker_id: c.worker_id,
                trace: c.trace,
            },
            tasks,
            connector_type: info.connector_type,
        })
    }

    fn task_status(&self, name: &str, task: usize) -> HResult<TaskState> {
        if !self.config.snapshot().connectors.contains_key(name) {
            return Err(not_found(name));
        }
        let e = self.status.task(name, task).ok_or_else(|| {
            HerderError::NotFound(format!("No status found for task {name}-{task}"))
        })?;
        Ok(TaskState {
            id: task,
            state: e.state,
            worker_id: e.worker_id,
            trace: e.trace,
        })
    }

    fn task_configs(&self, name: &str) -> HResult<Vec<TaskInfo>> {
        let s = self.config.snapshot();
        if !s.connectors.contains_key(name) {
            return Err(not_found(name));
        }
        Ok(s.task_configs
            .get(name)
            .map(|tasks| {
                tasks
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
            .unwrap_or_default())
    }

    fn validate(&self, config: &ConfigMap) -> HResult<ConfigInfos> {
        let plugin = self.plugin_for(config)?;
        Ok(validate_connector_config(&plugin, config))
    }

    fn put_connector_config(
        &self,
        name: &str,
        mut config: ConfigMap,
        allow_replace: bool,
        initial: TargetState,
    ) -> HResult<(bool, ConnectorInfo)> {
        self.require_leader()?;
        config
            .entry("name".to_string())
            .or_insert_with(|| name.to_string());
        let infos = self.validate(&config)?;
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
        let exists = self.refreshed()?.connectors.contains_key(name);
        if exists && !allow_replace {
            return Err(HerderError::Conflict(format!(
                "Connector {name} already exists"
            )));
        }
        let initial = (!exists && initial != TargetState::Started).then_some(initial);
        self.config
            .put_connector_config(name, &config, initial)
            .map_err(Self::internal)?;
        let s = self.refreshed()?;
        Ok((!exists, self.info(name, &s)?))
    }

    fn delete(&self, name: &str) -> HResult<()> {
        self.require_leader()?;
        if !self.refreshed()?.connectors.contains_key(name) {
            return Err(not_found(name));
        }
        self.config.remove_connector(name).map_err(Self::internal)?;
        self.refreshed().map(|_| ())
    }

    fn pause(&self, name: &str) -> HResult<()> {
        self.set_target(name, TargetState::Paused)
    }

    fn resume(&self, name: &str) -> HResult<()> {
        self.set_target(name, TargetState::Started)
    }

    fn stop(&self, name: &str) -> HResult<()> {
        // Target state first: an owner that sees no tasks must not generate them again.
        self.set_target(name, TargetState::Stopped)?;
        self.config
            .put_task_configs(name, &[])
            .map_err(Self::internal)?;
        self.refreshed().map(|_| ())
    }

    fn restart_connector(&self, name: &str, include_tasks: bool, only_failed: bool) -> HResult<()> {
        self.require_leader()?;
        if !self.refreshed()?.connectors.contains_key(name) {
            return Err(not_found(name));
        }
        self.config
            .put_restart_request(name, include_tasks, only_failed)
            .map_err(Self::internal)?;
        self.refreshed().map(|_| ())
    }

    fn restart_task(&self, name: &str, task: usize) -> HResult<()> {
        let s = self.refreshed()?;
        if !s.connectors.contains_key(name) {
            return Err(not_found(name));
        }
        if task >= s.task_count(name) {
            return Err(HerderError::NotFound(format!(
                "Task {name}-{task} not found"
            )));
        }
        let mine = self
            .local
            .lock()
            .tasks
            .contains_key(&(name.to_string(), task));
        if mine {
            self.stop_task(name, task);
            self.start_task(name, task, &s);
            self.publish_statuses();
            return Ok(());
        }
        // Another worker runs it: ask that worker (its worker id is its advertised host:port).
        let owner = self
            .status
            .task(name, task)
            .map(|e| e.worker_id)
            .filter(|w| w != &self.worker.config.worker_id)
            .ok_or_else(|| {
                HerderError::Conflict(format!(
                    "Cannot restart task {name}-{task}: it is not running on any worker right now \
                     (a rebalance may be in progress)"
                ))
            })?;
        let path = format!("/connectors/{name}/tasks/{task}/restart?forward=false");
        let resp = http_request(
            &format!("http://{owner}/"),
            "POST",
            &path,
            None,
            Duration::from_secs(60),
        )
        .map_err(|e| {
            HerderError::Internal(format!(
                "Error trying to forward the restart of task {name}-{task} to worker {owner}: {e}"
            ))
        })?;
        match resp.status {
            200..=299 => Ok(()),
            status => {
                let msg = serde_json::from_slice::<serde_json::Value>(&resp.body)
                    .ok()
                    .and_then(|v| v.get("message")?.as_str().map(str::to_string))
                    .unwrap_or_else(|| String::from_utf8_lossy(&resp.body).into_owned());
                Err(match status {
                    404 => HerderError::NotFound(msg),
                    409 => HerderError::Conflict(msg),
                    400 => HerderError::BadRequest(msg),
                    _ => HerderError::Internal(msg),
                })
            }
        }
    }

    fn offsets(&self, name: &str) -> HResult<Vec<(serde_json::Value, serde_json::Value)>> {
        let info = self.connector_info(name)?;
        if info.connector_type == ConnectorType::Sink {
            return Err(HerderError::BadRequest(format!(
                "Offsets of sink connector {name} are the committed offsets of its consumer group \
                 connect-{name}; this endpoint serves source connectors only for now"
            )));
        }
        Ok(self.offsets.connector_offsets(name))
    }

    fn alter_offsets(&self, name: &str, changes: crate::herder_api::OffsetChanges) -> HResult<()> {
        let info = self.connector_info(name)?;
        let snapshot = self.refreshed()?;
        let stopped =
            snapshot.target_state(name) == TargetState::Stopped && snapshot.task_count(name) == 0;
        crate::herder_api::modify_source_offsets(
            name,
            info.connector_type,
            stopped,
            self.offsets.as_ref(),
            changes,
        )
    }

    fn ready(&self) -> bool {
        self.group.lock().generation > 0
    }

    fn leader_route(&self) -> LeaderRoute {
        let g = self.group.lock();
        if g.rebalancing {
            LeaderRoute::Rebalancing
        } else if g.is_leader {
            LeaderRoute::Local
        } else {
            match &g.leader_url {
                Some(u) => LeaderRoute::Forward(u.clone()),
                None => LeaderRoute::Rebalancing,
            }
        }
    }
}

impl DistributedHerder {
    fn set_target(&self, name: &str, t: TargetState) -> HResult<()> {
        self.require_leader()?;
        if !self.refreshed()?.connectors.contains_key(name) {
            return Err(not_found(name));
        }
        self.config
            .put_target_state(name, t)
            .map_err(Self::internal)?;
        self.refreshed().map(|_| ())
    }
}
