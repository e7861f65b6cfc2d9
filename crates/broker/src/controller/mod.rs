//! The controller side of a node (Kafka's QuorumController and BrokerLifecycleManager): this
//! broker's registration and heartbeats with the active controller, and, on the node that is the
//! active controller, fencing of silent brokers (which moves leadership to the ISR; at once for a
//! broker whose process is gone, see `liveness_probe`),
//! completion of partition reassignments and preferred-leader rebalancing. Replica placement for new topics is in `placement`.
//!
//! Changes go through `MetadataStore` as metadata commands; the Raft quorum itself is in
//! strom-meta. Must not touch: partition logs or replica state (that is `replica`).

mod liveness_probe;
pub mod placement;

use crate::broker::Broker;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_meta::{
    BrokerEndpoint, BrokerMeta, HeartbeatOutcome, MetaError, MetadataCommand, MetadataImage,
};

/// The brokers new replicas may go to: registered, not fenced, with their racks.
pub fn live_candidates(image: &MetadataImage) -> Vec<placement::Candidate> {
    image
        .live_brokers()
        .map(|b| (b.node_id, b.rack.clone()))
        .collect()
}

/// This broker's registration: its advertised client listeners and rack.
pub fn registration(broker: &Broker) -> BrokerMeta {
    BrokerMeta {
        node_id: broker.node_id(),
        incarnation_id: broker.incarnation_id,
        listeners: broker
            .config
            .advertised_listeners
            .iter()
            .map(|l| BrokerEndpoint {
                name: l.name.clone(),
                host: l.host.clone(),
                port: l.port,
            })
            .collect(),
        rack: broker.config.broker_rack.clone(),
        fenced: false,
    }
}

/// Start the controller tasks of a cluster node (nothing to do on a single node): a broker
/// registers and heartbeats; a controller may become the active one. A controller-only node never
/// registers, so it is in no Metadata answer and no replica is placed on it.
pub fn spawn(broker: &Arc<Broker>) {
    if !broker.metadata.is_cluster() {
        return;
    }
    if broker.config.is_broker() {
        tokio::spawn(broker_lifecycle(broker.clone()));
    } else {
        tokio::spawn(watch_cluster_id(broker.clone()));
    }
    if broker.config.is_controller() {
        tokio::spawn(active_controller(broker.clone()));
    }
}

