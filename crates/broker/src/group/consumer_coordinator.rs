//! The GroupCoordinator's side of the consumer group protocol (KIP-848): ConsumerGroupHeartbeat
//! and ConsumerGroupDescribe, the consumer groups' deadlines, their records at load, and where
//! they meet classic groups (a group is one or the other; committed offsets are shared).
//!
//! The state machine itself is `consumer_group`; this module finds or creates the group under the
//! coordinator's lock, persists the records a step produced before answering, and restores the
//! group if that write fails, so memory never runs ahead of `__consumer_offsets`.

use super::consumer_group::{
    ConsumerGroup, ConsumerGroupState, HeartbeatParams, HeartbeatResult, Records, TopicsView,
    validate_request,
};
use super::consumer_records::ConsumerRecord;
use super::coordinator::GroupCoordinator;
use super::errors::*;
use super::group::{GroupMetadata, GroupState};
use super::persistence::{OffsetsLog, partition_for};
use super::{GroupConfig, assignor::Assignment};
use std::collections::HashMap;

/// One member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<ConsumerMemberDescription>,
}

fn append(log: &dyn OffsetsLog, group_id: &str, records: &Records, now: i64) -> Result<(), i16> {
    if records.is_empty() {
        return Ok(());
    }
    let partition = partition_for(group_id, log.partition_count());
    log.append(partition, records, now)
        .map_err(|_| COORDINATOR_NOT_AVAILABLE)
}

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat: join, heartbeat, reconcile or leave.
    pub fn consumer_group_heartbeat(
        &self,
        p: HeartbeatParams,
        topics: &dyn TopicsView,
        now: i64,
        log: &dyn OffsetsLog,
    ) -> HeartbeatResult {
        if let Err((code, message)) = validate_request(&p, &self.config) {
            return HeartbeatResult::error(code, message);
        }
        let mut groups = self.groups.lock();
        match groups.get(&p.group_id) {
            Some(g)
                if g.consumer.is_none() && !(g.is(GroupState::Empty) && g.members.is_empty()) =>
            {
                return HeartbeatResult::error(
                    GROUP_ID_NOT_FOUND,
                    format!("Group {} is not a consumer group.", p.group_id),
                );
            }
            None if p.member_epoch < 0 => {
                return HeartbeatResult::error(
                    GROUP_ID_NOT_FOUND,
                    format!("Group {} not found.", p.group_id),
                );
            }
            None if p.member_epoch != 0 => {
                return HeartbeatResult::error(
                    UNKNOWN_MEMBER_ID,
                    format!("Consumer group {} not found.", p.group_id),
                );
            }
            _ => {}
        }
        let created = !groups.contains_key(&p.group_id);
        let g = groups
            .entry(p.group_id.clone())
            .or_insert_with(|| GroupMetadata::new(&p.group_id, now));
        let previous_type = g.protocol_type.clone();
        let backup = g.consumer.clone();
        let cg = g
            .consumer
            .get_or_insert_with(|| Box::new(ConsumerGroup::new(&p.group_id)));
        let was_empty = cg.members.is_empty();
        let mut records = Records::new();
        let outcome = cg.heartbeat(&p, &self.config, topics, now, &mut records);
        let is_empty = cg.members.is_empty();
        let outcome = outcome.and_then(|r| {
            append(log, &p.group_id, &records, now)
                .map(|()| r)
                .map_err(|code| (code, "Writing the group's records failed.".to_string()))
        });
        let (result, forget) = match outcome {
            Ok(result) => {
                g.protocol_type = Some("consumer".to_string());
                if was_empty != is_empty {
                    // Offsets of an empty group expire from when it became empty.
                    g.state_timestamp = now;
                }
                (result, false)
            }
            Err((code, message)) => {
                g.consumer = backup;
                g.protocol_type = previous_type;
                (HeartbeatResult::error(code, message), created)
            }
        };
        if forget {
            groups.remove(&p.group_id);
        }
        result
    }

    /// ConsumerGroupDescribe of one group: `Err` is the error code and message to answer with.
    pub fn describe_consumer_group(
        &self,
        group_id: &str,
    ) -> Result<ConsumerGroupDescription, (i16, String)> {
        if group_id.is_empty() {
            return Err((INVALID_GROUP_ID, "Group id can't be empty.".to_string()));
        }
        let groups = self.groups.lock();
        let Some(g) = groups.get(group_id).filter(|g| !g.is(GroupState::Dead)) else {
            return Err((GROUP_ID_NOT_FOUND, format!("Group {group_id} not found.")));
        };
        let Some(c) = &g.consumer else {
            return Err((
                GROUP_ID_NOT_FOUND,
                format!("Group {group_id} is not a consumer group."),
            ));
        };
        Ok(ConsumerGroupDescription {
            state: c.state(),
            group_epoch: c.group_epoch,
            assignment_epoch: c.assignment_epoch,
            assignor_name: c.preferred_assignor(&self.config),
            members: c
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.clone(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    assignment: m.assigned.clone(),
                    target_assignment: c.target.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// (state, group epoch, members) of a consumer group (tests and diagnostics).
    pub fn consumer_group_state(&self, group_id: &str) -> Option<(ConsumerGroupState, i32, usize)> {
        let groups = self.groups.lock();
        let c = groups.get(group_id)?.consumer.as_ref()?;
        Some((c.state(), c.group_epoch, c.members.len()))
    }
}

/// Fence consumer-group members whose session or rebalance timeout ran out (the coordinator's
/// deadline sweep, lock held).
pub fn tick_consumer_group(g: &mut GroupMetadata, log: &dyn OffsetsLog, now: i64) {
    let Some(c) = g.consumer.as_mut() else {
        return;
    };
    let mut records = Records::new();
    if !c.tick(now, &mut records) {
        return;
    }
    if c.members.is_empty() {
        g.state_timestamp = now;
    }
    if let Err(code) = append(log, &g.group_id, &records, now) {
        // The members are gone from memory either way: a member that stopped heartbeating must
        // not keep its partitions. After a restart the records say it is still there, and its
        // session expires again.
        tracing::warn!(group = %g.group_id, code, "writing fenced members' tombstones failed");
    }
}

/// A classic JoinGroup on a group that is a consumer group: refused while it has members
/// (INCONSISTENT_GROUP_PROTOCOL, as Kafka without online migration); an empty consumer group
/// becomes a classic group, its consumer records tombstoned and its offsets kept.
pub fn classic_join_allowed(
    g: &mut GroupMetadata,
    log: &dyn OffsetsLog,
    now: i64,
) -> Result<(), i16> {
    let Some(c) = &g.consumer else {
        return Ok(());
    };
    if !c.members.is_empty() {
        return Err(INCONSISTENT_GROUP_PROTOCOL);
    }
    append(log, &g.group_id, &c.tombstones(), now)?;
    g.consumer = None;
    g.protocol_type = None;
    Ok(())
}

/// Replay a consumer-group record at load.
pub fn apply_record(
    groups: &mut HashMap<String, GroupMetadata>,
    r: ConsumerRecord,
    now: i64,
    config: &GroupConfig,
) {
    let group = match &r {
        ConsumerRecord::GroupMetadata { group, .. }
        | ConsumerRecord::MemberMetadata { group, .. }
        | ConsumerRecord::TargetMetadata { group, .. }
        | ConsumerRecord::TargetMember { group, .. }
        | ConsumerRecord::CurrentAssignment { group, .. } => group.clone(),
    };
    if let ConsumerRecord::GroupMetadata { epoch: None, .. } = r {
        // The group was deleted (or switched to classic); its offsets may remain.
        if let Some(g) = groups.get_mut(&group) {
            g.consumer = None;
            g.protocol_type = None;
            if g.offsets.is_empty() && g.members.is_empty() {
                groups.remove(&group);
            }
        }
        return;
    }
    let g = groups
        .entry(group.clone())
        .or_insert_with(|| GroupMetadata::new(&group, now));
    // A classic group record before this one is superseded: the group is a consumer group now.
    g.members.clear();
    g.static_members.clear();
    g.state = GroupState::Empty;
    g.protocol_type = Some("consumer".to_string());
    g.consumer
        .get_or_insert_with(|| Box::new(ConsumerGroup::new(&group)))
        .apply(r, now, i64::from(config.consumer_session_timeout_ms));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::consumer_group::{FENCED_MEMBER_EPOCH, STALE_MEMBER_EPOCH};
    use crate::group::coordinator::{CommitOffset, CommitParams, JoinParams, Reply};
    use crate::group::persistence::{AppendError, decode_record};
    use bytes::Bytes;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    #[derive(Default)]
    struct MemLog {
        records: RefCell<Vec<(Bytes, Option<Bytes>)>>,
        fail: RefCell<bool>,
    }

    impl OffsetsLog for MemLog {
        fn partition_count(&self) -> i32 {
            50
        }
        fn append(
            &self,
            _partition: i32,
            records: &[(Bytes, Option<Bytes>)],
            _now_ms: i64,
        ) -> Result<(), AppendError> {
            if *self.fail.borrow() {
                return Err(AppendError::Unavailable);
            }
            self.records.borrow_mut().extend(records.iter().cloned());
            Ok(())
        }
    }

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

    fn topics() -> Topics {
        Topics([("t".to_string(), (Uuid::from_u128(9), 4))].into())
    }

    fn join(member: &str) -> HeartbeatParams {
        HeartbeatParams {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(Assignment::new()),
            api_version: 1,
            ..Default::default()
        }
    }

    fn commit(member: &str, epoch: i32) -> CommitParams {
        CommitParams {
            group_id: "g".into(),
            member_id: member.into(),
            group_instance_id: None,
            generation_id: epoch,
            api_version: 9,
            retention_time_ms: -1,
            offsets: vec![CommitOffset {
                topic: "t".into(),
                partition: 0,
                offset: 42,
                leader_epoch: None,
                metadata: None,
            }],
        }
    }

    #[test]
    fn consumer_groups_commit_by_epoch_reload_and_exclude_classic_members() {
        let c = GroupCoordinator::new(GroupConfig::default());
        let log = MemLog::default();
        let r = c.consumer_group_heartbeat(join("m1"), &topics(), 0, &log);
        assert_eq!((r.error, r.member_epoch), (NONE, 1));

        assert_eq!(c.commit_offsets(commit("m1", 1), 1, &log), Ok(vec![NONE]));
        assert_eq!(
            c.commit_offsets(commit("m1", 0), 1, &log),
            Err(STALE_MEMBER_EPOCH)
        );
        assert_eq!(
            c.commit_offsets(commit("nobody", 1), 1, &log),
            Err(UNKNOWN_MEMBER_ID)
        );

        let listed = c.list_groups();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].group_type, listed[0].state_name),
            ("consumer", "Stable")
        );
        assert!(c.describe_group("g").is_none(), "not a classic group");

        // A classic member cannot join while the consumer group has members.
        let classic = JoinParams {
            group_id: "g".into(),
            member_id: String::new(),
            group_instance_id: None,
            require_known_member_id: false,
            supports_skip_assignment: false,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 30_000,
            session_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"x"))],
        };
        match c.join_group(classic, 2, &log) {
            Reply::Now(j) => assert_eq!(j.error, INCONSISTENT_GROUP_PROTOCOL),
            Reply::Wait(_) => panic!("must be refused at once"),
        }
        assert_eq!(
            c.delete_groups(&["g".into()], 3, &log),
            vec![NON_EMPTY_GROUP]
        );
        assert_eq!(
            c.delete_offsets("g", &[("t".into(), 0)], 3, &log),
            Ok(vec![GROUP_SUBSCRIBED_TO_TOPIC])
        );

        // A failed write leaves the group as it was.
        *log.fail.borrow_mut() = true;
        let r = c.consumer_group_heartbeat(join("m2"), &topics(), 4, &log);
        assert_eq!(r.error, COORDINATOR_NOT_AVAILABLE);
        assert_eq!(c.consumer_group_state("g").map(|s| s.2), Some(1));
        *log.fail.borrow_mut() = false;

        // Replaying the records rebuilds the group, its member and its offsets.
        let records: Vec<_> = log
            .records
            .borrow()
            .iter()
            .filter_map(|(k, v)| decode_record(k, v.as_deref()).ok().flatten())
            .collect();
        let reloaded = GroupCoordinator::new(GroupConfig::default());
        reloaded.apply_records(records, 10);
        assert_eq!(
            reloaded.consumer_group_state("g"),
            Some((ConsumerGroupState::Stable, 1, 1))
        );
        assert_eq!(
            reloaded.commit_offsets(commit("m1", 1), 11, &log),
            Ok(vec![NONE])
        );
        let fetched = reloaded.fetch_offsets("g", None, false);
        assert_eq!(fetched[0].1[0].offset, 42);
        // The member carries on with its epoch, without a rebalance.
        let mut beat = join("m1");
        beat.member_epoch = 1;
        beat.owned = None;
        beat.rebalance_timeout_ms = -1;
        beat.subscribed_topic_names = None;
        let r = reloaded.consumer_group_heartbeat(beat.clone(), &topics(), 12, &log);
        assert_eq!((r.error, r.member_epoch), (NONE, 1));
        beat.member_epoch = 7;
        let r = reloaded.consumer_group_heartbeat(beat, &topics(), 13, &log);
        assert_eq!(r.error, FENCED_MEMBER_EPOCH);

        // Leaving empties the group; then it can be deleted, offsets and all.
        let mut leave = join("m1");
        leave.member_epoch = -1;
        let r = reloaded.consumer_group_heartbeat(leave, &topics(), 14, &log);
        assert_eq!((r.error, r.member_epoch), (NONE, -1));
        assert_eq!(
            reloaded.consumer_group_state("g").map(|s| s.0),
            Some(ConsumerGroupState::Empty)
        );
        assert_eq!(reloaded.delete_groups(&["g".into()], 15, &log), vec![NONE]);
        assert!(reloaded.list_groups().is_empty());
    }
}
