//! The aborted-transaction index: which offset ranges belong to aborted transactions, so a
//! `read_committed` fetch can tell consumers what to skip.
//!
//! Kept in memory for lookups and appended to the `.txnindex` file of the segment the abort
//! marker went to, in Kafka's entry format (34 bytes: version i16, producer id i64, first offset
//! i64, last offset i64, last stable offset i64).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};

pub const TXN_INDEX_SUFFIX: &str = "txnindex";
const ENTRY_LEN: usize = 34;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

#[derive(Debug, Default)]
pub struct TxnIndex {
    /// Ordered by `last_offset` (markers are appended in offset order).
    entries: Vec<AbortedTxn>,
}

fn file_of(dir: &Path, segment_base: i64) -> PathBuf {
    dir.join(format!("{segment_base:020}.{TXN_INDEX_SUFFIX}"))
}

impl TxnIndex {
    /// Load the `.txnindex` files of the given segments, dropping entries at or past
    /// `log_end_offset` (their markers were cut by recovery).
    pub fn load(dir: &Path, segment_bases: &[i64], log_end_offset: i64) -> Result<TxnIndex> {
        let mut entries = Vec::new();
        for &base in segment_bases {
            let path = file_of(dir, base);
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(LogError::io("reading", &path, e)),
            };
            for chunk in bytes.chunks_exact(ENTRY_LEN) {
                let i64_at = |o: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&chunk[o..o + 8]);
                    i64::from_be_bytes(b)
                };
                let e = AbortedTxn {
                    producer_id: i64_at(2),
                    first_offset: i64_at(10),
                    last_offset: i64_at(18),
                    last_stable_offset: i64_at(26),
                };
                if e.last_offset < log_end_offset {
                    entries.push(e);
                }
            }
        }
        entries.sort_by_key(|e| e.last_offset);
        entries.dedup();
        Ok(TxnIndex { entries })
    }

    /// Drops the entries of `segment_base`'s file whose markers are at or after `end` (the log
    /// was truncated there), rewriting the file atomically when any go.
    pub(crate) fn truncate_file(dir: &Path, segment_base: i64, end: i64) -> Result<()> {
        let path = file_of(dir, segment_base);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(LogError::io("reading", &path, e)),
        };
        let kept: Vec<u8> = bytes
            .chunks_exact(ENTRY_LEN)
            .filter(|chunk| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&chunk[18..26]);
                i64::from_be_bytes(b) < end
            })
            .flatten()
            .copied()
            .collect();
        if kept.len() == bytes.len() {
            return Ok(());
        }
        let name = format!("{segment_base:020}.{TXN_INDEX_SUFFIX}");
        crate::retention::write_atomically(dir, &name, &kept)
    }

    /// The highest marker offset known, so replay after a crash does not add an entry twice.
    pub fn last_marker_offset(&self) -> i64 {
        self.entries.last().map_or(-1, |e| e.last_offset)
    }

    /// Record an aborted transaction whose marker went to the segment at `segment_base`.
    pub fn append(&mut self, dir: &Path, segment_base: i64, e: AbortedTxn) -> Result<()> {
        if e.last_offset <= self.last_marker_offset() {
            return Ok(());
        }
        let mut buf = [0u8; ENTRY_LEN];
        buf[2..10].copy_from_slice(&e.producer_id.to_be_bytes());
        buf[10..18].copy_from_slice(&e.first_offset.to_be_bytes());
        buf[18..26].copy_from_slice(&e.last_offset.to_be_bytes());
        buf[26..34].copy_from_slice(&e.last_stable_offset.to_be_bytes());
        let path = file_of(dir, segment_base);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&buf))
            .map_err(|err| LogError::io("appending to", &path, err))?;
        self.entries.push(e);
        Ok(())
    }

    /// The whole entries of the aborted transactions overlapping `[from, to)` (the log cleaner
    /// drops their records).
    pub fn entries_overlapping(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.entries.partition_point(|e| e.last_offset < from);
        self.entries[start..]
            .iter()
            .filter(|e| e.first_offset < to)
            .copied()
            .collect()
    }

    /// Aborted transactions that overlap `[from, to)`: what a read_committed fetch of that range
    /// must return, as (producer id, first offset).
    pub fn overlapping(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let start = self.entries.partition_point(|e| e.last_offset < from);
        self.entries[start..]
            .iter()
            .filter(|e| e.first_offset < to)
            .map(|e| (e.producer_id, e.first_offset))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_finds_overlaps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut idx = TxnIndex::default();
        let a = AbortedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 20,
            last_stable_offset: 10,
        };
        let b = AbortedTxn {
            producer_id: 2,
            first_offset: 15,
            last_offset: 40,
            last_stable_offset: 15,
        };
        idx.append(dir.path(), 0, a).expect("a");
        idx.append(dir.path(), 30, b).expect("b");
        idx.append(dir.path(), 30, b).expect("again is ignored");
        assert_eq!(idx.overlapping(0, 12), vec![(1, 10)]);
        assert_eq!(idx.overlapping(21, 100), vec![(2, 15)]);
        assert_eq!(idx.overlapping(41, 100), vec![]);
        let loaded = TxnIndex::load(dir.path(), &[0, 30], 41).expect("load");
        assert_eq!(loaded.overlapping(0, 100), vec![(1, 10), (2, 15)]);
        let cut = TxnIndex::load(dir.path(), &[0, 30], 40).expect("load cut");
        assert_eq!(cut.overlapping(0, 100), vec![(1, 10)]);
    }
}
