//! One hosted partition: its log, its role (leader, follower, offline), the ISR as the leader
//! sees it, each follower's progress, and the high watermark (Kafka's `Partition`).
//!
//! The leader's high watermark is the smallest log end offset among the in-sync replicas
//! (itself included) and never moves back; a follower's is what its leader last reported,
//! bounded by its own log end. With this node the only replica, the high watermark is the log
//! end offset, as it was before replication.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use strom_log::Log;
use strom_meta::PartitionMeta;

use super::Progress;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower {
        leader: i32,
    },
    /// No leader, or this node no longer a replica: neither serves nor fetches.
    Offline,
}

/// What the leader knows of one follower (Kafka's `Replica` state).
#[derive(Debug, Clone, Copy)]
struct FollowerState {
    /// The follower's log end offset: the offset of its last fetch; -1 until it fetches.
    log_end_offset: i64,
    /// The last time it was fully caught up with the leader's log end.
    last_caught_up_ms: i64,
    /// The leader's log end offset and the time at its previous fetch.
    last_fetch_leader_leo: i64,
    last_fetch_ms: i64,
}

impl FollowerState {
    fn new(in_isr: bool, now_ms: i64) -> FollowerState {
        FollowerState {
            log_end_offset: -1,
            // ISR members get a full lag period to fetch after a leader change.
            last_caught_up_ms: if in_isr { now_ms } else { 0 },
            last_fetch_leader_leo: -1,
            last_fetch_ms: 0,
        }
    }
}

#[derive(Debug)]
struct State {
    role: Role,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    /// The committed ISR (from the metadata image).
    isr: Vec<i32>,
    /// An AlterPartition in flight (Kafka's pending ISR state): no other change is sent until
    /// the image shows its outcome.
    pending_isr: Option<Vec<i32>>,
    followers: HashMap<i32, FollowerState>,
    /// The log end offset when this node became leader of `leader_epoch`: a follower must reach
    /// it before joining the ISR, so records of older epochs it may lack are never counted.
    leader_epoch_start_offset: i64,
}

pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    pub topic_id: Uuid,
    pub log: Log,
    node_id: i32,
    state: RwLock<State>,
    high_watermark: AtomicI64,
    /// The value last written to the log's high-watermark checkpoint.
    checkpointed_hw: AtomicI64,
    /// Signalled by every high-watermark move (see `Progress`).
    progress: Progress,
}

/// A follower fetch's effect on the leader.
#[derive(Debug, Default)]
pub struct FollowerUpdate {
    /// The ISR to request (with the follower added), when it just caught up.
    pub expand_isr: Option<IsrChange>,
}

/// An ISR change to send to the controller (AlterPartition), with the epochs it is based on.
#[derive(Debug, Clone)]
pub struct IsrChange {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

impl Partition {
    /// A partition as the image describes it; `apply` then sets its role.
    pub fn new(
        topic: Arc<str>,
        index: i32,
        topic_id: Uuid,
        log: Log,
        node_id: i32,
        meta: &PartitionMeta,
        progress: Progress,
    ) -> Partition {
        // Never expose more than was committed before a restart.
        let hw = log
            .high_watermark_checkpoint()
            .unwrap_or_else(|| log.log_start_offset());
        let partition = Partition {
            topic,
            index,
            topic_id,
            log,
            node_id,
            state: RwLock::new(State {
                role: Role::Offline,
                leader_epoch: -1,
                partition_epoch: -1,
                replicas: Vec::new(),
                isr: Vec::new(),
                pending_isr: None,
                followers: HashMap::new(),
                leader_epoch_start_offset: 0,
            }),
            high_watermark: AtomicI64::new(hw),
            checkpointed_hw: AtomicI64::new(hw),
            progress,
        };
        partition.apply(meta, now_ms());
        partition
    }

