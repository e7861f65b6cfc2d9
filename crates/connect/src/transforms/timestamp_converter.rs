//! `TimestampConverter$Key` / `TimestampConverter$Value`
//! (`org.apache.kafka.connect.transforms.TimestampConverter`): converts a timestamp, held as the
//! whole key/value or as one field (`field`), between a formatted string (`format`, a
//! SimpleDateFormat pattern in UTC), a unix number (`unix.precision` seconds, milliseconds,
//! microseconds or nanoseconds) and the Date, Time and Timestamp logical types.
//!
//! With a schema the input kind comes from the schema (a logical name, STRING or INT64); without
//! one from the value (String is a formatted string, any integer is unix). strom has no
//! `java.util.Date`, so a schemaless Date/Time/Timestamp result is an INT64 of epoch milliseconds
//! (Date truncated to midnight, Time reduced to the time of day). It owns no state and touches
//! nothing but the record side it is configured for.

use std::sync::Arc;

use super::{Side, Transformation, get_side, require_map, require_struct, set_side};
use crate::config_def::ConfigMap;
use crate::connector::ConnectRecord;
use crate::data::{DATE_LOGICAL_NAME, Schema, SchemaType, Struct, TIMESTAMP_LOGICAL_NAME, Value};
use crate::error::{ConnectError, Result};

