//! The sparse time index (`.timeindex`): entries of (timestamp i64 BE, relative offset u32 BE).
//! An entry is added when the segment's max timestamp so far grows (at most once per index
//! interval), pointing at the last offset of the batch that reached it. Timestamps in the file
//! therefore only increase.

use std::path::Path;

use crate::batch::{be_i64, be_u32};
use crate::error::Result;
use crate::index_file::IndexFile;

pub(crate) const TIME_INDEX_ENTRY_SIZE: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl TimestampOffset {
    pub fn to_bytes(self) -> [u8; TIME_INDEX_ENTRY_SIZE] {
        let mut out = [0u8; TIME_INDEX_ENTRY_SIZE];
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..].copy_from_slice(&self.relative_offset.to_be_bytes());
        out
    }

    fn from_bytes(entry: &[u8]) -> TimestampOffset {
        TimestampOffset {
            timestamp: be_i64(entry, 0),
            relative_offset: be_u32(entry, 8),
        }
    }
}

pub struct TimeIndex {
    file: IndexFile,
}

impl TimeIndex {
    pub fn open(path: &Path) -> Result<TimeIndex> {
        Ok(TimeIndex {
            file: IndexFile::open(path, TIME_INDEX_ENTRY_SIZE)?,
        })
    }

    /// Appends the entry unless it would not raise the indexed max timestamp. The first entry
    /// of a segment is always written, so a non-empty segment's max timestamp survives a
    /// clean shutdown even if it is -1 (no timestamps).
    pub fn maybe_append(&self, entry: TimestampOffset) -> Result<()> {
        match self.last_entry() {
            Some(last) if entry.timestamp <= last.timestamp => Ok(()),
            _ => self.file.append(&entry.to_bytes()),
        }
    }

    /// Replaces all entries; `entries` holds encoded [`TimestampOffset`]s.
    pub fn rewrite(&self, entries: Vec<u8>) -> Result<()> {
        self.file.rewrite(entries)
    }

    /// The entry with the largest timestamp <= `timestamp`.
    pub fn lookup(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        Ok(self
            .file
            .floor(|entry| be_i64(entry, 0) <= timestamp)?
            .map(|entry| TimestampOffset::from_bytes(&entry)))
    }

    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.file
            .last_entry()
            .map(|entry| TimestampOffset::from_bytes(&entry))
    }

    pub fn is_empty(&self) -> bool {
        self.file.len() == 0
    }

    /// Whole entries only.
    pub fn is_sane(&self) -> Result<bool> {
        self.file.is_whole()
    }

    pub fn flush(&self) -> Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_growing_timestamps_are_appended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = TimeIndex::open(&dir.path().join("0.timeindex")).expect("open");
        assert!(index.is_empty());
        let entry = |timestamp, relative_offset| TimestampOffset {
            timestamp,
            relative_offset,
        };
        index.maybe_append(entry(-1, 0)).expect("append");
        index.maybe_append(entry(100, 3)).expect("append");
        index.maybe_append(entry(100, 7)).expect("append");
        index.maybe_append(entry(50, 9)).expect("append");
        index.maybe_append(entry(200, 12)).expect("append");
        assert_eq!(index.last_entry(), Some(entry(200, 12)));
        assert_eq!(index.lookup(-5).expect("lookup"), None);
        assert_eq!(index.lookup(99).expect("lookup"), Some(entry(-1, 0)));
        assert_eq!(index.lookup(150).expect("lookup"), Some(entry(100, 3)));
        assert_eq!(
            index.lookup(i64::MAX).expect("lookup"),
            Some(entry(200, 12))
        );
        let bytes = std::fs::read(dir.path().join("0.timeindex")).expect("read");
        assert_eq!(bytes.len(), 3 * TIME_INDEX_ENTRY_SIZE);
    }
}
