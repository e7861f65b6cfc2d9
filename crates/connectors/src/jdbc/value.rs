//! Values as they travel between the database drivers and the JDBC connectors: [`SqlValue`] (one
//! cell) and [`Kind`] (a column's type, database-neutral). Owns no SQL and no Connect schemas.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;

/// A column's type, as far as the connectors care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
    /// Exact numeric; `scale` when the database says it.
    Decimal {
        precision: Option<u32>,
        scale: Option<u32>,
    },
    Text,
    Bytes,
    Date,
    Time,
    /// Date and time without a zone (read and written in `db.timezone`).
    Timestamp,
    /// An instant (PostgreSQL `timestamptz`, MySQL `TIMESTAMP`).
    TimestampTz,
}

/// One cell. `Null` keeps the kind so that typed databases (PostgreSQL) get a typed NULL.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Null(Kind),
    Bool(bool),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal(Decimal),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
}

impl SqlValue {
    pub fn is_null(&self) -> bool {
        matches!(self, SqlValue::Null(_))
    }

    /// The value as an i64, for incrementing offsets.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            SqlValue::I8(v) => Some(i64::from(*v)),
            SqlValue::I16(v) => Some(i64::from(*v)),
            SqlValue::I32(v) => Some(i64::from(*v)),
            SqlValue::I64(v) => Some(*v),
            SqlValue::Decimal(d) if d.fract().is_zero() => i64::try_from(*d).ok(),
            _ => None,
        }
    }
}
