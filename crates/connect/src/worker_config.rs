//! Worker configuration (`WorkerConfig`, `StandaloneConfig`, `RestServerConfig`): Kafka Connect's
//! keys and defaults.

use std::path::PathBuf;

use crate::config_def::{ConfigDef, ConfigMap, ConfigType, Importance, Validator, parse_list};
use crate::error::{ConnectError, Result};

/// The worker config keys strom reads, with Kafka's defaults and docs.
pub fn worker_config_def() -> ConfigDef {
    let def = ConfigDef::new()
        .define(
            "bootstrap.servers",
            ConfigType::List,
            Some("localhost:9092"),
            Importance::High,
            "A list of host/port pairs used to establish the initial connection to the Kafka cluster.",
        )
        .define(
            "key.converter",
            ConfigType::Class,
            None,
            Importance::High,
            "Converter class used to convert between Kafka Connect format and the serialized form \
             that is written to Kafka (record keys).",
        )
        .define(
            "value.converter",
            ConfigType::Class,
            None,
            Importance::High,
            "Converter class for record values.",
        )
        .define(
            "header.converter",
            ConfigType::Class,
            Some("org.apache.kafka.connect.storage.SimpleHeaderConverter"),
            Importance::Low,
            "HeaderConverter class: SimpleHeaderConverter (default), StringConverter or ByteArrayConverter; \
             all three keep header bytes as they are.",
        )
        .define(
            "offset.storage.file.filename",
            ConfigType::String,
            None,
            Importance::High,
            "Standalone mode: the file to store source connector offsets in.",
        )
        .with_validator(Validator::NonEmptyString)
        .define(
            "offset.flush.interval.ms",
            ConfigType::Long,
            Some("60000"),
            Importance::Low,
            "Interval at which to try committing offsets for tasks.",
        )
        .with_validator(Validator::Range {
            min: Some(0.0),
            max: None,
        })
        .define(
            "offset.flush.timeout.ms",
            ConfigType::Long,
            Some("5000"),
            Importance::Low,
            "Maximum number of milliseconds to wait for records to flush before an offset commit.",
        )
        .define(
            "task.shutdown.graceful.timeout.ms",
            ConfigType::Long,
            Some("5000"),
            Importance::Low,
            "Amount of time to wait for tasks to shut down gracefully.",
        )
        .define(
            "listeners",
            ConfigType::List,
            Some("http://:8083"),
            Importance::Low,
            "List of comma-separated URIs the REST API will listen on (http only).",
        )
        .define(
            "rest.advertised.host.name",
            ConfigType::String,
            Some(""),
            Importance::Low,
            "The hostname given out to other workers and used in worker_id.",
        )
        .define(
            "rest.advertised.port",
            ConfigType::Int,
            Some("0"),
            Importance::Low,
            "The port given out to other workers and used in worker_id.",
        )
        .define(
            "plugin.path",
            ConfigType::List,
            Some(""),
            Importance::Low,
            "Accepted for compatibility and ignored: strom's plugins are compiled in.",
        );
    crate::task_restart::define_keys(def, true, None)
}

/// A parsed worker configuration.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub props: ConfigMap,
    pub bootstrap_servers: String,
    pub key_converter: String,
    pub value_converter: String,
    pub offset_storage_file: PathBuf,
    pub offset_flush_interval_ms: u64,
    pub offset_flush_timeout_ms: u64,
    pub task_shutdown_graceful_timeout_ms: u64,
    /// (host, port) to bind; an empty host binds every interface.
    pub listeners: Vec<(String, u16)>,
    pub worker_id: String,
}

