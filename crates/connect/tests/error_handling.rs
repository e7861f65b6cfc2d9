//! The `errors.retry.*` and `errors.log.*` connector keys as the REST API's herder sees them:
//! validate lists them with Kafka's defaults, and a bad value is an error naming the key, both
//! in validate and when a connector is created. No broker is needed: nothing is started.

use std::sync::Arc;

use strom_connect::herder::TargetState;
use strom_connect::*;

struct Nothing;

impl Connector for Nothing {
    fn version(&self) -> String {
        "1.0".into()
    }
    fn start(&mut self, _props: &ConfigMap) -> Result<()> {
        Ok(())
    }
    fn task_configs(&self, _max: usize) -> Result<Vec<ConfigMap>> {
        Ok(Vec::new())
    }
    fn stop(&mut self) -> Result<()> {
        Ok(())
    }
    fn config(&self) -> ConfigDef {
        ConfigDef::new()
    }
}

impl SinkConnector for Nothing {
    fn task_class(&self) -> &'static str {
        "test.NothingTask"
    }
    fn create_task(&self) -> Box<dyn SinkTask> {
        unreachable!("the connector has no tasks")
    }
}

use strom_connect::config_def::config_map as cfg;

fn herder(dir: &tempfile::TempDir) -> StandaloneHerder {
    let mut props = cfg(&[
        ("bootstrap.servers", "127.0.0.1:1"),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
    ]);
    props.insert(
        "offset.storage.file.filename".into(),
        dir.path().join("offsets").display().to_string(),
    );
    let worker =
        Worker::new(WorkerConfig::standalone(props).expect("worker config")).expect("worker");
    let mut plugins = Plugins::new();
    plugins.register(ConnectorPlugin {
        class_name: "test.NothingConnector",
        version: "1.0",
        factory: ConnectorFactory::Sink(|| Box::new(Nothing)),
    });
    StandaloneHerder::new(Arc::new(worker), plugins)
}

fn config(extra: &[(&str, &str)]) -> ConfigMap {
    let mut c = cfg(&[
        ("name", "errs"),
        ("connector.class", "test.NothingConnector"),
        ("topics", "orders"),
    ]);
    c.extend(cfg(extra));
    c
}

#[test]
fn validate_lists_the_keys_with_kafkas_defaults() {
    let dir = tempfile::tempdir().expect("tmp");
    let h = herder(&dir);
    let infos = h.validate(&config(&[])).expect("validate");
    assert_eq!(infos.error_count, 0, "{:?}", infos.error_messages());
    for (key, default) in [
        ("errors.retry.timeout", "0"),
        ("errors.retry.delay.max.ms", "60000"),
        ("errors.log.enable", "false"),
        ("errors.log.include.messages", "false"),
    ] {
        let c = infos
            .configs
            .iter()
            .find(|c| c.definition.name == key)
            .unwrap_or_else(|| panic!("{key} is listed"));
        assert_eq!(
            c.definition.default_value.as_deref(),
            Some(default),
            "{key}"
        );
        assert_eq!(
            c.definition.group.as_deref(),
            Some("Error Handling"),
            "{key}"
        );
    }
    let ok = h
        .validate(&config(&[
            ("errors.retry.timeout", "-1"),
            ("errors.retry.delay.max.ms", "500"),
            ("errors.log.enable", "true"),
            ("errors.log.include.messages", "TRUE"),
        ]))
        .expect("validate");
    assert_eq!(ok.error_count, 0, "{:?}", ok.error_messages());
}

#[test]
fn bad_values_are_errors_naming_the_key_in_validate_and_on_create() {
    let dir = tempfile::tempdir().expect("tmp");
    let h = herder(&dir);
    for (key, bad) in [
        ("errors.retry.timeout", "-2"),
        ("errors.retry.timeout", "ten"),
        ("errors.retry.delay.max.ms", "0"),
        ("errors.log.enable", "yes"),
        ("errors.log.include.messages", "1"),
    ] {
        let infos = h.validate(&config(&[(key, bad)])).expect("validate");
        assert_eq!(infos.error_count, 1, "{key}={bad}");
        let errors = &infos
            .configs
            .iter()
            .find(|c| c.definition.name == key)
            .expect("listed")
            .value
            .errors;
        assert!(
            errors.iter().any(|e| e.contains(key) && e.contains(bad)),
            "{key}={bad}: {errors:?}"
        );
        let err = h
            .put_connector_config("errs", config(&[(key, bad)]), false, TargetState::Started)
            .expect_err("refused");
        assert!(err.to_string().contains(key), "{err}");
    }
    h.shutdown();
}
