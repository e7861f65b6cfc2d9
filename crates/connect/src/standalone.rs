//! `strom connect standalone worker.properties connector.properties...` (`ConnectStandalone`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config_def::ConfigMap;
use crate::connector::Plugins;
use crate::herder::{StandaloneHerder, TargetState};
use crate::properties::{load_connector_config, load_properties};
use crate::rest::{RestState, router};
use crate::worker::Worker;
use crate::worker_config::WorkerConfig;

/// Runs a standalone worker until SIGINT or SIGTERM; connectors from the files start at once.
pub fn run_standalone(
    worker_properties: &Path,
    connector_files: &[PathBuf],
    plugins: Plugins,
) -> anyhow::Result<()> {
    let props = load_properties(worker_properties)?;
    let config = WorkerConfig::standalone(props)
        .with_context(|| format!("worker config {}", worker_properties.display()))?;
    if config
        .props
        .get("plugin.path")
        .is_some_and(|p| !p.trim().is_empty())
    {
        tracing::info!("plugin.path is ignored: strom's connectors are built in");
    }
    let mut connectors: Vec<(String, ConfigMap)> = Vec::new();
    for f in connector_files {
        let cfg = load_connector_config(f)?;
        let name = cfg
            .get("name")
            .filter(|n| !n.trim().is_empty())
            .cloned()
            .with_context(|| format!("connector config {} has no name", f.display()))?;
        connectors.push((name.trim().to_string(), cfg));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("strom-connect")
        .build()?;
    runtime.block_on(serve(config, connectors, plugins))
}

async fn serve(
    config: WorkerConfig,
    connectors: Vec<(String, ConfigMap)>,
    plugins: Plugins,
) -> anyhow::Result<()> {
    // Bind first: a port in use should fail before any connector starts.
    let listeners = bind_listeners(&config).await?;
    let bootstrap = config.bootstrap_servers.clone();
    let worker = Arc::new(Worker::new(config)?);
    let herder = Arc::new(StandaloneHerder::new(worker, plugins));
    let kafka_cluster_id = tokio::task::spawn_blocking(move || cluster_id(&bootstrap))
        .await
        .ok()
        .flatten();

    for (name, cfg) in connectors {
        let h = herder.clone();
        let n = name.clone();
        tokio::task::spawn_blocking(move || {
            h.put_connector_config(&n, cfg, false, TargetState::Started)
        })
        .await?
        .map_err(|e| anyhow::anyhow!("connector {name}: {e}"))?;
    }

    let state = Arc::new(RestState {
        herder: herder.clone(),
        kafka_cluster_id,
    });
    let app = router(state);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for l in listeners {
        let mut rx = stop_rx.clone();
        let app = app.clone();
        servers.push(tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
        }));
    }
    shutdown_signal().await;
    tracing::info!("stopping: committing offsets and stopping tasks");
    let _ = stop_tx.send(true);
    let h = herder.clone();
    tokio::task::spawn_blocking(move || h.shutdown()).await?;
    for s in servers {
        let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Binds the REST listeners (`listeners`).
pub(crate) async fn bind_listeners(
    config: &WorkerConfig,
) -> anyhow::Result<Vec<tokio::net::TcpListener>> {
    let mut listeners = Vec::new();
    for (host, port) in &config.listeners {
        let addr = if host.is_empty() {
            format!("0.0.0.0:{port}")
        } else {
            format!("{host}:{port}")
        };
        let l = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (listeners)"))?;
        tracing::info!(%addr, "REST API listening");
        listeners.push(l);
    }
    Ok(listeners)
}

/// The Kafka cluster id for `GET /`; absent when the brokers cannot be reached yet.
pub(crate) fn cluster_id(bootstrap: &str) -> Option<String> {
    use rdkafka::producer::{BaseProducer, Producer};
    let p: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    p.client().fetch_cluster_id(Duration::from_secs(10))
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
