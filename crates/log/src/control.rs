//! Transaction markers: the control batches a transaction coordinator writes to close a
//! transaction on each partition (Kafka's EndTransactionMarker: key = version, type (0 abort,
//! 1 commit); value = version, coordinator epoch).

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::error::{LogError, Result};

/// The marker a transaction coordinator asks a partition to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// The raw v2 control batch for `marker` (offsets assigned on append).
pub(crate) fn build(marker: &TxnMarker, timestamp: i64) -> Result<Vec<u8>> {
    let mut key = BytesMut::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&i16::from(marker.commit).to_be_bytes());
    let mut value = BytesMut::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: marker.producer_id,
        producer_epoch: marker.producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        std::iter::once(&record),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| LogError::InvalidRecord(format!("encoding a transaction marker: {e}")))?;
    Ok(buf.to_vec())
}

/// Whether a stored control batch commits (true) or aborts (false) its transaction; `None` for
/// control batches that are not transaction markers.
pub(crate) fn is_commit(batch: &[u8]) -> Result<Option<bool>> {
    let mut bytes = Bytes::copy_from_slice(batch);
    let set = RecordBatchDecoder::decode(&mut bytes)
        .map_err(|e| LogError::CorruptMessage(format!("decoding a control batch: {e}")))?;
    let Some(record) = set.records.first() else {
        return Ok(None);
    };
    let Some(key) = &record.key else {
        return Ok(None);
    };
    if key.len() < 4 {
        return Ok(None);
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Ok(Some(false)),
        1 => Ok(Some(true)),
        _ => Ok(None),
    }
}
