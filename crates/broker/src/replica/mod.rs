//! Partitions hosted by this node: their logs and high watermarks.

mod manager;
mod partition;

pub use manager::ReplicaManager;
pub use partition::Partition;
