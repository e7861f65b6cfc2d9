//! Kafka's StateRestoreListener: told when an active task restores a store from its changelog, and
//! how many records that took. With standby replicas a task taken over replays only the
//! changelog's tail, which this makes visible.

use crate::metadata::TopicPartition;

/// Kafka's StateRestoreListener (`KafkaStreams::set_global_state_restore_listener`). Called on the
/// stream thread that restores; a store already at its changelog's end is not restored and not
/// reported.
pub trait StateRestoreListener: Send + Sync {
    /// Restoration of `store_name` from `partition` begins at `starting_offset`; the changelog
    /// ends at `ending_offset` (exclusive).
    fn on_restore_start(
        &self,
        partition: &TopicPartition,
        store_name: &str,
        starting_offset: i64,
        ending_offset: i64,
    ) {
        let _ = (partition, store_name, starting_offset, ending_offset);
    }

    /// Restoration of `store_name` from `partition` is done after `total_restored` records.
    fn on_restore_end(&self, partition: &TopicPartition, store_name: &str, total_restored: u64) {
        let _ = (partition, store_name, total_restored);
    }
}
