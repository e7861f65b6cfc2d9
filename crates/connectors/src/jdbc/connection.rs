//! One database connection for one JDBC connector or task ([`Db`]): connecting from a JDBC URL,
//! running statements with bound [`SqlValue`]s, reading rows back as [`SqlValue`]s, and the
//! catalog look-ups the connectors need (tables, columns).
//!
//! Tasks are synchronous (the worker gives each its own thread), the drivers (sqlx) are async:
//! each [`Db`] owns a single-threaded tokio runtime and blocks on it. This module knows nothing of
//! Connect records; SQL text comes from [`super::dialect`].

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlRow};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, Column, ConnectOptions, Row, TypeInfo, ValueRef};

use super::dialect::{Dialect, TableId};
use super::url::{JdbcUrl, UrlError, redact};
use super::value::{Kind, SqlValue};

/// How long one connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one statement may run before the task gives up on it.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Everything that can go wrong talking to the database. Messages name the URL (password removed),
/// the user and the statement; never the password.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("cannot connect to {url} as user '{user}': {source}")]
    Connect {
        url: String,
        user: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{source} (statement: {sql})")]
    Sql {
        sql: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl DbError {
    /// Connection-level failures worth a retry (after reconnecting), as opposed to statements the
    /// database refused.
    pub fn is_transient(&self) -> bool {
        let e = match self {
            DbError::Connect { source, .. } | DbError::Sql { source, .. } => source,
            _ => return false,
        };
        matches!(
            e,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::WorkerCrashed
        )
    }
}

/// Where and how to connect (`connection.*` keys).
#[derive(Clone, Debug)]
pub struct ConnectSettings {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// `connection.attempts`: tries for connection-level failures (refused, reset); a refused
    /// login fails at once.
    pub attempts: u32,
    pub backoff: Duration,
    /// Whether a missing SQLite file may be created (sinks yes, sources no).
    pub create_sqlite_file: bool,
}

enum Conn {
    Pg(PgConnection),
    My(MySqlConnection),
    Lite(SqliteConnection),
}

/// A column of a result.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultColumn {
    pub name: String,
    /// The driver's type name (`INT4`, `VARCHAR`, `DATETIME`, ...).
    pub type_name: String,
    /// `None` for types the connectors do not map (the column is skipped, as Confluent does).
    pub kind: Option<Kind>,
}

/// Rows of a query, every cell decoded.
#[derive(Clone, Debug, Default)]
pub struct ResultSet {
    pub columns: Vec<ResultColumn>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// A table column from the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnMeta {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    pub precision: Option<u32>,
    pub scale: Option<u32>,
}

/// An open connection and the runtime that drives it.
pub struct Db {
    rt: tokio::runtime::Runtime,
    conn: Conn,
    pub dialect: Dialect,
    pub url: JdbcUrl,
    settings: ConnectSettings,
}

impl Db {
    /// Connects, retrying connection-level failures `attempts` times with `backoff` between.
    pub fn connect(settings: &ConnectSettings) -> Result<Db, DbError> {
        let url = JdbcUrl::parse(&settings.url)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DbError::Other(format!("cannot start the database runtime: {e}")))?;
        let conn = open(&rt, &url, settings)?;
        Ok(Db {
            rt,
            conn,
            dialect: url.dialect,
            url,
            settings: settings.clone(),
        })
    }

    /// Drops the connection and opens a new one (after a connection-level failure).
    pub fn reconnect(&mut self) -> Result<(), DbError> {
        self.conn = open(&self.rt, &self.url, &self.settings)?;
        Ok(())
    }

    /// Runs a statement; returns the rows it touched.
    pub fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, DbError> {
        let wrap = |source| DbError::Sql {
            sql: sql.to_string(),
            source,
        };
        let fut = async {
            match &mut self.conn {
                Conn::Pg(c) => {
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for p in params {
                        q = bind_pg(q, p);
                    }
                    q.execute(c).await.map(|r| r.rows_affected())
                }
                Conn::My(c) => {
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for p in params {
                        q = bind_my(q, p);
                    }
                    q.execute(c).await.map(|r| r.rows_affected())
                }
                Conn::Lite(c) => {
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for p in params {
                        q = bind_lite(q, p);
                    }
                    q.execute(c).await.map(|r| r.rows_affected())
                }
            }
        };
        self.rt
            .block_on(async { tokio::time::timeout(STATEMENT_TIMEOUT, fut).await })
            .map_err(|_| {
                DbError::Other(format!(
                    "statement timed out after {STATEMENT_TIMEOUT:?}: {sql}"
                ))
            })?
            .map_err(wrap)
    }

    /// Runs a statement without parameters and without preparing it (BEGIN, COMMIT, DDL).
    pub fn execute_raw(&mut self, sql: &str) -> Result<(), DbError> {
        let fut = async {
            match &mut self.conn {
                Conn::Pg(c) => sqlx::raw_sql(AssertSqlSafe(sql)).execute(c).await.map(drop),
                Conn::My(c) => sqlx::raw_sql(AssertSqlSafe(sql)).execute(c).await.map(drop),
                Conn::Lite(c) => sqlx::raw_sql(AssertSqlSafe(sql)).execute(c).await.map(drop),
            }
        };
        self.rt
            .block_on(async { tokio::time::timeout(STATEMENT_TIMEOUT, fut).await })
            .map_err(|_| {
                DbError::Other(format!(
                    "statement timed out after {STATEMENT_TIMEOUT:?}: {sql}"
                ))
            })?
            .map_err(|source| DbError::Sql {
                sql: sql.to_string(),
                source,
            })
    }

    /// Runs a query and decodes every row.
    pub fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<ResultSet, DbError> {
        let wrap = |source| DbError::Sql {
            sql: sql.to_string(),
            source,
        };
        let fut = async {
            match &mut self.conn {
                Conn::Pg(c) => {
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for p in params {
                        q = bind_pg(q, p);
                    }
                    let rows = q.fetch_all(c).await?;
                    decode_rows(&rows, pg_kind, decode_pg)
                }
                Conn::My(c) => {
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for p in params {
                        q = bind_my(q, p);
                    }
                    let rows = q.fetch_all(c).await?;
                    decode_rows(&rows, my_kind, decode_my)
                }
                Conn::Lite(c) => {
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for p in params {
                        q = bind_lite(q, p);
                    }
                    let rows = q.fetch_all(c).await?;
                    decode_lite_rows(&rows)
                }
            }
        };
        self.rt
            .block_on(async { tokio::time::timeout(STATEMENT_TIMEOUT, fut).await })
            .map_err(|_| {
                DbError::Other(format!(
                    "query timed out after {STATEMENT_TIMEOUT:?}: {sql}"
                ))
            })?
            .map_err(wrap)
    }

    /// The schema unqualified names resolve to (PostgreSQL `current_schema()`, MySQL `DATABASE()`).
    pub fn current_schema(&mut self) -> Result<Option<String>, DbError> {
        let sql = match self.dialect {
            Dialect::Postgres => "SELECT current_schema()::text",
            Dialect::MySql => "SELECT DATABASE()",
            Dialect::Sqlite => return Ok(None),
        };
        let rs = self.query(sql, &[])?;
        Ok(rs.rows.first().and_then(|r| r.first()).and_then(text))
    }

    /// Every table the connection can see (views too when `include_views`), schema-qualified for
    /// PostgreSQL and MySQL.
    pub fn list_tables(&mut self, include_views: bool) -> Result<Vec<TableId>, DbError> {
        let types = if include_views {
            "('BASE TABLE','VIEW')"
        } else {
            "('BASE TABLE')"
        };
        let sql = match self.dialect {
            Dialect::Postgres => format!(
                "SELECT table_schema::text, table_name::text FROM information_schema.tables \
                 WHERE table_type IN {types} AND table_schema NOT IN ('pg_catalog','information_schema') \
                 ORDER BY 1, 2"
            ),
            Dialect::MySql => format!(
                "SELECT table_schema, table_name FROM information_schema.tables \
                 WHERE table_type IN {types} AND table_schema = DATABASE() ORDER BY 1, 2"
            ),
            Dialect::Sqlite => format!(
                "SELECT NULL, name FROM sqlite_master WHERE type IN {} AND name NOT LIKE 'sqlite_%' ORDER BY 2",
                if include_views {
                    "('table','view')"
                } else {
                    "('table')"
                }
            ),
        };
        let rs = self.query(&sql, &[])?;
        Ok(rs
            .rows
            .iter()
            .filter_map(|r| {
                let schema = r.first().and_then(text);
                let table = r.get(1).and_then(text)?;
                Some(TableId { schema, table })
            })
            .collect())
    }

    /// The columns of a table in order; empty when the table does not exist.
    pub fn describe_table(&mut self, t: &TableId) -> Result<Vec<ColumnMeta>, DbError> {
        let rs = match self.dialect {
            Dialect::Postgres | Dialect::MySql => {
                let schema = match &t.schema {
                    Some(s) => SqlValue::Text(s.clone()),
                    None => SqlValue::Text(self.current_schema()?.unwrap_or_default()),
                };
                let (p1, p2) = (self.dialect.placeholder(1), self.dialect.placeholder(2));
                let cast = if self.dialect == Dialect::Postgres {
                    ("::text", "::int8")
                } else {
                    ("", "")
                };
                let sql = format!(
                    "SELECT column_name{t}, data_type{t}, is_nullable{t}, numeric_precision{i}, numeric_scale{i} \
                     FROM information_schema.columns WHERE table_schema = {p1} AND table_name = {p2} \
                     ORDER BY ordinal_position",
                    t = cast.0,
                    i = cast.1
                );
                self.query(&sql, &[schema, SqlValue::Text(t.table.clone())])?
            }
            Dialect::Sqlite => {
                let sql = format!(
                    "SELECT name, type, CASE WHEN \"notnull\" = 1 OR (pk > 0 AND upper(type) = 'INTEGER') \
                     THEN 'NO' ELSE 'YES' END, NULL, NULL FROM pragma_table_info({})",
                    // pragma_table_info takes the name as a string literal.
                    format_args!("'{}'", t.table.replace('\'', "''"))
                );
                self.query(&sql, &[])?
            }
        };
        Ok(rs
            .rows
            .iter()
            .filter_map(|r| {
                Some(ColumnMeta {
                    name: r.first().and_then(text)?,
                    data_type: r.get(1).and_then(text).unwrap_or_default(),
                    nullable: r
                        .get(2)
                        .and_then(text)
                        .is_none_or(|n| n.eq_ignore_ascii_case("YES")),
                    precision: r
                        .get(3)
                        .and_then(SqlValue::as_i64)
                        .and_then(|v| u32::try_from(v).ok()),
                    scale: r
                        .get(4)
                        .and_then(SqlValue::as_i64)
                        .and_then(|v| u32::try_from(v).ok()),
                })
            })
            .collect())
    }
}

