//! Connector-level configuration (`ConnectorConfig`, `SinkConnectorConfig`,
//! `SourceConnectorConfig`) and the validation behind `PUT /connector-plugins/{p}/config/validate`
//! and connector creation (`AbstractHerder.validateConnectorConfig`).

use serde::Serialize;

use crate::config_def::{
    ConfigDef, ConfigKeyInfo, ConfigMap, ConfigType, ConfigValue, Importance, Validator, parse_list,
};
use crate::connector::{ConnectorPlugin, ConnectorType};
use crate::converter::new_converter;
use crate::transforms::{TransformChain, new_transform};

const COMMON: &str = "Common";
const TRANSFORMS: &str = "Transforms";
const ERRORS: &str = "Error Handling";

/// The keys every connector has, in Kafka's groups.
pub fn connector_config_def(kind: ConnectorType) -> ConfigDef {
    let mut def = ConfigDef::new()
        .define(
            "name",
            ConfigType::String,
            None,
            Importance::High,
            "Globally unique name to use for this connector.",
        )
        .with_validator(Validator::NonEmptyString)
        .in_group(COMMON, "Connector name")
        .define(
            "connector.class",
            ConfigType::String,
            None,
            Importance::High,
            "Name or alias of the class for this connector. Must be a subclass of \
             org.apache.kafka.connect.connector.Connector.",
        )
        .in_group(COMMON, "Connector class")
        .define(
            "tasks.max",
            ConfigType::Int,
            Some("1"),
            Importance::High,
            "Maximum number of tasks to use for this connector.",
        )
        .with_validator(Validator::Range {
            min: Some(1.0),
            max: None,
        })
        .in_group(COMMON, "Tasks max")
        .define(
            "key.converter",
            ConfigType::Class,
            None,
            Importance::Low,
            "Converter class used for record keys; overrides the worker's key.converter.",
        )
        .optional()
        .with_validator(Validator::Custom(check_converter))
        .in_group(COMMON, "Key converter class")
        .define(
            "value.converter",
            ConfigType::Class,
            None,
            Importance::Low,
            "Converter class used for record values; overrides the worker's value.converter.",
        )
        .optional()
        .with_validator(Validator::Custom(check_converter))
        .in_group(COMMON, "Value converter class")
        .define(
            "transforms",
            ConfigType::List,
            Some(""),
            Importance::Low,
            "Aliases for the transformations to be applied to records.",
        )
        .in_group(TRANSFORMS, "Transforms")
        .define(
            "predicates",
            ConfigType::List,
            Some(""),
            Importance::Low,
            "Aliases for the predicates used by transformations.",
        )
        .in_group("Predicates", "Predicates")
        .define(
            "errors.tolerance",
            ConfigType::String,
            Some("none"),
            Importance::Medium,
            "Behavior for tolerating errors during connector operation: 'none' fails the task, \
             'all' skips problematic records.",
        )
        .with_validator(Validator::OneOf(vec!["none", "all"]))
        .in_group(ERRORS, "Error Tolerance");
    def = crate::error_handling::define_keys(def, ERRORS);
    def = crate::task_restart::define_keys(def, false, Some(ERRORS));
    if kind == ConnectorType::Sink {
        def = def
            .define(
                "topics",
                ConfigType::List,
                Some(""),
                Importance::High,
                "List of topics to consume, separated by commas.",
            )
            .in_group(COMMON, "Topics")
            .define(
                "topics.regex",
                ConfigType::String,
                Some(""),
                Importance::High,
                "Regular expression giving topics to consume.",
            )
            .in_group(COMMON, "Topics regex");
    }
    def
}

fn check_converter(v: &str) -> Result<(), String> {
    if new_converter(v).is_some() {
        Ok(())
    } else {
        Err(format!("Class {v} could not be found."))
    }
}

/// The REST value part of a validated key (`ConfigValueInfo`).
#[derive(Clone, Debug, Serialize)]
pub struct ConfigInfo {
    pub definition: ConfigKeyInfo,
    pub value: ConfigValue,
}

/// The validate endpoint's body (`ConfigInfos`).
#[derive(Clone, Debug, Serialize)]
pub struct ConfigInfos {
    pub name: String,
    pub error_count: usize,
    pub groups: Vec<String>,
    pub configs: Vec<ConfigInfo>,
}

