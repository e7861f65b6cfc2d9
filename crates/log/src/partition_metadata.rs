//! `partition.metadata`: the topic id a partition directory belongs to, in Kafka's text format
//! (`version: 0` then `topic_id: <base64url uuid without padding>`).

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{LogError, Result};

pub(crate) const PARTITION_METADATA_FILE: &str = "partition.metadata";
const VERSION: u32 = 0;

/// Returns the topic id stored in `dir`, writing `topic_id` there first if there is none.
pub(crate) fn load_or_create(dir: &Path, topic_id: [u8; 16]) -> Result<[u8; 16]> {
    let path = dir.join(PARTITION_METADATA_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let stored = parse(&text).map_err(|reason| LogError::CorruptPartition {
                path: path.display().to_string(),
                reason,
            })?;
            if stored != topic_id && topic_id != [0; 16] {
                tracing::warn!(
                    path = %path.display(),
                    stored = %URL_SAFE_NO_PAD.encode(stored),
                    given = %URL_SAFE_NO_PAD.encode(topic_id),
                    "partition.metadata holds a different topic id; keeping the stored one"
                );
            }
            Ok(stored)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write(dir, topic_id)?;
            Ok(topic_id)
        }
        Err(e) => Err(LogError::io("reading", &path, e)),
    }
}

fn parse(text: &str) -> std::result::Result<[u8; 16], String> {
    let mut version = None;
    let mut topic_id = None;
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("malformed line {line:?}"));
        };
        match key.trim() {
            "version" => version = Some(value.trim().to_string()),
            "topic_id" => topic_id = Some(value.trim().to_string()),
            other => return Err(format!("unknown key {other:?}")),
        }
    }
    if version.as_deref() != Some("0") {
        return Err(format!("unsupported version {version:?}"));
    }
    let encoded = topic_id.ok_or("no topic_id")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded.as_bytes())
        .map_err(|e| format!("topic_id {encoded:?} is not base64url: {e}"))?;
    <[u8; 16]>::try_from(bytes.as_slice())
        .map_err(|_| format!("topic_id {encoded:?} is {} bytes, not 16", bytes.len()))
}

/// Writes through a temporary file and a rename so a crash never leaves half a file.
fn write(dir: &Path, topic_id: [u8; 16]) -> Result<()> {
    let path = dir.join(PARTITION_METADATA_FILE);
    let tmp = dir.join(format!("{PARTITION_METADATA_FILE}.tmp"));
    let text = format!(
        "version: {VERSION}\ntopic_id: {}\n",
        URL_SAFE_NO_PAD.encode(topic_id)
    );
    let mut file = fs::File::create(&tmp).map_err(|e| LogError::io("creating", &tmp, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| LogError::io("writing", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| LogError::io("renaming to", &path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_kafka_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = *b"0123456789abcdef";
        assert_eq!(load_or_create(dir.path(), id).expect("create"), id);
        let text = fs::read_to_string(dir.path().join(PARTITION_METADATA_FILE)).expect("read");
        assert_eq!(text, "version: 0\ntopic_id: MDEyMzQ1Njc4OWFiY2RlZg\n");
        assert_eq!(load_or_create(dir.path(), [9; 16]).expect("load"), id);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("version: 0\ntopic_id: !!!\n").is_err());
        assert!(parse("version: 1\ntopic_id: MDEyMzQ1Njc4OWFiY2RlZg\n").is_err());
        assert!(parse("hello").is_err());
        assert!(parse("version: 0\ntopic_id: AAAA\n").is_err());
    }
}
