//! `Flatten$Key` / `Flatten$Value` (`org.apache.kafka.connect.transforms.Flatten`): nested structs
//! (with a schema) or nested maps (without) become top-level fields named by joining the path with
//! `delimiter` (default `.`). Arrays, and maps inside structs, are kept as they are; a field under
//! an optional struct becomes optional, as in Kafka.

use std::sync::Arc;

use super::{Side, Transformation, get_side, require_map, require_struct, set_side};
use crate::config_def::ConfigMap;
use crate::connector::ConnectRecord;
use crate::data::{Schema, SchemaType, Struct, Value};
use crate::error::{ConnectError, Result};

const PURPOSE: &str = "flattening";

pub(super) struct Flatten {
    side: Side,
    delimiter: String,
}

impl Flatten {
    pub(super) fn new(side: Side, props: &ConfigMap) -> Flatten {
        Flatten {
            side,
            delimiter: props
                .get("delimiter")
                .cloned()
                .unwrap_or_else(|| ".".to_string()),
        }
    }

    fn name(&self, prefix: &str, field: &str) -> String {
        if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}{}{field}", self.delimiter)
        }
    }

    fn flatten_map(
        &self,
        prefix: &str,
        m: &[(Value, Value)],
        out: &mut Vec<(Value, Value)>,
    ) -> Result<()> {
        for (k, v) in m {
            let Value::String(k) = k else {
                return Err(ConnectError::Data(format!(
                    "Flatten expects string map keys in absence of schema, found {k}"
                )));
            };
            let name = self.name(prefix, k);
            match v {
                Value::Map(inner) => self.flatten_map(&name, inner, out)?,
                other => out.push((Value::String(name), other.clone())),
            }
        }
        Ok(())
    }

    fn flatten_schema(
        &self,
        prefix: &str,
        s: &Schema,
        optional: bool,
        out: Schema,
    ) -> Result<Schema> {
        let mut out = out;
        for f in &s.fields {
            let name = self.name(prefix, &f.name);
            if f.schema.schema_type == SchemaType::Struct {
                out = self.flatten_schema(&name, &f.schema, optional || f.schema.optional, out)?;
            } else {
                let mut fs = (*f.schema).clone();
                if optional {
                    fs.optional = true;
                }
                out = out
                    .field(&name, fs)
                    .map_err(|e| ConnectError::Data(format!("Flatten: {e}")))?;
            }
        }
        Ok(out)
    }

    fn flatten_values(
        &self,
        prefix: &str,
        s: &Schema,
        v: Option<&Struct>,
        out: &mut Struct,
    ) -> Result<()> {
        for f in &s.fields {
            let name = self.name(prefix, &f.name);
            let value = v
                .and_then(|st| st.get(&f.name))
                .cloned()
                .unwrap_or(Value::Null);
            if f.schema.schema_type == SchemaType::Struct {
                let inner = match &value {
                    Value::Struct(st) => Some(st),
                    _ => None,
                };
                self.flatten_values(&name, &f.schema, inner, out)?;
            } else {
                out.set(&name, value)?;
            }
        }
        Ok(())
    }
}

impl Transformation for Flatten {
    fn apply(&self, r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = get_side(&r, self.side);
        if value.is_null() && schema.is_none() {
            return Ok(Some(r));
        }
        let Some(schema) = schema else {
            let m = require_map(&value, PURPOSE)?;
            let mut out = Vec::new();
            self.flatten_map("", m, &mut out)?;
            return Ok(Some(set_side(r, self.side, None, Value::Map(out))));
        };
        let mut base = Schema::struct_();
        base.name = schema.name.clone();
        base.version = schema.version;
        base.doc = schema.doc.clone();
        base.parameters = schema.parameters.clone();
        base.optional = schema.optional;
        let flat = Arc::new(self.flatten_schema("", &schema, false, base)?);
        if value.is_null() {
            return Ok(Some(set_side(r, self.side, Some(flat), Value::Null)));
        }
        let st = require_struct(&value, PURPOSE)?;
        let mut out = Struct::new(flat.clone())?;
        self.flatten_values("", &schema, Some(st), &mut out)?;
        Ok(Some(set_side(r, self.side, Some(flat), Value::Struct(out))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(schema: Option<Arc<Schema>>, value: Value) -> ConnectRecord {
        ConnectRecord::new("t", schema, value)
    }

    #[test]
    fn flattens_structs_and_maps() {
        let inner = Schema::struct_()
            .field("b", Schema::int32())
            .and_then(|s| s.field("c", Schema::string()))
            .expect("schema")
            .optional();
        let outer = Arc::new(
            Schema::struct_()
                .field("a", inner.clone())
                .and_then(|s| s.field("d", Schema::boolean()))
                .expect("schema"),
        );
        let a = Struct::new(Arc::new(inner))
            .and_then(|s| s.put("b", Value::Int32(7)))
            .and_then(|s| s.put("c", Value::String("x".into())))
            .expect("inner");
        let v = Struct::new(outer.clone())
            .and_then(|s| s.put("a", Value::Struct(a)))
            .and_then(|s| s.put("d", Value::Boolean(true)))
            .expect("outer");
        let mut props = ConfigMap::new();
        props.insert("delimiter".into(), "_".into());
        let f = Flatten::new(Side::Value, &props);
        let out = f
            .apply(record(Some(outer), Value::Struct(v)))
            .expect("apply")
            .expect("kept");
        let s = out.value_schema.expect("schema");
        let names: Vec<&str> = s.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a_b", "a_c", "d"]);
        assert!(s.fields[0].schema.optional, "under an optional struct");
        assert!(!s.fields[2].schema.optional);
        let Value::Struct(st) = out.value else {
            panic!("struct")
        };
        assert_eq!(st.get("a_b"), Some(&Value::Int32(7)));

        let m = Value::Map(vec![
            (
                Value::String("x".into()),
                Value::Map(vec![(Value::String("y".into()), Value::Int64(1))]),
            ),
            (Value::String("z".into()), Value::Null),
        ]);
        let f = Flatten::new(Side::Value, &ConfigMap::new());
        let out = f.apply(record(None, m)).expect("apply").expect("kept");
        assert_eq!(
            out.value,
            Value::Map(vec![
                (Value::String("x.y".into()), Value::Int64(1)),
                (Value::String("z".into()), Value::Null),
            ])
        );
        let err = f
            .apply(record(None, Value::Int32(1)))
            .expect_err("not a map")
            .to_string();
        assert!(err.contains("flattening"), "{err}");
    }
}
