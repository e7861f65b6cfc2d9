//! Per-record error handling of a task (`RetryWithToleranceOperator`, `LogReporter`): the
//! connector's `errors.retry.timeout` / `errors.retry.delay.max.ms` retries, and the
//! `errors.log.enable` / `errors.log.include.messages` log of failed record operations.
//!
//! As in Kafka, an operation on a record (a converter, a transform, and in strom also a sink
//! task's `put`) that fails with a retriable error ([`ConnectError::is_retriable`]) is tried
//! again, with a delay that doubles from 300 ms up to `errors.retry.delay.max.ms`, until it
//! succeeds or `errors.retry.timeout` has passed since the first try. Only then does
//! `errors.tolerance` decide between skipping the record and failing the task. Errors that are
//! not retriable go to the tolerance at once. The default timeout, 0, never retries; -1 retries
//! until the task is stopped.
//!
//! The dead letter queue, the other reporter, lives in [`crate::dead_letter`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config_def::{ConfigDef, ConfigMap, ConfigType, Importance, Validator};
use crate::connector::ConnectRecord;
use crate::dead_letter::Stage;
use crate::error::{ConnectError, Result};

pub const RETRY_TIMEOUT: &str = "errors.retry.timeout";
pub const RETRY_DELAY_MAX_MS: &str = "errors.retry.delay.max.ms";
pub const LOG_ENABLE: &str = "errors.log.enable";
pub const LOG_INCLUDE_MESSAGES: &str = "errors.log.include.messages";
pub const TOLERANCE: &str = "errors.tolerance";

const DEFAULT_RETRY_TIMEOUT: &str = "0";
const DEFAULT_RETRY_DELAY_MAX_MS: &str = "60000";

/// The first retry waits this long; each further one twice the previous (Kafka's value).
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(300);

/// Adds the retry and log keys to the connector config definition, in `group`.
pub fn define_keys(def: ConfigDef, group: &str) -> ConfigDef {
    def.define(
        RETRY_TIMEOUT,
        ConfigType::Long,
        Some(DEFAULT_RETRY_TIMEOUT),
        Importance::Medium,
        "How long, in milliseconds, a record operation that fails with a retriable error is \
         retried before errors.tolerance applies. 0 (the default) never retries; -1 retries \
         until the task stops.",
    )
    .with_validator(Validator::Range {
        min: Some(-1.0),
        max: None,
    })
    .in_group(group, "Retry Timeout for Errors")
    .define(
        RETRY_DELAY_MAX_MS,
        ConfigType::Long,
        Some(DEFAULT_RETRY_DELAY_MAX_MS),
        Importance::Medium,
        "The longest wait, in milliseconds, between two retries of a failed record operation; \
         the wait starts at 300 ms and doubles up to this.",
    )
    .with_validator(Validator::Range {
        min: Some(1.0),
        max: None,
    })
    .in_group(group, "Maximum Delay Between Retries for Errors")
    .define(
        LOG_ENABLE,
        ConfigType::Boolean,
        Some("false"),
        Importance::Medium,
        "Whether each failed record operation is logged at ERROR (stage, class, and the topic, \
         partition and offset of the record), tolerated or not.",
    )
    .in_group(group, "Log Errors")
    .define(
        LOG_INCLUDE_MESSAGES,
        ConfigType::Boolean,
        Some("false"),
        Importance::Medium,
        "Whether the log of a failed record operation includes the record's key and value.",
    )
    .in_group(group, "Log Error Details")
}

/// How long to keep retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryTimeout {
    /// Until the task is stopped (`-1`).
    Forever,
    /// This long after the first try; zero never retries.
    After(Duration),
}

/// A failed record operation: where it failed, in which class, and why.
#[derive(Debug)]
pub struct StageError {
    pub stage: Stage,
    pub class: String,
    pub error: ConnectError,
}

/// The record a failed operation worked on, for the log.
pub enum FailedInput<'a> {
    /// As consumed from Kafka (sink tasks).
    Consumed {
        topic: &'a str,
        partition: i32,
        offset: i64,
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
    },
    /// As a source task produced it.
    Produced(&'a ConnectRecord),
    /// A batch handed to a sink task's `put`.
    Batch { records: usize },
}

