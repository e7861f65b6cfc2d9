//! How the JDBC sink turns records into rows (Confluent's `FieldsMetadata`, `DbStructure`,
//! `BufferedRecords`): which fields are the primary key under each `pk.mode`, creating a missing
//! table (`auto.create`), adding missing columns (`auto.evolve`), and writing a batch of records
//! in one transaction with the statement `insert.mode` asks for. Owns the sink's view of table
//! structure; connection handling and retries belong to [`super::sink`].

use std::collections::HashMap;
use std::sync::Arc;

use strom_connect::{ConnectError, Schema, SchemaType, SinkRecord, Value};

use super::connection::{Db, DbError};
use super::dialect::{ColumnDef, Dialect, TableId};
use super::schema_mapping::{from_connect, kind_of_schema};
use super::value::{Kind, SqlValue};

/// Bind parameters per statement, below every dialect's limit (SQLite's 32766).
const MAX_PARAMS: usize = 30_000;
/// Rows per multi-row statement.
const MAX_ROWS_PER_STATEMENT: usize = 500;

/// `insert.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertMode {
    Insert,
    Upsert,
    Update,
}

/// `pk.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PkMode {
    None,
    Kafka,
    RecordKey,
    RecordValue,
}

/// What the writer needs from the sink config.
#[derive(Clone, Debug)]
pub struct WriterSettings {
    pub insert_mode: InsertMode,
    pub pk_mode: PkMode,
    pub pk_fields: Vec<String>,
    pub fields_whitelist: Vec<String>,
    pub auto_create: bool,
    pub auto_evolve: bool,
    pub delete_enabled: bool,
    pub table_name_format: String,
    pub tz: super::schema_mapping::DbTimeZone,
}

/// A failure to write, telling whether the database (not the data) was the problem.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The record cannot be written as it is (bad schema, type mismatch, refused by a constraint).
    #[error("{0}")]
    Record(String),
    /// The connection failed; a retry after reconnecting may succeed.
    #[error("{0}")]
    Transient(String),
}

impl From<DbError> for WriteError {
    fn from(e: DbError) -> WriteError {
        if e.is_transient() {
            WriteError::Transient(e.to_string())
        } else {
            WriteError::Record(e.to_string())
        }
    }
}

impl From<ConnectError> for WriteError {
    fn from(e: ConnectError) -> WriteError {
        WriteError::Record(e.to_string())
    }
}

/// The key and value columns of one record, with their schemas.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldsMetadata {
    pub keys: Vec<(String, Arc<Schema>)>,
    pub values: Vec<(String, Arc<Schema>)>,
}

/// One row operation.
#[derive(Debug)]
enum Op {
    Write {
        keys: Vec<SqlValue>,
        values: Vec<SqlValue>,
    },
    Delete {
        keys: Vec<SqlValue>,
    },
}

fn where_(r: &SinkRecord) -> String {
    format!(
        "topic {} partition {} offset {}",
        r.record.topic,
        r.record.kafka_partition.unwrap_or(0),
        r.kafka_offset()
    )
}

fn struct_fields(schema: &Schema) -> Vec<(String, Arc<Schema>)> {
    schema
        .fields
        .iter()
        .map(|f| (f.name.clone(), f.schema.clone()))
        .collect()
}

/// The sink's table writer: caches each table's columns between batches.
#[derive(Default)]
pub struct TableWriter {
    /// Lower-cased column names of tables known to exist, with their catalog types.
    columns: HashMap<TableId, Vec<(String, String)>>,
}

impl TableWriter {
    /// Forgets what it knew of tables (after a failed batch: DDL may have been rolled back).
    pub fn forget(&mut self) {
        self.columns.clear();
    }

    pub fn table_for(&self, s: &WriterSettings, topic: &str) -> TableId {
        TableId::parse(&s.table_name_format.replace("${topic}", topic))
    }