    /// Takes the leader, epoch, replicas and ISR of the image. Returns the new role when the
    /// leadership changed (new leader or new leader epoch), so the caller starts or stops
    /// fetching; `None` when only the ISR (or nothing) changed.
    pub fn apply(&self, meta: &PartitionMeta, now_ms: i64) -> Option<Role> {
        let mut s = self.state.write();
        let role = if !meta.replicas.contains(&self.node_id) || meta.leader < 0 {
            Role::Offline
        } else if meta.leader == self.node_id {
            Role::Leader
        } else {
            Role::Follower {
                leader: meta.leader,
            }
        };
        let leadership_changed = role != s.role || meta.leader_epoch != s.leader_epoch;
        if !leadership_changed && meta.partition_epoch < s.partition_epoch {
            return None; // an older image than one already applied
        }
        if meta.partition_epoch != s.partition_epoch || leadership_changed {
            s.pending_isr = None;
        }
        s.replicas = meta.replicas.clone();
        s.isr = meta.isr.clone();
        s.partition_epoch = meta.partition_epoch;
        if !leadership_changed {
            if role == Role::Leader {
                // Replicas added by a reassignment get a state; removed ones lose theirs.
                for r in meta.replicas.iter().filter(|r| **r != self.node_id) {
                    s.followers
                        .entry(*r)
                        .or_insert_with(|| FollowerState::new(meta.isr.contains(r), now_ms));
                }
                let replicas = meta.replicas.clone();
                s.followers.retain(|r, _| replicas.contains(r));
            }
            return None;
        }
        s.role = role;
        s.leader_epoch = meta.leader_epoch;
        s.followers.clear();
        if role == Role::Leader {
            for r in meta.replicas.iter().filter(|r| **r != self.node_id) {
                s.followers
                    .insert(*r, FollowerState::new(meta.isr.contains(r), now_ms));
            }
            let leo = self.log.log_end_offset();
            s.leader_epoch_start_offset = leo;
            // The epoch starts here even before its first record, so OffsetForLeaderEpoch
            // answers followers of the old epoch with where it ended.
            if let Err(e) = self.log.assign_epoch_start(meta.leader_epoch) {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "recording leader epoch failed");
            }
        }
        drop(s);
        if role == Role::Leader {
            self.maybe_increment_high_watermark();
        }
        tracing::info!(
            topic = %self.topic,
            partition = self.index,
            role = ?role,
            leader_epoch = meta.leader_epoch,
            isr = ?meta.isr,
            log_end_offset = self.log.log_end_offset(),
            high_watermark = self.high_watermark.load(Ordering::Acquire),
            "partition role changed"
        );
        Some(role)
    }

    pub fn role(&self) -> Role {
        self.state.read().role
    }

    pub fn is_leader(&self) -> bool {
        self.state.read().role == Role::Leader
    }

    pub fn leader_epoch(&self) -> i32 {
        self.state.read().leader_epoch
    }

    /// The leader as this node knows it (-1 when none), with its epoch.
    pub fn leader_and_epoch(&self) -> (i32, i32) {
        let s = self.state.read();
        let leader = match s.role {
            Role::Leader => self.node_id,
            Role::Follower { leader } => leader,
            Role::Offline => -1,
        };
        (leader, s.leader_epoch)
    }

    /// The committed ISR.
    pub fn isr(&self) -> Vec<i32> {
        self.state.read().isr.clone()
    }

    pub fn replicas(&self) -> Vec<i32> {
        self.state.read().replicas.clone()
    }

    /// The high watermark: records below it are committed and visible to consumers.
    pub fn high_watermark(&self) -> i64 {
        if self.is_leader() {
            self.maybe_increment_high_watermark();
        }
        self.high_watermark
            .load(Ordering::Acquire)
            .min(self.log.log_end_offset())
    }

