//! strom-meta: cluster metadata.
//!
//! Owns the metadata image (cluster id, brokers, topics with their ids, partitions with leader,
//! ISR and epochs, config overrides, producer-id blocks), the commands that change it, and its
//! persistence: one file on a single node, the Raft metadata log (`raft`, openraft) among the
//! controllers of a cluster, which also owns the controllers' internal RPC socket.
//!
//! Must not touch: partition data (that is strom-log) or the Kafka wire protocol.

pub mod command;
pub mod image;
mod raft;
pub mod store;
pub mod topic_name;

pub use command::{CommandError, CommandResult, MetadataCommand};
pub use image::{BrokerEndpoint, BrokerMeta, MetadataImage, PartitionMeta, TopicMeta};
pub use raft::{QuorumStatus, VoterStatus};
pub use store::{ClusterOptions, HeartbeatOutcome, MetaError, MetadataStore, ObserverOptions};
pub use topic_name::{TopicNameError, validate_topic_name};
