//! AlterConfigs (v0–2, replaces a resource's whole set of overrides) and IncrementalAlterConfigs
//! (v0–1: SET, DELETE, APPEND, SUBTRACT per key) for topics and brokers.
//!
//! Each resource succeeds or fails on its own: an unknown key or a bad value refuses that
//! resource with INVALID_CONFIG and a message naming the key, and changes nothing. A topic change
//! is persisted in the metadata image and applied to the partitions' logs before the answer; a
//! broker change (resource "" for every broker, or this node's id) becomes the dynamic default
//! of the topic configs it backs.

use super::RequestContext;
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::log_manager::{is_dynamic_broker_key, validate_dynamic_broker_key};
use crate::topic_config::{self, ConfigType};
use kafka_protocol::messages::alter_configs_request::AlterConfigsRequest;
use kafka_protocol::messages::alter_configs_response::{
    AlterConfigsResourceResponse, AlterConfigsResponse,
};
use kafka_protocol::messages::incremental_alter_configs_request::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::incremental_alter_configs_response::{
    AlterConfigsResourceResponse as IncrementalResourceResponse, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// A refused resource: the code and the message naming the key.
type Refusal = (ErrorCode, String);

/// One requested change, whichever API it came in.
struct Change {
    name: String,
    op: i8,
    value: Option<String>,
}

/// The resource a change is about, resolved.
enum Target {
    Topic(String),
    /// "" (every broker) or this node's id.
    Broker(String),
}

fn resolve(broker: &Broker, resource_type: i8, name: &str) -> Result<Target, Refusal> {
    match resource_type {
        RESOURCE_TOPIC => {
            if broker.metadata.image().topic(name).is_none() {
                return Err((
                    ErrorCode::UnknownTopicOrPartition,
                    format!("Topic '{name}' does not exist."),
                ));
            }
            Ok(Target::Topic(name.to_string()))
        }
        RESOURCE_BROKER => {
            if !name.is_empty() && name != broker.node_id().to_string() {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!(
                        "Unexpected broker id, expected {} or empty string, but received {name}",
                        broker.node_id()
                    ),
                ));
            }
            Ok(Target::Broker(name.to_string()))
        }
        other => Err((
            ErrorCode::InvalidRequest,
            format!("Resource type {other} is not supported by AlterConfigs"),
        )),
    }
}

/// The current overrides of the resource.
fn current(broker: &Broker, target: &Target) -> BTreeMap<String, String> {
    let image = broker.metadata.image();
    match target {
        Target::Topic(name) => image
            .topic(name)
            .map(|t| t.configs.clone())
            .unwrap_or_default(),
        Target::Broker(name) => image.broker_configs.get(name).cloned().unwrap_or_default(),
    }
}

/// A list config's current items (its override, else its default), for APPEND and SUBTRACT.
fn current_list(
    broker: &Broker,
    target: &Target,
    overrides: &BTreeMap<String, String>,
    name: &str,
) -> Vec<String> {
    let value = match overrides.get(name) {
        Some(v) => Some(v.clone()),
        None => match target {
            Target::Topic(_) => broker.topic_configs.default_of(name).map(|(v, _)| v),
            Target::Broker(_) => broker.config.explicit.get(name).cloned(),
        },
    };
    value
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn is_list(target: &Target, name: &str) -> bool {
    match target {
        Target::Topic(_) => {
            topic_config::lookup(name).is_some_and(|d| d.config_type == ConfigType::List)
        }
        Target::Broker(_) => topic_config::TOPIC_CONFIGS
            .iter()
            .any(|d| d.broker_key == name && d.config_type == ConfigType::List),
    }
}

/// Applies the changes to the current overrides and validates the result.
fn plan(
    broker: &Broker,
    target: &Target,
    changes: Vec<Change>,
    replace_all: bool,
) -> Result<BTreeMap<String, String>, Refusal> {
    let mut seen = HashSet::new();
    for c in &changes {
        if !seen.insert(c.name.clone()) {
            return Err((
                ErrorCode::InvalidRequest,
                format!("Error due to duplicate config keys: {}", c.name),
            ));
        }
    }
    let mut next = if replace_all {
        BTreeMap::new()
    } else {
        current(broker, target)
    };
    let invalid = |msg: String| (ErrorCode::InvalidConfig, msg);
    for c in changes {
        // Every key must be known, whatever the operation.
        check_key(broker, target, &c.name, None).map_err(invalid)?;
        match c.op {
            OP_SET => {
                let Some(value) = c.value else {
                    if replace_all {
                        // Legacy AlterConfigs: a null value leaves the key unset.
                        continue;
                    }
                    return Err(invalid(format!(
                        "Null value not supported for configuration {}",
                        c.name
                    )));
                };
                next.insert(c.name, value);
            }
            OP_DELETE => {
                next.remove(&c.name);
            }
            OP_APPEND | OP_SUBTRACT => {
                if !is_list(target, &c.name) {
                    let what = if c.op == OP_APPEND {
                        "append"
                    } else {
                        "subtract"
                    };
                    return Err(invalid(format!(
                        "Config value {what} is not allowed for config key: {}",
                        c.name
                    )));
                }
                let mut items = current_list(broker, target, &next, &c.name);
                let given: Vec<String> = c
                    .value
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if c.op == OP_APPEND {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                next.insert(c.name, items.join(","));
            }
            other => {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!("Unknown config operation {other} for key {}", c.name),
                ));
            }
        }
    }
    for (k, v) in &next {
        check_key(broker, target, k, Some(v)).map_err(invalid)?;
    }
    Ok(next)
}

