//! Errors of the Connect runtime and API (`ConnectException`, `DataException`, `ConfigException`).

/// An error raised by Connect, a connector, a converter or a transform.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A value does not fit its schema, or bytes cannot be converted (Kafka's `DataException`).
    #[error("{0}")]
    Data(String),
    /// A schema is built wrongly (Kafka's `SchemaBuilderException`).
    #[error("{0}")]
    Schema(String),
    /// A configuration value is missing or invalid (Kafka's `ConfigException`); names the key.
    #[error("{0}")]
    Config(String),
    /// Any other failure of a connector or task (Kafka's `ConnectException`).
    #[error("{0}")]
    Connect(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Kafka(String),
}

impl ConnectError {
    /// A ConnectException with this message.
    pub fn connect(msg: impl Into<String>) -> ConnectError {
        ConnectError::Connect(msg.into())
    }
    /// A ConfigException with this message.
    pub fn config(msg: impl Into<String>) -> ConnectError {
        ConnectError::Config(msg.into())
    }
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> ConnectError {
        ConnectError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<rdkafka::error::KafkaError> for ConnectError {
    fn from(e: rdkafka::error::KafkaError) -> ConnectError {
        ConnectError::Kafka(e.to_string())
    }
}

pub type Result<T, E = ConnectError> = std::result::Result<T, E>;
