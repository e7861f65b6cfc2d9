//! Kafka's TopologyTestDriver: runs a topology synchronously without a broker. One task per
//! sub-topology (partition 0) with in-memory stores; every piped record is processed and committed
//! at once, records written to topics the topology reads (repartition topics) are fed back in.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::DeserializationHandler;
use crate::error::{Result, StreamsError};
use crate::processor::PunctuationType;
use crate::query::{ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore};
use crate::serde::SerdeRef;
use crate::state::{KvBackend, MemBackend};
use crate::task::{OutRecord, ProcessError, StreamTask, TaskId};
use crate::topology::Topology;

struct Inner {
    topology: Arc<Topology>,
    tasks: Vec<StreamTask>,
    topic_task: HashMap<String, usize>,
    outputs: HashMap<String, VecDeque<OutRecord>>,
    produced: BTreeSet<String>,
    offsets: HashMap<String, i64>,
    wall_clock: i64,
    handler: DeserializationHandler,
    /// Global topic -> its store's backend.
    globals: HashMap<String, Arc<dyn KvBackend>>,
}

/// Kafka's TopologyTestDriver.
pub struct TopologyTestDriver {
    inner: Rc<RefCell<Inner>>,
}

/// Kafka's TestRecord.
#[derive(Clone, Debug, PartialEq)]
pub struct TestRecord<K, V> {
    pub key: Option<K>,
    pub value: Option<V>,
    pub timestamp: i64,
}

impl TopologyTestDriver {
    /// Application id "dummy-topology-test-driver-app-id" as Kafka's driver defaults to.
    pub fn new(topology: Topology) -> Result<Self> {
        Self::with_app_id(
            topology,
            "dummy-topology-test-driver-app-id",
            DeserializationHandler::LogAndFail,
        )
    }

    pub fn with_app_id(
        topology: Topology,
        application_id: &str,
        handler: DeserializationHandler,
    ) -> Result<Self> {
        topology.validate()?;
        let topology = Arc::new(topology);
        let mut global_stores: HashMap<String, Arc<dyn KvBackend>> = HashMap::new();
        let mut globals = HashMap::new();
        for g in &topology.globals {
            let b: Arc<dyn KvBackend> = Arc::new(MemBackend::default());
            global_stores.insert(g.store.name.clone(), b.clone());
            globals.insert(g.topic.clone(), b);
        }
        let mut tasks = Vec::new();
        let mut topic_task = HashMap::new();
        for s in topology.subtopologies() {
            let mut factory =
                |_: &crate::topology::StoreDef, _: TaskId| -> Result<Arc<dyn KvBackend>> {
                    Ok(Arc::new(MemBackend::default()))
                };
            let mut t = StreamTask::new(
                topology.clone(),
                application_id,
                TaskId {
                    subtopology: s.id,
                    partition: 0,
                },
                0,
                &mut factory,
            )?;
            t.state.mock_wall_clock = Some(0);
            t.state.globals = global_stores.clone();
            t.initialize()?;
            for topic in t.input_topics() {
                topic_task.insert(topic.clone(), s.id);
            }
            tasks.push(t);
        }
        Ok(TopologyTestDriver {
            inner: Rc::new(RefCell::new(Inner {
                topology,
                tasks,
                topic_task,
                outputs: HashMap::new(),
                produced: BTreeSet::new(),
                offsets: HashMap::new(),
                wall_clock: 0,
                handler,
                globals,
            })),
        })
    }

