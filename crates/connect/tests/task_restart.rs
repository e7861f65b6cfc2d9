//! Automatic restart of failed tasks (`errors.restart.*`), through the standalone herder as the
//! REST API sees it: a source task that fails on its first starts is FAILED (with its error as
//! the trace) between attempts, and RUNNING once a restart gets it going.
//!
//! The tasks never send a record, so no broker is needed: the producer each attempt creates
//! points at a closed port and is never used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strom_connect::herder::TargetState;
use strom_connect::worker::State;
use strom_connect::*;

/// Starts per connector name, shared by all task instances (each attempt gets a new one).
static STARTS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

fn starts(name: &str) -> usize {
    let guard = STARTS.lock().expect("lock");
    guard
        .as_ref()
        .and_then(|m| m.get(name).copied())
        .unwrap_or(0)
}

struct Flaky {
    config: ConfigMap,
}

impl Connector for Flaky {
    fn version(&self) -> String {
        "1.0".into()
    }
    fn start(&mut self, props: &ConfigMap) -> Result<()> {
        self.config = props.clone();
        Ok(())
    }
    fn task_configs(&self, _max: usize) -> Result<Vec<ConfigMap>> {
        Ok(vec![self.config.clone()])
    }
    fn stop(&mut self) -> Result<()> {
        Ok(())
    }
    fn config(&self) -> ConfigDef {
        ConfigDef::new().define(
            "fail.starts",
            ConfigType::Int,
            Some("0"),
            Importance::High,
            "How many starts fail before one succeeds (-1: all).",
        )
    }
}

impl SourceConnector for Flaky {
    fn task_class(&self) -> &'static str {
        "test.FlakyTask"
    }
    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(FlakyTask)
    }
}

struct FlakyTask;

impl SourceTask for FlakyTask {
    fn version(&self) -> String {
        "1.0".into()
    }
    fn initialize(&mut self, _context: SourceTaskContext) {}
    fn start(&mut self, props: &ConfigMap) -> Result<()> {
        let name = props.get("name").cloned().unwrap_or_default();
        let fail: i64 = props
            .get("fail.starts")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let n = {
            let mut guard = STARTS.lock().expect("lock");
            let count = guard
                .get_or_insert_with(HashMap::new)
                .entry(name)
                .or_default();
            *count += 1;
            *count
        };
        if fail < 0 || n as i64 <= fail {
            return Err(ConnectError::connect(format!(
                "database unreachable (start {n})"
            )));
        }
        Ok(())
    }
    fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        std::thread::sleep(Duration::from_millis(20));
        Ok(Vec::new())
    }
    fn stop(&mut self) {}
}