/// A task's error handling, from its connector's config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorHandling {
    pub retry_timeout: RetryTimeout,
    pub retry_delay_max: Duration,
    /// `errors.tolerance=all`: a record whose operation still fails is skipped.
    pub tolerate_all: bool,
    pub log_enable: bool,
    pub log_include_messages: bool,
}

impl ErrorHandling {
    /// Reads the `errors.*` keys; a bad value names its key.
    pub fn from_config(cc: &ConfigMap) -> Result<ErrorHandling> {
        let get = |key: &str, default: &str| -> String {
            cc.get(key)
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| default.to_string())
        };
        let bad = |key: &str, v: &str, why: &str| {
            ConnectError::config(format!("Invalid value {v} for configuration {key}: {why}"))
        };
        let boolean = |key: &str| -> Result<bool> {
            let v = get(key, "false");
            match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(bad(key, &v, "Expected value to be either true or false")),
            }
        };
        let timeout = get(RETRY_TIMEOUT, DEFAULT_RETRY_TIMEOUT);
        let retry_timeout = match timeout.parse::<i64>() {
            Ok(-1) => RetryTimeout::Forever,
            Ok(ms) if ms >= 0 => RetryTimeout::After(Duration::from_millis(ms as u64)),
            _ => {
                return Err(bad(
                    RETRY_TIMEOUT,
                    &timeout,
                    "Value must be -1 (retry forever) or a number of milliseconds, at least 0",
                ));
            }
        };
        let delay = get(RETRY_DELAY_MAX_MS, DEFAULT_RETRY_DELAY_MAX_MS);
        let retry_delay_max = match delay.parse::<u64>() {
            Ok(ms) if ms >= 1 => Duration::from_millis(ms),
            _ => {
                return Err(bad(
                    RETRY_DELAY_MAX_MS,
                    &delay,
                    "Value must be a number of milliseconds, at least 1",
                ));
            }
        };
        let tolerance = get(TOLERANCE, "none");
        let tolerate_all = match tolerance.to_ascii_lowercase().as_str() {
            "all" => true,
            "none" => false,
            _ => {
                return Err(bad(
                    TOLERANCE,
                    &tolerance,
                    "String must be one of: none, all",
                ));
            }
        };
        Ok(ErrorHandling {
            retry_timeout,
            retry_delay_max,
            tolerate_all,
            log_enable: boolean(LOG_ENABLE)?,
            log_include_messages: boolean(LOG_INCLUDE_MESSAGES)?,
        })
    }

    /// Whether a failed operation may be tried again at all.
    pub fn retries(&self) -> bool {
        self.retry_timeout != RetryTimeout::After(Duration::ZERO)
    }

    /// The wait after the `attempt`-th failure (1-based): 300 ms, doubling, at most
    /// `errors.retry.delay.max.ms`.
    pub fn delay(&self, attempt: u32) -> Duration {
        crate::backoff::doubling(
            FIRST_RETRY_DELAY,
            attempt.saturating_sub(1),
            self.retry_delay_max,
        )
    }

    /// The wait before the next try after `attempt` failures since `started`, or `None` when
    /// the timeout leaves no time for another try. The last wait is cut to end at the deadline,
    /// so the final try happens at the timeout rather than after it.
    pub fn next_delay(&self, attempt: u32, started: Instant) -> Option<Duration> {
        let delay = self.delay(attempt);
        match self.retry_timeout {
            RetryTimeout::Forever => Some(delay),
            RetryTimeout::After(timeout) => {
                let left = timeout.checked_sub(started.elapsed())?;
                (!left.is_zero()).then(|| delay.min(left))
            }
        }
    }

    /// Runs `op` on `input`, trying again while it fails with a retriable error and the timeout
    /// allows; a stop request ends the waiting. The input is cloned for each try only when
    /// retries are on, so the default costs nothing.
    pub fn retrying<I: Clone, T>(
        &self,
        input: I,
        stop: &AtomicBool,
        mut op: impl FnMut(I) -> Result<T>,
    ) -> Result<T> {
        if !self.retries() {
            return op(input);
        }
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match op(input.clone()) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() => e,
                Err(e) => return Err(e),
            };
            let Some(wait) = self.next_delay(attempt, started) else {
                return Err(err);
            };
            tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %err,
                "retrying a failed record operation (errors.retry.timeout)");
            if !sleep_unless_stopped(stop, wait) {
                return Err(err);
            }
        }
    }

    /// Logs a failed operation at ERROR when `errors.log.enable=true`; whether it was tolerated
    /// is said in the message.
    pub fn report(&self, task: &str, failure: &StageError, input: &FailedInput<'_>) {
        if !self.log_enable {
            return;
        }
        let (topic, partition, offset) = match input {
            FailedInput::Consumed {
                topic,
                partition,
                offset,
                ..
            } => (Some(*topic), Some(*partition), Some(*offset)),
            FailedInput::Produced(r) => (Some(r.topic.as_str()), r.kafka_partition, None),
            FailedInput::Batch { .. } => (None, None, None),
        };
        tracing::error!(
            task,
            stage = failure.stage.name(),
            class = %failure.class,
            topic,
            partition,
            offset,
            error = %failure.error,
            "{}",
            self.message(task, failure, input)
        );
    }

    /// The text of the log line for a failed operation.
    pub fn message(&self, task: &str, failure: &StageError, input: &FailedInput<'_>) -> String {
        let mut msg = format!(
            "Error in task {task} during {} with class '{}'",
            failure.stage.name(),
            failure.class
        );
        match input {
            FailedInput::Consumed {
                topic,
                partition,
                offset,
                key,
                value,
            } => {
                msg.push_str(&format!(
                    ", consumed record topic='{topic}', partition={partition}, offset={offset}"
                ));
                if self.log_include_messages {
                    msg.push_str(&format!(
                        ", key={}, value={}",
                        show_bytes(*key),
                        show_bytes(*value)
                    ));
                }
            }
            FailedInput::Produced(r) => {
                msg.push_str(&format!(", source record topic='{}'", r.topic));
                if let Some(p) = r.kafka_partition {
                    msg.push_str(&format!(", partition={p}"));
                }
                if self.log_include_messages {
                    msg.push_str(&format!(", key={:?}, value={:?}", r.key, r.value));
                }
            }
            FailedInput::Batch { records } => {
                msg.push_str(&format!(", batch of {records} records"));
            }
        }
        let outcome = if failure.stage == Stage::TaskPut || !self.tolerate_all {
            "the task fails"
        } else {
            "the record is skipped (errors.tolerance=all)"
        };
        msg.push_str(&format!(": {}; {outcome}", failure.error));
        msg
    }
}

