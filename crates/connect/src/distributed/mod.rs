//! Distributed mode (`strom connect distributed worker.properties`): workers sharing a `group.id`
//! form a Connect cluster through the broker's group coordinator (protocol type `connect`), keep
//! connector configs in the config topic, source offsets in the offset topic and states in the
//! status topic, and move the work of a worker that leaves or dies to the others.
//!
//! * [`protocol`]: the group protocol's metadata and assignment bytes (Kafka's `ConnectProtocol`).
//! * [`wire`], [`membership`]: the hand-written group client (JoinGroup, SyncGroup, Heartbeat,
//!   LeaveGroup); librdkafka cannot join a group whose protocol type is not `consumer`.
//! * [`kafka_log`]: an internal topic read to its end and written through a producer.
//! * [`config_store`], [`offset_store`], [`status_store`]: the three internal topics in Kafka's
//!   key and value formats.
//! * [`herder`]: the `DistributedHerder` that ties them to the worker and the REST API.
//!
//! This module must not reach broker internals: everything goes over the Kafka protocol.

pub mod config_store;
pub mod herder;
pub mod kafka_log;
pub mod membership;
pub mod offset_store;
pub mod protocol;
pub mod status_store;
pub mod wire;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;

use crate::config_def::ConfigMap;
use crate::connector::Plugins;
use crate::herder_api::Herder;
use crate::properties::load_properties;
use crate::rest::{RestState, router};
use crate::worker::Worker;
use crate::worker_config::WorkerConfig;
use config_store::KafkaConfigBackingStore;
use herder::DistributedHerder;
use kafka_log::{KafkaBasedLog, TopicSettings, ensure_topic};
use membership::{GroupSettings, WorkerGroupMember};
use offset_store::KafkaOffsetBackingStore;
use status_store::KafkaStatusBackingStore;

/// The distributed worker's own settings (`DistributedConfig`), with Kafka's defaults.
#[derive(Clone, Debug)]
pub struct DistributedConfig {
    pub worker: WorkerConfig,
    pub group: GroupSettings,
    pub config_topic: TopicSettings,
    pub offset_topic: TopicSettings,
    pub status_topic: TopicSettings,
}

impl DistributedConfig {
    /// Parses a worker config; every missing or bad key is named.
    pub fn parse(mut props: ConfigMap) -> anyhow::Result<DistributedConfig> {
        let mut errors = Vec::new();
        for k in [
            "group.id",
            "config.storage.topic",
            "offset.storage.topic",
            "status.storage.topic",
        ] {
            if props.get(k).is_none_or(|v| v.trim().is_empty()) {
                errors.push(format!(
                    "Missing required configuration \"{k}\" which has no default value."
                ));
            }
        }
        let int = |props: &ConfigMap, errors: &mut Vec<String>, k: &str, default: i64| -> i64 {
            match props.get(k).map(|v| v.trim()) {
                None | Some("") => default,
                Some(v) => v.parse::<i64>().unwrap_or_else(|_| {
                    errors.push(format!(
                        "Invalid value {v} for configuration {k}: Not a number of type INT"
                    ));
                    default
                }),
            }
        };
        let topic = |prefix: &str, partitions: i64, errors: &mut Vec<String>| {
            let p = int(&props, errors, &format!("{prefix}.partitions"), partitions);
            let rf = int(&props, errors, &format!("{prefix}.replication.factor"), 3);
            if p < 1 && p != -1 {
                errors.push(format!(
                    "Invalid value {p} for configuration {prefix}.partitions: must be at least 1, \
                     or -1 to use the broker's default"
                ));
            }
            if rf < 1 && rf != -1 {
                errors.push(format!(
                    "Invalid value {rf} for configuration {prefix}.replication.factor: must be at \
                     least 1, or -1 to use the broker's default"
                ));
            }
            TopicSettings {
                name: props
                    .get(&format!("{prefix}.topic"))
                    .map(|t| t.trim().to_string())
                    .unwrap_or_default(),
                partitions: p as i32,
                replication_factor: rf as i32,
            }
        };
        let config_topic = TopicSettings {
            partitions: 1,
            ..topic("config.storage", 1, &mut errors)
        };
        let offset_topic = topic("offset.storage", 25, &mut errors);
        let status_topic = topic("status.storage", 5, &mut errors);
        let session = int(&props, &mut errors, "session.timeout.ms", 10_000);
        let heartbeat = int(&props, &mut errors, "heartbeat.interval.ms", 3_000);
        let rebalance = int(&props, &mut errors, "rebalance.timeout.ms", 60_000);
        if !errors.is_empty() {
            anyhow::bail!("invalid worker configuration: {}", errors.join("; "));
        }
        // Standalone's offsets file does not apply: source offsets live in the offset topic.
        props
            .entry("offset.storage.file.filename".to_string())
            .or_insert_with(|| "(offset.storage.topic)".to_string());
        let worker = WorkerConfig::standalone(props.clone())?;
        let group = GroupSettings {
            bootstrap_servers: worker.bootstrap_servers.clone(),
            group_id: props
                .get("group.id")
                .map(|g| g.trim().to_string())
                .unwrap_or_default(),
            session_timeout_ms: session as i32,
            rebalance_timeout_ms: rebalance as i32,
            heartbeat_interval_ms: heartbeat.max(1) as u64,
        };
        Ok(DistributedConfig {
            worker,
            group,
            config_topic,
            offset_topic,
            status_topic,
        })
    }
}

