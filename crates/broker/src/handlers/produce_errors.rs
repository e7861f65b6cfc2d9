//! How a refused append is reported in a Produce response: Kafka's summary message, and for
//! per-record refusals (a timestamp out of range) the `record_errors` naming each bad record, so
//! a client fails exactly the records concerned.
//!
//! Owns only the mapping from [`LogError`] to response fields; the log decides what is refused.

use kafka_protocol::messages::produce_response::BatchIndexAndErrorMessage;
use kafka_protocol::protocol::StrBytes;
use strom_log::LogError;

/// The partition's `error_message`.
pub(super) fn message(error: &LogError) -> String {
    match error {
        // Kafka's summary for a batch dropped for its timestamps; the details go per record.
        LogError::InvalidTimestamp { .. } => {
            "One or more records have been rejected due to invalid timestamp".to_string()
        }
        other => other.to_string(),
    }
}

/// The partition's `record_errors` (empty unless particular records were at fault).
pub(super) fn record_errors(error: &LogError) -> Vec<BatchIndexAndErrorMessage> {
    match error {
        LogError::InvalidTimestamp {
            batch_index,
            message,
        } => vec![
            BatchIndexAndErrorMessage::default()
                .with_batch_index(*batch_index)
                .with_batch_index_error_message(Some(StrBytes::from_string(message.clone()))),
        ],
        _ => Vec::new(),
    }
}
