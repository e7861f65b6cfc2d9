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
    /// A failure that may pass if the operation is tried again (Kafka's `RetriableException`):
    /// a connector, converter or transform raises it for what it expects to heal (a database or
    /// service briefly away), and `errors.retry.timeout` retries such operations.
    #[error("{0}")]
    Retriable(String),
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
    /// A RetriableException with this message.
    pub fn retriable(msg: impl Into<String>) -> ConnectError {
        ConnectError::Retriable(msg.into())
    }
    /// Whether trying the same operation again may succeed, which `errors.retry.timeout`
    /// retries: Kafka retries only `RetriableException`; strom also counts I/O and Kafka client
    /// failures, the kinds that come from something outside the record. Bad data, schemas and
    /// configs fail the same way every time, so they are never retried.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            ConnectError::Retriable(_) | ConnectError::Io { .. } | ConnectError::Kafka(_)
        )
    }
    /// The same kind of error with `context: ` before its message, so wrapping an error to say
    /// where it happened does not hide whether it is retriable.
    pub fn with_context(self, context: &str) -> ConnectError {
        match self {
            ConnectError::Data(m) => ConnectError::Data(format!("{context}: {m}")),
            ConnectError::Schema(m) => ConnectError::Schema(format!("{context}: {m}")),
            ConnectError::Config(m) => ConnectError::Config(format!("{context}: {m}")),
            ConnectError::Connect(m) => ConnectError::Connect(format!("{context}: {m}")),
            ConnectError::Io { context: c, source } => ConnectError::Io {
                context: format!("{context}: {c}"),
                source,
            },
            ConnectError::Kafka(m) => ConnectError::Kafka(format!("{context}: {m}")),
            ConnectError::Retriable(m) => ConnectError::Retriable(format!("{context}: {m}")),
        }
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