impl WorkerConfig {
    /// Parses a standalone worker config, reporting every bad key at once.
    pub fn standalone(props: ConfigMap) -> Result<WorkerConfig> {
        let def = worker_config_def();
        let errors: Vec<String> = def
            .validate(&props)
            .into_iter()
            .flat_map(|v| v.errors)
            .collect();
        if !errors.is_empty() {
            return Err(ConnectError::config(format!(
                "invalid worker configuration: {}",
                errors.join("; ")
            )));
        }
        let get = |k: &str| def.value(&props, k).unwrap_or_default().to_string();
        check_header_converter(&get("header.converter"))?;
        let num = |k: &str| get(k).trim().parse::<u64>().unwrap_or(0);
        let mut listeners = Vec::new();
        for l in parse_list(&get("listeners")) {
            listeners.push(parse_listener(&l)?);
        }
        if listeners.is_empty() {
            listeners.push((String::new(), 8083));
        }
        let host = match get("rest.advertised.host.name") {
            h if !h.is_empty() => h,
            _ if !listeners[0].0.is_empty() => listeners[0].0.clone(),
            _ => "localhost".to_string(),
        };
        let port = match num("rest.advertised.port") {
            0 => listeners[0].1,
            p => p as u16,
        };
        Ok(WorkerConfig {
            bootstrap_servers: parse_list(&get("bootstrap.servers")).join(","),
            key_converter: get("key.converter"),
            value_converter: get("value.converter"),
            offset_storage_file: PathBuf::from(get("offset.storage.file.filename")),
            offset_flush_interval_ms: num("offset.flush.interval.ms"),
            offset_flush_timeout_ms: num("offset.flush.timeout.ms"),
            task_shutdown_graceful_timeout_ms: num("task.shutdown.graceful.timeout.ms"),
            listeners,
            worker_id: format!("{host}:{port}"),
            props,
        })
    }

    /// The keys under a prefix, with the prefix removed (`originalsWithPrefix`).
    pub fn with_prefix(props: &ConfigMap, prefix: &str) -> ConfigMap {
        props
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_string(), v.clone())))
            .collect()
    }
}

/// Header converters whose bytes equal strom's byte-level headers: SimpleHeaderConverter writes
/// a string header as its UTF-8 text and reads text back as it is; StringConverter and
/// ByteArrayConverter pass text and bytes through. Others (JsonConverter) would re-encode header
/// values, which strom does not do, so they are refused instead of silently ignored.
const HEADER_CONVERTERS: &[&str] = &[
    "org.apache.kafka.connect.storage.SimpleHeaderConverter",
    "org.apache.kafka.connect.storage.StringConverter",
    "org.apache.kafka.connect.converters.ByteArrayConverter",
];

fn check_header_converter(class: &str) -> Result<()> {
    let class = class.trim();
    let known = HEADER_CONVERTERS
        .iter()
        .any(|full| class == *full || full.rsplit('.').next() == Some(class));
    if known {
        return Ok(());
    }
    Err(ConnectError::config(format!(
        "Invalid value {class} for configuration header.converter: strom supports only {}",
        HEADER_CONVERTERS.join(", ")
    )))
}

/// Parses `http://host:port` (host may be empty); https is not served yet.
fn parse_listener(l: &str) -> Result<(String, u16)> {
    let bad = |why: &str| {
        ConnectError::config(format!(
            "Invalid value {l} for configuration listeners: {why}"
        ))
    };
    let rest = match l.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => {
            return Err(bad(&format!("unsupported protocol {scheme} (http only)")));
        }
        None => return Err(bad("expected a URI such as http://:8083")),
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("missing port"))?;
    let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let mut p = ConfigMap::new();
        p.insert("key.converter".into(), "JsonConverter".into());
        let err = WorkerConfig::standalone(p.clone()).unwrap_err().to_string();
        assert!(
            err.contains("value.converter") && err.contains("offset.storage.file.filename"),
            "{err}"
        );
        p.insert("value.converter".into(), "JsonConverter".into());
        p.insert("offset.storage.file.filename".into(), "/tmp/x".into());
        p.insert("listeners".into(), "http://127.0.0.1:18083".into());
        p.insert("header.converter".into(), "JsonConverter".into());
        let err = WorkerConfig::standalone(p.clone()).unwrap_err().to_string();
        assert!(err.contains("header.converter"), "{err}");
        p.insert(
            "header.converter".into(),
            "org.apache.kafka.connect.storage.SimpleHeaderConverter".into(),
        );
        let w = WorkerConfig::standalone(p).expect("config");
        assert_eq!(w.listeners, vec![("127.0.0.1".to_string(), 18083)]);
        assert_eq!(w.worker_id, "127.0.0.1:18083");
        assert_eq!(w.offset_flush_interval_ms, 60000);
        assert_eq!(w.bootstrap_servers, "localhost:9092");
        assert!(parse_listener("https://:8443").is_err());
        assert_eq!(
            parse_listener("http://:8083").expect("ok"),
            (String::new(), 8083)
        );
    }
}
