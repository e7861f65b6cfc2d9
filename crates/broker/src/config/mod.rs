//! Broker configuration: Kafka's `server.properties` keys, embedded defaults, `--override`s.
//!
//! Values are checked once, at start: an invalid value stops the server with a message naming the
//! key; an unknown key is one warning.

pub mod listener;
pub mod metrics_listener;
mod roles;

pub use listener::Listener;
pub use metrics_listener::MetricsListener;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid value '{value}' for configuration {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("--override expects key=value, got '{0}'")]
    BadOverride(String),
}

/// The broker configuration strom honours today. Names follow Kafka's keys.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub process_roles: Vec<String>,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub controller_listener_names: Vec<String>,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    /// `transaction.version`: the finalized level of Kafka's feature of that name (what
    /// `kafka-storage format --feature transaction.version=N` sets). 2 offers Kafka 4's
    /// transaction protocol v2 (KIP-890) to clients that speak it; 0 or 1 keeps every client on v1.
    pub transaction_version: i16,
    pub auto_create_topics_enable: bool,
    pub log_segment_bytes: u64,
    pub log_roll_ms: i64,
    pub log_index_interval_bytes: usize,
    pub message_max_bytes: i32,
    pub socket_request_max_bytes: i32,
    pub log_message_timestamp_type: String,
    /// `log.retention.check.interval.ms`: how often retention runs over every log.
    pub log_retention_check_interval_ms: u64,
    /// `log.initial.task.delay.ms`: the wait before the first retention pass after start.
    pub log_initial_task_delay_ms: u64,
    /// `log.cleaner.enable`: whether compacted topics are cleaned.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: the cleaner's sleep when no log needs cleaning.
    pub log_cleaner_backoff_ms: u64,
    /// `log.cleaner.threads`: logs cleaned at once.
    pub log_cleaner_threads: usize,
    /// `log.cleaner.dedupe.buffer.size`: memory for the key map, shared by the cleaner threads.
    pub log_cleaner_dedupe_buffer_size: usize,
    /// `controller.quorum.voters` (`id@host:port,...`): the Raft voters of the metadata quorum.
    /// Empty means a single node with its metadata in one local file.
    pub controller_quorum_voters: BTreeMap<i32, (String, u16)>,
    /// `controller.quorum.bootstrap.servers` (`host:port,...`): controllers a broker-only node
    /// asks first; it learns the voters from them.
    pub controller_quorum_bootstrap_servers: Vec<(String, u16)>,
    /// `broker.rack`: replicas of a partition are spread across racks.
    pub broker_rack: Option<String>,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`: how often a broker heartbeats to the active controller.
    pub broker_heartbeat_interval_ms: u64,
    /// `unclean.leader.election.enable`: elect an out-of-sync replica when no ISR member is live.
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable`: move leadership back to preferred replicas periodically.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`
    pub leader_imbalance_check_interval_seconds: u64,
    /// `metrics.listener`: the Prometheus endpoint's address; `None` (the default) serves none.
    pub metrics_listener: Option<MetricsListener>,
    /// Every key set in the file or by `--override`, as given (DescribeConfigs reports sources).
    pub explicit: BTreeMap<String, String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let listeners = vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        }];
        BrokerConfig {
            node_id: 1,
            process_roles: vec!["broker".into(), "controller".into()],
            advertised_listeners: listeners.clone(),
            listeners,
            controller_listener_names: vec!["CONTROLLER".into()],
            log_dirs: vec![PathBuf::from("./strom-data")],
            num_partitions: 1,
            default_replication_factor: 1,
            transaction_version: 2,
            auto_create_topics_enable: true,
            log_segment_bytes: 1024 * 1024 * 1024,
            log_roll_ms: 168 * 60 * 60 * 1000,
            log_index_interval_bytes: 4096,
            message_max_bytes: 1024 * 1024 + 12,
            socket_request_max_bytes: 100 * 1024 * 1024,
            log_message_timestamp_type: "CreateTime".into(),
            log_retention_check_interval_ms: 300_000,
            log_initial_task_delay_ms: 30_000,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_threads: 1,
            log_cleaner_dedupe_buffer_size: 128 * 1024 * 1024,
            controller_quorum_voters: BTreeMap::new(),
            controller_quorum_bootstrap_servers: Vec::new(),
            broker_rack: None,
            broker_session_timeout_ms: 9000,
            broker_heartbeat_interval_ms: 2000,
            unclean_leader_election_enable: false,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            metrics_listener: None,
            explicit: BTreeMap::new(),
        }
    }
}

/// Keys Kafka defines that strom accepts without acting on them yet; they get an info line, not a
/// warning, so a stock `server.properties` starts quietly.
const KNOWN_NOT_HONOURED: &[&str] = &[
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "transaction.state.log.min.isr",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "delete.topic.enable",
    "metadata.log.dir",
    "min.insync.replicas",
];

impl BrokerConfig {
    /// Load `file` (if any) over the embedded defaults, then apply `overrides` (`key=value`).
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<BrokerConfig, ConfigError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            pairs.extend(
                strom_properties::parse(&text)
                    .into_iter()
                    .map(|p| (p.key, p.value)),
            );
        }
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| ConfigError::BadOverride(o.clone()))?;
            pairs.push((k.trim().to_string(), v.trim().to_string()));
        }
        Self::from_pairs(pairs)
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<BrokerConfig, ConfigError> {
        let mut c = BrokerConfig::default();
        let mut advertised_set = false;
        for (key, value) in pairs {
            c.explicit.insert(key.clone(), value.clone());
            let v = value.as_str();
            match key.as_str() {
                "node.id" | "broker.id" => {
                    c.node_id = parse_int(&key, v, 0, i32::MAX as i64)? as i32
                }
                "process.roles" => {
                    let roles = split_list(v);
                    for r in &roles {
                        if r != "broker" && r != "controller" {
                            return Err(invalid(&key, v, "roles are 'broker' and 'controller'"));
                        }
                    }
                    if roles.is_empty() {
                        return Err(invalid(&key, v, "at least one role is needed"));
                    }
                    c.process_roles = roles;
                }
                "listeners" => c.listeners = Listener::parse_list(&key, v)?,
                "advertised.listeners" => {
                    c.advertised_listeners = Listener::parse_list(&key, v)?;
                    advertised_set = true;
                }
                metrics_listener::METRICS_LISTENER_KEY => {
                    c.metrics_listener = MetricsListener::parse(&key, v)?
                }
                "controller.listener.names" => c.controller_listener_names = split_list(v),
                "controller.quorum.voters" => c.controller_quorum_voters = parse_voters(&key, v)?,
                "controller.quorum.bootstrap.servers" => {
                    c.controller_quorum_bootstrap_servers = split_list(v)
                        .iter()
                        .map(|a| parse_host_port(&key, v, a))
                        .collect::<Result<_, _>>()?
                }
                "broker.rack" => {
                    c.broker_rack = Some(v.trim().to_string()).filter(|r| !r.is_empty())
                }
                "broker.session.timeout.ms" => {
                    c.broker_session_timeout_ms = parse_int(&key, v, 1, i32::MAX as i64)? as u64
                }
                "broker.heartbeat.interval.ms" => {
                    c.broker_heartbeat_interval_ms = parse_int(&key, v, 1, i32::MAX as i64)? as u64
                }
                "unclean.leader.election.enable" => {
                    c.unclean_leader_election_enable = parse_bool(&key, v)?
                }
                "auto.leader.rebalance.enable" => {
                    c.auto_leader_rebalance_enable = parse_bool(&key, v)?
                }
                "leader.imbalance.check.interval.seconds" => {
                    c.leader_imbalance_check_interval_seconds =
                        parse_int(&key, v, 1, i32::MAX as i64)? as u64
                }
                "log.dirs" | "log.dir" => {
                    let dirs: Vec<PathBuf> = split_list(v).into_iter().map(PathBuf::from).collect();
                    if dirs.is_empty() {
                        return Err(invalid(&key, v, "at least one directory is needed"));
                    }
                    c.log_dirs = dirs;
                }
                "num.partitions" => {
                    c.num_partitions = parse_int(&key, v, 1, i32::MAX as i64)? as i32
                }
                "default.replication.factor" => {
                    c.default_replication_factor = parse_int(&key, v, 1, i16::MAX as i64)? as i16
                }
                "transaction.version" => c.transaction_version = parse_int(&key, v, 0, 2)? as i16,
                "auto.create.topics.enable" => c.auto_create_topics_enable = parse_bool(&key, v)?,
                "log.segment.bytes" => {
                    c.log_segment_bytes = parse_int(&key, v, 14, i32::MAX as i64)? as u64
                }
                "log.roll.ms" => c.log_roll_ms = parse_int(&key, v, 1, i64::MAX)?,
                "log.roll.hours" => {
                    c.log_roll_ms = parse_int(&key, v, 1, i32::MAX as i64)? * 3_600_000
                }
                "log.index.interval.bytes" => {
                    c.log_index_interval_bytes = parse_int(&key, v, 0, i32::MAX as i64)? as usize
                }
                "message.max.bytes" => {
                    c.message_max_bytes = parse_int(&key, v, 0, i32::MAX as i64)? as i32
                }
                "socket.request.max.bytes" => {
                    c.socket_request_max_bytes = parse_int(&key, v, 1, i32::MAX as i64)? as i32
                }
                "log.message.timestamp.type" => {
                    if v != "CreateTime" && v != "LogAppendTime" {
                        return Err(invalid(&key, v, "expected CreateTime or LogAppendTime"));
                    }
                    c.log_message_timestamp_type = v.to_string();
                }
                "log.retention.check.interval.ms" => {
                    c.log_retention_check_interval_ms = parse_int(&key, v, 1, i64::MAX)? as u64
                }
                "log.initial.task.delay.ms" => {
                    c.log_initial_task_delay_ms = parse_int(&key, v, 0, i64::MAX)? as u64
                }
                "log.cleaner.enable" => c.log_cleaner_enable = parse_bool(&key, v)?,
                "log.cleaner.backoff.ms" => {
                    c.log_cleaner_backoff_ms = parse_int(&key, v, 0, i64::MAX)? as u64
                }
                "log.cleaner.threads" => {
                    c.log_cleaner_threads = parse_int(&key, v, 0, 64)? as usize
                }
                "log.cleaner.dedupe.buffer.size" => {
                    c.log_cleaner_dedupe_buffer_size =
                        parse_int(&key, v, 1024 * 1024, i64::MAX)? as usize
                }
                "log.retention.hours" | "log.retention.minutes" => {
                    parse_int(&key, v, -1, i32::MAX as i64)?;
                }
                // Defaults of topic configs (topic_config.rs): their topic config's rules apply.
                k if crate::topic_config::TopicConfigs::validate_broker_key(k, v).is_some() => {
                    if let Some(Err(reason)) =
                        crate::topic_config::TopicConfigs::validate_broker_key(k, v)
                    {
                        return Err(invalid(k, v, &reason));
                    }
                    if KNOWN_NOT_HONOURED.contains(&k) {
                        tracing::info!(key = k, "configuration accepted but not acted on yet");
                    }
                }
                // Read by the group coordinator (group::GroupConfig); checked here so a bad
                // value stops the start with the key named.
                k if crate::group::config::GROUP_KEYS.contains(&k) => {
                    parse_int(&key, v, 0, i32::MAX as i64)?;
                }
                // Read by the producer id expiration (txn::expiration).
                k if crate::txn::expiration::EXPIRATION_KEYS.contains(&k) => {
                    parse_int(&key, v, 1, i64::MAX)?;
                }
                // Read by replication (replica::ReplicaConfig).
                k if crate::replica::config::REPLICA_KEYS.contains(&k) => {
                    parse_int(&key, v, 0, i32::MAX as i64)?;
                }
                // Read when the internal topics are created (Broker::create_topic).
                "offsets.topic.replication.factor" | "transaction.state.log.replication.factor" => {
                    parse_int(&key, v, 1, i16::MAX as i64)?;
                }
                crate::group::config::ASSIGNORS_KEY => {
                    crate::group::config::parse_assignors(v).map_err(|r| invalid(&key, v, &r))?;
                }
                k if KNOWN_NOT_HONOURED.contains(&k) => {
                    tracing::info!(key = k, "configuration accepted but not acted on yet");
                }
                k => tracing::warn!(key = k, "unknown configuration key ignored"),
            }
        }
        // Kafka advertises the listeners themselves when advertised.listeners is not set, minus
        // the controller listeners, which clients never see.
        if !advertised_set {
            c.advertised_listeners = c.listeners.clone();
            for l in &mut c.advertised_listeners {
                if l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::" {
                    l.host = local_hostname();
                }
            }
        }
        c.advertised_listeners
            .retain(|l| !c.controller_listener_names.contains(&l.name));
        c.check_roles()?;
        Ok(c)
    }

    /// Whether this node is part of a cluster with a Raft metadata quorum (as a voter or, for a
    /// broker-only node, an observer of it).
    pub fn is_cluster(&self) -> bool {
        !self.controller_quorum_voters.is_empty()
            || !self.controller_quorum_bootstrap_servers.is_empty()
    }

    /// `process.roles` includes broker: the node hosts partitions and serves clients.
    pub fn is_broker(&self) -> bool {
        self.process_roles.iter().any(|r| r == "broker")
    }

    /// `process.roles` includes controller: the node is a Raft voter of the metadata quorum.
    pub fn is_controller(&self) -> bool {
        self.process_roles.iter().any(|r| r == "controller")
    }

    /// The listener the controllers' Raft traffic uses (the first of controller.listener.names).
    pub fn controller_listener(&self) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| self.controller_listener_names.contains(&l.name))
    }

    /// The listeners clients connect to (not the controller's).
    pub fn client_listeners(&self) -> Vec<&Listener> {
        self.listeners
            .iter()
            .filter(|l| !self.controller_listener_names.contains(&l.name))
            .collect()
    }

    /// The first log directory holds data and metadata until multiple log dirs are supported.
    pub fn data_dir(&self) -> &Path {
        &self.log_dirs[0]
    }

    /// The address clients are told to use for `listener_name` (falls back to the first advertised).
    pub fn advertised_for(&self, listener_name: &str) -> Option<&Listener> {
        self.advertised_listeners
            .iter()
            .find(|l| l.name == listener_name)
            .or_else(|| self.advertised_listeners.first())
    }
}

/// What Kafka advertises for a wildcard listener: this machine's host name.
fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_int(key: &str, v: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| invalid(key, v, "expected an integer"))?;
    if n < min || n > max {
        return Err(invalid(key, v, &format!("must be between {min} and {max}")));
    }
    Ok(n)
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, v, "expected true or false")),
    }
}

/// `1@host:port,2@host:port`
fn parse_voters(key: &str, v: &str) -> Result<BTreeMap<i32, (String, u16)>, ConfigError> {
    let mut out = BTreeMap::new();
    for item in split_list(v) {
        let (id, addr) = item
            .split_once('@')
            .ok_or_else(|| invalid(key, v, "expected id@host:port,..."))?;
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| invalid(key, v, &format!("'{id}' is not a node id")))?;
        let (host, port) = parse_host_port(key, v, addr)?;
        if out.insert(id, (host, port)).is_some() {
            return Err(invalid(key, v, &format!("node id {id} is listed twice")));
        }
    }
    Ok(out)
}

/// `host:port` (an IPv6 host in brackets) of a list item `item` of `key`'s value `v`.
fn parse_host_port(key: &str, v: &str, item: &str) -> Result<(String, u16), ConfigError> {
    let (host, port) = item
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, v, &format!("'{item}' is not host:port")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(key, v, &format!("'{port}' is not a port")))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err(invalid(key, v, &format!("'{item}' has no host")));
    }
    Ok((host, port))
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_are_a_single_local_node() {
        let c = load(&[]).expect("defaults");
        assert_eq!(c.node_id, 1);
        assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
        assert_eq!(c.data_dir(), Path::new("./strom-data"));
        assert_eq!(c.message_max_bytes, 1048588);
    }

    #[test]
    fn kafka_kraft_file_keeps_controller_listener_private() {
        let c = load(&[
            ("process.roles", "broker,controller"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            (
                "advertised.listeners",
                "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
            ),
            ("controller.listener.names", "CONTROLLER"),
        ])
        .expect("kraft style");
        assert_eq!(c.client_listeners().len(), 1);
        assert_eq!(c.advertised_listeners.len(), 1);
        assert_eq!(c.advertised_listeners[0].host, "localhost");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let err = load(&[("num.partitions", "zero")]).expect_err("bad int");
        assert!(err.to_string().contains("num.partitions"), "{err}");
        for (key, value) in [
            ("transaction.version", "3"),
            ("offsets.topic.replication.factor", "0"),
            ("transaction.state.log.replication.factor", "x"),
        ] {
            let err = load(&[(key, value)]).expect_err("out of range");
            assert!(err.to_string().contains(key), "{err}");
        }
        assert_eq!(load(&[]).expect("defaults").transaction_version, 2);
        let err = load(&[("auto.create.topics.enable", "yes")]).expect_err("bad bool");
        assert!(
            err.to_string().contains("auto.create.topics.enable"),
            "{err}"
        );
        let err = load(&[("listeners", "PLAINTEXT//x:1")]).expect_err("bad listener");
        assert!(err.to_string().contains("listeners"), "{err}");
        let err = load(&[("advertised.listeners", "PLAINTEXT://0.0.0.0:9092")])
            .expect_err("wildcard adv");
        assert!(err.to_string().contains("advertised.listeners"), "{err}");
        assert!(BrokerConfig::load(None, &["novalue".into()]).is_err());
        let err = load(&[("controller.quorum.voters", "1@h:9093,1@g:9093")]).expect_err("dup");
        assert!(err.to_string().contains("listed twice"), "{err}");
        let err = load(&[("controller.quorum.voters", "x@h:9093")]).expect_err("bad id");
        assert!(
            err.to_string().contains("controller.quorum.voters"),
            "{err}"
        );
    }

    #[test]
    fn cluster_node_needs_a_controller_listener_and_to_be_a_voter() {
        let base = [
            ("node.id", "2"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
            ("controller.quorum.voters", "1@a:9093,2@b:9093,3@c:9093"),
            ("broker.rack", "r1"),
        ];
        let c = load(&base).expect("cluster node");
        assert!(c.is_cluster());
        assert_eq!(c.controller_quorum_voters[&3], ("c".to_string(), 9093));
        assert_eq!(c.controller_listener().expect("controller").port, 9093);
        assert_eq!(c.broker_rack.as_deref(), Some("r1"));
        let mut no_ctrl = base.to_vec();
        no_ctrl[1] = ("listeners", "PLAINTEXT://127.0.0.1:9092");
        let err = load(&no_ctrl).expect_err("no controller listener");
        assert!(err.to_string().contains("listeners"), "{err}");
        let mut not_voter = base.to_vec();
        not_voter[0] = ("node.id", "4");
        let err = load(&not_voter).expect_err("not a voter");
        assert!(
            err.to_string().contains("controller.quorum.voters"),
            "{err}"
        );
    }

    #[test]
    fn controller_only_node_has_no_client_listener() {
        let base = [
            ("node.id", "1"),
            ("process.roles", "controller"),
            ("listeners", "CONTROLLER://127.0.0.1:9093"),
            ("controller.quorum.voters", "1@a:9093,2@b:9093,3@c:9093"),
        ];
        let c = load(&base).expect("controller-only node");
        assert!(c.is_controller() && !c.is_broker() && c.is_cluster());
        assert!(c.client_listeners().is_empty());
        assert!(c.advertised_listeners.is_empty());
        let mut with_client = base.to_vec();
        with_client[2] = (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        );
        let err = load(&with_client).expect_err("client listener on a controller");
        assert!(err.to_string().contains("listeners"), "{err}");
        assert!(err.to_string().contains("serves no clients"), "{err}");
        let mut no_ctrl = base.to_vec();
        no_ctrl[2] = ("listeners", "OTHER://127.0.0.1:9093");
        let err = load(&no_ctrl).expect_err("no CONTROLLER listener");
        assert!(err.to_string().contains("listeners"), "{err}");
        let mut bootstrap_only = base.to_vec();
        bootstrap_only[3] = ("controller.quorum.bootstrap.servers", "a:9093");
        // A controller that joins a running quorum (it votes once added with AddRaftVoter).
        let joining = load(&bootstrap_only).expect("joining controller");
        assert!(joining.is_cluster() && joining.controller_quorum_voters.is_empty());
        let err = load(&[("process.roles", "controller")]).expect_err("single controller");
        assert!(err.to_string().contains("process.roles"), "{err}");
    }

    #[test]
    fn broker_only_node_follows_the_quorum_without_voting() {
        let base = [
            ("node.id", "4"),
            ("process.roles", "broker"),
            ("listeners", "PLAINTEXT://127.0.0.1:9092"),
            ("controller.quorum.voters", "1@a:9093,2@b:9093,3@c:9093"),
        ];
        let c = load(&base).expect("broker-only node");
        assert!(c.is_broker() && !c.is_controller() && c.is_cluster());
        assert!(c.controller_listener().is_none());
        assert_eq!(c.voter_addresses()[&2], "b:9093");
        let bootstrap = load(&[
            ("node.id", "4"),
            ("process.roles", "broker"),
            ("listeners", "PLAINTEXT://127.0.0.1:9092"),
            ("controller.quorum.bootstrap.servers", "a:9093, [::1]:9094"),
        ])
        .expect("bootstrap servers only");
        assert!(bootstrap.is_cluster());
        assert_eq!(
            bootstrap.controller_bootstrap_addresses(),
            vec!["a:9093".to_string(), "[::1]:9094".to_string()]
        );
        let err = load(&[("controller.quorum.bootstrap.servers", "a")]).expect_err("no port");
        assert!(
            err.to_string()
                .contains("controller.quorum.bootstrap.servers"),
            "{err}"
        );
        let mut voter = base.to_vec();
        voter[0] = ("node.id", "2");
        let err = load(&voter).expect_err("broker-only voter");
        assert!(
            err.to_string().contains("controller.quorum.voters"),
            "{err}"
        );
        assert!(err.to_string().contains("no controller role"), "{err}");
        let mut ctrl_listener = base.to_vec();
        ctrl_listener[2] = (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        );
        let err = load(&ctrl_listener).expect_err("CONTROLLER listener on a broker");
        assert!(err.to_string().contains("listeners"), "{err}");
        let err = load(&[("process.roles", "broker")]).expect_err("no quorum to follow");
        assert!(err.to_string().contains("process.roles"), "{err}");
        assert!(
            err.to_string()
                .contains("controller.quorum.bootstrap.servers"),
            "{err}"
        );
    }
}