/// Raw bytes as text when they are UTF-8, else as their length (binary is unreadable in a log).
fn show_bytes(b: Option<&[u8]>) -> String {
    match b {
        None => "null".to_string(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => format!("{s:?}"),
            Err(_) => format!("<{} bytes>", b.len()),
        },
    }
}

/// Sleeps up to `wait`, waking early for a stop request; false when asked to stop.
pub fn sleep_unless_stopped(stop: &AtomicBool, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while !stop.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    use crate::config_def::config_map as cfg;

    fn handling(pairs: &[(&str, &str)]) -> ErrorHandling {
        ErrorHandling::from_config(&cfg(pairs)).expect("config")
    }

    #[test]
    fn defaults_never_retry_and_do_not_log() {
        let eh = handling(&[]);
        assert_eq!(eh.retry_timeout, RetryTimeout::After(Duration::ZERO));
        assert_eq!(eh.retry_delay_max, Duration::from_millis(60000));
        assert!(!eh.tolerate_all && !eh.log_enable && !eh.log_include_messages);
        let calls = Cell::new(0);
        let stop = AtomicBool::new(false);
        let r: Result<()> = eh.retrying((), &stop, |()| {
            calls.set(calls.get() + 1);
            Err(ConnectError::retriable("db away"))
        });
        assert!(r.is_err());
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn delays_double_from_300ms_up_to_the_max() {
        let eh = handling(&[(RETRY_DELAY_MAX_MS, "2000")]);
        let d: Vec<u64> = (1..=6).map(|n| eh.delay(n).as_millis() as u64).collect();
        assert_eq!(d, [300, 600, 1200, 2000, 2000, 2000]);
    }

    #[test]
    fn retriable_errors_are_retried_until_they_pass() {
        let eh = handling(&[(RETRY_TIMEOUT, "10000"), (RETRY_DELAY_MAX_MS, "5")]);
        let calls = Cell::new(0);
        let stop = AtomicBool::new(false);
        let r = eh.retrying(7, &stop, |n| {
            calls.set(calls.get() + 1);
            if calls.get() < 4 {
                Err(ConnectError::retriable("db away"))
            } else {
                Ok(n * 2)
            }
        });
        assert_eq!(r.expect("passes on the 4th try"), 14);
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn other_errors_are_not_retried() {
        let eh = handling(&[(RETRY_TIMEOUT, "-1"), (RETRY_DELAY_MAX_MS, "5")]);
        let calls = Cell::new(0);
        let stop = AtomicBool::new(false);
        let r: Result<()> = eh.retrying((), &stop, |()| {
            calls.set(calls.get() + 1);
            Err(ConnectError::Data("not JSON".into()))
        });
        assert!(matches!(r, Err(ConnectError::Data(_))));
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn retries_end_at_the_timeout() {
        let eh = handling(&[(RETRY_TIMEOUT, "300"), (RETRY_DELAY_MAX_MS, "20")]);
        let calls = Cell::new(0);
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        let r: Result<()> = eh.retrying((), &stop, |()| {
            calls.set(calls.get() + 1);
            Err(ConnectError::retriable("db away"))
        });
        let took = started.elapsed();
        assert!(matches!(r, Err(ConnectError::Retriable(_))));
        assert!(calls.get() >= 5, "only {} tries", calls.get());
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[test]
    fn forever_ends_when_the_task_stops() {
        let eh = handling(&[(RETRY_TIMEOUT, "-1"), (RETRY_DELAY_MAX_MS, "10")]);
        let calls = Cell::new(0);
        let stop = AtomicBool::new(false);
        let r: Result<()> = eh.retrying((), &stop, |()| {
            calls.set(calls.get() + 1);
            if calls.get() == 20 {
                stop.store(true, Ordering::SeqCst);
            }
            Err(ConnectError::retriable("db away"))
        });
        assert!(r.is_err());
        assert_eq!(calls.get(), 20);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (key, v) in [
            (RETRY_TIMEOUT, "-2"),
            (RETRY_TIMEOUT, "soon"),
            (RETRY_DELAY_MAX_MS, "0"),
            (LOG_ENABLE, "yes"),
            (LOG_INCLUDE_MESSAGES, "1"),
        ] {
            let err = ErrorHandling::from_config(&cfg(&[(key, v)])).expect_err("error");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn log_line_shows_the_record_and_only_with_include_messages_its_content() {
        let failure = StageError {
            stage: Stage::ValueConverter,
            class: "org.apache.kafka.connect.json.JsonConverter".into(),
            error: ConnectError::Data("Converting byte[] to Kafka Connect data failed".into()),
        };
        let input = FailedInput::Consumed {
            topic: "orders",
            partition: 2,
            offset: 41,
            key: Some(b"k1"),
            value: Some(b"{not json"),
        };
        let plain = handling(&[(LOG_ENABLE, "true")]).message("sink-0", &failure, &input);
        assert!(plain.contains("VALUE_CONVERTER"), "{plain}");
        assert!(plain.contains("JsonConverter"), "{plain}");
        assert!(
            plain.contains("topic='orders', partition=2, offset=41"),
            "{plain}"
        );
        assert!(plain.contains("the task fails"), "{plain}");
        assert!(!plain.contains("not json"), "{plain}");
        let full = handling(&[
            (LOG_ENABLE, "true"),
            (LOG_INCLUDE_MESSAGES, "true"),
            (TOLERANCE, "all"),
        ])
        .message("sink-0", &failure, &input);
        assert!(full.contains(r#"key="k1""#), "{full}");
        assert!(full.contains(r#"value="{not json""#), "{full}");
        assert!(full.contains("skipped"), "{full}");
    }
}
