//! Errors of strom-streams, named after Kafka Streams' exceptions.

use thiserror::Error;

/// Everything that can go wrong building or running a topology.
#[derive(Debug, Error)]
pub enum StreamsError {
    /// Kafka's TopologyException: the message starts with "Invalid topology" as Kafka's does.
    #[error("Invalid topology: {0}")]
    Topology(String),
    /// A configuration key has a bad or missing value; the message names the key.
    #[error("Invalid value for configuration {key}: {reason}")]
    Config { key: String, reason: String },
    /// A serde failed on a record.
    #[error("serialization error: {0}")]
    Serde(#[from] SerdeError),
    /// A state store failed.
    #[error("state store {store}: {reason}")]
    Store { store: String, reason: String },
    /// A source topic does not exist on the cluster.
    #[error("Missing source topic(s) during start-up: {0:?}")]
    MissingSourceTopics(Vec<String>),
    /// The Kafka client failed.
    #[error("kafka client: {0}")]
    Kafka(String),
    /// A Streams-runtime failure (Kafka's StreamsException).
    #[error("{0}")]
    Streams(String),
    /// I/O on the state directory.
    #[error("state directory: {0}")]
    Io(#[from] std::io::Error),
}

impl From<rdkafka::error::KafkaError> for StreamsError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        StreamsError::Kafka(e.to_string())
    }
}

impl From<fjall::Error> for StreamsError {
    fn from(e: fjall::Error) -> Self {
        StreamsError::Store {
            store: "fjall".into(),
            reason: e.to_string(),
        }
    }
}

/// A serializer or deserializer rejected the data.
#[derive(Debug, Error, Clone)]
#[error("topic {topic}: {reason}")]
pub struct SerdeError {
    pub topic: String,
    pub reason: String,
}

impl SerdeError {
    pub fn new(topic: &str, reason: impl Into<String>) -> Self {
        SerdeError {
            topic: topic.to_string(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = StreamsError> = std::result::Result<T, E>;
