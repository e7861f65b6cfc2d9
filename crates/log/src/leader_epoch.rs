//! The leader-epoch cache: for each leader epoch the log has seen, the first offset written in
//! it (Kafka's `LeaderEpochFileCache`). A follower that lost a leader asks the new one where its
//! last epoch ended (OffsetForLeaderEpoch) and cuts its log there, so two replicas never keep
//! different records at the same offset.
//!
//! Persisted as `leader-epoch-checkpoint` in the partition directory in Kafka's text format:
//! a version line (`0`), an entry count line, then one `<epoch> <start offset>` line per entry.
//! The file is replaced atomically whenever the cache changes (rare: once per leader change).

use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};

pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const VERSION: i32 = 0;

/// Kafka's `UNDEFINED_EPOCH` / `UNDEFINED_EPOCH_OFFSET` in OffsetForLeaderEpoch answers.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    /// Epochs and start offsets both strictly increasing.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Reads the checkpoint in `dir` (an absent file is an empty cache). A malformed file is
    /// refused with the line at fault rather than silently dropped: it would make truncation
    /// decisions wrong.
    pub fn load(dir: &Path) -> Result<LeaderEpochCache> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(LogError::io("reading", &path, e)),
        };
        let entries = if text.trim().is_empty() {
            Vec::new()
        } else {
            parse(&text).map_err(|reason| LogError::CorruptPartition {
                path: path.display().to_string(),
                reason,
            })?
        };
        Ok(LeaderEpochCache { path, entries })
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The start offset of the latest epoch.
    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` begins at `start_offset`. Entries that would contradict it (an
    /// epoch at least as new, or one starting at or after the offset) are dropped first, as
    /// Kafka does. Returns whether the cache changed (and was written).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool> {
        if epoch < 0 {
            return Ok(false);
        }
        if let Some(last) = self.entries.last()
            && last.epoch == epoch
            && last.start_offset <= start_offset
        {
            return Ok(false);
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.persist()?;
        Ok(true)
    }

    /// Kafka's `endOffsetFor`: the largest epoch <= `requested` and the offset where the epoch
    /// after it starts (the log end offset for the latest epoch). Both undefined when the
    /// requested epoch is newer than any known, or undefined.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH || self.entries.is_empty() {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if Some(requested) == self.latest_epoch() {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            // Older than anything known: its end is where the first known epoch starts.
            None => (requested, higher.start_offset),
        }
    }

    /// The log was cut at `end_offset`: epochs starting there or later are gone.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// The log now starts at `start_offset`: entries wholly below it go, and the one covering
    /// it starts there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<()> {
        let covering = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset);
        let Some(i) = covering else {
            return Ok(());
        };
        if i == 0 && self.entries[0].start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..i);
        self.entries[0].start_offset = start_offset;
        self.persist()
    }

    /// Empties the cache (the log was replaced wholesale).
    pub fn clear(&mut self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        self.entries.clear();
        self.persist()
    }

    fn persist(&self) -> Result<()> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        let dir = self.path.parent().unwrap_or_else(|| Path::new("."));
        crate::retention::write_atomically(dir, LEADER_EPOCH_CHECKPOINT_FILE, text.as_bytes())
    }
}

fn parse(text: &str) -> std::result::Result<Vec<EpochEntry>, String> {
    let mut lines = text.lines();
    let version: i32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("missing version line")?;
    if version != VERSION {
        return Err(format!(
            "unsupported version {version} (expected {VERSION})"
        ));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("missing entry count line")?;
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(count.min(1024));
    for (n, line) in lines.enumerate().take(count) {
        let mut fields = line.split_whitespace();
        let parsed = (|| {
            let epoch: i32 = fields.next()?.parse().ok()?;
            let start_offset: i64 = fields.next()?.parse().ok()?;
            fields.next().is_none().then_some(EpochEntry {
                epoch,
                start_offset,
            })
        })();
        let entry = parsed.ok_or_else(|| format!("line {}: expected `<epoch> <offset>`", n + 3))?;
        if let Some(prev) = entries.last()
            && (entry.epoch <= prev.epoch || entry.start_offset < prev.start_offset)
        {
            return Err(format!("line {}: entries are not increasing", n + 3));
        }
        entries.push(entry);
    }
    if entries.len() != count {
        return Err(format!("expected {count} entries, found {}", entries.len()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path()).unwrap();
        for &(epoch, offset) in entries {
            c.assign(epoch, offset).unwrap();
        }
        (dir, c)
    }

    #[test]
    fn persists_in_kafka_format_and_reloads() {
        let (dir, c) = cache(&[(0, 0), (2, 150), (5, 300)]);
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n3\n0 0\n2 150\n5 300\n");
        let again = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(again.entries(), c.entries());
    }

    #[test]
    fn same_epoch_later_offset_is_not_a_new_entry() {
        let (_dir, mut c) = cache(&[(1, 10)]);
        assert!(!c.assign(1, 20).unwrap());
        assert_eq!(c.entries().len(), 1);
    }

    #[test]
    fn contradicting_entries_are_replaced() {
        let (_dir, mut c) = cache(&[(1, 10), (3, 20), (4, 30)]);
        // Epoch 3 now starts at 15: epoch 4 (newer) and the old epoch 3 go.
        c.assign(3, 15).unwrap();
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 1,
                    start_offset: 10
                },
                EpochEntry {
                    epoch: 3,
                    start_offset: 15
                }
            ]
        );
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let (_dir, c) = cache(&[(1, 0), (3, 100), (6, 250)]);
        assert_eq!(c.end_offset_for(6, 400), (6, 400));
        assert_eq!(c.end_offset_for(3, 400), (3, 250));
        // Epoch 4 and 5 were never written here: epoch 3 ended where 6 began.
        assert_eq!(c.end_offset_for(5, 400), (3, 250));
        assert_eq!(c.end_offset_for(0, 400), (0, 0));
        assert_eq!(
            c.end_offset_for(7, 400),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
        assert_eq!(
            c.end_offset_for(-1, 400),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
    }

    #[test]
    fn truncation_from_both_ends() {
        let (dir, mut c) = cache(&[(1, 0), (3, 100), (6, 250)]);
        c.truncate_from_end(250).unwrap();
        assert_eq!(c.latest_epoch(), Some(3));
        c.truncate_from_start(120).unwrap();
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 120
            }]
        );
        let again = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(again.entries(), c.entries());
    }

    #[test]
    fn malformed_file_is_refused_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
        std::fs::write(&path, "0\n2\n0 0\nfive 10\n").unwrap();
        let err = LeaderEpochCache::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("line 4"), "{err}");
        std::fs::write(&path, "1\n0\n").unwrap();
        let err = LeaderEpochCache::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("version 1"), "{err}");
    }
}
