//! DescribeConfigs (read-only for now): topic configs with their sources, and the broker's own.

use super::RequestContext;
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::topic_config::{self, ConfigType, source};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
    DescribeConfigsSynonym,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

pub fn describe_configs(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let mut out = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let wanted = |name: &str| {
                res.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            match res.resource_type {
                RESOURCE_TOPIC => {
                    let image = broker.metadata.image();
                    let Some(topic) = image.topic(&res.resource_name) else {
                        out.error_code = ErrorCode::UnknownTopicOrPartition.code();
                        out.error_message = Some(s(format!("Topic '{}' does not exist.", &*res.resource_name)));
                        return out;
                    };
                    out.configs = broker
                        .topic_configs
                        .describe(&topic.configs)
                        .into_iter()
                        .filter(|e| wanted(&e.name))
                        .map(|e| {
                            let synonyms = if req.include_synonyms {
                                synonyms_for(broker, &e.name, &e.value, e.source)
                            } else {
                                Vec::new()
                            };
                            entry(&e.name, &e.value, e.source, e.config_type, false).with_synonyms(synonyms)
                        })
                        .collect();
                }
                RESOURCE_BROKER => {
                    let name = res.resource_name.as_str();
                    if !name.is_empty() && name != broker.node_id().to_string() {
                        out.error_code = ErrorCode::InvalidRequest.code();
                        out.error_message = Some(s(format!("Unexpected broker id, expected {} or empty string, but received {name}", broker.node_id())));
                        return out;
                    }
                    out.configs = broker_entries(broker)
                        .into_iter()
                        .filter(|e| wanted(&e.name))
                        .collect();
                }
                other => {
                    out.error_code = ErrorCode::InvalidRequest.code();
                    out.error_message = Some(s(format!("Resource type {other} is not supported by DescribeConfigs yet")));
                }
            }
            out
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entry(
    name: &str,
    value: &str,
    source: i8,
    config_type: ConfigType,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(s(name))
        .with_value(Some(s(value)))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_is_sensitive(false)
        .with_config_type(config_type as i8)
}

/// Kafka lists where a value could come from, most specific first.
fn synonyms_for(broker: &Broker, name: &str, value: &str, src: i8) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    if src == source::DYNAMIC_TOPIC_CONFIG {
        out.push(
            DescribeConfigsSynonym::default()
                .with_name(s(name))
                .with_value(Some(s(value)))
                .with_source(src),
        );
    }
    let image = broker.metadata.image();
    if let Some(def) = topic_config::lookup(name) {
        for (resource, src) in [
            (broker.node_id().to_string(), source::DYNAMIC_BROKER_CONFIG),
            (String::new(), source::DYNAMIC_DEFAULT_BROKER_CONFIG),
        ] {
            if let Some(v) = image
                .broker_configs
                .get(&resource)
                .and_then(|m| m.get(def.broker_key))
            {
                out.push(
                    DescribeConfigsSynonym::default()
                        .with_name(s(def.broker_key))
                        .with_value(Some(s(v.clone())))
                        .with_source(src),
                );
            }
        }
    }
    if let Some(def) = topic_config::lookup(name)
        && let Some(v) = broker.config.explicit.get(def.broker_key)
    {
        out.push(
            DescribeConfigsSynonym::default()
                .with_name(s(def.broker_key))
                .with_value(Some(s(v.clone())))
                .with_source(source::STATIC_BROKER_CONFIG),
        );
    }
    // Last, the broker key's built-in default, as Kafka lists it; `log.retention.ms` and
    // `log.roll.ms` have none in Kafka (their `.hours` forms carry the default).
    if let Some(def) = topic_config::lookup(name)
        && !matches!(def.broker_key, "log.retention.ms" | "log.roll.ms")
        && let Some((v, source::DEFAULT_CONFIG)) = broker.topic_configs.default_of(name)
    {
        out.push(
            DescribeConfigsSynonym::default()
                .with_name(s(def.broker_key))
                .with_value(Some(s(v)))
                .with_source(source::DEFAULT_CONFIG),
        );
    }
    out
}

/// The broker keys strom honours, with their values and whether they were set or defaulted.
fn broker_entries(broker: &Broker) -> Vec<DescribeConfigsResourceResult> {
    let c = &broker.config;
    let list = |v: Vec<String>| v.join(",");
    let values: Vec<(&str, String, ConfigType)> = vec![
        (
            "advertised.listeners",
            list(
                c.advertised_listeners
                    .iter()
                    .map(|l| l.to_string())
                    .collect(),
            ),
            ConfigType::String,
        ),
        (
            "auto.create.topics.enable",
            c.auto_create_topics_enable.to_string(),
            ConfigType::Boolean,
        ),
        (
            "default.replication.factor",
            c.default_replication_factor.to_string(),
            ConfigType::Int,
        ),
        (
            "listeners",
            list(c.listeners.iter().map(|l| l.to_string()).collect()),
            ConfigType::String,
        ),
        (
            "log.dirs",
            list(c.log_dirs.iter().map(|d| d.display().to_string()).collect()),
            ConfigType::String,
        ),
        (
            "log.index.interval.bytes",
            c.log_index_interval_bytes.to_string(),
            ConfigType::Int,
        ),
        (
            "log.message.timestamp.type",
            c.log_message_timestamp_type.clone(),
            ConfigType::String,
        ),
        ("log.roll.ms", c.log_roll_ms.to_string(), ConfigType::Long),
        (
            "log.segment.bytes",
            c.log_segment_bytes.to_string(),
            ConfigType::Int,
        ),
        (
            "message.max.bytes",
            c.message_max_bytes.to_string(),
            ConfigType::Int,
        ),
        ("node.id", c.node_id.to_string(), ConfigType::Int),
        (
            "num.partitions",
            c.num_partitions.to_string(),
            ConfigType::Int,
        ),
        (
            "process.roles",
            list(c.process_roles.clone()),
            ConfigType::List,
        ),
        (
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            ConfigType::Int,
        ),
    ];
    let mut values = values;
    values.extend([
        (
            "log.retention.check.interval.ms",
            c.log_retention_check_interval_ms.to_string(),
            ConfigType::Long,
        ),
        (
            "log.cleaner.enable",
            c.log_cleaner_enable.to_string(),
            ConfigType::Boolean,
        ),
        (
            "log.cleaner.backoff.ms",
            c.log_cleaner_backoff_ms.to_string(),
            ConfigType::Long,
        ),
        (
            "log.cleaner.threads",
            c.log_cleaner_threads.to_string(),
            ConfigType::Int,
        ),
        (
            "log.cleaner.dedupe.buffer.size",
            c.log_cleaner_dedupe_buffer_size.to_string(),
            ConfigType::Long,
        ),
    ]);
    // The broker keys behind topic defaults (log.retention.ms, log.cleanup.policy, ...), with
    // their static values (dynamic ones are applied below).
    let statics = broker.topic_configs.describe(&Default::default());
    for d in topic_config::TOPIC_CONFIGS {
        if values.iter().any(|(n, _, _)| *n == d.broker_key) {
            continue;
        }
        if let Some(e) = statics.iter().find(|e| e.name == d.name) {
            let value = c
                .explicit
                .get(d.broker_key)
                .cloned()
                .unwrap_or_else(|| e.value.clone());
            values.push((d.broker_key, value, d.config_type));
        }
    }
    values.sort_by(|a, b| a.0.cmp(b.0));
    let dynamic =
        crate::log_manager::dynamic_broker_configs(&broker.metadata.image(), broker.node_id());
    values
        .into_iter()
        .map(|(name, value, t)| {
            let read_only = !crate::log_manager::is_dynamic_broker_key(name);
            if let Some((v, src)) = dynamic.get(name) {
                return entry(name, v, *src, t, read_only);
            }
            let src = if c.explicit.contains_key(name) {
                source::STATIC_BROKER_CONFIG
            } else {
                source::DEFAULT_CONFIG
            };
            entry(name, &value, src, t, read_only)
        })
        .collect()
}
