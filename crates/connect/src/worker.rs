//! The worker (`Worker`, `WorkerSourceTask`, `WorkerSinkTask`): runs each task on a thread of its
//! own, between the task and Kafka, through converters and transforms.
//!
//! Kafka is reached only through librdkafka (`rdkafka`), as any client would.
//!
//! **Source offsets** are committed only for records Kafka has acknowledged: at each commit
//! (`offset.flush.interval.ms`, and when the task stops) the producer is flushed first; if any
//! delivery failed the task fails and nothing is committed. Offsets are therefore at-least-once
//! across a crash (records sent since the last commit are sent again), and exact across a clean stop.
//!
//! **Sink offsets** are committed to the consumer group `connect-<connector>` after
//! [`SinkTask::pre_commit`] says what is safe, at the same interval and on stop.
//!
//! **Failed tasks** are restarted on their thread with a fresh task instance after the backoff of
//! their [`RestartPolicy`] (`errors.restart.*`, see [`crate::task_restart`]); each attempt builds
//! its converters, transforms and Kafka clients anew, so a source task resumes from its committed
//! offsets and a sink task from its group's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KHeader, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::Timeout;
use serde::Serialize;

use crate::config_def::{ConfigMap, parse_list};
use crate::connector::{
    ConnectRecord, ConnectorFactory, ConnectorPlugin, Header, SinkRecord, SinkTask,
    SinkTaskContext, SourceTask, SourceTaskContext, TopicPartition,
};
use crate::converter::{Converter, configured_converter};
use crate::dead_letter::{DeadLetterQueue, FailedRecord, Stage, TaskErrantReporter};
use crate::error::{ConnectError, Result};
use crate::error_handling::{ErrorHandling, FailedInput, StageError};
use crate::offset_store::{ConnectorOffsetReader, FileOffsetStore, OffsetBackingStore};
use crate::task_restart::RestartPolicy;
use crate::transforms::TransformChain;
use crate::worker_config::WorkerConfig;

/// Connector and task states, as the REST API shows them (`AbstractStatus.State`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Failed,
    Restarting,
    Stopped,
}

/// A state and, for FAILED, the error that caused it.
#[derive(Clone, Debug)]
pub struct Status {
    pub state: State,
    pub trace: Option<String>,
}

/// Shared between a task's thread and the herder.
pub struct TaskControl {
    stop: AtomicBool,
    paused: AtomicBool,
    status: Mutex<Status>,
    /// When the current attempt last turned RUNNING, to tell a task that ran for a while from
    /// one that keeps failing at once.
    running_since: Mutex<Option<Instant>>,
}

impl TaskControl {
    fn new(paused: bool) -> Arc<TaskControl> {
        Arc::new(TaskControl {
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(paused),
            status: Mutex::new(Status {
                state: State::Unassigned,
                trace: None,
            }),
            running_since: Mutex::new(None),
        })
    }

    pub fn status(&self) -> Status {
        self.status.lock().clone()
    }

    fn set(&self, state: State, trace: Option<String>) {
        let mut status = self.status.lock();
        if state == State::Running && status.state != State::Running {
            *self.running_since.lock() = Some(Instant::now());
        }
        *status = Status { state, trace };
    }

    /// FAILED, with the error as the trace the REST API shows.
    fn set_failed(&self, id: &str, e: &ConnectError) {
        self.set(
            State::Failed,
            Some(format!(
                "org.apache.kafka.connect.errors.ConnectException: {e}\n\tat strom task {id}"
            )),
        );
    }