const PURPOSE: &str = "converting timestamp formats";
const TIME_LOGICAL_NAME: &str = "org.apache.kafka.connect.data.Time";
const DAY_MS: i64 = 86_400_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Precision {
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

pub(super) struct TimestampConverter {
    side: Side,
    field: Option<String>,
    target: Kind,
    format: Option<String>,
    precision: Precision,
}

impl TimestampConverter {
    pub(super) fn new(side: Side, props: &ConfigMap) -> Result<TimestampConverter> {
        let target_raw = props.get("target.type").map(|s| s.trim()).unwrap_or("");
        let target = match target_raw {
            "string" => Kind::String,
            "unix" => Kind::Unix,
            "Date" => Kind::Date,
            "Time" => Kind::Time,
            "Timestamp" => Kind::Timestamp,
            "" => {
                return Err(ConnectError::config(
                    "Missing required configuration \"target.type\" which has no default value.",
                ));
            }
            other => {
                return Err(ConnectError::config(format!(
                    "Invalid value {other} for configuration target.type: String must be one of: \
                     string, unix, Date, Time, Timestamp"
                )));
            }
        };
        let precision = match props.get("unix.precision").map(|s| s.trim()) {
            None | Some("milliseconds") => Precision::Milliseconds,
            Some("seconds") => Precision::Seconds,
            Some("microseconds") => Precision::Microseconds,
            Some("nanoseconds") => Precision::Nanoseconds,
            Some(other) => {
                return Err(ConnectError::config(format!(
                    "Invalid value {other} for configuration unix.precision: String must be one \
                     of: nanoseconds, microseconds, milliseconds, seconds"
                )));
            }
        };
        let format = props
            .get("format")
            .map(|s| s.to_string())
            .filter(|s| !s.trim().is_empty());
        if let Some(f) = &format {
            check_pattern(f).map_err(|why| {
                ConnectError::config(format!(
                    "Invalid value {f} for configuration format: TimestampConverter requires a \
                     SimpleDateFormat-compatible pattern for string timestamps: {why}"
                ))
            })?;
        }
        if target == Kind::String && format.is_none() {
            return Err(ConnectError::config(
                "TimestampConverter requires format option to be specified when using string \
                 timestamps",
            ));
        }
        let field = props
            .get("field")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        Ok(TimestampConverter {
            side,
            field,
            target,
            format,
            precision,
        })
    }

    fn target_schema(&self, optional: bool) -> Schema {
        let s = match self.target {
            Kind::String => Schema::string(),
            Kind::Unix => Schema::int64(),
            Kind::Date => Schema::date(),
            Kind::Time => Schema::time(),
            Kind::Timestamp => Schema::timestamp(),
        };
        if optional { s.optional() } else { s }
    }

    /// The input's kind from its schema, as Kafka's `timestampTypeFromSchema`.
    fn kind_of_schema(schema: &Schema) -> Result<Kind> {
        match schema.name.as_deref() {
            Some(TIMESTAMP_LOGICAL_NAME) => return Ok(Kind::Timestamp),
            Some(DATE_LOGICAL_NAME) => return Ok(Kind::Date),
            Some(TIME_LOGICAL_NAME) => return Ok(Kind::Time),
            _ => {}
        }
        match schema.schema_type {
            SchemaType::String => Ok(Kind::String),
            SchemaType::Int64 => Ok(Kind::Unix),
            other => Err(ConnectError::Data(format!(
                "Schema {} does not correspond to a known timestamp type format",
                other.name()
            ))),
        }
    }

    /// The input's kind from a schemaless value (`inferTimestampType`).
    fn kind_of_value(v: &Value) -> Result<Kind> {
        match v {
            Value::String(_) => Ok(Kind::String),
            Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => Ok(Kind::Unix),
            other => Err(ConnectError::Data(format!(
                "TimestampConverter does not support {} objects as timestamps",
                other
                    .inferred_type()
                    .map(SchemaType::name)
                    .unwrap_or("null")
            ))),
        }
    }

    /// Epoch milliseconds of a value of the given kind.
    fn to_millis(&self, v: &Value, kind: Kind) -> Result<i64> {
        let int = |v: &Value| -> Option<i64> {
            Some(match v {
                Value::Int8(x) => *x as i64,
                Value::Int16(x) => *x as i64,
                Value::Int32(x) => *x as i64,
                Value::Int64(x) => *x,
                _ => return None,
            })
        };
        let bad = || ConnectError::Data(format!("Expected a {kind:?} timestamp, found: {v}"));
        Ok(match kind {
            Kind::String => {
                let Value::String(s) = v else {
                    return Err(bad());
                };
                // new() guarantees a format whenever strings are involved on the output side;
                // a string input needs one too.
                let fmt = self.format.as_deref().ok_or_else(|| {
                    ConnectError::Data(
                        "TimestampConverter requires format option to be specified when using \
                         string timestamps"
                            .into(),
                    )
                })?;
                parse_timestamp(s, fmt).map_err(|why| {
                    ConnectError::Data(format!(
                        "Could not parse timestamp: value ({s}) does not match pattern ({fmt}): \
                         {why}"
                    ))
                })?
            }
            Kind::Unix => {
                let n = int(v).ok_or_else(bad)?;
                match self.precision {
                    Precision::Seconds => n.saturating_mul(1000),
                    Precision::Milliseconds => n,
                    Precision::Microseconds => n / 1000,
                    Precision::Nanoseconds => n / 1_000_000,
                }
            }
            Kind::Date => int(v).ok_or_else(bad)?.saturating_mul(DAY_MS),
            Kind::Time | Kind::Timestamp => int(v).ok_or_else(bad)?,
        })
    }

    /// The target representation of epoch milliseconds; `with_schema` picks the logical
    /// encodings (Date as days, Time as INT32 milliseconds of the day).
    fn target_value(&self, ms: i64, with_schema: bool) -> Result<Value> {
        Ok(match self.target {
            Kind::String => {
                let fmt = self.format.as_deref().unwrap_or_default();
                Value::String(super::format_timestamp(ms, fmt))
            }
            Kind::Unix => Value::Int64(match self.precision {
                Precision::Seconds => ms / 1000,
                Precision::Milliseconds => ms,
                Precision::Microseconds => ms.saturating_mul(1000),
                Precision::Nanoseconds => ms.saturating_mul(1_000_000),
            }),
            Kind::Date if with_schema => {
                let days = ms.div_euclid(DAY_MS);
                Value::Int32(i32::try_from(days).map_err(|_| {
                    ConnectError::Data(format!("Timestamp {ms} is out of the Date range"))
                })?)
            }
            Kind::Date => Value::Int64(ms.div_euclid(DAY_MS) * DAY_MS),
            Kind::Time if with_schema => Value::Int32(ms.rem_euclid(DAY_MS) as i32),
            Kind::Time => Value::Int64(ms.rem_euclid(DAY_MS)),
            Kind::Timestamp => Value::Int64(ms),
        })
    }

    fn convert(&self, v: &Value, schema: Option<&Schema>) -> Result<Value> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        let kind = match schema {
            Some(s) => Self::kind_of_schema(s)?,
            None => Self::kind_of_value(v)?,
        };
        let ms = self.to_millis(v, kind)?;
        self.target_value(ms, schema.is_some())
    }
}

