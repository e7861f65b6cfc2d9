//! Kafka's PartitionGroup: the per-task buffers of fetched, not yet processed records, one per
//! input partition, and the choice of which record the task processes next. The next record is
//! always the head with the lowest timestamp across the partitions (ties: the first partition in
//! (topic, partition) order), so a task reading several topics sees their records interleaved by
//! time rather than in the order the fetches happened to arrive.
//!
//! Whether a task may process at all follows Kafka 3.0+ (KIP-695, `readyToProcess`): with
//! `max.task.idle.ms` -1 it processes whatever is buffered; otherwise every input partition with
//! an empty buffer must have a known fetched lag of 0 (nothing on the broker the consumer has not
//! yet handed over), and the task then still waits `max.task.idle.ms` from when it first found
//! that partition empty (not at all with the default 0). A partition whose lag is unknown or
//! positive always makes the task wait, so records fetched from one topic are not processed ahead
//! of earlier-stamped records of another topic that simply have not been fetched yet.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
    /// `max.task.idle.ms`; None is -1 (`MAX_TASK_IDLE_MS_DISABLED`): never wait.
    max_idle: Option<Duration>,
    /// Kafka's idlePartitionDeadlines: for an empty partition known to have lag 0, when the task
    /// stops waiting for it (first found empty + `max.task.idle.ms`).
    idle_deadlines: HashMap<(String, i32), Instant>,
}

/// Kafka's `StreamsConfig.MAX_TASK_IDLE_MS_DISABLED`.
pub const MAX_TASK_IDLE_MS_DISABLED: i64 = -1;

impl PartitionGroup {
    /// A group over `partitions` (the task's (topic, partition) inputs).
    pub fn new(partitions: impl IntoIterator<Item = (String, i32)>, max_task_idle_ms: i64) -> Self {
        PartitionGroup {
            queues: partitions
                .into_iter()
                .map(|tp| (tp, VecDeque::new()))
                .collect(),
            // Below -1 is refused by the config; treat it as disabled rather than wrap around.
            max_idle: (max_task_idle_ms > MAX_TASK_IDLE_MS_DISABLED)
                .then(|| Duration::from_millis(max_task_idle_ms.max(0) as u64)),
            idle_deadlines: HashMap::new(),
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

    /// Whether the task may process now (Kafka's `readyToProcess`, KIP-695). `fetched_lag` gives,
    /// for an input partition, how many records the broker holds beyond what the consumer has
    /// handed to the task (None: not known yet); it is asked only about partitions with an empty
    /// buffer, and only while idling is enabled.
    pub fn ready(
        &mut self,
        now: Instant,
        mut fetched_lag: impl FnMut(&str, i32) -> Option<i64>,
    ) -> bool {
        if self.buffered() == 0 {
            return false;
        }
        let Some(max_idle) = self.max_idle else {
            return true;
        };
        for (tp, q) in &self.queues {
            if !q.is_empty() {
                self.idle_deadlines.remove(tp);
                continue;
            }
            match fetched_lag(&tp.0, tp.1) {
                // Unknown lag: wait for the first fetch to say what the partition holds. Lag > 0:
                // wait to be handed the records known to be on the broker.
                None => {
                    self.idle_deadlines.remove(tp);
                    return false;
                }
                Some(lag) if lag > 0 => {
                    self.idle_deadlines.remove(tp);
                    return false;
                }
                // Caught up: wait max.task.idle.ms (from when first found so) for new data there.
                Some(_) => {
                    let deadline = *self
                        .idle_deadlines
                        .entry(tp.clone())
                        .or_insert(now + max_idle);
                    if now < deadline {
                        return false;
                    }
                }
            }
        }
        true
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

    fn two_inputs(max_task_idle_ms: i64) -> PartitionGroup {
        let mut g = PartitionGroup::new([("a".into(), 0), ("b".into(), 0)], max_task_idle_ms);
        g.add(rec("a", 0, 1));
        g
    }

    #[test]
    fn nothing_buffered_is_never_ready() {
        let mut g = PartitionGroup::new([("a".into(), 0)], MAX_TASK_IDLE_MS_DISABLED);
        assert!(!g.ready(Instant::now(), |_, _| Some(0)));
    }

    #[test]
    fn unknown_lag_waits() {
        let t0 = Instant::now();
        let mut g = two_inputs(0);
        let mut asked = Vec::new();
        let lag = |t: &str, p: i32| {
            asked.push((t.to_string(), p));
            None
        };
        assert!(!g.ready(t0 + Duration::from_secs(3600), lag));
        assert_eq!(
            asked,
            vec![("b".to_string(), 0)],
            "only the empty partition"
        );
    }

    #[test]
    fn positive_lag_waits_however_long() {
        let t0 = Instant::now();
        let mut g = two_inputs(100);
        assert!(!g.ready(t0, |_, _| Some(3)));
        assert!(!g.ready(t0 + Duration::from_secs(3600), |_, _| Some(3)));
    }

    #[test]
    fn zero_lag_with_zero_idle_proceeds_at_once() {
        let mut g = two_inputs(0);
        assert!(g.ready(Instant::now(), |_, _| Some(0)));
    }

    #[test]
    fn zero_lag_with_idle_time_waits_then_proceeds() {
        let t0 = Instant::now();
        let mut g = two_inputs(100);
        assert!(!g.ready(t0, |_, _| Some(0)), "b just found empty");
        assert!(!g.ready(t0 + Duration::from_millis(99), |_, _| Some(0)));
        assert!(g.ready(t0 + Duration::from_millis(100), |_, _| Some(0)));
        // Lag appearing again (data produced to b) makes the task wait for it, and once b has
        // been caught up the idle time counts afresh.
        assert!(!g.ready(t0 + Duration::from_millis(150), |_, _| Some(1)));
        assert!(!g.ready(t0 + Duration::from_millis(200), |_, _| Some(0)));
        assert!(g.ready(t0 + Duration::from_millis(300), |_, _| Some(0)));
        g.add(rec("b", 0, 2));
        assert!(
            g.ready(t0 + Duration::from_millis(300), |_, _| None),
            "both buffered: the lag is not asked"
        );
    }

    #[test]
    fn disabled_never_waits_nor_asks() {
        let mut g = two_inputs(MAX_TASK_IDLE_MS_DISABLED);
        assert!(g.ready(Instant::now(), |_, _| panic!(
            "lag asked with idling disabled"
        )));
    }
}
