//! Standby tasks (Kafka's StandbyTask, `num.standby.replicas`): local copies of other instances'
//! changelogged stores, kept up to date by reading their changelogs, so that an instance taking a
//! task over restores only the changelog's tail instead of all of it.
//!
//! Which tasks this instance keeps is the placement every instance computes from the group after a
//! rebalance (`standby_placement`). One updater thread per instance holds one consumer that joins
//! no group (`assign()`, `read_committed`) on the standby tasks' changelog partitions and applies
//! their records with the restoration logic (`StateStore::restore`). Each standby task's
//! `.checkpoint` (next changelog offset, see `checkpoint`) is written every `commit.interval.ms`
//! and whenever the standby is closed: when it leaves the placement, when the instance stops, and
//! when a rebalance makes it active here (`activate`, called before the stream thread opens the
//! task, so the active task's restoration starts at the checkpoint).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::checkpoint;
use crate::config::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::state::{FjallBackend, StateStore};
use crate::task::TaskId;
use crate::topology::Topology;

/// Records applied per lock hold, so a stream thread activating a task waits at most one batch.
const MAX_BATCH: usize = 500;

/// One standby task: its changelogged stores and how far each has been applied.
struct StandbyTask {
    /// Changelog topic -> the store it restores.
    stores: BTreeMap<String, StateStore>,
    /// Changelog topic -> next offset to apply; absent: from the changelog's beginning.
    positions: BTreeMap<String, i64>,
    /// Records applied since the last checkpoint.
    dirty: bool,
}

struct Inner {
    /// This instance's standby tasks in the latest placement.
    assigned: BTreeSet<TaskId>,
    /// Tasks a stream thread of this instance runs (or is restoring): never kept as standbys,
    /// since both would write the same store. Counted, so a task moving between two threads of
    /// this instance stays active whichever thread's callback runs first.
    active: BTreeMap<TaskId, usize>,
    tasks: BTreeMap<TaskId, StandbyTask>,
    /// Bumped whenever `tasks` changes: the updater then re-assigns its consumer.
    version: u64,
}

/// This instance's standby tasks, shared by the stream threads and the updater thread.
pub(crate) struct StandbyTasks {
    topology: Arc<Topology>,
    application_id: String,
    app_dir: PathBuf,
    db: fjall::Database,
    inner: Mutex<Inner>,
}

impl StandbyTasks {
    pub(crate) fn new(
        topology: Arc<Topology>,
        application_id: &str,
        app_dir: PathBuf,
        db: fjall::Database,
    ) -> Self {
        StandbyTasks {
            topology,
            application_id: application_id.to_string(),
            app_dir,
            db,
            inner: Mutex::new(Inner {
                assigned: BTreeSet::new(),
                active: BTreeMap::new(),
                tasks: BTreeMap::new(),
                version: 0,
            }),
        }
    }

    /// The standby tasks this instance holds now.
    pub(crate) fn task_ids(&self) -> BTreeSet<TaskId> {
        self.inner.lock().tasks.keys().copied().collect()
    }

    /// The placement's standby tasks for this instance (applied by the updater thread).
    pub(crate) fn set_assigned(&self, tasks: BTreeSet<TaskId>) {
        self.inner.lock().assigned = tasks;
    }

    /// A stream thread is about to open `id` as an active task: a standby of it is closed first,
    /// with its checkpoint written, so restoration replays only what it had not applied yet.
    pub(crate) fn activate(&self, id: TaskId) -> Result<()> {
        let mut inner = self.inner.lock();
        *inner.active.entry(id).or_default() += 1;
        if let Some(t) = inner.tasks.remove(&id) {
            inner.version += 1;
            self.close_task(id, t)?;
            tracing::info!(task = %id, "standby task closed: it becomes active here");
        }
        Ok(())
    }