impl Transformation for TimestampConverter {
    fn apply(&self, r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = get_side(&r, self.side);
        let Some(field) = &self.field else {
            let ns = match &schema {
                Some(s) => {
                    Self::kind_of_schema(s)?;
                    Some(Arc::new(self.target_schema(s.optional)))
                }
                None => None,
            };
            let v = self.convert(&value, schema.as_deref())?;
            return Ok(Some(set_side(r, self.side, ns, v)));
        };
        match schema {
            None => {
                if value.is_null() {
                    return Ok(Some(r));
                }
                let m = require_map(&value, PURPOSE)?;
                let mut out = Vec::with_capacity(m.len());
                for (k, v) in m {
                    let v = if k.as_str() == Some(field.as_str()) {
                        self.convert(v, None)?
                    } else {
                        v.clone()
                    };
                    out.push((k.clone(), v));
                }
                Ok(Some(set_side(r, self.side, None, Value::Map(out))))
            }
            Some(s) => {
                let mut ns = super::schema_like(&s);
                let mut found = false;
                for f in &s.fields {
                    let fs = if &f.name == field {
                        found = true;
                        Self::kind_of_schema(&f.schema)?;
                        self.target_schema(f.schema.optional)
                    } else {
                        (*f.schema).clone()
                    };
                    ns = ns.field(&f.name, fs)?;
                }
                if !found {
                    return Err(ConnectError::Data(format!(
                        "{field} is not a valid field name"
                    )));
                }
                let ns = Arc::new(ns);
                if value.is_null() {
                    return Ok(Some(set_side(r, self.side, Some(ns), Value::Null)));
                }
                let st = require_struct(&value, PURPOSE)?;
                let mut out = Struct::new(ns.clone())?;
                for f in &s.fields {
                    let v = st.get(&f.name).cloned().unwrap_or(Value::Null);
                    let v = if &f.name == field {
                        self.convert(&v, Some(&f.schema))?
                    } else {
                        v
                    };
                    out.set(&f.name, v)?;
                }
                Ok(Some(set_side(r, self.side, Some(ns), Value::Struct(out))))
            }
        }
    }
}

/// One piece of a SimpleDateFormat pattern.
#[derive(Debug, PartialEq)]
enum Token {
    Field(char, usize),
    Literal(String),
}

fn tokenize(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let mut lit = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                lit.push(chars[i]);
                i += 1;
            }
            i += 1;
            // '' is a literal quote.
            out.push(Token::Literal(if lit.is_empty() {
                "'".into()
            } else {
                lit
            }));
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        if c.is_ascii_alphabetic() {
            out.push(Token::Field(c, n));
        } else {
            out.push(Token::Literal(chars[i..i + n].iter().collect()));
        }
        i += n;
    }
    out
}

/// Rejects pattern letters strom cannot format and parse (time zones, week fields, names).
fn check_pattern(pattern: &str) -> std::result::Result<(), String> {
    for t in tokenize(pattern) {
        if let Token::Field(c, _) = t
            && !matches!(c, 'y' | 'M' | 'd' | 'H' | 'm' | 's' | 'S')
        {
            return Err(format!(
                "pattern letter '{c}' is not supported (supported: y M d H m s S, quoted text; \
                 times are UTC)"
            ));
        }
    }
    Ok(())
}

/// Parses `text` with a SimpleDateFormat pattern (the subset `check_pattern` accepts) in UTC.
/// A numeric field followed directly by another numeric field takes exactly its width, as Java's
/// parser does for adjacent fields; otherwise it takes every digit there is.
fn parse_timestamp(text: &str, pattern: &str) -> std::result::Result<i64, String> {
    let tokens = tokenize(pattern);
    let bytes = text.as_bytes();
    let mut pos = 0;
    let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut ms) = (1970i64, 1i64, 1i64, 0, 0, 0, 0);
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Literal(l) => {
                if !text[pos..].starts_with(l.as_str()) {
                    return Err(format!("expected '{l}' at position {pos}"));
                }
                pos += l.len();
            }
            Token::Field(c, n) => {
                let adjacent = matches!(tokens.get(i + 1), Some(Token::Field(..)));
                let start = pos;
                while pos < bytes.len()
                    && bytes[pos].is_ascii_digit()
                    && (!adjacent || pos - start < *n)
                {
                    pos += 1;
                }
                if pos == start {
                    return Err(format!("expected digits at position {start}"));
                }
                let v: i64 = text[start..pos]
                    .parse()
                    .map_err(|_| format!("number too large at position {start}"))?;
                match c {
                    'y' if *n == 2 && pos - start == 2 => y = 2000 + v,
                    'y' => y = v,
                    'M' => mo = v,
                    'd' => d = v,
                    'H' => h = v,
                    'm' => mi = v,
                    's' => s = v,
                    'S' => ms = v,
                    other => return Err(format!("pattern letter '{other}' is not supported")),
                }
            }
        }
    }
    if pos != text.len() {
        return Err(format!("unparsed text at position {pos}"));
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err("a field is out of range".into());
    }
    let days = days_from_civil(y, mo, d);
    Ok(days * DAY_MS + h * 3_600_000 + mi * 60_000 + s * 1000 + ms)
}