/// A cell as text (catalog queries return text, or bytes on some MySQL servers).
pub fn text(v: &SqlValue) -> Option<String> {
    match v {
        SqlValue::Text(s) => Some(s.clone()),
        SqlValue::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn open(rt: &tokio::runtime::Runtime, url: &JdbcUrl, s: &ConnectSettings) -> Result<Conn, DbError> {
    let user = s
        .user
        .clone()
        .or_else(|| url.params.get("user").cloned())
        .unwrap_or_default();
    let password = s
        .password
        .clone()
        .or_else(|| url.params.get("password").cloned());
    let attempts = s.attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = rt.block_on(async {
            let fut = async {
                match url.dialect {
                    Dialect::Postgres => {
                        let mut o = PgConnectOptions::new()
                            .host(&url.host)
                            .port(url.port)
                            .database(&url.database)
                            .disable_statement_logging();
                        if !user.is_empty() {
                            o = o.username(&user);
                        }
                        if let Some(p) = &password {
                            o = o.password(p);
                        }
                        o.connect().await.map(Conn::Pg)
                    }
                    Dialect::MySql => {
                        let mut o = MySqlConnectOptions::new()
                            .host(&url.host)
                            .port(url.port)
                            .disable_statement_logging();
                        if !url.database.is_empty() {
                            o = o.database(&url.database);
                        }
                        if !user.is_empty() {
                            o = o.username(&user);
                        }
                        if let Some(p) = &password {
                            o = o.password(p);
                        }
                        o.connect().await.map(Conn::My)
                    }
                    Dialect::Sqlite => {
                        let o = if url.database == ":memory:" {
                            SqliteConnectOptions::new().in_memory(true)
                        } else {
                            SqliteConnectOptions::new()
                                .filename(&url.database)
                                .create_if_missing(s.create_sqlite_file)
                        };
                        o.disable_statement_logging()
                            .connect()
                            .await
                            .map(Conn::Lite)
                    }
                }
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
                Ok(r) => r,
                Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {CONNECT_TIMEOUT:?}"),
                ))),
            }
        });
        match result {
            Ok(c) => return Ok(c),
            Err(source) => {
                let err = DbError::Connect {
                    url: redact(&s.url),
                    user: user.clone(),
                    source,
                };
                if attempt >= attempts || !err.is_transient() {
                    return Err(err);
                }
                tracing::warn!(error = %err, attempt, "database connection failed; retrying");
                std::thread::sleep(s.backoff);
            }
        }
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;
type MyQuery<'q> = sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>;
type LiteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