    fn fail(&self, id: &str, e: &ConnectError) {
        tracing::error!(task = id, error = %e, "task failed; it stays FAILED until restarted");
        self.set_failed(id, e);
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps up to `wait`, waking early for a stop request; false when asked to stop.
    fn sleep_unless_stopped(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while !self.stop_requested() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        false
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }
}

/// Runs a task's attempts on its thread: after a failure the task shows FAILED, waits the
/// policy's backoff and starts again, until it stops cleanly, is asked to stop, or the policy
/// gives up (then it stays FAILED until a REST restart).
fn supervise(
    ctl: &TaskControl,
    task_id: &str,
    policy: &RestartPolicy,
    mut attempt: impl FnMut() -> Result<()>,
) {
    let mut restarts = 0u32;
    loop {
        *ctl.running_since.lock() = None;
        let err = match attempt() {
            Ok(()) => return ctl.set(State::Unassigned, None),
            Err(e) => e,
        };
        ctl.set_failed(task_id, &err);
        if ctl.stop_requested() {
            tracing::error!(task = task_id, error = %err, "task failed while stopping");
            return;
        }
        // A task that ran for the longest backoff before failing is having a new problem, not
        // the same one again: count from zero, so rare failures never use the attempts up.
        let ran_for = (*ctl.running_since.lock()).map(|t| t.elapsed());
        if ran_for.is_some_and(|d| d >= policy.max_backoff) {
            restarts = 0;
        }
        let Some(wait) = policy.backoff(restarts) else {
            tracing::error!(
                task = task_id,
                error = %err,
                restarts,
                "task failed; it stays FAILED until restarted over REST"
            );
            return;
        };
        tracing::error!(
            task = task_id,
            error = %err,
            attempt = restarts + 1,
            backoff_ms = wait.as_millis() as u64,
            "task failed; restarting it after the backoff"
        );
        if !ctl.sleep_unless_stopped(wait) {
            return;
        }
        restarts += 1;
        tracing::info!(task = task_id, attempt = restarts, "restarting failed task");
    }
}

/// Makes a fresh source task instance for each attempt (Kafka instantiates the task class anew).
pub type SourceTaskFactory = Box<dyn Fn() -> Box<dyn SourceTask> + Send>;
/// Makes a fresh sink task instance for each attempt.
pub type SinkTaskFactory = Box<dyn Fn() -> Box<dyn SinkTask> + Send>;

/// A running task: its control block and thread.
pub struct TaskHandle {
    pub id: usize,
    pub control: Arc<TaskControl>,
    thread: Option<JoinHandle<()>>,
}

impl TaskHandle {
    /// Asks the task to stop without waiting (so several tasks can wind down together).
    pub fn request_stop(&self) {
        self.control.stop.store(true, Ordering::SeqCst);
    }

    /// Asks the task to stop and waits up to `timeout` for it (`task.shutdown.graceful.timeout.ms`).
    pub fn stop(&mut self, timeout: Duration) {
        self.request_stop();
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + timeout;
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                // The thread is left to finish on its own; it will not start new work.
                tracing::warn!(task = self.id, "graceful stop of task timed out");
            }
        }
    }
}

/// The worker: its config, the offsets store, and how to build clients.
pub struct Worker {
    pub config: WorkerConfig,
    pub offsets: Arc<dyn OffsetBackingStore>,
}

/// What a task needs from its connector's config.
struct TaskSetup {
    id: String,
    connector: String,
    key_converter: Box<dyn Converter>,
    value_converter: Box<dyn Converter>,
    /// The converters' classes, which the error log names.
    key_converter_class: String,
    value_converter_class: String,
    /// The connector's class, named in the error log for a failed `put`.
    connector_class: String,
    transforms: TransformChain,
    /// `errors.tolerance`, `errors.retry.*`, `errors.log.*`.
    errors: ErrorHandling,
    /// KIP-158: source topics created on first use (`None`: off).
    topic_creation: Option<crate::topic_creation::TopicCreation>,
}

impl Worker {
    pub fn new(config: WorkerConfig) -> Result<Worker> {
        let offsets = Arc::new(FileOffsetStore::open(&config.offset_storage_file)?);
        Ok(Worker { config, offsets })
    }

    /// A worker whose source offsets live elsewhere (distributed mode: the offset topic).
    pub fn with_offsets(config: WorkerConfig, offsets: Arc<dyn OffsetBackingStore>) -> Worker {
        Worker { config, offsets }
    }

    /// Converters (connector config overrides the worker's), transforms and error tolerance.
    fn setup(&self, connector: &str, task: usize, cc: &ConfigMap) -> Result<TaskSetup> {
        let conv = |side: &str, is_key: bool| -> Result<(Box<dyn Converter>, String)> {
            let key = format!("{side}.converter");
            let (class, props) = match cc.get(&key) {
                Some(class) => (
                    class.clone(),
                    WorkerConfig::with_prefix(cc, &format!("{key}.")),
                ),
                None => (
                    if is_key {
                        self.config.key_converter.clone()
                    } else {
                        self.config.value_converter.clone()
                    },
                    WorkerConfig::with_prefix(&self.config.props, &format!("{key}.")),
                ),
            };
            let converter = configured_converter(&key, &class, &props, is_key)?;
            Ok((converter, class))
        };
        let (key_converter, key_converter_class) = conv("key", true)?;
        let (value_converter, value_converter_class) = conv("value", false)?;
        Ok(TaskSetup {
            id: format!("{connector}-{task}"),
            connector: connector.to_string(),
            key_converter,
            value_converter,
            key_converter_class,
            value_converter_class,
            connector_class: cc.get("connector.class").cloned().unwrap_or_default(),
            transforms: TransformChain::from_config(cc)?,
            topic_creation: crate::topic_creation::TopicCreation::from_config(
                &self.config.props,
                cc,
                self.client_config("admin", cc),
            )?,
            errors: ErrorHandling::from_config(cc)?,
        })
    }

