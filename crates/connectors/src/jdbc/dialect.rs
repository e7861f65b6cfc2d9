//! Database dialects (Confluent's `DatabaseDialect`s for PostgreSQL, MySQL/MariaDB and SQLite):
//! identifier quoting, parameter placeholders, the SQL type for each Connect schema, and the text
//! of CREATE TABLE, ALTER TABLE ADD, INSERT, each dialect's upsert, UPDATE and DELETE.
//!
//! Pure string building: it runs no statement and opens no connection, so every statement can be
//! checked in unit tests.

use strom_connect::Schema;
use strom_connect::SchemaType;
use strom_connect::data::{
    DATE_LOGICAL_NAME, DECIMAL_LOGICAL_NAME, TIME_LOGICAL_NAME, TIMESTAMP_LOGICAL_NAME,
};

/// The databases strom's JDBC connectors speak to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    /// MySQL and MariaDB (one wire protocol, one SQL dialect for what the connectors use).
    MySql,
    Sqlite,
}

/// A table, possibly qualified by catalog (MySQL database) or schema (PostgreSQL schema).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId {
    pub schema: Option<String>,
    pub table: String,
}

impl TableId {
    pub fn new(schema: Option<&str>, table: &str) -> TableId {
        TableId {
            schema: schema.map(str::to_string),
            table: table.to_string(),
        }
    }

    /// `schema.table`, or `table` when unqualified: the name offsets and messages use.
    pub fn qualified(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.table),
            None => self.table.clone(),
        }
    }

    /// Parses `table` or `schema.table` (a leading catalog in `catalog.schema.table` is dropped).
    pub fn parse(name: &str) -> TableId {
        let parts: Vec<&str> = name
            .split('.')
            .map(|p| p.trim_matches(['"', '`']))
            .collect();
        match parts.as_slice() {
            [t] => TableId::new(None, t),
            [.., s, t] => TableId::new(Some(s), t),
            [] => TableId::new(None, name),
        }
    }
}

/// A column to create or add.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub sql_type: String,
    pub nullable: bool,
}

