//! `io.confluent.connect.jdbc.JdbcSourceConnector` (also `JdbcSourceConnector`, `JdbcSource`):
//! copies tables (or one `query`) into topics named `topic.prefix` + table, with Connect schemas
//! from the column types.
//!
//! The connector splits tables over tasks by a stable hash of the table name, so every task can
//! discover tables on its own every `table.poll.interval.ms` (new tables are picked up without a
//! reconfiguration). Each task keeps one [`TableQuerier`] per table; their offsets
//! (`{"protocol":"1","table":"schema.table"}` → `{"incrementing":..,"timestamp":..}`) are read back
//! on start, so a restarted task continues exactly after the last committed row.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use regex::Regex;
use strom_connect::{
    ConfigDef, ConfigMap, ConfigType, ConnectError, Connector, ConnectorFactory, ConnectorPlugin,
    Importance, Result, SourceConnector, SourceRecord, SourceTask, SourceTaskContext, Validator,
};

use super::config::{boolean, connect_settings, connection_def, list, long, opt_string, string};
use super::connection::{ConnectSettings, Db};
use super::dialect::TableId;
use super::schema_mapping::{NumericMapping, parse_timezone};
use super::table_querier::{Mode, Origin, QuerySettings, TableQuerier};

pub const SOURCE_CLASS: &str = "io.confluent.connect.jdbc.JdbcSourceConnector";
const SOURCE_TASK_CLASS: &str = "io.confluent.connect.jdbc.source.JdbcSourceTask";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The longest a poll sleeps before returning (the worker checks for stop between polls).
const MAX_IDLE_SLEEP: Duration = Duration::from_millis(500);

pub fn source_plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class_name: SOURCE_CLASS,
        version: VERSION,
        factory: ConnectorFactory::Source(|| Box::new(JdbcSourceConnector::default())),
    }
}

fn valid_mode(v: &str) -> std::result::Result<(), String> {
    Mode::parse(v).map(drop)
}

fn valid_numeric_mapping(v: &str) -> std::result::Result<(), String> {
    NumericMapping::parse(v).map(drop)
}

/// The source's config keys (Confluent's `JdbcSourceConnectorConfig`, the parts strom implements).
pub fn source_config_def() -> ConfigDef {
    connection_def()
        .define("mode", ConfigType::String, Some(""), Importance::High,
            "The mode for updating a table each time it is polled: bulk, incrementing, timestamp, timestamp+incrementing.")
        .with_validator(Validator::Custom(|v| if v.trim().is_empty() { Ok(()) } else { valid_mode(v) }))
        .in_group("Mode", "Table Loading Mode")
        .define("incrementing.column.name", ConfigType::String, Some(""), Importance::Medium,
            "The name of the strictly incrementing column used to detect new rows.")
        .in_group("Mode", "Incrementing Column Name")
        .define("timestamp.column.name", ConfigType::List, Some(""), Importance::Medium,
            "Comma-separated timestamp columns used to detect new or modified rows (COALESCE of them).")
        .in_group("Mode", "Timestamp Column Name")
        .define("timestamp.initial", ConfigType::Long, None, Importance::Low,
            "Epoch milliseconds to start timestamp mode at; -1 means now; unset means all rows.")
        .optional()
        .in_group("Mode", "Unix time value of initial timestamp")
        .define("validate.non.null", ConfigType::Boolean, Some("true"), Importance::Low,
            "Refuse to start when the incrementing or timestamp columns are nullable.")
        .in_group("Mode", "Validate Non Null")
        .define("query", ConfigType::String, Some(""), Importance::Medium,
            "A custom SELECT to run instead of copying tables; topic.prefix is then the whole topic name.")
        .in_group("Mode", "Query")
        .define("query.suffix", ConfigType::String, Some(""), Importance::Low,
            "Text appended to every generated SELECT.")
        .in_group("Mode", "Query suffix")
        .define("table.whitelist", ConfigType::List, Some(""), Importance::Medium,
            "Tables to copy (names, or schema.table); may not be combined with table.blacklist.")
        .in_group("Connector", "Table Whitelist")
        .define("table.blacklist", ConfigType::List, Some(""), Importance::Medium,
            "Tables not to copy.")
        .in_group("Connector", "Table Blacklist")
        .define("table.include.list", ConfigType::List, Some(""), Importance::Medium,
            "Regular expressions for the fully qualified names of tables to copy.")
        .in_group("Connector", "Table Include List")
        .define("table.exclude.list", ConfigType::List, Some(""), Importance::Medium,
            "Regular expressions for the fully qualified names of tables not to copy.")
        .in_group("Connector", "Table Exclude List")
        .define("table.types", ConfigType::List, Some("TABLE"), Importance::Low,
            "Table types to copy: TABLE, VIEW.")
        .in_group("Connector", "Table Types")
        .define("table.poll.interval.ms", ConfigType::Long, Some("60000"), Importance::Low,
            "How often to look for new or removed tables.")
        .in_group("Connector", "Metadata Change Monitoring Interval (ms)")
        .define("topic.prefix", ConfigType::String, None, Importance::High,
            "Prefix prepended to table names for the topic names (the whole topic name in query mode).")
        .in_group("Connector", "Topic Prefix")
        .define("poll.interval.ms", ConfigType::Int, Some("5000"), Importance::High,
            "How often to poll each table for new data.")
        .with_validator(Validator::Range { min: Some(1.0), max: None })
        .in_group("Connector", "Poll Interval (ms)")
        .define("batch.max.rows", ConfigType::Int, Some("100"), Importance::Low,
            "Maximum number of rows in one batch handed to Kafka.")
        .with_validator(Validator::Range { min: Some(1.0), max: None })
        .in_group("Connector", "Max Rows Per Batch")
        .define("timestamp.delay.interval.ms", ConfigType::Long, Some("0"), Importance::High,
            "How long after a row's timestamp before it is read (lets transactions with earlier timestamps commit).")
        .in_group("Connector", "Delay Interval (ms)")
        .define("numeric.mapping", ConfigType::String, Some("none"), Importance::Low,
            "How NUMERIC/DECIMAL columns map: none, precision_only, best_fit, best_fit_eager_double.")
        .with_validator(Validator::Custom(valid_numeric_mapping))
        .in_group("Database", "Map Numeric Values, Integral or Decimal, By Precision and Scale")
}