    /// librdkafka config: bootstrap servers, then `<kind>.` worker overrides, then the connector's
    /// `<kind>.override.` keys.
    fn client_config(&self, kind: &str, cc: &ConfigMap) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.config.bootstrap_servers);
        for (k, v) in WorkerConfig::with_prefix(&self.config.props, &format!("{kind}.")) {
            c.set(k, v);
        }
        for (k, v) in WorkerConfig::with_prefix(cc, &format!("{kind}.override.")) {
            c.set(k, v);
        }
        c
    }

    /// Starts a task of the plugin's kind. Each attempt gets its task from a new, unstarted
    /// connector instance of the plugin: as in Kafka, where the worker instantiates the task
    /// class by name, a task depends on its config only, not on its connector's state.
    pub fn start_task(
        self: &Arc<Self>,
        connector: &str,
        id: usize,
        plugin: ConnectorPlugin,
        task_config: ConfigMap,
        connector_config: &ConfigMap,
        paused: bool,
    ) -> TaskHandle {
        match plugin.factory {
            ConnectorFactory::Source(f) => self.start_source_task(
                connector,
                id,
                Box::new(move || f().create_task()),
                task_config,
                connector_config,
                paused,
            ),
            ConnectorFactory::Sink(f) => self.start_sink_task(
                connector,
                id,
                Box::new(move || f().create_task()),
                task_config,
                connector_config,
                paused,
            ),
        }
    }

    /// Starts a source task thread. Set-up errors show as a FAILED task, as in Kafka.
    pub fn start_source_task(
        self: &Arc<Self>,
        connector: &str,
        id: usize,
        new_task: SourceTaskFactory,
        task_config: ConfigMap,
        connector_config: &ConfigMap,
        paused: bool,
    ) -> TaskHandle {
        self.spawn_supervised(
            connector,
            id,
            connector_config,
            paused,
            move |w, name, cc, ctl| w.source_attempt(name, id, new_task(), &task_config, cc, ctl),
        )
    }

    /// The thread of task `id`: runs `attempt` under the connector's restart policy. Set-up
    /// errors show as a FAILED task, as in Kafka.
    fn spawn_supervised(
        self: &Arc<Self>,
        connector: &str,
        id: usize,
        connector_config: &ConfigMap,
        paused: bool,
        attempt: impl Fn(&Worker, &str, &ConfigMap, &TaskControl) -> Result<()> + Send + 'static,
    ) -> TaskHandle {
        let control = TaskControl::new(paused);
        let worker = self.clone();
        let cc = connector_config.clone();
        let name = connector.to_string();
        let ctl = control.clone();
        let thread = std::thread::Builder::new()
            .name(format!("task-{name}-{id}"))
            .spawn(move || {
                let task_id = format!("{name}-{id}");
                let policy = match RestartPolicy::from_configs(&worker.config.props, &cc) {
                    Ok(p) => p,
                    Err(e) => return ctl.fail(&task_id, &e),
                };
                supervise(&ctl, &task_id, &policy, || {
                    attempt(&worker, &name, &cc, &ctl)
                });
            });
        spawned(id, control, thread)
    }

    /// One run of a source task, from set-up to stop; an error fails this attempt.
    fn source_attempt(
        &self,
        name: &str,
        id: usize,
        mut task: Box<dyn SourceTask>,
        task_config: &ConfigMap,
        cc: &ConfigMap,
        ctl: &TaskControl,
    ) -> Result<()> {
        let setup = self.setup(name, id, cc)?;
        task.initialize(SourceTaskContext {
            offset_storage_reader: Arc::new(ConnectorOffsetReader {
                store: self.offsets.clone(),
                connector: name.to_string(),
            }),
        });
        task.start(task_config)?;
        let result = run_source(self, cc, setup, task.as_mut(), ctl);
        task.stop();
        result
    }

    /// Starts a sink task thread.
    pub fn start_sink_task(
        self: &Arc<Self>,
        connector: &str,
        id: usize,
        new_task: SinkTaskFactory,
        task_config: ConfigMap,
        connector_config: &ConfigMap,
        paused: bool,
    ) -> TaskHandle {
        self.spawn_supervised(
            connector,
            id,
            connector_config,
            paused,
            move |w, name, cc, ctl| w.sink_attempt(name, id, new_task(), &task_config, cc, ctl),
        )
    }

    /// One run of a sink task, from set-up to stop; an error fails this attempt.
    fn sink_attempt(
        &self,
        name: &str,
        id: usize,
        mut task: Box<dyn SinkTask>,
        task_config: &ConfigMap,
        cc: &ConfigMap,
        ctl: &TaskControl,
    ) -> Result<()> {
        let setup = self.setup(name, id, cc)?;
        // errors.tolerance=all: a dead letter queue (if named) and a reporter for the task.
        let dlq = DeadLetterQueue::from_config(&self.client_config("producer", cc), cc, name, id)?
            .map(Arc::new);
        let mut context = SinkTaskContext::default();
        if setup.errors.tolerate_all {
            let s = self.setup(name, id, cc)?;
            context.errant_record_reporter = Some(Arc::new(TaskErrantReporter::new(
                dlq.clone(),
                s.key_converter,
                s.value_converter,
                format!("{name}-{id}"),
            )));
        }
        task.initialize(context);
        task.start(task_config)?;
        let result = run_sink(self, cc, setup, task.as_mut(), ctl, dlq.as_deref());
        task.stop();
        result
    }
}