/// A controller-only node does not register, so nothing else stops it when its data directory
/// belongs to another cluster.
async fn watch_cluster_id(broker: Arc<Broker>) {
    loop {
        if let Err(e) = broker.metadata.check_cluster_id() {
            fatal(&e.to_string());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A problem this node cannot recover from (another node has its id, or its data belongs to
/// another cluster): say so and stop, as Kafka's broker does.
fn fatal(msg: &str) -> ! {
    tracing::error!("{msg}; shutting down");
    eprintln!("strom: fatal: {msg}");
    std::process::exit(1)
}

/// Register, then heartbeat every `broker.heartbeat.interval.ms`; register again when the
/// controller forgot this incarnation (it was fenced and a new controller took over, ...).
async fn broker_lifecycle(broker: Arc<Broker>) {
    let interval = Duration::from_millis(broker.config.broker_heartbeat_interval_ms);
    let session = Duration::from_millis(broker.config.broker_session_timeout_ms);
    let mut registered = false;
    let mut refused_since: Option<Instant> = None;
    loop {
        if let Err(e) = broker.metadata.check_cluster_id() {
            fatal(&e.to_string());
        }
        if !registered {
            let Some(registered_now) = or_new_controller(
                &broker,
                broker.metadata.register_broker_async(registration(&broker)),
            )
            .await
            else {
                continue;
            };
            match registered_now {
                Ok(()) => {
                    registered = true;
                    refused_since = None;
                    tracing::info!(
                        node_id = broker.node_id(),
                        incarnation = %broker.incarnation_id,
                        "registered with the active controller"
                    );
                    continue;
                }
                Err(MetaError::Refused(msg)) => {
                    // A restarted broker waits for its old session to expire; a second
                    // process with the same node.id keeps being refused.
                    let since = *refused_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > session * 2 {
                        fatal(&format!("broker registration refused: {msg}"));
                    }
                    tracing::warn!(%msg, "broker registration refused; retrying");
                }
                Err(e) => tracing::warn!(error = %e, "broker registration failed; retrying"),
            }
        } else {
            let Some(beat) = or_new_controller(
                &broker,
                broker
                    .metadata
                    .broker_heartbeat(broker.node_id(), broker.incarnation_id),
            )
            .await
            else {
                continue;
            };
            match beat {
                Ok(HeartbeatOutcome::Ok) => {}
                Ok(HeartbeatOutcome::NeedRegistration) => {
                    registered = false;
                    continue;
                }
                Err(e) => tracing::warn!(error = %e, "broker heartbeat failed"),
            }
        }
        // Less when the active controller changes: a new controller has heard from nobody yet,
        // and it fences a broker that stays silent through its takeover grace.
        or_new_controller(&broker, tokio::time::sleep(interval)).await;
    }
}

/// How often a broker looks for a new active controller between heartbeats.
const CONTROLLER_POLL: Duration = Duration::from_millis(50);

/// `rpc`'s answer, or `None` as soon as another node becomes the active controller: a request
/// to a controller that died or was cut off waits out its whole timeout (longer than a broker
/// session), and meanwhile the new controller, having heard nothing, would fence this broker.
async fn or_new_controller<T>(
    broker: &Broker,
    rpc: impl std::future::Future<Output = T>,
) -> Option<T> {
    let controller = broker.metadata.controller_id();
    let changed = async {
        loop {
            tokio::time::sleep(CONTROLLER_POLL).await;
            if broker.metadata.controller_id() != controller {
                return;
            }
        }
    };
    tokio::select! {
        answer = rpc => Some(answer),
        () = changed => None,
    }
}

/// After a takeover, how long a broker may go unheard before the listener probe may fence it.
/// Live brokers heartbeat the new controller as soon as they see it (`or_new_controller`).
const TAKEOVER_GRACE: Duration = Duration::from_secs(1);

/// On the active controller: fence brokers silent for `broker.session.timeout.ms` (or that missed
/// a heartbeat and whose listeners refuse connections), and move leadership back to preferred
/// replicas every `leader.imbalance.check.interval.seconds`.
async fn active_controller(broker: Arc<Broker>) {
    let session = Duration::from_millis(broker.config.broker_session_timeout_ms);
    // One heartbeat interval plus half of one for scheduling and the RPC: a live broker has beaten by then.
    let missed_heartbeat =
        Duration::from_millis(broker.config.broker_heartbeat_interval_ms * 3 / 2).min(session);
    let rebalance_every =
        Duration::from_secs(broker.config.leader_imbalance_check_interval_seconds);
    let tick = (session / 4).clamp(Duration::from_millis(50), Duration::from_millis(500));
    let mut active_since: Option<Instant> = None;
    let mut last_rebalance = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        if !broker.metadata.is_active_controller() {
            active_since = None;
            continue;
        }
        // A new controller has seen no heartbeat yet: every broker gets a full session.
        let since = *active_since.get_or_insert_with(Instant::now);
        let image = broker.metadata.image();
        let liveness = broker.metadata.broker_liveness();
        for b in image.live_brokers() {
            let heard_at = liveness
                .get(&b.node_id)
                .filter(|(inc, _)| *inc == b.incarnation_id)
                .map(|(_, at)| *at)
                .filter(|at| *at >= since);
            let silent = heard_at.unwrap_or(since).elapsed();
            // Unheard since the takeover: a live broker would have beaten at once. The old
            // controller's own broker is the usual case (its process died, hence the election).
            let may_probe_after = match heard_at {
                Some(_) => missed_heartbeat,
                None => missed_heartbeat.min(TAKEOVER_GRACE),
            };
            let reason = if silent > session {
                "no heartbeat within broker.session.timeout.ms"
            } else if silent > may_probe_after
                && b.node_id != broker.node_id()
                && liveness_probe::listeners_refuse(b).await
            {
                "missed a heartbeat and its listeners refuse connections (process gone)"
            } else {
                continue;
            };
            let cmd = MetadataCommand::FenceBroker {
                node_id: b.node_id,
                unclean_default: broker.config.unclean_leader_election_enable,
            };
            match broker.metadata.submit_async(cmd).await {
                Ok(r) => tracing::info!(
                    node_id = b.node_id,
                    silent_ms = silent.as_millis() as u64,
                    result = ?r,
                    "fenced broker: {reason}"
                ),
                Err(e) => tracing::warn!(node_id = b.node_id, error = %e, "fencing broker failed"),
            }
        }
        // Reassignments whose added replicas all caught up (joined the ISR) complete now.
        for t in image.topics.values() {
            for p in &t.partitions {
                if !p.adding_replicas.is_empty()
                    && p.adding_replicas.iter().all(|r| p.isr.contains(r))
                {
                    let cmd = MetadataCommand::CompleteReassignment {
                        topic: t.name.clone(),
                        partition: p.partition,
                    };
                    match broker.metadata.submit_async(cmd).await {
                        Ok(_) => {
                            tracing::info!(topic = %t.name, partition = p.partition, "reassignment completed")
                        }
                        Err(e) => {
                            tracing::warn!(topic = %t.name, partition = p.partition, error = %e, "completing reassignment failed")
                        }
                    }
                }
            }
        }
        if broker.config.auto_leader_rebalance_enable && last_rebalance.elapsed() >= rebalance_every
        {
            last_rebalance = Instant::now();
            if imbalanced(&image) {
                let cmd = MetadataCommand::ElectPreferred { partitions: None };
                match broker.metadata.submit_async(cmd).await {
                    Ok(r) => tracing::info!(result = ?r, "preferred leader election"),
                    Err(e) => tracing::warn!(error = %e, "preferred leader election failed"),
                }
            }
        }
    }
}

/// Some partition is led by another replica while its preferred one could lead.
fn imbalanced(image: &MetadataImage) -> bool {
    image.topics.values().any(|t| {
        t.partitions.iter().any(|p| {
            p.replicas.first().is_some_and(|&pref| {
                p.leader != pref && p.isr.contains(&pref) && image.is_live(pref)
            })
        })
    })
}
