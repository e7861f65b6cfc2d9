//! strom-broker: the Kafka wire-protocol server.
//!
//! Owns the listeners and connections (framing, request headers, in-order responses), the request
//! handlers grouped by API family (`handlers::*`), and the partitions this node hosts
//! (`replica::ReplicaManager`). Partition data lives in `strom-log`, cluster metadata in
//! `strom-meta`; the broker sits between them and the network.
//!
//! Must not touch: segment files directly (go through `strom_log::Log`), or the metadata file.

pub mod broker;
pub mod config;
pub mod connection;
pub mod controller;
pub mod error;
pub mod group;
pub mod handlers;
pub mod log_manager;
pub mod metrics;
pub mod producer_id_manager;
pub mod replica;
mod sendfile;
pub mod server;
pub mod topic_config;
pub mod txn;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use server::run;
