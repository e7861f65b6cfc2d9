//! `HeaderFrom$Key` / `$Value` (`org.apache.kafka.connect.transforms.HeaderFrom`): copies
//! (`operation=copy`) or moves (`operation=move`, the field leaves the key/value) the struct or
//! map fields named in `fields` into the headers named at the same position in `headers`.
//!
//! Header values are rendered as the default header converter (SimpleHeaderConverter) writes them
//! (see [`crate::simple_header_converter`]), because strom's headers are bytes. A missing map key
//! gives a header without a value, as Kafka's null does; a field missing from a struct schema is
//! an error naming it. Like Kafka, a tombstone fails here (it is neither struct nor map): put a
//! `RecordIsTombstone` predicate with `negate=true` in front if tombstones can occur.

use std::sync::Arc;

use super::{
    Side, Transformation, get_side, require_map, require_struct, required, required_list,
    schema_like, set_side,
};
use crate::config_def::ConfigMap;
use crate::connector::{ConnectRecord, Header};
use crate::data::{Struct, Value};
use crate::error::{ConnectError, Result};
use crate::simple_header_converter::header_bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Copy,
    Move,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Copy => "copy",
            Operation::Move => "move",
        }
    }
}

pub(super) struct HeaderFrom {
    side: Side,
    fields: Vec<String>,
    headers: Vec<String>,
    operation: Operation,
}

impl HeaderFrom {
    pub(super) fn new(side: Side, props: &ConfigMap) -> Result<HeaderFrom> {
        let fields = required_list(props, "fields")?;
        let headers = required_list(props, "headers")?;
        let op = required(props, "operation")?;
        let operation = match op.trim() {
            "copy" => Operation::Copy,
            "move" => Operation::Move,
            other => {
                return Err(ConnectError::config(format!(
                    "Invalid value {other} for configuration operation: String must be one of: move, copy"
                )));
            }
        };
        if fields.len() != headers.len() {
            return Err(ConnectError::config(format!(
                "Invalid configuration: fields lists {} names but headers lists {}; \
                 they pair up by position, so both need the same number",
                fields.len(),
                headers.len()
            )));
        }
        Ok(HeaderFrom {
            side,
            fields,
            headers,
            operation,
        })
    }

    fn purpose(&self) -> String {
        format!("header {}", self.operation.name())
    }
}

impl Transformation for HeaderFrom {
    fn apply(&self, r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = get_side(&r, self.side);
        let mut added = Vec::with_capacity(self.fields.len());
        let (schema, value) = match schema {
            None => {
                let map = require_map(&value, &self.purpose())?;
                for (field, header) in self.fields.iter().zip(&self.headers) {
                    let v = map
                        .iter()
                        .find(|(k, _)| k.as_str() == Some(field.as_str()))
                        .map(|(_, v)| v);
                    let bytes = match v {
                        Some(v) => header_bytes(None, v)?,
                        None => None,
                    };
                    added.push(Header {
                        key: header.clone(),
                        value: bytes,
                    });
                }
                let kept = match self.operation {
                    Operation::Copy => map.clone(),
                    Operation::Move => map
                        .iter()
                        .filter(|(k, _)| {
                            !k.as_str()
                                .is_some_and(|k| self.fields.iter().any(|f| f == k))
                        })
                        .cloned()
                        .collect(),
                };
                (None, Value::Map(kept))
            }
            Some(schema) => {
                let st = require_struct(&value, &self.purpose())?;
                for (field, header) in self.fields.iter().zip(&self.headers) {
                    let f = schema.field_by_name(field).ok_or_else(|| {
                        ConnectError::Data(format!(
                            "Field does not exist: {field} (HeaderFrom fields)"
                        ))
                    })?;
                    let v = st.get(field).unwrap_or(&Value::Null);
                    added.push(Header {
                        key: header.clone(),
                        value: header_bytes(Some(&f.schema), v)?,
                    });
                }
                match self.operation {
                    Operation::Copy => (Some(schema.clone()), value.clone()),
                    Operation::Move => {
                        let mut ns = schema_like(&schema);
                        for f in schema
                            .fields
                            .iter()
                            .filter(|f| !self.fields.contains(&f.name))
                        {
                            ns = ns.field(&f.name, (*f.schema).clone())?;
                        }
                        let ns = Arc::new(ns);
                        let mut out = Struct::new(ns.clone())?;
                        for f in &ns.fields {
                            out.set(&f.name, st.get(&f.name).cloned().unwrap_or(Value::Null))?;
                        }
                        (Some(ns), Value::Struct(out))
                    }
                }
            }
        };
        let mut r = set_side(r, self.side, schema, value);
        r.headers.extend(added);
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Schema;

    fn props(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn header<'a>(r: &'a ConnectRecord, key: &str) -> Option<&'a [u8]> {
        r.headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
    }