/// Runs a distributed worker until SIGINT or SIGTERM.
pub fn run_distributed(worker_properties: &Path, plugins: Plugins) -> anyhow::Result<()> {
    let props = load_properties(worker_properties)?;
    let config = DistributedConfig::parse(props)
        .with_context(|| format!("worker config {}", worker_properties.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("strom-connect")
        .build()?;
    runtime.block_on(serve(config, plugins))
}

async fn serve(config: DistributedConfig, plugins: Plugins) -> anyhow::Result<()> {
    let listeners = crate::standalone::bind_listeners(&config.worker).await?;
    let mut base = ClientConfig::new();
    base.set("bootstrap.servers", &config.worker.bootstrap_servers);
    for t in [
        &config.config_topic,
        &config.offset_topic,
        &config.status_topic,
    ] {
        ensure_topic(&base, t)
            .await
            .with_context(|| format!("internal topic {}", t.name))?;
    }
    let c = config.clone();
    let b = base.clone();
    let (config_store, offset_store, status_store) = tokio::task::spawn_blocking(move || {
        let cs =
            KafkaConfigBackingStore::new(KafkaBasedLog::open(&b, &c.config_topic.name, false)?)?;
        cs.read_to_end()?;
        let os = KafkaOffsetBackingStore::new(KafkaBasedLog::open(&b, &c.offset_topic.name, true)?);
        os.read_to_end()?;
        let ss = KafkaStatusBackingStore::new(KafkaBasedLog::open(&b, &c.status_topic.name, true)?);
        ss.read_to_end()?;
        Ok::<_, crate::error::ConnectError>((Arc::new(cs), Arc::new(os), Arc::new(ss)))
    })
    .await??;
    let worker = Arc::new(Worker::with_offsets(
        config.worker.clone(),
        offset_store.clone(),
    ));
    let herder = Arc::new(DistributedHerder::new(
        worker,
        plugins,
        config_store,
        offset_store,
        status_store,
    ));
    let member = WorkerGroupMember::new(config.group.clone());
    let h = herder.clone();
    let herder_thread = std::thread::Builder::new()
        .name("connect-herder".into())
        .spawn(move || h.run(member))
        .context("cannot start the herder thread")?;
    tracing::info!(worker_id = %herder.worker_id(), group = %config.group.group_id,
        "distributed worker started");

    let bootstrap = config.worker.bootstrap_servers.clone();
    let kafka_cluster_id =
        tokio::task::spawn_blocking(move || crate::standalone::cluster_id(&bootstrap))
            .await
            .ok()
            .flatten();
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
    crate::standalone::shutdown_signal().await;
    herder.request_stop();
    let _ = stop_tx.send(true);
    tokio::task::spawn_blocking(move || herder_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the herder thread panicked"))?;
    for s in servers {
        let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
    }
    tracing::info!("stopped");
    Ok(())
}
