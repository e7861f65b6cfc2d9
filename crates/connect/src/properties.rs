//! Reading Kafka's configuration files: Java `.properties` (worker and connector configs) and the
//! JSON connector files standalone mode also accepts (`{"name": ..., "config": {...}}` or a flat
//! map).

use std::path::Path;

use crate::config_def::ConfigMap;
use crate::error::{ConnectError, Result};

/// Parses Java properties text (strom-properties does the Java rules); a later key wins.
pub fn parse_properties(text: &str) -> ConfigMap {
    strom_properties::parse(text)
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect()
}

pub fn load_properties(path: &Path) -> Result<ConfigMap> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConnectError::io(format!("cannot read {}", path.display()), e))?;
    Ok(parse_properties(&text))
}

/// Reads a connector config file: JSON (`{"name", "config"}` or a flat object) when it starts with
/// `{`, Java properties otherwise. Values of JSON configs must be strings, numbers or booleans.
pub fn load_connector_config(path: &Path) -> Result<ConfigMap> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConnectError::io(format!("cannot read {}", path.display()), e))?;
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            ConnectError::config(format!(
                "{}: invalid JSON connector config: {e}",
                path.display()
            ))
        })?;
        return connector_config_from_json(&v)
            .map_err(|e| ConnectError::config(format!("{}: {e}", path.display())));
    }
    Ok(parse_properties(&text))
}

/// A connector config from JSON: either `{"name": n, "config": {...}}` or a flat map.
pub fn connector_config_from_json(v: &serde_json::Value) -> Result<ConfigMap> {
    let obj = v
        .as_object()
        .ok_or_else(|| ConnectError::config("connector config must be a JSON object"))?;
    let (name, cfg) = match obj.get("config") {
        Some(c) => (obj.get("name").and_then(|n| n.as_str()), c),
        None => (None, v),
    };
    let mut out = json_to_config_map(cfg)?;
    if let Some(n) = name {
        out.entry("name".to_string())
            .or_insert_with(|| n.to_string());
    }
    Ok(out)
}

/// Converts a JSON object of scalars to a config map, naming a key whose value is not a scalar.
pub fn json_to_config_map(v: &serde_json::Value) -> Result<ConfigMap> {
    let obj = v
        .as_object()
        .ok_or_else(|| ConnectError::config("connector config must be a JSON object"))?;
    let mut out = ConfigMap::new();
    for (k, val) in obj {
        let s = match val {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => continue,
            _ => {
                return Err(ConnectError::config(format!(
                    "config value of {k} must be a string, number or boolean"
                )));
            }
        };
        out.insert(k.clone(), s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties() {
        let p = parse_properties(
            "# comment\n! also\nbootstrap.servers=localhost:9092\nkey.converter : \
             org.apache.kafka.connect.json.JsonConverter\nname my-conn\nlong=a,\\\n    b\npath=C\\:\\\\x\nu=\\u0041\nempty=\n",
        );
        assert_eq!(p["bootstrap.servers"], "localhost:9092");
        assert_eq!(
            p["key.converter"],
            "org.apache.kafka.connect.json.JsonConverter"
        );
        assert_eq!(p["name"], "my-conn");
        assert_eq!(p["long"], "a,b");
        assert_eq!(p["path"], "C:\\x");
        assert_eq!(p["u"], "A");
        assert_eq!(p["empty"], "");
    }

    #[test]
    fn json_connector_config() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"name":"c","config":{"connector.class":"FileStreamSource","tasks.max":1}}"#,
        )
        .expect("json");
        let c = connector_config_from_json(&v).expect("config");
        assert_eq!(c["name"], "c");
        assert_eq!(c["tasks.max"], "1");
    }
}
