//! `Cast$Key` / `Cast$Value` (`org.apache.kafka.connect.transforms.Cast`): casts the whole key or
//! value (`spec=int64`) or named fields of a struct or map (`spec=a:int32,b:string`) to int8,
//! int16, int32, int64, float32, float64, boolean or string, with Java's conversions: numbers
//! narrow by truncation, booleans are 1/0, strings are parsed, bytes become base64 strings.

use std::sync::Arc;

use base64::Engine;

use super::{Side, Transformation, get_side, required, set_side};
use crate::config_def::{ConfigMap, parse_list};
use crate::connector::ConnectRecord;
use crate::data::{Schema, SchemaType, Struct, Value};
use crate::error::{ConnectError, Result};

const TYPES: &str = "int8, int16, int32, int64, float32, float64, boolean, string";

pub(super) struct Cast {
    side: Side,
    /// `None` key: the whole value.
    casts: Vec<(Option<String>, SchemaType)>,
}

fn parse_type(t: &str) -> Option<SchemaType> {
    Some(match t.trim().to_ascii_lowercase().as_str() {
        "int8" => SchemaType::Int8,
        "int16" => SchemaType::Int16,
        "int32" => SchemaType::Int32,
        "int64" => SchemaType::Int64,
        "float32" => SchemaType::Float32,
        "float64" => SchemaType::Float64,
        "boolean" => SchemaType::Boolean,
        "string" => SchemaType::String,
        _ => return None,
    })
}

impl Cast {
    pub(super) fn new(side: Side, props: &ConfigMap) -> Result<Cast> {
        let spec = required(props, "spec")?;
        let bad = |why: String| {
            ConnectError::config(format!(
                "Invalid value {spec} for configuration spec: {why}"
            ))
        };
        let mut casts = Vec::new();
        let items = parse_list(spec);
        for item in &items {
            match item.split_once(':') {
                Some((field, t)) => {
                    let ty = parse_type(t)
                        .ok_or_else(|| bad(format!("unknown type {t}; expected one of {TYPES}")))?;
                    casts.push((Some(field.trim().to_string()), ty));
                }
                None if items.len() == 1 => {
                    let ty = parse_type(item).ok_or_else(|| {
                        bad(format!("unknown type {item}; expected one of {TYPES}"))
                    })?;
                    casts.push((None, ty));
                }
                None => {
                    return Err(bad(
                        "a cast of the whole value must be the only one (field:type otherwise)"
                            .into(),
                    ));
                }
            }
        }
        if casts.is_empty() {
            return Err(bad("must name at least one cast".into()));
        }
        Ok(Cast { side, casts })
    }

    fn target(&self, field: &str) -> Option<SchemaType> {
        self.casts
            .iter()
            .find(|(f, _)| f.as_deref() == Some(field))
            .map(|(_, t)| *t)
    }
}

fn schema_of(ty: SchemaType, optional: bool) -> Schema {
    let s = Schema::of(ty);
    if optional { s.optional() } else { s }
}

/// Java's `Double.toString` for the common cases (`1.0`, `0.5`, `1.0E10`).
fn java_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let s = format!("{v:E}");
        match s.split_once('E') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0E{e}"),
            _ => s,
        }
    }
}

/// Casts one value, as Kafka's `Cast.castValueToType`.
fn cast_value(v: &Value, to: SchemaType) -> Result<Value> {
    let err = || {
        ConnectError::Data(format!(
            "Unexpected type in Cast transformation: cannot cast {v} to {}",
            to.name()
        ))
    };
    if v.is_null() {
        return Ok(Value::Null);
    }
    // Numbers as i64 / f64 first.
    let as_int = |v: &Value| -> Option<i64> {
        Some(match v {
            Value::Int8(x) => *x as i64,
            Value::Int16(x) => *x as i64,
            Value::Int32(x) => *x as i64,
            Value::Int64(x) => *x,
            Value::Float32(x) => *x as i64,
            Value::Float64(x) => *x as i64,
            Value::Boolean(b) => *b as i64,
            _ => return None,
        })
    };
    let as_float = |v: &Value| -> Option<f64> {
        Some(match v {
            Value::Float32(x) => *x as f64,
            Value::Float64(x) => *x,
            other => as_int(other)? as f64,
        })
    };
    Ok(match to {
        SchemaType::String => Value::String(match v {
            Value::String(s) => s.clone(),
            Value::Float32(x) => java_float(*x as f64),
            Value::Float64(x) => java_float(*x),
            Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
            Value::Boolean(_)
            | Value::Int8(_)
            | Value::Int16(_)
            | Value::Int32(_)
            | Value::Int64(_) => v.to_string(),
            _ => return Err(err()),
        }),
        SchemaType::Boolean => Value::Boolean(match v {
            Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
            Value::Float32(_) | Value::Float64(_) => as_float(v).ok_or_else(err)? != 0.0,
            other => as_int(other).ok_or_else(err)? != 0,
        }),
        SchemaType::Float32 | SchemaType::Float64 => {
            let f = match v {
                Value::String(s) => s.trim().parse::<f64>().map_err(|_| err())?,
                other => as_float(other).ok_or_else(err)?,
            };
            if to == SchemaType::Float32 {
                Value::Float32(f as f32)
            } else {
                Value::Float64(f)
            }
        }
        SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 | SchemaType::Int64 => {
            let i = match v {
                // Java's Byte.parseByte & co. reject out-of-range text instead of wrapping.
                Value::String(s) => {
                    let i = s.trim().parse::<i64>().map_err(|_| err())?;
                    let fits = match to {
                        SchemaType::Int8 => i8::try_from(i).is_ok(),
                        SchemaType::Int16 => i16::try_from(i).is_ok(),
                        SchemaType::Int32 => i32::try_from(i).is_ok(),
                        _ => true,
                    };
                    if !fits {
                        return Err(err());
                    }
                    i
                }
                other => as_int(other).ok_or_else(err)?,
            };
            match to {
                SchemaType::Int8 => Value::Int8(i as i8),
                SchemaType::Int16 => Value::Int16(i as i16),
                SchemaType::Int32 => Value::Int32(i as i32),
                _ => Value::Int64(i),
            }
        }
        _ => return Err(err()),
    })
}

