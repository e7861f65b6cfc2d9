//! StreamsConfig with Kafka Streams' key names and defaults. Parsing only; the runtime reads it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Result, StreamsError};
use crate::metadata::HostInfo;

pub const APPLICATION_ID: &str = "application.id";
pub const BOOTSTRAP_SERVERS: &str = "bootstrap.servers";
pub const NUM_STREAM_THREADS: &str = "num.stream.threads";
pub const STATE_DIR: &str = "state.dir";
pub const PROCESSING_GUARANTEE: &str = "processing.guarantee";
pub const COMMIT_INTERVAL_MS: &str = "commit.interval.ms";
pub const CACHE_MAX_BYTES_BUFFERING: &str = "cache.max.bytes.buffering";
pub const STATESTORE_CACHE_MAX_BYTES: &str = "statestore.cache.max.bytes";
pub const REPLICATION_FACTOR: &str = "replication.factor";
pub const NUM_STANDBY_REPLICAS: &str = "num.standby.replicas";
pub const DESERIALIZATION_EXCEPTION_HANDLER: &str = "deserialization.exception.handler";
pub const DEFAULT_DESERIALIZATION_EXCEPTION_HANDLER: &str =
    "default.deserialization.exception.handler";
pub const APPLICATION_SERVER: &str = "application.server";
pub const MAX_TASK_IDLE_MS: &str = "max.task.idle.ms";
/// strom's own key: serve interactive queries over HTTP on `application.server`.
pub const QUERY_HTTP_ENABLED: &str = "strom.query.http.enabled";
/// strom's own key: where the HTTP query endpoint listens, when not on `application.server`
/// itself (e.g. `0.0.0.0:8080` behind an advertised name).
pub const QUERY_HTTP_BIND: &str = "strom.query.http.bind";
pub const AT_LEAST_ONCE: &str = "at_least_once";
pub const EXACTLY_ONCE_V2: &str = "exactly_once_v2";

/// processing.guarantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    AtLeastOnce,
    ExactlyOnceV2,
}

/// What to do with a record whose key or value cannot be deserialized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeserializationHandler {
    /// Kafka's LogAndContinueExceptionHandler: log, skip the record, move on.
    LogAndContinue,
    /// Kafka's LogAndFailExceptionHandler (the default): stop the stream thread with an error.
    LogAndFail,
}

/// Kafka Streams' configuration.
#[derive(Clone, Debug)]
pub struct StreamsConfig {
    pub application_id: String,
    pub bootstrap_servers: String,
    pub num_stream_threads: usize,
    pub state_dir: PathBuf,
    pub processing_guarantee: ProcessingGuarantee,
    pub commit_interval_ms: u64,
    pub cache_max_bytes: usize,
    pub replication_factor: i32,
    pub deserialization_handler: DeserializationHandler,
    /// Kafka's `max.task.idle.ms` (KIP-695 semantics): a task with some input partitions buffered
    /// and others empty waits while an empty one's fetched lag is unknown or positive, and once
    /// it is 0 waits this long more for new data there (the default 0: not at all). -1 never
    /// waits: the task picks by timestamp among the records it has fetched.
    pub max_task_idle_ms: i64,
    /// Kafka's `num.standby.replicas` (default 0): how many other instances keep a warm copy of
    /// each task's changelogged stores, so a takeover restores only the changelog's tail.
    pub num_standby_replicas: usize,
    /// Kafka's `application.server`: the `host:port` this instance answers interactive queries
    /// on, told to the other instances of the application through the consumer group.
    pub application_server: Option<HostInfo>,
    /// `strom.query.http.enabled`: serve the HTTP query endpoint on `application_server`.
    pub query_http_enabled: bool,
    /// `strom.query.http.bind`: the endpoint's listen address; default `application_server`.
    pub query_http_bind: Option<HostInfo>,
    /// `consumer.*`, `producer.*`, `admin.*` overrides, passed to that client without the prefix.
    pub client_overrides: BTreeMap<String, String>,
}

fn parse<T: std::str::FromStr>(key: &str, v: &str) -> Result<T> {
    v.trim().parse().map_err(|_| StreamsError::Config {
        key: key.into(),
        reason: format!("'{v}' is not a valid number"),
    })
}

