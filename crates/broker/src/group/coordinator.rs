//! The GroupCoordinator: the classic group protocol's state machine and committed offsets.
//!
//! Every group lives behind one lock; no lock is held across an await. A request that must wait
//! (JoinGroup until the rebalance completes, SyncGroup until the leader's assignment arrives)
//! gets a oneshot receiver; the member keeps the sender. Every wait has a deadline that `tick`
//! enforces (join: the rebalance timeout, or `group.initial.rebalance.delay.ms` for a new group;
//! sync: the rebalance timeout; sessions: the session timeout), so nothing a client sends can
//! leave a group stuck. Group metadata and offsets are appended to `__consumer_offsets` before
//! the request that changed them is answered.

use super::config::GroupConfig;
use super::errors::*;
use super::group::{GroupMetadata, GroupState, InitialDelay, JoinResult, SyncResult};
use super::member::MemberMetadata;
use super::offsets::OffsetAndMetadata;
use super::persistence::{
    AppendError, BrokerOffsetsLog, CoordinatorRecord, OffsetsLog, group_key, group_value,
    offset_key, offset_value, partition_for,
};
use crate::broker::Broker;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

/// How often deadlines (sessions, joins, syncs) are checked.
const TICK: Duration = Duration::from_millis(100);

/// An answer now, or one to wait for.
pub enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

#[derive(Debug, Clone)]
pub struct JoinParams {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
    /// JoinGroup v9+ (KIP-814): a static leader rejoining a stable group is told it leads.
    pub supports_skip_assignment: bool,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone)]
pub struct SyncParams {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone)]
pub struct CommitParams {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub api_version: i16,
    /// OffsetCommit v2–4 `retention_time_ms`; -1 means the broker's retention.
    pub retention_time_ms: i64,
    pub offsets: Vec<CommitOffset>,
}

#[derive(Debug, Clone)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub partition: i32,
    /// UNSTABLE_OFFSET_COMMIT when a transaction holds an uncommitted offset for it and the
    /// client asked for stable offsets only.
    pub error_code: i16,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
    /// "classic" or "consumer" (ListGroups v5 `GroupType`).
    pub group_type: &'static str,
    /// The state by Kafka's name for the group's type.
    pub state_name: &'static str,
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_data: String,
    pub members: Vec<MemberDescription>,
}

/// One group's committed offset in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// An offset committed inside a transaction (TxnOffsetCommit), applied at its commit marker.
#[derive(Debug, Clone)]
pub struct PendingTxnOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub value: OffsetAndMetadata,
}

pub struct GroupCoordinator {
    pub config: GroupConfig,
    pub(super) groups: Mutex<HashMap<String, GroupMetadata>>,
    /// By producer id. Kept in memory until the transaction ends; see `txn_commit_offsets`.
    pending_txn_offsets: Mutex<HashMap<i64, Vec<PendingTxnOffset>>>,
    started: AtomicBool,
    last_retention_check: AtomicI64,
}