/// The parsed source configuration.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    pub connection: ConnectSettings,
    pub query: Option<String>,
    pub settings: QuerySettings,
    pub whitelist: Vec<String>,
    pub blacklist: Vec<String>,
    pub include: Vec<Regex>,
    pub exclude: Vec<Regex>,
    pub include_views: bool,
    pub poll_interval: Duration,
    pub table_poll_interval: Duration,
}

fn regexes(props: &ConfigMap, key: &str) -> Result<Vec<Regex>> {
    list(props, key)
        .iter()
        .map(|p| {
            Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                ConnectError::config(format!("Invalid value {p} for configuration {key}: {e}"))
            })
        })
        .collect()
}

impl SourceConfig {
    pub fn parse(props: &ConfigMap) -> Result<SourceConfig> {
        let connection = connect_settings(props, false)?;
        let query = opt_string(props, "query");
        let mode_raw = string(props, "mode", "");
        if mode_raw.is_empty() {
            return Err(ConnectError::config(
                "Missing required configuration \"mode\": one of bulk, incrementing, timestamp, timestamp+incrementing",
            ));
        }
        let mode = Mode::parse(&mode_raw).map_err(ConnectError::config)?;
        let incrementing_column = opt_string(props, "incrementing.column.name");
        let timestamp_columns = list(props, "timestamp.column.name");
        if matches!(mode, Mode::Incrementing | Mode::TimestampIncrementing)
            && incrementing_column.is_none()
        {
            return Err(ConnectError::config(format!(
                "mode {mode_raw} needs incrementing.column.name (the strictly incrementing column)"
            )));
        }
        if matches!(mode, Mode::Timestamp | Mode::TimestampIncrementing)
            && timestamp_columns.is_empty()
        {
            return Err(ConnectError::config(format!(
                "mode {mode_raw} needs timestamp.column.name (the timestamp column or columns)"
            )));
        }
        let whitelist = list(props, "table.whitelist");
        let blacklist = list(props, "table.blacklist");
        let include = regexes(props, "table.include.list")?;
        let exclude = regexes(props, "table.exclude.list")?;
        if !whitelist.is_empty() && !blacklist.is_empty() {
            return Err(ConnectError::config(
                "table.whitelist and table.blacklist cannot both be set",
            ));
        }
        if (!whitelist.is_empty() || !blacklist.is_empty())
            && (!include.is_empty() || !exclude.is_empty())
        {
            return Err(ConnectError::config(
                "table.whitelist/table.blacklist cannot be combined with table.include.list/table.exclude.list",
            ));
        }
        if query.is_some()
            && (!whitelist.is_empty()
                || !blacklist.is_empty()
                || !include.is_empty()
                || !exclude.is_empty())
        {
            return Err(ConnectError::config(
                "query cannot be combined with a table whitelist, blacklist, include or exclude list",
            ));
        }
        let topic_prefix = props.get("topic.prefix").cloned().ok_or_else(|| {
            ConnectError::config(
                "Missing required configuration \"topic.prefix\" which has no default value.",
            )
        })?;
        if query.is_some() && topic_prefix.trim().is_empty() {
            return Err(ConnectError::config(
                "query mode needs topic.prefix: it is the whole topic name",
            ));
        }
        let tz =
            parse_timezone(&string(props, "db.timezone", "UTC")).map_err(ConnectError::config)?;
        let numeric_mapping = NumericMapping::parse(&string(props, "numeric.mapping", "none"))
            .map_err(ConnectError::config)?;
        let timestamp_initial = match opt_string(props, "timestamp.initial") {
            Some(_) => Some(long(props, "timestamp.initial", 0)?),
            None => None,
        };
        let types: Vec<String> = list(props, "table.types")
            .iter()
            .map(|t| t.to_ascii_uppercase())
            .collect();
        Ok(SourceConfig {
            connection,
            query,
            settings: QuerySettings {
                mode,
                incrementing_column,
                timestamp_columns,
                timestamp_delay_ms: long(props, "timestamp.delay.interval.ms", 0)?.max(0),
                timestamp_initial,
                batch_max_rows: long(props, "batch.max.rows", 100)?.clamp(1, 1_000_000) as usize,
                validate_non_null: boolean(props, "validate.non.null", true)?,
                numeric_mapping,
                tz,
                topic_prefix,
                query_suffix: string(props, "query.suffix", ""),
            },
            whitelist,
            blacklist,
            include,
            exclude,
            include_views: types.iter().any(|t| t == "VIEW"),
            poll_interval: Duration::from_millis(
                long(props, "poll.interval.ms", 5000)?.max(1) as u64
            ),
            table_poll_interval: Duration::from_millis(
                long(props, "table.poll.interval.ms", 60_000)?.max(100) as u64,
            ),
        })
    }