fn bind_pg<'q>(q: PgQuery<'q>, v: &SqlValue) -> PgQuery<'q> {
    match v.clone() {
        SqlValue::Null(k) => match k {
            Kind::Bool => q.bind(None::<bool>),
            Kind::I8 | Kind::I16 => q.bind(None::<i16>),
            Kind::I32 => q.bind(None::<i32>),
            Kind::I64 => q.bind(None::<i64>),
            Kind::F32 => q.bind(None::<f32>),
            Kind::F64 => q.bind(None::<f64>),
            Kind::Decimal { .. } => q.bind(None::<Decimal>),
            Kind::Text => q.bind(None::<String>),
            Kind::Bytes => q.bind(None::<Vec<u8>>),
            Kind::Date => q.bind(None::<NaiveDate>),
            Kind::Time => q.bind(None::<NaiveTime>),
            Kind::Timestamp => q.bind(None::<NaiveDateTime>),
            Kind::TimestampTz => q.bind(None::<DateTime<Utc>>),
        },
        SqlValue::Bool(x) => q.bind(x),
        // PostgreSQL has no one-byte integer.
        SqlValue::I8(x) => q.bind(i16::from(x)),
        SqlValue::I16(x) => q.bind(x),
        SqlValue::I32(x) => q.bind(x),
        SqlValue::I64(x) => q.bind(x),
        SqlValue::F32(x) => q.bind(x),
        SqlValue::F64(x) => q.bind(x),
        SqlValue::Decimal(x) => q.bind(x),
        SqlValue::Text(x) => q.bind(x),
        SqlValue::Bytes(x) => q.bind(x),
        SqlValue::Date(x) => q.bind(x),
        SqlValue::Time(x) => q.bind(x),
        SqlValue::Timestamp(x) => q.bind(x),
        SqlValue::TimestampTz(x) => q.bind(x),
    }
}