fn herder(dir: &tempfile::TempDir, worker_extra: &[(&str, &str)]) -> StandaloneHerder {
    let mut props: ConfigMap = [
        ("bootstrap.servers", "127.0.0.1:1"),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        ("listeners", "http://127.0.0.1:0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    props.insert(
        "offset.storage.file.filename".into(),
        dir.path().join("offsets").display().to_string(),
    );
    for (k, v) in worker_extra {
        props.insert(k.to_string(), v.to_string());
    }
    let worker =
        Worker::new(WorkerConfig::standalone(props).expect("worker config")).expect("worker");
    let mut plugins = Plugins::new();
    plugins.register(ConnectorPlugin {
        class_name: "test.FlakyConnector",
        version: "1.0",
        factory: ConnectorFactory::Source(|| {
            Box::new(Flaky {
                config: ConfigMap::new(),
            })
        }),
    });
    StandaloneHerder::new(Arc::new(worker), plugins)
}

fn create(h: &StandaloneHerder, name: &str, extra: &[(&str, &str)]) {
    let mut config: ConfigMap = [
        ("connector.class", "test.FlakyConnector"),
        ("tasks.max", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        config.insert(k.to_string(), v.to_string());
    }
    h.put_connector_config(name, config, false, TargetState::Started)
        .expect("create connector");
}

/// Polls the task's status until `done` says so (or 10 s pass); returns every FAILED trace seen.
fn watch(h: &StandaloneHerder, name: &str, done: impl Fn(State) -> bool) -> (State, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut traces = Vec::new();
    loop {
        let s = h.task_status(name, 0).expect("status");
        if s.state == State::Failed {
            let t = s.trace.clone().unwrap_or_default();
            if traces.last() != Some(&t) {
                traces.push(t);
            }
        }
        if done(s.state) || Instant::now() > deadline {
            return (s.state, traces);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn failing_task_is_restarted_with_backoff_until_it_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    let h = herder(
        &dir,
        &[
            ("errors.restart.backoff.initial.ms", "100"),
            ("errors.restart.backoff.max.ms", "400"),
        ],
    );
    let began = Instant::now();
    create(&h, "flaky3", &[("fail.starts", "3")]);
    let (state, traces) = watch(&h, "flaky3", |s| s == State::Running);
    assert_eq!(state, State::Running, "running after the restarts");
    // Backoffs 100 + 200 + 400 ms: the third restart cannot have happened sooner.
    assert!(
        began.elapsed() >= Duration::from_millis(700),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(
        starts("flaky3"),
        4,
        "three failed starts, then one that worked"
    );
    assert!(
        traces
            .iter()
            .any(|t| t.contains("database unreachable (start 1)")),
        "FAILED with the error as trace between attempts: {traces:?}"
    );
    assert!(
        traces.iter().any(|t| t.contains("(start 3)")),
        "each attempt's own error: {traces:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        h.task_status("flaky3", 0).expect("status").state,
        State::Running
    );
    assert_eq!(starts("flaky3"), 4, "a running task is not restarted");
    h.shutdown();
}

#[test]
fn restarts_stop_after_max_attempts_and_can_be_turned_off() {
    let dir = tempfile::tempdir().expect("tmp");
    let h = herder(&dir, &[("errors.restart.backoff.initial.ms", "20")]);
    // The connector's keys override the worker's.
    create(
        &h,
        "always2",
        &[("fail.starts", "-1"), ("errors.restart.max.attempts", "2")],
    );
    create(
        &h,
        "off",
        &[("fail.starts", "-1"), ("errors.restart.enabled", "false")],
    );
    // 20 + 40 ms of backoff; give it ample time to (wrongly) try more.
    std::thread::sleep(Duration::from_millis(800));
    let s = h.task_status("always2", 0).expect("status");
    assert_eq!(s.state, State::Failed);
    assert!(s.trace.unwrap_or_default().contains("(start 3)"));
    assert_eq!(starts("always2"), 3, "the first start and two restarts");
    assert_eq!(
        h.task_status("off", 0).expect("status").state,
        State::Failed
    );
    assert_eq!(starts("off"), 1, "errors.restart.enabled=false: no restart");
    // A REST restart still works after the policy gave up (and its attempts count afresh).
    h.restart_task("off", 0).expect("restart");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(starts("off"), 2);
    h.shutdown();
}

#[test]
fn bad_restart_config_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let h = herder(&dir, &[]);
    let config: ConfigMap = [
        ("connector.class", "test.FlakyConnector"),
        ("errors.restart.max.attempts", "-3"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let err = h
        .put_connector_config("bad", config, false, TargetState::Started)
        .expect_err("refused");
    assert!(
        err.to_string().contains("errors.restart.max.attempts"),
        "{err}"
    );

    let mut props = ConfigMap::new();
    props.insert("key.converter".into(), "StringConverter".into());
    props.insert("value.converter".into(), "StringConverter".into());
    props.insert("offset.storage.file.filename".into(), "/tmp/x".into());
    props.insert("errors.restart.enabled".into(), "maybe".into());
    let err = WorkerConfig::standalone(props).expect_err("refused");
    assert!(err.to_string().contains("errors.restart.enabled"), "{err}");
}