impl Transformation for Cast {
    fn apply(&self, r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = get_side(&r, self.side);
        if let Some((None, to)) = self.casts.first() {
            let to = *to;
            let new_schema = schema.map(|s| Arc::new(schema_of(to, s.optional)));
            let v = cast_value(&value, to)?;
            return Ok(Some(set_side(r, self.side, new_schema, v)));
        }
        if value.is_null() && schema.is_none() {
            return Ok(Some(r));
        }
        match (schema, &value) {
            (None, Value::Map(m)) => {
                let mut out = Vec::with_capacity(m.len());
                for (k, v) in m {
                    let cast = match k.as_str().and_then(|k| self.target(k)) {
                        Some(to) => cast_value(v, to)?,
                        None => v.clone(),
                    };
                    out.push((k.clone(), cast));
                }
                Ok(Some(set_side(r, self.side, None, Value::Map(out))))
            }
            (Some(s), _) if s.schema_type == SchemaType::Struct => {
                let mut ns = Schema::struct_();
                ns.name = s.name.clone();
                ns.version = s.version;
                ns.doc = s.doc.clone();
                ns.parameters = s.parameters.clone();
                ns.optional = s.optional;
                for f in &s.fields {
                    let fs = match self.target(&f.name) {
                        Some(to) => schema_of(to, f.schema.optional),
                        None => (*f.schema).clone(),
                    };
                    ns = ns.field(&f.name, fs)?;
                }
                let ns = Arc::new(ns);
                if value.is_null() {
                    return Ok(Some(set_side(r, self.side, Some(ns), Value::Null)));
                }
                let Value::Struct(st) = &value else {
                    return Err(ConnectError::Data(format!(
                        "Only Struct objects supported for [cast types], found: {value}"
                    )));
                };
                let mut out = Struct::new(ns.clone())?;
                for f in &s.fields {
                    let v = st.get(&f.name).cloned().unwrap_or(Value::Null);
                    let v = match self.target(&f.name) {
                        Some(to) => cast_value(&v, to)?,
                        None => v,
                    };
                    out.set(&f.name, v)?;
                }
                Ok(Some(set_side(r, self.side, Some(ns), Value::Struct(out))))
            }
            _ => Err(ConnectError::Data(format!(
                "Only Struct objects (with a schema) or Maps (without) supported for [cast types], \
                 found: {value}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> ConfigMap {
        let mut p = ConfigMap::new();
        p.insert("spec".into(), s.into());
        p
    }

    #[test]
    fn casts_like_java() {
        assert_eq!(
            cast_value(&Value::Int64(300), SchemaType::Int8).expect("c"),
            Value::Int8(44)
        );
        assert_eq!(
            cast_value(&Value::Float64(2.9), SchemaType::Int32).expect("c"),
            Value::Int32(2)
        );
        assert_eq!(
            cast_value(&Value::Boolean(true), SchemaType::Int16).expect("c"),
            Value::Int16(1)
        );
        assert_eq!(
            cast_value(&Value::Int32(0), SchemaType::Boolean).expect("c"),
            Value::Boolean(false)
        );
        assert_eq!(
            cast_value(&Value::Float64(1.0), SchemaType::String).expect("c"),
            Value::String("1.0".into())
        );
        assert_eq!(java_float(1e10), "1.0E10");
        assert_eq!(
            cast_value(&Value::String(" 42 ".into()), SchemaType::Int64).expect("c"),
            Value::Int64(42)
        );
        assert!(cast_value(&Value::String("300".into()), SchemaType::Int8).is_err());
        assert!(cast_value(&Value::String("x".into()), SchemaType::Float32).is_err());
        assert!(Cast::new(Side::Value, &spec("a:uuid")).is_err());
        assert!(Cast::new(Side::Value, &spec("int8,a:int8")).is_err());

        let s = Arc::new(
            Schema::struct_()
                .field("a", Schema::string())
                .and_then(|s| s.field("b", Schema::int32().optional()))
                .expect("schema"),
        );
        let v = Struct::new(s.clone())
            .and_then(|v| v.put("a", Value::String("7".into())))
            .expect("value");
        let c = Cast::new(Side::Value, &spec("a:int32,b:string")).expect("cast");
        let out = c
            .apply(ConnectRecord::new("t", Some(s), Value::Struct(v)))
            .expect("apply")
            .expect("kept");
        let schema = out.value_schema.expect("schema");
        assert_eq!(schema.fields[0].schema.schema_type, SchemaType::Int32);
        assert!(schema.fields[1].schema.optional);
        let Value::Struct(st) = out.value else {
            panic!("struct")
        };
        assert_eq!(st.get("a"), Some(&Value::Int32(7)));
        assert_eq!(st.get("b"), Some(&Value::Null));
    }
}
