//! Errors of the partition log, each mapped to the Kafka error code the broker answers with.

use std::path::Path;

/// Kafka error codes this crate's errors map to (from Kafka's `Errors` enum).
mod code {
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
    pub const INVALID_RECORD: i16 = 87;
    pub const INVALID_TIMESTAMP: i16 = 32;
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Bad CRC, truncated or short batch, batch length inconsistent with the bytes.
    #[error("corrupt message: {0}")]
    CorruptMessage(String),
    /// A structurally sound batch whose contents break the format's rules.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A CreateTime record outside `message.timestamp.(before|after).max.ms` of the broker's
    /// clock; `batch_index` is the record's position in the produce request's partition data,
    /// as Kafka's per-record errors count it.
    #[error("{message}")]
    InvalidTimestamp { batch_index: i32, message: String },
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    UnsupportedMagic(i8),
    #[error("unsupported compression codec {0}")]
    UnsupportedCompression(u8),
    /// One batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
    /// The whole append is larger than a segment may ever be (Kafka's RecordBatchTooLargeException).
    #[error("append of {size} bytes exceeds the segment size of {max} bytes")]
    RecordListTooLarge { size: usize, max: u64 },
    /// An idempotent producer's batch does not follow its previous one.
    #[error("out of order sequence number: {0}")]
    OutOfOrderSequence(String),
    /// A producer older than the current epoch of its producer id (a zombie).
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    /// The partition directory is unusable (e.g. an unreadable `partition.metadata`).
    #[error("corrupt partition directory {path}: {reason}")]
    CorruptPartition { path: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl LogError {
    /// The Kafka error code a response carries for this error.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LogError::CorruptMessage(_) => code::CORRUPT_MESSAGE,
            LogError::InvalidRecord(_) => code::INVALID_RECORD,
            LogError::InvalidTimestamp { .. } => code::INVALID_TIMESTAMP,
            LogError::UnsupportedMagic(_) => code::UNSUPPORTED_FOR_MESSAGE_FORMAT,
            LogError::UnsupportedCompression(_) => code::UNSUPPORTED_COMPRESSION_TYPE,
            LogError::MessageTooLarge { .. } => code::MESSAGE_TOO_LARGE,
            LogError::RecordListTooLarge { .. } => code::RECORD_LIST_TOO_LARGE,
            LogError::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
            LogError::OutOfOrderSequence(_) => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
            LogError::InvalidProducerEpoch(_) => code::INVALID_PRODUCER_EPOCH,
            LogError::CorruptPartition { .. } | LogError::Io { .. } => code::KAFKA_STORAGE_ERROR,
        }
    }

    /// An I/O error with what was being done and on which file.
    pub(crate) fn io(what: &str, path: &Path, source: std::io::Error) -> LogError {
        LogError::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, LogError>;
