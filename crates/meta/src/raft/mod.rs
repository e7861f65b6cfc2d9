//! The metadata quorum: the metadata log replicated with `openraft` among the controllers
//! (`controller.quorum.voters`), as Kafka's KRaft. The Raft leader is the active controller.
//! Broker-only nodes follow it without voting (`observer`).
//!
//! This is the only module that names openraft types; the rest of strom sees `Quorum` and the
//! metadata commands. It owns a dedicated single-threaded runtime ("strom-controller") that runs
//! Raft, the CONTROLLER listener and forwarding, so callers on any runtime (or none) can wait for
//! a write without starving Raft.
//!
//! Must not touch: partition data, the Kafka wire protocol.

// openraft's trait methods return its own (large) StorageError; boxing is not ours to choose.
#![allow(clippy::result_large_err)]

mod log_store;
mod network;
mod observer;
mod state_machine;

pub use observer::{Observer, ObserverConfig};

use crate::command::{CommandOutcome, MetadataCommand};
use crate::image::{BrokerMeta, MetadataImage};
use crate::store::MetaError;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft, ServerState, SnapshotPolicy};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

openraft::declare_raft_types!(
    /// strom's Raft types: metadata commands in, their outcomes out.
    pub TypeConfig:
        D = MetadataCommand,
        R = CommandOutcome,
);

/// How long a write, registration or heartbeat waits for a leader before giving up.
const LEADER_WAIT: Duration = Duration::from_secs(15);

pub struct QuorumConfig {
    pub node_id: i32,
    /// Every voter's node id and CONTROLLER address (host:port).
    pub voters: BTreeMap<i32, String>,
    /// broker.session.timeout.ms: a live registration blocks another broker with the same id.
    pub session_timeout: Duration,
    /// meta.properties' cluster id, if this node has one; proposed when the log has none.
    pub stored_cluster_id: Option<String>,
    pub new_cluster_id: String,
}

/// Requests only the active controller answers; other nodes forward them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaderRequest {
    Write(MetadataCommand),
    Register(BrokerMeta),
    Heartbeat {
        node_id: i32,
        incarnation_id: Uuid,
    },
    /// A broker-only node (an observer of the metadata log) asks for the image once it is newer
    /// than `after_epoch`; the controller holds the request up to `OBSERVER_FETCH_WAIT` first,
    /// so a change reaches the observers at once without them polling hard.
    FetchImage {
        after_epoch: u64,
    },
    /// Kafka's AddRaftVoter (KIP-853): make the controller `node_id`, listening on `address`,
    /// a voter, once it has caught up with the log as a learner.
    AddVoter {
        node_id: i32,
        address: String,
    },
    /// Kafka's RemoveRaftVoter: take `node_id` out of the voters.
    RemoveVoter {
        node_id: i32,
    },
}

impl LeaderRequest {
    /// How long a caller waits for the answer: a new voter must catch up first.
    pub(crate) fn timeout(&self) -> Duration {
        match self {
            LeaderRequest::AddVoter { .. } | LeaderRequest::RemoveVoter { .. } => {
                VOTER_CHANGE_WAIT + Duration::from_secs(3)
            }
            _ => Duration::from_secs(5),
        }
    }
}

/// How long a new voter may take to catch up as a learner before AddVoter gives up.
const VOTER_CHANGE_WAIT: Duration = Duration::from_secs(10);