impl StreamsConfig {
    /// Builds the config from Kafka-named properties. Unknown keys are an error, as a typo would
    /// otherwise be silently ignored.
    pub fn from_props<I, K, V>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let props: BTreeMap<String, String> = props
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let required = |k: &str| -> Result<String> {
            match props.get(k) {
                Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                _ => Err(StreamsError::Config {
                    key: k.into(),
                    reason: "missing required configuration with no default value".into(),
                }),
            }
        };
        let application_id = required(APPLICATION_ID)?;
        if !application_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(StreamsError::Config {
                key: APPLICATION_ID.into(),
                reason: format!(
                    "'{application_id}' may only hold [a-zA-Z0-9._-] (it names topics)"
                ),
            });
        }
        let mut c = StreamsConfig {
            bootstrap_servers: required(BOOTSTRAP_SERVERS)?,
            application_id,
            num_stream_threads: 1,
            state_dir: std::env::temp_dir().join("kafka-streams"),
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            commit_interval_ms: 30_000,
            cache_max_bytes: 10 * 1024 * 1024,
            replication_factor: -1,
            deserialization_handler: DeserializationHandler::LogAndFail,
            max_task_idle_ms: 0,
            num_standby_replicas: 0,
            application_server: None,
            query_http_enabled: false,
            query_http_bind: None,
            client_overrides: BTreeMap::new(),
        };
        let mut commit_set = false;
        for (k, v) in &props {
            match k.as_str() {
                APPLICATION_ID | BOOTSTRAP_SERVERS => {}
                NUM_STREAM_THREADS => {
                    c.num_stream_threads = parse(k, v)?;
                    if c.num_stream_threads == 0 {
                        return Err(StreamsError::Config {
                            key: k.clone(),
                            reason: "must be at least 1".into(),
                        });
                    }
                }
                STATE_DIR => c.state_dir = PathBuf::from(v),
                PROCESSING_GUARANTEE => {
                    c.processing_guarantee = match v.trim() {
                        AT_LEAST_ONCE => ProcessingGuarantee::AtLeastOnce,
                        EXACTLY_ONCE_V2 => ProcessingGuarantee::ExactlyOnceV2,
                        other => {
                            return Err(StreamsError::Config {
                                key: k.clone(),
                                reason: format!(
                                    "'{other}' is not one of [at_least_once, exactly_once_v2]"
                                ),
                            });
                        }
                    }
                }
                COMMIT_INTERVAL_MS => {
                    c.commit_interval_ms = parse(k, v)?;
                    commit_set = true;
                }
                CACHE_MAX_BYTES_BUFFERING | STATESTORE_CACHE_MAX_BYTES => {
                    c.cache_max_bytes = parse(k, v)?
                }
                REPLICATION_FACTOR => c.replication_factor = parse(k, v)?,
                NUM_STANDBY_REPLICAS => c.num_standby_replicas = parse(k, v)?,
                DESERIALIZATION_EXCEPTION_HANDLER | DEFAULT_DESERIALIZATION_EXCEPTION_HANDLER => {
                    c.deserialization_handler = match v.trim().rsplit('.').next().unwrap_or("") {
                        "LogAndContinueExceptionHandler" | "log-and-continue" => {
                            DeserializationHandler::LogAndContinue
                        }
                        "LogAndFailExceptionHandler" | "log-and-fail" => {
                            DeserializationHandler::LogAndFail
                        }
                        _ => {
                            return Err(StreamsError::Config {
                                key: k.clone(),
                                reason: format!(
                                    "'{v}' is not LogAndContinueExceptionHandler or LogAndFailExceptionHandler"
                                ),
                            });
                        }
                    }
                }
                MAX_TASK_IDLE_MS => {
                    c.max_task_idle_ms = parse(k, v)?;
                    if c.max_task_idle_ms < -1 {
                        return Err(StreamsError::Config {
                            key: k.clone(),
                            reason: "must be -1, 0 or a positive number of milliseconds".into(),
                        });
                    }
                }
                APPLICATION_SERVER => {
                    if !v.trim().is_empty() {
                        c.application_server =
                            Some(HostInfo::parse(v).map_err(|reason| StreamsError::Config {
                                key: k.clone(),
                                reason,
                            })?);
                    }
                }
                QUERY_HTTP_BIND => {
                    c.query_http_bind =
                        Some(HostInfo::parse(v).map_err(|reason| StreamsError::Config {
                            key: k.clone(),
                            reason,
                        })?);
                }
                QUERY_HTTP_ENABLED => {
                    c.query_http_enabled = match v.trim() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(StreamsError::Config {
                                key: k.clone(),
                                reason: format!("'{other}' is not true or false"),
                            });
                        }
                    }
                }
                other
                    if other.starts_with("consumer.")
                        || other.starts_with("producer.")
                        || other.starts_with("admin.") =>
                {
                    c.client_overrides.insert(other.to_string(), v.clone());
                }
                other => {
                    return Err(StreamsError::Config {
                        key: other.to_string(),
                        reason: "unknown configuration (client settings take a consumer./producer./admin. prefix)".into(),
                    });
                }
            }
        }
        if c.query_http_enabled && c.application_server.is_none() {
            return Err(StreamsError::Config {
                key: QUERY_HTTP_ENABLED.into(),
                reason: "the HTTP query endpoint binds to application.server, which is not set"
                    .into(),
            });
        }
        if !commit_set && c.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2 {
            // Kafka's default under EOS: commit often, since output is invisible until then.
            c.commit_interval_ms = 100;
        }
        Ok(c)
    }

    /// Overrides for one client ("consumer", "producer", "admin"), prefix stripped.
    pub fn overrides(&self, client: &str) -> Vec<(String, String)> {
        let p = format!("{client}.");
        self.client_overrides
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&p).map(|k| (k.to_string(), v.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_errors() {
        let c = StreamsConfig::from_props([
            ("application.id", "app"),
            ("bootstrap.servers", "h:1"),
            ("processing.guarantee", "exactly_once_v2"),
        ])
        .unwrap();
        assert_eq!(c.commit_interval_ms, 100);
        assert_eq!(c.max_task_idle_ms, 0);
        let c = StreamsConfig::from_props([
            ("application.id", "a"),
            ("bootstrap.servers", "h:1"),
            ("max.task.idle.ms", "250"),
        ])
        .unwrap();
        assert_eq!(c.max_task_idle_ms, 250);
        // MAX_TASK_IDLE_MS_DISABLED.
        let c = StreamsConfig::from_props([
            ("application.id", "a"),
            ("bootstrap.servers", "h:1"),
            ("max.task.idle.ms", "-1"),
        ])
        .unwrap();
        assert_eq!(c.max_task_idle_ms, -1);
        let e = StreamsConfig::from_props([
            ("application.id", "a"),
            ("bootstrap.servers", "h:1"),
            ("max.task.idle.ms", "-2"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("max.task.idle.ms"), "{e}");
        let e = StreamsConfig::from_props([("bootstrap.servers", "h:1")]).unwrap_err();
        assert!(e.to_string().contains("application.id"), "{e}");
        let e = StreamsConfig::from_props([
            ("application.id", "a"),
            ("bootstrap.servers", "h:1"),
            ("processing.guarantee", "exactly_once"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("processing.guarantee"), "{e}");
        let e = StreamsConfig::from_props([
            ("application.id", "a"),
            ("bootstrap.servers", "h:1"),
            ("application.server", "no-port"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("application.server"), "{e}");
        let e = StreamsConfig::from_props([
            ("application.id", "a"),
            ("bootstrap.servers", "h:1"),
            ("strom.query.http.enabled", "true"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("application.server"), "{e}");
        let c = StreamsConfig::from_props([
            ("application.id", "a"),
            ("bootstrap.servers", "h:1"),
            ("application.server", "node-1.example:7070"),
        ])
        .unwrap();
        let h = c.application_server.unwrap();
        assert_eq!((h.host.as_str(), h.port), ("node-1.example", 7070));
    }

    #[test]
    fn num_standby_replicas() {
        let base = [("application.id", "a"), ("bootstrap.servers", "h:1")];
        let c = StreamsConfig::from_props(base).unwrap();
        assert_eq!(c.num_standby_replicas, 0);
        let c = StreamsConfig::from_props(base.into_iter().chain([("num.standby.replicas", "2")]))
            .unwrap();
        assert_eq!(c.num_standby_replicas, 2);
        for bad in ["-1", "one"] {
            let e =
                StreamsConfig::from_props(base.into_iter().chain([("num.standby.replicas", bad)]))
                    .unwrap_err();
            assert!(e.to_string().contains("num.standby.replicas"), "{bad}: {e}");
        }
    }
}
