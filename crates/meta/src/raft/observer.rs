//! A broker-only node's view of the metadata quorum (`process.roles=broker`): an observer of the
//! metadata log, as Kafka's brokers are. It is no Raft voter; it follows the committed image by
//! long-polling the active controller (FetchImage on the CONTROLLER listener, as Kafka's brokers
//! fetch the `__cluster_metadata` log), and sends its writes, registration and heartbeats there
//! (through any controller it can reach, which forwards to the leader).
//!
//! It finds the quorum through `controller.quorum.voters` or `controller.quorum.bootstrap.servers`;
//! every answer names the voters and the leader, so it keeps finding the active controller after
//! a failover even when it was only given bootstrap addresses.
//!
//! Must not touch: the Raft log of the voters (the observer keeps no copy; it starts from the
//! controller's current image on every start).

use super::network::{self, Rpc, RpcReply};
use super::{
    LEADER_WAIT, LeaderError, LeaderReply, LeaderRequest, QuorumStatus, VoterStatus, block_on,
};
use crate::image::MetadataImage;
use crate::store::MetaError;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One controller RPC may take the controller's FetchImage wait plus a write's commit.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub struct ObserverConfig {
    pub node_id: i32,
    /// `controller.quorum.voters` as id → CONTROLLER host:port (may be empty).
    pub voters: BTreeMap<i32, String>,
    /// `controller.quorum.bootstrap.servers` (host:port); used while no voter is known.
    pub bootstrap: Vec<String>,
    /// The directory holding meta.properties.
    pub dir: PathBuf,
    /// meta.properties' cluster id, if this node has one.
    pub stored_cluster_id: Option<String>,
}

/// What the last answer from the quorum said about it.
#[derive(Default)]
struct View {
    voters: BTreeMap<i32, String>,
    leader: Option<i32>,
    term: u64,
}

struct Inner {
    node_id: i32,
    bootstrap: Vec<String>,
    view: Mutex<View>,
    image: Arc<watch::Sender<Arc<MetadataImage>>>,
    cluster_id_conflict: Mutex<Option<String>>,
}

pub struct Observer {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    inner: Arc<Inner>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Observer {
    /// Start following the quorum's image into `image`. Returns at once.
    pub fn start(
        cfg: ObserverConfig,
        image: Arc<watch::Sender<Arc<MetadataImage>>>,
    ) -> Result<Observer, MetaError> {
        if cfg.voters.is_empty() && cfg.bootstrap.is_empty() {
            return Err(MetaError::Unavailable(
                "an observer needs controller.quorum.voters or controller.quorum.bootstrap.servers"
                    .into(),
            ));
        }
        let runtime = super::controller_runtime("strom-metadata")?;
        let handle = runtime.handle().clone();
        let inner = Arc::new(Inner {
            node_id: cfg.node_id,
            bootstrap: cfg.bootstrap,
            view: Mutex::new(View {
                voters: cfg.voters,
                ..View::default()
            }),
            image,
            cluster_id_conflict: Mutex::new(None),
        });
        handle.spawn(follow(inner.clone(), cfg.dir, cfg.stored_cluster_id));
        Ok(Observer {
            runtime: Some(runtime),
            handle,
            inner,
        })
    }

    pub fn leader_request_blocking(&self, req: LeaderRequest) -> Result<LeaderReply, MetaError> {
        let inner = self.inner.clone();
        block_on(&self.handle, async move { inner.request(req).await })?
    }

    pub async fn leader_request(&self, req: LeaderRequest) -> Result<LeaderReply, MetaError> {
        let inner = self.inner.clone();
        self.handle
            .spawn(async move { inner.request(req).await })
            .await
            .map_err(|e| MetaError::Unavailable(format!("metadata task failed: {e}")))?
    }

    pub fn cluster_id_conflict(&self) -> Option<String> {
        self.inner.cluster_id_conflict.lock().clone()
    }