/// How long the active controller holds an observer's FetchImage when nothing changed.
const OBSERVER_FETCH_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaderReply {
    Outcome(CommandOutcome),
    /// The heartbeat is from the registered incarnation (unfenced now if it was fenced).
    HeartbeatOk,
    /// The controller does not know this incarnation: register (again).
    NeedRegistration,
    /// The voter set changed as asked.
    VotersChanged,
    /// The committed image for an observer, with what it needs to find the quorum next time.
    Image {
        image: MetadataImage,
        leader: i32,
        term: u64,
        /// Every voter's node id and CONTROLLER address.
        voters: BTreeMap<i32, String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaderError {
    NotLeader(Option<u64>),
    Refused(String),
    Unavailable(String),
}

/// One voter as `strom cluster describe` shows it.
#[derive(Debug, Clone)]
pub struct VoterStatus {
    pub node_id: i32,
    pub address: String,
    /// Log entries behind the leader's last entry; known on the leader only.
    pub lag: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct QuorumStatus {
    pub leader: Option<i32>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub voters: Vec<VoterStatus>,
}

pub(crate) struct Inner {
    node_id: u64,
    raft: Raft<TypeConfig>,
    /// `controller.quorum.voters`: the voters until the log's membership says otherwise (empty
    /// for a controller that joins a running quorum).
    configured_voters: BTreeMap<u64, BasicNode>,
    /// Last heartbeat per broker, on the active controller (Kafka keeps these in memory too).
    liveness: Mutex<HashMap<i32, (Uuid, Instant)>>,
    session_timeout: Duration,
    image: Arc<watch::Sender<Arc<MetadataImage>>>,
    cluster_id_conflict: Mutex<Option<String>>,
}

pub struct Quorum {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    inner: Arc<Inner>,
}

impl Drop for Quorum {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Quorum {
    /// Open the Raft log in `dir/raft`, start Raft and serve `listener` (the CONTROLLER
    /// listener). Returns at once: the quorum forms in the background.
    pub fn start(
        dir: &Path,
        cfg: QuorumConfig,
        listener: std::net::TcpListener,
        image: Arc<watch::Sender<Arc<MetadataImage>>>,
    ) -> Result<Quorum, MetaError> {
        let runtime = controller_runtime("strom-controller")?;
        let handle = runtime.handle().clone();
        let raft_dir = dir.join("raft");
        let (tx, rx) = std::sync::mpsc::channel();
        let dir_owned = dir.to_path_buf();
        handle.spawn(async move {
            let _ = tx.send(Self::start_async(&raft_dir, &dir_owned, cfg, listener, image).await);
        });
        let inner = rx
            .recv()
            .map_err(|_| MetaError::Unavailable("the controller runtime stopped".into()))??;
        Ok(Quorum {
            runtime: Some(runtime),
            handle,
            inner,
        })
    }

    async fn start_async(
        raft_dir: &Path,
        meta_dir: &Path,
        cfg: QuorumConfig,
        listener: std::net::TcpListener,
        image: Arc<watch::Sender<Arc<MetadataImage>>>,
    ) -> Result<Arc<Inner>, MetaError> {
        let io = |context: &str| {
            let context = context.to_string();
            move |source| MetaError::Io { context, source }
        };
        let log = log_store::LogStore::open(raft_dir).map_err(io(&format!(
            "opening the metadata log in {}",
            raft_dir.display()
        )))?;
        let sm = state_machine::StateMachine::open(raft_dir, image.clone()).map_err(io(
            &format!("opening the metadata snapshot in {}", raft_dir.display()),
        ))?;
        let config = openraft::Config {
            cluster_name: "strom".into(),
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| MetaError::Unavailable(format!("Raft configuration: {e}")))?;
        let raft = Raft::new(
            cfg.node_id as u64,
            Arc::new(config),
            network::Network,
            log,
            sm,
        )
        .await
        .map_err(|e| MetaError::Unavailable(format!("starting Raft: {e}")))?;
        let voters: BTreeMap<u64, BasicNode> = cfg
            .voters
            .iter()
            .map(|(id, addr)| (*id as u64, BasicNode::new(addr)))
            .collect();
        // Every voter initialises with the same membership on its first start (allowed by
        // openraft): no format step. A controller started without voters joins a running
        // quorum: it waits, uninitialised, until AddVoter adds it.
        if !voters.is_empty() && !raft.is_initialized().await.unwrap_or(true) {
            tokio::spawn(initialize_in_turn(
                raft.clone(),
                cfg.node_id as u64,
                voters.clone(),
            ));
        }
        listener
            .set_nonblocking(true)
            .map_err(io("controller listener"))?;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(io("controller listener"))?;
        let inner = Arc::new(Inner {
            node_id: cfg.node_id as u64,
            raft,
            configured_voters: voters,
            liveness: Mutex::new(HashMap::new()),
            session_timeout: cfg.session_timeout,
            image,
            cluster_id_conflict: Mutex::new(None),
        });
        tokio::spawn(network::serve(inner.clone(), listener));
        tokio::spawn(agree_cluster_id(
            inner.clone(),
            meta_dir.to_path_buf(),
            cfg.node_id,
            cfg.stored_cluster_id,
            cfg.new_cluster_id,
        ));
        Ok(inner)
    }

    /// Run `fut` on the controller runtime and wait for it from synchronous code.
    fn block<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, MetaError> {
        block_on(&self.handle, fut)
    }

    /// Send `req` to the active controller (this node or another) and wait for its answer.
    pub fn leader_request_blocking(&self, req: LeaderRequest) -> Result<LeaderReply, MetaError> {
        let inner = self.inner.clone();
        self.block(async move { leader_request(inner, req).await })?
    }

    pub async fn leader_request(&self, req: LeaderRequest) -> Result<LeaderReply, MetaError> {
        let inner = self.inner.clone();
        self.handle
            .spawn(async move { leader_request(inner, req).await })
            .await
            .map_err(|e| MetaError::Unavailable(format!("controller task failed: {e}")))?
    }

    pub fn is_leader(&self) -> bool {
        self.inner.is_leader()
    }

    /// Last heartbeat per broker, as the active controller saw them.
    pub fn liveness(&self) -> HashMap<i32, (Uuid, Instant)> {
        self.inner.liveness.lock().clone()
    }

    pub fn cluster_id_conflict(&self) -> Option<String> {
        self.inner.cluster_id_conflict.lock().clone()
    }

    pub fn status(&self) -> QuorumStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        let last = m.last_log_index;
        let voters = self
            .inner
            .voters()
            .iter()
            .map(|(id, node)| {
                let lag = m.replication.as_ref().map(|r| {
                    let matched = r.get(id).and_then(|l| l.map(|l| l.index));
                    match (last, matched) {
                        (Some(l), Some(m)) => l.saturating_sub(m),
                        (Some(l), None) => l + 1,
                        _ => 0,
                    }
                });
                VoterStatus {
                    node_id: *id as i32,
                    address: node.addr.clone(),
                    lag,
                }
            })
            .collect();
        QuorumStatus {
            leader: m.current_leader.map(|l| l as i32),
            term: m.current_term,
            last_log_index: last,
            voters,
        }
    }
}

/// Run `fut` on `handle`'s runtime and wait for it from synchronous code (or a multi-thread
/// runtime's worker, which is told it blocks).
pub(crate) fn block_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, MetaError> {
    let (tx, rx) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    let wait = || {
        rx.recv_timeout(LEADER_WAIT + Duration::from_secs(5))
            .map_err(|_| MetaError::Unavailable("the metadata quorum did not answer".into()))
    };
    let in_multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if in_multi_thread {
        tokio::task::block_in_place(wait)
    } else {
        wait()
    }
}

/// The controller runtime: one worker, so Raft is never starved by the broker's own work.
pub(crate) fn controller_runtime(name: &str) -> Result<tokio::runtime::Runtime, MetaError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|source| MetaError::Io {
            context: "starting the controller runtime".into(),
            source,
        })
}

impl Inner {
    /// The voters of the membership this node last saw in the log (or the configured ones before
    /// it has any).
    fn voters(&self) -> BTreeMap<u64, BasicNode> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let voters: BTreeMap<u64, BasicNode> = m
            .voter_ids()
            .filter_map(|id| m.membership().get_node(&id).map(|n| (id, n.clone())))
            .collect();
        if voters.is_empty() {
            self.configured_voters.clone()
        } else {
            voters
        }
    }

    fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
    }

    fn current_leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    async fn propose(&self, cmd: MetadataCommand) -> Result<CommandOutcome, LeaderError> {
        match self.raft.client_write(cmd).await {
            Ok(r) => Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(LeaderError::NotLeader(f.leader_id))
            }
            Err(e) => Err(LeaderError::Unavailable(e.to_string())),
        }
    }

    fn check_leader(&self) -> Result<(), LeaderError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(LeaderError::NotLeader(
                self.current_leader().filter(|l| *l != self.node_id),
            ))
        }
    }

    pub(crate) async fn handle_as_leader(
        &self,
        req: LeaderRequest,
    ) -> Result<LeaderReply, LeaderError> {
        match req {
            LeaderRequest::Write(cmd) => self.propose(cmd).await.map(LeaderReply::Outcome),
            LeaderRequest::Register(b) => {
                self.check_leader()?;
                let image = self.image.borrow().clone();
                if let Some(old) = image.brokers.get(&b.node_id)
                    && old.incarnation_id != b.incarnation_id
                    && !old.fenced
                {
                    let live = self
                        .liveness
                        .lock()
                        .get(&b.node_id)
                        .is_some_and(|(inc, at)| {
                            *inc == old.incarnation_id && at.elapsed() < self.session_timeout
                        });
                    if live {
                        return Err(LeaderError::Refused(format!(
                            "node.id {} is already registered by another live broker process (incarnation {}, still heartbeating); every node needs its own node.id",
                            b.node_id, old.incarnation_id
                        )));
                    }
                }
                self.liveness
                    .lock()
                    .insert(b.node_id, (b.incarnation_id, Instant::now()));
                self.propose(MetadataCommand::RegisterBroker { broker: b })
                    .await
                    .map(LeaderReply::Outcome)
            }
            LeaderRequest::Heartbeat {
                node_id,
                incarnation_id,
            } => {
                self.check_leader()?;
                let image = self.image.borrow().clone();
                match image.brokers.get(&node_id) {
                    Some(b) if b.incarnation_id == incarnation_id => {
                        self.liveness
                            .lock()
                            .insert(node_id, (incarnation_id, Instant::now()));
                        if b.fenced {
                            self.propose(MetadataCommand::UnfenceBroker { node_id })
                                .await?
                                .map_err(|e| LeaderError::Unavailable(e.to_string()))?;
                        }
                        Ok(LeaderReply::HeartbeatOk)
                    }
                    _ => Ok(LeaderReply::NeedRegistration),
                }
            }
            LeaderRequest::FetchImage { after_epoch } => {
                self.check_leader()?;
                let mut rx = self.image.subscribe();
                // Timing out is the normal answer when nothing changed: the current image.
                let _ = tokio::time::timeout(
                    OBSERVER_FETCH_WAIT,
                    rx.wait_for(|i| i.epoch > after_epoch),
                )
                .await;
                let image = (**self.image.borrow()).clone();
                let m = self.raft.metrics().borrow().clone();
                Ok(LeaderReply::Image {
                    image,
                    leader: self.node_id as i32,
                    term: m.current_term,
                    voters: self
                        .voters()
                        .iter()
                        .map(|(id, n)| (*id as i32, n.addr.clone()))
                        .collect(),
                })
            }
            LeaderRequest::AddVoter { node_id, address } => {
                self.check_leader()?;
                let mut ids: std::collections::BTreeSet<u64> =
                    self.voters().keys().copied().collect();
                if !ids.insert(node_id as u64) {
                    return Err(LeaderError::Refused(format!(
                        "node {node_id} is already a voter"
                    )));
                }
                // As a learner first: it must hold the log before its vote counts.
                let added = tokio::time::timeout(
                    VOTER_CHANGE_WAIT,
                    self.raft
                        .add_learner(node_id as u64, BasicNode::new(&address), true),
                )
                .await;
                match added {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(LeaderError::Unavailable(e.to_string())),
                    // Refused, not Unavailable: retrying would only wait as long again.
                    Err(_) => {
                        return Err(LeaderError::Refused(format!(
                            "controller {node_id} at {address} did not catch up with the metadata log within {}s (is it running with process.roles=controller and no controller.quorum.voters?)",
                            VOTER_CHANGE_WAIT.as_secs()
                        )));
                    }
                }
                self.raft
                    .change_membership(ids, false)
                    .await
                    .map_err(|e| LeaderError::Unavailable(e.to_string()))?;
                tracing::info!(node_id, %address, "added voter to the metadata quorum");
                Ok(LeaderReply::VotersChanged)
            }
            LeaderRequest::RemoveVoter { node_id } => {
                self.check_leader()?;
                let mut ids: std::collections::BTreeSet<u64> =
                    self.voters().keys().copied().collect();
                if !ids.remove(&(node_id as u64)) {
                    return Err(LeaderError::Refused(format!(
                        "node {node_id} is not a voter"
                    )));
                }
                if ids.is_empty() {
                    return Err(LeaderError::Refused(
                        "the last voter cannot be removed".into(),
                    ));
                }
                self.raft
                    .change_membership(ids, false)
                    .await
                    .map_err(|e| LeaderError::Unavailable(e.to_string()))?;
                tracing::info!(node_id, "removed voter from the metadata quorum");
                Ok(LeaderReply::VotersChanged)
            }
        }
    }
}

