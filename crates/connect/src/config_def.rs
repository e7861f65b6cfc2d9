//! Config definitions (`ConfigDef`): each key's type, default, importance, documentation, group
//! and validator, and validation that reports every bad key with Kafka's messages.

use std::collections::BTreeMap;

use serde::Serialize;

/// A connector's, task's or worker's configuration: string keys to string values, as Connect
/// passes them around (`Map<String, String>`).
pub type ConfigMap = BTreeMap<String, String>;

/// Config value types (`ConfigDef.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

/// How much a key matters to users (`ConfigDef.Importance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Importance {
    High,
    Medium,
    Low,
}

impl Importance {
    pub fn name(self) -> &'static str {
        match self {
            Importance::High => "HIGH",
            Importance::Medium => "MEDIUM",
            Importance::Low => "LOW",
        }
    }
}

/// Checks a parsed value; returns the reason when it is bad (`ConfigDef.Validator`).
#[derive(Clone, Debug)]
pub enum Validator {
    /// The string must not be empty (`NonEmptyString`).
    NonEmptyString,
    /// A number within inclusive bounds (`Range.between` / `atLeast`).
    Range { min: Option<f64>, max: Option<f64> },
    /// One of the listed strings, case-insensitively (`ValidString` / `CaseInsensitiveValidString`).
    OneOf(Vec<&'static str>),
    /// Any check of the raw value.
    Custom(fn(&str) -> Result<(), String>),
}

impl Validator {
    fn check(&self, raw: &str, ty: ConfigType) -> Result<(), String> {
        match self {
            Validator::NonEmptyString => {
                if raw.trim().is_empty() {
                    Err("String must be non-empty".to_string())
                } else {
                    Ok(())
                }
            }
            Validator::Range { min, max } => {
                let n: f64 = raw
                    .trim()
                    .parse()
                    .map_err(|_| format!("Not a number of type {}", ty.name()))?;
                match (min, max) {
                    (Some(lo), Some(hi)) if n < *lo || n > *hi => {
                        Err(format!("Value must be in [{lo}, {hi}]"))
                    }
                    (Some(lo), None) if n < *lo => Err(format!("Value must be at least {lo}")),
                    (None, Some(hi)) if n > *hi => Err(format!("Value must be no more than {hi}")),
                    _ => Ok(()),
                }
            }
            Validator::OneOf(allowed) => {
                if allowed.iter().any(|a| a.eq_ignore_ascii_case(raw.trim())) {
                    Ok(())
                } else {
                    Err(format!("String must be one of: {}", allowed.join(", ")))
                }
            }
            Validator::Custom(f) => f(raw),
        }
    }
}

/// One key of a [`ConfigDef`].
#[derive(Clone, Debug)]
pub struct ConfigKey {
    pub name: String,
    pub config_type: ConfigType,
    pub default_value: Option<String>,
    /// True when the key has no default and must be set.
    pub required: bool,
    pub importance: Importance,
    pub documentation: String,
    pub group: Option<String>,
    pub order_in_group: i32,
    pub display_name: String,
    pub validator: Option<Validator>,
}

/// A set of config keys (`ConfigDef`). Keys keep their definition order.
#[derive(Clone, Debug, Default)]
pub struct ConfigDef {
    keys: Vec<ConfigKey>,
}

/// The outcome of validating one key (`ConfigValue`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigValue {
    pub name: String,
    pub value: Option<String>,
    pub recommended_values: Vec<String>,
    pub errors: Vec<String>,
    pub visible: bool,
}

/// The REST shape of a key's definition (`ConfigKeyInfo`).
#[derive(Clone, Debug, Serialize)]
pub struct ConfigKeyInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub config_type: &'static str,
    pub required: bool,
    pub default_value: Option<String>,
    pub importance: &'static str,
    pub documentation: String,
    pub group: Option<String>,
    pub width: &'static str,
    pub display_name: String,
    pub dependents: Vec<String>,
    pub order: i32,
}

impl ConfigDef {
    pub fn new() -> ConfigDef {
        ConfigDef::default()
    }

    /// Defines a key. `default_value = None` makes it required.
    pub fn define(
        mut self,
        name: &str,
        config_type: ConfigType,
        default_value: Option<&str>,
        importance: Importance,
        documentation: &str,
    ) -> ConfigDef {
        self.keys.retain(|k| k.name != name);
        self.keys.push(ConfigKey {
            name: name.to_string(),
            config_type,
            default_value: default_value.map(str::to_string),
            required: default_value.is_none(),
            importance,
            documentation: documentation.to_string(),
            group: None,
            order_in_group: -1,
            display_name: name.to_string(),
            validator: None,
        });
        self
    }

    /// Makes the key defined last optional with no default (Kafka's `null` default).
    pub fn optional(mut self) -> ConfigDef {
        if let Some(k) = self.keys.last_mut() {
            k.required = false;
        }
        self
    }

    /// Attaches a validator to the key defined last.
    pub fn with_validator(mut self, validator: Validator) -> ConfigDef {
        if let Some(k) = self.keys.last_mut() {
            k.validator = Some(validator);
        }
        self
    }