fn spawned(
    id: usize,
    control: Arc<TaskControl>,
    thread: std::io::Result<JoinHandle<()>>,
) -> TaskHandle {
    let thread = match thread {
        Ok(t) => Some(t),
        Err(e) => {
            control.fail(
                &id.to_string(),
                &ConnectError::connect(format!("cannot start task thread: {e}")),
            );
            None
        }
    };
    TaskHandle {
        id,
        control,
        thread,
    }
}

/// Remembers the first failed delivery, so the next offset commit can refuse to commit past it.
#[derive(Default)]
struct DeliveryTracker {
    failed: Mutex<Option<String>>,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            let mut f = self.failed.lock();
            if f.is_none() {
                *f = Some(format!(
                    "failed to send a record to topic {}: {e}",
                    m.topic()
                ));
            }
        }
    }
}

fn run_source(
    worker: &Worker,
    cc: &ConfigMap,
    setup: TaskSetup,
    task: &mut dyn SourceTask,
    ctl: &TaskControl,
) -> Result<()> {
    let mut pc = worker.client_config("producer", cc);
    // Kafka Connect's producer defaults: wait for all replicas, keep order on retry. And a
    // librdkafka one: DeliveryTracker only looks at failures, so a report per delivered record
    // would be work for nothing (the offset commit's flush still waits for every acknowledgement).
    for (k, v) in [
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("linger.ms", "5"),
        ("delivery.report.only.error", "true"),
    ] {
        if pc.get(k).is_none() {
            pc.set(k, v);
        }
    }
    let producer: BaseProducer<DeliveryTracker> = pc
        .create_with_context(DeliveryTracker::default())
        .map_err(|e| ConnectError::Kafka(format!("cannot create producer: {e}")))?;
    let interval = Duration::from_millis(worker.config.offset_flush_interval_ms);
    let flush_timeout = Duration::from_millis(worker.config.offset_flush_timeout_ms.max(1000));
    let mut pending = crate::pending_offsets::PendingOffsets::default();
    let mut last_commit = Instant::now();

    let commit = |pending: &mut crate::pending_offsets::PendingOffsets,
                  timeout: Duration|
     -> Result<bool> {
        if pending.is_empty() {
            return Ok(true);
        }
        if producer.flush(Timeout::After(timeout)).is_err() {
            // Not everything is acknowledged yet: keep the offsets and try at the next interval.
            tracing::warn!(task = %setup.id, "offset commit postponed: producer flush timed out");
            return Ok(false);
        }
        if let Some(err) = producer.context().failed.lock().take() {
            return Err(ConnectError::Kafka(err));
        }
        let batch = pending.take();
        worker.offsets.commit(&setup.connector, &batch)?;
        tracing::debug!(task = %setup.id, partitions = batch.len(), "committed source offsets");
        Ok(true)
    };

    while !ctl.stop.load(Ordering::SeqCst) {
        if ctl.paused.load(Ordering::SeqCst) {
            ctl.set(State::Paused, None);
            producer.poll(Duration::from_millis(100));
            if last_commit.elapsed() >= interval {
                commit(&mut pending, flush_timeout)?;
                last_commit = Instant::now();
            }
            continue;
        }
        ctl.set(State::Running, None);
        let records = task.poll()?;
        for r in records {
            let (partition, offset) = (r.source_partition, r.source_offset);
            // The record as the task made it, for the error log (cloned only when logging).
            let original = setup.errors.log_enable.then(|| r.record.clone());
            if let Err(f) = convert_and_send(&producer, &setup, r.record, &ctl.stop) {
                if let Some(original) = &original {
                    setup
                        .errors
                        .report(&setup.id, &f, &FailedInput::Produced(original));
                }
                if !setup.errors.tolerate_all {
                    return Err(f.error);
                }
                tracing::warn!(task = %setup.id, stage = f.stage.name(), error = %f.error,
                    "skipping record (errors.tolerance=all)");
            }
            // Even a record a transform dropped moves the source position on.
            pending.record(partition, offset);
        }
        producer.poll(Duration::ZERO);
        if let Some(err) = producer.context().failed.lock().take() {
            return Err(ConnectError::Kafka(err));
        }
        if last_commit.elapsed() >= interval {
            if commit(&mut pending, flush_timeout)? {
                task.commit()?;
            }
            last_commit = Instant::now();
        }
    }
    // Clean stop: everything polled is sent, acknowledged and its offsets committed.
    let graceful = Duration::from_millis(worker.config.task_shutdown_graceful_timeout_ms.max(1000));
    if commit(&mut pending, graceful)? {
        task.commit()?;
    }
    Ok(())
}