    /// Which fields are keys and which are values, for a record (`FieldsMetadata.extract`).
    pub fn fields(s: &WriterSettings, r: &SinkRecord) -> Result<FieldsMetadata, WriteError> {
        let rec = &r.record;
        let value_fields: Vec<(String, Arc<Schema>)> = match (&rec.value_schema, &rec.value) {
            (_, Value::Null) => Vec::new(),
            (Some(vs), _) if vs.schema_type == SchemaType::Struct => struct_fields(vs),
            (Some(vs), _) => {
                return Err(WriteError::Record(format!(
                    "the JDBC sink writes struct values; {} has a value of schema type {}",
                    where_(r),
                    vs.schema_type.name()
                )));
            }
            (None, _) => {
                return Err(WriteError::Record(format!(
                    "the JDBC sink needs a value schema, and {} has none (use a converter with schemas, \
                     e.g. value.converter.schemas.enable=true)",
                    where_(r)
                )));
            }
        };
        let keys: Vec<(String, Arc<Schema>)> = match s.pk_mode {
            PkMode::None => Vec::new(),
            PkMode::Kafka => {
                let names = if s.pk_fields.is_empty() {
                    vec![
                        "__connect_topic".to_string(),
                        "__connect_partition".into(),
                        "__connect_offset".into(),
                    ]
                } else if s.pk_fields.len() == 3 {
                    s.pk_fields.clone()
                } else {
                    return Err(WriteError::Record(format!(
                        "pk.mode kafka needs exactly 3 pk.fields (topic, partition, offset column names), got {:?}",
                        s.pk_fields
                    )));
                };
                vec![
                    (names[0].clone(), Arc::new(Schema::string())),
                    (names[1].clone(), Arc::new(Schema::int32())),
                    (names[2].clone(), Arc::new(Schema::int64())),
                ]
            }
            PkMode::RecordKey => {
                let ks = rec.key_schema.as_ref().ok_or_else(|| {
                    WriteError::Record(format!(
                        "pk.mode record_key needs a key schema, and {} has none",
                        where_(r)
                    ))
                })?;
                if ks.schema_type == SchemaType::Struct {
                    let all = struct_fields(ks);
                    if s.pk_fields.is_empty() {
                        all
                    } else {
                        pick(&all, &s.pk_fields, "key", r)?
                    }
                } else if s.pk_fields.len() == 1 {
                    vec![(s.pk_fields[0].clone(), ks.clone())]
                } else {
                    return Err(WriteError::Record(format!(
                        "Need exactly one PK column defined since the key schema for records is a primitive type \
                         ({}), defined columns are: {:?} (set pk.fields)",
                        ks.schema_type.name(),
                        s.pk_fields
                    )));
                }
            }
            PkMode::RecordValue => {
                if value_fields.is_empty() {
                    return Err(WriteError::Record(format!(
                        "pk.mode record_value needs a value, and {} is a tombstone",
                        where_(r)
                    )));
                }
                if s.pk_fields.is_empty() {
                    value_fields.clone()
                } else {
                    pick(&value_fields, &s.pk_fields, "value", r)?
                }
            }
        };
        let values = value_fields
            .into_iter()
            .filter(|(n, _)| !keys.iter().any(|(k, _)| k == n))
            .filter(|(n, _)| s.fields_whitelist.is_empty() || s.fields_whitelist.contains(n))
            .collect();
        Ok(FieldsMetadata { keys, values })
    }

