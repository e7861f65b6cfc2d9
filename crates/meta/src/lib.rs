//! strom-meta: cluster metadata.
//!
//! Owns the metadata image (cluster id, topics with their ids, partitions, replica placement and
//! per-topic config overrides) and its persistence. A single node keeps the image in one file
//! replaced atomically; the replicated Raft metadata log of the cluster issue replaces that store,
//! keeping the image types.
//!
//! Must not touch: partition data (that is strom-log), sockets or the wire protocol.

pub mod image;
pub mod store;
pub mod topic_name;

pub use image::{MetadataImage, PartitionMeta, TopicMeta};
pub use store::{MetaError, MetadataStore};
pub use topic_name::{TopicNameError, validate_topic_name};
