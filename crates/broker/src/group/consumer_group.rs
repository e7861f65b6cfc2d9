//! A consumer group of Kafka 4's consumer group protocol (KIP-848): members, epochs, the
//! target assignment and each member's reconciliation towards it.
//!
//! The group epoch is bumped whenever membership, a subscription or the subscribed topics'
//! partitions change; the next heartbeat then computes a new target assignment with a server
//! assignor (`assignor`) and stamps it with the group epoch (the assignment epoch). Each member
//! then moves towards its target in its own heartbeats: it first gives up (revokes) partitions
//! it must lose, keeping its member epoch; once it reports they are gone it gets the partitions
//! no other member still holds, and the target epoch. A partition is never owned by two members.
//!
//! This module is the state machine and the records it produces; the caller (`GroupCoordinator`)
//! holds the lock, writes the records to `__consumer_offsets` and answers the request. It must
//! not touch the log, the network or the classic protocol's state.

use super::assignor::{self, ASSIGNORS, Assignment, AssignorMember};
use super::config::GroupConfig;
use super::consumer_records::*;
use super::errors::*;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// Member epoch of a heartbeat that leaves the group for good.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch of a static member leaving for a while: it keeps its partitions until its
/// session runs out, so a restart does not move them.
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
pub const STALE_MEMBER_EPOCH: i16 = 113;
pub const INVALID_REGULAR_EXPRESSION: i16 = 128;

/// Records to append to `__consumer_offsets`: key, value or tombstone.
pub type Records = Vec<(Bytes, Option<Bytes>)>;

/// A member's reconciliation state (Kafka's MemberState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Owns its target (or all of it that is free) at the target epoch.
    Stable,
    /// Must revoke `pending_revocation` before it gets anything new.
    UnrevokedPartitions,
    /// Has the target epoch but waits for partitions other members still hold.
    UnreleasedPartitions,
}

impl MemberState {
    pub fn code(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    pub fn from_code(code: i8) -> MemberState {
        match code {
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Stable,
        }
    }
}

/// The group states ListGroups and ConsumerGroupDescribe report, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    /// The group epoch moved past the target assignment's.
    Assigning,
    /// Some member has not reached its target yet.
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Sorted, so a reordered list is not a new subscription.
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    pub session_deadline: i64,
    /// Set while the member must revoke: past it, the member is fenced (rebalance timeout).
    pub revocation_deadline: Option<i64>,
}

impl ConsumerMember {
    fn new(member_id: &str, now: i64, session_timeout_ms: i64) -> ConsumerMember {
        ConsumerMember {
            member_id: member_id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: -1,
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline: now + session_timeout_ms,
            revocation_deadline: None,
        }
    }

    pub fn metadata_value(&self) -> MemberMetadataValue {
        MemberMetadataValue {
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed_topic_names: self.subscribed_topic_names.clone(),
            subscribed_topic_regex: self.subscribed_topic_regex.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            server_assignor: self.server_assignor.clone(),
        }
    }

    pub fn current_value(&self) -> CurrentAssignmentValue {
        CurrentAssignmentValue {
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state.code(),
            assigned: self.assigned.clone(),
            pending_revocation: self.pending_revocation.clone(),
        }
    }

    fn regex(&self) -> Option<regex::Regex> {
        self.subscribed_topic_regex
            .as_deref()
            .and_then(|r| compile_regex(r).ok())
    }

    /// Whether the member subscribes to `topic` (by name or by its regex).
    fn subscribes(&self, topic: &str, regex: Option<&regex::Regex>) -> bool {
        self.subscribed_topic_names.iter().any(|t| t == topic)
            || regex.is_some_and(|r| !is_internal(topic) && r.is_match(topic))
    }
}

/// What the group needs from the cluster metadata.
pub trait TopicsView {
    /// Topic id and partition count of `name`, if it exists.
    fn topic(&self, name: &str) -> Option<(Uuid, i32)>;
    /// Every topic name (for regex subscriptions).
    fn names(&self) -> Vec<String>;
    fn name_of(&self, id: &Uuid) -> Option<String>;
}

impl TopicsView for strom_meta::MetadataImage {
    fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
        self.topics
            .get(name)
            .map(|t| (t.id, t.partitions.len() as i32))
    }

    fn names(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }

    fn name_of(&self, id: &Uuid) -> Option<String> {
        self.topic_by_id(id).map(|t| t.name.clone())
    }
}

