//! Idempotent producers: per producer id, the epoch and the last five batches' sequence ranges,
//! so a retried batch is recognised and answered with its original offsets instead of being
//! written twice, and a gap in the sequence is refused (Kafka's `ProducerStateManager`).
//!
//! It also tracks transactions: the first offset of each producer's open transaction (the last
//! stable offset cannot pass it) until a commit or abort marker closes it.
//!
//! The state is rebuilt from the log on open: from the newest `<offset>.snapshot` (written at a
//! clean close and when a segment rolls) plus the batches after it.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use crate::batch::BatchHeader;
use crate::error::{LogError, Result};

/// Kafka keeps the last five batches per producer: the most a producer has in flight.
pub const MAX_CACHED_BATCHES: usize = 5;
const SNAPSHOT_SUFFIX: &str = "snapshot";
/// SPS3 added each producer's last timestamp; SPS2 snapshots are still read.
const SNAPSHOT_MAGIC: &[u8; 4] = b"SPS3";
const SNAPSHOT_MAGIC_V2: &[u8; 4] = b"SPS2";
const NO_EPOCH: i16 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
    /// Offset of the first batch of the producer's open transaction.
    current_txn_first_offset: Option<i64>,
    /// Timestamp of its last batch or transaction marker (-1: none), which
    /// `producer.id.expiration.ms` counts from. Markers count too: with transaction protocol v2
    /// every marker bumps the epoch, which empties `batches`.
    last_timestamp: i64,
}

/// What DescribeProducers shows of one producer on a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// -1 when the producer has no open transaction here.
    pub current_txn_start_offset: i64,
}

/// A transaction closed by a marker: its range and outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the marker.
    pub last_offset: i64,
    pub aborted: bool,
}

impl ProducerEntry {
    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }
}

/// What the sequence check decided for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// In sequence (or not idempotent): write it.
    Append,
    /// Already written: answer with these offsets and write nothing.
    Duplicate(BatchMetadata),
}

#[derive(Debug, Default)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions by first offset, for the last stable offset.
    ongoing: std::collections::BTreeMap<i64, i64>,
}

fn last_seq_of(header: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX like Kafka's DefaultRecordBatch.incrementSequence.
    let last = i64::from(header.base_sequence) + i64::from(header.last_offset_delta);
    if last > i64::from(i32::MAX) {
        (last - i64::from(i32::MAX) - 1) as i32
    } else {
        last as i32
    }
}

