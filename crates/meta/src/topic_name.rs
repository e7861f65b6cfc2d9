//! Kafka's rules for topic names.

/// Kafka's limit: 249 so that `<topic>-<partition>` directory names stay under 255 bytes.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("Topic name is empty")]
    Empty,
    #[error("Topic name cannot be \".\" or \"..\"")]
    Dots,
    #[error("Topic name is longer than the maximum of {MAX_TOPIC_NAME_LEN} characters: {0}")]
    TooLong(usize),
    #[error(
        "Topic name \"{0}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
    )]
    IllegalChar(String),
}

pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Dots);
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(TopicNameError::TooLong(name.len()));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(TopicNameError::IllegalChar(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rules() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        assert_eq!(validate_topic_name(""), Err(TopicNameError::Empty));
        assert_eq!(validate_topic_name(".."), Err(TopicNameError::Dots));
        assert!(matches!(
            validate_topic_name("bad name"),
            Err(TopicNameError::IllegalChar(_))
        ));
        assert!(matches!(
            validate_topic_name(&"a".repeat(250)),
            Err(TopicNameError::TooLong(250))
        ));
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
    }
}