fn bind_my<'q>(q: MyQuery<'q>, v: &SqlValue) -> MyQuery<'q> {
    match v.clone() {
        SqlValue::Null(k) => match k {
            Kind::Bool => q.bind(None::<bool>),
            Kind::I8 => q.bind(None::<i8>),
            Kind::I16 => q.bind(None::<i16>),
            Kind::I32 => q.bind(None::<i32>),
            Kind::I64 => q.bind(None::<i64>),
            Kind::F32 => q.bind(None::<f32>),
            Kind::F64 => q.bind(None::<f64>),
            Kind::Decimal { .. } => q.bind(None::<Decimal>),
            Kind::Text => q.bind(None::<String>),
            Kind::Bytes => q.bind(None::<Vec<u8>>),
            Kind::Date => q.bind(None::<NaiveDate>),
            Kind::Time => q.bind(None::<NaiveTime>),
            Kind::Timestamp => q.bind(None::<NaiveDateTime>),
            Kind::TimestampTz => q.bind(None::<DateTime<Utc>>),
        },
        SqlValue::Bool(x) => q.bind(x),
        SqlValue::I8(x) => q.bind(x),
        SqlValue::I16(x) => q.bind(x),
        SqlValue::I32(x) => q.bind(x),
        SqlValue::I64(x) => q.bind(x),
        SqlValue::F32(x) => q.bind(x),
        SqlValue::F64(x) => q.bind(x),
        SqlValue::Decimal(x) => q.bind(x),
        SqlValue::Text(x) => q.bind(x),
        SqlValue::Bytes(x) => q.bind(x),
        SqlValue::Date(x) => q.bind(x),
        SqlValue::Time(x) => q.bind(x),
        SqlValue::Timestamp(x) => q.bind(x),
        SqlValue::TimestampTz(x) => q.bind(x),
    }
}