fn is_internal(topic: &str) -> bool {
    topic == "__consumer_offsets" || topic == "__transaction_state"
}

/// Kafka matches the whole topic name against the RE2/J pattern.
pub fn compile_regex(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{re})$"))
}

/// A ConsumerGroupHeartbeat, decoded.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatParams {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns, when it says (null means "unchanged").
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
    pub api_version: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResult {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when it changed or the member needs it in full; `None` means "keep what you have".
    pub assignment: Option<Assignment>,
}

impl HeartbeatResult {
    pub fn error(code: i16, message: impl Into<String>) -> HeartbeatResult {
        HeartbeatResult {
            error: code,
            message: Some(message.into()),
            member_id: String::new(),
            member_epoch: 0,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

type Failure = (i16, String);

fn fail<T>(code: i16, message: String) -> Result<T, Failure> {
    Err((code, message))
}

/// Kafka's request checks (throwIfConsumerGroupHeartbeatRequestIsInvalid).
pub fn validate_request(p: &HeartbeatParams, config: &GroupConfig) -> Result<(), Failure> {
    if p.group_id.is_empty() {
        return fail(INVALID_REQUEST, "GroupId can't be empty.".into());
    }
    if p.api_version >= 1 && p.member_id.is_empty() {
        return fail(INVALID_REQUEST, "MemberId can't be empty.".into());
    }
    if p.instance_id.as_deref() == Some("") {
        return fail(INVALID_REQUEST, "InstanceId can't be empty.".into());
    }
    if p.rack_id.as_deref() == Some("") {
        return fail(INVALID_REQUEST, "RackId can't be empty.".into());
    }
    match p.member_epoch {
        0 => {
            if p.rebalance_timeout_ms == -1 {
                return fail(
                    INVALID_REQUEST,
                    "RebalanceTimeoutMs must be provided in first request.".into(),
                );
            }
            if p.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return fail(
                    INVALID_REQUEST,
                    "TopicPartitions must be empty when (re-)joining.".into(),
                );
            }
            if p.subscribed_topic_names.is_none() && p.subscribed_topic_regex.is_none() {
                return fail(
                    INVALID_REQUEST,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request."
                        .into(),
                );
            }
        }
        LEAVE_GROUP_STATIC_MEMBER_EPOCH if p.instance_id.is_none() => {
            return fail(INVALID_REQUEST, "InstanceId can't be null.".into());
        }
        e if e < LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
            return fail(INVALID_REQUEST, format!("MemberEpoch {e} is invalid."));
        }
        _ => {}
    }
    if p.api_version < 1 && p.member_epoch != 0 && p.member_id.is_empty() {
        return fail(INVALID_REQUEST, "MemberId can't be empty.".into());
    }
    if let Some(a) = &p.server_assignor
        && !config.consumer_assignors.iter().any(|c| c == a)
    {
        return fail(
            UNSUPPORTED_ASSIGNOR,
            format!(
                "ServerAssignor {a} is not supported. Supported assignors: {}.",
                config.consumer_assignors.join(", ")
            ),
        );
    }
    if let Some(re) = p
        .subscribed_topic_regex
        .as_deref()
        .filter(|r| !r.is_empty())
        && let Err(e) = compile_regex(re)
    {
        return fail(
            INVALID_REGULAR_EXPRESSION,
            format!("SubscribedTopicRegex `{re}` is not a valid regular expression: {e}."),
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// instance id → member id.
    pub static_members: HashMap<String, String>,
    /// Member id → its target assignment.
    pub target: HashMap<String, Assignment>,
    /// Every subscribed topic's (id, partition count) as of the last group epoch: a change
    /// (topic created, deleted, partitions added) bumps the epoch.
    pub subscribed_topics: BTreeMap<String, (Uuid, i32)>,
    /// Set after a reload: the first heartbeat refreshes `subscribed_topics` without a bump.
    pub loaded: bool,
}

fn subset(a: &Assignment, of: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| of.get(t).is_some_and(|o| ps.is_subset(o)) || ps.is_empty())
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|o| !ps.is_disjoint(o)))
}

fn intersection(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        if let Some(o) = b.get(t) {
            let both: BTreeSet<i32> = ps.intersection(o).copied().collect();
            if !both.is_empty() {
                out.insert(*t, both);
            }
        }
    }
    out
}

