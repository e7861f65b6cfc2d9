//! A sink task's retriable `put` failures under `errors.retry.timeout`, against a real strom broker
//! started in this process: the worker's consumer, group membership and offset commits are real.
//! A sink that fails its first puts retriably gets the same batch again and ends up with every
//! record exactly once, in order, without a task restart, and the group's committed offset covers
//! them all. A sink that keeps failing past the timeout leaves the task FAILED with nothing
//! committed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use strom_connect::worker::{State, TaskHandle};
use strom_connect::worker_config::WorkerConfig;
use strom_connect::*;

/// One broker for the whole file, on an ephemeral port.
fn bootstrap() -> &'static str {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let dir = tempfile::tempdir().expect("tempdir").keep();
                // Clients reconnect to the advertised address, so it needs the real port.
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("free port")
                    .port();
                let config = strom_broker::BrokerConfig::load(
                    None,
                    &[
                        format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
                        format!("log.dirs={}", dir.display()),
                        "offsets.topic.num.partitions=1".to_string(),
                        "group.initial.rebalance.delay.ms=0".to_string(),
                    ],
                )
                .expect("config");
                let server = strom_broker::server::start(config).await.expect("start");
                tx.send(server.local_addrs[0].to_string()).expect("send");
                std::future::pending::<()>().await;
            });
        });
        rx.recv_timeout(Duration::from_secs(60)).expect("broker up")
    })
}

/// A 1-partition topic holding `n` records `v0`, `v1`, ...
fn topic_with_records(name: &str, n: usize) -> Vec<String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin");
    let t = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for r in rt
        .block_on(admin.create_topics([&t], &AdminOptions::new()))
        .expect("create")
    {
        r.expect("topic created");
    }
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("producer");
    let values: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    for v in &values {
        p.send(BaseRecord::<'_, str, str>::to(name).payload(v))
            .map_err(|(e, _)| e)
            .expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    values
}

/// What the sink saw, shared with the test.
#[derive(Default)]
struct Seen {
    /// Values of the puts that succeeded, in order.
    delivered: Mutex<Vec<String>>,
    /// Every put, failed or not.
    puts: AtomicUsize,
    /// Task instances the worker made (a restart would make another).
    instances: AtomicUsize,
}

/// Fails its first `fail` puts with a retriable error (a database that is still starting),
/// then takes every record.
struct FlakySink {
    fail: usize,
    seen: Arc<Seen>,
}

impl SinkTask for FlakySink {
    fn version(&self) -> String {
        "1.0".into()
    }
    fn start(&mut self, _props: &ConfigMap) -> Result<()> {
        Ok(())
    }
    fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        let n = self.seen.puts.fetch_add(1, Ordering::SeqCst);
        if n < self.fail {
            return Err(ConnectError::retriable("target not reachable yet"));
        }
        let mut d = self.seen.delivered.lock().expect("lock");
        d.extend(records.iter().map(|r| r.record.value.to_string()));
        Ok(())
    }
    fn stop(&mut self) {}
}

use strom_connect::config_def::config_map as cfg;

/// A sink task of connector `name` on topic `topic` through the worker, as the herder starts it.
fn start_sink(
    dir: &tempfile::TempDir,
    name: &str,
    topic: &str,
    fail: usize,
    retry_timeout_ms: &str,
) -> (TaskHandle, Arc<Seen>) {
    let props = cfg(&[
        ("bootstrap.servers", bootstrap()),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        (
            "offset.storage.file.filename",
            &dir.path().join("offsets").display().to_string(),
        ),
        ("offset.flush.interval.ms", "200"),
    ]);
    let worker = Arc::new(
        Worker::new(WorkerConfig::standalone(props).expect("worker config")).expect("worker"),
    );
    let cc = cfg(&[
        ("name", name),
        ("connector.class", "test.FlakySink"),
        ("topics", topic),
        ("errors.retry.timeout", retry_timeout_ms),
        ("errors.retry.delay.max.ms", "200"),
        // Redelivery must come from the put retry, not from a restart of the failed task.
        ("errors.restart.enabled", "false"),
    ]);
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let handle = worker.start_sink_task(
        name,
        0,
        Box::new(move || {
            s.instances.fetch_add(1, Ordering::SeqCst);
            Box::new(FlakySink {
                fail,
                seen: s.clone(),
            }) as Box<dyn SinkTask>
        }),
        cc.clone(),
        &cc,
        false,
    );
    (handle, seen)
}

/// The offset the connector's consumer group committed on partition 0 of `topic`.
fn committed(group: &str, topic: &str) -> Option<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    got.find_partition(topic, 0)
        .and_then(|p| p.offset().to_raw())
        .filter(|o| *o >= 0)
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn retriable_put_failures_are_redelivered_until_the_sink_takes_them() {
    let dir = tempfile::tempdir().expect("dir");
    let values = topic_with_records("put-retry-ok", 50);
    let (mut handle, seen) = start_sink(&dir, "retry-ok", "put-retry-ok", 3, "30000");

    let delivered = wait_for("all records delivered", Duration::from_secs(60), || {
        let d = seen.delivered.lock().expect("lock").clone();
        (d.len() >= values.len()).then_some(d)
    });
    // The offset commit follows the successful put; then nothing more may arrive.
    let offset = wait_for("the committed offset", Duration::from_secs(30), || {
        committed("connect-retry-ok", "put-retry-ok").filter(|o| *o == values.len() as i64)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(handle.control.status().state, State::Running);
    handle.stop(Duration::from_secs(10));

    assert_eq!(delivered, values, "every record once, in order");
    assert_eq!(
        *seen.delivered.lock().expect("lock"),
        values,
        "no duplicates later"
    );
    assert!(
        seen.puts.load(Ordering::SeqCst) >= 4,
        "3 failed puts, then at least one"
    );
    assert_eq!(seen.instances.load(Ordering::SeqCst), 1, "no task restart");
    assert_eq!(offset, 50);
}

#[test]
fn puts_failing_past_the_retry_timeout_fail_the_task_and_commit_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    topic_with_records("put-retry-timeout", 10);
    let started = Instant::now();
    let (mut handle, seen) = start_sink(
        &dir,
        "retry-timeout",
        "put-retry-timeout",
        usize::MAX,
        "1000",
    );

    let status = wait_for("the task to fail", Duration::from_secs(60), || {
        let s = handle.control.status();
        (s.state == State::Failed).then_some(s)
    });
    // It failed on the retry timeout, after more than one attempt, not on the first error.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(seen.puts.load(Ordering::SeqCst) >= 2);
    let trace = status.trace.unwrap_or_default();
    assert!(trace.contains("target not reachable yet"), "{trace}");
    handle.stop(Duration::from_secs(10));
    assert!(seen.delivered.lock().expect("lock").is_empty());
    assert_eq!(
        committed("connect-retry-timeout", "put-retry-timeout"),
        None
    );
    assert_eq!(seen.instances.load(Ordering::SeqCst), 1);
}
