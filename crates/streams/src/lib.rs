//! strom-streams: Kafka Streams for Rust.
//!
//! Owns the stream-processing library: the topology DSL and Processor API, serdes, state stores
//! (fjall on disk, restored from changelog topics, kept warm on other instances by standby replicas
//! with `num.standby.replicas`), the task/thread runtime that runs a topology
//! against any Kafka-protocol cluster through librdkafka, and a broker-less TopologyTestDriver.
//! It must not reach into broker internals: everything goes over the wire as a Kafka client would.

// The DSL's closures over type-erased records have long signatures; naming each one would hide the
// shapes users write against.
#![allow(clippy::type_complexity)]

pub mod assignment_info;
mod checkpoint;
pub mod cli;
pub mod config;
pub mod dsl;
pub mod dsl_ops;
pub mod error;
mod fetched_lag;
pub mod fk_join;
mod http_query;
mod internal_topics;
pub mod metadata;
pub mod options;
pub mod partition_group;
pub mod partitioner;
pub mod processor;
pub mod query;
pub mod record;
pub mod restore_listener;
pub mod runtime;
pub mod serde;
mod standby;
mod standby_placement;
pub mod state;
pub mod task;
pub mod test_driver;
pub mod topology;
pub mod window;

pub use config::{ProcessingGuarantee, StreamsConfig};
pub use dsl::{
    BranchedKStream, Data, GlobalKTable, KGroupedStream, KGroupedTable, KStream, KTable,
    SessionWindowedKStream, SlidingWindowedKStream, StreamsBuilder, TimeWindowedKStream,
};
pub use error::{Result, SerdeError, StreamsError};
pub use metadata::{HostInfo, KeyQueryMetadata, StreamsMetadata, TopicPartition};
pub use options::{BufferConfig, Consumed, Grouped, Materialized, Produced, Repartitioned};
pub use processor::{Processor, ProcessorContext, PunctuationType};
pub use record::{Change, Dyn, Record, RecordMetadata};
pub use restore_listener::StateRestoreListener;
pub use runtime::{KafkaStreams, State};
pub use serde::{Serde, SerdeRef, Serdes};
pub use test_driver::TopologyTestDriver;
pub use topology::{StoreDef, Stores, Topology};
pub use window::{JoinWindows, SessionWindows, SlidingWindows, TimeWindows, Window, Windowed};