    fn op(
        s: &WriterSettings,
        r: &SinkRecord,
        fm: &FieldsMetadata,
    ) -> Result<Option<Op>, WriteError> {
        let rec = &r.record;
        let key_values: Vec<SqlValue> = match s.pk_mode {
            PkMode::None => Vec::new(),
            PkMode::Kafka => vec![
                SqlValue::Text(rec.topic.clone()),
                SqlValue::I32(rec.kafka_partition.unwrap_or(0)),
                SqlValue::I64(r.kafka_offset()),
            ],
            PkMode::RecordKey => match &rec.key {
                Value::Struct(st) => fm
                    .keys
                    .iter()
                    .map(|(n, sc)| {
                        from_connect(
                            st.get(n).unwrap_or(&Value::Null),
                            sc,
                            &s.tz,
                            &format!("key field {n} at {}", where_(r)),
                        )
                    })
                    .collect::<Result<_, _>>()?,
                Value::Null => {
                    return Err(WriteError::Record(format!(
                        "pk.mode record_key but {} has a null key",
                        where_(r)
                    )));
                }
                k => {
                    let (n, sc) = &fm.keys[0];
                    vec![from_connect(
                        k,
                        sc,
                        &s.tz,
                        &format!("key {n} at {}", where_(r)),
                    )?]
                }
            },
            PkMode::RecordValue => Vec::new(),
        };
        let Value::Struct(st) = &rec.value else {
            if !s.delete_enabled {
                tracing::debug!(at = %where_(r), "tombstone skipped (delete.enabled=false)");
                return Ok(None);
            }
            return Ok(Some(Op::Delete { keys: key_values }));
        };
        let field = |n: &str, sc: &Schema| {
            from_connect(
                st.get(n).unwrap_or(&Value::Null),
                sc,
                &s.tz,
                &format!("field {n} at {}", where_(r)),
            )
        };
        let keys = if s.pk_mode == PkMode::RecordValue {
            fm.keys
                .iter()
                .map(|(n, sc)| field(n, sc))
                .collect::<Result<_, _>>()?
        } else {
            key_values
        };
        let values = fm
            .values
            .iter()
            .map(|(n, sc)| field(n, sc))
            .collect::<Result<_, _>>()?;
        Ok(Some(Op::Write { keys, values }))
    }

