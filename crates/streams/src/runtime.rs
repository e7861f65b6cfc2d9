//! KafkaStreams and its StreamThreads: the runtime that runs a topology against a cluster through
//! librdkafka. Each thread has one consumer in the group `<application.id>` (range assignor, so a
//! task's co-partitioned inputs land on one member) and one producer (transactional under
//! exactly_once_v2: output, changelog writes and input offsets commit together). Tasks are created
//! on assignment, restored from their changelogs, and committed and closed on revocation. With
//! `num.standby.replicas` above 0 a standby updater thread keeps other instances' stores warm
//! (see `standby`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers as _, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::assignment_info::consumer_client_id;
use crate::checkpoint;
use crate::config::{DeserializationHandler, ProcessingGuarantee, StreamsConfig};
use crate::error::{Result, StreamsError};
use crate::fetched_lag::FetchedLags;
use crate::http_query::{self, QueryService};
use crate::internal_topics;
use crate::metadata::{KeyQueryMetadata, MetadataState, StreamsMetadata, TopicPartition};
use crate::partition_group::{PartitionGroup, StampedRecord};
use crate::partitioner::partition_for_key;
use crate::query::{ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore};
use crate::restore_listener::StateRestoreListener;
use crate::serde::Serde;
use crate::standby::StandbyTasks;
use crate::state::{FjallBackend, KvBackend};
use crate::task::{OutRecord, ProcessError, StreamTask, TaskId};
use crate::topology::{StoreDef, Topology};

/// Kafka's KafkaStreams.State.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Created,
    Rebalancing,
    Running,
    PendingShutdown,
    NotRunning,
    PendingError,
    Error,
}

pub(crate) type Registry = Arc<RwLock<HashMap<String, BTreeMap<TaskId, Arc<dyn KvBackend>>>>>;

struct Shared {
    topology: Arc<Topology>,
    config: StreamsConfig,
    app_dir: PathBuf,
    db: fjall::Database,
    process_id: String,
    shutdown: Arc<AtomicBool>,
    state: Mutex<State>,
    error: Mutex<Option<String>>,
    registry: Registry,
    /// GlobalKTable stores by store name.
    globals: HashMap<String, Arc<dyn KvBackend>>,
    /// Tasks running on this instance, over all threads.
    active: Mutex<BTreeSet<TaskId>>,
    /// Full topic name -> sub-topology id.
    topic_subtopology: HashMap<String, usize>,
    /// Which instance holds what, from the consumer group.
    metadata: Arc<MetadataState>,
    /// Set by every rebalance: the group's assignment changed and `metadata` must be re-read.
    metadata_stale: AtomicBool,
    /// This instance's standby tasks (none unless `num.standby.replicas` > 0).
    standby: Arc<StandbyTasks>,
    restore_listener: Option<Arc<dyn StateRestoreListener>>,
}

/// Kafka's KafkaStreams: runs a topology with `num.stream.threads` threads.
pub struct KafkaStreams {
    topology: Arc<Topology>,
    config: StreamsConfig,
    shared: Option<Arc<Shared>>,
    threads: Vec<JoinHandle<()>>,
    restore_listener: Option<Arc<dyn StateRestoreListener>>,
}

/// A Kafka record applied to a global store: key, value (None = delete), timestamp.
fn apply_global(b: &dyn KvBackend, m: &rdkafka::message::BorrowedMessage<'_>) -> Result<()> {
    let Some(k) = m.key() else { return Ok(()) };
    match m.payload() {
        Some(v) => {
            let mut buf = m
                .timestamp()
                .to_millis()
                .unwrap_or(0)
                .to_be_bytes()
                .to_vec();
            buf.extend_from_slice(v);
            b.put(k, &buf)
        }
        None => b.delete(k),
    }
}

/// Kafka's GlobalStreamThread: load the whole topic before processing starts, then keep up.
fn start_global(
    config: &StreamsConfig,
    topic: &str,
    backend: Arc<dyn KvBackend>,
    shutdown: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.bootstrap_servers)
        .set("group.id", format!("{}-global", config.application_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
    for (k, v) in config.overrides("global.consumer") {
        cc.set(k, v);
    }
    let c: BaseConsumer<RestoreContext> = cc.create_with_context(RestoreContext)?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut pending = BTreeSet::new();
    for &p in &parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| StreamsError::Kafka(e.to_string()))?;
        let (lo, hi) = c.fetch_watermarks(topic, p, Duration::from_secs(30))?;
        if hi > lo {
            pending.insert(p);
        }
    }
    c.assign(&tpl)?;
    backend.clear()?;
    let started = Instant::now();
    while !pending.is_empty() {
        if started.elapsed() > Duration::from_secs(300) {
            return Err(StreamsError::Streams(format!(
                "global table {topic}: partitions {pending:?} did not reach their end in 300 s"
            )));
        }
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
            }
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(m)) => apply_global(backend.as_ref(), &m)?,
        }
    }
    let topic = topic.to_string();
    Ok(std::thread::Builder::new()
        .name(format!("{}-GlobalStreamThread", config.application_id))
        .spawn(move || {
            while !shutdown.load(Ordering::SeqCst) {
                match c.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        if let Err(e) = apply_global(backend.as_ref(), &m) {
                            tracing::error!(%topic, error = %e, "global store update failed");
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                    Some(Err(e)) => tracing::warn!(%topic, error = %e, "global consumer error"),
                }
            }
        })?)
}