    /// Whether a table name matches a whitelist/blacklist entry (`t`, `schema.t`, `db.schema.t`).
    fn names(entry: &str, t: &TableId) -> bool {
        let e = TableId::parse(entry);
        e.table == t.table && (e.schema.is_none() || e.schema == t.schema)
    }

    /// Whether this configuration copies the table.
    pub fn wants(&self, t: &TableId) -> bool {
        if !self.whitelist.is_empty() {
            return self.whitelist.iter().any(|e| Self::names(e, t));
        }
        if self.blacklist.iter().any(|e| Self::names(e, t)) {
            return false;
        }
        let full = t.qualified();
        let m = |r: &Regex| r.is_match(&full) || r.is_match(&t.table);
        (self.include.is_empty() || self.include.iter().any(m)) && !self.exclude.iter().any(m)
    }
}

/// JdbcSourceConnector.
#[derive(Default)]
pub struct JdbcSourceConnector {
    props: ConfigMap,
    config: Option<SourceConfig>,
}

impl Connector for JdbcSourceConnector {
    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn start(&mut self, props: &ConfigMap) -> Result<()> {
        // The database itself is reached by the tasks: a bad URL or password shows on the task.
        self.config = Some(SourceConfig::parse(props)?);
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        let Some(cfg) = &self.config else {
            return Err(ConnectError::connect("JdbcSourceConnector was not started"));
        };
        if cfg.query.is_some() {
            return Ok(vec![self.task_props(0, 1, None)]);
        }
        // As Confluent does: the tables found now are split into min(tables, tasks.max)
        // contiguous groups, one a task. When the database cannot be reached here, the tables
        // are spread by a hash of their names instead, and the tasks report the connection error.
        let mut settings = cfg.connection.clone();
        settings.attempts = 1;
        let tables = Db::connect(&settings)
            .and_then(|mut db| db.list_tables(cfg.include_views))
            .map(|ts| {
                ts.iter()
                    .filter(|t| cfg.wants(t))
                    .map(TableId::qualified)
                    .collect::<Vec<_>>()
            });
        match tables {
            Ok(tables) if !tables.is_empty() => {
                let groups = group_tables(&tables, max_tasks.max(1));
                let all = tables.join(",");
                let count = groups.len();
                Ok(groups
                    .into_iter()
                    .enumerate()
                    .map(|(i, g)| self.task_props(i, count, Some((g.join(","), all.clone()))))
                    .collect())
            }
            Ok(_) => Ok(vec![self.task_props(
                0,
                1,
                Some((String::new(), String::new())),
            )]),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list tables to assign them to tasks");
                let count = if cfg.whitelist.is_empty() {
                    max_tasks.max(1)
                } else {
                    max_tasks.clamp(1, cfg.whitelist.len())
                };
                Ok((0..count)
                    .map(|i| self.task_props(i, count, None))
                    .collect())
            }
        }
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn config(&self) -> ConfigDef {
        source_config_def()
    }
}

