//! Automatic restart of failed tasks: the `errors.restart.*` policy and its backoff.
//!
//! Kafka Connect leaves a failed task FAILED until someone restarts it over REST; strom, by
//! default, restarts it itself after an exponential backoff, because most task failures (a
//! database or broker briefly away) heal on their own. These keys are strom's, not Kafka's: a
//! worker sets the default for its connectors, a connector may override any of them, and
//! `errors.restart.enabled=false` gives Kafka's behaviour back.
//!
//! Between attempts the task stays FAILED with the error as its trace, so monitoring still sees
//! every failure; it shows RUNNING again once a restart got it running.

use std::time::Duration;

use crate::config_def::{ConfigDef, ConfigMap, ConfigType, Importance, Validator};
use crate::error::{ConnectError, Result};

pub const ENABLED: &str = "errors.restart.enabled";
pub const BACKOFF_INITIAL_MS: &str = "errors.restart.backoff.initial.ms";
pub const BACKOFF_MAX_MS: &str = "errors.restart.backoff.max.ms";
pub const MAX_ATTEMPTS: &str = "errors.restart.max.attempts";

const DEFAULT_ENABLED: &str = "true";
const DEFAULT_BACKOFF_INITIAL_MS: &str = "1000";
const DEFAULT_BACKOFF_MAX_MS: &str = "60000";
const DEFAULT_MAX_ATTEMPTS: &str = "10";

/// One of the four keys, as [`define_keys`] declares it.
struct KeySpec {
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    doc: &'static str,
    min: Option<f64>,
    display: &'static str,
}

const KEYS: [KeySpec; 4] = [
    KeySpec {
        name: ENABLED,
        config_type: ConfigType::Boolean,
        default: DEFAULT_ENABLED,
        doc: "Whether the worker restarts a failed task by itself (strom only; Kafka never does).",
        min: None,
        display: "Restart failed tasks",
    },
    KeySpec {
        name: BACKOFF_INITIAL_MS,
        config_type: ConfigType::Long,
        default: DEFAULT_BACKOFF_INITIAL_MS,
        doc: "Wait before the first automatic restart of a failed task; doubles with each further \
              attempt.",
        min: Some(0.0),
        display: "Restart backoff initial",
    },
    KeySpec {
        name: BACKOFF_MAX_MS,
        config_type: ConfigType::Long,
        default: DEFAULT_BACKOFF_MAX_MS,
        doc: "Longest wait between automatic restarts of a failed task. A task that ran this long \
              before failing again starts over at the initial backoff and a fresh attempt count.",
        min: Some(0.0),
        display: "Restart backoff max",
    },
    KeySpec {
        name: MAX_ATTEMPTS,
        config_type: ConfigType::Int,
        default: DEFAULT_MAX_ATTEMPTS,
        doc: "How many automatic restarts in a row before a failed task is left FAILED; -1 means \
              no limit.",
        min: Some(-1.0),
        display: "Restart max attempts",
    },
];

/// Adds the four keys to a config definition. The worker's carry the defaults; a connector's
/// have none, so that an unset key falls back to the worker's value.
pub fn define_keys(mut def: ConfigDef, with_defaults: bool, group: Option<&str>) -> ConfigDef {
    for k in &KEYS {
        let default = with_defaults.then_some(k.default);
        def = def.define(k.name, k.config_type, default, Importance::Low, k.doc);
        if !with_defaults {
            def = def.optional();
        }
        if let Some(min) = k.min {
            def = def.with_validator(Validator::Range {
                min: Some(min),
                max: None,
            });
        }
        if let Some(g) = group {
            def = def.in_group(g, k.display);
        }
    }
    def
}

/// How a worker restarts one connector's failed tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    pub enabled: bool,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// `None`: no limit.
    pub max_attempts: Option<u32>,
}