fn difference(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(o) => ps.difference(o).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

impl ConsumerGroup {
    pub fn new(group_id: &str) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.to_string(),
            ..Default::default()
        }
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// The assignor the next target assignment uses: the one most members ask for (ties go to
    /// the configured order), else the first configured (`group.consumer.assignors`).
    pub fn preferred_assignor(&self, config: &GroupConfig) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for name in &config.consumer_assignors {
            if let Some(n) = votes.get(name.as_str())
                && best.is_none_or(|(_, b)| *n > b)
            {
                best = Some((name.as_str(), *n));
            }
        }
        best.map(|(n, _)| n.to_string())
            .or_else(|| config.consumer_assignors.first().cloned())
            .unwrap_or_else(|| ASSIGNORS[0].to_string())
    }

    fn bump_epoch(&mut self, records: &mut Records) {
        self.group_epoch += 1;
        records.push((
            group_metadata_key(&self.group_id),
            Some(epoch_value(self.group_epoch)),
        ));
    }

    fn write_member(&self, member_id: &str, records: &mut Records) {
        if let Some(m) = self.members.get(member_id) {
            records.push((
                member_metadata_key(&self.group_id, member_id),
                Some(member_metadata_value(&m.metadata_value())),
            ));
        }
    }

    fn write_current(&self, member_id: &str, records: &mut Records) {
        if let Some(m) = self.members.get(member_id) {
            records.push((
                current_assignment_key(&self.group_id, member_id),
                Some(current_assignment_value(&m.current_value())),
            ));
        }
    }

    /// Drop a member and its target, with tombstones; the caller bumps the epoch.
    fn remove_member(&mut self, member_id: &str, records: &mut Records) -> Option<ConsumerMember> {
        let m = self.members.remove(member_id)?;
        if let Some(instance) = &m.instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        self.target.remove(member_id);
        records.push((current_assignment_key(&self.group_id, member_id), None));
        records.push((target_member_key(&self.group_id, member_id), None));
        records.push((member_metadata_key(&self.group_id, member_id), None));
        // Topics nobody subscribes to any more leave the metadata with this epoch bump, so the
        // next heartbeat does not bump again for them.
        let regexes: Vec<(String, Option<regex::Regex>)> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.regex()))
            .collect();
        let members = &self.members;
        self.subscribed_topics.retain(|name, _| {
            regexes.iter().any(|(id, re)| {
                members
                    .get(id)
                    .is_some_and(|m| m.subscribes(name, re.as_ref()))
            })
        });
        Some(m)
    }

    /// Fence a member (session or rebalance timeout, or an operator): it leaves and the group
    /// rebalances without it.
    pub fn fence_member(&mut self, member_id: &str, records: &mut Records) {
        if self.remove_member(member_id, records).is_some() {
            self.bump_epoch(records);
        }
    }

    /// Every topic some member subscribes to, with its id and partition count now.
    fn current_subscribed_topics(&self, topics: &dyn TopicsView) -> BTreeMap<String, (Uuid, i32)> {
        let mut out = BTreeMap::new();
        let mut regexes = Vec::new();
        for m in self.members.values() {
            for name in &m.subscribed_topic_names {
                if let Some(t) = topics.topic(name) {
                    out.insert(name.clone(), t);
                }
            }
            if let Some(re) = m.regex() {
                regexes.push(re);
            }
        }
        if !regexes.is_empty() {
            for name in topics.names() {
                if is_internal(&name) || out.contains_key(&name) {
                    continue;
                }
                if regexes.iter().any(|r| r.is_match(&name))
                    && let Some(t) = topics.topic(&name)
                {
                    out.insert(name, t);
                }
            }
        }
        out
    }

    /// One heartbeat; `records` receives what must be persisted before answering.
    pub fn heartbeat(
        &mut self,
        p: &HeartbeatParams,
        config: &GroupConfig,
        topics: &dyn TopicsView,
        now: i64,
        records: &mut Records,
    ) -> Result<HeartbeatResult, Failure> {
        if p.member_epoch < 0 {
            return self.leave(p, config, now, records);
        }
        let session = i64::from(config.consumer_session_timeout_ms);
        let mut bump = false;
        let mut member_id = p.member_id.clone();
        if member_id.is_empty() {
            // ConsumerGroupHeartbeat v0: the coordinator names new members.
            member_id = Uuid::new_v4().simple().to_string();
        }
        if p.member_epoch == 0 {
            let mut replaced = false;
            if let Some(instance) = &p.instance_id
                && let Some(existing) = self.static_members.get(instance).cloned()
                && existing != member_id
            {
                let old = self.members.get(&existing).map(|m| m.member_epoch);
                if old != Some(LEAVE_GROUP_STATIC_MEMBER_EPOCH) {
                    return fail(
                        UNRELEASED_INSTANCE_ID,
                        format!(
                            "Static member {existing} with instance id {instance} cannot be replaced because it has not left the group yet."
                        ),
                    );
                }
                // A static member came back under a new member id: it takes over the old
                // member's assignment without a rebalance.
                let target = self.target.get(&existing).cloned();
                if let Some(mut m) = self.remove_member(&existing, records) {
                    m.member_id = member_id.clone();
                    // The new process owns nothing: partitions the old one had to give up are
                    // released now; the rest stay its own, so nobody else takes them.
                    m.assigned =
                        intersection(&m.assigned, target.as_ref().unwrap_or(&Assignment::new()));
                    m.member_epoch = 0;
                    m.pending_revocation.clear();
                    m.state = MemberState::Stable;
                    m.revocation_deadline = None;
                    self.static_members
                        .insert(instance.clone(), member_id.clone());
                    self.members.insert(member_id.clone(), m);
                    if let Some(t) = target {
                        records.push((
                            target_member_key(&self.group_id, &member_id),
                            Some(target_member_value(&t)),
                        ));
                        self.target.insert(member_id.clone(), t);
                    }
                    replaced = true;
                }
            }
            if !replaced {
                match self.members.get_mut(&member_id) {
                    Some(m) => {
                        // A known member rejoining (after being fenced by a lost response, say)
                        // owns nothing any more.
                        m.member_epoch = 0;
                        m.assigned.clear();
                        m.pending_revocation.clear();
                        m.state = MemberState::Stable;
                        m.revocation_deadline = None;
                    }
                    None => {
                        if self.members.len() >= config.consumer_max_size {
                            return fail(
                                GROUP_MAX_SIZE_REACHED,
                                format!(
                                    "The consumer group has reached its maximum capacity of {} members.",
                                    config.consumer_max_size
                                ),
                            );
                        }
                        let mut m = ConsumerMember::new(&member_id, now, session);
                        m.instance_id = p.instance_id.clone();
                        if let Some(instance) = &p.instance_id {
                            self.static_members
                                .insert(instance.clone(), member_id.clone());
                        }
                        self.members.insert(member_id.clone(), m);
                        bump = true;
                    }
                }
            }
        } else {
            let Some(m) = self.members.get(&member_id) else {
                return fail(
                    UNKNOWN_MEMBER_ID,
                    format!(
                        "Member {member_id} is not a member of group {}.",
                        self.group_id
                    ),
                );
            };
            if let Some(instance) = &p.instance_id {
                match self.static_members.get(instance) {
                    None => {
                        return fail(
                            UNKNOWN_MEMBER_ID,
                            format!("Instance id {instance} is unknown."),
                        );
                    }
                    Some(id) if *id != member_id => {
                        return fail(
                            FENCED_INSTANCE_ID,
                            format!(
                                "Static member {member_id} with instance id {instance} was fenced by member {id}."
                            ),
                        );
                    }
                    Some(_) => {}
                }
            }
            if p.member_epoch > m.member_epoch {
                return fail(
                    FENCED_MEMBER_EPOCH,
                    format!(
                        "The consumer group member has a greater member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                        p.member_epoch, m.member_epoch
                    ),
                );
            }
            if p.member_epoch < m.member_epoch {
                // Only the previous epoch is accepted, when the answer that bumped it was lost:
                // the member must not claim partitions it was not given.
                let lost_response = p.member_epoch == m.previous_member_epoch
                    && p.owned.as_ref().is_some_and(|o| subset(o, &m.assigned));
                if !lost_response {
                    return fail(
                        FENCED_MEMBER_EPOCH,
                        format!(
                            "The consumer group member has a smaller member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                            p.member_epoch, m.member_epoch
                        ),
                    );
                }
            }
        }

        // Update the member from the request.
        let Some(m) = self.members.get_mut(&member_id) else {
            return fail(UNKNOWN_SERVER_ERROR, "member vanished".into());
        };
        let before = m.metadata_value();
        if p.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        }
        if let Some(names) = &p.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            if names != m.subscribed_topic_names {
                m.subscribed_topic_names = names;
                bump = true;
            }
        }
        if let Some(re) = &p.subscribed_topic_regex {
            let re = (!re.is_empty()).then(|| re.clone());
            if re != m.subscribed_topic_regex {
                m.subscribed_topic_regex = re;
                bump = true;
            }
        }
        if let Some(a) = &p.server_assignor
            && m.server_assignor.as_ref() != Some(a)
        {
            m.server_assignor = Some(a.clone());
            bump = true;
        }
        if p.rack_id.is_some() {
            m.rack_id = p.rack_id.clone();
        }
        if p.instance_id.is_some() {
            m.instance_id = p.instance_id.clone();
        }
        m.client_id = p.client_id.clone();
        m.client_host = p.client_host.clone();
        m.session_deadline = now + session;
        let metadata_changed = m.metadata_value() != before;
        if metadata_changed || p.member_epoch == 0 {
            self.write_member(&member_id, records);
        }

        let subscribed = self.current_subscribed_topics(topics);
        if subscribed != self.subscribed_topics {
            self.subscribed_topics = subscribed;
            if !self.loaded {
                bump = true;
            }
        }
        self.loaded = false;
        if bump {
            self.bump_epoch(records);
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(config, records);
        }

        let (before_epoch, before_assigned, before_state) = {
            let m = &self.members[&member_id];
            (m.member_epoch, m.assigned.clone(), m.state)
        };
        self.reconcile(&member_id, p.owned.as_ref(), now);
        let m = &self.members[&member_id];
        if p.member_epoch == 0
            || m.member_epoch != before_epoch
            || m.assigned != before_assigned
            || m.state != before_state
        {
            self.write_current(&member_id, records);
        }
        let send_assignment = p.member_epoch == 0
            || m.assigned != before_assigned
            || p.owned.as_ref().is_some_and(|o| *o != m.assigned);
        Ok(HeartbeatResult {
            error: NONE,
            message: None,
            member_id,
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: config.consumer_heartbeat_interval_ms,
            assignment: send_assignment.then(|| m.assigned.clone()),
        })
    }

    fn leave(
        &mut self,
        p: &HeartbeatParams,
        config: &GroupConfig,
        now: i64,
        records: &mut Records,
    ) -> Result<HeartbeatResult, Failure> {
        let member_id = match &p.instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => {
                    return fail(
                        UNKNOWN_MEMBER_ID,
                        format!("Instance id {instance} is unknown."),
                    );
                }
                Some(id) if *id != p.member_id => {
                    return fail(
                        FENCED_INSTANCE_ID,
                        format!(
                            "Static member {} with instance id {instance} was fenced by member {id}.",
                            p.member_id
                        ),
                    );
                }
                Some(id) => id.clone(),
            },
            None if self.members.contains_key(&p.member_id) => p.member_id.clone(),
            None => {
                return fail(
                    UNKNOWN_MEMBER_ID,
                    format!(
                        "Member {} is not a member of group {}.",
                        p.member_id, self.group_id
                    ),
                );
            }
        };
        if p.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            if let Some(m) = self.members.get_mut(&member_id) {
                m.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                m.pending_revocation.clear();
                m.state = MemberState::Stable;
                m.revocation_deadline = None;
                m.session_deadline = now + i64::from(config.consumer_session_timeout_ms);
            }
            self.write_current(&member_id, records);
            tracing::info!(group = %self.group_id, member = %member_id, "static member left temporarily");
        } else {
            self.fence_member(&member_id, records);
            tracing::info!(group = %self.group_id, member = %member_id, "member left the group");
        }
        Ok(HeartbeatResult {
            error: NONE,
            message: None,
            member_id,
            member_epoch: p.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// A new target assignment at the group epoch; records for every member whose target moved.
    fn compute_target(&mut self, config: &GroupConfig, records: &mut Records) {
        let assignor_name = self.preferred_assignor(config);
        let partitions: BTreeMap<Uuid, i32> = self.subscribed_topics.values().copied().collect();
        let members: Vec<AssignorMember> = self
            .members
            .values()
            .map(|m| {
                let re = m.regex();
                AssignorMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    topics: self
                        .subscribed_topics
                        .iter()
                        .filter(|(name, _)| m.subscribes(name, re.as_ref()))
                        .map(|(_, (id, _))| *id)
                        .collect(),
                    current: self.target.get(&m.member_id).cloned().unwrap_or_default(),
                }
            })
            .collect();
        let new = assignor::assign(&assignor_name, &members, &partitions);
        for (member_id, a) in new {
            if self.target.get(&member_id) != Some(&a) {
                records.push((
                    target_member_key(&self.group_id, &member_id),
                    Some(target_member_value(&a)),
                ));
                self.target.insert(member_id, a);
            }
        }
        self.assignment_epoch = self.group_epoch;
        records.push((
            target_metadata_key(&self.group_id),
            Some(epoch_value(self.assignment_epoch)),
        ));
        tracing::debug!(group = %self.group_id, epoch = self.assignment_epoch, assignor = %assignor_name, "computed target assignment");
    }

    /// Move `member_id` one step towards its target (Kafka's CurrentAssignmentBuilder).
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: i64) {
        let target_epoch = self.assignment_epoch;
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let Some(m) = self.members.get(member_id) else {
            return;
        };
        if m.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return;
        }
        let step = match m.state {
            MemberState::Stable => m.member_epoch != target_epoch,
            MemberState::UnrevokedPartitions => {
                owned.is_some_and(|o| !intersects(o, &m.pending_revocation))
            }
            MemberState::UnreleasedPartitions => true,
        };
        if !step {
            return;
        }
        let held_by_others: BTreeSet<(Uuid, i32)> = self
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id)
            .flat_map(|(_, o)| o.assigned.iter().chain(o.pending_revocation.iter()))
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            .collect();
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        let keep = intersection(&m.assigned, &target);
        let revoke = difference(&m.assigned, &target);
        if !revoke.is_empty() {
            m.assigned = keep;
            m.pending_revocation = revoke;
            m.state = MemberState::UnrevokedPartitions;
            let timeout = if m.rebalance_timeout_ms > 0 {
                i64::from(m.rebalance_timeout_ms)
            } else {
                300_000
            };
            m.revocation_deadline = Some(now + timeout);
            return;
        }
        let mut assigned = keep;
        let mut unreleased = false;
        for (t, ps) in difference(&target, &m.assigned) {
            for p in ps {
                if held_by_others.contains(&(t, p)) {
                    unreleased = true;
                } else {
                    assigned.entry(t).or_default().insert(p);
                }
            }
        }
        m.assigned = assigned;
        m.pending_revocation.clear();
        m.revocation_deadline = None;
        m.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        if m.member_epoch != target_epoch {
            m.previous_member_epoch = m.member_epoch;
            m.member_epoch = target_epoch;
        }
    }

    /// Fence members whose session ran out or who did not revoke within their rebalance
    /// timeout. Returns whether anything changed.
    pub fn tick(&mut self, now: i64, records: &mut Records) -> bool {
        let expired: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if m.session_deadline <= now {
                    Some((m.member_id.clone(), "session timed out"))
                } else if m.revocation_deadline.is_some_and(|d| d <= now) {
                    Some((
                        m.member_id.clone(),
                        "did not revoke its partitions within the rebalance timeout",
                    ))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in &expired {
            tracing::info!(group = %self.group_id, member = %id, "member fenced: {why}");
            self.fence_member(id, records);
        }
        !expired.is_empty()
    }

    /// Kafka's ConsumerGroup.validateOffsetCommit: the member epoch stands in for the
    /// generation; a commit without one is only taken while nobody is in the group.
    pub fn validate_offset_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), i16> {
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let Some(m) = self.members.get(member_id) else {
            return Err(UNKNOWN_MEMBER_ID);
        };
        if member_epoch != m.member_epoch {
            return Err(STALE_MEMBER_EPOCH);
        }
        Ok(())
    }

    /// Tombstones for every record of the group (DeleteGroups, or a switch to the classic
    /// protocol).
    pub fn tombstones(&self) -> Records {
        let mut records = Records::new();
        for id in self.members.keys() {
            records.push((current_assignment_key(&self.group_id, id), None));
            records.push((target_member_key(&self.group_id, id), None));
            records.push((member_metadata_key(&self.group_id, id), None));
        }
        records.push((target_metadata_key(&self.group_id), None));
        records.push((partition_metadata_key(&self.group_id), None));
        records.push((group_metadata_key(&self.group_id), None));
        records
    }

    /// Replay one record at load.
    pub fn apply(&mut self, r: ConsumerRecord, now: i64, session_timeout_ms: i64) {
        self.loaded = true;
        match r {
            ConsumerRecord::GroupMetadata { epoch, .. } => {
                self.group_epoch = epoch.unwrap_or(0);
            }
            ConsumerRecord::TargetMetadata {
                assignment_epoch, ..
            } => self.assignment_epoch = assignment_epoch.unwrap_or(0),
            ConsumerRecord::MemberMetadata { member, value, .. } => match value {
                None => {
                    if let Some(m) = self.members.remove(&member)
                        && let Some(i) = m.instance_id
                        && self.static_members.get(&i) == Some(&member)
                    {
                        self.static_members.remove(&i);
                    }
                }
                Some(v) => {
                    let m = self
                        .members
                        .entry(member.clone())
                        .or_insert_with(|| ConsumerMember::new(&member, now, session_timeout_ms));
                    if let Some(i) = &v.instance_id {
                        self.static_members.insert(i.clone(), member.clone());
                    }
                    m.instance_id = v.instance_id;
                    m.rack_id = v.rack_id;
                    m.client_id = v.client_id;
                    m.client_host = v.client_host;
                    m.subscribed_topic_names = v.subscribed_topic_names;
                    m.subscribed_topic_regex = v.subscribed_topic_regex;
                    m.rebalance_timeout_ms = v.rebalance_timeout_ms;
                    m.server_assignor = v.server_assignor;
                }
            },
            ConsumerRecord::TargetMember { member, value, .. } => match value {
                None => {
                    self.target.remove(&member);
                }
                Some(a) => {
                    self.target.insert(member, a);
                }
            },
            ConsumerRecord::CurrentAssignment { member, value, .. } => {
                if let Some(v) = value {
                    let m = self
                        .members
                        .entry(member.clone())
                        .or_insert_with(|| ConsumerMember::new(&member, now, session_timeout_ms));
                    m.member_epoch = v.member_epoch;
                    m.previous_member_epoch = v.previous_member_epoch;
                    m.state = MemberState::from_code(v.state);
                    m.assigned = v.assigned;
                    m.pending_revocation = v.pending_revocation;
                    if m.state == MemberState::UnrevokedPartitions {
                        m.revocation_deadline = Some(
                            now + i64::from(m.rebalance_timeout_ms.max(0)).max(session_timeout_ms),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Topics(BTreeMap<String, (Uuid, i32)>);

    impl TopicsView for Topics {
        fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
            self.0.get(name).copied()
        }
        fn names(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
        fn name_of(&self, id: &Uuid) -> Option<String> {
            self.0
                .iter()
                .find(|(_, (i, _))| i == id)
                .map(|(n, _)| n.clone())
        }
    }

    const T: Uuid = Uuid::from_u128(42);

    fn topics() -> Topics {
        Topics([("t".to_string(), (T, 6))].into())
    }

    fn config() -> GroupConfig {
        GroupConfig::default()
    }

    fn join(id: &str) -> HeartbeatParams {
        HeartbeatParams {
            group_id: "g".into(),
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(Assignment::new()),
            api_version: 1,
            ..Default::default()
        }
    }

    fn beat(id: &str, epoch: i32, owned: Option<&Assignment>) -> HeartbeatParams {
        HeartbeatParams {
            group_id: "g".into(),
            member_id: id.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: owned.cloned(),
            api_version: 1,
            ..Default::default()
        }
    }

    fn hb(g: &mut ConsumerGroup, p: HeartbeatParams, now: i64) -> Result<HeartbeatResult, Failure> {
        let mut records = Records::new();
        g.heartbeat(&p, &config(), &topics(), now, &mut records)
    }

    fn parts(a: &Assignment) -> BTreeSet<i32> {
        a.get(&T).cloned().unwrap_or_default()
    }

    #[test]
    fn revoke_before_assign_and_no_partition_has_two_owners() {
        let mut g = ConsumerGroup::new("g");
        let a = hb(&mut g, join("a"), 0).expect("a joins");
        assert_eq!(a.member_epoch, 1);
        let a_parts = a.assignment.expect("full assignment on join");
        assert_eq!(parts(&a_parts).len(), 6);

        let b = hb(&mut g, join("b"), 10).expect("b joins");
        assert_eq!(g.group_epoch, 2);
        // b's target partitions are still a's: b gets the epoch but nothing yet.
        assert_eq!(b.member_epoch, 2);
        assert!(parts(&b.assignment.expect("sent")).is_empty());
        assert_eq!(g.members["b"].state, MemberState::UnreleasedPartitions);

        // a must revoke three partitions first, keeping its epoch.
        let a2 = hb(&mut g, beat("a", 1, None), 20).expect("a heartbeats");
        assert_eq!(a2.member_epoch, 1);
        let kept = a2.assignment.expect("smaller assignment");
        assert_eq!(parts(&kept).len(), 3);
        assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
        // b still cannot have them.
        let b2 = hb(&mut g, beat("b", 2, None), 30).expect("b heartbeats");
        assert!(b2.assignment.is_none());
        // a says it revoked: it reaches epoch 2.
        let a3 = hb(&mut g, beat("a", 1, Some(&kept)), 40).expect("a acks");
        assert_eq!(a3.member_epoch, 2);
        // now b gets the three partitions a gave up.
        let b3 = hb(&mut g, beat("b", 2, None), 50).expect("b heartbeats");
        let b_parts = parts(&b3.assignment.expect("b's partitions"));
        assert_eq!(b_parts.len(), 3);
        assert!(b_parts.is_disjoint(&parts(&kept)));
        assert_eq!(g.state(), ConsumerGroupState::Stable);
    }

    #[test]
    fn epochs_are_checked_like_kafka() {
        let mut g = ConsumerGroup::new("g");
        hb(&mut g, join("a"), 0).expect("join");
        let err = hb(&mut g, beat("a", 5, None), 1).expect_err("future epoch");
        assert_eq!(err.0, FENCED_MEMBER_EPOCH);
        let err = hb(&mut g, beat("zz", 1, None), 1).expect_err("unknown");
        assert_eq!(err.0, UNKNOWN_MEMBER_ID);
        // A lost response: the previous epoch with owned partitions it was given is fine.
        let owned: Assignment = [(T, [0, 1].into())].into();
        let ok = hb(&mut g, beat("a", 0, Some(&owned)), 2).expect("previous epoch");
        assert_eq!(ok.member_epoch, 1);
    }

    #[test]
    fn session_timeout_fences_and_static_member_comes_back_without_rebalance() {
        let mut g = ConsumerGroup::new("g");
        let mut p = join("s1");
        p.instance_id = Some("inst".into());
        hb(&mut g, p, 0).expect("join");
        hb(&mut g, join("d"), 0).expect("join");
        let epoch = g.group_epoch;
        let mut leave = beat("s1", LEAVE_GROUP_STATIC_MEMBER_EPOCH, None);
        leave.instance_id = Some("inst".into());
        hb(&mut g, leave, 1).expect("static leave");
        assert_eq!(g.group_epoch, epoch, "a static leave does not rebalance");
        let mut back = join("s2");
        back.instance_id = Some("inst".into());
        let r = hb(&mut g, back, 2).expect("rejoin");
        assert_eq!(g.group_epoch, epoch);
        assert!(g.members.contains_key("s2") && !g.members.contains_key("s1"));
        assert_eq!(r.member_epoch, epoch);

        // Another member claiming the live instance id is refused.
        let mut thief = join("s3");
        thief.instance_id = Some("inst".into());
        assert_eq!(
            hb(&mut g, thief, 3).expect_err("unreleased").0,
            UNRELEASED_INSTANCE_ID
        );

        let mut records = Records::new();
        let later = 3 + i64::from(config().consumer_session_timeout_ms) + 1;
        let d_epoch = g.members["d"].member_epoch;
        hb(&mut g, beat("d", d_epoch, None), later - 10).expect("d alive");
        assert!(g.tick(later, &mut records));
        assert!(!g.members.contains_key("s2"));
        assert!(g.members.contains_key("d"));
        assert_eq!(g.group_epoch, epoch + 1);
    }

    #[test]
    fn records_replay_to_the_same_group() {
        let mut g = ConsumerGroup::new("g");
        let mut records = Records::new();
        for (i, id) in ["a", "b"].iter().enumerate() {
            g.heartbeat(&join(id), &config(), &topics(), i as i64, &mut records)
                .expect("join");
        }
        let mut r = ConsumerGroup::new("g");
        for (k, v) in &records {
            let kind = i16::from_be_bytes([k[0], k[1]]);
            if let Some(rec) = decode(kind, k, v.as_deref()).expect("decodes") {
                r.apply(rec, 100, 45_000);
            }
        }
        assert_eq!(r.group_epoch, g.group_epoch);
        assert_eq!(r.assignment_epoch, g.assignment_epoch);
        assert_eq!(r.target, g.target);
        for (id, m) in &g.members {
            assert_eq!(r.members[id].assigned, m.assigned);
            assert_eq!(r.members[id].member_epoch, m.member_epoch);
            assert_eq!(
                r.members[id].subscribed_topic_names,
                m.subscribed_topic_names
            );
        }
    }
}
