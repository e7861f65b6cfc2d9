//! `KafkaOffsetBackingStore`: source offsets in the compacted offset topic, key
//! `["<connector>",{<source partition>}]` and value `{<source offset>}` as JSON without schemas —
//! the same bytes Kafka's workers write, so offsets carry over between the two.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use super::kafka_log::KafkaBasedLog;
use crate::connector::{SourceOffset, SourcePartition};
use crate::error::Result;
use crate::offset_store::{FileOffsetStore, OffsetBackingStore};

pub struct KafkaOffsetBackingStore {
    log: KafkaBasedLog,
    /// key JSON -> value JSON, as last read or written.
    data: Mutex<BTreeMap<String, String>>,
}

impl KafkaOffsetBackingStore {
    pub fn new(log: KafkaBasedLog) -> KafkaOffsetBackingStore {
        KafkaOffsetBackingStore {
            log,
            data: Mutex::new(BTreeMap::new()),
        }
    }

    /// Reads the topic to its end, so a task starting here sees offsets another worker committed.
    pub fn read_to_end(&self) -> Result<()> {
        let mut updates = Vec::new();
        self.log.read_to_end(|k, v, _, _| {
            updates.push((
                k.to_string(),
                v.map(|v| String::from_utf8_lossy(v).into_owned()),
            ));
        })?;
        let mut data = self.data.lock();
        for (k, v) in updates {
            match v {
                Some(v) => data.insert(k, v),
                None => data.remove(&k),
            };
        }
        Ok(())
    }
}

impl OffsetBackingStore for KafkaOffsetBackingStore {
    fn get(&self, connector: &str, partition: &SourcePartition) -> Option<SourceOffset> {
        if let Err(e) = self.read_to_end() {
            tracing::warn!(error = %e, "cannot read the offset topic; using offsets read before");
        }
        let data = self.data.lock();
        let v = data.get(&FileOffsetStore::key(connector, partition))?;
        match serde_json::from_str::<serde_json::Value>(v) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    fn connector_offsets(&self, connector: &str) -> Vec<(serde_json::Value, serde_json::Value)> {
        if let Err(e) = self.read_to_end() {
            tracing::warn!(error = %e, "cannot read the offset topic; using offsets read before");
        }
        let data = self.data.lock();
        data.iter()
            .filter_map(|(k, v)| {
                let key: serde_json::Value = serde_json::from_str(k).ok()?;
                if key.get(0)?.as_str()? != connector {
                    return None;
                }
                Some((key.get(1)?.clone(), serde_json::from_str(v).ok()?))
            })
            .collect()
    }

    fn commit(&self, connector: &str, offsets: &[(SourcePartition, SourceOffset)]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let records: Vec<(String, Option<Vec<u8>>)> = offsets
            .iter()
            .map(|(p, o)| {
                (
                    FileOffsetStore::key(connector, p),
                    Some(
                        serde_json::Value::Object(o.clone())
                            .to_string()
                            .into_bytes(),
                    ),
                )
            })
            .collect();
        self.log.send(&records)?;
        let mut data = self.data.lock();
        for (k, v) in records {
            if let Some(v) = v {
                data.insert(k, String::from_utf8_lossy(&v).into_owned());
            }
        }
        Ok(())
    }

    fn write_offsets(
        &self,
        connector: &str,
        entries: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<()> {
        // A null value is a tombstone: compaction drops the partition's offset, as Kafka's
        // worker does for a reset.
        let records: Vec<(String, Option<Vec<u8>>)> = entries
            .iter()
            .map(|(p, o)| {
                (
                    FileOffsetStore::key(connector, p),
                    o.as_ref().map(|o| {
                        serde_json::Value::Object(o.clone())
                            .to_string()
                            .into_bytes()
                    }),
                )
            })
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        self.log.send(&records)?;
        let mut data = self.data.lock();
        for (k, v) in records {
            match v {
                Some(v) => data.insert(k, String::from_utf8_lossy(&v).into_owned()),
                None => data.remove(&k),
            };
        }
        Ok(())
    }
}