impl RestartPolicy {
    /// The connector's keys, else the worker's, else the defaults; a bad value names its key.
    pub fn from_configs(worker: &ConfigMap, connector: &ConfigMap) -> Result<RestartPolicy> {
        let get = |key: &str, default: &'static str| -> String {
            connector
                .get(key)
                .or_else(|| worker.get(key))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| default.to_string())
        };
        let bad = |key: &str, v: &str, why: &str| {
            ConnectError::config(format!("Invalid value {v} for configuration {key}: {why}"))
        };
        let enabled = match get(ENABLED, DEFAULT_ENABLED).to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            other => {
                return Err(bad(
                    ENABLED,
                    other,
                    "Expected value to be either true or false",
                ));
            }
        };
        let millis = |key: &str, default: &'static str| -> Result<Duration> {
            let v = get(key, default);
            v.parse::<u64>().map(Duration::from_millis).map_err(|_| {
                bad(
                    key,
                    &v,
                    "Value must be a whole number of milliseconds, at least 0",
                )
            })
        };
        let initial_backoff = millis(BACKOFF_INITIAL_MS, DEFAULT_BACKOFF_INITIAL_MS)?;
        let max_backoff = millis(BACKOFF_MAX_MS, DEFAULT_BACKOFF_MAX_MS)?;
        let attempts = get(MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS);
        let max_attempts = match attempts.parse::<i64>() {
            Ok(-1) => None,
            Ok(n) if (0..=i64::from(u32::MAX)).contains(&n) => Some(n as u32),
            _ => {
                return Err(bad(
                    MAX_ATTEMPTS,
                    &attempts,
                    "Value must be -1 (no limit) or at least 0",
                ));
            }
        };
        Ok(RestartPolicy {
            enabled,
            initial_backoff,
            max_backoff,
            max_attempts,
        })
    }

    /// The wait before the next restart, after `restarts` restarts in a row; `None` when the
    /// task is to stay FAILED (restarts off, or the attempts used up).
    pub fn backoff(&self, restarts: u32) -> Option<Duration> {
        if !self.enabled || self.max_attempts.is_some_and(|max| restarts >= max) {
            return None;
        }
        Some(crate::backoff::doubling(
            self.initial_backoff,
            restarts,
            self.max_backoff,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config_def::config_map as cfg;

    #[test]
    fn defaults_double_up_to_the_max_and_stop_after_ten() {
        let p = RestartPolicy::from_configs(&cfg(&[]), &cfg(&[])).expect("policy");
        assert!(p.enabled);
        let waits: Vec<Option<u64>> = (0..11)
            .map(|n| p.backoff(n).map(|d| d.as_millis() as u64))
            .collect();
        assert_eq!(
            waits,
            [
                Some(1000),
                Some(2000),
                Some(4000),
                Some(8000),
                Some(16000),
                Some(32000),
                Some(60000),
                Some(60000),
                Some(60000),
                Some(60000),
                None
            ]
        );
    }

    #[test]
    fn connector_overrides_worker_and_minus_one_is_forever() {
        let worker = cfg(&[(MAX_ATTEMPTS, "3"), (BACKOFF_INITIAL_MS, "10")]);
        let p =
            RestartPolicy::from_configs(&worker, &cfg(&[(MAX_ATTEMPTS, "-1")])).expect("policy");
        assert_eq!(p.max_attempts, None);
        assert_eq!(p.backoff(1000), Some(Duration::from_millis(60000)));
        assert_eq!(p.backoff(0), Some(Duration::from_millis(10)));
        let off =
            RestartPolicy::from_configs(&worker, &cfg(&[(ENABLED, "false")])).expect("policy");
        assert_eq!(off.backoff(0), None);
        let p = RestartPolicy::from_configs(&worker, &cfg(&[])).expect("policy");
        assert_eq!(p.backoff(2), Some(Duration::from_millis(40)));
        assert_eq!(p.backoff(3), None);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (key, v) in [
            (ENABLED, "yes"),
            (BACKOFF_INITIAL_MS, "-5"),
            (BACKOFF_MAX_MS, "soon"),
            (MAX_ATTEMPTS, "-2"),
        ] {
            let err = RestartPolicy::from_configs(&cfg(&[]), &cfg(&[(key, v)])).expect_err("error");
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
