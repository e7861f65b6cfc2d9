//! `SetSchemaMetadata$Key` / `$Value` (`org.apache.kafka.connect.transforms.SetSchemaMetadata`):
//! sets the name (`schema.name`), the version (`schema.version`) or both on the key or value
//! schema, keeping everything else of the schema. A struct value is rebuilt on the new schema,
//! because a struct must carry the very schema the record names. Records without a schema fail,
//! except a null without a schema (a tombstone), which passes unchanged.

use std::sync::Arc;

use super::{Side, Transformation, get_side, set_side};
use crate::config_def::ConfigMap;
use crate::connector::ConnectRecord;
use crate::data::{Schema, Struct, Value};
use crate::error::{ConnectError, Result};

pub(super) struct SetSchemaMetadata {
    side: Side,
    name: Option<String>,
    version: Option<i32>,
}

impl SetSchemaMetadata {
    pub(super) fn new(side: Side, props: &ConfigMap) -> Result<SetSchemaMetadata> {
        let name = props
            .get("schema.name")
            .filter(|v| !v.trim().is_empty())
            .cloned();
        let version = match props.get("schema.version").map(|v| v.trim()) {
            None | Some("") => None,
            Some(v) => Some(v.parse::<i32>().map_err(|_| {
                ConnectError::config(format!(
                    "Invalid value {v} for configuration schema.version: Not a number of type INT"
                ))
            })?),
        };
        if name.is_none() && version.is_none() {
            return Err(ConnectError::config(
                "Neither schema.name nor schema.version configured: set at least one",
            ));
        }
        Ok(SetSchemaMetadata {
            side,
            name,
            version,
        })
    }
}

impl Transformation for SetSchemaMetadata {
    fn apply(&self, r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = get_side(&r, self.side);
        let Some(schema) = schema else {
            if value.is_null() {
                return Ok(Some(r));
            }
            return Err(ConnectError::Data(
                "Schema required for [updating schema metadata]".into(),
            ));
        };
        let mut updated: Schema = (*schema).clone();
        if let Some(n) = &self.name {
            updated.name = Some(n.clone());
        }
        if let Some(v) = self.version {
            updated.version = Some(v);
        }
        let updated = Arc::new(updated);
        let value = match value {
            Value::Struct(old) => {
                let mut st = Struct::new(updated.clone())?;
                for f in &updated.fields {
                    st.set(&f.name, old.get(&f.name).cloned().unwrap_or(Value::Null))?;
                }
                Value::Struct(st)
            }
            other => other,
        };
        Ok(Some(set_side(r, self.side, Some(updated), value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renames_and_versions_struct_schema() {
        let schema = Arc::new(
            Schema::struct_()
                .name("old")
                .version(1)
                .doc("kept")
                .field("id", Schema::int32())
                .expect("schema"),
        );
        let st = Struct::new(schema.clone())
            .and_then(|s| s.put("id", 9))
            .expect("struct");
        let t = SetSchemaMetadata::new(
            Side::Value,
            &props(&[("schema.name", "com.example.User"), ("schema.version", "3")]),
        )
        .expect("config");
        let out = t
            .apply(ConnectRecord::new("t", Some(schema), Value::Struct(st)))
            .expect("apply")
            .expect("kept");
        let s = out.value_schema.expect("schema");
        assert_eq!(s.name.as_deref(), Some("com.example.User"));
        assert_eq!(s.version, Some(3));
        assert_eq!(s.doc.as_deref(), Some("kept"));
        let Value::Struct(v) = out.value else {
            panic!("struct")
        };
        assert_eq!(v.schema(), &s, "the struct carries the new schema");
        assert_eq!(v.get("id"), Some(&Value::Int32(9)));
    }

    #[test]
    fn key_side_keeps_unset_metadata_and_value() {
        let t =
            SetSchemaMetadata::new(Side::Key, &props(&[("schema.version", "2")])).expect("config");
        let mut r = ConnectRecord::new("t", None, Value::from("v"));
        r.key_schema = Some(Arc::new(Schema::string().name("k")));
        r.key = Value::from("key");
        let out = t.apply(r).expect("apply").expect("kept");
        let ks = out.key_schema.expect("key schema");
        assert_eq!(ks.name.as_deref(), Some("k"));
        assert_eq!(ks.version, Some(2));
        assert_eq!(out.key, Value::from("key"));
        assert_eq!(out.value_schema, None, "value side untouched");
    }

    #[test]
    fn schemaless_fails_and_tombstone_passes() {
        let t =
            SetSchemaMetadata::new(Side::Value, &props(&[("schema.name", "x")])).expect("config");
        let err = t
            .apply(ConnectRecord::new("t", None, Value::from("v")))
            .unwrap_err();
        assert!(err.to_string().contains("Schema required"), "{err}");
        let tomb = ConnectRecord::new("t", None, Value::Null);
        assert_eq!(t.apply(tomb.clone()).expect("ok"), Some(tomb));
    }

    #[test]
    fn bad_config_names_the_key() {
        let err = SetSchemaMetadata::new(Side::Value, &props(&[]))
            .err()
            .expect("error");
        assert!(err.to_string().contains("schema.name"), "{err}");
        let err = SetSchemaMetadata::new(Side::Value, &props(&[("schema.version", "two")]))
            .err()
            .expect("error");
        assert!(err.to_string().contains("schema.version"), "{err}");
    }
}