fn bind_lite<'q>(q: LiteQuery<'q>, v: &SqlValue) -> LiteQuery<'q> {
    match v.clone() {
        SqlValue::Null(_) => q.bind(None::<String>),
        SqlValue::Bool(x) => q.bind(x),
        SqlValue::I8(x) => q.bind(i32::from(x)),
        SqlValue::I16(x) => q.bind(i32::from(x)),
        SqlValue::I32(x) => q.bind(x),
        SqlValue::I64(x) => q.bind(x),
        SqlValue::F32(x) => q.bind(f64::from(x)),
        SqlValue::F64(x) => q.bind(x),
        // SQLite has no decimal type; NUMERIC affinity turns the text into a number.
        SqlValue::Decimal(x) => q.bind(x.to_string()),
        SqlValue::Text(x) => q.bind(x),
        SqlValue::Bytes(x) => q.bind(x),
        SqlValue::Date(x) => q.bind(x.format("%Y-%m-%d").to_string()),
        SqlValue::Time(x) => q.bind(x.format("%H:%M:%S%.3f").to_string()),
        SqlValue::Timestamp(x) => q.bind(x.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
        SqlValue::TimestampTz(x) => {
            q.bind(x.naive_utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        }
    }
}

fn pg_kind(type_name: &str) -> Option<Kind> {
    Some(match type_name {
        "BOOL" => Kind::Bool,
        "INT2" => Kind::I16,
        "INT4" => Kind::I32,
        "INT8" => Kind::I64,
        "FLOAT4" => Kind::F32,
        "FLOAT8" => Kind::F64,
        "NUMERIC" => Kind::Decimal {
            precision: None,
            scale: None,
        },
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Kind::Text,
        "BYTEA" => Kind::Bytes,
        "DATE" => Kind::Date,
        "TIME" => Kind::Time,
        "TIMESTAMP" => Kind::Timestamp,
        "TIMESTAMPTZ" => Kind::TimestampTz,
        _ => return None,
    })
}

fn my_kind(type_name: &str) -> Option<Kind> {
    Some(match type_name {
        "BOOLEAN" => Kind::Bool,
        "TINYINT" => Kind::I8,
        "TINYINT UNSIGNED" | "SMALLINT" | "YEAR" => Kind::I16,
        "SMALLINT UNSIGNED" | "INT" | "MEDIUMINT" | "MEDIUMINT UNSIGNED" => Kind::I32,
        "INT UNSIGNED" | "BIGINT" => Kind::I64,
        "BIGINT UNSIGNED" | "DECIMAL" => Kind::Decimal {
            precision: None,
            scale: None,
        },
        "FLOAT" => Kind::F32,
        "DOUBLE" => Kind::F64,
        "CHAR" | "VARCHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET"
        | "JSON" => Kind::Text,
        "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BIT" => {
            Kind::Bytes
        }
        "DATE" => Kind::Date,
        "TIME" => Kind::Time,
        "DATETIME" => Kind::Timestamp,
        "TIMESTAMP" => Kind::TimestampTz,
        _ => return None,
    })
}

/// SQLite declared types by affinity (`INTEGER PRIMARY KEY`, `VARCHAR(20)`, `DATETIME`, ...).
pub fn sqlite_kind(declared: &str) -> Option<Kind> {
    let t = declared.to_ascii_uppercase();
    Some(if t.contains("BOOL") {
        Kind::Bool
    } else if t.contains("INT") {
        Kind::I64
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Kind::Text
    } else if t.contains("BLOB") {
        Kind::Bytes
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Kind::F64
    } else if t.contains("DATETIME") || t.contains("TIMESTAMP") {
        Kind::Timestamp
    } else if t.contains("DATE") {
        Kind::Date
    } else if t.contains("TIME") {
        Kind::Time
    } else if t.contains("NUMERIC") || t.contains("DECIMAL") {
        // Stored as REAL or INTEGER by SQLite: read as a double.
        Kind::F64
    } else if t.is_empty() || t == "NULL" {
        return None;
    } else {
        Kind::Text
    })
}

fn decode_rows<R: Row>(
    rows: &[R],
    kind_of: fn(&str) -> Option<Kind>,
    decode: fn(&R, usize, Kind, &str) -> Result<SqlValue, sqlx::Error>,
) -> Result<ResultSet, sqlx::Error> {
    let Some(first) = rows.first() else {
        return Ok(ResultSet::default());
    };
    let columns: Vec<ResultColumn> = first
        .columns()
        .iter()
        .map(|c| {
            let type_name = c.type_info().name().to_string();
            ResultColumn {
                name: c.name().to_string(),
                kind: kind_of(&type_name),
                type_name,
            }
        })
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut cells = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            cells.push(match c.kind {
                Some(k) => decode(row, i, k, &c.type_name)?,
                None => SqlValue::Null(Kind::Text),
            });
        }
        out.push(cells);
    }
    Ok(ResultSet { columns, rows: out })
}

fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> SqlValue, k: Kind) -> SqlValue {
    v.map(f).unwrap_or(SqlValue::Null(k))
}

fn decode_pg(row: &PgRow, i: usize, k: Kind, _: &str) -> Result<SqlValue, sqlx::Error> {
    Ok(match k {
        Kind::Bool => or_null(row.try_get(i)?, SqlValue::Bool, k),
        Kind::I8 | Kind::I16 => or_null(row.try_get(i)?, SqlValue::I16, k),
        Kind::I32 => or_null(row.try_get(i)?, SqlValue::I32, k),
        Kind::I64 => or_null(row.try_get(i)?, SqlValue::I64, k),
        Kind::F32 => or_null(row.try_get(i)?, SqlValue::F32, k),
        Kind::F64 => or_null(row.try_get(i)?, SqlValue::F64, k),
        Kind::Decimal { .. } => or_null(row.try_get(i)?, SqlValue::Decimal, k),
        Kind::Text => or_null(row.try_get(i)?, SqlValue::Text, k),
        Kind::Bytes => or_null(row.try_get(i)?, SqlValue::Bytes, k),
        Kind::Date => or_null(row.try_get(i)?, SqlValue::Date, k),
        Kind::Time => or_null(row.try_get(i)?, SqlValue::Time, k),
        Kind::Timestamp => or_null(row.try_get(i)?, SqlValue::Timestamp, k),
        Kind::TimestampTz => or_null(row.try_get(i)?, SqlValue::TimestampTz, k),
    })
}

