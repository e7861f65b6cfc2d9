//! A stream task: one instance of a sub-topology for one input partition (Kafka's StreamTask). It owns
//! the processors and state stores of that partition, runs records through the graph depth-first,
//! keeps stream time, fires punctuators and queues output and changelog records. It talks to no
//! Kafka client: the stream thread (or the test driver) sends what it queued and commits offsets.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::error::{Result, SerdeError, StreamsError};
use crate::partition_group::PartitionGroup;
use crate::processor::{Processor, PunctuationType};
use crate::record::{Dyn, Headers, Record, RecordMetadata};
use crate::serde::ErasedSerde;
use crate::state::{KvBackend, StateStore, StoreKind};
use crate::topology::{NodeKind, SinkTopic, StoreDef, Topology};

/// Kafka's TaskId: sub-topology and partition, printed as `0_1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    pub subtopology: usize,
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// A record ready for a producer. `partition` None lets the partitioner choose from the key.
#[derive(Clone, Debug)]
pub struct OutRecord {
    pub topic: String,
    pub partition: Option<i32>,
    /// With `partition` None: the bytes to partition by when not the key (a windowed key's base
    /// key, see `Serde::partition_bytes`).
    pub partition_key: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Headers,
}

/// Why a record could not be processed.
#[derive(Debug)]
pub enum ProcessError {
    /// Key or value did not deserialize: the deserialization exception handler decides.
    Deserialization(SerdeError),
    Other(StreamsError),
}

impl From<StreamsError> for ProcessError {
    fn from(e: StreamsError) -> Self {
        ProcessError::Other(e)
    }
}

struct Schedule {
    node: usize,
    id: u64,
    interval: i64,
    kind: PunctuationType,
    next: i64,
}

/// Everything a processor may touch, split from the processor list so one processor can run while
/// the others wait in their slots.
pub struct TaskState {
    pub id: TaskId,
    pub(crate) topology: Arc<Topology>,
    pub application_id: String,
    pub(crate) stores: BTreeMap<String, StateStore>,
    store_order: Vec<String>,
    pub output: Vec<OutRecord>,
    stream_time: i64,
    /// The test driver's mock clock; None = the system clock.
    pub(crate) mock_wall_clock: Option<i64>,
    metadata: RecordMetadata,
    schedules: Vec<Schedule>,
    next_schedule_id: u64,
    commit_requested: bool,
    /// GlobalKTable stores, shared by every task of the instance (read-only here).
    pub(crate) globals: HashMap<String, Arc<dyn KvBackend>>,
}

/// Kafka's ProcessorContext: forward, stores, punctuators, metadata.
pub struct ProcessorContext<'a> {
    state: &'a mut TaskState,
    processors: &'a mut Vec<Option<Box<dyn Processor>>>,
    node: usize,
}

impl ProcessorContext<'_> {
    /// Sends a record to every child of this node.
    pub fn forward(&mut self, record: Record) -> Result<()> {
        let children = self.state.topology.nodes[self.node].children.clone();
        for c in children {
            run_node(self.state, self.processors, c, record.clone())?;
        }
        Ok(())
    }

    /// Sends a record to the named child only.
    pub fn forward_to(&mut self, child: &str, record: Record) -> Result<()> {
        let topo = self.state.topology.clone();
        let c = topo.nodes[self.node]
            .children
            .iter()
            .copied()
            .find(|&c| topo.nodes[c].name == child)
            .ok_or_else(|| {
                StreamsError::Streams(format!(
                    "Unknown downstream node: {child} is not a child of {}",
                    topo.nodes[self.node].name
                ))
            })?;
        run_node(self.state, self.processors, c, record)
    }

    /// A state store connected to this processor.
    pub fn store(&mut self, name: &str) -> Result<&mut StateStore> {
        let topo = self.state.topology.clone();
        if !topo.nodes[self.node].stores.iter().any(|s| s == name) {
            return Err(StreamsError::Streams(format!(
                "Processor {} has no access to StateStore {name} as the store is not connected to the processor.",
                topo.nodes[self.node].name
            )));
        }
        self.state
            .stores
            .get_mut(name)
            .ok_or_else(|| StreamsError::Streams(format!("StateStore {name} is not open")))
    }

    /// Makes this node receive the store's flushed cache entries (`Processor::on_cache_flush`).
    pub fn set_flush_listener(&mut self, store: &str) -> Result<()> {
        let node = self.node;
        self.store(store)?.flush_listener = Some(node);
        Ok(())
    }

    /// Schedules `Processor::punctuate` every `interval_ms`; returns the punctuator id.
    pub fn schedule(&mut self, interval_ms: i64, kind: PunctuationType) -> u64 {
        let id = self.state.next_schedule_id;
        self.state.next_schedule_id += 1;
        let next = match kind {
            // Kafka starts stream-time schedules at 0: the first record fires it.
            PunctuationType::StreamTime => 0,
            PunctuationType::WallClockTime => self.state.now() + interval_ms.max(1),
        };
        self.state.schedules.push(Schedule {
            node: self.node,
            id,
            interval: interval_ms.max(1),
            kind,
            next,
        });
        id
    }

    /// Cancels a punctuator.
    pub fn cancel(&mut self, id: u64) {
        self.state.schedules.retain(|s| s.id != id);
    }

    pub fn record_metadata(&self) -> &RecordMetadata {
        &self.state.metadata
    }
    pub fn task_id(&self) -> TaskId {
        self.state.id
    }
    pub fn application_id(&self) -> &str {
        &self.state.application_id
    }
    pub fn current_stream_time_ms(&self) -> i64 {
        self.state.stream_time
    }
    pub fn current_system_time_ms(&self) -> i64 {
        self.state.now()
    }
    /// Reads a GlobalKTable store: the value bytes of `key`, if present.
    pub fn global_get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let b = self.state.globals.get(store).ok_or_else(|| {
            StreamsError::Streams(format!("global store {store} is not available"))
        })?;
        Ok(b.get(key)?.map(|v| crate::state::split_ts(&v).1))
    }

    /// Asks for a commit as soon as possible.
    pub fn commit(&mut self) {
        self.state.commit_requested = true;
    }
    /// The name of the node running.
    pub fn node_name(&self) -> &str {
        &self.state.topology.nodes[self.node].name
    }
}

