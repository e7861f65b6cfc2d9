//! The group coordinator for Kafka's classic consumer-group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), Kafka 4's consumer group protocol (KIP-848: ConsumerGroupHeartbeat,
//! ConsumerGroupDescribe; `consumer_group`, `assignor`, `consumer_coordinator`) and committed
//! offsets, persisted in `__consumer_offsets`.
//!
//! `coordinator` owns every group behind one lock and runs the rebalance state machine
//! (`group`: Empty → PreparingRebalance → CompletingRebalance → Stable, and Dead); `persistence`
//! turns group metadata and offset commits into records in Kafka's own key/value schemas, so the
//! internal topic reads the same as Kafka's. The request handlers (`handlers::group`) translate
//! the wire messages into calls on the coordinator.

pub mod assignor;
pub mod config;
pub mod consumer_coordinator;
pub mod consumer_group;
pub mod consumer_records;
pub mod coordinator;
pub mod errors;
#[allow(clippy::module_inception)]
pub mod group;
pub mod member;
pub mod offsets;
pub mod persistence;
pub mod txn_offsets;

pub use config::GroupConfig;
pub use coordinator::GroupCoordinator;
pub use persistence::{BrokerOffsetsLog, OFFSETS_TOPIC};