/// Handle `req` here if this node is the active controller, else forward it to the leader;
/// retries while there is no leader, up to `LEADER_WAIT`.
async fn leader_request(inner: Arc<Inner>, req: LeaderRequest) -> Result<LeaderReply, MetaError> {
    let deadline = Instant::now() + LEADER_WAIT;
    let mut last = String::from("no controller elected yet");
    // Where to send next when this node knows no leader: a leader named by another voter, else
    // the other voters in turn (they answer or name their leader). A node that cannot win an
    // election (e.g. a second process with a taken node.id) still reaches the controller so.
    let others: Vec<u64> = inner
        .voters()
        .keys()
        .copied()
        .filter(|id| *id != inner.node_id)
        .collect();
    let mut hint: Option<u64> = None;
    let mut round = 0usize;
    loop {
        let target = match inner.handle_as_leader(req.clone()).await {
            Err(LeaderError::NotLeader(Some(leader))) if leader != inner.node_id => Ok(leader),
            Err(LeaderError::NotLeader(_)) => match hint.take() {
                Some(h) => Ok(h),
                None if !others.is_empty() => {
                    round += 1;
                    Ok(others[round % others.len()])
                }
                None => Err(LeaderError::NotLeader(None)),
            },
            other => return finish(other),
        };
        let result = match target {
            Ok(leader) => match inner.voters().get(&leader) {
                Some(node) => {
                    let rpc = network::Rpc::Leader(req.clone());
                    match network::call(&node.addr, &rpc, req.timeout()).await {
                        Ok(network::RpcReply::Leader(r)) => r,
                        Ok(_) => Err(LeaderError::Unavailable("unexpected reply".into())),
                        Err(e) => Err(LeaderError::Unavailable(format!(
                            "controller {leader} at {}: {e}",
                            node.addr
                        ))),
                    }
                }
                None => Err(LeaderError::Unavailable(format!(
                    "leader {leader} is not a configured voter"
                ))),
            },
            Err(e) => Err(e),
        };
        match result {
            Err(LeaderError::NotLeader(h)) => {
                // Even this node's own id: a second process with a taken node.id reaches the
                // real one at its configured address.
                hint = h;
            }
            Err(LeaderError::Unavailable(m)) => last = m,
            other => return finish(other),
        }
        if Instant::now() >= deadline {
            return Err(MetaError::Unavailable(format!(
                "no active controller answered within {}s: {last}",
                LEADER_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn finish(r: Result<LeaderReply, LeaderError>) -> Result<LeaderReply, MetaError> {
    match r {
        Ok(r) => Ok(r),
        Err(LeaderError::Refused(m)) => Err(MetaError::Refused(m)),
        Err(LeaderError::NotLeader(_)) => {
            Err(MetaError::Unavailable("no active controller".into()))
        }
        Err(LeaderError::Unavailable(m)) => Err(MetaError::Unavailable(m)),
    }
}

/// The first leader writes the cluster id into the log; every node then keeps it in its
/// meta.properties and refuses to go on if that file names another cluster.
async fn agree_cluster_id(
    inner: Arc<Inner>,
    dir: std::path::PathBuf,
    node_id: i32,
    stored: Option<String>,
    new_id: String,
) {
    let mut rx = inner.image.subscribe();
    loop {
        let agreed = rx.borrow_and_update().cluster_id.clone();
        if !agreed.is_empty() {
            match &stored {
                None => {
                    if let Err(e) = crate::store::write_meta_properties(&dir, &agreed, node_id) {
                        tracing::error!(error = %e, "writing meta.properties failed");
                    }
                }
                Some(s) if *s != agreed => {
                    let msg = format!(
                        "this node's {}/meta.properties has cluster.id {s} but the metadata quorum's cluster id is {agreed}: the data directory belongs to another cluster",
                        dir.display()
                    );
                    tracing::error!("{msg}");
                    *inner.cluster_id_conflict.lock() = Some(msg);
                }
                Some(_) => {}
            }
            return;
        }
        if inner.is_leader() {
            let cluster_id = stored.clone().unwrap_or_else(|| new_id.clone());
            let _ = inner
                .propose(MetadataCommand::SetClusterId { cluster_id })
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), rx.changed()).await;
    }
}

/// How long each voter waits behind the one before it, on a first start, before it
/// initialises the quorum itself. One election round fits in it easily.
const INITIALIZE_STAGGER: Duration = Duration::from_millis(300);

/// Initialise a pristine quorum, lowest voter id first. `initialize` starts an election at
/// once, so voters that all initialise together split the first vote and wait a whole
/// election timeout for a second round. Here the others wait their turn: by then the first
/// one's vote request has reached them (which counts as initialised) and they stand aside.
/// If it never came (that voter is down), the next in line initialises.
async fn initialize_in_turn(
    raft: Raft<TypeConfig>,
    node_id: u64,
    voters: BTreeMap<u64, BasicNode>,
) {
    let rank = voters.keys().position(|id| *id == node_id).unwrap_or(0);
    tokio::time::sleep(INITIALIZE_STAGGER * rank as u32).await;
    if raft.is_initialized().await.unwrap_or(true) {
        return;
    }
    if let Err(e) = raft.initialize(voters).await {
        tracing::debug!(error = %e, "Raft initialize");
    }
}
