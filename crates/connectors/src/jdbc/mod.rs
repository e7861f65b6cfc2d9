//! The JDBC connectors, under Confluent's names: `io.confluent.connect.jdbc.JdbcSourceConnector`
//! (tables or a query → topics) and `io.confluent.connect.jdbc.JdbcSinkConnector` (topics →
//! tables), for PostgreSQL, MySQL/MariaDB and SQLite, taking the same JDBC URLs and keys as
//! Confluent's connector.
//!
//! * [`url`]: JDBC URLs and password redaction; [`connection`]: one database connection (sqlx
//!   drivers behind a blocking API); [`value`]: cells and column kinds.
//! * [`dialect`]: per-database SQL text (quoting, types, upserts); [`schema_mapping`]: columns ↔
//!   Connect schemas and values, `numeric.mapping`, `db.timezone`.
//! * [`source`] + [`table_querier`]: the source connector and its per-table queries and offsets;
//!   [`sink`] + [`table_writer`]: the sink connector and how it creates, evolves and writes tables.
//!
//! These modules talk to databases and to the `strom-connect` API only; they never touch Kafka
//! clients or broker internals (the worker does that).

pub mod config;
pub mod connection;
pub mod dialect;
pub mod schema_mapping;
pub mod sink;
pub mod source;
pub mod table_querier;
pub mod table_writer;
pub mod url;
pub mod value;

pub use sink::{SINK_CLASS, sink_plugin};
pub use source::{SOURCE_CLASS, source_plugin};