    /// Below it every transaction is decided: read_committed consumers stop here.
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset(self.high_watermark())
    }

    /// Leader only: moves the high watermark to the smallest log end offset of the ISR (the
    /// union of the committed and a pending ISR, as Kafka's "maximal ISR"), never back.
    /// Returns whether it moved.
    pub fn maybe_increment_high_watermark(&self) -> bool {
        let s = self.state.read();
        if s.role != Role::Leader {
            return false;
        }
        let mut candidate = self.log.log_end_offset();
        let members = s.isr.iter().chain(s.pending_isr.iter().flatten());
        for r in members.filter(|r| **r != self.node_id) {
            match s.followers.get(r) {
                Some(f) => candidate = candidate.min(f.log_end_offset),
                // An ISR member this leader has no state for (it left the replicas): ignore.
                None => continue,
            }
        }
        drop(s);
        if candidate < 0 {
            return false;
        }
        let previous = self.high_watermark.fetch_max(candidate, Ordering::AcqRel);
        let moved = previous < candidate;
        if moved {
            self.progress.notify();
        }
        moved
    }

    /// Follower only: the leader's high watermark from a fetch response.
    pub fn update_follower_high_watermark(&self, leader_hw: i64) {
        let hw = leader_hw.min(self.log.log_end_offset());
        if hw >= 0 {
            self.high_watermark.store(hw, Ordering::Release);
        }
    }

    /// After a truncation the high watermark cannot be past the log end.
    pub fn clamp_high_watermark(&self) {
        let leo = self.log.log_end_offset();
        self.high_watermark.fetch_min(leo, Ordering::AcqRel);
    }

    /// Writes the high watermark to the log's checkpoint if it changed since the last write.
    pub fn checkpoint_high_watermark(&self) -> Result<(), strom_log::LogError> {
        let hw = self.high_watermark();
        if self.checkpointed_hw.swap(hw, Ordering::AcqRel) != hw {
            self.log.checkpoint_high_watermark(hw)?;
        }
        Ok(())
    }

    /// Leader only: a follower fetched from `fetch_offset` (its log end offset) while the
    /// leader's log ended at `leader_leo`. Updates its progress (Kafka's
    /// `updateFollowerFetchState`), the high watermark, and says whether it may join the ISR.
    pub fn update_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        leader_leo: i64,
        now_ms: i64,
    ) -> FollowerUpdate {
        let mut expand = None;
        {
            let mut s = self.state.write();
            if s.role != Role::Leader {
                return FollowerUpdate::default();
            }
            let Some(f) = s.followers.get_mut(&replica) else {
                return FollowerUpdate::default();
            };
            if fetch_offset >= leader_leo {
                f.last_caught_up_ms = now_ms;
            } else if fetch_offset >= f.last_fetch_leader_leo && f.last_fetch_leader_leo >= 0 {
                // It has everything the leader had at its previous fetch.
                f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
            }
            f.log_end_offset = fetch_offset;
            f.last_fetch_leader_leo = leader_leo;
            f.last_fetch_ms = now_ms;
            let hw = self.high_watermark.load(Ordering::Acquire);
            let in_isr = s.isr.contains(&replica);
            if !in_isr
                && s.pending_isr.is_none()
                && fetch_offset >= hw
                && fetch_offset >= s.leader_epoch_start_offset
            {
                let mut new_isr = s.isr.clone();
                new_isr.push(replica);
                new_isr.sort_unstable();
                s.pending_isr = Some(new_isr.clone());
                expand = Some(IsrChange {
                    leader_epoch: s.leader_epoch,
                    partition_epoch: s.partition_epoch,
                    new_isr,
                });
            }
        }
        // A move wakes acks=all producers and long polls (through `progress`).
        self.maybe_increment_high_watermark();
        FollowerUpdate { expand_isr: expand }
    }

    /// Leader only: the ISR without the followers that have not caught up for `lag_ms`
    /// (Kafka's `maybeShrinkIsr`), when there are such followers and no change is pending.
    pub fn isr_to_shrink(&self, now_ms: i64, lag_ms: i64) -> Option<IsrChange> {
        let mut s = self.state.write();
        if s.role != Role::Leader || s.pending_isr.is_some() {
            return None;
        }
        let leo = self.log.log_end_offset();
        let out: Vec<i32> = s
            .isr
            .iter()
            .copied()
            .filter(|r| *r != self.node_id)
            .filter(|r| match s.followers.get(r) {
                // A follower at the log end is caught up however long ago it last was behind.
                Some(f) => f.log_end_offset < leo && now_ms - f.last_caught_up_ms > lag_ms,
                None => false,
            })
            .collect();
        if out.is_empty() {
            return None;
        }
        let new_isr: Vec<i32> = s.isr.iter().copied().filter(|r| !out.contains(r)).collect();
        tracing::info!(
            topic = %self.topic,
            partition = self.index,
            lagging = ?out,
            isr = ?s.isr,
            new_isr = ?new_isr,
            "shrinking ISR: followers not caught up within replica.lag.time.max.ms"
        );
        s.pending_isr = Some(new_isr.clone());
        Some(IsrChange {
            leader_epoch: s.leader_epoch,
            partition_epoch: s.partition_epoch,
            new_isr,
        })
    }

    /// The controller answered an ISR change: take its partition state, or forget the pending
    /// change so a later one can be tried.
    pub fn isr_change_done(&self, accepted: Option<&PartitionMeta>) {
        match accepted {
            Some(meta) => {
                self.apply(meta, now_ms());
            }
            None => self.state.write().pending_isr = None,
        }
        self.maybe_increment_high_watermark();
    }
}

fn now_ms() -> i64 {
    crate::handlers::now_ms()
}