    /// Creates the table or adds columns as needed for these fields.
    fn ensure_table(
        &mut self,
        db: &mut Db,
        s: &WriterSettings,
        t: &TableId,
        fm: &FieldsMetadata,
    ) -> Result<(), WriteError> {
        let d = db.dialect;
        if !self.columns.contains_key(t) {
            let mut cols = db.describe_table(t)?;
            if cols.is_empty() {
                if !s.auto_create {
                    return Err(WriteError::Record(format!(
                        "Table {} is missing and auto-creation is disabled (auto.create=false)",
                        t.qualified()
                    )));
                }
                let defs = column_defs(d, fm, true)?;
                let keys: Vec<String> = fm.keys.iter().map(|(n, _)| n.clone()).collect();
                let sql = d.create_table(t, &defs, &keys);
                tracing::info!(table = %t.qualified(), %sql, "creating table (auto.create)");
                if let Err(e) = db.execute_raw(&sql) {
                    // Another task may have created it meanwhile.
                    if db.describe_table(t)?.is_empty() {
                        return Err(e.into());
                    }
                }
                cols = db.describe_table(t)?;
            }
            self.columns.insert(
                t.clone(),
                cols.into_iter()
                    .map(|c| (c.name.to_lowercase(), c.data_type))
                    .collect(),
            );
        }
        let known: Vec<String> = self
            .columns
            .get(t)
            .map(|cs| cs.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        let missing: Vec<&(String, Arc<Schema>)> = fm
            .keys
            .iter()
            .chain(&fm.values)
            .filter(|(n, _)| !known.contains(&n.to_lowercase()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
        if !s.auto_evolve {
            return Err(WriteError::Record(format!(
                "Table {} is missing fields {names:?} and auto-evolution is disabled (auto.evolve=false)",
                t.qualified()
            )));
        }
        let mut defs = Vec::new();
        for (n, sc) in &missing {
            if !sc.optional && sc.default_value.is_none() {
                return Err(WriteError::Record(format!(
                    "Cannot ALTER TABLE {} to add missing field {n}, as the field is not optional and does not have a default value",
                    t.qualified()
                )));
            }
            defs.push(ColumnDef {
                name: n.clone(),
                sql_type: d.sql_type(sc, false).ok_or_else(|| unsupported(n, sc))?,
                nullable: true,
            });
        }
        for sql in d.add_columns(t, &defs) {
            tracing::info!(table = %t.qualified(), %sql, "adding column (auto.evolve)");
            if let Err(e) = db.execute_raw(&sql) {
                tracing::warn!(error = %e, "ALTER TABLE failed; checking whether the column exists now");
            }
        }
        let cols: Vec<(String, String)> = db
            .describe_table(t)?
            .into_iter()
            .map(|c| (c.name.to_lowercase(), c.data_type))
            .collect();
        if let Some(n) = names
            .iter()
            .find(|n| !cols.iter().any(|(c, _)| *c == n.to_lowercase()))
        {
            return Err(WriteError::Record(format!(
                "could not add column {n} to table {}",
                t.qualified()
            )));
        }
        self.columns.insert(t.clone(), cols);
        Ok(())
    }

    /// PostgreSQL takes parameters in binary and never converts a text parameter to a number:
    /// a field whose type cannot go into its column is refused here, naming both.
    fn check_types(
        &self,
        t: &TableId,
        fm: &FieldsMetadata,
        r: &SinkRecord,
    ) -> Result<(), WriteError> {
        let Some(cols) = self.columns.get(t) else {
            return Ok(());
        };
        for (n, sc) in fm.keys.iter().chain(&fm.values) {
            let Some((_, data_type)) = cols.iter().find(|(c, _)| *c == n.to_lowercase()) else {
                continue;
            };
            let Some(kind) = kind_of_schema(sc) else {
                continue;
            };
            if !pg_accepts(kind, data_type) {
                return Err(WriteError::Record(format!(
                    "field {n} ({}) of the record at {} cannot be written to column {n} of table {}, which is {data_type}",
                    sc.name.as_deref().unwrap_or(sc.schema_type.name()),
                    where_(r),
                    t.qualified()
                )));
            }
        }
        Ok(())
    }

    /// Writes records in one transaction: all of them, or none.
    pub fn write(
        &mut self,
        db: &mut Db,
        s: &WriterSettings,
        records: &[SinkRecord],
    ) -> Result<usize, WriteError> {
        let mut planned = Vec::with_capacity(records.len());
        for r in records {
            let fm = Self::fields(s, r)?;
            let Some(op) = Self::op(s, r, &fm)? else {
                continue;
            };
            let t = self.table_for(s, &r.record.topic);
            if let Op::Write { .. } = op {
                self.ensure_table(db, s, &t, &fm)?;
                if db.dialect == Dialect::Postgres {
                    self.check_types(&t, &fm, r)?;
                }
            }
            planned.push((t, fm, op));
        }
        if planned.is_empty() {
            return Ok(0);
        }
        let d = db.dialect;
        db.execute_raw("BEGIN")?;
        let result = (|| -> Result<(), WriteError> {
            let mut i = 0;
            while i < planned.len() {
                let (t, fm, op) = &planned[i];
                let keys: Vec<String> = fm.keys.iter().map(|(n, _)| n.clone()).collect();
                let vals: Vec<String> = fm.values.iter().map(|(n, _)| n.clone()).collect();
                match op {
                    Op::Delete { keys: kv } => {
                        i += 1;
                        if !self.columns.contains_key(t) && db.describe_table(t)?.is_empty() {
                            continue; // nothing to delete from
                        }
                        db.execute(&d.delete(t, &keys), kv)?;
                    }
                    Op::Write { .. } if s.insert_mode == InsertMode::Update => {
                        i += 1;
                        if let Op::Write {
                            keys: kv,
                            values: vv,
                        } = op
                        {
                            let params: Vec<SqlValue> = vv.iter().chain(kv).cloned().collect();
                            db.execute(&d.update(t, &keys, &vals), &params)?;
                        }
                    }
                    Op::Write { .. } => {
                        // Consecutive rows for the same table and columns go in one statement.
                        let per_row = (keys.len() + vals.len()).max(1);
                        let max_rows = (MAX_PARAMS / per_row).clamp(1, MAX_ROWS_PER_STATEMENT);
                        let mut params: Vec<SqlValue> = Vec::new();
                        let mut seen_keys: Vec<&[SqlValue]> = Vec::new();
                        let mut rows = 0;
                        while i < planned.len() && rows < max_rows {
                            let (t2, fm2, op2) = &planned[i];
                            let Op::Write {
                                keys: kv,
                                values: vv,
                            } = op2
                            else {
                                break;
                            };
                            if t2 != t || fm2 != fm {
                                break;
                            }
                            if s.insert_mode == InsertMode::Upsert && d == Dialect::Postgres {
                                if seen_keys.contains(&kv.as_slice()) {
                                    break; // ON CONFLICT may touch a row once per statement
                                }
                                seen_keys.push(kv.as_slice());
                            }
                            params.extend(kv.iter().chain(vv).cloned());
                            rows += 1;
                            i += 1;
                        }
                        let sql = match s.insert_mode {
                            InsertMode::Upsert => d.upsert_rows(t, &keys, &vals, rows),
                            _ => d.insert_rows(t, &keys, &vals, rows),
                        };
                        db.execute(&sql, &params)?;
                    }
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                db.execute_raw("COMMIT")?;
                Ok(planned.len())
            }
            Err(e) => {
                if let Err(re) = db.execute_raw("ROLLBACK") {
                    tracing::warn!(error = %re, "ROLLBACK failed");
                }
                Err(e)
            }
        }
    }
}

fn unsupported(n: &str, sc: &Schema) -> WriteError {
    WriteError::Record(format!(
        "field {n} has schema type {}, which cannot be a table column",
        sc.schema_type.name()
    ))
}

fn pick(
    all: &[(String, Arc<Schema>)],
    names: &[String],
    side: &str,
    r: &SinkRecord,
) -> Result<Vec<(String, Arc<Schema>)>, WriteError> {
    names
        .iter()
        .map(|n| {
            all.iter().find(|(f, _)| f == n).cloned().ok_or_else(|| {
                WriteError::Record(format!(
                    "pk.fields names {n}, which is not a field of the record {side} at {} (fields: {})",
                    where_(r),
                    all.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })
        })
        .collect()
}

fn column_defs(
    d: Dialect,
    fm: &FieldsMetadata,
    with_keys: bool,
) -> Result<Vec<ColumnDef>, WriteError> {
    let mut out = Vec::new();
    if with_keys {
        for (n, sc) in &fm.keys {
            out.push(ColumnDef {
                name: n.clone(),
                sql_type: d.sql_type(sc, true).ok_or_else(|| unsupported(n, sc))?,
                nullable: false,
            });
        }
    }
    for (n, sc) in &fm.values {
        out.push(ColumnDef {
            name: n.clone(),
            sql_type: d.sql_type(sc, false).ok_or_else(|| unsupported(n, sc))?,
            nullable: sc.optional,
        });
    }
    Ok(out)
}

/// Whether PostgreSQL assigns a parameter of this kind to a column of this catalog type
/// (`information_schema.columns.data_type`). Types it does not know are left to the server.
fn pg_accepts(kind: Kind, data_type: &str) -> bool {
    let t = data_type.to_ascii_lowercase();
    let int = matches!(t.as_str(), "smallint" | "integer" | "bigint");
    let num = int || matches!(t.as_str(), "numeric" | "real" | "double precision");
    let known = num
        || t.contains("char")
        || t == "text"
        || t == "name"
        || t == "boolean"
        || t == "bytea"
        || t == "date"
        || t.starts_with("time");
    if !known {
        return true;
    }
    match kind {
        Kind::Text => t.contains("char") || t == "text" || t == "name",
        Kind::I8
        | Kind::I16
        | Kind::I32
        | Kind::I64
        | Kind::F32
        | Kind::F64
        | Kind::Decimal { .. } => num,
        Kind::Bool => t == "boolean",
        Kind::Bytes => t == "bytea",
        Kind::Date => t == "date" || t.starts_with("timestamp"),
        Kind::Time => t.starts_with("time") && !t.starts_with("timestamp"),
        Kind::Timestamp | Kind::TimestampTz => t.starts_with("timestamp") || t == "date",
    }
}
