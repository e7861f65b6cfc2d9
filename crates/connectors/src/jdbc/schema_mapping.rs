//! Between database columns and Connect's data model: the Connect schema of a column (with
//! `numeric.mapping`), cell → Connect value for the source, Connect value → cell for the sink, and
//! `db.timezone`. Owns no SQL and no connections.

use std::sync::Arc;

use chrono::{
    DateTime, Duration as ChronoDuration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Timelike, Utc,
};
use rust_decimal::Decimal;
use strom_connect::data::{
    DATE_LOGICAL_NAME, DECIMAL_LOGICAL_NAME, TIME_LOGICAL_NAME, TIMESTAMP_LOGICAL_NAME,
};
use strom_connect::{ConnectError, Schema, SchemaType, Value};

use super::value::{Kind, SqlValue};

/// `numeric.mapping`: how NUMERIC/DECIMAL columns become Connect types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumericMapping {
    /// Always the Decimal logical type.
    None,
    /// Integers by precision when the scale is 0.
    PrecisionOnly,
    /// Integers when the scale is 0, FLOAT64 when a double holds the precision, else Decimal.
    BestFit,
    /// Like best_fit, but any fractional column becomes FLOAT64.
    BestFitEagerDouble,
}

impl NumericMapping {
    pub fn parse(v: &str) -> Result<NumericMapping, String> {
        Ok(match v.trim().to_ascii_lowercase().as_str() {
            "" | "none" => NumericMapping::None,
            "precision_only" => NumericMapping::PrecisionOnly,
            "best_fit" => NumericMapping::BestFit,
            "best_fit_eager_double" => NumericMapping::BestFitEagerDouble,
            other => {
                return Err(format!(
                    "Invalid value {other} for configuration numeric.mapping: \
                     String must be one of: none, precision_only, best_fit, best_fit_eager_double"
                ));
            }
        })
    }
}

/// `db.timezone`: the zone DATETIME / TIMESTAMP WITHOUT TIME ZONE values are in. Like Confluent's
/// (a Java `TimeZone` id): IANA region names (`Asia/Seoul`, `America/New_York`), UTC/GMT/Z, and
/// fixed offsets (`+09:00`, `UTC+9`, `GMT-05:30`). A region's offset follows its daylight-saving
/// rules, so it is worked out per value, never once at start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DbTimeZone {
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

impl DbTimeZone {
    /// The offset from UTC in force at the UTC instant `utc`.
    fn offset_at(&self, utc: &NaiveDateTime) -> FixedOffset {
        match self {
            DbTimeZone::Fixed(f) => *f,
            DbTimeZone::Named(z) => z.offset_from_utc_datetime(utc).fix(),
        }
    }

    /// The offset for a local (wall-clock) date-time; in a daylight-saving gap or overlap the
    /// earlier reading wins, as `java.util.Calendar` lenient mode does for the gap's later side.
    fn offset_of_local(&self, local: &NaiveDateTime) -> FixedOffset {
        match self {
            DbTimeZone::Fixed(f) => *f,
            DbTimeZone::Named(z) => match z.offset_from_local_datetime(local) {
                chrono::LocalResult::Single(o) | chrono::LocalResult::Ambiguous(o, _) => o.fix(),
                // A wall-clock time skipped by a spring-forward: read it with the offset before.
                chrono::LocalResult::None => {
                    let before = *local - ChronoDuration::hours(3);
                    self.offset_of_local(&before)
                }
            },
        }
    }
}

