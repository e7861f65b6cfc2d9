//! A classic group's state (Kafka's GroupMetadata): members, generation, selected protocol,
//! committed offsets, and the rebalance state machine's states.

use super::member::MemberMetadata;
use super::offsets::OffsetAndMetadata;
use super::persistence::{GroupValue, MemberValue};
use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::consumer_protocol_subscription::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use std::collections::{BTreeSet, HashMap, HashSet};

/// The classic group states, with Kafka's names (ListGroups and DescribeGroups report them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for the members to (re)join; JoinGroup requests are parked.
    PreparingRebalance,
    /// The join completed; waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Every member has its assignment; heartbeats keep it so.
    Stable,
    /// Deleted or unloaded; nothing is accepted.
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a JoinGroup is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: i16,
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    pub skip_assignment: bool,
    /// Only for the leader: every member's metadata for the selected protocol.
    pub members: Vec<JoinMember>,
}

impl JoinResult {
    pub fn error(member_id: &str, error: i16) -> JoinResult {
        JoinResult {
            error,
            member_id: member_id.to_string(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// What a SyncGroup is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: i16) -> SyncResult {
        SyncResult {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// The first rebalance of an empty group waits `group.initial.rebalance.delay.ms`, and again
/// (up to the rebalance timeout) while new members keep arriving (Kafka's InitialDelayedJoin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialDelay {
    pub delay_ms: i64,
    pub remaining_ms: i64,
}

#[derive(Debug)]
pub struct GroupMetadata {
    pub group_id: String,
    pub state: GroupState,
    /// When the group entered its current state (persisted as currentStateTimestamp; the base
    /// for offset expiry once the group is empty).
    pub state_timestamp: i64,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation_id: i32,
    pub leader_id: Option<String>,
    /// In join order: the first member becomes leader.
    pub members: IndexMap<String, MemberMetadata>,
    /// group.instance.id → member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, and when they lapse if unused.
    pub pending_members: HashMap<String, i64>,
    /// Members that must send SyncGroup for the current generation.
    pub pending_sync: HashSet<String>,
    pub pending_sync_deadline: Option<i64>,
    /// When the PreparingRebalance phase completes even if members are missing.
    pub join_deadline: Option<i64>,
    pub initial_delay: Option<InitialDelay>,
    pub new_member_added: bool,
    pub offsets: HashMap<(String, i32), OffsetAndMetadata>,
    /// Set when the group is a consumer group of the KIP-848 protocol (its type is "consumer");
    /// the classic fields above then stay empty and only `offsets` is shared.
    pub consumer: Option<Box<super::consumer_group::ConsumerGroup>>,
}

impl GroupMetadata {
    pub fn new(group_id: &str, now_ms: i64) -> GroupMetadata {
        GroupMetadata {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            state_timestamp: now_ms,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            pending_sync_deadline: None,
            join_deadline: None,
            initial_delay: None,
            new_member_added: false,
            offsets: HashMap::new(),
            consumer: None,
        }
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub fn transition_to(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp = now_ms;
    }

    /// Rebalances start from these states; PreparingRebalance is already one, Dead never.
    pub fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    pub fn add_member(&mut self, member: MemberMetadata) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Remove a member; the next member in join order becomes leader if it led.
    pub fn remove_member(&mut self, member_id: &str) -> Option<MemberMetadata> {
        let removed = self.members.shift_remove(member_id);
        if let Some(m) = &removed
            && let Some(instance) = &m.group_instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        removed
    }

    /// A static member came back with a new member id: move its state to the new id.
    /// Returns the old member's parked callbacks so the caller can fence them.
    pub fn replace_static_member(
        &mut self,
        instance_id: &str,
        old_member_id: &str,
        new_member_id: &str,
    ) -> Option<&mut MemberMetadata> {
        let mut member = self.members.shift_remove(old_member_id)?;
        member.member_id = new_member_id.to_string();
        if self.is_leader(old_member_id) {
            self.leader_id = Some(new_member_id.to_string());
        }
        if self.pending_sync.remove(old_member_id) {
            self.pending_sync.insert(new_member_id.to_string());
        }
        self.static_members
            .insert(instance_id.to_string(), new_member_id.to_string());
        self.members.insert(new_member_id.to_string(), member);
        self.members.get_mut(new_member_id)
    }

    pub fn has_all_members_joined(&self) -> bool {
        self.members.values().all(|m| m.is_awaiting_join()) && self.pending_members.is_empty()
    }

    /// The largest rebalance timeout of the members: how long a rebalance may take.
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Protocols every member supports.
    pub fn candidate_protocols(&self) -> HashSet<&str> {
        let mut iter = self.members.values();
        let Some(first) = iter.next() else {
            return HashSet::new();
        };
        let mut set: HashSet<&str> = first.protocols.iter().map(|(n, _)| n.as_str()).collect();
        for m in iter {
            set.retain(|p| m.supports(p));
        }
        set
    }

    /// Whether a member with these protocols may join: an empty group takes any (non-empty)
    /// protocol type; otherwise the type must match and one protocol must be supported by all.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols
            .iter()
            .any(|(n, _)| candidates.contains(n.as_str()))
    }

    /// Kafka's vote: each member votes for its most preferred protocol that all members
    /// support; the most votes wins (ties go to the earliest vote in join order).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: IndexMap<&str, usize> = IndexMap::new();
        for m in self.members.values() {
            if let Some(p) = m.vote(&candidates) {
                *votes.entry(p).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (p, n) in votes {
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((p, n));
            }
        }
        best.map(|(p, _)| p.to_string())
    }

    /// Every member's metadata for the selected protocol, for the leader's JoinGroup answer.
    pub fn current_member_metadata(&self) -> Vec<super::group::JoinMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    /// Topics the members subscribe to, when the group uses the consumer protocol and every
    /// subscription decodes; `None` when that cannot be known.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            let meta = m.metadata(protocol);
            if meta.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]);
            let mut body = meta.slice(2..);
            let sub = ConsumerProtocolSubscription::decode(&mut body, version.clamp(0, 3)).ok()?;
            topics.extend(sub.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    /// The persisted form (GroupMetadataValue).
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol_name.clone();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: protocol.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: m.metadata(protocol.as_deref().unwrap_or_default()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Restore a group from its persisted form: Stable with its members (who get a fresh
    /// session to heartbeat in), or Empty. Offsets are kept.
    pub fn apply_value(&mut self, v: GroupValue, now_ms: i64) {
        self.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type.clone());
        self.generation_id = v.generation;
        self.protocol_name = v.protocol.clone();
        self.leader_id = v.leader;
        self.state_timestamp = if v.current_state_timestamp >= 0 {
            v.current_state_timestamp
        } else {
            now_ms
        };
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        self.pending_sync.clear();
        for m in v.members {
            if let Some(instance) = &m.group_instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let protocols = match &v.protocol {
                Some(p) => vec![(p.clone(), m.subscription)],
                None => Vec::new(),
            };
            self.members.insert(
                m.member_id.clone(),
                MemberMetadata {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout,
                    session_timeout_ms: m.session_timeout,
                    protocol_type: v.protocol_type.clone(),
                    protocols,
                    assignment: m.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                    is_new: false,
                    last_heartbeat_ms: now_ms,
                },
            );
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        if self
            .leader_id
            .as_ref()
            .is_some_and(|l| !self.members.contains_key(l))
        {
            self.leader_id = self.members.keys().next().cloned();
        }
    }
}