/// What every state-machine step needs besides the group.
struct Ctx<'a> {
    config: &'a GroupConfig,
    log: &'a dyn OffsetsLog,
    now: i64,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            config,
            groups: Mutex::new(HashMap::new()),
            pending_txn_offsets: Mutex::new(HashMap::new()),
            started: AtomicBool::new(false),
            last_retention_check: AtomicI64::new(0),
        }
    }

    /// Start the deadline sweeper once (needs a tokio runtime; a no-op without one, the next
    /// group request starts it).
    pub fn ensure_started(&self, broker: &Arc<Broker>) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Broker> = Arc::downgrade(broker);
        handle.spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(broker) = weak.upgrade() else {
                    return;
                };
                let log = BrokerOffsetsLog {
                    broker: &broker,
                    config: &broker.groups.config,
                };
                broker.groups.tick(crate::handlers::now_ms(), &log);
            }
        });
    }

    /// Rebuild groups and offsets from `__consumer_offsets` (at start, before serving).
    pub fn load(&self, broker: &Arc<Broker>) -> anyhow::Result<()> {
        let (records, pending) = super::persistence::read_all_with_pending(broker)?;
        let n = records.len();
        self.apply_records(records, crate::handlers::now_ms());
        // Offsets of transactions open at the last stop: their markers are still to come.
        self.pending_txn_offsets.lock().extend(pending);
        let groups = self.groups.lock().len();
        if n > 0 {
            tracing::info!(records = n, groups, "loaded consumer groups and offsets");
        }
        self.ensure_started(broker);
        Ok(())
    }

    /// Leadership of `__consumer_offsets`-`partition` moved to or away from this node (cluster
    /// only): its groups are dropped, and reloaded from the local replica when `leader`.
    pub fn reload_partition(
        &self,
        broker: &Arc<Broker>,
        partition: i32,
        partitions: i32,
        leader: bool,
    ) -> anyhow::Result<()> {
        self.groups
            .lock()
            .retain(|id, _| partition_for(id, partitions) != partition);
        if !leader {
            return Ok(());
        }
        let (records, pending) = super::persistence::read_with_pending(broker, Some(partition))?;
        let n = records.len();
        self.apply_records(records, crate::handlers::now_ms());
        self.pending_txn_offsets.lock().extend(pending);
        tracing::info!(
            partition,
            records = n,
            "now coordinating this partition's groups"
        );
        self.ensure_started(broker);
        Ok(())
    }

    pub fn apply_records(&self, records: Vec<CoordinatorRecord>, now: i64) {
        let mut groups = self.groups.lock();
        for r in records {
            match r {
                CoordinatorRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                } => {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| GroupMetadata::new(&group, now));
                    match value {
                        Some(v) => {
                            g.offsets.insert((topic, partition), v);
                        }
                        None => {
                            g.offsets.remove(&(topic, partition));
                        }
                    }
                }
                CoordinatorRecord::Group { group, value } => match value {
                    Some(v) => groups
                        .entry(group.clone())
                        .or_insert_with(|| GroupMetadata::new(&group, now))
                        .apply_value(v, now),
                    None => {
                        groups.remove(&group);
                    }
                },
                CoordinatorRecord::Consumer(r) => {
                    super::consumer_coordinator::apply_record(&mut groups, r, now, &self.config)
                }
            }
        }
        // A group whose offsets were all deleted and that never had members is gone.
        groups.retain(|_, g| {
            !g.members.is_empty() || !g.offsets.is_empty() || g.protocol_type.is_some()
        });
    }

    fn ctx<'a>(&'a self, log: &'a dyn OffsetsLog, now: i64) -> Ctx<'a> {
        Ctx {
            config: &self.config,
            log,
            now,
        }
    }

    // ------------------------------------------------------------ JoinGroup

    pub fn join_group(&self, p: JoinParams, now: i64, log: &dyn OffsetsLog) -> Reply<JoinResult> {
        if p.group_id.is_empty() {
            return Reply::Now(JoinResult::error(&p.member_id, INVALID_GROUP_ID));
        }
        if p.session_timeout_ms < self.config.min_session_timeout_ms
            || p.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Reply::Now(JoinResult::error(&p.member_id, INVALID_SESSION_TIMEOUT));
        }
        let ctx = self.ctx(log, now);
        let mut groups = self.groups.lock();
        let unknown = p.member_id.is_empty();
        if !groups.contains_key(&p.group_id) {
            if !unknown {
                return Reply::Now(JoinResult::error(&p.member_id, UNKNOWN_MEMBER_ID));
            }
            groups.insert(p.group_id.clone(), GroupMetadata::new(&p.group_id, now));
        }
        let Some(g) = groups.get_mut(&p.group_id) else {
            return Reply::Now(JoinResult::error(&p.member_id, COORDINATOR_NOT_AVAILABLE));
        };
        if let Err(code) = super::consumer_coordinator::classic_join_allowed(g, log, now) {
            return Reply::Now(JoinResult::error(&p.member_id, code));
        }
        let known = g.members.contains_key(&p.member_id)
            || g.pending_members.contains_key(&p.member_id)
            || p.group_instance_id
                .as_ref()
                .is_some_and(|i| g.static_members.contains_key(i));
        if !known && g.members.len() >= self.config.max_size {
            return Reply::Now(JoinResult::error(&p.member_id, GROUP_MAX_SIZE_REACHED));
        }
        let reply = if unknown {
            new_member_join(g, p, &ctx)
        } else {
            current_member_join(g, p, &ctx)
        };
        if g.is(GroupState::PreparingRebalance) {
            try_complete_join(g, &ctx);
        }
        // A group this join created but could not use (e.g. bad protocol) is not kept.
        if g.is(GroupState::Empty)
            && g.members.is_empty()
            && g.pending_members.is_empty()
            && g.offsets.is_empty()
            && g.generation_id == 0
        {
            let id = g.group_id.clone();
            groups.remove(&id);
        }
        reply
    }

    // ------------------------------------------------------------ SyncGroup

    pub fn sync_group(&self, p: SyncParams, now: i64, log: &dyn OffsetsLog) -> Reply<SyncResult> {
        let ctx = self.ctx(log, now);
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(&p.group_id) else {
            return Reply::Now(SyncResult::error(UNKNOWN_MEMBER_ID));
        };
        if g.is(GroupState::Dead) {
            return Reply::Now(SyncResult::error(COORDINATOR_NOT_AVAILABLE));
        }
        if let Err(code) = validate_member(g, &p.member_id, p.group_instance_id.as_deref()) {
            return Reply::Now(SyncResult::error(code));
        }
        if p.generation_id != g.generation_id {
            return Reply::Now(SyncResult::error(ILLEGAL_GENERATION));
        }
        if p.protocol_type.is_some() && p.protocol_type != g.protocol_type
            || p.protocol_name.is_some() && p.protocol_name != g.protocol_name
        {
            return Reply::Now(SyncResult::error(INCONSISTENT_GROUP_PROTOCOL));
        }
        match g.state {
            GroupState::Empty => Reply::Now(SyncResult::error(UNKNOWN_MEMBER_ID)),
            GroupState::Dead => Reply::Now(SyncResult::error(COORDINATOR_NOT_AVAILABLE)),
            GroupState::PreparingRebalance => Reply::Now(SyncResult::error(REBALANCE_IN_PROGRESS)),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = g.members.get_mut(&p.member_id) {
                    if let Some(old) = m.awaiting_sync.replace(tx) {
                        let _ = old.send(SyncResult::error(REBALANCE_IN_PROGRESS));
                    }
                    m.last_heartbeat_ms = now;
                }
                g.pending_sync.remove(&p.member_id);
                if g.is_leader(&p.member_id) {
                    let assignments: HashMap<String, Bytes> = p.assignments.into_iter().collect();
                    for m in g.members.values_mut() {
                        m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    match persist_group(g, &ctx) {
                        Ok(()) => {
                            propagate_assignment(g);
                            g.transition_to(GroupState::Stable, now);
                            tracing::info!(
                                group = %g.group_id,
                                generation = g.generation_id,
                                members = g.members.len(),
                                "group is stable"
                            );
                        }
                        Err(code) => {
                            reset_and_propagate_assignment_error(g, code);
                            maybe_prepare_rebalance(g, &ctx, "storing the assignment failed");
                        }
                    }
                }
                Reply::Wait(rx)
            }
            GroupState::Stable => {
                g.pending_sync.remove(&p.member_id);
                let protocol_type = g.protocol_type.clone();
                let protocol_name = g.protocol_name.clone();
                match g.members.get_mut(&p.member_id) {
                    Some(m) => {
                        m.last_heartbeat_ms = now;
                        Reply::Now(SyncResult {
                            error: NONE,
                            protocol_type,
                            protocol_name,
                            assignment: m.assignment.clone(),
                        })
                    }
                    None => Reply::Now(SyncResult::error(UNKNOWN_MEMBER_ID)),
                }
            }
        }
    }

    // ------------------------------------------------------------ Heartbeat, LeaveGroup

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now: i64,
    ) -> i16 {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        if g.is(GroupState::Dead) {
            return COORDINATOR_NOT_AVAILABLE;
        }
        if let Err(code) = validate_member(g, member_id, group_instance_id) {
            return code;
        }
        if generation_id != g.generation_id {
            return ILLEGAL_GENERATION;
        }
        let state = g.state;
        if let Some(m) = g.members.get_mut(member_id) {
            m.last_heartbeat_ms = now;
        }
        match state {
            GroupState::Empty => UNKNOWN_MEMBER_ID,
            GroupState::Dead => COORDINATOR_NOT_AVAILABLE,
            // Tells the member to rejoin.
            GroupState::PreparingRebalance => REBALANCE_IN_PROGRESS,
            GroupState::CompletingRebalance | GroupState::Stable => NONE,
        }
    }

    /// Per leaving member (member id, group instance id): its error code.
    pub fn leave_group(
        &self,
        group_id: &str,
        leaving: &[(String, Option<String>)],
        now: i64,
        log: &dyn OffsetsLog,
    ) -> Vec<i16> {
        let ctx = self.ctx(log, now);
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group_id) else {
            return vec![UNKNOWN_MEMBER_ID; leaving.len()];
        };
        if g.is(GroupState::Dead) {
            return vec![COORDINATOR_NOT_AVAILABLE; leaving.len()];
        }
        leaving
            .iter()
            .map(|(member_id, instance)| {
                if let Some(instance) = instance {
                    match g.static_members.get(instance).cloned() {
                        None => UNKNOWN_MEMBER_ID,
                        Some(id) if !member_id.is_empty() && *member_id != id => FENCED_INSTANCE_ID,
                        Some(id) => {
                            remove_member_and_update_group(g, &id, &ctx, "left the group");
                            NONE
                        }
                    }
                } else if g.pending_members.remove(member_id).is_some() {
                    if g.is(GroupState::PreparingRebalance) {
                        try_complete_join(g, &ctx);
                    }
                    NONE
                } else if !g.members.contains_key(member_id) {
                    UNKNOWN_MEMBER_ID
                } else {
                    remove_member_and_update_group(g, member_id, &ctx, "left the group");
                    NONE
                }
            })
            .collect()
    }

    // ------------------------------------------------------------ offsets

    /// `Err` is one error for every partition; `Ok` has one code per requested offset.
    pub fn commit_offsets(
        &self,
        p: CommitParams,
        now: i64,
        log: &dyn OffsetsLog,
    ) -> Result<Vec<i16>, i16> {
        if p.group_id.is_empty() {
            return Err(INVALID_GROUP_ID);
        }
        let mut groups = self.groups.lock();
        if !groups.contains_key(&p.group_id) {
            if p.generation_id < 0 {
                // A "simple" group: a consumer that assigns partitions itself, or an admin
                // client, keeps its offsets here without joining.
                groups.insert(p.group_id.clone(), GroupMetadata::new(&p.group_id, now));
            } else if p.api_version >= 9 {
                return Err(GROUP_ID_NOT_FOUND);
            } else {
                return Err(ILLEGAL_GENERATION);
            }
        }
        let Some(g) = groups.get_mut(&p.group_id) else {
            return Err(COORDINATOR_NOT_AVAILABLE);
        };
        validate_offset_commit(g, &p)?;
        if let Some(m) = g.members.get_mut(&p.member_id) {
            m.last_heartbeat_ms = now;
        }
        let mut results = vec![NONE; p.offsets.len()];
        let mut records = Vec::with_capacity(p.offsets.len());
        let mut accepted = Vec::with_capacity(p.offsets.len());
        for (i, o) in p.offsets.iter().enumerate() {
            let metadata = o.metadata.clone().unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                results[i] = OFFSET_METADATA_TOO_LARGE;
                continue;
            }
            let value = OffsetAndMetadata {
                committed_offset: o.offset,
                leader_epoch: o.leader_epoch.filter(|e| *e >= 0),
                metadata,
                commit_timestamp: now,
                expire_timestamp: (p.retention_time_ms >= 0)
                    .then(|| now.saturating_add(p.retention_time_ms)),
            };
            records.push((
                offset_key(&p.group_id, &o.topic, o.partition),
                Some(offset_value(&value)),
            ));
            accepted.push((i, value));
        }
        if records.is_empty() {
            return Ok(results);
        }
        let partition = partition_for(&p.group_id, log.partition_count());
        match log.append(partition, &records, now) {
            Ok(()) => {
                for (i, value) in accepted {
                    let o = &p.offsets[i];
                    g.offsets.insert((o.topic.clone(), o.partition), value);
                }
                Ok(results)
            }
            Err(AppendError::TooLarge) => {
                for (i, _) in accepted {
                    results[i] = INVALID_COMMIT_OFFSET_SIZE;
                }
                Ok(results)
            }
            Err(AppendError::Unavailable) => Err(COORDINATOR_NOT_AVAILABLE),
        }
    }

    /// Committed offsets of `group_id`: for the requested partitions (-1 for none), or every
    /// committed partition when `topics` is `None`. Sorted by topic, then partition.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Vec<(String, Vec<FetchedOffset>)> {
        let groups = self.groups.lock();
        let g = groups.get(group_id).filter(|g| !g.is(GroupState::Dead));
        let pending = self.pending_txn_offsets.lock();
        let unstable = |topic: &str, partition: i32| {
            require_stable
                && pending
                    .values()
                    .flatten()
                    .any(|p| p.group == group_id && p.topic == topic && p.partition == partition)
        };
        let found = |topic: &str, partition: i32| -> FetchedOffset {
            if unstable(topic, partition) {
                return FetchedOffset {
                    partition,
                    error_code: UNSTABLE_OFFSET_COMMIT,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                };
            }
            match g.and_then(|g| g.offsets.get(&(topic.to_string(), partition))) {
                Some(o) => FetchedOffset {
                    partition,
                    error_code: NONE,
                    offset: o.committed_offset,
                    leader_epoch: o.leader_epoch.unwrap_or(-1),
                    metadata: o.metadata.clone(),
                },
                None => FetchedOffset {
                    partition,
                    error_code: NONE,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                },
            }
        };
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(t, ps)| {
                    let offsets = ps.iter().map(|p| found(&t, *p)).collect();
                    (t, offsets)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                if let Some(g) = g {
                    for (t, p) in g.offsets.keys() {
                        by_topic.entry(t.clone()).or_default().push(*p);
                    }
                }
                by_topic
                    .into_iter()
                    .map(|(t, mut ps)| {
                        ps.sort_unstable();
                        let offsets = ps.iter().map(|p| found(&t, *p)).collect();
                        (t, offsets)
                    })
                    .collect()
            }
        }
    }

    /// The group-generation check of TxnOffsetCommit v3+ (KIP-447): a zombie from an older
    /// generation cannot commit offsets through a transaction.
    pub fn check_txn_member(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), i16> {
        if generation_id < 0 && member_id.is_empty() {
            return Ok(());
        }
        let groups = self.groups.lock();
        let Some(g) = groups.get(group_id) else {
            return Err(ILLEGAL_GENERATION);
        };
        if let Some(c) = &g.consumer {
            return c.validate_offset_commit(member_id, generation_id);
        }
        validate_member(g, member_id, group_instance_id)?;
        if generation_id != g.generation_id {
            return Err(ILLEGAL_GENERATION);
        }
        Ok(())
    }

    /// TxnOffsetCommit: hold offsets committed inside producer `producer_id`'s transaction until
    /// its marker. The caller has written them to `__consumer_offsets` as transactional records
    /// first (`txn_offsets::append`), so a restart reloads them from there.
    pub fn txn_commit_offsets(&self, producer_id: i64, offsets: Vec<PendingTxnOffset>) {
        let mut pending = self.pending_txn_offsets.lock();
        let entry = pending.entry(producer_id).or_default();
        for o in offsets {
            entry.retain(|p| {
                !(p.group == o.group && p.topic == o.topic && p.partition == o.partition)
            });
            entry.push(o);
        }
    }

    /// A transaction marker reached `__consumer_offsets`: commit makes the producer's pending
    /// offsets the group's committed offsets, abort drops them. The records are in the log
    /// already (transactional, decided by that marker), so nothing is written here.
    pub fn complete_txn(&self, producer_id: i64, commit: bool, now: i64, _log: &dyn OffsetsLog) {
        let Some(pending) = self.pending_txn_offsets.lock().remove(&producer_id) else {
            return;
        };
        if !commit || pending.is_empty() {
            return;
        }
        let mut groups = self.groups.lock();
        let mut by_group: BTreeMap<String, Vec<PendingTxnOffset>> = BTreeMap::new();
        for p in pending {
            by_group.entry(p.group.clone()).or_default().push(p);
        }
        for (group, offsets) in by_group {
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| GroupMetadata::new(&group, now));
            for o in offsets {
                g.offsets.insert((o.topic, o.partition), o.value);
            }
        }
    }

    /// OffsetDelete: `Err` is a group-level error, `Ok` one code per partition.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
        now: i64,
        log: &dyn OffsetsLog,
    ) -> Result<Vec<i16>, i16> {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group_id).filter(|g| !g.is(GroupState::Dead)) else {
            return Err(GROUP_ID_NOT_FOUND);
        };
        let subscribed = if let Some(c) = g.consumer.as_ref().filter(|c| !c.members.is_empty()) {
            c.subscribed_topics.keys().cloned().collect()
        } else if g.is(GroupState::Empty) {
            Default::default()
        } else if g.protocol_type.as_deref() == Some("consumer") {
            g.subscribed_topics().ok_or(NON_EMPTY_GROUP)?
        } else {
            return Err(NON_EMPTY_GROUP);
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        let mut removed = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                results.push(GROUP_SUBSCRIBED_TO_TOPIC);
                continue;
            }
            results.push(NONE);
            let key = (topic.clone(), *partition);
            if g.offsets.contains_key(&key) {
                records.push((offset_key(group_id, topic, *partition), None));
                removed.push(key);
            }
        }
        if !records.is_empty() {
            let partition = partition_for(group_id, log.partition_count());
            log.append(partition, &records, now)
                .map_err(|_| COORDINATOR_NOT_AVAILABLE)?;
            for key in removed {
                g.offsets.remove(&key);
            }
        }
        Ok(results)
    }

    /// Every committed offset of the live groups coordinated here, sorted by group, topic and
    /// partition (the metrics endpoint reports lag from them).
    pub fn committed_offsets(&self) -> Vec<CommittedOffset> {
        let groups = self.groups.lock();
        let mut out: Vec<CommittedOffset> = groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .flat_map(|g| {
                g.offsets
                    .iter()
                    .map(|((topic, partition), o)| CommittedOffset {
                        group: g.group_id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        offset: o.committed_offset,
                    })
            })
            .collect();
        drop(groups);
        out.sort_by(|a, b| {
            (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition))
        });
        out
    }

    // ------------------------------------------------------------ admin

    pub fn list_groups(&self) -> Vec<GroupListing> {
        let groups = self.groups.lock();
        let mut out: Vec<GroupListing> = groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .map(|g| GroupListing {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
                group_type: if g.consumer.is_some() {
                    "consumer"
                } else {
                    "classic"
                },
                state_name: match &g.consumer {
                    Some(c) => c.state().name(),
                    None => g.state.name(),
                },
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    pub fn describe_group(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.groups.lock();
        // A consumer group is not a classic group: Kafka answers DescribeGroups for it as for a
        // missing group (ConsumerGroupDescribe describes it).
        let g = groups
            .get(group_id)
            .filter(|g| !g.is(GroupState::Dead) && g.consumer.is_none())?;
        // Like Kafka, member metadata and assignments are only shown once the group is stable.
        let stable = g.is(GroupState::Stable);
        let protocol = g.protocol_name.clone().unwrap_or_default();
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    /// DeleteGroups: one code per group. Only empty groups can be deleted; their offsets and
    /// metadata get tombstones.
    pub fn delete_groups(&self, group_ids: &[String], now: i64, log: &dyn OffsetsLog) -> Vec<i16> {
        let mut groups = self.groups.lock();
        group_ids
            .iter()
            .map(|id| {
                let Some(g) = groups.get(id).filter(|g| !g.is(GroupState::Dead)) else {
                    return GROUP_ID_NOT_FOUND;
                };
                if !g.is(GroupState::Empty)
                    || g.consumer.as_ref().is_some_and(|c| !c.members.is_empty())
                {
                    return NON_EMPTY_GROUP;
                }
                let mut records: Vec<(Bytes, Option<Bytes>)> = g
                    .offsets
                    .keys()
                    .map(|(t, p)| (offset_key(id, t, *p), None))
                    .collect();
                match &g.consumer {
                    Some(c) => records.extend(c.tombstones()),
                    None => records.push((group_key(id), None)),
                }
                let partition = partition_for(id, log.partition_count());
                match log.append(partition, &records, now) {
                    Ok(()) => {
                        groups.remove(id);
                        tracing::info!(group = %id, "group deleted");
                        NONE
                    }
                    Err(_) => COORDINATOR_NOT_AVAILABLE,
                }
            })
            .collect()
    }

    // ------------------------------------------------------------ deadlines

    /// Enforce every deadline that has passed: pending member ids, sessions, joins, syncs,
    /// and (every `offsets.retention.check.interval.ms`) offset retention.
    pub fn tick(&self, now: i64, log: &dyn OffsetsLog) {
        let ctx = self.ctx(log, now);
        let mut groups = self.groups.lock();
        for g in groups.values_mut() {
            tick_group(g, &ctx);
            super::consumer_coordinator::tick_consumer_group(g, log, now);
        }
        let last = self.last_retention_check.load(Ordering::Relaxed);
        if last == 0 {
            self.last_retention_check.store(now, Ordering::Relaxed);
        } else if now - last >= self.config.offsets_retention_check_interval_ms {
            self.last_retention_check.store(now, Ordering::Relaxed);
            for g in groups.values_mut() {
                expire_offsets(g, &ctx);
            }
        }
        groups.retain(|_, g| !g.is(GroupState::Dead));
    }

    /// Run the retention check now (tests; operators could use it too).
    pub fn expire_offsets_now(&self, now: i64, log: &dyn OffsetsLog) {
        let ctx = self.ctx(log, now);
        let mut groups = self.groups.lock();
        for g in groups.values_mut() {
            expire_offsets(g, &ctx);
        }
        groups.retain(|_, g| !g.is(GroupState::Dead));
    }

    /// The state of a group (tests and diagnostics).
    pub fn group_state(&self, group_id: &str) -> Option<(GroupState, i32, usize)> {
        let groups = self.groups.lock();
        groups
            .get(group_id)
            .map(|g| (g.state, g.generation_id, g.members.len()))
    }
}

// ---------------------------------------------------------------- the state machine

/// Kafka's ClassicGroup.validateMember: a static member must be the registered one for its
/// instance id; a dynamic one must be a member.
fn validate_member(
    g: &GroupMetadata,
    member_id: &str,
    group_instance_id: Option<&str>,
) -> Result<(), i16> {
    match group_instance_id {
        Some(instance) => match g.static_members.get(instance) {
            None => Err(UNKNOWN_MEMBER_ID),
            Some(id) if id != member_id => Err(FENCED_INSTANCE_ID),
            Some(_) => Ok(()),
        },
        None if !g.members.contains_key(member_id) => Err(UNKNOWN_MEMBER_ID),
        None => Ok(()),
    }
}

/// Kafka's ClassicGroup.validateOffsetCommit.
fn validate_offset_commit(g: &GroupMetadata, p: &CommitParams) -> Result<(), i16> {
    if g.is(GroupState::Dead) {
        return Err(COORDINATOR_NOT_AVAILABLE);
    }
    if let Some(c) = &g.consumer {
        return c.validate_offset_commit(&p.member_id, p.generation_id);
    }
    if p.generation_id < 0 && g.is(GroupState::Empty) {
        // An admin client or a consumer without group management, on a group nobody is in.
        return Ok(());
    }
    if p.generation_id >= 0 || !p.member_id.is_empty() || p.group_instance_id.is_some() {
        validate_member(g, &p.member_id, p.group_instance_id.as_deref())?;
        if p.generation_id != g.generation_id {
            return Err(ILLEGAL_GENERATION);
        }
    } else if !g.is(GroupState::Empty) {
        // No member id and no generation: only accepted while nobody is in the group.
        return Err(UNKNOWN_MEMBER_ID);
    }
    if g.is(GroupState::CompletingRebalance) {
        // The member has the new generation but not its assignment yet.
        return Err(REBALANCE_IN_PROGRESS);
    }
    Ok(())
}

fn new_member_join(g: &mut GroupMetadata, p: JoinParams, ctx: &Ctx<'_>) -> Reply<JoinResult> {
    if g.is(GroupState::Dead) {
        return Reply::Now(JoinResult::error(&p.member_id, COORDINATOR_NOT_AVAILABLE));
    }
    if !g.supports_protocols(&p.protocol_type, &p.protocols) {
        return Reply::Now(JoinResult::error(&p.member_id, INCONSISTENT_GROUP_PROTOCOL));
    }
    let new_id = format!("{}-{}", p.client_id, uuid::Uuid::new_v4());
    if let Some(instance) = p.group_instance_id.clone() {
        return static_member_join(g, p, &instance, new_id, ctx);
    }
    if p.require_known_member_id {
        // The member id goes back to the client first; it joins for real with it. A client
        // that never comes back loses the id after its session timeout.
        g.pending_members
            .insert(new_id.clone(), ctx.now + i64::from(p.session_timeout_ms));
        return Reply::Now(JoinResult::error(&new_id, MEMBER_ID_REQUIRED));
    }
    add_member_and_rebalance(g, p, new_id, ctx)
}

fn current_member_join(g: &mut GroupMetadata, p: JoinParams, ctx: &Ctx<'_>) -> Reply<JoinResult> {
    if g.is(GroupState::Dead) {
        return Reply::Now(JoinResult::error(&p.member_id, COORDINATOR_NOT_AVAILABLE));
    }
    if !g.supports_protocols(&p.protocol_type, &p.protocols) {
        return Reply::Now(JoinResult::error(&p.member_id, INCONSISTENT_GROUP_PROTOCOL));
    }
    if g.pending_members.contains_key(&p.member_id) {
        let id = p.member_id.clone();
        return add_member_and_rebalance(g, p, id, ctx);
    }
    if let Err(code) = validate_member(g, &p.member_id, p.group_instance_id.as_deref()) {
        return Reply::Now(JoinResult::error(&p.member_id, code));
    }
    let member_id = p.member_id.clone();
    let (matches, is_leader) = match g.members.get(&member_id) {
        Some(m) => (m.matches(&p.protocols), g.is_leader(&member_id)),
        None => return Reply::Now(JoinResult::error(&member_id, UNKNOWN_MEMBER_ID)),
    };
    match g.state {
        GroupState::PreparingRebalance => update_member_and_rebalance(g, p, ctx),
        GroupState::CompletingRebalance if matches => {
            // It missed its JoinGroup answer (e.g. a timeout): answer again, same generation.
            Reply::Now(current_generation_result(g, &member_id, is_leader, false))
        }
        GroupState::CompletingRebalance => update_member_and_rebalance(g, p, ctx),
        // A rejoining leader forces a rebalance: that is how a leader reacts to metadata
        // changes (new partitions, new topics matching a pattern).
        GroupState::Stable if is_leader || !matches => update_member_and_rebalance(g, p, ctx),
        GroupState::Stable => Reply::Now(current_generation_result(g, &member_id, false, false)),
        GroupState::Empty | GroupState::Dead => {
            Reply::Now(JoinResult::error(&member_id, UNKNOWN_MEMBER_ID))
        }
    }
}

fn current_generation_result(
    g: &GroupMetadata,
    member_id: &str,
    with_members: bool,
    skip_assignment: bool,
) -> JoinResult {
    JoinResult {
        error: NONE,
        member_id: member_id.to_string(),
        generation_id: g.generation_id,
        protocol_type: g.protocol_type.clone(),
        protocol_name: g.protocol_name.clone(),
        leader_id: g.leader_id.clone().unwrap_or_default(),
        skip_assignment,
        members: if with_members {
            g.current_member_metadata()
        } else {
            Vec::new()
        },
    }
}

fn static_member_join(
    g: &mut GroupMetadata,
    p: JoinParams,
    instance: &str,
    new_id: String,
    ctx: &Ctx<'_>,
) -> Reply<JoinResult> {
    let Some(old_id) = g.static_members.get(instance).cloned() else {
        return add_member_and_rebalance(g, p, new_id, ctx);
    };
    let current_leader = g.leader_id.clone().unwrap_or_default();
    // The old incarnation is fenced: whatever it was waiting for is answered now.
    if let Some(old) = g.members.get_mut(&old_id) {
        if let Some(tx) = old.awaiting_join.take() {
            let _ = tx.send(JoinResult::error(&old_id, FENCED_INSTANCE_ID));
        }
        if let Some(tx) = old.awaiting_sync.take() {
            let _ = tx.send(SyncResult::error(FENCED_INSTANCE_ID));
        }
    }
    let Some(member) = g.replace_static_member(instance, &old_id, &new_id) else {
        return add_member_and_rebalance(g, p, new_id, ctx);
    };
    let saved = (
        member.protocols.clone(),
        member.rebalance_timeout_ms,
        member.session_timeout_ms,
    );
    member.protocols = p.protocols.clone();
    member.rebalance_timeout_ms = p.rebalance_timeout_ms;
    member.session_timeout_ms = p.session_timeout_ms;
    member.client_id = p.client_id.clone();
    member.client_host = p.client_host.clone();
    member.last_heartbeat_ms = ctx.now;
    tracing::info!(group = %g.group_id, instance, old = %old_id, new = %new_id, "static member rejoined");
    match g.state {
        GroupState::Stable => {
            if g.select_protocol() != g.protocol_name {
                return update_member_and_rebalance_id(g, &new_id, ctx);
            }
            // No rebalance: the member takes over its old assignment under the new id, once
            // the new id is persisted.
            if let Err(code) = persist_group(g, ctx) {
                if let Some(m) = g.replace_static_member(instance, &new_id, &old_id) {
                    (m.protocols, m.rebalance_timeout_ms, m.session_timeout_ms) = saved;
                }
                return Reply::Now(JoinResult::error("", code));
            }
            let is_leader = g.is_leader(&new_id);
            let skip = p.supports_skip_assignment && is_leader;
            let mut result = current_generation_result(g, &new_id, skip, skip);
            if !skip {
                // The old leader id keeps a leader that cannot skip the assignment from
                // computing one that a stable group would never distribute.
                result.leader_id = current_leader;
            }
            Reply::Now(result)
        }
        // The leader may already have the old member id in its assignment: rebalance.
        GroupState::CompletingRebalance | GroupState::PreparingRebalance => {
            update_member_and_rebalance_id(g, &new_id, ctx)
        }
        GroupState::Empty | GroupState::Dead => {
            Reply::Now(JoinResult::error(&new_id, COORDINATOR_NOT_AVAILABLE))
        }
    }
}

fn add_member_and_rebalance(
    g: &mut GroupMetadata,
    p: JoinParams,
    member_id: String,
    ctx: &Ctx<'_>,
) -> Reply<JoinResult> {
    let (tx, rx) = oneshot::channel();
    if g.is(GroupState::PreparingRebalance) && g.generation_id == 0 {
        g.new_member_added = true;
    }
    tracing::debug!(group = %g.group_id, member = %member_id, "member joining");
    g.add_member(MemberMetadata {
        member_id,
        group_instance_id: p.group_instance_id,
        client_id: p.client_id,
        client_host: p.client_host,
        rebalance_timeout_ms: p.rebalance_timeout_ms,
        session_timeout_ms: p.session_timeout_ms,
        protocol_type: p.protocol_type,
        protocols: p.protocols,
        assignment: Bytes::new(),
        awaiting_join: Some(tx),
        awaiting_sync: None,
        is_new: true,
        last_heartbeat_ms: ctx.now,
    });
    maybe_prepare_rebalance(g, ctx, "a member joined");
    Reply::Wait(rx)
}

fn update_member_and_rebalance(
    g: &mut GroupMetadata,
    p: JoinParams,
    ctx: &Ctx<'_>,
) -> Reply<JoinResult> {
    if let Some(m) = g.members.get_mut(&p.member_id) {
        m.protocols = p.protocols;
        m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        m.session_timeout_ms = p.session_timeout_ms;
    }
    update_member_and_rebalance_id(g, &p.member_id, ctx)
}

fn update_member_and_rebalance_id(
    g: &mut GroupMetadata,
    member_id: &str,
    ctx: &Ctx<'_>,
) -> Reply<JoinResult> {
    let (tx, rx) = oneshot::channel();
    match g.members.get_mut(member_id) {
        Some(m) => {
            // A second JoinGroup from the same member replaces the first, which is answered
            // so its client (if still there) simply rejoins.
            if let Some(old) = m.awaiting_join.replace(tx) {
                let _ = old.send(JoinResult::error(member_id, REBALANCE_IN_PROGRESS));
            }
        }
        None => return Reply::Now(JoinResult::error(member_id, UNKNOWN_MEMBER_ID)),
    }
    maybe_prepare_rebalance(g, ctx, "a member rejoined with new metadata");
    Reply::Wait(rx)
}

fn maybe_prepare_rebalance(g: &mut GroupMetadata, ctx: &Ctx<'_>, reason: &str) {
    if g.can_rebalance() {
        prepare_rebalance(g, ctx, reason);
    }
}

fn prepare_rebalance(g: &mut GroupMetadata, ctx: &Ctx<'_>, reason: &str) {
    if g.is(GroupState::CompletingRebalance) {
        reset_and_propagate_assignment_error(g, REBALANCE_IN_PROGRESS);
    }
    g.pending_sync.clear();
    g.pending_sync_deadline = None;
    let timeout = g.rebalance_timeout_ms();
    let delay = i64::from(ctx.config.initial_rebalance_delay_ms);
    if g.is(GroupState::Empty) && delay > 0 {
        g.initial_delay = Some(InitialDelay {
            delay_ms: delay,
            remaining_ms: (timeout - delay).max(0),
        });
        g.join_deadline = Some(ctx.now + delay);
    } else {
        g.initial_delay = None;
        g.join_deadline = Some(ctx.now + timeout);
    }
    g.new_member_added = false;
    tracing::info!(
        group = %g.group_id,
        generation = g.generation_id,
        from = g.state.name(),
        reason,
        "preparing to rebalance"
    );
    g.transition_to(GroupState::PreparingRebalance, ctx.now);
    try_complete_join(g, ctx);
}

/// Complete the join phase early once every member has rejoined (not during the initial delay,
/// which exists to wait for members that have not asked yet).
fn try_complete_join(g: &mut GroupMetadata, ctx: &Ctx<'_>) {
    if g.is(GroupState::PreparingRebalance)
        && g.initial_delay.is_none()
        && g.has_all_members_joined()
    {
        complete_join(g, ctx);
    }
}

fn on_join_deadline(g: &mut GroupMetadata, ctx: &Ctx<'_>) {
    if let Some(d) = g.initial_delay
        && g.new_member_added
        && d.remaining_ms > 0
    {
        // Members are still arriving: wait another delay, within the rebalance timeout.
        g.new_member_added = false;
        let next = d.delay_ms.min(d.remaining_ms);
        g.initial_delay = Some(InitialDelay {
            delay_ms: d.delay_ms,
            remaining_ms: (d.remaining_ms - d.delay_ms).max(0),
        });
        g.join_deadline = Some(ctx.now + next);
        return;
    }
    complete_join(g, ctx);
}

fn complete_join(g: &mut GroupMetadata, ctx: &Ctx<'_>) {
    g.join_deadline = None;
    g.initial_delay = None;
    // Dynamic members that did not rejoin in time are out; static ones keep their place.
    let missing: Vec<String> = g
        .members
        .values()
        .filter(|m| !m.is_awaiting_join() && !m.is_static())
        .map(|m| m.member_id.clone())
        .collect();
    for id in missing {
        tracing::info!(group = %g.group_id, member = %id, "member did not rejoin in time; removed");
        g.remove_member(&id);
    }
    if g.is(GroupState::Dead) {
        return;
    }
    if !maybe_elect_new_joined_leader(g) && !g.members.is_empty() {
        // Nobody rejoined (only static members remain): wait for them or their sessions.
        g.join_deadline = Some(ctx.now + g.rebalance_timeout_ms());
        return;
    }
    g.generation_id += 1;
    g.pending_sync.clear();
    if g.members.is_empty() {
        g.protocol_name = None;
        g.transition_to(GroupState::Empty, ctx.now);
        tracing::info!(group = %g.group_id, generation = g.generation_id, "group is empty");
        if let Err(code) = persist_group(g, ctx) {
            tracing::warn!(group = %g.group_id, code, "storing the empty group failed");
        }
        return;
    }
    g.protocol_name = g.select_protocol();
    g.transition_to(GroupState::CompletingRebalance, ctx.now);
    let leader = g.leader_id.clone().unwrap_or_default();
    let all = g.current_member_metadata();
    let generation = g.generation_id;
    let protocol_type = g.protocol_type.clone();
    let protocol_name = g.protocol_name.clone();
    let mut ids = Vec::with_capacity(g.members.len());
    for m in g.members.values_mut() {
        if let Some(tx) = m.awaiting_join.take() {
            let is_leader = m.member_id == leader;
            let _ = tx.send(JoinResult {
                error: NONE,
                member_id: m.member_id.clone(),
                generation_id: generation,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                leader_id: leader.clone(),
                skip_assignment: false,
                members: if is_leader { all.clone() } else { Vec::new() },
            });
        }
        m.last_heartbeat_ms = ctx.now;
        m.is_new = false;
        ids.push(m.member_id.clone());
    }
    g.pending_sync.extend(ids);
    g.pending_sync_deadline = Some(ctx.now + g.rebalance_timeout_ms());
    tracing::info!(
        group = %g.group_id,
        generation,
        members = g.members.len(),
        protocol = protocol_name.as_deref().unwrap_or(""),
        leader = %leader,
        "join phase complete; waiting for the leader's assignment"
    );
}

/// Keep the leader if it rejoined, else pick a member that did. False if nobody rejoined.
fn maybe_elect_new_joined_leader(g: &mut GroupMetadata) -> bool {
    if let Some(leader) = &g.leader_id
        && g.members.get(leader).is_some_and(|m| m.is_awaiting_join())
    {
        return true;
    }
    match g
        .members
        .values()
        .find(|m| m.is_awaiting_join())
        .map(|m| m.member_id.clone())
    {
        Some(id) => {
            g.leader_id = Some(id);
            true
        }
        None => false,
    }
}

fn reset_and_propagate_assignment_error(g: &mut GroupMetadata, code: i16) {
    for m in g.members.values_mut() {
        m.assignment = Bytes::new();
        if let Some(tx) = m.awaiting_sync.take() {
            let _ = tx.send(SyncResult::error(code));
        }
    }
}

fn propagate_assignment(g: &mut GroupMetadata) {
    let protocol_type = g.protocol_type.clone();
    let protocol_name = g.protocol_name.clone();
    for m in g.members.values_mut() {
        if let Some(tx) = m.awaiting_sync.take() {
            let _ = tx.send(SyncResult {
                error: NONE,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                assignment: m.assignment.clone(),
            });
        }
    }
}

fn remove_member_and_update_group(
    g: &mut GroupMetadata,
    member_id: &str,
    ctx: &Ctx<'_>,
    reason: &str,
) {
    let Some(mut m) = g.remove_member(member_id) else {
        return;
    };
    tracing::info!(group = %g.group_id, member = %member_id, reason, "member removed");
    // A parked JoinGroup is answered so a client that is still there rejoins.
    if let Some(tx) = m.awaiting_join.take() {
        let _ = tx.send(JoinResult::error("", UNKNOWN_MEMBER_ID));
    }
    if let Some(tx) = m.awaiting_sync.take() {
        let _ = tx.send(SyncResult::error(UNKNOWN_MEMBER_ID));
    }
    match g.state {
        GroupState::Dead | GroupState::Empty => {}
        GroupState::Stable | GroupState::CompletingRebalance => {
            let reason = format!("member {member_id} {reason}");
            maybe_prepare_rebalance(g, ctx, &reason)
        }
        GroupState::PreparingRebalance => try_complete_join(g, ctx),
    }
}

fn persist_group(g: &GroupMetadata, ctx: &Ctx<'_>) -> Result<(), i16> {
    let partition = partition_for(&g.group_id, ctx.log.partition_count());
    let records = [(group_key(&g.group_id), Some(group_value(&g.to_value())))];
    ctx.log
        .append(partition, &records, ctx.now)
        .map_err(|e| match e {
            AppendError::TooLarge => UNKNOWN_SERVER_ERROR,
            AppendError::Unavailable => COORDINATOR_NOT_AVAILABLE,
        })
}

fn tick_group(g: &mut GroupMetadata, ctx: &Ctx<'_>) {
    let now = ctx.now;
    let before = g.pending_members.len();
    g.pending_members.retain(|_, deadline| *deadline > now);
    if g.pending_members.len() != before && g.is(GroupState::PreparingRebalance) {
        try_complete_join(g, ctx);
    }
    let expired: Vec<String> = g
        .members
        .values()
        .filter(|m| !m.should_keep_alive(now))
        .map(|m| m.member_id.clone())
        .collect();
    for id in expired {
        remove_member_and_update_group(g, &id, ctx, "session timed out");
    }
    if g.is(GroupState::PreparingRebalance) && g.join_deadline.is_some_and(|d| d <= now) {
        on_join_deadline(g, ctx);
    }
    if matches!(
        g.state,
        GroupState::CompletingRebalance | GroupState::Stable
    ) && g.pending_sync_deadline.is_some_and(|d| d <= now)
    {
        g.pending_sync_deadline = None;
        if !g.pending_sync.is_empty() {
            let missing: Vec<String> = g.pending_sync.drain().collect();
            for id in &missing {
                tracing::info!(group = %g.group_id, member = %id, "member did not send SyncGroup in time; removed");
                if let Some(mut m) = g.remove_member(id)
                    && let Some(tx) = m.awaiting_sync.take()
                {
                    let _ = tx.send(SyncResult::error(UNKNOWN_MEMBER_ID));
                }
            }
            maybe_prepare_rebalance(g, ctx, "members did not sync in time");
        }
    }
}

/// Kafka's offset retention (KIP-211): an empty group's offsets expire `offsets.retention`
/// after it became empty; a simple group's, after their commit; a stable consumer group's
/// offsets of topics it no longer subscribes to, after their commit. An empty group left with
/// no offsets is deleted.
fn expire_offsets(g: &mut GroupMetadata, ctx: &Ctx<'_>) {
    if g.consumer.as_ref().is_some_and(|c| !c.members.is_empty()) {
        // A consumer group with members keeps its offsets.
        return;
    }
    let retention = ctx.config.offsets_retention_ms;
    let now = ctx.now;
    let expired: Vec<(String, i32)> = match (g.protocol_type.as_deref(), g.state) {
        (Some(_), GroupState::Empty) => g
            .offsets
            .iter()
            .filter(|(_, o)| o.is_expired(now, g.state_timestamp, retention))
            .map(|(k, _)| k.clone())
            .collect(),
        (None, _) => g
            .offsets
            .iter()
            .filter(|(_, o)| o.is_expired(now, o.commit_timestamp, retention))
            .map(|(k, _)| k.clone())
            .collect(),
        (Some("consumer"), GroupState::Stable) => match g.subscribed_topics() {
            Some(subscribed) => g
                .offsets
                .iter()
                .filter(|((t, _), o)| {
                    !subscribed.contains(t) && o.is_expired(now, o.commit_timestamp, retention)
                })
                .map(|(k, _)| k.clone())
                .collect(),
            None => Vec::new(),
        },
        _ => Vec::new(),
    };
    let mut records: Vec<(Bytes, Option<Bytes>)> = expired
        .iter()
        .map(|(t, p)| (offset_key(&g.group_id, t, *p), None))
        .collect();
    let delete_group =
        g.is(GroupState::Empty) && g.members.is_empty() && g.offsets.len() == expired.len();
    if delete_group {
        records.push((group_key(&g.group_id), None));
    }
    if records.is_empty() {
        return;
    }
    let partition = partition_for(&g.group_id, ctx.log.partition_count());
    if let Err(e) = ctx.log.append(partition, &records, now) {
        tracing::warn!(group = %g.group_id, error = ?e, "writing offset expiry tombstones failed");
        return;
    }
    for k in &expired {
        g.offsets.remove(k);
    }
    if !expired.is_empty() {
        tracing::info!(group = %g.group_id, offsets = expired.len(), "expired committed offsets");
    }
    if delete_group {
        g.transition_to(GroupState::Dead, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    struct MemLog {
        records: RefCell<Vec<(i32, Bytes, Option<Bytes>)>>,
        fail: RefCell<bool>,
    }

    impl OffsetsLog for MemLog {
        fn partition_count(&self) -> i32 {
            50
        }
        fn append(
            &self,
            partition: i32,
            records: &[(Bytes, Option<Bytes>)],
            _now_ms: i64,
        ) -> Result<(), AppendError> {
            if *self.fail.borrow() {
                return Err(AppendError::Unavailable);
            }
            for (k, v) in records {
                self.records
                    .borrow_mut()
                    .push((partition, k.clone(), v.clone()));
            }
            Ok(())
        }
    }

    impl MemLog {
        fn decoded(&self) -> Vec<CoordinatorRecord> {
            self.records
                .borrow()
                .iter()
                .filter_map(|(_, k, v)| {
                    super::super::persistence::decode_record(k, v.as_deref())
                        .ok()
                        .flatten()
                })
                .collect()
        }
    }

    fn coordinator(delay_ms: i32) -> GroupCoordinator {
        GroupCoordinator::new(GroupConfig {
            initial_rebalance_delay_ms: delay_ms,
            ..GroupConfig::default()
        })
    }

    fn join_params(group: &str, member_id: &str) -> JoinParams {
        JoinParams {
            group_id: group.into(),
            member_id: member_id.into(),
            group_instance_id: None,
            require_known_member_id: true,
            supports_skip_assignment: false,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 10_000,
            session_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![
                ("range".into(), Bytes::from_static(b"r")),
                ("roundrobin".into(), Bytes::from_static(b"rr")),
            ],
        }
    }

    fn now_result<T>(r: Reply<T>) -> T {
        match r {
            Reply::Now(t) => t,
            Reply::Wait(mut rx) => rx.try_recv().expect("answered at once"),
        }
    }

    fn waiting<T>(r: Reply<T>) -> oneshot::Receiver<T> {
        match r {
            Reply::Wait(rx) => rx,
            Reply::Now(_) => panic!("expected to wait"),
        }
    }

    /// The v4+ dance: MEMBER_ID_REQUIRED, then join with the id.
    fn join(
        c: &GroupCoordinator,
        log: &MemLog,
        group: &str,
        now: i64,
    ) -> (String, Reply<JoinResult>) {
        let first = now_result(c.join_group(join_params(group, ""), now, log));
        assert_eq!(first.error, MEMBER_ID_REQUIRED);
        let id = first.member_id.clone();
        let reply = c.join_group(join_params(group, &id), now, log);
        (id, reply)
    }

    fn sync(
        c: &GroupCoordinator,
        log: &MemLog,
        group: &str,
        id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: i64,
    ) -> Reply<SyncResult> {
        c.sync_group(
            SyncParams {
                group_id: group.into(),
                generation_id: generation,
                member_id: id.into(),
                group_instance_id: None,
                protocol_type: None,
                protocol_name: None,
                assignments,
            },
            now,
            log,
        )
    }

    /// Two members form a stable group; returns (leader, follower, generation).
    fn stable_pair(c: &GroupCoordinator, log: &MemLog, group: &str) -> (String, String, i32) {
        let (a, ra) = join(c, log, group, 0);
        // Alone with no delay, the first member's join completes at once.
        let ja = now_result(ra);
        assert_eq!(ja.error, NONE);
        assert_eq!(ja.leader_id, a);
        let sa = now_result(sync(
            c,
            log,
            group,
            &a,
            ja.generation_id,
            vec![(a.clone(), Bytes::from_static(b"A"))],
            0,
        ));
        assert_eq!(sa.assignment, Bytes::from_static(b"A"));
        // A second member: the group rebalances; the first learns it by heartbeat.
        let (b, rb) = join(c, log, group, 10);
        let mut rb = waiting(rb);
        assert_eq!(
            c.heartbeat(group, &a, None, ja.generation_id, 10),
            REBALANCE_IN_PROGRESS
        );
        let ja2 = now_result(c.join_group(join_params(group, &a), 20, log));
        let jb = rb.try_recv().expect("both joined: answered");
        assert_eq!(ja2.generation_id, ja.generation_id + 1);
        assert_eq!(jb.generation_id, ja2.generation_id);
        assert_eq!(ja2.leader_id, a);
        assert_eq!(
            ja2.members.len(),
            2,
            "the leader gets every member's metadata"
        );
        assert!(jb.members.is_empty());
        assert_eq!(ja2.protocol_name.as_deref(), Some("range"));
        let mut wb = waiting(sync(c, log, group, &b, jb.generation_id, vec![], 30));
        let sa = now_result(sync(
            c,
            log,
            group,
            &a,
            ja2.generation_id,
            vec![
                (a.clone(), Bytes::from_static(b"A2")),
                (b.clone(), Bytes::from_static(b"B2")),
            ],
            30,
        ));
        assert_eq!(sa.assignment, Bytes::from_static(b"A2"));
        assert_eq!(
            wb.try_recv().expect("follower answered").assignment,
            Bytes::from_static(b"B2")
        );
        assert_eq!(c.group_state(group).map(|s| s.0), Some(GroupState::Stable));
        (a, b, ja2.generation_id)
    }

    #[test]
    fn members_join_sync_and_heartbeat() {
        let c = coordinator(0);
        let log = MemLog::default();
        let (a, b, generation) = stable_pair(&c, &log, "g");
        assert_eq!(c.heartbeat("g", &a, None, generation, 40), NONE);
        assert_eq!(
            c.heartbeat("g", &b, None, generation - 1, 40),
            ILLEGAL_GENERATION
        );
        assert_eq!(
            c.heartbeat("g", "nobody", None, generation, 40),
            UNKNOWN_MEMBER_ID
        );
        assert_eq!(
            c.heartbeat("other", &a, None, generation, 40),
            UNKNOWN_MEMBER_ID
        );
        // The assignment was persisted before it was handed out.
        assert!(log.decoded().iter().any(
            |r| matches!(r, CoordinatorRecord::Group { value: Some(v), .. } if v.members.len() == 2)
        ));
    }

    #[test]
    fn session_timeout_expires_a_member_and_rebalances() {
        let c = coordinator(0);
        let log = MemLog::default();
        let (a, b, generation) = stable_pair(&c, &log, "g");
        // Only `a` heartbeats.
        for t in (1_000..12_000).step_by(1_000) {
            c.heartbeat("g", &a, None, generation, t);
            c.tick(t, &log);
        }
        assert_eq!(
            c.heartbeat("g", &b, None, generation, 12_000),
            UNKNOWN_MEMBER_ID
        );
        assert_eq!(
            c.heartbeat("g", &a, None, generation, 12_000),
            REBALANCE_IN_PROGRESS
        );
        let ja = now_result(c.join_group(join_params("g", &a), 12_100, &log));
        assert_eq!(ja.generation_id, generation + 1);
        assert_eq!(ja.members.len(), 1);
    }

    #[test]
    fn a_member_that_never_rejoins_cannot_wedge_the_rebalance() {
        let c = coordinator(0);
        let log = MemLog::default();
        let (a, b, generation) = stable_pair(&c, &log, "g");
        // `a` rejoins (forcing a rebalance as leader); `b` keeps heartbeating but never rejoins.
        let mut ra = waiting(c.join_group(join_params("g", &a), 100, &log));
        for t in (1_000..=10_100).step_by(1_000) {
            assert_eq!(
                c.heartbeat("g", &b, None, generation, t),
                REBALANCE_IN_PROGRESS
            );
            c.tick(t, &log);
        }
        c.tick(10_200, &log);
        let ja = ra
            .try_recv()
            .expect("the rebalance timeout completed the join");
        assert_eq!(ja.error, NONE);
        assert_eq!(ja.members.len(), 1);
        assert_eq!(
            c.heartbeat("g", &b, None, generation, 10_300),
            UNKNOWN_MEMBER_ID
        );
        // The leader never syncs either: after the rebalance timeout it is removed too.
        c.tick(20_300, &log);
        c.tick(20_400, &log);
        assert_eq!(
            c.group_state("g").map(|s| (s.0, s.2)),
            Some((GroupState::Empty, 0))
        );
    }

    #[test]
    fn initial_delay_waits_for_more_members() {
        let c = coordinator(3_000);
        let log = MemLog::default();
        let (_a, ra) = join(&c, &log, "g", 0);
        let mut ra = waiting(ra);
        let (_b, rb) = join(&c, &log, "g", 1_000);
        let mut rb = waiting(rb);
        c.tick(2_900, &log);
        assert!(ra.try_recv().is_err(), "still inside the initial delay");
        // A member arrived during the first delay, so the delay runs once more.
        c.tick(3_000, &log);
        assert!(ra.try_recv().is_err());
        c.tick(6_000, &log);
        let ja = ra.try_recv().expect("answered");
        let jb = rb.try_recv().expect("answered");
        assert_eq!(ja.generation_id, 1);
        assert_eq!(jb.generation_id, 1);
    }

    #[test]
    fn static_member_rejoins_without_rebalance_and_fences_the_old_id() {
        let c = coordinator(0);
        let log = MemLog::default();
        let mut p = join_params("s", "");
        p.group_instance_id = Some("inst-1".into());
        let j1 = now_result(c.join_group(p.clone(), 0, &log));
        assert_eq!(j1.error, NONE, "static members skip MEMBER_ID_REQUIRED");
        let old = j1.member_id.clone();
        let s = now_result(c.sync_group(
            SyncParams {
                group_id: "s".into(),
                generation_id: j1.generation_id,
                member_id: old.clone(),
                group_instance_id: Some("inst-1".into()),
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignments: vec![(old.clone(), Bytes::from_static(b"X"))],
            },
            0,
            &log,
        ));
        assert_eq!(s.error, NONE);
        // The same instance comes back (a restart): same generation, no rebalance.
        let j2 = now_result(c.join_group(p, 100, &log));
        assert_eq!(j2.error, NONE);
        assert_eq!(j2.generation_id, j1.generation_id);
        assert_ne!(j2.member_id, old);
        assert_eq!(c.group_state("s").map(|s| s.0), Some(GroupState::Stable));
        assert_eq!(
            c.heartbeat("s", &old, Some("inst-1"), j1.generation_id, 200),
            FENCED_INSTANCE_ID
        );
        assert_eq!(
            c.heartbeat("s", &j2.member_id, Some("inst-1"), j1.generation_id, 200),
            NONE
        );
        let s2 = now_result(c.sync_group(
            SyncParams {
                group_id: "s".into(),
                generation_id: j2.generation_id,
                member_id: j2.member_id.clone(),
                group_instance_id: Some("inst-1".into()),
                protocol_type: None,
                protocol_name: None,
                assignments: vec![],
            },
            200,
            &log,
        ));
        assert_eq!(
            s2.assignment,
            Bytes::from_static(b"X"),
            "keeps its assignment"
        );
    }

    #[test]
    fn offset_commit_checks_generation_and_member() {
        let c = coordinator(0);
        let log = MemLog::default();
        let commit = |member: &str, generation: i32, version: i16, group: &str| {
            c.commit_offsets(
                CommitParams {
                    group_id: group.into(),
                    member_id: member.into(),
                    group_instance_id: None,
                    generation_id: generation,
                    api_version: version,
                    retention_time_ms: -1,
                    offsets: vec![CommitOffset {
                        topic: "t".into(),
                        partition: 0,
                        offset: 5,
                        leader_epoch: Some(0),
                        metadata: Some("m".into()),
                    }],
                },
                1,
                &log,
            )
        };
        // Simple (standalone) commits create the group.
        assert_eq!(commit("", -1, 8, "simple"), Ok(vec![NONE]));
        let f = c.fetch_offsets("simple", None, false);
        assert_eq!(f[0].1[0].offset, 5);
        assert_eq!(f[0].1[0].metadata, "m");
        assert_eq!(commit("x", 3, 8, "nogroup"), Err(ILLEGAL_GENERATION));
        assert_eq!(commit("x", 3, 9, "nogroup"), Err(GROUP_ID_NOT_FOUND));
        let (a, _b, generation) = stable_pair(&c, &log, "g");
        assert_eq!(commit(&a, generation, 8, "g"), Ok(vec![NONE]));
        assert_eq!(commit(&a, generation + 1, 8, "g"), Err(ILLEGAL_GENERATION));
        assert_eq!(
            commit("stranger", generation, 8, "g"),
            Err(UNKNOWN_MEMBER_ID)
        );
        assert_eq!(
            commit("", -1, 8, "g"),
            Err(UNKNOWN_MEMBER_ID),
            "group has members"
        );
        let missing = c.fetch_offsets("g", Some(vec![("t".into(), vec![0, 1])]), false);
        assert_eq!(missing[0].1[0].offset, 5);
        assert_eq!(missing[0].1[1].offset, -1, "no commit: -1");
        // Failing storage is not acknowledged.
        *log.fail.borrow_mut() = true;
        assert_eq!(
            commit(&a, generation, 8, "g"),
            Err(COORDINATOR_NOT_AVAILABLE)
        );
    }

    #[test]
    fn delete_groups_and_reload_from_records() {
        let c = coordinator(0);
        let log = MemLog::default();
        let (a, b, generation) = stable_pair(&c, &log, "g");
        c.commit_offsets(
            CommitParams {
                group_id: "g".into(),
                member_id: a.clone(),
                group_instance_id: None,
                generation_id: generation,
                api_version: 8,
                retention_time_ms: -1,
                offsets: vec![CommitOffset {
                    topic: "t".into(),
                    partition: 2,
                    offset: 7,
                    leader_epoch: Some(1),
                    metadata: None,
                }],
            },
            50,
            &log,
        )
        .expect("commit");
        assert_eq!(
            c.delete_groups(&["g".into()], 60, &log),
            vec![NON_EMPTY_GROUP]
        );
        assert_eq!(
            c.delete_groups(&["zzz".into()], 60, &log),
            vec![GROUP_ID_NOT_FOUND]
        );

        // A restarted coordinator reads the same records back: offsets and a stable group.
        let reloaded = coordinator(0);
        reloaded.apply_records(log.decoded(), 100);
        assert_eq!(reloaded.fetch_offsets("g", None, false)[0].1[0].offset, 7);
        assert_eq!(
            reloaded.fetch_offsets("g", None, false)[0].1[0].leader_epoch,
            1
        );
        assert_eq!(
            reloaded.group_state("g"),
            Some((GroupState::Stable, generation, 2))
        );
        assert_eq!(reloaded.heartbeat("g", &b, None, generation, 200), NONE);

        // Both leave; the group is empty and can be deleted; tombstones remove it on reload.
        let codes = c.leave_group("g", &[(a, None), (b, None)], 70, &log);
        assert_eq!(codes, vec![NONE, NONE]);
        assert_eq!(c.group_state("g").map(|s| s.0), Some(GroupState::Empty));
        assert_eq!(c.delete_groups(&["g".into()], 80, &log), vec![NONE]);
        assert!(c.group_state("g").is_none());
        let again = coordinator(0);
        again.apply_records(log.decoded(), 100);
        assert!(again.group_state("g").is_none());
        assert_eq!(
            again.fetch_offsets("g", Some(vec![("t".into(), vec![2])]), false)[0].1[0].offset,
            -1
        );
    }

    #[test]
    fn offsets_of_empty_groups_expire() {
        let c = GroupCoordinator::new(GroupConfig {
            initial_rebalance_delay_ms: 0,
            offsets_retention_ms: 1_000,
            ..GroupConfig::default()
        });
        let log = MemLog::default();
        let r = c.commit_offsets(
            CommitParams {
                group_id: "old".into(),
                member_id: String::new(),
                group_instance_id: None,
                generation_id: -1,
                api_version: 8,
                retention_time_ms: -1,
                offsets: vec![CommitOffset {
                    topic: "t".into(),
                    partition: 0,
                    offset: 1,
                    leader_epoch: None,
                    metadata: None,
                }],
            },
            0,
            &log,
        );
        assert_eq!(r, Ok(vec![NONE]));
        c.expire_offsets_now(500, &log);
        assert!(c.group_state("old").is_some());
        c.expire_offsets_now(1_000, &log);
        assert!(c.group_state("old").is_none(), "expired and deleted");
    }

    #[test]
    fn inconsistent_protocols_are_refused() {
        let c = coordinator(0);
        let log = MemLog::default();
        let _ = stable_pair(&c, &log, "g");
        let mut p = join_params("g", "");
        p.protocols = vec![("cooperative-sticky".into(), Bytes::new())];
        assert_eq!(
            now_result(c.join_group(p, 100, &log)).error,
            INCONSISTENT_GROUP_PROTOCOL
        );
        let mut p = join_params("g", "");
        p.session_timeout_ms = 10;
        assert_eq!(
            now_result(c.join_group(p, 100, &log)).error,
            INVALID_SESSION_TIMEOUT
        );
    }
}