impl SourceConnector for JdbcSourceConnector {
    fn task_class(&self) -> &'static str {
        SOURCE_TASK_CLASS
    }
    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(JdbcSourceTask::default())
    }
}

impl JdbcSourceConnector {
    /// One task's configuration: its index, and the tables assigned to it (`tables`) out of all
    /// tables assigned to any task (`tables.assigned`) when they were listed.
    fn task_props(&self, i: usize, count: usize, tables: Option<(String, String)>) -> ConfigMap {
        let mut c = self.props.clone();
        c.insert("task.index".into(), i.to_string());
        c.insert("task.count".into(), count.to_string());
        if let Some((mine, all)) = tables {
            c.insert("tables".into(), mine);
            c.insert("tables.assigned".into(), all);
        }
        c
    }
}

/// Confluent's grouping (Connect's `ConnectorUtils.groupPartitions`): `n` contiguous groups whose
/// sizes differ by at most one, never more groups than tables.
fn group_tables(tables: &[String], n: usize) -> Vec<Vec<String>> {
    let groups = n.clamp(1, tables.len().max(1));
    let per = tables.len() / groups;
    let extra = tables.len() % groups;
    let mut out = Vec::with_capacity(groups);
    let mut at = 0;
    for g in 0..groups {
        let size = per + usize::from(g < extra);
        out.push(tables[at..at + size].to_vec());
        at += size;
    }
    out
}

/// Which task owns a table: a stable hash (FNV-1a) of its qualified name.
fn owner(t: &TableId, count: usize) -> usize {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in t.qualified().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    (h % count.max(1) as u64) as usize
}

/// JdbcSourceTask.
#[derive(Default)]
pub struct JdbcSourceTask {
    context: Option<SourceTaskContext>,
    config: Option<SourceConfig>,
    db: Option<Db>,
    queriers: BTreeMap<String, TableQuerier>,
    index: usize,
    count: usize,
    next_table_scan: Option<Instant>,
    /// (this task's tables, all tables assigned) from the connector, when it could list them.
    assigned: Option<(Vec<String>, Vec<String>)>,
}

impl JdbcSourceTask {
    /// Tables assigned by the connector are this task's when listed for it; tables that appeared
    /// since (in no task's list) go to one task chosen by a hash of the name.
    fn owns(&self, t: &TableId) -> bool {
        let name = t.qualified();
        match &self.assigned {
            Some((mine, all)) if all.contains(&name) => mine.contains(&name),
            _ => owner(t, self.count) == self.index,
        }
    }

    fn stored_offset(&self, q: &TableQuerier) -> Option<strom_connect::SourceOffset> {
        let reader = &self.context.as_ref()?.offset_storage_reader;
        if let Some(o) = reader.offset(&q.partition) {
            return Some(o);
        }
        // Offsets written under the older partition form `{"table": "<name>"}`.
        if let super::table_querier::Origin::Table(t) = &q.origin {
            let mut old = strom_connect::SourcePartition::new();
            old.insert("table".into(), serde_json::json!(t.table));
            return reader.offset(&old);
        }
        None
    }

