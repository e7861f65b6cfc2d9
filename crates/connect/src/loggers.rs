//! Log levels changed at runtime for `GET|PUT /admin/loggers` (KIP-495).
//!
//! strom logs through `tracing`, so a "logger" is a tracing target prefix (`strom_connect`,
//! `strom_connect::worker`, ...) and `root` is the default level. The binary that owns the
//! subscriber installs a setter (`install`) taking EnvFilter directives; this module only keeps
//! the levels set through REST and composes the directives. Without a setter (a library user
//! with its own subscriber) levels are refused rather than pretended. Levels are per worker
//! (`scope=worker`); Kafka's `scope=cluster` is not propagated to other workers.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use parking_lot::Mutex;

/// Applies EnvFilter directives (`info,strom_connect=debug`) to the running subscriber.
pub type FilterSetter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

struct Loggers {
    setter: FilterSetter,
    /// The directives the process started with, minus the bare default level.
    base_targets: Vec<String>,
    root: (String, Option<i64>),
    /// logger -> (level, last_modified ms).
    levels: BTreeMap<String, (String, Option<i64>)>,
}

static LOGGERS: OnceLock<Mutex<Loggers>> = OnceLock::new();

/// Why a level change was refused, with the HTTP status Kafka answers.
#[derive(Debug, PartialEq)]
pub enum LoggerError {
    /// 400: the body has no level.
    MissingLevel,
    /// 404 (as Kafka): the level is not a log4j level name.
    InvalidLevel(String),
    /// 500: this process cannot change its log levels.
    Unavailable(String),
}

impl std::fmt::Display for LoggerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoggerError::MissingLevel => {
                f.write_str("Desired 'level' parameter was not specified in request.")
            }
            LoggerError::InvalidLevel(l) => write!(f, "invalid log level '{l}'."),
            LoggerError::Unavailable(why) => f.write_str(why),
        }
    }
}

/// Installs the setter; `base` is the filter the subscriber started with.
pub fn install(base: &str, setter: FilterSetter) {
    let mut root = "INFO".to_string();
    let mut base_targets = Vec::new();
    for d in base.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if d.contains('=') || d.contains('[') {
            base_targets.push(d.to_string());
        } else {
            root = d.to_ascii_uppercase();
        }
    }
    let _ = LOGGERS.set(Mutex::new(Loggers {
        setter,
        base_targets,
        root: (root, None),
        levels: BTreeMap::new(),
    }));
}

/// log4j level names to tracing's (FATAL has no tracing twin: ERROR is nearest).
fn tracing_level(level: &str) -> Option<&'static str> {
    Some(match level.to_ascii_uppercase().as_str() {
        "TRACE" | "ALL" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        "OFF" => "off",
        _ => return None,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn is_descendant(logger: &str, of: &str) -> bool {
    of == "root" || logger.strip_prefix(of).is_some_and(|r| r.starts_with("::"))
}

impl Loggers {
    fn directives(&self) -> String {
        let mut out = vec![tracing_level(&self.root.0).unwrap_or("info").to_string()];
        out.extend(self.base_targets.iter().cloned());
        for (l, (level, _)) in &self.levels {
            out.push(format!("{l}={}", tracing_level(level).unwrap_or("info")));
        }
        out.join(",")
    }

    fn effective(&self, logger: &str) -> (String, Option<i64>) {
        self.levels
            .iter()
            .filter(|(l, _)| logger == l.as_str() || is_descendant(logger, l))
            .max_by_key(|(l, _)| l.len())
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| self.root.clone())
    }
}

/// Every logger with an explicit level, and `root` (`GET /admin/loggers`).
pub fn all() -> BTreeMap<String, (String, Option<i64>)> {
    let Some(l) = LOGGERS.get() else {
        return BTreeMap::from([("root".to_string(), ("INFO".to_string(), None))]);
    };
    let l = l.lock();
    let mut out = l.levels.clone();
    out.insert("root".into(), l.root.clone());
    out
}

/// The level a logger logs at: its own, else its nearest ancestor's, else root's.
pub fn level(logger: &str) -> (String, Option<i64>) {
    match LOGGERS.get() {
        Some(l) if logger != "root" => l.lock().effective(logger),
        Some(l) => l.lock().root.clone(),
        None => ("INFO".into(), None),
    }
}

/// Sets a logger and its descendants (as log4j does); returns the affected loggers, sorted.
pub fn set_level(logger: &str, level: Option<&str>) -> Result<Vec<String>, LoggerError> {
    let level = level.ok_or(LoggerError::MissingLevel)?;
    if tracing_level(level).is_none() {
        return Err(LoggerError::InvalidLevel(level.to_string()));
    }
    let level = level.to_ascii_uppercase();
    let cell = LOGGERS.get().ok_or_else(|| {
        LoggerError::Unavailable(
            "This process did not install a log level setter; levels cannot change at runtime"
                .into(),
        )
    })?;
    let mut l = cell.lock();
    let mut next_levels = l.levels.clone();
    let mut affected: Vec<String> = next_levels
        .keys()
        .filter(|k| is_descendant(k, logger))
        .cloned()
        .collect();
    for k in &affected {
        next_levels.remove(k);
    }
    let stamp = Some(now_ms());
    let old_root = l.root.clone();
    if logger == "root" {
        l.root = (level, stamp);
    } else {
        next_levels.insert(logger.to_string(), (level, stamp));
    }
    affected.push(logger.to_string());
    affected.sort();
    affected.dedup();
    let old_levels = std::mem::replace(&mut l.levels, next_levels);
    // A start-up directive for the logger or below it is overridden from now on.
    let old_base = l.base_targets.clone();
    l.base_targets.retain(|d| {
        let target = d.split(['=', '[']).next().unwrap_or("");
        target != logger && !is_descendant(target, logger)
    });
    let directives = l.directives();
    if let Err(e) = (l.setter)(&directives) {
        l.levels = old_levels;
        l.root = old_root;
        l.base_targets = old_base;
        return Err(LoggerError::Unavailable(format!(
            "Could not apply log filter {directives}: {e}"
        )));
    }
    tracing::info!(logger, directives = %directives, "log level changed through the REST API");
    Ok(affected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn levels_compose_into_directives() {
        let applied = Arc::new(Mutex::new(String::new()));
        let seen = applied.clone();
        install(
            "info,openraft=warn,strom_connect::worker=trace",
            Box::new(move |d| {
                *seen.lock() = d.to_string();
                Ok(())
            }),
        );
        assert_eq!(level("strom_connect::worker").0, "INFO");
        assert_eq!(set_level("x", None), Err(LoggerError::MissingLevel));
        assert_eq!(
            set_level("x", Some("loud")),
            Err(LoggerError::InvalidLevel("loud".into()))
        );
        assert_eq!(
            set_level("strom_connect::worker::sink", Some("trace")),
            Ok(vec!["strom_connect::worker::sink".to_string()])
        );
        // Setting a parent resets its descendants, which are reported as affected.
        assert_eq!(
            set_level("strom_connect", Some("debug")),
            Ok(vec![
                "strom_connect".to_string(),
                "strom_connect::worker::sink".to_string()
            ])
        );
        assert_eq!(*applied.lock(), "info,openraft=warn,strom_connect=debug");
        assert_eq!(level("strom_connect::worker").0, "DEBUG");
        assert_eq!(level("other").0, "INFO");
        assert!(set_level("root", Some("warn")).is_ok());
        assert_eq!(*applied.lock(), "warn");
        assert!(all().contains_key("root") && all().len() == 1);
    }
}