impl TaskState {
    fn now(&self) -> i64 {
        self.mock_wall_clock.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        })
    }

    fn drain_changelogs(&mut self) {
        let partition = self.id.partition;
        for s in self.stores.values_mut() {
            let Some(topic) = s.changelog.clone() else {
                continue;
            };
            for (k, v, ts) in s.take_changelog() {
                self.output.push(OutRecord {
                    topic: topic.clone(),
                    partition: Some(partition),
                    partition_key: None,
                    key: Some(k),
                    value: v,
                    timestamp: ts,
                    headers: Vec::new(),
                });
            }
        }
    }
}

fn serialize_with(
    serde: &Option<ErasedSerde>,
    topic: &str,
    d: Option<&Dyn>,
    what: &str,
    sink: &str,
) -> Result<Option<Vec<u8>>> {
    let Some(d) = d else { return Ok(None) };
    if let Some(s) = serde {
        return Ok(Some((s.ser)(topic, d)?));
    }
    // Without a serde only raw bytes (or strings) can be written.
    if let Some(b) = d.downcast_ref::<Vec<u8>>() {
        return Ok(Some(b.clone()));
    }
    if let Some(s) = d.downcast_ref::<String>() {
        return Ok(Some(s.as_bytes().to_vec()));
    }
    Err(StreamsError::Streams(format!(
        "sink {sink}: no {what} serde given (Produced::with) and the {what} is not bytes or a String"
    )))
}

fn run_node(
    state: &mut TaskState,
    processors: &mut Vec<Option<Box<dyn Processor>>>,
    idx: usize,
    record: Record,
) -> Result<()> {
    let topo = state.topology.clone();
    let node = &topo.nodes[idx];
    match &node.kind {
        NodeKind::Sink { topic, key, value } => {
            let t = match topic {
                SinkTopic::Fixed(t) => topo.resolve_topic(&state.application_id, t),
                SinkTopic::Extractor(f) => f(&record, &state.metadata),
            };
            let k = serialize_with(key, &t, record.key.as_ref(), "key", &node.name)?;
            let v = serialize_with(value, &t, record.value.as_ref(), "value", &node.name)?;
            let partition_key = match (key, record.key.as_ref()) {
                (Some(s), Some(d)) => (s.partition)(&t, d)?,
                _ => None,
            };
            state.output.push(OutRecord {
                topic: t,
                partition: None,
                partition_key,
                key: k,
                value: v,
                timestamp: record.timestamp,
                headers: record.headers,
            });
            Ok(())
        }
        NodeKind::Source { .. } => {
            let mut ctx = ProcessorContext {
                state,
                processors,
                node: idx,
            };
            ctx.forward(record)
        }
        NodeKind::Processor { .. } => {
            let mut p = processors[idx].take().ok_or_else(|| {
                StreamsError::Streams(format!("processor {} re-entered", node.name))
            })?;
            let r = {
                let mut ctx = ProcessorContext {
                    state,
                    processors,
                    node: idx,
                };
                p.process(&mut ctx, record)
            };
            processors[idx] = Some(p);
            r
        }
    }
}