impl KafkaStreams {
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self> {
        topology.validate()?;
        Ok(KafkaStreams {
            topology: Arc::new(topology),
            config,
            shared: None,
            threads: Vec::new(),
            restore_listener: None,
        })
    }

    /// Kafka's `setGlobalStateRestoreListener`: told about every store restoration of an active
    /// task. Only before `start()`.
    pub fn set_global_state_restore_listener(
        &mut self,
        listener: Arc<dyn StateRestoreListener>,
    ) -> Result<()> {
        if self.shared.is_some() {
            return Err(StreamsError::Streams(
                "Can only set GlobalStateRestoreListener before calling start().".into(),
            ));
        }
        self.restore_listener = Some(listener);
        Ok(())
    }

    /// The state directory of this application: `<state.dir>/<application.id>`.
    pub fn app_dir(&self) -> PathBuf {
        self.config.state_dir.join(&self.config.application_id)
    }

    /// Kafka's `cleanUp()`: deletes the local state (only before start or after close).
    pub fn clean_up(&self) -> Result<()> {
        if self.shared.is_some() {
            return Err(StreamsError::Streams(
                "Cannot clean up while running.".into(),
            ));
        }
        let d = self.app_dir();
        if d.exists() {
            std::fs::remove_dir_all(d)?;
        }
        Ok(())
    }

