//! The sparse offset index (`.index`): entries of (relative offset u32 BE, file position u32 BE)
//! mapping a batch's last offset, relative to the segment's base offset, to where the batch
//! starts in the `.log` file. One entry per `index.interval.bytes` of batches.

use std::path::Path;

use crate::batch::be_u32;
use crate::error::Result;
use crate::index_file::IndexFile;

pub(crate) const OFFSET_INDEX_ENTRY_SIZE: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub relative_offset: u32,
    pub position: u32,
}

impl OffsetPosition {
    pub fn to_bytes(self) -> [u8; OFFSET_INDEX_ENTRY_SIZE] {
        let mut out = [0u8; OFFSET_INDEX_ENTRY_SIZE];
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..].copy_from_slice(&self.position.to_be_bytes());
        out
    }

    fn from_bytes(entry: &[u8]) -> OffsetPosition {
        OffsetPosition {
            relative_offset: be_u32(entry, 0),
            position: be_u32(entry, 4),
        }
    }
}

pub struct OffsetIndex {
    file: IndexFile,
}

impl OffsetIndex {
    pub fn open(path: &Path) -> Result<OffsetIndex> {
        Ok(OffsetIndex {
            file: IndexFile::open(path, OFFSET_INDEX_ENTRY_SIZE)?,
        })
    }

    pub fn append(&self, entry: OffsetPosition) -> Result<()> {
        self.file.append(&entry.to_bytes())
    }

    /// Replaces all entries; `entries` holds encoded [`OffsetPosition`]s.
    pub fn rewrite(&self, entries: Vec<u8>) -> Result<()> {
        self.file.rewrite(entries)
    }

    /// The entry with the largest relative offset <= `relative_offset`.
    pub fn lookup(&self, relative_offset: u32) -> Result<Option<OffsetPosition>> {
        Ok(self
            .file
            .floor(|entry| be_u32(entry, 0) <= relative_offset)?
            .map(|entry| OffsetPosition::from_bytes(&entry)))
    }

    pub fn last_entry(&self) -> Option<OffsetPosition> {
        self.file
            .last_entry()
            .map(|entry| OffsetPosition::from_bytes(&entry))
    }

    pub fn len(&self) -> usize {
        self.file.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Kafka's sanity check: whole entries only, and the last one points inside the log.
    pub fn is_sane(&self, log_size: u64) -> Result<bool> {
        if !self.file.is_whole()? {
            return Ok(false);
        }
        Ok(self
            .last_entry()
            .is_none_or(|last| u64::from(last.position) < log_size))
    }

    pub fn flush(&self) -> Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_floor_entry_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000000.index");
        let index = OffsetIndex::open(&path).expect("open");
        assert_eq!(index.lookup(5).expect("lookup"), None);
        for (rel, pos) in [(10, 100), (20, 250), (30, 400)] {
            index
                .append(OffsetPosition {
                    relative_offset: rel,
                    position: pos,
                })
                .expect("append");
        }
        let check = |index: &OffsetIndex| {
            assert_eq!(index.lookup(9).expect("lookup"), None);
            assert_eq!(
                index.lookup(10).expect("lookup").map(|e| e.position),
                Some(100)
            );
            assert_eq!(
                index.lookup(29).expect("lookup").map(|e| e.position),
                Some(250)
            );
            assert_eq!(
                index.lookup(u32::MAX).expect("lookup").map(|e| e.position),
                Some(400)
            );
            assert_eq!(index.len(), 3);
        };
        check(&index);
        drop(index);
        let index = OffsetIndex::open(&path).expect("reopen");
        assert_eq!(
            index.last_entry(),
            Some(OffsetPosition {
                relative_offset: 30,
                position: 400
            })
        );
        assert!(index.is_sane(401).expect("sane"));
        assert!(!index.is_sane(400).expect("sane"));
        check(&index);
    }
}
