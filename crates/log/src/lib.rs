//! strom-log: the partition log.
//!
//! Owns everything on disk under one partition directory (`<log.dirs>/<topic>-<partition>/`):
//! `LogSegment`s (`.log`), their sparse `OffsetIndex` (`.index`) and `TimeIndex` (`.timeindex`),
//! idempotent producers' sequence state (`producer_state`), the leader-epoch cache
//! (`leader-epoch-checkpoint`), appends as a follower and truncation, and the recovery of a torn
//! tail after a crash. Batches are kept byte-for-byte as the producer
//! sent them (record batch v2); only the base offset, the partition leader epoch and, for
//! LogAppendTime, the max timestamp (with its CRC) are rewritten.
//!
//! Must not touch: sockets, the wire protocol's request/response types, metadata or clustering.

pub mod batch;
mod cleaner;
mod codec_level;
mod config;
pub mod control;
pub mod error;
mod file_range;
pub mod index;
mod index_file;
pub mod leader_epoch;
pub mod log;
mod partition_metadata;
mod pread;
mod producer_expiration;
pub mod producer_state;
mod recompress;
mod records;
mod recovery;
mod retention;
mod scan;
pub mod segment;
pub mod time_index;
mod truncate;
pub mod txn_index;
pub mod validate;

pub use batch::{BATCH_HEADER_LEN, BatchHeader};
pub use cleaner::CleanStats;
pub use control::TxnMarker;
pub use error::{LogError, Result};
pub use file_range::FileRange;
pub use log::{AppendInfo, FetchSlice, Log, LogConfig, TimestampType};
pub use retention::RetentionStats;
pub use truncate::HIGH_WATERMARK_FILE;
