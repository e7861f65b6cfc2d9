//! The source offsets a task has polled but the worker has not committed yet (what Kafka's
//! `OffsetStorageWriter` holds between flushes): the latest offset per source partition.

use std::collections::BTreeMap;

use crate::connector::{SourceOffset, SourcePartition};

/// Latest offset per source partition, keyed by the partition's JSON text.
#[derive(Debug, Default)]
pub struct PendingOffsets {
    by_partition: BTreeMap<String, (SourcePartition, SourceOffset)>,
    /// The key of the partition recorded last. Tasks usually poll long runs of records from one
    /// partition; comparing with it spares serialising the partition again for each record.
    last: Option<String>,
}

impl PendingOffsets {
    /// Records `offset` as the partition's latest.
    pub fn record(&mut self, partition: SourcePartition, offset: SourceOffset) {
        if let Some(entry) = self
            .last
            .as_ref()
            .and_then(|key| self.by_partition.get_mut(key))
            && entry.0 == partition
        {
            entry.1 = offset;
            return;
        }
        let key = serde_json::Value::Object(partition.clone()).to_string();
        self.by_partition.insert(key.clone(), (partition, offset));
        self.last = Some(key);
    }

    pub fn is_empty(&self) -> bool {
        self.by_partition.is_empty()
    }

    /// Everything recorded, one entry per partition; leaves this empty.
    pub fn take(&mut self) -> Vec<(SourcePartition, SourceOffset)> {
        self.last = None;
        std::mem::take(&mut self.by_partition)
            .into_values()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(k: &str, v: i64) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert(k.into(), v.into());
        m
    }

    #[test]
    fn keeps_the_latest_offset_of_each_partition() {
        let mut p = PendingOffsets::default();
        p.record(map("file", 1), map("pos", 10));
        p.record(map("file", 1), map("pos", 20));
        p.record(map("file", 2), map("pos", 5));
        p.record(map("file", 1), map("pos", 30));
        p.record(map("file", 2), map("pos", 6));
        let mut got = p.take();
        got.sort_by_key(|(part, _)| part["file"].as_i64());
        assert_eq!(
            got,
            [
                (map("file", 1), map("pos", 30)),
                (map("file", 2), map("pos", 6))
            ]
        );
        assert!(p.is_empty());
        p.record(map("file", 1), map("pos", 40));
        assert_eq!(p.take(), [(map("file", 1), map("pos", 40))]);
    }
}