fn convert_and_send(
    producer: &BaseProducer<DeliveryTracker>,
    setup: &TaskSetup,
    record: ConnectRecord,
    stop: &AtomicBool,
) -> std::result::Result<(), StageError> {
    let eh = &setup.errors;
    let Some(record) = setup.transforms.apply_retrying(record, eh, stop)? else {
        return Ok(());
    };
    crate::active_topics::record(&setup.connector, &record.topic);
    let produce_error = |error: ConnectError| StageError {
        stage: Stage::KafkaProduce,
        class: "org.apache.kafka.clients.producer.KafkaProducer".to_string(),
        error,
    };
    if let Some(tc) = &setup.topic_creation {
        tc.ensure(&record.topic).map_err(produce_error)?;
    }
    // One side (key or value) through its converter, retried under `errors.retry.*`.
    let convert = |converter: &dyn Converter,
                   class: &str,
                   stage: Stage,
                   schema: Option<&crate::data::Schema>,
                   data: &crate::data::Value| {
        eh.retrying((), stop, |()| {
            converter.from_connect_data(&record.topic, schema, data)
        })
        .map_err(|error| StageError {
            stage,
            class: class.to_string(),
            error,
        })
    };
    let key = convert(
        setup.key_converter.as_ref(),
        &setup.key_converter_class,
        Stage::KeyConverter,
        record.key_schema.as_deref(),
        &record.key,
    )?;
    let value = convert(
        setup.value_converter.as_ref(),
        &setup.value_converter_class,
        Stage::ValueConverter,
        record.value_schema.as_deref(),
        &record.value,
    )?;
    let mut headers = OwnedHeaders::new();
    for h in &record.headers {
        headers = headers.insert(KHeader {
            key: &h.key,
            value: h.value.as_deref(),
        });
    }
    let mut br: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&record.topic).headers(headers);
    if let Some(k) = key.as_deref() {
        br = br.key(k);
    }
    if let Some(v) = value.as_deref() {
        br = br.payload(v);
    }
    if let Some(p) = record.kafka_partition {
        br = br.partition(p);
    }
    if let Some(ts) = record.timestamp {
        br = br.timestamp(ts);
    }
    loop {
        match producer.send(br) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                // Back-pressure: serve delivery reports until the local queue has room.
                producer.poll(Duration::from_millis(100));
                if stop.load(Ordering::SeqCst) && producer.in_flight_count() > 1_000_000 {
                    return Err(produce_error(ConnectError::Kafka(
                        "producer queue full at shutdown".into(),
                    )));
                }
                br = back;
            }
            Err((e, _)) => {
                return Err(produce_error(ConnectError::Kafka(format!(
                    "failed to send a record to topic {}: {e}",
                    record.topic
                ))));
            }
        }
    }
}

/// The largest batch handed to one `put`.
const MAX_SINK_BATCH: usize = 500;