fn follows(prev_last: i32, next_first: i32) -> bool {
    if prev_last == i32::MAX {
        next_first == 0
    } else {
        next_first == prev_last + 1
    }
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Kafka's epoch and sequence rules for a batch about to be appended.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck> {
        if h.producer_id < 0 || h.is_control() {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // An unknown producer (new, or its state expired): any sequence starts it.
            return Ok(SequenceCheck::Append);
        };
        if h.producer_epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch(format!(
                "epoch {} of producer {} is older than the current epoch {}",
                h.producer_epoch, h.producer_id, entry.epoch
            )));
        }
        let last_seq = last_seq_of(h);
        if h.producer_epoch == entry.epoch
            && let Some(dup) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        if h.producer_epoch != entry.epoch {
            if h.base_sequence != 0 && entry.epoch != NO_EPOCH {
                return Err(LogError::OutOfOrderSequence(format!(
                    "producer {} starts epoch {} at sequence {}, expected 0",
                    h.producer_id, h.producer_epoch, h.base_sequence
                )));
            }
            return Ok(SequenceCheck::Append);
        }
        match entry.last_seq() {
            Some(prev) if follows(prev, h.base_sequence) => Ok(SequenceCheck::Append),
            None if h.base_sequence == 0 => Ok(SequenceCheck::Append),
            prev => Err(LogError::OutOfOrderSequence(format!(
                "producer {} epoch {}: sequence {} does not follow {}",
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                prev.map_or("nothing".to_string(), |p| p.to_string())
            ))),
        }
    }

    /// Every producer this partition knows, for DescribeProducers.
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        let mut out: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(pid, e)| ActiveProducer {
                producer_id: *pid,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// The first offset of the oldest open transaction: nothing from it on is stable yet.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Record a transaction marker written at `h.base_offset`; returns the transaction it closed
    /// (none when the producer had no open transaction, e.g. an abort of an empty one).
    pub fn complete_txn(&mut self, h: &BatchHeader, commit: bool) -> Option<CompletedTxn> {
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                last_timestamp: -1,
                ..ProducerEntry::default()
            });
        if h.producer_epoch > entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(h.max_timestamp);
        let first = entry.current_txn_first_offset.take()?;
        self.ongoing.remove(&first);
        Some(CompletedTxn {
            producer_id: h.producer_id,
            first_offset: first,
            last_offset: h.base_offset,
            aborted: !commit,
        })
    }

    /// Keeps the producers for which `keep(last batch timestamp, has an open transaction)` holds.
    /// A producer known only from markers has no batch timestamp and is kept.
    pub(crate) fn retain_producers(&mut self, keep: impl Fn(Option<i64>, bool) -> bool) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            keep(
                (e.last_timestamp >= 0).then_some(e.last_timestamp),
                e.current_txn_first_offset.is_some(),
            )
        });
        before - self.producers.len()
    }

    /// Whether `producer_id` has an open transaction on this partition.
    pub fn has_ongoing_txn(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.current_txn_first_offset.is_some())
    }

    /// Record a batch that was written (its base offset assigned).
    pub fn update(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 || h.is_control() {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert(ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                current_txn_first_offset: None,
                last_timestamp: -1,
            });
        entry.last_timestamp = h.max_timestamp;
        if h.is_transactional() && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(h.base_offset);
            self.ongoing.insert(h.base_offset, h.producer_id);
        }
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: h.base_sequence,
            last_seq: last_seq_of(h),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            timestamp: h.max_timestamp,
        });
    }

    /// Write the state as of `offset` (the log end offset) to `<offset>.snapshot`, atomically.
    pub fn write_snapshot(&self, dir: &Path, offset: i64) -> Result<()> {
        let mut buf = Vec::with_capacity(16 + self.producers.len() * 64);
        buf.extend_from_slice(SNAPSHOT_MAGIC);
        buf.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (pid, entry) in &self.producers {
            buf.extend_from_slice(&pid.to_be_bytes());
            buf.extend_from_slice(&entry.epoch.to_be_bytes());
            buf.extend_from_slice(&entry.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
            buf.extend_from_slice(&entry.last_timestamp.to_be_bytes());
            buf.push(entry.batches.len() as u8);
            for b in &entry.batches {
                buf.extend_from_slice(&b.first_seq.to_be_bytes());
                buf.extend_from_slice(&b.last_seq.to_be_bytes());
                buf.extend_from_slice(&b.first_offset.to_be_bytes());
                buf.extend_from_slice(&b.last_offset.to_be_bytes());
                buf.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_be_bytes());
        let path = snapshot_path(dir, offset);
        let tmp = path.with_extension("snapshot.tmp");
        fs::write(&tmp, &buf)
            .and_then(|_| fs::File::open(&tmp)?.sync_all())
            .map_err(|e| LogError::io("writing producer snapshot", &tmp, e))?;
        fs::rename(&tmp, &path)
            .map_err(|e| LogError::io("renaming producer snapshot", &path, e))?;
        // Older snapshots are superseded; keep only the newest two in case this one is torn.
        let mut all = list_snapshots(dir)?;
        all.sort_unstable();
        let keep_from = all.len().saturating_sub(2);
        for old in &all[..keep_from] {
            let _ = fs::remove_file(snapshot_path(dir, *old));
        }
        Ok(())
    }

    /// Load the newest readable snapshot at or below `upto`; returns it and its offset. A snapshot
    /// beyond `upto` (the log was cut after a crash) or one that fails its CRC is removed.
    pub fn load_latest(dir: &Path, upto: i64) -> Result<Option<(ProducerStateManager, i64)>> {
        let mut offsets = list_snapshots(dir)?;
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        for offset in offsets {
            let path = snapshot_path(dir, offset);
            if offset > upto {
                let _ = fs::remove_file(&path);
                continue;
            }
            let bytes = fs::read(&path).map_err(|e| LogError::io("reading", &path, e))?;
            match parse_snapshot(&bytes) {
                Some(state) => return Ok(Some((state, offset))),
                None => {
                    tracing::warn!(snapshot = %path.display(), "ignoring unreadable producer snapshot");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        Ok(None)
    }
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_SUFFIX}"))
}

fn list_snapshots(dir: &Path) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| LogError::io("listing", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".snapshot")
            && stem.len() == 20
            && let Ok(offset) = stem.parse::<i64>()
        {
            out.push(offset);
        }
    }
    Ok(out)
}

fn parse_snapshot(bytes: &[u8]) -> Option<ProducerStateManager> {
    if bytes.len() < 12 {
        return None;
    }
    let with_timestamps = match &bytes[..4] {
        m if m == SNAPSHOT_MAGIC => true,
        m if m == SNAPSHOT_MAGIC_V2 => false,
        _ => return None,
    };
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut r = Reader { buf: body, pos: 4 };
    let count = r.u32()?;
    let mut producers = HashMap::with_capacity(count as usize);
    let mut ongoing = std::collections::BTreeMap::new();
    for _ in 0..count {
        let pid = r.i64()?;
        let epoch = r.i16()?;
        let txn_first = r.i64()?;
        let current_txn_first_offset = (txn_first >= 0).then_some(txn_first);
        let stored_timestamp = if with_timestamps {
            Some(r.i64()?)
        } else {
            None
        };
        if let Some(first) = current_txn_first_offset {
            ongoing.insert(first, pid);
        }
        let n = r.u8()?;
        let mut batches = VecDeque::with_capacity(n as usize);
        for _ in 0..n {
            batches.push_back(BatchMetadata {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                first_offset: r.i64()?,
                last_offset: r.i64()?,
                timestamp: r.i64()?,
            });
        }
        let last_timestamp =
            stored_timestamp.unwrap_or_else(|| batches.back().map_or(-1, |b| b.timestamp));
        producers.insert(
            pid,
            ProducerEntry {
                epoch,
                batches,
                current_txn_first_offset,
                last_timestamp,
            },
        );
    }
    Some(ProducerStateManager { producers, ongoing })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.buf.get(self.pos..self.pos + N)?;
        self.pos += N;
        bytes.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn duplicates_gaps_and_epochs() {
        let mut s = ProducerStateManager::new();
        let b0 = header(7, 0, 0, 3, 100);
        assert_eq!(s.check(&b0).expect("first"), SequenceCheck::Append);
        s.update(&b0);
        // The same batch again is a duplicate answered with its first offsets.
        match s.check(&header(7, 0, 0, 3, 0)).expect("dup") {
            SequenceCheck::Duplicate(m) => assert_eq!((m.first_offset, m.last_offset), (100, 102)),
            other => panic!("expected duplicate, got {other:?}"),
        }
        // A gap is out of order.
        assert!(matches!(
            s.check(&header(7, 0, 5, 1, 0)),
            Err(LogError::OutOfOrderSequence(_))
        ));
        let b1 = header(7, 0, 3, 2, 103);
        assert_eq!(s.check(&b1).expect("next"), SequenceCheck::Append);
        s.update(&b1);
        assert_eq!(
            s.check(&header(7, 0, 5, 1, 0)).expect("follows"),
            SequenceCheck::Append
        );
        // After a bump, an older epoch is fenced and the new epoch must start at 0.
        s.update(&header(7, 1, 0, 1, 105));
        assert!(matches!(
            s.check(&header(7, 0, 1, 1, 0)),
            Err(LogError::InvalidProducerEpoch(_))
        ));
        assert!(matches!(
            s.check(&header(7, 2, 4, 1, 0)),
            Err(LogError::OutOfOrderSequence(_))
        ));
    }

    #[test]
    fn snapshot_round_trip_and_sequence_wrap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = ProducerStateManager::new();
        for i in 0..7 {
            s.update(&header(1, 3, i * 2, 2, 10 + i64::from(i) * 2));
        }
        s.update(&header(2, 0, i32::MAX - 1, 2, 50));
        s.write_snapshot(dir.path(), 52).expect("write");
        let (loaded, at) = ProducerStateManager::load_latest(dir.path(), 52)
            .expect("load")
            .expect("some");
        assert_eq!(at, 52);
        assert_eq!(loaded.len(), 2);
        assert!(matches!(
            loaded.check(&header(1, 3, 12, 2, 0)),
            Ok(SequenceCheck::Duplicate(_))
        ));
        assert_eq!(
            loaded.check(&header(2, 0, 0, 1, 0)).expect("wraps"),
            SequenceCheck::Append
        );
        // A snapshot past the end of a truncated log is dropped.
        assert!(
            ProducerStateManager::load_latest(dir.path(), 40)
                .expect("load")
                .is_none()
        );
    }
}