    #[test]
    fn move_struct_fields_to_headers() {
        let schema = Arc::new(
            Schema::struct_()
                .name("User")
                .field("id", Schema::int32())
                .and_then(|s| s.field("tenant", Schema::string()))
                .and_then(|s| s.field("name", Schema::string()))
                .expect("schema"),
        );
        let st = Struct::new(schema.clone())
            .and_then(|s| s.put("id", 4))
            .and_then(|s| s.put("tenant", "acme"))
            .and_then(|s| s.put("name", "ann"))
            .expect("struct");
        let t = HeaderFrom::new(
            Side::Value,
            &props(&[
                ("fields", "tenant,id"),
                ("headers", "x-tenant,x-id"),
                ("operation", "move"),
            ]),
        )
        .expect("config");
        let out = t
            .apply(ConnectRecord::new("t", Some(schema), Value::Struct(st)))
            .expect("apply")
            .expect("kept");
        assert_eq!(header(&out, "x-tenant"), Some(&b"acme"[..]));
        assert_eq!(header(&out, "x-id"), Some(&b"4"[..]));
        let vs = out.value_schema.expect("schema");
        let names: Vec<&str> = vs.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["name"]);
        assert_eq!(vs.name.as_deref(), Some("User"));
        let Value::Struct(v) = out.value else {
            panic!("struct")
        };
        assert_eq!(v.get("name"), Some(&Value::from("ann")));
    }

    #[test]
    fn copy_schemaless_key_keeps_fields() {
        let t = HeaderFrom::new(
            Side::Key,
            &props(&[
                ("fields", "region,missing"),
                ("headers", "r,m"),
                ("operation", "copy"),
            ]),
        )
        .expect("config");
        let mut r = ConnectRecord::new("t", None, Value::from("v"));
        let key = Value::Map(vec![(Value::from("region"), Value::from("eu"))]);
        r.key = key.clone();
        let out = t.apply(r).expect("apply").expect("kept");
        assert_eq!(out.key, key, "copy leaves the key as it was");
        assert_eq!(header(&out, "r"), Some(&b"eu"[..]));
        assert!(
            out.headers
                .iter()
                .any(|h| h.key == "m" && h.value.is_none())
        );

        let t = HeaderFrom::new(
            Side::Key,
            &props(&[
                ("fields", "region"),
                ("headers", "r"),
                ("operation", "move"),
            ]),
        )
        .expect("config");
        let mut r = ConnectRecord::new("t", None, Value::Null);
        r.key = key;
        let out = t.apply(r).expect("apply").expect("kept");
        assert_eq!(out.key, Value::Map(vec![]));
    }

    #[test]
    fn wrong_shapes_fail() {
        let t = HeaderFrom::new(
            Side::Value,
            &props(&[("fields", "a"), ("headers", "h"), ("operation", "copy")]),
        )
        .expect("config");
        let err = t
            .apply(ConnectRecord::new("t", None, Value::from("text")))
            .unwrap_err();
        assert!(err.to_string().contains("header copy"), "{err}");
        let schema = Arc::new(Schema::struct_().field("b", Schema::int8()).expect("s"));
        let st = Struct::new(schema.clone())
            .and_then(|s| s.put("b", Value::Int8(1)))
            .expect("struct");
        let err = t
            .apply(ConnectRecord::new("t", Some(schema), Value::Struct(st)))
            .unwrap_err();
        assert!(err.to_string().contains("Field does not exist: a"), "{err}");
    }

    #[test]
    fn bad_config_names_the_key() {
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("headers", "h"), ("operation", "copy")], "fields"),
            (&[("fields", "a"), ("operation", "copy")], "headers"),
            (&[("fields", "a"), ("headers", "h")], "operation"),
            (
                &[("fields", "a"), ("headers", "h"), ("operation", "swap")],
                "operation",
            ),
            (
                &[("fields", "a,b"), ("headers", "h"), ("operation", "copy")],
                "headers",
            ),
        ];
        for (pairs, key) in cases {
            let err = HeaderFrom::new(Side::Value, &props(pairs))
                .err()
                .expect("error");
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }
}
