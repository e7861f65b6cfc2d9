//! Kafka error codes as the wire carries them, for the errors strom answers with.

use strom_log::LogError;

/// Kafka's error codes (org.apache.kafka.common.protocol.Errors), the subset strom returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub enum ErrorCode {
    None = 0,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    LeaderNotAvailable = 5,
    NotLeaderOrFollower = 6,
    RequestTimedOut = 7,
    MessageTooLarge = 10,
    CoordinatorNotAvailable = 15,
    NotCoordinator = 16,
    InvalidTopicException = 17,
    RecordListTooLarge = 18,
    NotEnoughReplicas = 19,
    NotEnoughReplicasAfterAppend = 20,
    InvalidRequiredAcks = 21,
    ClusterAuthorizationFailed = 31,
    UnsupportedSaslMechanism = 33,
    IllegalSaslState = 34,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidReplicaAssignment = 39,
    InvalidCommitOffsetSize = 28,
    InvalidConfig = 40,
    InvalidRequest = 42,
    UnsupportedForMessageFormat = 43,
    InvalidProducerEpoch = 47,
    InvalidTxnState = 48,
    InvalidProducerIdMapping = 49,
    InvalidTransactionTimeout = 50,
    ConcurrentTransactions = 51,
    TransactionalIdAuthorizationFailed = 53,
    OperationNotAttempted = 55,
    KafkaStorageError = 56,
    UnknownServerError = -1,
    FencedLeaderEpoch = 74,
    UnknownLeaderEpoch = 75,
    UnsupportedCompressionType = 76,
    InvalidRecord = 87,
    ProducerFenced = 90,
    TransactionalIdNotFound = 105,
    InconsistentClusterId = 104,
    InvalidRegularExpression = 128,
    UnknownTopicId = 100,
    UnsupportedEndpointType = 115,
    InconsistentTopicId = 103,
}

impl ErrorCode {
    pub fn code(self) -> i16 {
        self as i16
    }
}

/// The code a log error is answered with on the wire.
pub fn log_error_code(e: &LogError) -> i16 {
    e.kafka_error_code()
}
