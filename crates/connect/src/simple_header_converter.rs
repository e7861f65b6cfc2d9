//! How a Connect value becomes header bytes, as Kafka's `SimpleHeaderConverter` writes it.
//!
//! strom keeps headers as raw bytes (see [`crate::connector::Header`]), so a transform that puts a
//! Connect value into a header (HeaderFrom) renders it here, the way the default header converter
//! would on the way to Kafka: the value's text (`Values.convertToString`) in UTF-8. Top-level
//! strings are written as they are; strings inside arrays, maps and structs are quoted, so that
//! Kafka's reader can parse the structure back. Bytes are base64, decimals plain, Date / Time /
//! Timestamp ISO-8601 in UTC.

use base64::Engine;

use crate::converter::{decimal_scale, decimal_to_plain};
use crate::data::{
    DATE_LOGICAL_NAME, DECIMAL_LOGICAL_NAME, Schema, TIME_LOGICAL_NAME, TIMESTAMP_LOGICAL_NAME,
    Value,
};
use crate::error::Result;
use crate::json::{java_double, java_float};
use crate::transforms::format_timestamp;

const MILLIS_PER_DAY: i64 = 86_400_000;

/// The header bytes of a value; `None` for a null value (a header without a value).
pub fn header_bytes(schema: Option<&Schema>, value: &Value) -> Result<Option<Vec<u8>>> {
    if value.is_null() {
        return Ok(None);
    }
    let mut out = String::new();
    append(&mut out, schema, value, false)?;
    Ok(Some(out.into_bytes()))
}

fn append(out: &mut String, schema: Option<&Schema>, value: &Value, embedded: bool) -> Result<()> {
    let logical = schema.and_then(|s| s.name.as_deref());
    match value {
        Value::Null => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int32(days) if logical == Some(DATE_LOGICAL_NAME) => {
            out.push_str(&temporal(i64::from(*days) * MILLIS_PER_DAY));
        }
        Value::Int32(ms) if logical == Some(TIME_LOGICAL_NAME) => {
            out.push_str(&temporal(i64::from(*ms)));
        }
        Value::Int64(ms) if logical == Some(TIMESTAMP_LOGICAL_NAME) => {
            out.push_str(&temporal(*ms));
        }
        Value::Int8(v) => out.push_str(&v.to_string()),
        Value::Int16(v) => out.push_str(&v.to_string()),
        Value::Int32(v) => out.push_str(&v.to_string()),
        Value::Int64(v) => out.push_str(&v.to_string()),
        Value::Float32(v) => out.push_str(&java_float(*v)),
        Value::Float64(v) => out.push_str(&java_double(*v)),
        Value::Bytes(b) => match schema.filter(|_| logical == Some(DECIMAL_LOGICAL_NAME)) {
            // A decimal is a number to Kafka (BigDecimal), so it is never quoted.
            Some(s) => out.push_str(&decimal_to_plain(b, decimal_scale(s)?)?),
            None => quoted(
                out,
                &base64::engine::general_purpose::STANDARD.encode(b),
                embedded,
            ),
        },
        Value::String(s) => quoted(out, s, embedded),
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.value_schema.as_deref());
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append(out, item_schema, v, true)?;
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let key_schema = schema.and_then(|s| s.key_schema.as_deref());
            let value_schema = schema.and_then(|s| s.value_schema.as_deref());
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append(out, key_schema, k, true)?;
                out.push(':');
                append(out, value_schema, v, true)?;
            }
            out.push('}');
        }
        Value::Struct(st) => {
            out.push('{');
            for (i, f) in st.schema().fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quoted(out, &f.name, true);
                out.push(':');
                let v = st.get(&f.name).unwrap_or(&Value::Null);
                append(out, Some(&f.schema), v, true)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Strings inside a structure are quoted with `\` and `"` escaped; a top-level one is as it is.
fn quoted(out: &mut String, s: &str, embedded: bool) {
    if !embedded {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Kafka picks the format from the instant, not the schema: under a day is a time of day, a whole
/// day is a date, anything else a full timestamp.
fn temporal(ms: i64) -> String {
    let pattern = if (0..MILLIS_PER_DAY).contains(&ms) {
        "HH:mm:ss.SSS'Z'"
    } else if ms % MILLIS_PER_DAY == 0 {
        "yyyy-MM-dd"
    } else {
        "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    };
    format_timestamp(ms, pattern)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::data::Struct;

    fn text(schema: Option<&Schema>, v: &Value) -> String {
        let bytes = header_bytes(schema, v).expect("render").expect("not null");
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn renders_like_simple_header_converter() {
        assert_eq!(header_bytes(None, &Value::Null).expect("ok"), None);
        assert_eq!(text(None, &Value::from("a \"b\"")), "a \"b\"");
        assert_eq!(text(None, &Value::Int64(-7)), "-7");
        assert_eq!(text(None, &Value::Float64(1e10)), "1.0E10");
        assert_eq!(text(None, &Value::Boolean(true)), "true");
        assert_eq!(text(None, &Value::Bytes(vec![1, 2, 3])), "AQID");
        assert_eq!(
            text(
                None,
                &Value::Array(vec![Value::from("x"), Value::Int32(1), Value::Null])
            ),
            "[\"x\",1,null]"
        );
        assert_eq!(
            text(
                None,
                &Value::Map(vec![(Value::from("k"), Value::from("v\\"))])
            ),
            "{\"k\":\"v\\\\\"}"
        );
        let schema = Arc::new(
            Schema::struct_()
                .field("id", Schema::int32())
                .and_then(|s| s.field("at", Schema::timestamp()))
                .and_then(|s| s.field("price", Schema::decimal(2)))
                .expect("schema"),
        );
        let st = Struct::new(schema.clone())
            .and_then(|s| s.put("id", 5))
            .and_then(|s| s.put("at", Value::Int64(1_700_000_000_123)))
            .and_then(|s| s.put("price", Value::Bytes(vec![0x04, 0xd2])))
            .expect("struct");
        assert_eq!(
            text(Some(&schema), &Value::Struct(st)),
            "{\"id\":5,\"at\":2023-11-14T22:13:20.123Z,\"price\":12.34}"
        );
        assert_eq!(text(Some(&Schema::date()), &Value::Int32(1)), "1970-01-02");
    }
}