    /// Checks source topics, creates internal topics and starts the stream threads.
    pub fn start(&mut self) -> Result<()> {
        if self.shared.is_some() {
            return Err(StreamsError::Streams("already started".into()));
        }
        let partition_counts = internal_topics::prepare(&self.topology, &self.config)?;
        let app_dir = self.app_dir();
        std::fs::create_dir_all(&app_dir)?;
        let process_id = load_process_id(&app_dir)?;
        let db = fjall::Database::builder(app_dir.join("fjall")).open()?;
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut globals: HashMap<String, Arc<dyn KvBackend>> = HashMap::new();
        for g in &self.topology.globals {
            let b: Arc<dyn KvBackend> = Arc::new(FjallBackend::open(&db, &g.store.name, "global")?);
            match start_global(&self.config, &g.topic, b.clone(), shutdown.clone()) {
                Ok(h) => self.threads.push(h),
                Err(e) => {
                    shutdown.store(true, Ordering::SeqCst);
                    for h in self.threads.drain(..) {
                        let _ = h.join();
                    }
                    return Err(e);
                }
            }
            globals.insert(g.store.name.clone(), b);
        }
        let registry: Registry = Default::default();
        for (name, b) in &globals {
            registry.write().entry(name.clone()).or_default().insert(
                TaskId {
                    subtopology: usize::MAX,
                    partition: -1,
                },
                b.clone(),
            );
        }
        let mut topic_subtopology = HashMap::new();
        for s in self.topology.subtopologies() {
            for t in &s.source_topics {
                topic_subtopology.insert(
                    self.topology.resolve_topic(&self.config.application_id, t),
                    s.id,
                );
            }
        }
        let shared = Arc::new(Shared {
            topology: self.topology.clone(),
            config: self.config.clone(),
            app_dir: app_dir.clone(),
            db: db.clone(),
            process_id,
            shutdown,
            state: Mutex::new(State::Rebalancing),
            error: Mutex::new(None),
            registry,
            globals,
            active: Default::default(),
            topic_subtopology,
            metadata: Arc::new(MetadataState::new(
                &self.topology,
                &self.config.application_id,
                self.config.application_server.clone(),
                self.config.num_standby_replicas,
                &partition_counts,
            )),
            metadata_stale: AtomicBool::new(true),
            standby: Arc::new(StandbyTasks::new(
                self.topology.clone(),
                &self.config.application_id,
                app_dir.clone(),
                db.clone(),
            )),
            restore_listener: self.restore_listener.clone(),
        });
        if self.config.query_http_enabled
            && let Some(server) = &self.config.application_server
        {
            let service = QueryService {
                topology: self.topology.clone(),
                registry: shared.registry.clone(),
                metadata: shared.metadata.clone(),
                local: server.clone(),
            };
            let bind = self.config.query_http_bind.as_ref().unwrap_or(server);
            match http_query::start(service, bind, shared.shutdown.clone()) {
                Ok(h) => self.threads.push(h),
                Err(e) => {
                    shared.shutdown.store(true, Ordering::SeqCst);
                    for h in self.threads.drain(..) {
                        let _ = h.join();
                    }
                    return Err(e);
                }
            }
        }
        for n in 1..=self.config.num_stream_threads {
            let sh = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("{}-StreamThread-{n}", self.config.application_id))
                .spawn(move || {
                    if let Err(e) = run_thread(&sh, n) {
                        tracing::error!(thread = n, error = %e, "stream thread failed");
                        *sh.error.lock() = Some(e.to_string());
                        *sh.state.lock() = State::Error;
                        sh.shutdown.store(true, Ordering::SeqCst);
                    }
                })?;
            self.threads.push(h);
        }
        if self.config.num_standby_replicas > 0 {
            let sh = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("{}-StandbyThread", self.config.application_id))
                .spawn(move || {
                    if let Err(e) = sh.standby.run(&sh.config, &sh.process_id, &sh.shutdown) {
                        tracing::error!(error = %e, "standby thread failed");
                        *sh.error.lock() = Some(e.to_string());
                        *sh.state.lock() = State::Error;
                        sh.shutdown.store(true, Ordering::SeqCst);
                    }
                })?;
            self.threads.push(h);
        }
        self.shared = Some(shared);
        Ok(())
    }

    pub fn state(&self) -> State {
        self.shared
            .as_ref()
            .map_or(State::Created, |s| *s.state.lock())
    }

    /// The error that stopped a stream thread, if any.
    pub fn error(&self) -> Option<String> {
        self.shared.as_ref().and_then(|s| s.error.lock().clone())
    }

    /// Stops the threads after a final commit.
    pub fn close(&mut self) {
        if let Some(s) = &self.shared {
            if *s.state.lock() != State::Error {
                *s.state.lock() = State::PendingShutdown;
            }
            s.shutdown.store(true, Ordering::SeqCst);
        }
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        if let Some(s) = self.shared.take() {
            let _ = s.db.persist(fjall::PersistMode::SyncAll);
            let mut st = s.state.lock();
            if *st != State::Error {
                *st = State::NotRunning;
            }
        }
    }

    fn query_parts(&self, name: &str) -> Result<(StoreDef, Vec<Arc<dyn KvBackend>>)> {
        let s = self
            .shared
            .as_ref()
            .ok_or_else(|| StreamsError::Streams("KafkaStreams is not running".into()))?;
        let def = self.topology.store_def(name).cloned().ok_or_else(|| {
            StreamsError::Streams(format!(
                "Cannot get state store {name} because no such store is registered in the topology."
            ))
        })?;
        let parts = s
            .registry
            .read()
            .get(name)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        Ok((def, parts))
    }

    /// Interactive query of a key-value store over this instance's partitions.
    pub fn store<K, V>(&self, name: &str) -> Result<ReadOnlyKeyValueStore<K, V>>
    where
        K: Send + Sync + Clone + 'static,
        V: Send + Sync + Clone + 'static,
    {
        let (def, parts) = self.query_parts(name)?;
        ReadOnlyKeyValueStore::new(&def, parts)
    }

    /// Interactive query of a window store.
    pub fn window_store<K, V>(&self, name: &str) -> Result<ReadOnlyWindowStore<K, V>>
    where
        K: Send + Sync + Clone + 'static,
        V: Send + Sync + Clone + 'static,
    {
        let (def, parts) = self.query_parts(name)?;
        ReadOnlyWindowStore::new(&def, parts)
    }

    /// Interactive query of a session store.
    pub fn session_store<K, V>(&self, name: &str) -> Result<ReadOnlySessionStore<K, V>>
    where
        K: Send + Sync + Clone + 'static,
        V: Send + Sync + Clone + 'static,
    {
        let (def, parts) = self.query_parts(name)?;
        ReadOnlySessionStore::new(&def, parts)
    }

    fn running(&self) -> Result<&Arc<Shared>> {
        self.shared
            .as_ref()
            .ok_or_else(|| StreamsError::Streams("KafkaStreams is not running".into()))
    }

    /// Kafka's `metadataForAllClients()`: every instance of the application that set
    /// `application.server`, with the partitions, tasks and stores it holds, as of the last
    /// rebalance.
    pub fn metadata_for_all_clients(&self) -> Result<Vec<StreamsMetadata>> {
        Ok(self.running()?.metadata.all())
    }

    /// Kafka's `streamsMetadataForStore(store)`: the instances holding a part of `store`.
    pub fn streams_metadata_for_store(&self, store: &str) -> Result<Vec<StreamsMetadata>> {
        Ok(self.running()?.metadata.for_store(store))
    }

    /// Kafka's `queryMetadataForKey(store, key, serializer)`: the instance holding `key` in
    /// `store`. The key is serialized with `serializer` and partitioned as the producers partition
    /// it (murmur2); the active host is `unavailable` while no instance is known to own the
    /// partition (during a rebalance, or when its owner has no `application.server`).
    pub fn query_metadata_for_key<K>(
        &self,
        store: &str,
        key: &K,
        serializer: &dyn Serde<K>,
    ) -> Result<KeyQueryMetadata> {
        let s = self.running()?;
        let kb = serializer.serialize(store, key)?;
        s.metadata.for_key_bytes(store, &kb)
    }

    /// The tasks this instance runs now (for tests and monitoring).
    pub fn local_tasks(&self) -> BTreeSet<TaskId> {
        self.shared
            .as_ref()
            .map(|s| s.active.lock().clone())
            .unwrap_or_default()
    }

    /// The standby tasks this instance keeps now (`num.standby.replicas`; what Kafka lists in
    /// `metadataForLocalThreads()` as each thread's `standbyTasks`).
    pub fn local_standby_tasks(&self) -> BTreeSet<TaskId> {
        self.shared
            .as_ref()
            .map(|s| s.standby.task_ids())
            .unwrap_or_default()
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        self.close();
    }
}