pub fn parse_timezone(v: &str) -> Result<DbTimeZone, String> {
    let t = v.trim();
    let utc = FixedOffset::east_opt(0).ok_or("bad offset")?;
    if t.is_empty()
        || ["UTC", "GMT", "Z", "ETC/UTC", "ETC/GMT", "UCT"]
            .contains(&t.to_ascii_uppercase().as_str())
    {
        return Ok(DbTimeZone::Fixed(utc));
    }
    if let Ok(z) = t.parse::<chrono_tz::Tz>() {
        return Ok(DbTimeZone::Named(z));
    }
    let body = t
        .strip_prefix("UTC")
        .or_else(|| t.strip_prefix("GMT"))
        .unwrap_or(t);
    let bad = || {
        format!(
            "Invalid value {t} for configuration db.timezone: not a time zone name (such as \
             Asia/Seoul or UTC) nor a fixed offset (such as +09:00 or UTC-05:00)"
        )
    };
    let (sign, rest) = match body.chars().next() {
        Some('+') => (1, &body[1..]),
        Some('-') => (-1, &body[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => (&rest[..2], &rest[2..]),
        None => (rest, "0"),
    };
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if h > 18 || m > 59 {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
        .map(DbTimeZone::Fixed)
        .ok_or_else(bad)
}

/// The Connect schema of a column. `scale` is the decimal scale to use (from the catalog, or
/// from the values when the catalog has none).
pub fn column_schema(
    kind: Kind,
    optional: bool,
    mapping: NumericMapping,
    precision: Option<u32>,
    scale: u32,
) -> Schema {
    let s = match kind {
        Kind::Bool => Schema::boolean(),
        Kind::I8 => Schema::int8(),
        Kind::I16 => Schema::int16(),
        Kind::I32 => Schema::int32(),
        Kind::I64 => Schema::int64(),
        Kind::F32 => Schema::float32(),
        Kind::F64 => Schema::float64(),
        Kind::Decimal { .. } => match numeric_target(mapping, precision, scale) {
            Some(t) => Schema::of(t),
            None => Schema::decimal(scale as i32),
        },
        Kind::Text => Schema::string(),
        Kind::Bytes => Schema::bytes(),
        Kind::Date => Schema::date(),
        Kind::Time => Schema::time(),
        Kind::Timestamp | Kind::TimestampTz => Schema::timestamp(),
    };
    if optional { s.optional() } else { s }
}

/// The primitive a decimal column maps to under `numeric.mapping`, or `None` for Decimal.
fn numeric_target(
    mapping: NumericMapping,
    precision: Option<u32>,
    scale: u32,
) -> Option<SchemaType> {
    let p = precision.filter(|p| *p > 0)?;
    let int_by_precision = || {
        Some(if p > 9 {
            SchemaType::Int64
        } else if p > 4 {
            SchemaType::Int32
        } else if p > 2 {
            SchemaType::Int16
        } else {
            SchemaType::Int8
        })
    };
    match mapping {
        NumericMapping::None => None,
        NumericMapping::PrecisionOnly if scale == 0 && p < 19 => int_by_precision(),
        NumericMapping::PrecisionOnly => None,
        NumericMapping::BestFit | NumericMapping::BestFitEagerDouble if scale == 0 && p < 19 => {
            int_by_precision()
        }
        NumericMapping::BestFit if p <= 15 => Some(SchemaType::Float64),
        NumericMapping::BestFitEagerDouble if scale > 0 => Some(SchemaType::Float64),
        _ => None,
    }
}

/// Milliseconds since the epoch of a zone-less date-time read in `tz`.
pub fn naive_to_millis(t: &NaiveDateTime, tz: &DbTimeZone) -> i64 {
    (*t - ChronoDuration::seconds(i64::from(tz.offset_of_local(t).local_minus_utc())))
        .and_utc()
        .timestamp_millis()
}

/// A zone-less date-time in `tz` for milliseconds since the epoch.
pub fn millis_to_naive(ms: i64, tz: &DbTimeZone) -> Option<NaiveDateTime> {
    let utc = DateTime::from_timestamp_millis(ms)?.naive_utc();
    Some(utc + ChronoDuration::seconds(i64::from(tz.offset_at(&utc).local_minus_utc())))
}

/// A cell as a Connect value of `schema` (made by [`column_schema`]).
pub fn to_connect(v: &SqlValue, schema: &Schema, tz: &DbTimeZone) -> Result<Value, ConnectError> {
    let epoch =
        NaiveDate::from_ymd_opt(1970, 1, 1).ok_or_else(|| ConnectError::Data("epoch".into()))?;
    Ok(match v {
        SqlValue::Null(_) => Value::Null,
        SqlValue::Bool(b) => Value::Boolean(*b),
        SqlValue::I8(x) => Value::Int8(*x),
        SqlValue::I16(x) => Value::Int16(*x),
        SqlValue::I32(x) => Value::Int32(*x),
        SqlValue::I64(x) => Value::Int64(*x),
        SqlValue::F32(x) => Value::Float32(*x),
        SqlValue::F64(x) => Value::Float64(*x),
        SqlValue::Decimal(d) => decimal_to_connect(*d, schema)?,
        SqlValue::Text(s) => Value::String(s.clone()),
        SqlValue::Bytes(b) => Value::Bytes(b.clone()),
        SqlValue::Date(d) => Value::Int32((*d - epoch).num_days() as i32),
        SqlValue::Time(t) => {
            Value::Int32((t.num_seconds_from_midnight() * 1000 + t.nanosecond() / 1_000_000) as i32)
        }
        SqlValue::Timestamp(t) => Value::Int64(naive_to_millis(t, tz)),
        SqlValue::TimestampTz(t) => Value::Int64(t.timestamp_millis()),
    })
}

fn decimal_to_connect(d: Decimal, schema: &Schema) -> Result<Value, ConnectError> {
    Ok(match schema.schema_type {
        SchemaType::Int8 => Value::Int8(i8::try_from(d).map_err(|e| range(d, e))?),
        SchemaType::Int16 => Value::Int16(i16::try_from(d).map_err(|e| range(d, e))?),
        SchemaType::Int32 => Value::Int32(i32::try_from(d).map_err(|e| range(d, e))?),
        SchemaType::Int64 => Value::Int64(i64::try_from(d).map_err(|e| range(d, e))?),
        SchemaType::Float64 => Value::Float64(f64::try_from(d).map_err(|e| range(d, e))?),
        _ => {
            let mut d = d;
            d.rescale(decimal_scale(schema));
            Value::Bytes(unscaled_bytes(d.mantissa()))
        }
    })
}

fn range(d: Decimal, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Data(format!(
        "numeric value {d} does not fit its mapped type: {e}"
    ))
}

/// The scale parameter of a Decimal schema.
pub fn decimal_scale(schema: &Schema) -> u32 {
    schema
        .parameters
        .as_ref()
        .and_then(|ps| ps.iter().find(|(k, _)| k == "scale"))
        .and_then(|(_, v)| v.parse::<u32>().ok())
        .unwrap_or(0)
}

/// The shortest two's-complement big-endian bytes of an integer (Java's `BigInteger.toByteArray`).
pub fn unscaled_bytes(n: i128) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

fn unscaled_from_bytes(b: &[u8]) -> Option<i128> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let fill = if b[0] & 0x80 != 0 { 0xff } else { 0x00 };
    let mut buf = [fill; 16];
    buf[16 - b.len()..].copy_from_slice(b);
    Some(i128::from_be_bytes(buf))
}

/// The column kind a Connect schema is written as (for typed NULLs), `None` for array/map/struct.
pub fn kind_of_schema(s: &Schema) -> Option<Kind> {
    Some(match (s.name.as_deref(), s.schema_type) {
        (Some(DECIMAL_LOGICAL_NAME), _) => Kind::Decimal {
            precision: None,
            scale: Some(decimal_scale(s)),
        },
        (Some(DATE_LOGICAL_NAME), _) => Kind::Date,
        (Some(TIME_LOGICAL_NAME), _) => Kind::Time,
        (Some(TIMESTAMP_LOGICAL_NAME), _) => Kind::Timestamp,
        (_, SchemaType::Boolean) => Kind::Bool,
        (_, SchemaType::Int8) => Kind::I8,
        (_, SchemaType::Int16) => Kind::I16,
        (_, SchemaType::Int32) => Kind::I32,
        (_, SchemaType::Int64) => Kind::I64,
        (_, SchemaType::Float32) => Kind::F32,
        (_, SchemaType::Float64) => Kind::F64,
        (_, SchemaType::String) => Kind::Text,
        (_, SchemaType::Bytes) => Kind::Bytes,
        (_, SchemaType::Array | SchemaType::Map | SchemaType::Struct) => return None,
    })
}

/// A Connect value of `schema` as a cell to bind (sink side). `what` names the field for errors.
pub fn from_connect(
    v: &Value,
    schema: &Schema,
    tz: &DbTimeZone,
    what: &str,
) -> Result<SqlValue, ConnectError> {
    let kind = kind_of_schema(schema).ok_or_else(|| {
        ConnectError::Data(format!(
            "{what}: schema type {} cannot be written to a table column",
            schema.schema_type.name()
        ))
    })?;
    let bad = || {
        ConnectError::Data(format!(
            "{what}: value {v:?} does not match its schema ({})",
            schema.name.as_deref().unwrap_or(schema.schema_type.name())
        ))
    };
    Ok(match (kind, v) {
        (_, Value::Null) => SqlValue::Null(kind),
        (Kind::Decimal { .. }, Value::Bytes(b)) => {
            let n = unscaled_from_bytes(b).ok_or_else(bad)?;
            SqlValue::Decimal(
                Decimal::try_from_i128_with_scale(n, decimal_scale(schema)).map_err(|_| bad())?,
            )
        }
        (Kind::Date, Value::Int32(days)) => SqlValue::Date(
            NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|e| e.checked_add_signed(ChronoDuration::days(i64::from(*days))))
                .ok_or_else(bad)?,
        ),
        (Kind::Time, Value::Int32(ms)) => SqlValue::Time(
            NaiveTime::from_num_seconds_from_midnight_opt(
                (*ms / 1000) as u32,
                ((*ms % 1000) * 1_000_000) as u32,
            )
            .ok_or_else(bad)?,
        ),
        (Kind::Timestamp, Value::Int64(ms)) => {
            SqlValue::Timestamp(millis_to_naive(*ms, tz).ok_or_else(bad)?)
        }
        (Kind::Bool, Value::Boolean(b)) => SqlValue::Bool(*b),
        (Kind::I8, Value::Int8(x)) => SqlValue::I8(*x),
        (Kind::I16, Value::Int16(x)) => SqlValue::I16(*x),
        (Kind::I32, Value::Int32(x)) => SqlValue::I32(*x),
        (Kind::I64, Value::Int64(x)) => SqlValue::I64(*x),
        (Kind::F32, Value::Float32(x)) => SqlValue::F32(*x),
        (Kind::F64, Value::Float64(x)) => SqlValue::F64(*x),
        (Kind::Text, Value::String(s)) => SqlValue::Text(s.clone()),
        (Kind::Bytes, Value::Bytes(b)) => SqlValue::Bytes(b.clone()),
        _ => return Err(bad()),
    })
}

/// An offset timestamp (milliseconds plus nanoseconds within the second) as a cell to compare a
/// column of `kind` with.
pub fn offset_timestamp(ms: i64, nanos: u32, kind: Kind, tz: &DbTimeZone) -> Option<SqlValue> {
    let secs = ms.div_euclid(1000);
    let utc: DateTime<Utc> = DateTime::from_timestamp(secs, nanos)?;
    Some(match kind {
        Kind::TimestampTz => SqlValue::TimestampTz(utc),
        _ => {
            let u = utc.naive_utc();
            SqlValue::Timestamp(
                u + ChronoDuration::seconds(i64::from(tz.offset_at(&u).local_minus_utc())),
            )
        }
    })
}

/// A timestamp cell as (milliseconds since the epoch, nanoseconds within the second).
pub fn timestamp_offset(v: &SqlValue, tz: &DbTimeZone) -> Option<(i64, u32)> {
    match v {
        SqlValue::Timestamp(t) => Some((naive_to_millis(t, tz), t.nanosecond() % 1_000_000_000)),
        SqlValue::TimestampTz(t) => Some((t.timestamp_millis(), t.nanosecond() % 1_000_000_000)),
        _ => None,
    }
}

/// A struct schema named after the table, fields in result order.
pub fn struct_schema(
    name: &str,
    fields: Vec<(String, Schema)>,
) -> Result<Arc<Schema>, ConnectError> {
    let mut s = Schema::struct_().name(name);
    for (n, f) in fields {
        s = s.field(&n, f)?;
    }
    Ok(Arc::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip_as_java_bytes() {
        for (n, bytes) in [
            (0i128, vec![0u8]),
            (127, vec![0x7f]),
            (128, vec![0x00, 0x80]),
            (-1, vec![0xff]),
            (-129, vec![0xff, 0x7f]),
            (12345, vec![0x30, 0x39]),
        ] {
            assert_eq!(unscaled_bytes(n), bytes, "{n}");
            assert_eq!(unscaled_from_bytes(&bytes), Some(n));
        }
        let s = Schema::decimal(2);
        let v = to_connect(
            &SqlValue::Decimal(Decimal::new(12345, 2)),
            &s,
            &parse_timezone("UTC").unwrap(),
        )
        .unwrap();
        assert_eq!(v, Value::Bytes(vec![0x30, 0x39]));
        let back = from_connect(&v, &s, &parse_timezone("UTC").unwrap(), "f").unwrap();
        assert_eq!(back, SqlValue::Decimal(Decimal::new(12345, 2)));
    }

    #[test]
    fn timezones_and_timestamps() {
        let utc = parse_timezone("UTC").unwrap();
        let kst = parse_timezone("+09:00").unwrap();
        assert_eq!(parse_timezone("UTC+9").unwrap(), kst);
        assert!(
            parse_timezone("Mars/Olympus")
                .unwrap_err()
                .contains("db.timezone")
        );
        // Region names, as Confluent (Java TimeZone ids) accepts them.
        let seoul = parse_timezone("Asia/Seoul").unwrap();
        let t9s = NaiveDate::from_ymd_opt(2024, 7, 21)
            .unwrap()
            .and_hms_opt(13, 34, 42)
            .unwrap();
        assert_eq!(naive_to_millis(&t9s, &seoul), 1721536482000);
        assert_eq!(millis_to_naive(1721536482000, &seoul), Some(t9s));
        // New York follows daylight saving: -04:00 in July, -05:00 in January.
        let ny = parse_timezone("America/New_York").unwrap();
        let summer = NaiveDate::from_ymd_opt(2024, 7, 21)
            .unwrap()
            .and_hms_opt(0, 34, 42)
            .unwrap();
        assert_eq!(naive_to_millis(&summer, &ny), 1721536482000);
        let winter = NaiveDate::from_ymd_opt(2024, 1, 21)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        assert_eq!(naive_to_millis(&winter, &ny), 1705813200000);
        assert_eq!(millis_to_naive(1705813200000, &ny), Some(winter));
        match offset_timestamp(1721536482000, 0, Kind::Timestamp, &seoul) {
            Some(SqlValue::Timestamp(t)) => assert_eq!(t, t9s),
            other => panic!("{other:?}"),
        }
        let t = NaiveDate::from_ymd_opt(2024, 7, 21)
            .unwrap()
            .and_hms_opt(4, 34, 42)
            .unwrap();
        assert_eq!(naive_to_millis(&t, &utc), 1721536482000);
        // 13:34:42 in Seoul is the same instant.
        let t9 = NaiveDate::from_ymd_opt(2024, 7, 21)
            .unwrap()
            .and_hms_opt(13, 34, 42)
            .unwrap();
        assert_eq!(naive_to_millis(&t9, &kst), 1721536482000);
        assert_eq!(millis_to_naive(1721536482000, &kst), Some(t9));
    }

    #[test]
    fn numeric_mapping_picks_types() {
        let d = Kind::Decimal {
            precision: None,
            scale: None,
        };
        let s = column_schema(d, false, NumericMapping::BestFit, Some(5), 0);
        assert_eq!(s.schema_type, SchemaType::Int32);
        let s = column_schema(d, false, NumericMapping::BestFit, Some(10), 2);
        assert_eq!(s.schema_type, SchemaType::Float64);
        let s = column_schema(d, true, NumericMapping::None, Some(10), 2);
        assert_eq!(
            (s.name.as_deref(), s.optional),
            (Some(DECIMAL_LOGICAL_NAME), true)
        );
        let s = column_schema(d, false, NumericMapping::PrecisionOnly, Some(10), 2);
        assert_eq!(s.name.as_deref(), Some(DECIMAL_LOGICAL_NAME));
    }
}