/// (year, month, day) to days since 1970-01-01 in the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

    // 2017-01-02 03:04:05.006 UTC, the instant Kafka's own TimestampConverterTest uses.
    const MS: i64 = 1_483_326_245_006;

    #[test]
    fn parses_and_formats_patterns() {
        let f = "yyyy-MM-dd'T'HH:mm:ss.SSS";
        assert_eq!(
            super::super::format_timestamp(MS, f),
            "2017-01-02T03:04:05.006"
        );
        assert_eq!(parse_timestamp("2017-01-02T03:04:05.006", f), Ok(MS));
        assert_eq!(parse_timestamp("20170102", "yyyyMMdd"), Ok(17_168 * DAY_MS));
        assert!(parse_timestamp("2017-13-02T03:04:05.006", f).is_err());
        assert!(parse_timestamp("2017-01-02", f).is_err());
        assert!(check_pattern("yyyy-MM-dd z").is_err());
    }

    #[test]
    fn whole_value_schemaless_and_with_schema() {
        // unix (ms) -> string, schemaless.
        let t = TimestampConverter::new(
            Side::Value,
            &props(&[("target.type", "string"), ("format", "yyyy-MM-dd HH:mm:ss")]),
        )
        .expect("config");
        let out = t
            .apply(ConnectRecord::new("t", None, Value::Int64(MS)))
            .expect("apply")
            .expect("kept");
        assert_eq!(out.value, Value::String("2017-01-02 03:04:05".into()));

        // Timestamp logical -> Date logical keeps optionality and encodes days.
        let t = TimestampConverter::new(Side::Value, &props(&[("target.type", "Date")]))
            .expect("config");
        let out = t
            .apply(ConnectRecord::new(
                "t",
                Some(Arc::new(Schema::timestamp().optional())),
                Value::Int64(MS),
            ))
            .expect("apply")
            .expect("kept");
        let s = out.value_schema.expect("schema");
        assert_eq!(s.name.as_deref(), Some(DATE_LOGICAL_NAME));
        assert!(s.optional);
        assert_eq!(out.value, Value::Int32(17_168));

        // string -> unix seconds.
        let t = TimestampConverter::new(
            Side::Value,
            &props(&[
                ("target.type", "unix"),
                ("unix.precision", "seconds"),
                ("format", "yyyy-MM-dd'T'HH:mm:ss.SSS"),
            ]),
        )
        .expect("config");
        let out = t
            .apply(ConnectRecord::new(
                "t",
                Some(Arc::new(Schema::string())),
                Value::String("2017-01-02T03:04:05.006".into()),
            ))
            .expect("apply")
            .expect("kept");
        assert_eq!(out.value, Value::Int64(MS / 1000));
        assert_eq!(
            out.value_schema.expect("schema").schema_type,
            SchemaType::Int64
        );

        // A schema that is no timestamp is refused.
        assert!(
            t.apply(ConnectRecord::new(
                "t",
                Some(Arc::new(Schema::boolean())),
                Value::Boolean(true)
            ))
            .is_err()
        );
    }

    #[test]
    fn struct_and_map_fields() {
        let t = TimestampConverter::new(
            Side::Value,
            &props(&[
                ("target.type", "Timestamp"),
                ("field", "ts"),
                ("unix.precision", "microseconds"),
            ]),
        )
        .expect("config");
        let schema = Arc::new(
            Schema::struct_()
                .field("id", Schema::int32())
                .and_then(|s| s.field("ts", Schema::int64()))
                .expect("schema"),
        );
        let v = Struct::new(schema.clone())
            .and_then(|s| s.put("id", Value::Int32(1)))
            .and_then(|s| s.put("ts", Value::Int64(MS * 1000 + 7)))
            .expect("value");
        let out = t
            .apply(ConnectRecord::new("t", Some(schema), Value::Struct(v)))
            .expect("apply")
            .expect("kept");
        let s = out.value_schema.expect("schema");
        assert_eq!(
            s.field_by_name("ts")
                .and_then(|f| f.schema.name.clone())
                .as_deref(),
            Some(TIMESTAMP_LOGICAL_NAME)
        );
        let Value::Struct(st) = out.value else {
            panic!("struct")
        };
        assert_eq!(st.get("ts"), Some(&Value::Int64(MS)));
        assert_eq!(st.get("id"), Some(&Value::Int32(1)));

        let t = TimestampConverter::new(
            Side::Key,
            &props(&[("target.type", "Time"), ("field", "ts")]),
        )
        .expect("config");
        let mut r = ConnectRecord::new("t", None, Value::Null);
        r.key = Value::Map(vec![(Value::String("ts".into()), Value::Int64(MS))]);
        let out = t.apply(r).expect("apply").expect("kept");
        assert_eq!(
            out.key,
            Value::Map(vec![(
                Value::String("ts".into()),
                Value::Int64(3 * 3_600_000 + 4 * 60_000 + 5006)
            )])
        );
    }

    #[test]
    fn bad_configs_name_the_key() {
        let err = |p: &[(&str, &str)]| {
            TimestampConverter::new(Side::Value, &props(p))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(&[]).contains("target.type"));
        assert!(err(&[("target.type", "Instant")]).contains("target.type"));
        assert!(err(&[("target.type", "string")]).contains("format"));
        assert!(
            err(&[("target.type", "unix"), ("unix.precision", "hours")]).contains("unix.precision")
        );
    }
}
