//! Reading the JDBC connectors' configuration: typed getters that name the key on error, the
//! `connection.*` keys shared by source and sink, and the ConfigDef entries for them.

use std::time::Duration;

use strom_connect::{
    ConfigDef, ConfigMap, ConfigType, ConnectError, Importance, Result, Validator,
};

use super::connection::ConnectSettings;
use super::url::JdbcUrl;

pub fn string(props: &ConfigMap, key: &str, default: &str) -> String {
    props
        .get(key)
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| default.to_string())
}

pub fn opt_string(props: &ConfigMap, key: &str) -> Option<String> {
    props
        .get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

pub fn long(props: &ConfigMap, key: &str, default: i64) -> Result<i64> {
    match props.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.parse::<i64>().map_err(|_| {
            ConnectError::config(format!(
                "Invalid value {v} for configuration {key}: Not a number of type LONG"
            ))
        }),
    }
}

pub fn boolean(props: &ConfigMap, key: &str, default: bool) -> Result<bool> {
    match props.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(ConnectError::config(format!(
            "Invalid value {v} for configuration {key}: Expected value to be either true or false"
        ))),
    }
}

pub fn list(props: &ConfigMap, key: &str) -> Vec<String> {
    strom_connect::config_def::parse_list(props.get(key).map(String::as_str).unwrap_or(""))
}

/// The `connection.*` settings; fails naming `connection.url` when it is missing or unusable.
pub fn connect_settings(props: &ConfigMap, create_sqlite_file: bool) -> Result<ConnectSettings> {
    let url = opt_string(props, "connection.url").ok_or_else(|| {
        ConnectError::config(
            "Missing required configuration \"connection.url\" which has no default value.",
        )
    })?;
    JdbcUrl::parse(&url).map_err(|e| ConnectError::config(e.to_string()))?;
    Ok(ConnectSettings {
        url,
        user: opt_string(props, "connection.user"),
        password: props.get("connection.password").cloned(),
        attempts: long(props, "connection.attempts", 3)?.clamp(1, 1000) as u32,
        backoff: Duration::from_millis(long(props, "connection.backoff.ms", 10_000)?.max(0) as u64),
        create_sqlite_file,
    })
}

fn valid_url(v: &str) -> std::result::Result<(), String> {
    JdbcUrl::parse(v).map(drop).map_err(|e| e.reason)
}

/// The connection keys, shared by source and sink.
pub fn connection_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "connection.url",
            ConfigType::String,
            None,
            Importance::High,
            "JDBC connection URL: jdbc:postgresql://host:port/db, jdbc:mysql://host:port/db, \
             jdbc:mariadb://host:port/db or jdbc:sqlite:path",
        )
        .with_validator(Validator::Custom(valid_url))
        .in_group("Database", "JDBC URL")
        .define("connection.user", ConfigType::String, None, Importance::High, "JDBC connection user.")
        .optional()
        .in_group("Database", "JDBC User")
        .define(
            "connection.password",
            ConfigType::Password,
            None,
            Importance::High,
            "JDBC connection password.",
        )
        .optional()
        .in_group("Database", "JDBC Password")
        .define(
            "connection.attempts",
            ConfigType::Int,
            Some("3"),
            Importance::Low,
            "Maximum number of attempts to retrieve a valid JDBC connection.",
        )
        .with_validator(Validator::Range { min: Some(1.0), max: None })
        .in_group("Database", "JDBC connection attempts")
        .define(
            "connection.backoff.ms",
            ConfigType::Long,
            Some("10000"),
            Importance::Low,
            "Backoff time in milliseconds between connection attempts.",
        )
        .in_group("Database", "JDBC connection backoff in milliseconds")
        .define(
            "dialect.name",
            ConfigType::String,
            Some(""),
            Importance::Low,
            "The database dialect; empty means derived from the JDBC URL.",
        )
        .in_group("Database", "Database Dialect")
        .define(
            "db.timezone",
            ConfigType::String,
            Some("UTC"),
            Importance::Medium,
            "Time zone of date-times without a zone in the database: a zone name such as Asia/Seoul, UTC, or a fixed offset such as +09:00.",
        )
        .with_validator(Validator::Custom(|v| super::schema_mapping::parse_timezone(v).map(drop)))
        .in_group("Database", "DB time zone")
}