fn decode_my(row: &MySqlRow, i: usize, k: Kind, ty: &str) -> Result<SqlValue, sqlx::Error> {
    Ok(match (k, ty) {
        (_, "TINYINT UNSIGNED") => or_null(
            row.try_get::<Option<u8>, _>(i)?,
            |v| SqlValue::I16(v.into()),
            k,
        ),
        (_, "SMALLINT UNSIGNED") => or_null(
            row.try_get::<Option<u16>, _>(i)?,
            |v| SqlValue::I32(v.into()),
            k,
        ),
        (_, "MEDIUMINT UNSIGNED") | (_, "INT UNSIGNED") => or_null(
            row.try_get::<Option<u32>, _>(i)?,
            |v| SqlValue::I64(v.into()),
            k,
        ),
        (_, "BIGINT UNSIGNED") => or_null(
            row.try_get::<Option<u64>, _>(i)?,
            |v| SqlValue::Decimal(v.into()),
            k,
        ),
        (_, "YEAR") => or_null(
            row.try_get_unchecked::<Option<u16>, _>(i)?,
            |v| SqlValue::I16(v as i16),
            k,
        ),
        (_, "MEDIUMINT") => or_null(
            row.try_get_unchecked::<Option<i32>, _>(i)?,
            SqlValue::I32,
            k,
        ),
        (Kind::Bool, _) => or_null(row.try_get(i)?, SqlValue::Bool, k),
        (Kind::I8, _) => or_null(row.try_get(i)?, SqlValue::I8, k),
        (Kind::I16, _) => or_null(row.try_get(i)?, SqlValue::I16, k),
        (Kind::I32, _) => or_null(row.try_get(i)?, SqlValue::I32, k),
        (Kind::I64, _) => or_null(row.try_get(i)?, SqlValue::I64, k),
        (Kind::F32, _) => or_null(row.try_get(i)?, SqlValue::F32, k),
        (Kind::F64, _) => or_null(row.try_get(i)?, SqlValue::F64, k),
        (Kind::Decimal { .. }, _) => or_null(row.try_get(i)?, SqlValue::Decimal, k),
        // ENUM, SET and JSON are text on the wire; the driver's type check would refuse them.
        (Kind::Text, _) => or_null(row.try_get_unchecked(i)?, SqlValue::Text, k),
        (Kind::Bytes, _) => or_null(row.try_get_unchecked(i)?, SqlValue::Bytes, k),
        (Kind::Date, _) => or_null(row.try_get(i)?, SqlValue::Date, k),
        (Kind::Time, _) => or_null(row.try_get(i)?, SqlValue::Time, k),
        (Kind::Timestamp, _) => or_null(row.try_get(i)?, SqlValue::Timestamp, k),
        (Kind::TimestampTz, _) => or_null(row.try_get(i)?, SqlValue::TimestampTz, k),
    })
}

/// SQLite types are per value: a column's kind comes from its declared type, or from the first
/// non-null value for expressions.
fn decode_lite_rows(rows: &[SqliteRow]) -> Result<ResultSet, sqlx::Error> {
    let Some(first) = rows.first() else {
        return Ok(ResultSet::default());
    };
    let mut columns: Vec<ResultColumn> = first
        .columns()
        .iter()
        .map(|c| {
            let type_name = c.type_info().name().to_string();
            ResultColumn {
                name: c.name().to_string(),
                kind: sqlite_kind(&type_name),
                type_name,
            }
        })
        .collect();
    for (i, c) in columns.iter_mut().enumerate() {
        if c.kind.is_some() {
            continue;
        }
        for row in rows {
            let raw = row.try_get_raw(i)?;
            if !raw.is_null() {
                c.type_name = raw.type_info().name().to_string();
                c.kind = sqlite_kind(&c.type_name);
                break;
            }
        }
        if c.kind.is_none() {
            c.kind = Some(Kind::Text);
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut cells = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            let k = c.kind.unwrap_or(Kind::Text);
            let cell = match k {
                Kind::Bool => or_null(row.try_get_unchecked(i)?, SqlValue::Bool, k),
                Kind::I8 | Kind::I16 | Kind::I32 | Kind::I64 => {
                    or_null(row.try_get_unchecked(i)?, SqlValue::I64, k)
                }
                Kind::F32 | Kind::F64 | Kind::Decimal { .. } => {
                    or_null(row.try_get_unchecked(i)?, SqlValue::F64, k)
                }
                Kind::Text => or_null(row.try_get_unchecked(i)?, SqlValue::Text, k),
                Kind::Bytes => or_null(row.try_get_unchecked(i)?, SqlValue::Bytes, k),
                Kind::Date => or_null(row.try_get_unchecked(i)?, SqlValue::Date, k),
                Kind::Time => or_null(row.try_get_unchecked(i)?, SqlValue::Time, k),
                Kind::Timestamp | Kind::TimestampTz => {
                    or_null(row.try_get_unchecked(i)?, SqlValue::Timestamp, k)
                }
            };
            cells.push(cell);
        }
        out.push(cells);
    }
    Ok(ResultSet { columns, rows: out })
}
