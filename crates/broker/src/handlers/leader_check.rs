//! The check every leader-only partition request makes first (ListOffsets, DeleteRecords):
//! the partition exists, this node leads it, and the client's idea of the leader epoch is
//! current (KIP-320), answered with the error a Kafka client acts on.

use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::replica::Partition;
use std::sync::Arc;

/// The partition when this node leads it at `current_leader_epoch` (-1: any epoch);
/// otherwise UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER (the client refreshes its
/// metadata), FENCED_LEADER_EPOCH (the client's epoch is old) or UNKNOWN_LEADER_EPOCH (newer
/// than this node knows).
pub fn leader_partition(
    broker: &Broker,
    topic: &str,
    index: i32,
    current_leader_epoch: i32,
) -> Result<Arc<Partition>, ErrorCode> {
    let Some(partition) = broker.replicas.get(topic, index) else {
        let exists = broker
            .metadata
            .image()
            .topic(topic)
            .is_some_and(|m| m.partitions.iter().any(|p| p.partition == index));
        return Err(if exists {
            ErrorCode::NotLeaderOrFollower
        } else {
            ErrorCode::UnknownTopicOrPartition
        });
    };
    let epoch = partition.leader_epoch();
    if current_leader_epoch >= 0 && current_leader_epoch < epoch {
        return Err(ErrorCode::FencedLeaderEpoch);
    }
    if current_leader_epoch > epoch {
        return Err(ErrorCode::UnknownLeaderEpoch);
    }
    if broker.config.is_cluster() && !partition.is_leader() {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    Ok(partition)
}