/// `value` None checks only that the key exists for this resource.
fn check_key(
    broker: &Broker,
    target: &Target,
    name: &str,
    value: Option<&str>,
) -> Result<(), String> {
    match target {
        Target::Topic(_) => match value {
            None => topic_config::lookup(name)
                .map(|_| ())
                .ok_or_else(|| format!("Unknown topic config name: {name}")),
            Some(v) => broker.topic_configs.validate(name, Some(v)),
        },
        Target::Broker(_) => match value {
            None if is_dynamic_broker_key(name) => Ok(()),
            None => Err(format!(
                "Cannot update these configs dynamically: [{name}] (unknown or read-only broker config)"
            )),
            Some(v) => validate_dynamic_broker_key(name, Some(v)),
        },
    }
}

/// Plans and (unless `validate_only`) applies one resource's changes.
fn alter_resource(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    changes: Vec<Change>,
    replace_all: bool,
    validate_only: bool,
) -> Result<(), Refusal> {
    let target = resolve(broker, resource_type, name)?;
    let next = plan(broker, &target, changes, replace_all)?;
    if validate_only {
        return Ok(());
    }
    let stored = match &target {
        Target::Topic(topic) => broker.set_topic_configs(topic, next).map(|_| ()),
        Target::Broker(resource) => broker.set_broker_configs(resource, next),
    };
    stored.map_err(|e| match e {
        strom_meta::MetaError::UnknownTopic(_) => (
            ErrorCode::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        ),
        other => (ErrorCode::UnknownServerError, other.to_string()),
    })?;
    tracing::info!(resource_type, resource = name, "configs altered");
    Ok(())
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

pub fn alter_configs(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let changes = res
                .configs
                .into_iter()
                .map(|c| Change {
                    name: c.name.to_string(),
                    op: OP_SET,
                    value: c.value.map(|v| v.to_string()),
                })
                .collect();
            let result = alter_resource(
                broker,
                res.resource_type,
                &res.resource_name,
                changes,
                true,
                req.validate_only,
            );
            let mut out = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name);
            if let Err((code, message)) = result {
                out.error_code = code.code();
                out.error_message = Some(s(message));
            }
            out
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub fn incremental_alter_configs(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let changes = res
                .configs
                .into_iter()
                .map(|c| Change {
                    name: c.name.to_string(),
                    op: c.config_operation,
                    value: c.value.map(|v| v.to_string()),
                })
                .collect();
            let result = alter_resource(
                broker,
                res.resource_type,
                &res.resource_name,
                changes,
                false,
                req.validate_only,
            );
            let mut out = IncrementalResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name);
            if let Err((code, message)) = result {
                out.error_code = code.code();
                out.error_message = Some(s(message));
            }
            out
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
