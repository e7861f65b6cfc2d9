//! strom-log: the partition log.
//!
//! Owns everything on disk under one partition directory (`<log.dirs>/<topic>-<partition>/`):
//! `LogSegment`s (`.log`), their sparse `OffsetIndex` (`.index`) and `TimeIndex` (`.timeindex`),
//! idempotent producers' sequence state (`producer_state`), and the recovery of a torn tail
//! after a crash. Batches are kept byte-for-byte as the producer
//! sent them (record batch v2); only the base offset, the partition leader epoch and, for
//! LogAppendTime, the max timestamp (with its CRC) are rewritten.
//!
//! Must not touch: sockets, the wire protocol's request/response types, metadata or clustering.

pub mod batch;
mod cleaner;
mod config;
pub mod control;
pub mod error;
pub mod index;
mod index_file;
pub mod log;
mod partition_metadata;
pub mod producer_state;
mod records;
mod recovery;
mod retention;
mod scan;
pub mod segment;
pub mod time_index;
pub mod txn_index;
pub mod validate;

pub use batch::{BATCH_HEADER_LEN, BatchHeader};
pub use cleaner::CleanStats;
pub use control::TxnMarker;
pub use error::{LogError, Result};
pub use log::{AppendInfo, FetchSlice, Log, LogConfig, TimestampType};
pub use retention::RetentionStats;