/// Makes the backend of one store for one task.
pub type BackendFactory<'a> = dyn FnMut(&StoreDef, TaskId) -> Result<Arc<dyn KvBackend>> + 'a;

/// Kafka's StreamTask.
pub struct StreamTask {
    pub state: TaskState,
    processors: Vec<Option<Box<dyn Processor>>>,
    source_by_topic: HashMap<String, usize>,
    cache_max_bytes: usize,
    /// Next offset to commit per input (topic, partition).
    pub consumed: BTreeMap<(String, i32), i64>,
    /// Fetched records not yet processed, per input partition (the stream thread fills it and
    /// takes the next record by timestamp; the test driver processes each piped record at once).
    pub partition_group: PartitionGroup,
    initialized: bool,
}

impl StreamTask {
    /// Creates the task's stores and processors; `init` runs later (after restoration).
    pub fn new(
        topology: Arc<Topology>,
        application_id: &str,
        id: TaskId,
        cache_max_bytes: usize,
        backends: &mut BackendFactory<'_>,
    ) -> Result<Self> {
        let subs = topology.subtopologies();
        let sub = subs.get(id.subtopology).ok_or_else(|| {
            StreamsError::Streams(format!("task {id}: no sub-topology {}", id.subtopology))
        })?;
        let mut processors: Vec<Option<Box<dyn Processor>>> =
            (0..topology.nodes.len()).map(|_| None).collect();
        let mut source_by_topic = HashMap::new();
        for &i in &sub.nodes {
            match &topology.nodes[i].kind {
                NodeKind::Processor { supplier } => processors[i] = Some(supplier()),
                NodeKind::Source { topics, .. } => {
                    for t in topics {
                        source_by_topic.insert(topology.resolve_topic(application_id, t), i);
                    }
                }
                NodeKind::Sink { .. } => {}
            }
        }
        let mut stores = BTreeMap::new();
        let mut store_order = Vec::new();
        for def in &topology.stores {
            if !sub.stores.contains(&def.name) {
                continue;
            }
            let backend = backends(def, id)?;
            let changelog = def
                .logging
                .then(|| Topology::changelog_topic(application_id, &def.name));
            let cached = def.caching && def.kind == StoreKind::KeyValue;
            stores.insert(
                def.name.clone(),
                StateStore::new(def.name.clone(), def.kind, backend, changelog, cached),
            );
            store_order.push(def.name.clone());
        }
        let partition_group =
            PartitionGroup::new(source_by_topic.keys().map(|t| (t.clone(), id.partition)), 0);
        Ok(StreamTask {
            state: TaskState {
                id,
                topology,
                application_id: application_id.to_string(),
                stores,
                store_order,
                output: Vec::new(),
                stream_time: i64::MIN,
                mock_wall_clock: None,
                metadata: RecordMetadata::default(),
                schedules: Vec::new(),
                next_schedule_id: 0,
                commit_requested: false,
                globals: HashMap::new(),
            },
            processors,
            source_by_topic,
            cache_max_bytes,
            consumed: BTreeMap::new(),
            partition_group,
            initialized: false,
        })
    }

    /// Runs every processor's `init` (Kafka does it once stores are restored).
    pub fn initialize(&mut self) -> Result<()> {
        if self.initialized {
            return Ok(());
        }
        self.initialized = true;
        for i in 0..self.processors.len() {
            if let Some(mut p) = self.processors[i].take() {
                let r = {
                    let mut ctx = ProcessorContext {
                        state: &mut self.state,
                        processors: &mut self.processors,
                        node: i,
                    };
                    p.init(&mut ctx)
                };
                self.processors[i] = Some(p);
                r?;
            }
        }
        Ok(())
    }

    pub fn store_mut(&mut self, name: &str) -> Option<&mut StateStore> {
        self.state.stores.get_mut(name)
    }
    pub fn store(&self, name: &str) -> Option<&StateStore> {
        self.state.stores.get(name)
    }
    pub fn stores(&self) -> impl Iterator<Item = &StateStore> {
        self.state.stores.values()
    }

    /// The full names of the topics this task reads.
    pub fn input_topics(&self) -> impl Iterator<Item = &String> {
        self.source_by_topic.keys()
    }