    /// Finds the tables this task copies; adds queriers for new ones, drops removed ones.
    fn scan_tables(&mut self, first: bool) -> Result<()> {
        let (Some(cfg), Some(db)) = (self.config.as_ref(), self.db.as_mut()) else {
            return Ok(());
        };
        let tables = db
            .list_tables(cfg.include_views)
            .map_err(|e| ConnectError::connect(e.to_string()))?;
        if first {
            for w in &cfg.whitelist {
                if !tables.iter().any(|t| SourceConfig::names(w, t)) {
                    return Err(ConnectError::config(format!(
                        "table.whitelist names table '{w}', which does not exist in {} (tables found: {})",
                        super::url::redact(&cfg.connection.url),
                        tables
                            .iter()
                            .map(TableId::qualified)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        let mine: Vec<TableId> = tables
            .into_iter()
            .filter(|t| cfg.wants(t) && self.owns(t))
            .collect();
        let names: Vec<String> = mine.iter().map(TableId::qualified).collect();
        self.queriers.retain(|k, _| {
            let keep = names.contains(k);
            if !keep {
                tracing::info!(table = %k, "table is gone; no longer polled");
            }
            keep
        });
        for t in mine {
            let key = t.qualified();
            if self.queriers.contains_key(&key) {
                continue;
            }
            let mut q = TableQuerier::new(Origin::Table(t), &cfg.settings, None);
            if let Some(o) = self.stored_offset(&q) {
                q = TableQuerier::new(q.origin.clone(), &cfg.settings, Some(&o));
            }
            let (Some(cfg), Some(db)) = (self.config.as_ref(), self.db.as_mut()) else {
                return Ok(());
            };
            q.validate(db, &cfg.settings)?;
            tracing::info!(table = %key, topic = %q.topic, offset = ?q.offset, "polling table");
            self.queriers.insert(key, q);
        }
        Ok(())
    }
}

impl SourceTask for JdbcSourceTask {
    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn initialize(&mut self, context: SourceTaskContext) {
        self.context = Some(context);
    }

    fn start(&mut self, props: &ConfigMap) -> Result<()> {
        let cfg = SourceConfig::parse(props)?;
        self.index = long(props, "task.index", 0)?.max(0) as usize;
        self.count = long(props, "task.count", 1)?.max(1) as usize;
        self.assigned = match (props.get("tables"), props.get("tables.assigned")) {
            (Some(_), Some(_)) => Some((list(props, "tables"), list(props, "tables.assigned"))),
            _ => None,
        };
        let db = Db::connect(&cfg.connection).map_err(|e| ConnectError::connect(e.to_string()))?;
        tracing::info!(dialect = db.dialect.name(), "JDBC source connected");
        self.db = Some(db);
        if let Some(query) = cfg.query.clone() {
            let settings = cfg.settings.clone();
            self.config = Some(cfg);
            let mut q = TableQuerier::new(Origin::Query(query.clone()), &settings, None);
            if let Some(o) = self.stored_offset(&q) {
                q = TableQuerier::new(Origin::Query(query), &settings, Some(&o));
            }
            self.queriers.insert("query".into(), q);
        } else {
            self.config = Some(cfg);
            self.scan_tables(true)?;
            self.next_table_scan = self
                .config
                .as_ref()
                .map(|c| Instant::now() + c.table_poll_interval);
        }
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        if let (Some(cfg), Some(at)) = (self.config.as_ref(), self.next_table_scan)
            && Instant::now() >= at
        {
            let interval = cfg.table_poll_interval;
            self.scan_tables(false)?;
            self.next_table_scan = Some(Instant::now() + interval);
        }
        let (Some(cfg), Some(db)) = (self.config.as_ref(), self.db.as_mut()) else {
            return Err(ConnectError::connect("JdbcSourceTask was not started"));
        };
        let max = cfg.settings.batch_max_rows;
        // Rows already read go first.
        if let Some(q) = self.queriers.values_mut().find(|q| !q.pending.is_empty()) {
            let n = q.pending.len().min(max);
            return Ok(q.pending.drain(..n).collect());
        }
        let Some(q) = self.queriers.values_mut().min_by_key(|q| q.next_poll) else {
            std::thread::sleep(MAX_IDLE_SLEEP);
            return Ok(Vec::new());
        };
        let now = Instant::now();
        if q.next_poll > now {
            std::thread::sleep((q.next_poll - now).min(MAX_IDLE_SLEEP));
            return Ok(Vec::new());
        }
        let rows = match q.query(db, &cfg.settings) {
            Ok(n) => n,
            Err(e) => {
                // A dropped connection is re-opened once before the task gives up.
                tracing::warn!(table = %q.name(), error = %e, "query failed; reconnecting once");
                db.reconnect()
                    .map_err(|e| ConnectError::connect(e.to_string()))?;
                q.query(db, &cfg.settings)?
            }
        };
        // A full batch means more rows are waiting: come back at once.
        let limited = matches!(
            cfg.settings.mode,
            Mode::Incrementing | Mode::TimestampIncrementing
        );
        q.next_poll = if limited && rows >= max {
            Instant::now()
        } else {
            Instant::now() + cfg.poll_interval
        };
        let n = q.pending.len().min(max);
        Ok(q.pending.drain(..n).collect())
    }

    fn stop(&mut self) {
        self.db = None;
    }
}

#[cfg(test)]
mod tests {
    use super::group_tables;

    #[test]
    fn tables_are_grouped_as_confluent_does() {
        let t: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let g = group_tables(&t, 2);
        assert_eq!(g, vec![vec!["a", "b", "c"], vec!["d", "e"]]);
        // Never more tasks than tables; every table exactly once.
        let g = group_tables(&t, 8);
        assert_eq!(g.len(), 5);
        assert_eq!(g.concat(), t);
        assert_eq!(group_tables(&t, 1), vec![t.clone()]);
    }
}