impl ConfigInfos {
    /// Every error, each prefixed as Kafka does in its 400 message.
    pub fn error_messages(&self) -> Vec<String> {
        self.configs
            .iter()
            .flat_map(|c| c.value.errors.iter().cloned())
            .collect()
    }
}

/// Validates a connector config against the common keys, the plugin's own keys, the sink topic
/// rules, converters and transforms. Every bad key gets its own errors.
pub fn validate_connector_config(plugin: &ConnectorPlugin, props: &ConfigMap) -> ConfigInfos {
    let kind = plugin.connector_type();
    let common = connector_config_def(kind);
    let instance = plugin.instantiate();
    let connector = instance.as_connector();
    let own = connector.config();
    let def = common.clone().merge(&own);

    let mut values = common.validate(props);
    values.extend(connector.validate(props));
    let value_of = |values: &mut Vec<ConfigValue>, name: &str| -> Option<usize> {
        values.iter().position(|v| v.name == name)
    };

    if kind == ConnectorType::Sink {
        let topics = props
            .get("topics")
            .map(|t| !parse_list(t).is_empty())
            .unwrap_or(false);
        let regex = props
            .get("topics.regex")
            .is_some_and(|r| !r.trim().is_empty());
        let msg = match (topics, regex) {
            (true, true) => {
                Some("topics and topics.regex are mutually exclusive options, but both are set.")
            }
            (false, false) => Some("Must configure one of topics or topics.regex"),
            _ => None,
        };
        if let Some(msg) = msg {
            for key in ["topics", "topics.regex"] {
                if let Some(i) = value_of(&mut values, key) {
                    values[i].errors.push(msg.to_string());
                }
            }
        }
        if let Some(r) = props.get("topics.regex").filter(|r| !r.trim().is_empty())
            && let Err(e) = regex::Regex::new(r)
            && let Some(i) = value_of(&mut values, "topics.regex")
        {
            values[i].errors.push(format!(
                "Invalid value {r} for configuration topics.regex: {e}"
            ));
        }
    }

    // Each transform alias gets a `transforms.<alias>.type` entry with its own errors.
    let mut extra_defs = Vec::new();
    for alias in parse_list(props.get("transforms").map(String::as_str).unwrap_or("")) {
        let key = format!("transforms.{alias}.type");
        let prefix = format!("transforms.{alias}.");
        let tprops: ConfigMap = props
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|s| (s.to_string(), v.clone())))
            .collect();
        let mut errors = Vec::new();
        match tprops.get("type") {
            None => errors.push(format!(
                "Missing required configuration \"{key}\" which has no default value."
            )),
            Some(class) => {
                if let Err(e) = new_transform(class, &tprops) {
                    errors.push(e.to_string());
                }
            }
        }
        extra_defs.push(ConfigKeyInfo {
            name: key.clone(),
            config_type: "CLASS",
            required: true,
            default_value: None,
            importance: "HIGH",
            documentation: "Class for the transformation.".to_string(),
            group: Some(format!("Transforms: {alias}")),
            width: "LONG",
            display_name: "Transformation type".to_string(),
            dependents: Vec::new(),
            order: 0,
        });
        values.push(ConfigValue {
            name: key,
            value: tprops.get("type").cloned(),
            recommended_values: Vec::new(),
            errors,
            visible: true,
        });
    }
    // Predicate wiring problems (a transform naming an undeclared predicate) land on `transforms`.
    if let Err(e) = TransformChain::from_config(props) {
        let msg = e.to_string();
        let already = values
            .iter()
            .any(|v| v.errors.iter().any(|m| msg.contains(m.as_str())));
        if !already && let Some(i) = value_of(&mut values, "transforms") {
            values[i].errors.push(msg);
        }
    }

    let mut groups = def.groups();
    let mut infos: Vec<ConfigKeyInfo> = def.key_infos();
    infos.extend(extra_defs);
    for i in &infos {
        if let Some(g) = &i.group
            && !groups.contains(g)
        {
            groups.push(g.clone());
        }
    }
    let configs: Vec<ConfigInfo> = values
        .into_iter()
        .filter_map(|v| {
            let definition = infos.iter().find(|d| d.name == v.name)?.clone();
            Some(ConfigInfo {
                definition,
                value: v,
            })
        })
        .collect();
    ConfigInfos {
        name: plugin.class_name.to_string(),
        error_count: configs.iter().map(|c| c.value.errors.len()).sum(),
        groups,
        configs,
    }
}
