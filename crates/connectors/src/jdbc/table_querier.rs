//! One source of rows for the JDBC source task (Confluent's `TableQuerier`): a table or a custom
//! `query`, in one of the modes bulk, incrementing, timestamp, timestamp+incrementing. Builds the
//! SELECT for its mode, turns rows into source records, and keeps the offset that the next SELECT
//! starts after. Owns no connection (it borrows the task's [`Db`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use strom_connect::{
    ConnectError, Result, Schema, SourceOffset, SourcePartition, SourceRecord, Struct, Value,
};

use super::connection::{ColumnMeta, Db, ResultSet};
use super::dialect::TableId;
use super::schema_mapping::{
    NumericMapping, column_schema, offset_timestamp, struct_schema, timestamp_offset, to_connect,
};
use super::value::{Kind, SqlValue};

/// `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Bulk,
    Incrementing,
    Timestamp,
    TimestampIncrementing,
}

impl Mode {
    pub fn parse(v: &str) -> std::result::Result<Mode, String> {
        Ok(match v.trim() {
            "bulk" => Mode::Bulk,
            "incrementing" => Mode::Incrementing,
            "timestamp" => Mode::Timestamp,
            "timestamp+incrementing" => Mode::TimestampIncrementing,
            other => {
                return Err(format!(
                    "Invalid value {other} for configuration mode: String must be one of: \
                     bulk, timestamp, incrementing, timestamp+incrementing"
                ));
            }
        })
    }
    fn uses_incrementing(self) -> bool {
        matches!(self, Mode::Incrementing | Mode::TimestampIncrementing)
    }
    fn uses_timestamp(self) -> bool {
        matches!(self, Mode::Timestamp | Mode::TimestampIncrementing)
    }
}

/// What every querier of a task shares.
#[derive(Clone, Debug)]
pub struct QuerySettings {
    pub mode: Mode,
    pub incrementing_column: Option<String>,
    pub timestamp_columns: Vec<String>,
    pub timestamp_delay_ms: i64,
    /// `timestamp.initial`: start here instead of at the beginning (ms; -1 = now).
    pub timestamp_initial: Option<i64>,
    pub batch_max_rows: usize,
    pub validate_non_null: bool,
    pub numeric_mapping: NumericMapping,
    pub tz: super::schema_mapping::DbTimeZone,
    pub topic_prefix: String,
    pub query_suffix: String,
}

/// Where a querier reads from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Table(TableId),
    Query(String),
}

/// The offset of a querier (`TimestampIncrementingOffset`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Offset {
    pub incrementing: Option<i64>,
    /// Milliseconds since the epoch and nanoseconds within the second.
    pub timestamp: Option<(i64, u32)>,
}

impl Offset {
    pub fn to_map(&self) -> SourceOffset {
        let mut m = SourceOffset::new();
        if let Some(i) = self.incrementing {
            m.insert("incrementing".into(), json!(i));
        }
        if let Some((ms, nanos)) = self.timestamp {
            m.insert("timestamp".into(), json!(ms));
            m.insert("timestamp_nanos".into(), json!(nanos));
        }
        m
    }

    pub fn from_map(m: &SourceOffset) -> Offset {
        Offset {
            incrementing: m.get("incrementing").and_then(serde_json::Value::as_i64),
            timestamp: m
                .get("timestamp")
                .and_then(serde_json::Value::as_i64)
                .map(|ms| {
                    let nanos = m
                        .get("timestamp_nanos")
                        .and_then(serde_json::Value::as_u64)
                        .map(|n| n as u32)
                        .unwrap_or(((ms.rem_euclid(1000)) * 1_000_000) as u32);
                    (ms, nanos)
                }),
        }
    }
}

pub struct TableQuerier {
    pub origin: Origin,
    pub topic: String,
    pub partition: SourcePartition,
    pub offset: Offset,
    pub next_poll: Instant,
    /// Rows read but not yet handed to the worker.
    pub pending: VecDeque<SourceRecord>,
    /// Catalog columns (tables only), re-read when the table's columns change.
    meta: Vec<ColumnMeta>,
    /// The kinds of the timestamp columns, for binding offset values.
    ts_kind: Kind,
}