    pub fn create_input_topic<K, V>(
        &self,
        topic: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            ks: key,
            vs: value,
            time: 0,
        }
    }

    pub fn create_output_topic<K, V>(
        &self,
        topic: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            ks: key,
            vs: value,
            _p: PhantomData,
        }
    }

    /// Moves the mock clock and fires wall-clock punctuators.
    pub fn advance_wall_clock_time(&self, ms: i64) -> Result<()> {
        let mut i = self.inner.borrow_mut();
        i.wall_clock += ms;
        let now = i.wall_clock;
        for t in 0..i.tasks.len() {
            i.tasks[t].state.mock_wall_clock = Some(now);
            i.tasks[t].punctuate(PunctuationType::WallClockTime, now)?;
            i.tasks[t].flush()?;
            let out = i.tasks[t].take_output();
            i.route(out)?;
        }
        Ok(())
    }

    /// Every topic the topology wrote to (including internal and changelog topics).
    pub fn produced_topic_names(&self) -> BTreeSet<String> {
        self.inner.borrow().produced.clone()
    }

    fn backends(&self, name: &str) -> Result<(crate::topology::StoreDef, Vec<Arc<dyn KvBackend>>)> {
        let i = self.inner.borrow();
        if let Some(g) = i.topology.globals.iter().find(|g| g.store.name == name) {
            let b = i.globals.get(&g.topic).cloned().into_iter().collect();
            return Ok((g.store.clone(), b));
        }
        let def = i
            .topology
            .store_def(name)
            .cloned()
            .ok_or_else(|| StreamsError::Streams(format!("no store named {name}")))?;
        let parts = i
            .tasks
            .iter()
            .filter_map(|t| t.store(name).map(|s| s.backend.clone()))
            .collect();
        Ok((def, parts))
    }

    /// Kafka's `getKeyValueStore(name)`.
    pub fn key_value_store<K, V>(&self, name: &str) -> Result<ReadOnlyKeyValueStore<K, V>>
    where
        K: Send + Sync + Clone + 'static,
        V: Send + Sync + Clone + 'static,
    {
        let (def, parts) = self.backends(name)?;
        ReadOnlyKeyValueStore::new(&def, parts)
    }

    /// Kafka's `getWindowStore(name)`.
    pub fn window_store<K, V>(&self, name: &str) -> Result<ReadOnlyWindowStore<K, V>>
    where
        K: Send + Sync + Clone + 'static,
        V: Send + Sync + Clone + 'static,
    {
        let (def, parts) = self.backends(name)?;
        ReadOnlyWindowStore::new(&def, parts)
    }

    /// Kafka's `getSessionStore(name)`.
    pub fn session_store<K, V>(&self, name: &str) -> Result<ReadOnlySessionStore<K, V>>
    where
        K: Send + Sync + Clone + 'static,
        V: Send + Sync + Clone + 'static,
    {
        let (def, parts) = self.backends(name)?;
        ReadOnlySessionStore::new(&def, parts)
    }
}

impl Inner {
    fn pipe(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        ts: i64,
    ) -> Result<()> {
        if let Some(g) = self.globals.get(topic) {
            // Global tables hold the topic's bytes as they are (with the timestamp prefix).
            if let Some(k) = key {
                match value {
                    Some(v) => {
                        let mut b = ts.to_be_bytes().to_vec();
                        b.extend_from_slice(&v);
                        g.put(&k, &b)?;
                    }
                    None => g.delete(&k)?,
                }
            }
            return Ok(());
        }
        let Some(&t) = self.topic_task.get(topic) else {
            return Err(StreamsError::Streams(format!(
                "Unknown topic: {topic} (not a source topic of the topology)"
            )));
        };
        let off = self.offsets.entry(topic.to_string()).or_insert(0);
        let offset = *off;
        *off += 1;
        let task = &mut self.tasks[t];
        match task.process(
            topic,
            0,
            offset,
            ts,
            key.as_deref(),
            value.as_deref(),
            Vec::new(),
        ) {
            Ok(()) => {}
            Err(ProcessError::Deserialization(e)) => match self.handler {
                DeserializationHandler::LogAndContinue => {
                    tracing::warn!(%topic, offset, error = %e, "skipping record that failed to deserialize");
                    task.skip(topic, 0, offset);
                }
                DeserializationHandler::LogAndFail => return Err(e.into()),
            },
            Err(ProcessError::Other(e)) => return Err(e),
        }
        task.flush()?;
        let out = task.take_output();
        self.route(out)
    }

    fn route(&mut self, out: Vec<OutRecord>) -> Result<()> {
        for r in out {
            self.produced.insert(r.topic.clone());
            self.outputs
                .entry(r.topic.clone())
                .or_default()
                .push_back(r.clone());
            if self.topic_task.contains_key(&r.topic) {
                self.pipe(&r.topic, r.key, r.value, r.timestamp)?;
            }
        }
        Ok(())
    }
}