    /// Runs one input record through the graph.
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Headers,
    ) -> Result<(), ProcessError> {
        let src = *self.source_by_topic.get(topic).ok_or_else(|| {
            ProcessError::Other(StreamsError::Streams(format!(
                "task {}: no source for topic {topic}",
                self.state.id
            )))
        })?;
        let topo = self.state.topology.clone();
        let NodeKind::Source {
            key: kser,
            value: vser,
            ..
        } = &topo.nodes[src].kind
        else {
            return Err(ProcessError::Other(StreamsError::Streams(
                "source node is not a source".into(),
            )));
        };
        let de = |s: &Option<ErasedSerde>, b: Option<&[u8]>| -> Result<Option<Dyn>, SerdeError> {
            match (s, b) {
                (_, None) => Ok(None),
                (Some(s), Some(b)) => (s.de)(topic, b).map(Some),
                (None, Some(b)) => Ok(Some(Arc::new(b.to_vec()) as Dyn)),
            }
        };
        let k = de(kser, key).map_err(ProcessError::Deserialization)?;
        let v = de(vser, value).map_err(ProcessError::Deserialization)?;
        // Offsets advance even for records a handler skips later; done here so a failed record is
        // never committed (the error returns before this line only for deserialization).
        self.state.metadata = RecordMetadata {
            topic: topic.to_string(),
            partition,
            offset,
        };
        if timestamp > self.state.stream_time {
            self.state.stream_time = timestamp;
        }
        let mut rec = Record::new(k, v, timestamp);
        rec.headers = headers;
        run_node(&mut self.state, &mut self.processors, src, rec)?;
        self.consumed
            .insert((topic.to_string(), partition), offset + 1);
        self.punctuate(PunctuationType::StreamTime, self.state.stream_time)?;
        for s in self.state.stores.values_mut() {
            s.expire(self.state.stream_time)?;
        }
        let cached: usize = self.state.stores.values().map(|s| s.cache_bytes()).sum();
        if cached > self.cache_max_bytes {
            self.flush()?;
        }
        self.state.drain_changelogs();
        Ok(())
    }

    /// Marks a record as consumed without processing it (skipped by the deserialization handler).
    pub fn skip(&mut self, topic: &str, partition: i32, offset: i64) {
        self.consumed
            .insert((topic.to_string(), partition), offset + 1);
    }

    /// Fires due punctuators of one kind at time `now`.
    pub fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<()> {
        let due: Vec<(usize, u64)> = self
            .state
            .schedules
            .iter_mut()
            .filter(|s| s.kind == kind && now >= s.next)
            .map(|s| {
                let steps = (now - s.next) / s.interval + 1;
                s.next += steps * s.interval;
                (s.node, s.id)
            })
            .collect();
        for (node, id) in due {
            if let Some(mut p) = self.processors[node].take() {
                let r = {
                    let mut ctx = ProcessorContext {
                        state: &mut self.state,
                        processors: &mut self.processors,
                        node,
                    };
                    p.punctuate(&mut ctx, id, now)
                };
                self.processors[node] = Some(p);
                r?;
            }
        }
        self.state.drain_changelogs();
        Ok(())
    }

    /// Fires wall-clock punctuators (the thread calls this each loop; the test driver on advance).
    pub fn punctuate_wall_clock(&mut self) -> Result<()> {
        let now = self.state.now();
        self.punctuate(PunctuationType::WallClockTime, now)
    }

    /// Flushes record caches (forwarding what they held) and queues changelog writes: the first
    /// half of a commit.
    pub fn flush(&mut self) -> Result<()> {
        for name in self.state.store_order.clone() {
            let (entries, listener) = match self.state.stores.get_mut(&name) {
                Some(s) => (s.flush()?, s.flush_listener),
                None => continue,
            };
            if let Some(node) = listener
                && !entries.is_empty()
                && let Some(mut p) = self.processors[node].take()
            {
                let r = {
                    let mut ctx = ProcessorContext {
                        state: &mut self.state,
                        processors: &mut self.processors,
                        node,
                    };
                    p.on_cache_flush(&mut ctx, &name, entries)
                };
                self.processors[node] = Some(p);
                r?;
            }
        }
        self.state.drain_changelogs();
        self.state.commit_requested = false;
        Ok(())
    }

    pub fn commit_requested(&self) -> bool {
        self.state.commit_requested
    }

    /// Takes the queued output and changelog records.
    pub fn take_output(&mut self) -> Vec<OutRecord> {
        std::mem::take(&mut self.state.output)
    }

    pub fn stream_time(&self) -> i64 {
        self.state.stream_time
    }

    /// Closes all processors.
    pub fn close(&mut self) {
        for p in self.processors.iter_mut().flatten() {
            p.close();
        }
    }
}