    /// Puts the key defined last into a group, at the next position in it.
    pub fn in_group(mut self, group: &str, display_name: &str) -> ConfigDef {
        let order = self
            .keys
            .iter()
            .filter(|k| k.group.as_deref() == Some(group))
            .count() as i32
            + 1;
        if let Some(k) = self.keys.last_mut() {
            k.group = Some(group.to_string());
            k.order_in_group = order;
            k.display_name = display_name.to_string();
        }
        self
    }

    /// Appends the keys of another definition (e.g. a connector's own keys after the common ones).
    pub fn merge(mut self, other: &ConfigDef) -> ConfigDef {
        for k in &other.keys {
            self.keys.retain(|x| x.name != k.name);
            self.keys.push(k.clone());
        }
        self
    }

    pub fn keys(&self) -> &[ConfigKey] {
        &self.keys
    }

    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// The groups in order of first appearance.
    pub fn groups(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for k in &self.keys {
            if let Some(g) = &k.group
                && !out.contains(g)
            {
                out.push(g.clone());
            }
        }
        out
    }

    /// Validates every defined key against `props`; each result lists that key's errors.
    pub fn validate(&self, props: &ConfigMap) -> Vec<ConfigValue> {
        self.keys
            .iter()
            .map(|k| {
                let raw = props.get(&k.name).cloned();
                let mut errors = Vec::new();
                match raw.as_deref().or(k.default_value.as_deref()) {
                    None if !k.required => {}
                    None => errors.push(format!(
                        "Missing required configuration \"{}\" which has no default value.",
                        k.name
                    )),
                    Some(v) => {
                        if let Err(reason) =
                            check_type(v, k.config_type).and_then(|()| match &k.validator {
                                Some(val) => val.check(v, k.config_type),
                                None => Ok(()),
                            })
                        {
                            errors.push(format!(
                                "Invalid value {v} for configuration {}: {reason}",
                                k.name
                            ));
                        }
                    }
                }
                ConfigValue {
                    name: k.name.clone(),
                    value: raw.or_else(|| k.default_value.clone()),
                    recommended_values: match &k.validator {
                        Some(Validator::OneOf(v)) => v.iter().map(|s| s.to_string()).collect(),
                        _ => Vec::new(),
                    },
                    errors,
                    visible: true,
                }
            })
            .collect()
    }

    /// The value of a key after defaults (for keys this definition knows).
    pub fn value<'a>(&'a self, props: &'a ConfigMap, name: &str) -> Option<&'a str> {
        props
            .get(name)
            .map(String::as_str)
            .or_else(|| self.key(name).and_then(|k| k.default_value.as_deref()))
    }

    /// The REST description of every key.
    pub fn key_infos(&self) -> Vec<ConfigKeyInfo> {
        self.keys
            .iter()
            .map(|k| ConfigKeyInfo {
                name: k.name.clone(),
                config_type: k.config_type.name(),
                required: k.required,
                default_value: k.default_value.clone(),
                importance: k.importance.name(),
                documentation: k.documentation.clone(),
                group: k.group.clone(),
                width: "NONE",
                display_name: k.display_name.clone(),
                dependents: Vec::new(),
                order: k.order_in_group,
            })
            .collect()
    }
}

/// Checks that a raw string parses as the type, with Kafka's reason text when not.
fn check_type(v: &str, ty: ConfigType) -> Result<(), String> {
    let t = v.trim();
    let ok = match ty {
        ConfigType::Boolean => t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false"),
        ConfigType::Int => t.parse::<i32>().is_ok(),
        ConfigType::Short => t.parse::<i16>().is_ok(),
        ConfigType::Long => t.parse::<i64>().is_ok(),
        ConfigType::Double => t.parse::<f64>().is_ok(),
        ConfigType::String | ConfigType::List | ConfigType::Class | ConfigType::Password => true,
    };
    if ok {
        Ok(())
    } else if ty == ConfigType::Boolean {
        Err("Expected value to be either true or false".to_string())
    } else {
        Err(format!("Not a number of type {}", ty.name()))
    }
}

/// A config map from literal pairs (tests and built-in defaults).
pub fn config_map(pairs: &[(&str, &str)]) -> ConfigMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Splits a LIST value as Kafka does: comma-separated, trimmed, empty items dropped.
pub fn parse_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_every_bad_key() {
        let def = ConfigDef::new()
            .define("file", ConfigType::String, None, Importance::High, "f")
            .define(
                "batch.size",
                ConfigType::Int,
                Some("2000"),
                Importance::Low,
                "b",
            )
            .with_validator(Validator::Range {
                min: Some(1.0),
                max: None,
            })
            .define("mode", ConfigType::String, Some("a"), Importance::Low, "m")
            .with_validator(Validator::OneOf(vec!["a", "b"]));
        let mut props = ConfigMap::new();
        props.insert("batch.size".into(), "lots".into());
        props.insert("mode".into(), "c".into());
        let out = def.validate(&props);
        let errors: Vec<&String> = out.iter().flat_map(|v| &v.errors).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(
            errors[0],
            "Missing required configuration \"file\" which has no default value."
        );
        assert_eq!(
            errors[1],
            "Invalid value lots for configuration batch.size: Not a number of type INT"
        );
        assert!(errors[2].contains("String must be one of: a, b"));
        props.insert("batch.size".into(), "0".into());
        let out = def.validate(&props);
        assert!(out[1].errors[0].contains("at least 1"), "{:?}", out[1]);
    }
}