/// Kafka persists the process id in the state directory so a restarted instance keeps its
/// transactional ids (and so fences and aborts its own unfinished transactions).
fn load_process_id(dir: &Path) -> Result<String> {
    let f = dir.join("kafka-streams-process-metadata");
    if let Ok(s) = std::fs::read_to_string(&f)
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&s)
        && let Some(id) = v.get("processId").and_then(|x| x.as_str())
    {
        return Ok(id.to_string());
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&f, serde_json::json!({ "processId": id }).to_string())?;
    Ok(id)
}

// ---------------------------------------------------------------------------------------------

struct Delivery {
    failed: Mutex<Option<String>>,
}

impl ClientContext for Delivery {}
impl ProducerContext for Delivery {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = r {
            let mut f = self.failed.lock();
            if f.is_none() {
                *f = Some(format!("producing to {}: {e}", m.topic()));
            }
        }
    }
}

/// The per-thread state the rebalance callbacks need too.
struct ThreadCore {
    shared: Arc<Shared>,
    thread: usize,
    producer: BaseProducer<Delivery>,
    in_txn: bool,
    tasks: BTreeMap<TaskId, StreamTask>,
    /// Set by post_rebalance: the partitions now owned (tasks are built on the thread's next turn).
    pending_assignment: Option<Vec<(String, i32)>>,
    failure: Option<String>,
    /// Partition counts of sink topics whose records this thread partitions itself.
    sink_partitions: HashMap<String, i32>,
    /// Where the consumer started on each assigned partition, for the tasks' idling (KIP-695).
    fetched_lags: FetchedLags,
}

struct StreamsConsumerContext {
    core: Arc<Mutex<ThreadCore>>,
}

impl ClientContext for StreamsConsumerContext {}
impl ConsumerContext for StreamsConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            let mut core = self.core.lock();
            *core.shared.state.lock() = State::Rebalancing;
            // Eager (range) rebalances revoke everything: commit, then close every task.
            let clean = match core.commit_all(consumer) {
                Ok(()) => true,
                Err(e) => {
                    core.failure = Some(format!("commit on revocation: {e}"));
                    false
                }
            };
            core.close_all_tasks(clean);
        }
    }
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let core = self.core.lock();
                core.shared.metadata_stale.store(true, Ordering::SeqCst);
                drop(core);
                let parts = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                self.core.lock().pending_assignment = Some(parts);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// The restore consumer asks for end-of-partition events; librdkafka also reports them as errors,
/// which are expected here and not worth a log line.
struct RestoreContext;
impl ClientContext for RestoreContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka hands this callback the end-of-partition event as a global error.
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::error!(%error, reason, "restore consumer error");
        }
    }
}
impl ConsumerContext for RestoreContext {}

fn client_config(shared: &Shared, client: &str) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &shared.config.bootstrap_servers);
    for (k, v) in shared.config.overrides(client) {
        cc.set(k, v);
    }
    cc
}