fn run_sink(
    worker: &Worker,
    cc: &ConfigMap,
    setup: TaskSetup,
    task: &mut dyn SinkTask,
    ctl: &TaskControl,
    dlq: Option<&DeadLetterQueue>,
) -> Result<()> {
    let mut consumer_config = worker.client_config("consumer", cc);
    consumer_config.set("group.id", format!("connect-{}", setup.connector));
    for (k, v) in [
        ("enable.auto.commit", "false"),
        ("auto.offset.reset", "earliest"),
        ("enable.partition.eof", "false"),
        // librdkafka pauses a partition's fetches for 1 s once its local queue is full; Java's
        // consumer does not, and a sink fed as fast as it drains would idle (see strom-streams).
        ("fetch.queue.backoff.ms", "10"),
    ] {
        if consumer_config.get(k).is_none() {
            consumer_config.set(k, v);
        }
    }
    let consumer: BaseConsumer = consumer_config
        .create()
        .map_err(|e| ConnectError::Kafka(format!("cannot create consumer: {e}")))?;
    let topics = parse_list(cc.get("topics").map(String::as_str).unwrap_or(""));
    if topics.is_empty() {
        let regex = cc.get("topics.regex").cloned().unwrap_or_default();
        // librdkafka treats a subscription starting with ^ as a regex.
        let pattern = if regex.starts_with('^') {
            regex
        } else {
            format!("^{regex}")
        };
        consumer.subscribe(&[pattern.as_str()])?;
    } else {
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&refs)?;
    }
    let interval = Duration::from_millis(worker.config.offset_flush_interval_ms);
    let mut offsets: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut committed: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut last_commit = Instant::now();
    let mut paused = false;

    let commit = |task: &mut dyn SinkTask,
                  offsets: &BTreeMap<TopicPartition, i64>,
                  committed: &mut BTreeMap<TopicPartition, i64>|
     -> Result<()> {
        if offsets.is_empty() || offsets == committed {
            return Ok(());
        }
        let safe = task.pre_commit(offsets)?;
        // Records sent to the dead letter queue must be there before their offsets are committed.
        if let Some(d) = dlq {
            d.flush(Duration::from_millis(
                worker.config.offset_flush_timeout_ms.max(1000),
            ))?;
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (tp, off) in &safe {
            if committed.get(tp) == Some(off) {
                continue;
            }
            tpl.add_partition_offset(&tp.topic, tp.partition, rdkafka::Offset::Offset(*off))?;
        }
        if tpl.count() > 0 {
            consumer.commit(&tpl, CommitMode::Sync)?;
        }
        committed.extend(safe);
        Ok(())
    };

    while !ctl.stop.load(Ordering::SeqCst) {
        let want_pause = ctl.paused.load(Ordering::SeqCst);
        if want_pause != paused {
            // Pausing the fetch keeps group membership alive while no records arrive.
            if let Ok(assignment) = consumer.assignment() {
                if want_pause {
                    let _ = consumer.pause(&assignment);
                } else {
                    let _ = consumer.resume(&assignment);
                }
            }
            paused = want_pause;
        }
        ctl.set(
            if paused {
                State::Paused
            } else {
                State::Running
            },
            None,
        );
        let mut batch = Vec::new();
        let mut wait = Duration::from_millis(200);
        while batch.len() < MAX_SINK_BATCH {
            match consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(task = %setup.id, error = %e, "consumer error");
                    break;
                }
                Some(Ok(m)) => {
                    let tp = TopicPartition {
                        topic: m.topic().to_string(),
                        partition: m.partition(),
                    };
                    offsets.insert(tp, m.offset() + 1);
                    match to_sink_record(&setup, &m, &ctl.stop) {
                        Ok(Some(r)) => batch.push(r),
                        Ok(None) => {}
                        Err(f) => {
                            setup.errors.report(
                                &setup.id,
                                &f,
                                &FailedInput::Consumed {
                                    topic: m.topic(),
                                    partition: m.partition(),
                                    offset: m.offset(),
                                    key: m.key(),
                                    value: m.payload(),
                                },
                            );
                            if !setup.errors.tolerate_all {
                                return Err(f.error);
                            }
                            tracing::warn!(task = %setup.id, stage = f.stage.name(), error = %f.error,
                                "skipping record (errors.tolerance=all)");
                            if let Some(d) = dlq {
                                let failed = FailedRecord {
                                    topic: m.topic(),
                                    partition: m.partition(),
                                    offset: m.offset(),
                                    key: m.key(),
                                    value: m.payload(),
                                };
                                d.send(&failed, f.stage, &f.error)?;
                            }
                        }
                    }
                    wait = Duration::ZERO;
                }
            }
        }
        if !batch.is_empty() {
            put_retrying(task, batch, &setup, &consumer, ctl, paused)?;
        }
        if last_commit.elapsed() >= interval {
            commit(task, &offsets, &mut committed)?;
            last_commit = Instant::now();
        }
    }
    commit(task, &offsets, &mut committed)?;
    Ok(())
}

/// Hands a batch to the sink task. A retriable failure is redelivered under `errors.retry.*`
/// with the consumer paused meanwhile: it is still polled, so the group keeps the task, but no
/// new records arrive. Anything else, or a failure past the timeout, fails the task: a `put`
/// failure is about the whole batch, so `errors.tolerance` cannot skip one record (a task
/// reports single bad records through its errant record reporter instead).
fn put_retrying(
    task: &mut dyn SinkTask,
    batch: Vec<SinkRecord>,
    setup: &TaskSetup,
    consumer: &BaseConsumer,
    ctl: &TaskControl,
    connector_paused: bool,
) -> Result<()> {
    let eh = &setup.errors;
    let records = batch.len();
    let result = if eh.retries() {
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut paused_here = None;
        let result = loop {
            attempt += 1;
            let err = match task.put(batch.clone()) {
                Ok(()) => break Ok(()),
                Err(e) if e.is_retriable() => e,
                Err(e) => break Err(e),
            };
            let Some(wait) = eh.next_delay(attempt, started) else {
                break Err(err);
            };
            tracing::warn!(task = %setup.id, attempt, wait_ms = wait.as_millis() as u64, error = %err,
                "put failed with a retriable error; redelivering the batch (errors.retry.timeout)");
            if paused_here.is_none()
                && let Ok(assignment) = consumer.assignment()
            {
                let _ = consumer.pause(&assignment);
                paused_here = Some(assignment);
            }
            if !wait_polling(consumer, wait, &ctl.stop) {
                break Err(err);
            }
        };
        if let Some(assignment) = paused_here
            && !connector_paused
        {
            let _ = consumer.resume(&assignment);
        }
        result
    } else {
        task.put(batch)
    };
    result.map_err(|error| {
        let failure = StageError {
            stage: Stage::TaskPut,
            class: setup.connector_class.clone(),
            error,
        };
        eh.report(&setup.id, &failure, &FailedInput::Batch { records });
        failure.error
    })
}