/// Kafka's TestInputTopic.
pub struct TestInputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
    time: i64,
}

impl<K, V> TestInputTopic<K, V> {
    /// Pipes a record at an explicit timestamp.
    pub fn pipe_input_at(&mut self, key: Option<&K>, value: Option<&V>, ts: i64) -> Result<()> {
        let k = key.map(|k| self.ks.serialize(&self.topic, k)).transpose()?;
        let v = value
            .map(|v| self.vs.serialize(&self.topic, v))
            .transpose()?;
        self.time = self.time.max(ts);
        self.inner.borrow_mut().pipe(&self.topic, k, v, ts)
    }
    /// Pipes a key and value at the topic's current time.
    pub fn pipe_input(&mut self, key: K, value: V) -> Result<()> {
        let t = self.time;
        self.pipe_input_at(Some(&key), Some(&value), t)
    }
    /// Pipes a value with a null key.
    pub fn pipe_value(&mut self, value: V) -> Result<()> {
        let t = self.time;
        self.pipe_input_at(None, Some(&value), t)
    }
    /// Pipes raw bytes (to test deserialization failures).
    pub fn pipe_raw(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, ts: i64) -> Result<()> {
        self.inner.borrow_mut().pipe(
            &self.topic,
            key.map(|k| k.to_vec()),
            value.map(|v| v.to_vec()),
            ts,
        )
    }
    pub fn pipe_key_value_list(&mut self, list: Vec<(K, V)>) -> Result<()> {
        for (k, v) in list {
            self.pipe_input(k, v)?;
        }
        Ok(())
    }
    pub fn pipe_value_list(&mut self, list: Vec<V>) -> Result<()> {
        for v in list {
            self.pipe_value(v)?;
        }
        Ok(())
    }
    /// Moves this topic's record time forward.
    pub fn advance_time(&mut self, ms: i64) {
        self.time += ms;
    }
}

/// Kafka's TestOutputTopic.
pub struct TestOutputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
    _p: PhantomData<fn() -> (K, V)>,
}

impl<K, V> TestOutputTopic<K, V> {
    /// The next record, or None when the topic has nothing more.
    pub fn read_record(&self) -> Result<Option<TestRecord<K, V>>> {
        let r = self
            .inner
            .borrow_mut()
            .outputs
            .get_mut(&self.topic)
            .and_then(|q| q.pop_front());
        let Some(r) = r else { return Ok(None) };
        Ok(Some(TestRecord {
            key: r
                .key
                .map(|k| self.ks.deserialize(&self.topic, &k))
                .transpose()?,
            value: r
                .value
                .map(|v| self.vs.deserialize(&self.topic, &v))
                .transpose()?,
            timestamp: r.timestamp,
        }))
    }
    pub fn read_records_to_list(&self) -> Result<Vec<TestRecord<K, V>>> {
        let mut out = Vec::new();
        while let Some(r) = self.read_record()? {
            out.push(r);
        }
        Ok(out)
    }
    /// (key, value) pairs; null keys or values read as None.
    pub fn read_key_values_to_list(&self) -> Result<Vec<(Option<K>, Option<V>)>> {
        Ok(self
            .read_records_to_list()?
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect())
    }
    pub fn read_values_to_list(&self) -> Result<Vec<Option<V>>> {
        Ok(self
            .read_records_to_list()?
            .into_iter()
            .map(|r| r.value)
            .collect())
    }
    /// The latest value per key (Kafka's readKeyValuesToMap).
    pub fn read_key_values_to_map(&self) -> Result<HashMap<K, Option<V>>>
    where
        K: std::hash::Hash + Eq,
    {
        let mut m = HashMap::new();
        for r in self.read_records_to_list()? {
            if let Some(k) = r.key {
                m.insert(k, r.value);
            }
        }
        Ok(m)
    }
    pub fn queue_size(&self) -> usize {
        self.inner
            .borrow()
            .outputs
            .get(&self.topic)
            .map_or(0, |q| q.len())
    }
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }
}
