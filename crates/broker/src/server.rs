//! Start-up and shutdown: open the broker, bind its listeners, accept connections.

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::connection;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;

/// A started node: its broker state and the addresses its listeners are bound to.
pub struct RunningServer {
    pub broker: Arc<Broker>,
    pub local_addrs: Vec<SocketAddr>,
    /// Where `metrics.listener` is bound, when set.
    pub metrics_addr: Option<SocketAddr>,
}

impl RunningServer {
    /// Flush and close every log (the next start skips recovery).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let b = self.broker.clone();
        tokio::task::spawn_blocking(move || b.shutdown())
            .await
            .context("closing logs")?;
        Ok(())
    }
}

/// Open the data directory, bind the listeners and start serving; returns once connections are
/// accepted. Tests use it with port 0 to run a broker in-process.
pub async fn start(config: BrokerConfig) -> anyhow::Result<RunningServer> {
    let started = Instant::now();
    let broker = if config.is_cluster() {
        open_cluster_node(config)?
    } else {
        Broker::open(config)?
    };
    let mut listeners = Vec::new();
    let mut local_addrs = Vec::new();
    for l in broker.config.client_listeners() {
        let addr = l.bind_addr();
        let socket = TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding listener {l} (listeners)"))?;
        local_addrs.push(socket.local_addr()?);
        listeners.push((Arc::<str>::from(l.name.as_str()), socket));
    }
    let metrics_socket = match &broker.config.metrics_listener {
        Some(l) => Some(
            TcpListener::bind(l.bind_addr())
                .await
                .with_context(|| format!("binding metrics endpoint {l} (metrics.listener)"))?,
        ),
        None => None,
    };
    let metrics_addr = metrics_socket
        .as_ref()
        .map(|s| s.local_addr())
        .transpose()?;
    tracing::info!(
        node_id = broker.node_id(),
        process_roles = %broker.config.process_roles.join(","),
        cluster_id = %broker.metadata.cluster_id(),
        listeners = %broker.config.client_listeners().iter().map(|l| l.to_string()).collect::<Vec<_>>().join(","),
        log_dir = %broker.config.data_dir().display(),
        metrics = %metrics_addr.map_or("off".to_string(), |a| format!("http://{a}/metrics")),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "strom started"
    );
    for (name, socket) in listeners {
        tokio::spawn(accept_loop(broker.clone(), name, socket));
    }
    if let Some(socket) = metrics_socket {
        tokio::spawn(crate::metrics::http::serve(broker.clone(), socket));
    }
    tokio::spawn(abort_expired_transactions(broker.clone()));
    crate::txn::expiration::spawn(&broker)?;
    crate::log_manager::spawn(&broker);
    crate::replica::spawn(&broker);
    crate::controller::spawn(&broker);
    Ok(RunningServer {
        broker,
        local_addrs,
        metrics_addr,
    })
}

/// A node of a cluster. A controller (process.roles includes controller) binds the CONTROLLER
/// listener and starts the Raft metadata quorum on it; a broker-only node follows the quorum as
/// an observer. Then the broker opens. The quorum forms in the background; this does not wait.
fn open_cluster_node(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
    let dir = config.data_dir().to_path_buf();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating log.dirs directory {}", dir.display()))?;
    let metadata = if config.is_controller() {
        let listener = config
            .controller_listener()
            .context("a controller needs a CONTROLLER listener (listeners)")?;
        let socket = std::net::TcpListener::bind(listener.bind_addr())
            .with_context(|| format!("binding controller listener {listener} (listeners)"))?;
        strom_meta::MetadataStore::open_cluster(
            &dir,
            config.node_id,
            strom_meta::ClusterOptions {
                voters: config.voter_addresses(),
                listener: socket,
                session_timeout: std::time::Duration::from_millis(config.broker_session_timeout_ms),
            },
        )
        .with_context(|| format!("opening the metadata quorum in {}", dir.display()))?
    } else {
        strom_meta::MetadataStore::open_observer(
            &dir,
            config.node_id,
            strom_meta::ObserverOptions {
                voters: config.voter_addresses(),
                bootstrap: config.controller_bootstrap_addresses(),
            },
        )
        .with_context(|| format!("following the metadata quorum from {}", dir.display()))?
    };
    Broker::open_with(config, metadata)
}

/// Run a node until SIGTERM or Ctrl-C, then flush and close every log.
pub async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    let server = start(config).await?;
    wait_for_shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn accept_loop(broker: Arc<Broker>, listener_name: Arc<str>, socket: TcpListener) {
    loop {
        match socket.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(connection::serve(
                    broker.clone(),
                    stream,
                    peer,
                    listener_name.clone(),
                ));
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Kafka checks every `transaction.abort.timed.out.transaction.cleanup.interval.ms` (10 s); a
/// second keeps a stuck transaction from pinning the last stable offset for long.
async fn abort_expired_transactions(broker: Arc<Broker>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let b = broker.clone();
        if tokio::task::spawn_blocking(move || b.txn.abort_expired(&b))
            .await
            .is_err()
        {
            tracing::error!("aborting timed-out transactions panicked");
        }
    }
}

async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