/// Waits `wait` while polling the paused consumer. A record can still arrive from a partition a
/// rebalance assigned meanwhile (not paused yet): its partition is sought back to it and paused,
/// so it is delivered after the batch being retried, not lost. False when asked to stop.
fn wait_polling(consumer: &BaseConsumer, wait: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + wait;
    while !stop.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        let arrived = match consumer.poll(left.min(Duration::from_millis(100))) {
            Some(Ok(m)) => Some((m.topic().to_string(), m.partition(), m.offset())),
            _ => None,
        };
        if let Some((topic, partition, offset)) = arrived {
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition(&topic, partition);
            let _ = consumer.seek(
                &topic,
                partition,
                rdkafka::Offset::Offset(offset),
                Timeout::After(Duration::from_secs(1)),
            );
            let _ = consumer.pause(&tpl);
        }
    }
    false
}

/// A consumed message as the task's record; an error names the stage it failed in (converters,
/// then transforms), which the dead letter queue headers and the error log report. Retriable
/// failures are retried under `errors.retry.*` first.
fn to_sink_record(
    setup: &TaskSetup,
    m: &rdkafka::message::BorrowedMessage<'_>,
    stop: &AtomicBool,
) -> std::result::Result<Option<SinkRecord>, StageError> {
    let topic = m.topic();
    let eh = &setup.errors;
    crate::active_topics::record(&setup.connector, topic);
    let key = eh
        .retrying((), stop, |()| {
            setup.key_converter.to_connect_data(topic, m.key())
        })
        .map_err(|error| StageError {
            stage: Stage::KeyConverter,
            class: setup.key_converter_class.clone(),
            error,
        })?;
    let value = eh
        .retrying((), stop, |()| {
            setup.value_converter.to_connect_data(topic, m.payload())
        })
        .map_err(|error| StageError {
            stage: Stage::ValueConverter,
            class: setup.value_converter_class.clone(),
            error,
        })?;
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| Header {
                    key: h.key.to_string(),
                    value: h.value.map(<[u8]>::to_vec),
                })
                .collect()
        })
        .unwrap_or_default();
    let record = ConnectRecord {
        topic: topic.to_string(),
        kafka_partition: Some(m.partition()),
        key_schema: key.schema,
        key: key.value,
        value_schema: value.schema,
        value: value.value,
        timestamp: m.timestamp().to_millis(),
        headers,
        kafka_offset: Some(m.offset()),
    };
    Ok(setup
        .transforms
        .apply_retrying(record, eh, stop)?
        .map(|record| SinkRecord { record }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink task whose first `fail` puts fail with `error`; counts puts and records delivered.
    struct FlakySink {
        fail: usize,
        error: fn() -> ConnectError,
        puts: usize,
        delivered: usize,
    }

    impl SinkTask for FlakySink {
        fn version(&self) -> String {
            "1.0".into()
        }
        fn start(&mut self, _props: &ConfigMap) -> Result<()> {
            Ok(())
        }
        fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
            self.puts += 1;
            if self.puts <= self.fail {
                return Err((self.error)());
            }
            self.delivered += records.len();
            Ok(())
        }
        fn stop(&mut self) {}
    }

    use crate::config_def::config_map as cfg;

    /// A worker with string converters whose broker address leads nowhere.
    fn test_worker(dir: &tempfile::TempDir) -> Worker {
        let mut props = cfg(&[
            ("bootstrap.servers", "127.0.0.1:1"),
            (
                "key.converter",
                "org.apache.kafka.connect.storage.StringConverter",
            ),
            (
                "value.converter",
                "org.apache.kafka.connect.storage.StringConverter",
            ),
        ]);
        props.insert(
            "offset.storage.file.filename".into(),
            dir.path().join("offsets").display().to_string(),
        );
        Worker::new(WorkerConfig::standalone(props).expect("config")).expect("worker")
    }

    /// A worker, a set-up and a consumer that never reaches a broker (none is needed: the
    /// paused consumer is only polled).
    fn setup(dir: &tempfile::TempDir, connector: &[(&str, &str)]) -> (TaskSetup, BaseConsumer) {
        let worker = test_worker(dir);
        let cc = cfg(connector);
        let setup = worker.setup("sink", 0, &cc).expect("setup");
        let mut c = worker.client_config("consumer", &cc);
        c.set("group.id", "connect-sink");
        (setup, c.create().expect("consumer"))
    }

    fn batch(n: usize) -> Vec<SinkRecord> {
        (0..n)
            .map(|i| SinkRecord {
                record: ConnectRecord {
                    topic: "orders".into(),
                    kafka_partition: Some(0),
                    key_schema: None,
                    key: crate::data::Value::Null,
                    value_schema: None,
                    value: crate::data::Value::from("v"),
                    timestamp: None,
                    headers: Vec::new(),
                    kafka_offset: Some(i as i64),
                },
            })
            .collect()
    }

    #[test]
    fn retriable_put_is_redelivered_within_the_timeout() {
        let dir = tempfile::tempdir().expect("dir");
        let (setup, consumer) = setup(
            &dir,
            &[
                ("connector.class", "test.Sink"),
                ("errors.retry.timeout", "10000"),
                ("errors.retry.delay.max.ms", "10"),
                ("errors.log.enable", "true"),
            ],
        );
        let ctl = TaskControl::new(false);
        let mut task = FlakySink {
            fail: 3,
            error: || ConnectError::retriable("database restarting"),
            puts: 0,
            delivered: 0,
        };
        put_retrying(&mut task, batch(5), &setup, &consumer, &ctl, false).expect("put passes");
        assert_eq!(task.puts, 4);
        assert_eq!(task.delivered, 5, "the whole batch arrives once");
    }

    #[test]
    fn put_fails_at_once_without_a_timeout_or_when_not_retriable() {
        let dir = tempfile::tempdir().expect("dir");
        let (setup, consumer) = setup(&dir, &[]);
        let ctl = TaskControl::new(false);
        let mut task = FlakySink {
            fail: 1,
            error: || ConnectError::retriable("database restarting"),
            puts: 0,
            delivered: 0,
        };
        let err = put_retrying(&mut task, batch(2), &setup, &consumer, &ctl, false)
            .expect_err("default timeout 0 never retries");
        assert!(err.to_string().contains("database restarting"));
        assert_eq!(task.puts, 1);

        let (setup, consumer) = setup_with_retries(&dir);
        let mut task = FlakySink {
            fail: 1,
            error: || ConnectError::Data("column missing".into()),
            puts: 0,
            delivered: 0,
        };
        put_retrying(&mut task, batch(2), &setup, &consumer, &ctl, false)
            .expect_err("bad data is not retried");
        assert_eq!(task.puts, 1);
    }

    fn setup_with_retries(dir: &tempfile::TempDir) -> (TaskSetup, BaseConsumer) {
        setup(
            dir,
            &[
                ("errors.retry.timeout", "-1"),
                ("errors.retry.delay.max.ms", "10"),
            ],
        )
    }

    #[test]
    fn put_retries_stop_at_the_timeout_and_on_stop() {
        let dir = tempfile::tempdir().expect("dir");
        let (setup, consumer) = setup(
            &dir,
            &[
                ("errors.retry.timeout", "400"),
                ("errors.retry.delay.max.ms", "50"),
            ],
        );
        let ctl = TaskControl::new(false);
        let mut task = FlakySink {
            fail: usize::MAX,
            error: || ConnectError::retriable("database away"),
            puts: 0,
            delivered: 0,
        };
        let started = Instant::now();
        put_retrying(&mut task, batch(1), &setup, &consumer, &ctl, false)
            .expect_err("still failing at the timeout");
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert!(task.puts >= 3, "{} puts", task.puts);

        let (setup, consumer) = setup_with_retries(&dir);
        let ctl = TaskControl::new(false);
        let stopper = {
            let ctl = ctl.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                ctl.stop.store(true, Ordering::SeqCst);
            })
        };
        let mut task = FlakySink {
            fail: usize::MAX,
            error: || ConnectError::retriable("database away"),
            puts: 0,
            delivered: 0,
        };
        put_retrying(&mut task, batch(1), &setup, &consumer, &ctl, false)
            .expect_err("-1 retries until the task stops");
        stopper.join().expect("stopper");
        assert!(task.puts >= 2);
    }

    #[test]
    fn bad_error_handling_values_fail_the_set_up_naming_the_key() {
        let dir = tempfile::tempdir().expect("dir");
        let worker = test_worker(&dir);
        let err = worker
            .setup("s", 0, &cfg(&[("errors.retry.timeout", "-7")]))
            .err()
            .expect("error");
        assert!(err.to_string().contains("errors.retry.timeout"), "{err}");
    }
}