impl TableQuerier {
    pub fn new(
        origin: Origin,
        settings: &QuerySettings,
        stored: Option<&SourceOffset>,
    ) -> TableQuerier {
        let (topic, partition) = match &origin {
            Origin::Table(t) => {
                let mut p = SourcePartition::new();
                p.insert("protocol".into(), json!("1"));
                p.insert("table".into(), json!(t.qualified()));
                (format!("{}{}", settings.topic_prefix, t.table), p)
            }
            Origin::Query(_) => {
                let mut p = SourcePartition::new();
                p.insert("query".into(), json!("query"));
                (settings.topic_prefix.clone(), p)
            }
        };
        let mut offset = stored.map(Offset::from_map).unwrap_or_default();
        if offset.timestamp.is_none()
            && settings.mode.uses_timestamp()
            && let Some(initial) = settings.timestamp_initial
        {
            let ms = if initial == -1 {
                chrono::Utc::now().timestamp_millis()
            } else {
                initial
            };
            offset.timestamp = Some((ms, (ms.rem_euclid(1000) * 1_000_000) as u32));
        }
        TableQuerier {
            origin,
            topic,
            partition,
            offset,
            next_poll: Instant::now(),
            pending: VecDeque::new(),
            meta: Vec::new(),
            ts_kind: Kind::Timestamp,
        }
    }

    pub fn name(&self) -> String {
        match &self.origin {
            Origin::Table(t) => t.qualified(),
            Origin::Query(_) => "query".to_string(),
        }
    }

