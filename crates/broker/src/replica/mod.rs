//! Partitions hosted by this node and their replication (Kafka's `ReplicaManager`, `Partition`
//! and `ReplicaFetcherThread`): each partition's role from the metadata image, the high
//! watermark, the ISR as the leader maintains it, and the fetchers that make followers copy
//! their leaders' logs.
//!
//! Owns: `Partition` state, the fetcher tasks, ISR shrink/expand requests (through
//! `MetadataStore::alter_partition`), the high-watermark checkpoints. Must not touch: segment
//! files (only through `strom_log::Log`) or the metadata image (only through `MetadataStore`).

pub(crate) mod client;
pub mod config;
pub(crate) mod fetcher;
mod manager;
mod partition;
mod progress;

pub use config::ReplicaConfig;
pub use manager::ReplicaManager;
pub use partition::{IsrChange, Partition, Role};
pub use progress::Progress;

use crate::broker::Broker;
use std::sync::Arc;
use std::time::Duration;

/// Starts the background work of replication: applying every new metadata image, shrinking
/// the ISR of led partitions, checkpointing high watermarks.
pub fn spawn(broker: &Arc<Broker>) {
    let config = ReplicaConfig::from_broker(&broker.config);
    tokio::spawn(apply_images(broker.clone()));
    tokio::spawn(shrink_isr_loop(broker.clone(), config.lag_time_max_ms));
    tokio::spawn(checkpoint_loop(
        broker.clone(),
        config.hw_checkpoint_interval_ms,
    ));
}

async fn apply_images(broker: Arc<Broker>) {
    let mut images = broker.metadata.subscribe();
    loop {
        let image = images.borrow_and_update().clone();
        let b = broker.clone();
        let applied = tokio::task::spawn_blocking(move || b.replicas.apply_image(&b, &image)).await;
        if applied.is_err() {
            tracing::error!("applying a metadata image to the hosted partitions panicked");
        }
        if images.changed().await.is_err() {
            return;
        }
    }
}

/// Sends an ISR change to the controller and takes its answer.
pub(crate) fn request_isr_change(
    broker: &Arc<Broker>,
    partition: Arc<Partition>,
    change: IsrChange,
) {
    let broker = broker.clone();
    tokio::spawn(async move {
        let result = broker
            .metadata
            .alter_partition(
                &partition.topic,
                partition.index,
                broker.node_id(),
                change.leader_epoch,
                change.partition_epoch,
                change.new_isr.clone(),
            )
            .await;
        match result {
            Ok(meta) => {
                tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?meta.isr, "ISR changed");
                partition.isr_change_done(Some(&meta));
            }
            Err(e) => {
                tracing::warn!(topic = %partition.topic, partition = partition.index, new_isr = ?change.new_isr, error = %e, "ISR change refused");
                partition.isr_change_done(None);
            }
        }
        // A smaller ISR can move the high watermark: waiting producers and fetches look again.
        broker.notify_appended();
    });
}

/// Kafka checks every half of `replica.lag.time.max.ms`.
async fn shrink_isr_loop(broker: Arc<Broker>, lag_ms: i64) {
    let mut tick = tokio::time::interval(Duration::from_millis((lag_ms as u64 / 2).max(10)));
    loop {
        tick.tick().await;
        let now = crate::handlers::now_ms();
        for p in broker.replicas.all() {
            if let Some(change) = p.isr_to_shrink(now, lag_ms) {
                request_isr_change(&broker, p, change);
            }
        }
    }
}

async fn checkpoint_loop(broker: Arc<Broker>, interval_ms: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    loop {
        tick.tick().await;
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for p in b.replicas.all() {
                if let Err(e) = p.checkpoint_high_watermark() {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "checkpointing high watermark failed");
                }
            }
        })
        .await;
    }
}

/// Why a coordinator's write was not replicated in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReplicated {
    /// This node no longer leads the partition.
    NotLeader,
    /// The in-sync replicas did not catch up before the deadline.
    TimedOut,
}

/// Waits until the high watermark of `topic`-`partition` passes its log end as it is now, so a
/// write a coordinator just made survives the loss of this node (Kafka appends coordinator
/// records with acks=all). Returns at once on a single node.
pub async fn await_replicated(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<(), NotReplicated> {
    if !broker.config.is_cluster() {
        return Ok(());
    }
    let Some(partition) = broker.replicas.get(topic, partition) else {
        return Err(NotReplicated::NotLeader);
    };
    let required = partition.log.log_end_offset();
    let mut appended = broker.subscribe_appended();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        appended.borrow_and_update();
        if !partition.is_leader() {
            return Err(NotReplicated::NotLeader);
        }
        // A single-replica ISR advances the high watermark on its own next check.
        partition.maybe_increment_high_watermark();
        if partition.high_watermark() >= required {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, appended.changed())
            .await
            .is_err()
        {
            return Err(NotReplicated::TimedOut);
        }
    }
}