    /// `id` is no longer active here (its checkpoint, if the close was clean, is written): the
    /// updater may keep it as a standby from that checkpoint on.
    pub(crate) fn deactivate(&self, id: TaskId) {
        let mut inner = self.inner.lock();
        if let Some(n) = inner.active.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                inner.active.remove(&id);
            }
        }
    }

    fn task_dir(&self, id: TaskId) -> PathBuf {
        self.app_dir.join(id.to_string())
    }

    /// Opens the changelogged stores of `id`, from its checkpoint; a store the checkpoint does not
    /// cover is emptied and rebuilt from the changelog's beginning.
    fn open_task(&self, id: TaskId) -> Result<StandbyTask> {
        let subs = self.topology.subtopologies();
        let sub = subs.get(id.subtopology).ok_or_else(|| {
            StreamsError::Streams(format!(
                "standby task {id}: no sub-topology {}",
                id.subtopology
            ))
        })?;
        let cp = checkpoint::read(&self.task_dir(id));
        let mut stores = BTreeMap::new();
        let mut positions = BTreeMap::new();
        for def in &self.topology.stores {
            if !def.logging || !sub.stores.contains(&def.name) {
                continue;
            }
            let topic = Topology::changelog_topic(&self.application_id, &def.name);
            let backend = Arc::new(FjallBackend::open(&self.db, &def.name, &id.to_string())?);
            let store = StateStore::new(
                def.name.clone(),
                def.kind,
                backend,
                Some(topic.clone()),
                false,
            );
            match cp.get(&topic) {
                Some(&o) => {
                    positions.insert(topic.clone(), o);
                }
                None => store.backend.clear()?,
            }
            stores.insert(topic, store);
        }
        tracing::info!(task = %id, ?positions, "standby task opened");
        Ok(StandbyTask {
            stores,
            positions,
            dirty: false,
        })
    }

    /// Writes the checkpoint of a standby task after making its store writes durable, so the
    /// checkpoint never claims more than the store holds.
    fn write_checkpoint(&self, id: TaskId, t: &StandbyTask) -> Result<()> {
        self.db.persist(fjall::PersistMode::SyncAll)?;
        checkpoint::write(&self.task_dir(id), &t.positions)
    }

    fn close_task(&self, id: TaskId, t: StandbyTask) -> Result<()> {
        self.write_checkpoint(id, &t)
    }

    /// Brings `tasks` in line with the placement minus the active tasks; true if it changed.
    fn reconcile(&self, inner: &mut Inner) -> Result<bool> {
        let wanted: BTreeSet<TaskId> = inner
            .assigned
            .iter()
            .filter(|id| !inner.active.contains_key(id))
            .copied()
            .collect();
        let gone: Vec<TaskId> = inner
            .tasks
            .keys()
            .filter(|id| !wanted.contains(id))
            .copied()
            .collect();
        let mut changed = false;
        for id in gone {
            if let Some(t) = inner.tasks.remove(&id) {
                self.close_task(id, t)?;
                tracing::info!(task = %id, "standby task closed");
                changed = true;
            }
        }
        for id in wanted {
            if let std::collections::btree_map::Entry::Vacant(e) = inner.tasks.entry(id) {
                e.insert(self.open_task(id)?);
                changed = true;
            }
        }
        if changed {
            inner.version += 1;
        }
        Ok(changed)
    }

    /// Applies one changelog record to the standby task owning its partition, if there still is
    /// one (the task may have become active since the record was fetched).
    fn apply(inner: &mut Inner, m: &rdkafka::message::BorrowedMessage<'_>) -> Result<()> {
        let id = inner
            .tasks
            .iter_mut()
            .find(|(id, t)| id.partition == m.partition() && t.stores.contains_key(m.topic()));
        let Some((_, t)) = id else { return Ok(()) };
        // A record from before the position belongs to an assignment the consumer has left.
        if t.positions.get(m.topic()).is_some_and(|&p| m.offset() < p) {
            return Ok(());
        }
        if let Some(s) = t.stores.get_mut(m.topic()) {
            s.restore(
                m.key().unwrap_or_default(),
                m.payload(),
                m.timestamp().to_millis().unwrap_or(0),
            )?;
        }
        t.positions.insert(m.topic().to_string(), m.offset() + 1);
        t.dirty = true;
        Ok(())
    }

    /// The updater thread: follows the placement, applies changelog records, checkpoints every
    /// `commit.interval.ms`, and closes every standby (checkpoint written) on shutdown.
    pub(crate) fn run(
        &self,
        config: &StreamsConfig,
        process_id: &str,
        shutdown: &AtomicBool,
    ) -> Result<()> {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &config.bootstrap_servers)
            .set(
                "client.id",
                format!(
                    "{}-{process_id}-StandbyThread-restore-consumer",
                    config.application_id
                ),
            )
            // librdkafka refuses assign() without a group id; the group is never joined (no
            // subscribe) and nothing is committed to it, as for the restore consumer.
            .set("group.id", format!("{}-standby", config.application_id))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed");
        for (k, v) in config.overrides("restore.consumer") {
            cc.set(k, v);
        }
        let consumer: BaseConsumer = cc.create()?;
        let commit_every = Duration::from_millis(config.commit_interval_ms);
        let mut last_checkpoint = Instant::now();
        let mut assigned_version = u64::MAX;
        let result = (|| -> Result<()> {
            while !shutdown.load(Ordering::SeqCst) {
                {
                    let mut inner = self.inner.lock();
                    self.reconcile(&mut inner)?;
                    if inner.version != assigned_version {
                        let mut tpl = TopicPartitionList::new();
                        for (id, t) in &inner.tasks {
                            for topic in t.stores.keys() {
                                let from = t
                                    .positions
                                    .get(topic)
                                    .map_or(Offset::Beginning, |&o| Offset::Offset(o));
                                tpl.add_partition_offset(topic, id.partition, from)
                                    .map_err(|e| StreamsError::Kafka(e.to_string()))?;
                            }
                        }
                        consumer.assign(&tpl)?;
                        assigned_version = inner.version;
                    }
                }
                // Polled without the lock, so `activate` does not wait for an idle poll.
                let mut msg = consumer.poll(Duration::from_millis(100));
                let mut inner = self.inner.lock();
                let mut handled = 0;
                while let Some(m) = msg {
                    match m {
                        Ok(m) => Self::apply(&mut inner, &m)?,
                        Err(e) => tracing::warn!(error = %e, "standby consumer error"),
                    }
                    handled += 1;
                    if handled >= MAX_BATCH {
                        break;
                    }
                    msg = consumer.poll(Duration::ZERO);
                }
                if last_checkpoint.elapsed() >= commit_every {
                    if inner.tasks.values().any(|t| t.dirty) {
                        // One sync for all the stores, then the checkpoints it makes true.
                        self.db.persist(fjall::PersistMode::SyncAll)?;
                        for (id, t) in inner.tasks.iter_mut().filter(|(_, t)| t.dirty) {
                            checkpoint::write(&self.task_dir(*id), &t.positions)?;
                            t.dirty = false;
                        }
                    }
                    last_checkpoint = Instant::now();
                }
            }
            Ok(())
        })();
        let mut inner = self.inner.lock();
        for (id, t) in std::mem::take(&mut inner.tasks) {
            if let Err(e) = self.close_task(id, t) {
                tracing::warn!(task = %id, error = %e, "closing a standby task failed");
            }
        }
        inner.version += 1;
        result
    }
}