    /// Reads the catalog for a table and checks the configured columns exist (and are NOT NULL
    /// when `validate.non.null`). Errors name the table, column and key.
    pub fn validate(&mut self, db: &mut Db, s: &QuerySettings) -> Result<()> {
        let Origin::Table(t) = &self.origin else {
            return Ok(());
        };
        let meta = db
            .describe_table(t)
            .map_err(|e| ConnectError::connect(e.to_string()))?;
        if meta.is_empty() {
            return Err(ConnectError::connect(format!(
                "table {} does not exist (or has no columns) in {}",
                t.qualified(),
                super::url::redact(&db_url(db))
            )));
        }
        let names = || {
            meta.iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let find = |col: &str| meta.iter().find(|c| c.name.eq_ignore_ascii_case(col));
        let mut checks: Vec<(&str, &str)> = Vec::new();
        if s.mode.uses_incrementing()
            && let Some(c) = &s.incrementing_column
        {
            checks.push(("incrementing.column.name", c));
        }
        if s.mode.uses_timestamp() {
            for c in &s.timestamp_columns {
                checks.push(("timestamp.column.name", c));
            }
        }
        for (key, col) in checks {
            match find(col) {
                None => {
                    return Err(ConnectError::config(format!(
                        "{key} '{col}' is not a column of table {} (its columns: {})",
                        t.qualified(),
                        names()
                    )));
                }
                Some(m) if m.nullable && s.validate_non_null => {
                    let what = if key.starts_with("incrementing") {
                        "incrementing"
                    } else {
                        "timestamp"
                    };
                    return Err(ConnectError::config(format!(
                        "Cannot make incremental queries using {what} column {col} on {} because this \
                         column is nullable (set validate.non.null=false to allow it)",
                        t.qualified()
                    )));
                }
                Some(_) => {}
            }
        }
        // Offsets are bound as instants for zoned columns, as wall-clock times otherwise, from the
        // first query on (before any row has shown the column's type).
        if let Some(first) = s.timestamp_columns.first()
            && let Some(m) = find(first)
        {
            let t = m.data_type.to_ascii_lowercase();
            let zoned = t == "timestamp with time zone"
                || (db.dialect == super::dialect::Dialect::MySql && t == "timestamp");
            self.ts_kind = if zoned {
                Kind::TimestampTz
            } else {
                Kind::Timestamp
            };
        }
        self.meta = meta;
        Ok(())
    }

    fn ts_expr(&self, db: &Db, s: &QuerySettings) -> String {
        let cols: Vec<String> = s
            .timestamp_columns
            .iter()
            .map(|c| db.dialect.quote(c))
            .collect();
        if cols.len() == 1 {
            cols[0].clone()
        } else {
            format!("COALESCE({})", cols.join(","))
        }
    }

    /// The SELECT for this mode and its parameters.
    fn statement(&self, db: &Db, s: &QuerySettings) -> Result<(String, Vec<SqlValue>)> {
        let d = db.dialect;
        let from = match &self.origin {
            Origin::Table(t) => format!("SELECT * FROM {}", d.table(t)),
            Origin::Query(q) if s.mode == Mode::Bulk => q.clone(),
            // The user's query may have its own WHERE: wrap it so ours applies to its rows.
            Origin::Query(q) => format!("SELECT * FROM ({q}) strom_query"),
        };
        let inc = s
            .incrementing_column
            .as_deref()
            .map(|c| d.quote(c))
            .unwrap_or_default();
        let mut params = Vec::new();
        let p = |v: SqlValue, params: &mut Vec<SqlValue>| {
            params.push(v);
            d.placeholder(params.len())
        };
        let limit = format!(" LIMIT {}", s.batch_max_rows);
        let sql = match s.mode {
            Mode::Bulk => from,
            Mode::Incrementing => {
                let after = self.offset.incrementing.unwrap_or(-1);
                let ph = p(SqlValue::I64(after), &mut params);
                format!("{from} WHERE {inc} > {ph} ORDER BY {inc} ASC{limit}")
            }
            Mode::Timestamp | Mode::TimestampIncrementing => {
                let ts = self.ts_expr(db, s);
                let now = chrono::Utc::now().timestamp_millis() - s.timestamp_delay_ms;
                let end = offset_timestamp(
                    now,
                    (now.rem_euclid(1000) * 1_000_000) as u32,
                    self.ts_kind,
                    &s.tz,
                )
                .ok_or_else(|| ConnectError::connect("the clock is out of range"))?;
                let (ms, nanos) = self.offset.timestamp.unwrap_or((0, 0));
                let start = offset_timestamp(ms, nanos, self.ts_kind, &s.tz).ok_or_else(|| {
                    ConnectError::connect(format!("stored timestamp offset {ms} is out of range"))
                })?;
                let end_ph = p(end, &mut params);
                if s.mode == Mode::Timestamp {
                    // Rows sharing a timestamp must come in one result: no LIMIT here.
                    let start_ph = p(start, &mut params);
                    format!("{from} WHERE {ts} > {start_ph} AND {ts} < {end_ph} ORDER BY {ts} ASC")
                } else {
                    let after = self.offset.incrementing.unwrap_or(-1);
                    let (s1, i1, s2) = (
                        p(start.clone(), &mut params),
                        p(SqlValue::I64(after), &mut params),
                        p(start, &mut params),
                    );
                    format!(
                        "{from} WHERE {ts} < {end_ph} AND (({ts} = {s1} AND {inc} > {i1}) OR {ts} > {s2}) \
                         ORDER BY {ts},{inc} ASC{limit}"
                    )
                }
            }
        };
        let sql = if s.query_suffix.is_empty() {
            sql
        } else {
            format!("{sql} {}", s.query_suffix)
        };
        Ok((sql, params))
    }

    /// Runs one SELECT and queues its rows as records. Returns how many rows came back.
    pub fn query(&mut self, db: &mut Db, s: &QuerySettings) -> Result<usize> {
        let (sql, params) = self.statement(db, s)?;
        let rs = db
            .query(&sql, &params)
            .map_err(|e| ConnectError::connect(format!("{} : {e}", self.name())))?;
        let n = rs.rows.len();
        if n == 0 {
            return Ok(0);
        }
        // A column added since the catalog was read: read it again.
        if let Origin::Table(_) = self.origin
            && rs
                .columns
                .iter()
                .any(|c| !self.meta.iter().any(|m| m.name == c.name))
        {
            self.validate(db, s)?;
        }
        self.queue_records(rs, s)?;
        Ok(n)
    }

    fn queue_records(&mut self, rs: ResultSet, s: &QuerySettings) -> Result<()> {
        let mut fields = Vec::new();
        let mut used = Vec::new();
        for (i, c) in rs.columns.iter().enumerate() {
            let Some(kind) = c.kind else {
                tracing::warn!(table = %self.name(), column = %c.name, type_name = %c.type_name,
                    "column type is not supported; the column is left out of records");
                continue;
            };
            let meta = self.meta.iter().find(|m| m.name == c.name);
            let optional = meta.is_none_or(|m| m.nullable);
            let precision = meta.and_then(|m| m.precision);
            // Without a declared scale (PostgreSQL's bare NUMERIC, queries), the first value's.
            let scale = meta.and_then(|m| m.scale).unwrap_or_else(|| {
                rs.rows
                    .iter()
                    .find_map(|r| match &r[i] {
                        SqlValue::Decimal(d) => Some(d.scale()),
                        _ => None,
                    })
                    .unwrap_or(0)
            });
            fields.push((
                c.name.clone(),
                column_schema(kind, optional, s.numeric_mapping, precision, scale),
            ));
            used.push(i);
        }
        let table_name = match &self.origin {
            Origin::Table(t) => t.table.clone(),
            Origin::Query(_) => String::new(),
        };
        let schema: Arc<Schema> = if table_name.is_empty() {
            let mut sc = Schema::struct_();
            for (n, f) in fields.clone() {
                sc = sc.field(&n, f)?;
            }
            Arc::new(sc)
        } else {
            struct_schema(&table_name, fields.clone())?
        };
        let inc_idx = s.incrementing_column.as_deref().and_then(|c| {
            rs.columns
                .iter()
                .position(|x| x.name.eq_ignore_ascii_case(c))
        });
        let ts_idx: Vec<usize> = s
            .timestamp_columns
            .iter()
            .filter_map(|c| {
                rs.columns
                    .iter()
                    .position(|x| x.name.eq_ignore_ascii_case(c))
            })
            .collect();
        if s.mode.uses_incrementing() && inc_idx.is_none() {
            return Err(ConnectError::config(format!(
                "incrementing.column.name '{}' is not a column of {}",
                s.incrementing_column.as_deref().unwrap_or(""),
                self.name()
            )));
        }
        if s.mode.uses_timestamp() && ts_idx.len() != s.timestamp_columns.len() {
            return Err(ConnectError::config(format!(
                "timestamp.column.name '{}' names a column missing from {}",
                s.timestamp_columns.join(","),
                self.name()
            )));
        }
        if let Some(&i) = ts_idx.first()
            && let Some(c) = rs.columns.get(i)
            && c.kind == Some(Kind::TimestampTz)
        {
            self.ts_kind = Kind::TimestampTz;
        }
        for row in rs.rows {
            let mut st = Struct::new(schema.clone())?;
            for (i, (name, fs)) in used.iter().zip(fields.iter().map(|(n, f)| (n, f))) {
                let v = to_connect(&row[*i], fs, &s.tz)?;
                if v == Value::Null && !fs.optional {
                    // A NOT NULL column cannot be null; the driver said otherwise: refuse loudly.
                    return Err(ConnectError::Data(format!(
                        "column {name} of {} is NOT NULL in the catalog but a row has NULL",
                        self.name()
                    )));
                }
                st.set(name, v)?;
            }
            if let Some(i) = inc_idx {
                self.offset.incrementing = Some(row[i].as_i64().ok_or_else(|| {
                    ConnectError::Data(format!(
                        "incrementing column {} of {} holds {:?}, not an integer",
                        s.incrementing_column.as_deref().unwrap_or(""),
                        self.name(),
                        row[i]
                    ))
                })?);
            }
            if s.mode.uses_timestamp() {
                // COALESCE order: the first non-null timestamp column.
                if let Some(t) = ts_idx
                    .iter()
                    .find_map(|&i| timestamp_offset(&row[i], &s.tz))
                {
                    self.offset.timestamp = Some(t);
                }
            }
            let offset = if s.mode == Mode::Bulk {
                SourceOffset::new()
            } else {
                self.offset.to_map()
            };
            self.pending.push_back(SourceRecord::new(
                self.partition.clone(),
                offset,
                &self.topic,
                Some(schema.clone()),
                Value::Struct(st),
            ));
        }
        Ok(())
    }
}

fn db_url(db: &Db) -> String {
    let u = &db.url;
    match u.dialect {
        super::dialect::Dialect::Sqlite => format!("jdbc:sqlite:{}", u.database),
        _ => format!("{}:{} database {}", u.host, u.port, u.database),
    }
}
