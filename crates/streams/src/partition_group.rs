//! Kafka's PartitionGroup: the per-task buffers of fetched, not yet processed records, one per
//! input partition, and the choice of which record the task processes next. The next record is
//! always the head with the lowest timestamp across the partitions (ties: the first partition in
//! (topic, partition) order), so a task reading several topics sees their records interleaved by
//! time rather than in the order the fetches happened to arrive. With `max.task.idle.ms` > 0 a
//! task whose partitions are not all buffered waits up to that long for the missing ones before it
//! processes what it has.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::record::Headers;

/// Kafka's StampedRecord: a fetched record with its timestamp, owned so it can wait in a buffer
/// after the consumer's message is gone.
#[derive(Clone, Debug)]
pub struct StampedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
}

/// The buffers of one task's input partitions.
#[derive(Debug)]
pub struct PartitionGroup {
    /// Every input partition of the task, buffered or not: an empty queue is a partition the task
    /// may be waiting for.
    queues: BTreeMap<(String, i32), VecDeque<StampedRecord>>,
    /// `max.task.idle.ms`; None (0 or negative) never waits for a partition with nothing buffered.
    max_idle: Option<Duration>,
    /// Since when some partition has had an empty buffer while others held records.
    waiting_since: Option<Instant>,
}

impl PartitionGroup {
    /// A group over `partitions` (the task's (topic, partition) inputs).
    pub fn new(partitions: impl IntoIterator<Item = (String, i32)>, max_task_idle_ms: i64) -> Self {
        PartitionGroup {
            queues: partitions
                .into_iter()
                .map(|tp| (tp, VecDeque::new()))
                .collect(),
            max_idle: (max_task_idle_ms > 0)
                .then(|| Duration::from_millis(max_task_idle_ms as u64)),
            waiting_since: None,
        }
    }

    /// Buffers a fetched record behind the earlier ones of its partition.
    pub fn add(&mut self, r: StampedRecord) {
        self.queues
            .entry((r.topic.clone(), r.partition))
            .or_default()
            .push_back(r);
    }

    /// How many records are buffered over all partitions.
    pub fn buffered(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// Whether the task may process now (Kafka's `readyToProcess`): every partition has a record,
    /// or idling is off, or the task has waited `max.task.idle.ms` for the empty ones.
    pub fn ready(&mut self, now: Instant) -> bool {
        if self.buffered() == 0 {
            self.waiting_since = None;
            return false;
        }
        let Some(max_idle) = self.max_idle else {
            return true;
        };
        if self.queues.values().all(|q| !q.is_empty()) {
            self.waiting_since = None;
            return true;
        }
        let since = *self.waiting_since.get_or_insert(now);
        now.duration_since(since) >= max_idle
    }

    /// Takes the buffered head record with the lowest timestamp; ties go to the partition first
    /// in (topic, partition) order, which the map's iteration order gives.
    pub fn next_record(&mut self) -> Option<StampedRecord> {
        let mut best: Option<(&(String, i32), i64)> = None;
        for (tp, q) in &self.queues {
            if let Some(head) = q.front()
                && best.is_none_or(|(_, ts)| head.timestamp < ts)
            {
                best = Some((tp, head.timestamp));
            }
        }
        let tp = best?.0.clone();
        self.queues.get_mut(&tp).and_then(VecDeque::pop_front)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(topic: &str, offset: i64, ts: i64) -> StampedRecord {
        StampedRecord {
            topic: topic.into(),
            partition: 0,
            offset,
            timestamp: ts,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    fn order(g: &mut PartitionGroup) -> Vec<(String, i64)> {
        std::iter::from_fn(|| g.next_record())
            .map(|r| (r.topic, r.offset))
            .collect()
    }

    #[test]
    fn lowest_head_timestamp_first_ties_by_partition_order() {
        let mut g = PartitionGroup::new([("a".into(), 0), ("b".into(), 0)], 0);
        // Buffered topic by topic, as fetches arrive.
        for (o, ts) in [(0, 10), (1, 30), (2, 30)] {
            g.add(rec("b", o, ts));
        }
        for (o, ts) in [(0, 20), (1, 30), (2, 5)] {
            g.add(rec("a", o, ts));
        }
        // Heads only: a's record at 5 waits behind a's head at 30 (partition order is kept).
        assert_eq!(
            order(&mut g),
            vec![
                ("b".into(), 0),
                ("a".into(), 0),
                ("a".into(), 1),
                ("a".into(), 2),
                ("b".into(), 1),
                ("b".into(), 2),
            ]
        );
    }

    #[test]
    fn idle_time_waits_for_empty_partitions() {
        let t0 = Instant::now();
        let mut g = PartitionGroup::new([("a".into(), 0), ("b".into(), 0)], 100);
        assert!(!g.ready(t0), "nothing buffered");
        g.add(rec("a", 0, 1));
        assert!(!g.ready(t0), "b is empty and the task has not waited yet");
        assert!(!g.ready(t0 + Duration::from_millis(99)));
        assert!(g.ready(t0 + Duration::from_millis(100)));
        g.add(rec("b", 0, 2));
        assert!(g.ready(t0 + Duration::from_millis(100)), "both buffered");
        let mut no_idle = PartitionGroup::new([("a".into(), 0), ("b".into(), 0)], 0);
        no_idle.add(rec("a", 0, 1));
        assert!(
            no_idle.ready(t0),
            "max.task.idle.ms 0 processes what is buffered"
        );
    }
}