impl Dialect {
    /// Confluent's dialect class name, shown in logs and `dialect.name`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSqlDatabaseDialect",
            Dialect::MySql => "MySqlDatabaseDialect",
            Dialect::Sqlite => "SqliteDatabaseDialect",
        }
    }

    /// A quoted identifier; quote characters inside it are doubled.
    pub fn quote(self, ident: &str) -> String {
        match self {
            Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    pub fn table(self, t: &TableId) -> String {
        match &t.schema {
            Some(s) => format!("{}.{}", self.quote(s), self.quote(&t.table)),
            None => self.quote(&t.table),
        }
    }

    /// The n-th (1-based) bind parameter.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            _ => "?".to_string(),
        }
    }

    fn placeholders(self, from: usize, count: usize) -> Vec<String> {
        (from..from + count).map(|n| self.placeholder(n)).collect()
    }

    /// The column type for a Connect schema, `None` for types a table cannot hold (array, map,
    /// struct). Key columns of MySQL need a bounded length, so strings and bytes get one there.
    pub fn sql_type(self, schema: &Schema, is_key: bool) -> Option<String> {
        let logical = schema.name.as_deref();
        let scale = || {
            schema
                .parameters
                .as_ref()
                .and_then(|ps| ps.iter().find(|(k, _)| k == "scale"))
                .and_then(|(_, v)| v.parse::<u32>().ok())
                .unwrap_or(0)
        };
        let t = match (self, logical) {
            (Dialect::Postgres, Some(DECIMAL_LOGICAL_NAME)) => "DECIMAL".to_string(),
            (Dialect::MySql, Some(DECIMAL_LOGICAL_NAME)) => format!("DECIMAL(65,{})", scale()),
            (Dialect::Sqlite, Some(DECIMAL_LOGICAL_NAME)) => "NUMERIC".to_string(),
            (_, Some(DATE_LOGICAL_NAME)) => "DATE".to_string(),
            (Dialect::MySql, Some(TIME_LOGICAL_NAME)) => "TIME(3)".to_string(),
            (_, Some(TIME_LOGICAL_NAME)) => "TIME".to_string(),
            (Dialect::MySql, Some(TIMESTAMP_LOGICAL_NAME)) => "DATETIME(3)".to_string(),
            (Dialect::Sqlite, Some(TIMESTAMP_LOGICAL_NAME)) => "DATETIME".to_string(),
            (Dialect::Postgres, Some(TIMESTAMP_LOGICAL_NAME)) => "TIMESTAMP".to_string(),
            _ => match (self, schema.schema_type) {
                (Dialect::Postgres, SchemaType::Int8 | SchemaType::Int16) => "SMALLINT".into(),
                (Dialect::Postgres, SchemaType::Int32) => "INT".into(),
                (Dialect::Postgres, SchemaType::Int64) => "BIGINT".into(),
                (Dialect::Postgres, SchemaType::Float32) => "REAL".into(),
                (Dialect::Postgres, SchemaType::Float64) => "DOUBLE PRECISION".into(),
                (Dialect::Postgres, SchemaType::Boolean) => "BOOLEAN".into(),
                (Dialect::Postgres, SchemaType::String) => "TEXT".into(),
                (Dialect::Postgres, SchemaType::Bytes) => "BYTEA".into(),
                (Dialect::MySql, SchemaType::Int8) => "TINYINT".into(),
                (Dialect::MySql, SchemaType::Int16) => "SMALLINT".into(),
                (Dialect::MySql, SchemaType::Int32) => "INT".into(),
                (Dialect::MySql, SchemaType::Int64) => "BIGINT".into(),
                (Dialect::MySql, SchemaType::Float32) => "FLOAT".into(),
                (Dialect::MySql, SchemaType::Float64) => "DOUBLE".into(),
                (Dialect::MySql, SchemaType::Boolean) => "TINYINT".into(),
                (Dialect::MySql, SchemaType::String) if is_key => "VARCHAR(256)".into(),
                (Dialect::MySql, SchemaType::String) => "TEXT".into(),
                (Dialect::MySql, SchemaType::Bytes) if is_key => "VARBINARY(1024)".into(),
                (Dialect::MySql, SchemaType::Bytes) => "BLOB".into(),
                (Dialect::Sqlite, SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32) => {
                    "INTEGER".into()
                }
                (Dialect::Sqlite, SchemaType::Int64) => "BIGINT".into(),
                (Dialect::Sqlite, SchemaType::Float32) => "REAL".into(),
                (Dialect::Sqlite, SchemaType::Float64) => "DOUBLE".into(),
                (Dialect::Sqlite, SchemaType::Boolean) => "BOOLEAN".into(),
                (Dialect::Sqlite, SchemaType::String) => "TEXT".into(),
                (Dialect::Sqlite, SchemaType::Bytes) => "BLOB".into(),
                (_, SchemaType::Array | SchemaType::Map | SchemaType::Struct) => return None,
            },
        };
        Some(t)
    }

    fn column_sql(self, c: &ColumnDef) -> String {
        format!(
            "{} {}{}",
            self.quote(&c.name),
            c.sql_type,
            if c.nullable { " NULL" } else { " NOT NULL" }
        )
    }

    pub fn create_table(self, t: &TableId, columns: &[ColumnDef], keys: &[String]) -> String {
        let mut parts: Vec<String> = columns.iter().map(|c| self.column_sql(c)).collect();
        if !keys.is_empty() {
            let ks: Vec<String> = keys.iter().map(|k| self.quote(k)).collect();
            parts.push(format!("PRIMARY KEY({})", ks.join(",")));
        }
        format!("CREATE TABLE {} (\n{})", self.table(t), parts.join(",\n"))
    }

    /// One statement per added column (SQLite adds one column per ALTER TABLE).
    pub fn add_columns(self, t: &TableId, columns: &[ColumnDef]) -> Vec<String> {
        columns
            .iter()
            .map(|c| format!("ALTER TABLE {} ADD {}", self.table(t), self.column_sql(c)))
            .collect()
    }

    fn list(self, cols: &[String]) -> String {
        cols.iter()
            .map(|c| self.quote(c))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `INSERT INTO t(k..., v...) VALUES(...)`; bind keys then values.
    pub fn insert(self, t: &TableId, keys: &[String], values: &[String]) -> String {
        self.insert_rows(t, keys, values, 1)
    }

    /// A multi-row INSERT of `rows` rows; bind each row's keys then values, row after row.
    pub fn insert_rows(
        self,
        t: &TableId,
        keys: &[String],
        values: &[String],
        rows: usize,
    ) -> String {
        let all: Vec<String> = keys.iter().chain(values).cloned().collect();
        let tuples: Vec<String> = (0..rows.max(1))
            .map(|r| {
                format!(
                    "({})",
                    self.placeholders(1 + r * all.len(), all.len()).join(",")
                )
            })
            .collect();
        format!(
            "INSERT INTO {}({}) VALUES{}",
            self.table(t),
            self.list(&all),
            tuples.join(",")
        )
    }

    /// The dialect's upsert; bind keys then values (as [`Dialect::insert`]).
    pub fn upsert(self, t: &TableId, keys: &[String], values: &[String]) -> String {
        self.upsert_rows(t, keys, values, 1)
    }

    /// A multi-row upsert (PostgreSQL refuses one key twice in a statement: callers keep keys
    /// distinct).
    pub fn upsert_rows(
        self,
        t: &TableId,
        keys: &[String],
        values: &[String],
        rows: usize,
    ) -> String {
        let insert = self.insert_rows(t, keys, values, rows);
        match self {
            Dialect::Postgres => {
                let action = if values.is_empty() {
                    "DO NOTHING".to_string()
                } else {
                    let sets: Vec<String> = values
                        .iter()
                        .map(|v| format!("{q}=EXCLUDED.{q}", q = self.quote(v)))
                        .collect();
                    format!("DO UPDATE SET {}", sets.join(","))
                };
                format!("{insert} ON CONFLICT ({}) {action}", self.list(keys))
            }
            Dialect::MySql => {
                // With no value column, re-setting a key to itself keeps the statement valid.
                let cols = if values.is_empty() { keys } else { values };
                let sets: Vec<String> = cols
                    .iter()
                    .map(|v| format!("{q}=VALUES({q})", q = self.quote(v)))
                    .collect();
                format!("{insert} ON DUPLICATE KEY UPDATE {}", sets.join(","))
            }
            Dialect::Sqlite => insert.replacen("INSERT INTO", "INSERT OR REPLACE INTO", 1),
        }
    }

    /// `UPDATE t SET v...=? WHERE k...=?`; bind values then keys.
    pub fn update(self, t: &TableId, keys: &[String], values: &[String]) -> String {
        let sets: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{}={}", self.quote(v), self.placeholder(i + 1)))
            .collect();
        format!(
            "UPDATE {} SET {} WHERE {}",
            self.table(t),
            sets.join(","),
            self.where_keys(keys, values.len() + 1)
        )
    }

    /// `DELETE FROM t WHERE k...=?`; bind keys.
    pub fn delete(self, t: &TableId, keys: &[String]) -> String {
        format!(
            "DELETE FROM {} WHERE {}",
            self.table(t),
            self.where_keys(keys, 1)
        )
    }

    fn where_keys(self, keys: &[String], first: usize) -> String {
        keys.iter()
            .enumerate()
            .map(|(i, k)| format!("{}={}", self.quote(k), self.placeholder(first + i)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TableId {
        TableId::new(None, "users")
    }
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn upserts_per_dialect() {
        let (k, v) = (s(&["id"]), s(&["name", "pwd"]));
        assert_eq!(
            Dialect::Postgres.upsert(&t(), &k, &v),
            "INSERT INTO \"users\"(\"id\",\"name\",\"pwd\") VALUES($1,$2,$3) ON CONFLICT (\"id\") \
             DO UPDATE SET \"name\"=EXCLUDED.\"name\",\"pwd\"=EXCLUDED.\"pwd\""
        );
        assert_eq!(
            Dialect::MySql.upsert(&t(), &k, &v),
            "INSERT INTO `users`(`id`,`name`,`pwd`) VALUES(?,?,?) ON DUPLICATE KEY UPDATE \
             `name`=VALUES(`name`),`pwd`=VALUES(`pwd`)"
        );
        assert_eq!(
            Dialect::Sqlite.upsert(&t(), &k, &v),
            "INSERT OR REPLACE INTO \"users\"(\"id\",\"name\",\"pwd\") VALUES(?,?,?)"
        );
        assert_eq!(
            Dialect::Postgres.upsert(&t(), &k, &[]),
            "INSERT INTO \"users\"(\"id\") VALUES($1) ON CONFLICT (\"id\") DO NOTHING"
        );
    }

    #[test]
    fn multi_row_statements() {
        let (k, v) = (s(&["id"]), s(&["name"]));
        assert_eq!(
            Dialect::Postgres.insert_rows(&t(), &k, &v, 2),
            "INSERT INTO \"users\"(\"id\",\"name\") VALUES($1,$2),($3,$4)"
        );
        assert_eq!(
            Dialect::MySql.upsert_rows(&t(), &k, &v, 2),
            "INSERT INTO `users`(`id`,`name`) VALUES(?,?),(?,?) ON DUPLICATE KEY UPDATE `name`=VALUES(`name`)"
        );
    }

    #[test]
    fn update_delete_and_ddl() {
        assert_eq!(
            Dialect::Postgres.update(&t(), &s(&["id"]), &s(&["name"])),
            "UPDATE \"users\" SET \"name\"=$1 WHERE \"id\"=$2"
        );
        assert_eq!(
            Dialect::MySql.delete(&TableId::new(Some("mydb"), "users"), &s(&["a", "b"])),
            "DELETE FROM `mydb`.`users` WHERE `a`=? AND `b`=?"
        );
        let cols = vec![
            ColumnDef {
                name: "id".into(),
                sql_type: "INT".into(),
                nullable: false,
            },
            ColumnDef {
                name: "na`me".into(),
                sql_type: "TEXT".into(),
                nullable: true,
            },
        ];
        assert_eq!(
            Dialect::MySql.create_table(&t(), &cols, &s(&["id"])),
            "CREATE TABLE `users` (\n`id` INT NOT NULL,\n`na``me` TEXT NULL,\nPRIMARY KEY(`id`))"
        );
        assert_eq!(
            Dialect::Sqlite.add_columns(&t(), &cols[1..]),
            vec!["ALTER TABLE \"users\" ADD \"na`me\" TEXT NULL".to_string()]
        );
    }

    #[test]
    fn connect_schemas_map_to_column_types() {
        let ts = Schema::timestamp();
        assert_eq!(
            Dialect::MySql.sql_type(&ts, false).as_deref(),
            Some("DATETIME(3)")
        );
        assert_eq!(
            Dialect::Postgres.sql_type(&ts, false).as_deref(),
            Some("TIMESTAMP")
        );
        let d = Schema::decimal(2);
        assert_eq!(
            Dialect::MySql.sql_type(&d, false).as_deref(),
            Some("DECIMAL(65,2)")
        );
        assert_eq!(
            Dialect::MySql.sql_type(&Schema::string(), true).as_deref(),
            Some("VARCHAR(256)")
        );
        assert_eq!(
            Dialect::MySql.sql_type(&Schema::string(), false).as_deref(),
            Some("TEXT")
        );
        assert_eq!(
            Dialect::Postgres
                .sql_type(&Schema::int8(), false)
                .as_deref(),
            Some("SMALLINT")
        );
        assert_eq!(Dialect::Postgres.sql_type(&Schema::struct_(), false), None);
        assert_eq!(
            TableId::parse("mydb.users"),
            TableId::new(Some("mydb"), "users")
        );
        assert_eq!(TableId::parse("users").qualified(), "users");
    }
}