fn run_thread(shared: &Arc<Shared>, n: usize) -> Result<()> {
    let cfg = &shared.config;
    let eos = cfg.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
    let client_id = format!(
        "{}-{}-StreamThread-{n}",
        cfg.application_id, shared.process_id
    );
    let mut pc = client_config(shared, "producer");
    pc.set("client.id", format!("{client_id}-producer"))
        // Java's partitioner, so keys land where Java clients (and Kafka Streams) put them.
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("acks", "all");
    if eos {
        pc.set(
            "transactional.id",
            format!("{}-{}-{n}", cfg.application_id, shared.process_id),
        )
        .set("transaction.timeout.ms", "10000");
    }
    let producer: BaseProducer<Delivery> = pc.create_with_context(Delivery {
        failed: Mutex::new(None),
    })?;
    if eos {
        producer.init_transactions(Duration::from_secs(60))?;
    }
    let core = Arc::new(Mutex::new(ThreadCore {
        shared: shared.clone(),
        thread: n,
        producer,
        in_txn: false,
        tasks: BTreeMap::new(),
        pending_assignment: None,
        failure: None,
        sink_partitions: HashMap::new(),
        fetched_lags: FetchedLags::default(),
    }));
    let mut cc = client_config(shared, "consumer");
    // librdkafka stops fetching a partition for fetch.queue.backoff.ms (1 s by default) once its
    // local queue is full. Java's consumer has no such pause, and in a topology that reads its own
    // repartition topic the thread then starves on an empty queue: wordcount ran at a third of
    // Java Streams' rate with the default and faster than it with 10 ms (docs/benchmarks.md).
    if cc.get("fetch.queue.backoff.ms").is_none() {
        cc.set("fetch.queue.backoff.ms", "10");
    }
    cc.set("group.id", &cfg.application_id)
        .set(
            "client.id",
            consumer_client_id(
                &cfg.application_id,
                &shared.process_id,
                n,
                cfg.application_server.as_ref(),
            ),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range")
        .set("enable.partition.eof", "false")
        .set(
            "isolation.level",
            if eos {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        );
    let consumer: BaseConsumer<StreamsConsumerContext> =
        cc.create_with_context(StreamsConsumerContext { core: core.clone() })?;
    let topics: Vec<&str> = shared
        .topic_subtopology
        .keys()
        .map(|s| s.as_str())
        .collect();
    consumer.subscribe(&topics)?;
    let mut last_commit = Instant::now();
    let mut last_metadata_try = Instant::now() - Duration::from_secs(1);
    let commit_every = Duration::from_millis(cfg.commit_interval_ms);
    let result = (|| -> Result<()> {
        while !shared.shutdown.load(Ordering::SeqCst) {
            if shared.metadata_stale.load(Ordering::SeqCst)
                && last_metadata_try.elapsed() >= Duration::from_millis(250)
            {
                last_metadata_try = Instant::now();
                refresh_metadata(shared, &consumer);
            }
            let first = consumer.poll(Duration::from_millis(100));
            let core_arc = &core;
            let mut core = core_arc.lock();
            if let Some(f) = core.failure.take() {
                return Err(StreamsError::Streams(f));
            }
            if let Some(parts) = core.pending_assignment.take() {
                core.create_tasks(&consumer, parts)?;
                *shared.state.lock() = State::Running;
            }
            let mut msg = first;
            let mut handled = 0;
            while let Some(m) = msg {
                // A rebalance may have run inside the last poll: the record then belongs to the
                // new assignment, whose tasks must exist before it is handled.
                if let Some(f) = core.failure.take() {
                    return Err(StreamsError::Streams(f));
                }
                if let Some(parts) = core.pending_assignment.take() {
                    core.create_tasks(&consumer, parts)?;
                    *shared.state.lock() = State::Running;
                }
                let m = m.map_err(|e| StreamsError::Kafka(e.to_string()))?;
                core.buffer(&m);
                handled += 1;
                if handled >= 500 {
                    break;
                }
                drop(m);
                // The lock is released while polling so rebalance callbacks can take it.
                drop(core);
                msg = consumer.poll(Duration::ZERO);
                core = core_arc.lock();
            }
            // Processing after the whole batch is buffered lets a task choose by timestamp across
            // all its partitions fetched so far, not in the order the fetches arrived.
            core.process_buffered(&consumer)?;
            core.producer.poll(Duration::ZERO);
            for t in core.tasks.values_mut() {
                t.punctuate_wall_clock()?;
            }
            core.send_pending()?;
            let requested = core.tasks.values().any(|t| t.commit_requested());
            if requested || last_commit.elapsed() >= commit_every {
                core.commit_all(&consumer)?;
                last_commit = Instant::now();
            }
        }
        Ok(())
    })();
    let mut c = core.lock();
    if result.is_ok() {
        c.commit_all(&consumer)?;
        c.close_all_tasks(true);
    } else if eos && c.in_txn {
        let _ = c.producer.abort_transaction(Duration::from_secs(10));
    }
    drop(c);
    consumer.unsubscribe();
    result
}

/// Re-reads which member owns what from the group coordinator (DescribeGroups). Only a stable
/// group's assignment is complete, so while the group rebalances the metadata stays stale and is
/// tried again.
fn refresh_metadata<C: ConsumerContext>(shared: &Shared, consumer: &BaseConsumer<C>) {
    let app = &shared.config.application_id;
    match consumer.fetch_group_list(Some(app), Duration::from_secs(5)) {
        Ok(list) => {
            let Some(g) = list.groups().iter().find(|g| g.name() == app) else {
                return;
            };
            if g.state() != "Stable" {
                return;
            }
            let placement = shared.metadata.on_group(
                g.members()
                    .iter()
                    .map(|m| (m.client_id(), m.assignment().unwrap_or_default())),
            );
            shared.standby.set_assigned(
                placement
                    .get(&shared.process_id)
                    .cloned()
                    .unwrap_or_default(),
            );
            shared.metadata_stale.store(false, Ordering::SeqCst);
            tracing::debug!(
                members = g.members().len(),
                "interactive-query metadata refreshed"
            );
        }
        Err(e) => tracing::warn!(error = %e, "describing the group for query metadata failed"),
    }
}

impl ThreadCore {
    /// Puts a fetched record into its task's partition buffer; it is processed when the task picks
    /// it by timestamp (`process_buffered`).
    fn buffer(&mut self, m: &rdkafka::message::BorrowedMessage<'_>) {
        let topic = m.topic();
        let partition = m.partition();
        let Some(&sub) = self.shared.topic_subtopology.get(topic) else {
            return;
        };
        let id = TaskId {
            subtopology: sub,
            partition,
        };
        let Some(task) = self.tasks.get_mut(&id) else {
            tracing::warn!(%topic, partition, "record for a partition with no task");
            return;
        };
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| (x.key.to_string(), x.value.map(|v| v.to_vec())))
                    .collect()
            })
            .unwrap_or_default();
        task.partition_group.add(StampedRecord {
            topic: topic.to_string(),
            partition,
            offset: m.offset(),
            timestamp: m.timestamp().to_millis().unwrap_or(0),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        });
    }

    /// Runs every task that is ready (see `PartitionGroup::ready`) through its buffered records,
    /// lowest timestamp first, until it runs out or has to wait for an empty partition again.
    fn process_buffered<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        let handler = self.shared.config.deserialization_handler;
        let now = Instant::now();
        // Nothing is polled while processing, so the positions are read at most once, and only
        // when some task has an empty partition to ask about.
        let mut positions: Option<TopicPartitionList> = None;
        let lags = &self.fetched_lags;
        for task in self.tasks.values_mut() {
            while task.partition_group.ready(now, |topic, partition| {
                let pos = positions.get_or_insert_with(|| consumer.position().unwrap_or_default());
                lags.lag(consumer, pos, topic, partition)
            }) {
                let Some(r) = task.partition_group.next_record() else {
                    break;
                };
                let (topic, partition, offset) = (r.topic.as_str(), r.partition, r.offset);
                match task.process(
                    topic,
                    partition,
                    offset,
                    r.timestamp,
                    r.key.as_deref(),
                    r.value.as_deref(),
                    r.headers.clone(),
                ) {
                    Ok(()) => {}
                    Err(ProcessError::Deserialization(e)) => match handler {
                        DeserializationHandler::LogAndContinue => {
                            tracing::warn!(%topic, partition, offset, error = %e,
                                "Skipping record due to deserialization error (LogAndContinueExceptionHandler)");
                            task.skip(topic, partition, offset);
                        }
                        DeserializationHandler::LogAndFail => {
                            return Err(StreamsError::Streams(format!(
                                "Deserialization exception handler is set to fail upon a deserialization error. \
                                 Record at {topic}-{partition} offset {offset}: {e}"
                            )));
                        }
                    },
                    Err(ProcessError::Other(e)) => return Err(e),
                }
            }
        }
        self.send_pending()
    }

    fn send_pending(&mut self) -> Result<()> {
        let mut out: Vec<OutRecord> = Vec::new();
        for t in self.tasks.values_mut() {
            out.extend(t.take_output());
        }
        for r in out {
            self.send(r)?;
        }
        Ok(())
    }

    fn send(&mut self, r: OutRecord) -> Result<()> {
        if self.shared.config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2
            && !self.in_txn
        {
            self.producer.begin_transaction()?;
            self.in_txn = true;
        }
        // Records the partitioner must not place by their key bytes get their partition here,
        // as the producer's murmur2 would compute it from the bytes they name.
        let partition = match (r.partition, &r.partition_key) {
            (Some(p), _) => Some(p),
            (None, Some(pk)) => Some(partition_for_key(pk, self.sink_partition_count(&r.topic)?)),
            (None, None) => None,
        };
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        loop {
            let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&r.topic)
                .timestamp(r.timestamp)
                .headers(headers.clone());
            if let Some(k) = &r.key {
                rec = rec.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                rec = rec.payload(v.as_slice());
            }
            if let Some(p) = partition {
                rec = rec.partition(p);
            }
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    fn sink_partition_count(&mut self, topic: &str) -> Result<i32> {
        if let Some(&n) = self.sink_partitions.get(topic) {
            return Ok(n);
        }
        let md = self
            .producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(30))?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len() as i32);
        if n <= 0 {
            return Err(StreamsError::Streams(format!(
                "sink topic {topic} has no partitions (does it exist?)"
            )));
        }
        self.sink_partitions.insert(topic.to_string(), n);
        Ok(n)
    }

    /// Kafka's commit: flush caches, send everything, then commit offsets (in the transaction
    /// under exactly_once_v2, after the producer flushed under at_least_once).
    fn commit_all<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        for t in self.tasks.values_mut() {
            t.flush()?;
        }
        self.send_pending()?;
        let mut tpl = TopicPartitionList::new();
        for t in self.tasks.values() {
            for ((topic, p), off) in &t.consumed {
                tpl.add_partition_offset(topic, *p, Offset::Offset(*off))
                    .map_err(|e| StreamsError::Kafka(e.to_string()))?;
            }
        }
        let eos = self.shared.config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
        if eos {
            if tpl.count() == 0 && !self.in_txn {
                return Ok(());
            }
            if !self.in_txn {
                self.producer.begin_transaction()?;
                self.in_txn = true;
            }
            if tpl.count() > 0 {
                let meta = consumer
                    .group_metadata()
                    .ok_or_else(|| StreamsError::Kafka("consumer has no group metadata".into()))?;
                self.producer
                    .send_offsets_to_transaction(&tpl, &meta, Duration::from_secs(30))?;
            }
            self.producer.commit_transaction(Duration::from_secs(60))?;
            self.in_txn = false;
        } else {
            self.producer.flush(Duration::from_secs(60))?;
            if let Some(e) = self.producer.context().failed.lock().take() {
                return Err(StreamsError::Kafka(e));
            }
            if tpl.count() > 0 {
                consumer.commit(&tpl, CommitMode::Sync)?;
            }
        }
        for t in self.tasks.values_mut() {
            t.consumed.clear();
        }
        Ok(())
    }

    fn task_dir(&self, id: TaskId) -> PathBuf {
        self.shared.app_dir.join(id.to_string())
    }

    /// Drops the tasks. After a successful commit (`clean`) each task's checkpoint (changelog end
    /// offsets) is written so a restart restores only the tail; otherwise none is, and the next
    /// owner rebuilds the store from the changelog.
    fn close_all_tasks(&mut self, clean: bool) {
        let tasks = std::mem::take(&mut self.tasks);
        for (id, mut t) in tasks {
            t.close();
            self.shared.active.lock().remove(&id);
            {
                let mut reg = self.shared.registry.write();
                for m in reg.values_mut() {
                    m.remove(&id);
                }
            }
            if clean {
                let mut cp = BTreeMap::new();
                for s in t.stores() {
                    if let Some(topic) = &s.changelog
                        && let Ok(c) = self.restore_consumer()
                        && let Ok((_, high)) =
                            c.fetch_watermarks(topic, id.partition, Duration::from_secs(10))
                    {
                        cp.insert(topic.clone(), high);
                    }
                }
                if let Err(e) = checkpoint::write(&self.task_dir(id), &cp) {
                    tracing::warn!(task = %id, error = %e, "writing the task checkpoint failed");
                }
            }
            // Only now, with the checkpoint written (or, after a failed commit, none), may the
            // standby updater take the store over.
            drop(t);
            self.shared.standby.deactivate(id);
        }
    }

    fn restore_consumer(&self) -> Result<BaseConsumer<RestoreContext>> {
        let mut cc = client_config(&self.shared, "restore.consumer");
        cc.set(
            "group.id",
            format!("{}-restore", self.shared.config.application_id),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
        Ok(cc.create_with_context(RestoreContext)?)
    }

    fn create_tasks<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        parts: Vec<(String, i32)>,
    ) -> Result<()> {
        // Idling is off with -1, so the committed offsets need not be read.
        if self.shared.config.max_task_idle_ms != crate::partition_group::MAX_TASK_IDLE_MS_DISABLED
        {
            self.fetched_lags.on_assignment(consumer, &parts);
        }
        let mut ids = BTreeSet::new();
        for (t, p) in parts {
            if let Some(&s) = self.shared.topic_subtopology.get(&t) {
                ids.insert(TaskId {
                    subtopology: s,
                    partition: p,
                });
            }
        }
        for id in ids {
            if self.tasks.contains_key(&id) {
                continue;
            }
            self.shared.standby.activate(id)?;
            let task = self.create_task(id)?;
            self.tasks.insert(id, task);
            self.shared.active.lock().insert(id);
        }
        tracing::info!(thread = self.thread, tasks = ?self.tasks.keys().map(|t| t.to_string()).collect::<Vec<_>>(), "assigned tasks");
        Ok(())
    }

    fn create_task(&mut self, id: TaskId) -> Result<StreamTask> {
        let shared = self.shared.clone();
        let mut factory = |def: &StoreDef, id: TaskId| -> Result<Arc<dyn KvBackend>> {
            Ok(Arc::new(FjallBackend::open(
                &shared.db,
                &def.name,
                &id.to_string(),
            )?))
        };
        let mut task = StreamTask::new(
            shared.topology.clone(),
            &shared.config.application_id,
            id,
            shared.config.cache_max_bytes,
            &mut factory,
        )?;
        // The checkpoint says up to where the local store matches the changelog. It is deleted
        // before processing, so a crash leaves no checkpoint and the store is rebuilt in full.
        let checkpoint = checkpoint::read(&self.task_dir(id));
        checkpoint::delete(&self.task_dir(id));
        let mut from: Vec<(String, String, i64)> = Vec::new();
        let names: Vec<(String, Option<String>)> = task
            .stores()
            .map(|s| (s.name.clone(), s.changelog.clone()))
            .collect();
        for (name, changelog) in names {
            let Some(topic) = changelog else { continue };
            let start = match checkpoint.get(&topic) {
                Some(&o) => o,
                None => {
                    if let Some(s) = task.store_mut(&name) {
                        s.backend.clear()?;
                    }
                    0
                }
            };
            from.push((name, topic, start));
        }
        if !from.is_empty() {
            self.restore(&mut task, id.partition, &from)?;
        }
        task.partition_group = PartitionGroup::new(
            task.input_topics().map(|t| (t.clone(), id.partition)),
            shared.config.max_task_idle_ms,
        );
        task.state.globals = shared.globals.clone();
        task.initialize()?;
        let mut reg = shared.registry.write();
        for s in task.stores() {
            reg.entry(s.name.clone())
                .or_default()
                .insert(id, s.backend.clone());
        }
        Ok(task)
    }

    /// Reads each changelog partition from its start offset to its end into the store, one
    /// partition at a time so an end-of-partition event is unambiguous.
    fn restore(
        &self,
        task: &mut StreamTask,
        partition: i32,
        from: &[(String, String, i64)],
    ) -> Result<()> {
        let c = self.restore_consumer()?;
        let mut restored = 0u64;
        let listener = self.shared.restore_listener.clone();
        for (store, topic, start) in from {
            let (_, high) = c.fetch_watermarks(topic, partition, Duration::from_secs(30))?;
            if high <= *start {
                continue;
            }
            let tp = TopicPartition {
                topic: topic.clone(),
                partition,
            };
            if let Some(l) = &listener {
                l.on_restore_start(&tp, store, *start, high);
            }
            let mut store_restored = 0u64;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, partition, Offset::Offset(*start))
                .map_err(|e| StreamsError::Kafka(e.to_string()))?;
            c.assign(&tpl)?;
            let started = Instant::now();
            loop {
                if started.elapsed() > Duration::from_secs(300) {
                    return Err(StreamsError::Streams(format!(
                        "restoring task {}: changelog {topic}-{partition} did not reach offset {high} in 300 s",
                        task.state.id
                    )));
                }
                match c.poll(Duration::from_millis(200)) {
                    None => {}
                    // The end (for read_committed, the last stable offset; a trailing commit
                    // marker is never delivered as a record).
                    Some(Err(KafkaError::PartitionEOF(_))) => break,
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(m)) => {
                        if let Some(s) = task.store_mut(store) {
                            s.restore(
                                m.key().unwrap_or_default(),
                                m.payload(),
                                m.timestamp().to_millis().unwrap_or(0),
                            )?;
                            store_restored += 1;
                        }
                        if m.offset() + 1 >= high {
                            break;
                        }
                    }
                }
            }
            if let Some(l) = &listener {
                l.on_restore_end(&tp, store, store_restored);
            }
            restored += store_restored;
        }
        tracing::info!(task = %task.state.id, restored, "restored state from changelogs");
        Ok(())
    }
}