    /// The quorum as last seen: leader, term and voters (an observer knows no voter's lag).
    pub fn status(&self) -> QuorumStatus {
        let view = self.inner.view.lock();
        QuorumStatus {
            leader: view.leader,
            term: view.term,
            last_log_index: None,
            voters: view
                .voters
                .iter()
                .map(|(id, addr)| VoterStatus {
                    node_id: *id,
                    address: addr.clone(),
                    lag: None,
                })
                .collect(),
        }
    }
}

impl Inner {
    /// Where to send next: the known leader first, then every voter, then the bootstrap servers.
    fn targets(&self) -> Vec<(Option<i32>, String)> {
        let view = self.view.lock();
        let mut out: Vec<(Option<i32>, String)> = Vec::new();
        if let Some(addr) = view.leader.and_then(|l| view.voters.get(&l)) {
            out.push((view.leader, addr.clone()));
        }
        for (id, addr) in &view.voters {
            if !out.iter().any(|(_, a)| a == addr) {
                out.push((Some(*id), addr.clone()));
            }
        }
        for addr in &self.bootstrap {
            if !out.iter().any(|(_, a)| a == addr) {
                out.push((None, addr.clone()));
            }
        }
        out
    }

    /// Send `req` to the active controller, trying every known controller in turn (one that is
    /// not the leader passes it on), for up to `LEADER_WAIT`.
    async fn request(&self, req: LeaderRequest) -> Result<LeaderReply, MetaError> {
        let deadline = Instant::now() + LEADER_WAIT;
        let mut last = String::from("no controller answered yet");
        loop {
            for (id, addr) in self.targets() {
                let rpc = Rpc::Forward(req.clone());
                match network::call(&addr, &rpc, CALL_TIMEOUT.max(req.timeout())).await {
                    Ok(RpcReply::Leader(Ok(reply))) => {
                        if let LeaderReply::Image {
                            leader,
                            term,
                            voters,
                            ..
                        } = &reply
                        {
                            let mut view = self.view.lock();
                            view.leader = Some(*leader);
                            view.term = *term;
                            view.voters = voters.clone();
                        }
                        return Ok(reply);
                    }
                    Ok(RpcReply::Leader(Err(LeaderError::NotLeader(hint)))) => {
                        let mut view = self.view.lock();
                        // A hint names a voter we can reach next round; a controller that knows
                        // no leader tells us to stop trusting our own guess.
                        view.leader = hint.map(|h| h as i32);
                        last = format!("controller at {addr} is not the active controller");
                        // Start over at the named leader, if we know where it listens.
                        if view.leader.is_some_and(|l| view.voters.contains_key(&l)) {
                            break;
                        }
                    }
                    Ok(RpcReply::Leader(Err(LeaderError::Refused(m)))) => {
                        return Err(MetaError::Refused(m));
                    }
                    Ok(RpcReply::Leader(Err(LeaderError::Unavailable(m)))) => last = m,
                    Ok(_) => last = format!("unexpected reply from controller at {addr}"),
                    Err(e) => {
                        let mut view = self.view.lock();
                        if id.is_some() && view.leader == id {
                            view.leader = None;
                        }
                        last = format!("controller at {addr}: {e}");
                    }
                }
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
}

/// Keep the image current: ask for anything newer than what this node has, forever. Also agree
/// the cluster id with meta.properties, as the voters do.
async fn follow(inner: Arc<Inner>, dir: PathBuf, stored: Option<String>) {
    let mut cluster_id_checked = false;
    loop {
        let after_epoch = inner.image.borrow().epoch;
        match inner
            .request(LeaderRequest::FetchImage { after_epoch })
            .await
        {
            Ok(LeaderReply::Image { image, .. }) => {
                if !cluster_id_checked && !image.cluster_id.is_empty() {
                    cluster_id_checked = true;
                    check_cluster_id(&inner, &dir, stored.as_deref(), &image.cluster_id);
                }
                // A controller that just became active may not have applied all it committed
                // yet: never go back to an older image.
                if image.epoch > after_epoch {
                    inner.image.send_replace(Arc::new(image));
                }
            }
            Ok(_) => {
                tracing::warn!("unexpected answer to a metadata fetch");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "metadata fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn check_cluster_id(inner: &Inner, dir: &std::path::Path, stored: Option<&str>, agreed: &str) {
    match stored {
        None => {
            if let Err(e) = crate::store::write_meta_properties(dir, agreed, inner.node_id) {
                tracing::error!(error = %e, "writing meta.properties failed");
            }
        }
        Some(s) if s != agreed => {
            let msg = format!(
                "this node's {}/meta.properties has cluster.id {s} but the metadata quorum's cluster id is {agreed}: the data directory belongs to another cluster",
                dir.display()
            );
            tracing::error!("{msg}");
            *inner.cluster_id_conflict.lock() = Some(msg);
        }
        Some(_) => {}
    }
}
