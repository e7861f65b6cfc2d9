//! strom-streams against a real strom broker started in this process: end-to-end wordcount,
//! restore from the changelog after the state directory is deleted, start-up errors (missing source
//! topic, co-partitioning), two instances sharing the tasks, standby replicas and a takeover that
//! restores only the changelog tail, exactly-once with a SIGKILLed example.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use strom_streams::*;

/// One broker for the whole file, on an ephemeral port.
fn bootstrap() -> &'static str {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let dir = tempfile::tempdir().expect("tempdir").keep();
                // Clients reconnect to the advertised address, so it needs the real port: take a
                // free one from the OS first.
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("free port")
                    .port();
                let config = strom_broker::BrokerConfig::load(
                    None,
                    &[
                        format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
                        format!("log.dirs={}", dir.display()),
                        "offsets.topic.num.partitions=3".to_string(),
                        "transaction.state.log.num.partitions=3".to_string(),
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

fn create_topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin");
    let t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let r = futures_executor::block_on(admin.create_topics([&t], &AdminOptions::new()))
        .expect("create");
    for x in r {
        x.expect("topic created");
    }
}

fn produce(topic: &str, records: &[(Option<&str>, &str)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    for (k, v) in records {
        let mut r: BaseRecord<'_, str, str> = BaseRecord::to(topic).payload(*v);
        if let Some(k) = k {
            r = r.key(*k);
        }
        p.send(r).map_err(|(e, _)| e).expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// A consumed record: key and value bytes.
type Kv = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Reads `topic` (read_committed) until `done` says the records so far are enough, or 60 s pass.
fn consume_until(topic: &str, done: impl Fn(&[Kv]) -> bool) -> Vec<Kv> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.expect("message");
            out.push((m.key().map(|k| k.to_vec()), m.payload().map(|v| v.to_vec())));
        }
        if done(&out) {
            break;
        }
    }
    out
}

fn latest_counts(recs: &[Kv]) -> HashMap<String, i64> {
    let mut m = HashMap::new();
    for (k, v) in recs {
        let k = String::from_utf8(k.clone().unwrap()).unwrap();
        let v = i64::from_be_bytes(v.clone().unwrap().try_into().unwrap());
        m.insert(k, v);
    }
    m
}

fn config(app: &str, dir: &std::path::Path, extra: &[(&str, &str)]) -> StreamsConfig {
    let mut props = vec![
        ("application.id".to_string(), app.to_string()),
        ("bootstrap.servers".to_string(), bootstrap().to_string()),
        ("state.dir".to_string(), dir.display().to_string()),
        ("commit.interval.ms".to_string(), "100".to_string()),
        (
            "consumer.session.timeout.ms".to_string(),
            "6000".to_string(),
        ),
    ];
    props.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    StreamsConfig::from_props(props).expect("config")
}

fn wordcount(input: &str, output: &str) -> Topology {
    let b = StreamsBuilder::new();
    let s = Serdes::string;
    b.stream(input, Consumed::with(s(), s()))
        .flat_map_values(|l: &String| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .group_by(|_, w: &String| w.clone(), Grouped::with(s(), s()))
        .count(Materialized::as_("counts"))
        .to_stream()
        .to(output, Produced::with(s(), Serdes::i64()));
    b.build().expect("topology")
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn wordcount_end_to_end_then_restore_after_state_dir_deleted() {
    let (input, output) = ("wc-in", "wc-out");
    create_topic(input, 2);
    create_topic(output, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut app =
        KafkaStreams::new(wordcount(input, output), config("wc", dir.path(), &[])).unwrap();
    app.start().unwrap();
    produce(input, &[(None, "a b a"), (Some("x"), "b c"), (None, "a")]);
    let want: HashMap<String, i64> = [("a", 3), ("b", 2), ("c", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let got = consume_until(output, |r| latest_counts(r) == want);
    assert_eq!(latest_counts(&got), want);
    // Interactive query of the same store.
    wait_for("store to show a=3", || {
        app.store::<String, i64>("counts")
            .and_then(|s| s.get(&"a".to_string()))
            .ok()
            .flatten()
            == Some(3)
    });
    app.close();
    assert_eq!(app.state(), State::Created);
    // Internal topics exist with Kafka's names.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let md = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    let names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    assert!(names.contains(&"wc-counts-changelog"), "{names:?}");
    assert!(names.contains(&"wc-counts-repartition"), "{names:?}");

    // Delete the state: the counts must come back from the changelog.
    drop(dir);
    let dir2 = tempfile::tempdir().unwrap();
    let mut app =
        KafkaStreams::new(wordcount(input, output), config("wc", dir2.path(), &[])).unwrap();
    app.start().unwrap();
    produce(input, &[(None, "a c")]);
    let got = consume_until(output, |r| {
        let m = latest_counts(r);
        m.get("a") == Some(&4) && m.get("c") == Some(&2)
    });
    let m = latest_counts(&got);
    assert_eq!(
        (m.get("a"), m.get("b"), m.get("c")),
        (Some(&4), Some(&2), Some(&2))
    );
    app.close();
}

#[test]
fn missing_source_topic_fails_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = KafkaStreams::new(
        wordcount("no-such-input", "whatever"),
        config("missing", dir.path(), &[]),
    )
    .unwrap();
    let e = app.start().unwrap_err().to_string();
    assert!(e.contains("no-such-input"), "{e}");
}

#[test]
fn join_over_different_partition_counts_is_a_topology_error() {
    create_topic("cp-left", 2);
    create_topic("cp-right", 3);
    let b = StreamsBuilder::new();
    let s = Serdes::string;
    let t = b.table(
        "cp-right",
        Consumed::with(s(), s()),
        Materialized::as_("cp-t"),
    );
    b.stream("cp-left", Consumed::with(s(), s()))
        .join_table(&t, |a: &String, b: &String| format!("{a}{b}"))
        .to("cp-out", Produced::with(s(), s()));
    let dir = tempfile::tempdir().unwrap();
    let mut app = KafkaStreams::new(b.build().unwrap(), config("cp", dir.path(), &[])).unwrap();
    let e = app.start().unwrap_err().to_string();
    assert!(e.starts_with("Invalid topology"), "{e}");
    assert!(e.contains("cp-left") && e.contains("cp-right"), "{e}");
}

#[test]
fn stream_table_join_against_broker() {
    create_topic("ej-orders", 2);
    create_topic("ej-customers", 2);
    create_topic("ej-out", 1);
    create_topic("ej-regions", 3);
    produce("ej-customers", &[(Some("c1"), "Ann"), (Some("c2"), "Bob")]);
    produce(
        "ej-regions",
        &[(Some("o1"), "north"), (Some("o3"), "south")],
    );
    let b = StreamsBuilder::new();
    let s = Serdes::string;
    let t = b.table(
        "ej-customers",
        Consumed::with(s(), s()),
        Materialized::as_("customers"),
    );
    // A GlobalKTable on a topic with another partition count: no co-partitioning needed.
    let g = b.global_table(
        "ej-regions",
        Consumed::with(s(), s()),
        Materialized::as_("regions"),
    );
    b.stream("ej-orders", Consumed::with(s(), s()))
        .left_join_table(&t, |o: &String, n: Option<&String>| {
            format!("{o}|{}", n.map_or("unknown", |n| n.as_str()))
        })
        .left_join_global(
            &g,
            |_, v: &String| v.split('|').next().unwrap_or("").to_string(),
            |v: &String, r: Option<&String>| format!("{v}|{}", r.map_or("-", |r| r.as_str())),
        )
        .to("ej-out", Produced::with(s(), s()));
    let dir = tempfile::tempdir().unwrap();
    let mut app = KafkaStreams::new(b.build().unwrap(), config("ej", dir.path(), &[])).unwrap();
    app.start().unwrap();
    wait_for("customers table loaded", || {
        app.store::<String, String>("customers")
            .and_then(|s| s.all())
            .map(|a| a.len() == 2)
            .unwrap_or(false)
    });
    produce(
        "ej-orders",
        &[(Some("c1"), "o1"), (Some("c3"), "o2"), (Some("c2"), "o3")],
    );
    let got = consume_until("ej-out", |r| r.len() >= 3);
    let mut vals: Vec<String> = got
        .iter()
        .map(|(_, v)| String::from_utf8(v.clone().unwrap()).unwrap())
        .collect();
    vals.sort();
    assert_eq!(vals, vec!["o1|Ann|north", "o2|unknown|-", "o3|Bob|south"]);
    assert_eq!(
        app.store::<String, String>("regions")
            .unwrap()
            .get(&"o3".to_string())
            .unwrap(),
        Some("south".to_string())
    );
    app.close();
}

#[test]
fn two_instances_share_tasks_and_one_takes_over() {
    let (input, output) = ("share-in", "share-out");
    create_topic(input, 4);
    create_topic(output, 1);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = KafkaStreams::new(
        wordcount(input, output),
        config("share", d1.path(), &[("num.stream.threads", "2")]),
    )
    .unwrap();
    let mut b =
        KafkaStreams::new(wordcount(input, output), config("share", d2.path(), &[])).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    // 4 input partitions x 2 sub-topologies = 8 tasks, split between the two instances (three
    // stream threads in all: `a` runs two).
    wait_for("both instances to own tasks", || {
        let (ta, tb) = (a.local_tasks(), b.local_tasks());
        !ta.is_empty() && !tb.is_empty() && ta.len() + tb.len() == 8 && ta.is_disjoint(&tb)
    });
    let words: Vec<String> = (0..40).map(|i| format!("w{}", i % 8)).collect();
    let lines: Vec<(Option<&str>, &str)> = words.iter().map(|w| (None, w.as_str())).collect();
    produce(input, &lines);
    let got = consume_until(output, |r| {
        let m = latest_counts(r);
        m.len() == 8 && m.values().all(|&c| c == 5)
    });
    assert!(
        latest_counts(&got).values().all(|&c| c == 5),
        "{:?}",
        latest_counts(&got)
    );
    b.close();
    wait_for("instance a to own all 8 tasks", || {
        a.local_tasks().len() == 8
    });
    produce(input, &lines);
    let got = consume_until(output, |r| {
        let m = latest_counts(r);
        m.len() == 8 && m.values().all(|&c| c == 10)
    });
    assert!(
        latest_counts(&got).values().all(|&c| c == 10),
        "{:?}",
        latest_counts(&got)
    );
    a.close();
}

/// The example program built next to this test (`cargo test -p strom-streams` builds examples).
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build -p strom-streams --examples` (or run the whole \
         `cargo test -p strom-streams`, which builds examples)",
        p.display()
    );
    p
}

fn spawn_wordcount(dir: &std::path::Path, guarantee: &str) -> std::process::Child {
    std::process::Command::new(example("wordcount"))
        .args([
            "--bootstrap-servers",
            bootstrap(),
            "--input",
            "eos-in",
            "--output",
            "eos-out",
            "--application-id",
            "eos-wc",
            "--state-dir",
            &dir.display().to_string(),
            "--processing-guarantee",
            guarantee,
            "--commit-interval-ms",
            "50",
            "--config",
            "consumer.session.timeout.ms=6000",
        ])
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("spawn wordcount")
}

/// exactly_once_v2: the wordcount example is SIGKILLed while it works and restarted on the same
/// state directory; the committed output must hold each word's exact count, and every word's
/// committed counts must strictly increase (a re-emitted count would mean duplicate processing).
#[test]
fn wordcount_example_exactly_once_survives_sigkill() {
    create_topic("eos-in", 2);
    create_topic("eos-out", 2);
    let words = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let mut expected: HashMap<String, i64> = HashMap::new();
    let mut batch = |n: usize, offset: usize| -> Vec<String> {
        (0..n)
            .map(|i| {
                let line: Vec<&str> = (0..3)
                    .map(|j| words[(i * 7 + j * 3 + offset) % 5])
                    .collect();
                for w in &line {
                    *expected.entry(w.to_string()).or_default() += 1;
                }
                line.join(" ")
            })
            .collect()
    };
    let first = batch(300, 0);
    let second = batch(300, 1);
    let third = batch(100, 2);
    let send = |lines: &[String]| {
        let recs: Vec<(Option<&str>, &str)> = lines.iter().map(|l| (None, l.as_str())).collect();
        produce("eos-in", &recs);
    };
    let dir = tempfile::tempdir().unwrap();
    send(&first);
    let mut child = spawn_wordcount(dir.path(), "exactly_once_v2");
    // Kill once some results are committed, while the second batch is still arriving.
    consume_until("eos-out", |r| !r.is_empty());
    send(&second);
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let mut child = spawn_wordcount(dir.path(), "exactly_once_v2");
    send(&third);
    let got = consume_until("eos-out", |r| latest_counts(r) == expected);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(latest_counts(&got), expected);
    let mut last: HashMap<String, i64> = HashMap::new();
    for (k, v) in &got {
        let k = String::from_utf8(k.clone().unwrap()).unwrap();
        let v = i64::from_be_bytes(v.clone().unwrap().try_into().unwrap());
        let prev = last.insert(k.clone(), v).unwrap_or(0);
        assert!(
            v > prev,
            "count of {k} went from {prev} to {v}: duplicate processing"
        );
    }
    assert!(
        status.success(),
        "wordcount exited with {status} on SIGTERM"
    );
}

fn produce_at(topic: &str, records: &[(&str, &str, i64)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    for (k, v, ts) in records {
        p.send(BaseRecord::to(topic).key(*k).payload(*v).timestamp(*ts))
            .map_err(|(e, _)| e)
            .expect("send");
        // One at a time, so the records keep this order within their partition.
        p.flush(Duration::from_secs(30)).expect("flush");
    }
}

fn windowed(input: &str, output: &str) -> Topology {
    let b = StreamsBuilder::new();
    let s = Serdes::string;
    b.stream(input, Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()))
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_millis(1000),
            Duration::from_millis(500),
        ))
        .count(Materialized::as_("win"))
        .to_stream()
        .to(
            output,
            Produced::with(Serdes::time_windowed(s(), 1000), Serdes::i64()),
        );
    b.build().expect("topology")
}

/// Tumbling windows against the broker: window edges, a late record dropped after grace, and the
/// window store restored from its changelog after the state directory is deleted.
#[test]
fn tumbling_windows_with_late_data_and_window_store_restore() {
    let (input, output) = ("win-in", "win-out");
    create_topic(input, 1);
    create_topic(output, 1);
    let base = 1_700_000_000_000i64;
    let dir = tempfile::tempdir().unwrap();
    let mut app =
        KafkaStreams::new(windowed(input, output), config("win", dir.path(), &[])).unwrap();
    app.start().unwrap();
    produce_at(
        input,
        &[
            ("k", "a", base),         // [base, base+1000)
            ("k", "b", base + 999),   // same window, last ms
            ("k", "c", base + 1000),  // next window
            ("k", "d", base + 1600),  // stream time base+1600: the first window closes at base+1500
            ("k", "late", base + 10), // late for the first window: dropped
            ("k", "e", base + 1700),
        ],
    );
    let decode = |r: &[Kv]| -> Vec<(i64, i64)> {
        r.iter()
            .map(|(k, v)| {
                let k = k.clone().unwrap();
                let start = i64::from_be_bytes(k[k.len() - 8..].try_into().unwrap());
                let v = i64::from_be_bytes(v.clone().unwrap().try_into().unwrap());
                (start - base, v)
            })
            .collect()
    };
    let got = consume_until(output, |r| decode(r).contains(&(1000, 3)));
    assert_eq!(
        decode(&got),
        vec![(0, 1), (0, 2), (1000, 1), (1000, 2), (1000, 3)]
    );
    let w = app.window_store::<String, i64>("win").unwrap();
    // Retention is size + grace (1500 ms): the first window has left the store by stream time
    // base + 1700, as in Kafka.
    assert_eq!(
        w.fetch(&"k".into(), base, base + 5000).unwrap(),
        vec![(base + 1000, 3)]
    );
    app.close();
    drop(dir);
    let dir2 = tempfile::tempdir().unwrap();
    let mut app =
        KafkaStreams::new(windowed(input, output), config("win", dir2.path(), &[])).unwrap();
    app.start().unwrap();
    produce_at(input, &[("k", "f", base + 1800)]);
    let got = consume_until(output, |r| decode(r).contains(&(1000, 4)));
    assert_eq!(
        decode(&got).last(),
        Some(&(1000, 4)),
        "window count restored from the changelog"
    );
    app.close();
}

/// A windowed stream-stream join against the broker (both inputs with 2 partitions, so records of
/// one key meet in one task).
#[test]
fn stream_stream_join_against_broker() {
    create_topic("ssj-left", 2);
    create_topic("ssj-right", 2);
    create_topic("ssj-out", 1);
    let b = StreamsBuilder::new();
    let s = Serdes::string;
    let l = b.stream("ssj-left", Consumed::with(s(), s()));
    let r = b.stream("ssj-right", Consumed::with(s(), s()));
    l.join(
        &r,
        |a: &String, b: &String| format!("{a}+{b}"),
        // The grace makes the result independent of the order in which the task reads its two
        // input partitions (records produced while the app runs may arrive in separate fetches,
        // and a task whose other partition is caught up does not wait for records produced later).
        JoinWindows::of_time_difference_and_grace(
            Duration::from_millis(1000),
            Duration::from_secs(60),
        ),
    )
    .to("ssj-out", Produced::with(s(), s()));
    let dir = tempfile::tempdir().unwrap();
    let mut app = KafkaStreams::new(b.build().unwrap(), config("ssj", dir.path(), &[])).unwrap();
    app.start().unwrap();
    let base = 1_700_000_000_000i64;
    produce_at("ssj-left", &[("a", "L1", base), ("b", "L2", base)]);
    produce_at(
        "ssj-right",
        &[("a", "R1", base + 1000), ("b", "R2", base + 1001)],
    );
    // A later pair of key b that does join: once its result is out, b's earlier records (same
    // partitions, processed before) have been joined or not.
    produce_at("ssj-left", &[("b", "L3", base + 3000)]);
    produce_at("ssj-right", &[("b", "R3", base + 3000)]);
    let as_strings = |r: &[Kv]| -> Vec<String> {
        r.iter()
            .map(|(_, v)| String::from_utf8(v.clone().unwrap()).unwrap())
            .collect()
    };
    let got = consume_until("ssj-out", |r| {
        let v = as_strings(r);
        v.contains(&"L1+R1".to_string()) && v.contains(&"L3+R3".to_string())
    });
    let mut vals = as_strings(&got);
    vals.sort();
    // L2 and R2 are 1001 ms apart: outside the 1000 ms window, no result.
    assert_eq!(vals, vec!["L1+R1", "L3+R3"]);
    app.close();
}

#[test]
fn foreign_key_join_against_broker() {
    // Different partition counts: a foreign-key join needs no co-partitioning.
    create_topic("fk-orders", 2);
    create_topic("fk-customers", 3);
    create_topic("fk-out", 1);
    let b = StreamsBuilder::new();
    let s = Serdes::string;
    let orders = b.table(
        "fk-orders",
        Consumed::with(s(), s()),
        Materialized::as_("orders"),
    );
    let customers = b.table(
        "fk-customers",
        Consumed::with(s(), s()),
        Materialized::as_("customers"),
    );
    orders
        .join_foreign_key(
            &customers,
            |o: &String| o.split(':').next().map(str::to_string),
            |o: &String, c: &String| format!("{o}/{c}"),
        )
        .to_stream()
        .to("fk-out", Produced::with(s(), s()));
    let dir = tempfile::tempdir().unwrap();
    let mut app = KafkaStreams::new(b.build().unwrap(), config("fk", dir.path(), &[])).unwrap();
    app.start().unwrap();
    produce("fk-customers", &[(Some("c1"), "Ann"), (Some("c2"), "Bob")]);
    produce(
        "fk-orders",
        &[
            (Some("o1"), "c1:book"),
            (Some("o2"), "c2:pen"),
            (Some("o3"), "c9:cup"),
        ],
    );
    let latest = |recs: &[Kv]| {
        let mut m = HashMap::new();
        for (k, v) in recs {
            let k = String::from_utf8(k.clone().unwrap()).unwrap();
            m.insert(k, v.clone().map(|v| String::from_utf8(v).unwrap()));
        }
        m
    };
    let want1: HashMap<String, Option<String>> = [
        ("o1".to_string(), Some("c1:book/Ann".to_string())),
        ("o2".to_string(), Some("c2:pen/Bob".to_string())),
    ]
    .into_iter()
    .collect();
    let got = consume_until("fk-out", |r| latest(r) == want1);
    assert_eq!(latest(&got), want1);
    // A customer update reaches its orders; an order moving to another customer follows it.
    produce("fk-customers", &[(Some("c1"), "Anna")]);
    produce("fk-orders", &[(Some("o2"), "c1:pen")]);
    let want2: HashMap<String, Option<String>> = [
        ("o1".to_string(), Some("c1:book/Anna".to_string())),
        ("o2".to_string(), Some("c1:pen/Anna".to_string())),
    ]
    .into_iter()
    .collect();
    let got = consume_until("fk-out", |r| latest(r) == want2);
    assert_eq!(latest(&got), want2);
    app.close();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[test]
fn interactive_query_metadata_across_two_instances() {
    let (input, output) = ("iq-in", "iq-out");
    create_topic(input, 4);
    create_topic(output, 1);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ha, hb) = (
        HostInfo::new("127.0.0.1", free_port()),
        HostInfo::new("127.0.0.1", free_port()),
    );
    let (sa, sb) = (ha.to_string(), hb.to_string());
    let mut a = KafkaStreams::new(
        wordcount(input, output),
        config("iq", d1.path(), &[("application.server", &sa)]),
    )
    .unwrap();
    let mut b = KafkaStreams::new(
        wordcount(input, output),
        config("iq", d2.path(), &[("application.server", &sb)]),
    )
    .unwrap();
    a.start().unwrap();
    b.start().unwrap();
    wait_for("both instances to own tasks", || {
        let (ta, tb) = (a.local_tasks(), b.local_tasks());
        !ta.is_empty() && !tb.is_empty() && ta.len() + tb.len() == 8
    });
    let words: Vec<String> = (0..24).map(|i| format!("word{}", i % 8)).collect();
    let lines: Vec<(Option<&str>, &str)> = words.iter().map(|w| (None, w.as_str())).collect();
    produce(input, &lines);
    let got = consume_until(output, |r| {
        let m = latest_counts(r);
        m.len() == 8 && m.values().all(|&c| c == 3)
    });
    assert_eq!(latest_counts(&got).len(), 8, "{:?}", latest_counts(&got));

    // Both instances learn the same full picture from the group: two hosts whose tasks are
    // exactly what each runs.
    wait_for("both instances to report both hosts", || {
        let (ma, mb) = (
            a.metadata_for_all_clients().unwrap(),
            b.metadata_for_all_clients().unwrap(),
        );
        ma == mb
            && ma.len() == 2
            && ma.iter().all(|m| {
                let local = if m.host_info == ha {
                    a.local_tasks()
                } else {
                    b.local_tasks()
                };
                m.tasks == local
            })
    });
    let all = a.metadata_for_all_clients().unwrap();
    let hosts: Vec<&HostInfo> = all.iter().map(|m| &m.host_info).collect();
    assert!(hosts.contains(&&ha) && hosts.contains(&&hb), "{hosts:?}");
    for m in &all {
        assert!(m.state_store_names.contains("counts"), "{m:?}");
        assert_eq!(m.topic_partitions.len(), 4, "{m:?}");
    }
    assert_eq!(b.streams_metadata_for_store("counts").unwrap().len(), 2);
    assert!(a.streams_metadata_for_store("nope").unwrap().is_empty());

    // Each key's metadata names the instance whose store holds it, and the key's partition is the
    // one of a task that instance runs (the count store lives in sub-topology 1).
    let mut owners = std::collections::BTreeSet::new();
    for i in 0..8 {
        let w = format!("word{i}");
        let md = a
            .query_metadata_for_key("counts", &w, &serde::StringSerde)
            .unwrap();
        assert_eq!(
            md,
            b.query_metadata_for_key("counts", &w, &serde::StringSerde)
                .unwrap()
        );
        assert!(md.standby_hosts.is_empty());
        let (owner, other) = if md.active_host == ha {
            (&a, &b)
        } else {
            assert_eq!(md.active_host, hb, "{w}");
            (&b, &a)
        };
        owners.insert(md.active_host.clone());
        assert!(
            owner.local_tasks().contains(&task::TaskId {
                subtopology: 1,
                partition: md.partition
            }),
            "{w}: {md:?}"
        );
        wait_for("the owner's store to hold the count", || {
            owner
                .store::<String, i64>("counts")
                .unwrap()
                .get(&w)
                .unwrap()
                == Some(3)
        });
        assert_eq!(
            other
                .store::<String, i64>("counts")
                .unwrap()
                .get(&w)
                .unwrap(),
            None,
            "{w}"
        );
    }
    assert_eq!(
        owners.len(),
        2,
        "the test words should live on both instances"
    );
    a.close();
    b.close();
}

/// An HTTP answer: status, `Location` header (if any) and the JSON body.
struct HttpAnswer {
    status: u16,
    location: Option<String>,
    body: serde_json::Value,
}

/// One HTTP/1.1 request over a plain socket (no client crate needed for a handful of GETs).
fn http(method: &str, host: &HostInfo, path: &str) -> HttpAnswer {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host.to_string()).expect("connect to the endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let location = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("location"))
        .map(|(_, v)| v.trim().to_string());
    let body = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {body:?}"));
    HttpAnswer {
        status,
        location,
        body,
    }
}

fn get(host: &HostInfo, path: &str) -> HttpAnswer {
    http("GET", host, path)
}

/// Word counts and 1 s tumbling-window word counts, both queryable.
fn counts_and_windows(input: &str, output: &str, win_output: &str) -> Topology {
    let b = StreamsBuilder::new();
    let s = Serdes::string;
    let grouped = b
        .stream(input, Consumed::with(s(), s()))
        .flat_map_values(|l: &String| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .group_by(|_, w: &String| w.clone(), Grouped::with(s(), s()));
    grouped
        .count(Materialized::as_("counts"))
        .to_stream()
        .to(output, Produced::with(s(), Serdes::i64()));
    grouped
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_millis(1000),
            Duration::from_secs(3600),
        ))
        .count(Materialized::as_("win-counts"))
        .to_stream()
        .to(
            win_output,
            Produced::with(Serdes::time_windowed(s(), 1000), Serdes::i64()),
        );
    b.build().expect("topology")
}

/// The HTTP query endpoint on two instances: key, range, all and window reads, which instance holds
/// a key, redirects to the owner, and 4xx answers for unknown stores and bad parameters.
#[test]
fn interactive_queries_over_http_across_two_instances() {
    let (input, output, win_output) = ("iqh-in", "iqh-out", "iqh-win-out");
    create_topic(input, 4);
    create_topic(output, 1);
    create_topic(win_output, 1);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ha, hb) = (
        HostInfo::new("127.0.0.1", free_port()),
        HostInfo::new("127.0.0.1", free_port()),
    );
    let (sa, sb) = (ha.to_string(), hb.to_string());
    let http_on = ("strom.query.http.enabled", "true");
    let topology = || counts_and_windows(input, output, win_output);
    // Four input partitions per sub-topology (each aggregation has its own repartition topic).
    let tasks = topology().subtopologies().len() * 4;
    let mut a = KafkaStreams::new(
        topology(),
        config("iqh", d1.path(), &[("application.server", &sa), http_on]),
    )
    .unwrap();
    let mut b = KafkaStreams::new(
        topology(),
        config("iqh", d2.path(), &[("application.server", &sb), http_on]),
    )
    .unwrap();
    a.start().unwrap();
    b.start().unwrap();

    // A third instance on a's port cannot serve queries: start() says so instead of running
    // without its endpoint.
    let d3 = tempfile::tempdir().unwrap();
    let mut c = KafkaStreams::new(
        topology(),
        config("iqh", d3.path(), &[("application.server", &sa), http_on]),
    )
    .unwrap();
    let err = c.start().expect_err("port taken").to_string();
    assert!(err.contains("cannot bind") && err.contains(&sa), "{err}");

    wait_for("both instances to own tasks", || {
        let (ta, tb) = (a.local_tasks(), b.local_tasks());
        !ta.is_empty() && !tb.is_empty() && ta.len() + tb.len() == tasks
    });
    // Windows of this test start at `base` and `base + 1000`.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let base = now / 10_000 * 10_000;
    let words: Vec<String> = (0..8).map(|i| format!("word{i}")).collect();
    let mut recs = Vec::new();
    for w in &words {
        recs.push(("k", w.as_str(), base + 100));
        recs.push(("k", w.as_str(), base + 200));
        recs.push(("k", w.as_str(), base + 1500));
    }
    produce_at(input, &recs);
    let got = consume_until(output, |r| {
        let m = latest_counts(r);
        m.len() == 8 && m.values().all(|&c| c == 3)
    });
    assert_eq!(latest_counts(&got).len(), 8, "{:?}", latest_counts(&got));
    wait_for("both endpoints to list both hosts", || {
        [&ha, &hb].iter().all(|h| {
            let m = get(h, "/metadata");
            m.status == 200 && m.body.as_array().is_some_and(|a| a.len() == 2)
        })
    });
    let stores = get(&ha, "/metadata/stores/counts");
    assert_eq!(stores.status, 200);
    let mut listed: Vec<String> = stores
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["host"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut want_hosts = vec![sa.clone(), sb.clone()];
    want_hosts.sort();
    assert_eq!(listed, want_hosts);

    let mut owners = std::collections::BTreeSet::new();
    for w in &words {
        // Which instance holds the key: the same answer from both endpoints and from the API.
        let md = a
            .query_metadata_for_key("counts", w, &serde::StringSerde)
            .unwrap();
        for h in [&ha, &hb] {
            let m = get(h, &format!("/metadata/keys/counts/{w}"));
            assert_eq!(m.status, 200, "{}", m.body);
            assert_eq!(m.body["activeHost"], md.active_host.to_string(), "{w}");
            assert_eq!(m.body["partition"], md.partition, "{w}");
        }
        let (owner, other) = if md.active_host == ha {
            (&ha, &hb)
        } else {
            (&hb, &ha)
        };
        owners.insert(owner.clone());
        let key_path = format!("/stores/counts/keys/{w}");
        wait_for("the owner to serve the count", || {
            let r = get(owner, &key_path);
            r.status == 200 && r.body["value"] == 3
        });
        let r = get(owner, &key_path);
        assert_eq!(r.body["key"], w.as_str());
        assert_eq!(r.body["host"], owner.to_string());
        // The other instance sends the client to the owner, and the owner answers there.
        let r = get(other, &key_path);
        assert_eq!(r.status, 307, "{w}: {}", r.body);
        let loc = r.location.expect("Location");
        assert_eq!(loc, format!("http://{owner}{key_path}"));
        assert_eq!(r.body["host"], owner.to_string());
        let target = loc.strip_prefix(&format!("http://{owner}")).unwrap();
        assert_eq!(get(owner, target).body["value"], 3);

        // The key's windows: two in [base, base + 1000], one from base + 1000 on.
        let win_path = format!("/stores/win-counts/windows/{w}");
        wait_for("the owner to serve the windows", || {
            let r = get(owner, &win_path);
            r.status == 200 && r.body["windows"].as_array().is_some_and(|a| a.len() == 2)
        });
        let r = get(owner, &win_path);
        assert_eq!(
            r.body["windows"],
            serde_json::json!([
                { "start": base, "value": 2 },
                { "start": base + 1000, "value": 1 },
            ]),
            "{w}"
        );
        let r = get(owner, &format!("{win_path}?from={}", base + 1000));
        assert_eq!(
            r.body["windows"],
            serde_json::json!([{ "start": base + 1000, "value": 1 }])
        );
        let r = get(owner, &format!("{win_path}?from={base}&to={}", base + 999));
        assert_eq!(
            r.body["windows"],
            serde_json::json!([{ "start": base, "value": 2 }])
        );
        assert_eq!(get(other, &win_path).status, 307);
    }
    assert_eq!(owners.len(), 2, "the test words should live on both hosts");

    // Range reads answer for the instance asked; together the hosts hold every key once.
    let entries = |h: &HostInfo, path: &str| -> Vec<(String, serde_json::Value)> {
        let r = get(h, path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.body["host"], h.to_string());
        r.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["key"].as_str().unwrap().to_string(), e["value"].clone()))
            .collect()
    };
    let (ea, eb) = (
        entries(&ha, "/stores/counts/all"),
        entries(&hb, "/stores/counts/all"),
    );
    assert!(!ea.is_empty() && !eb.is_empty());
    let mut union: Vec<_> = ea.into_iter().chain(eb).collect();
    union.sort_by(|x, y| x.0.cmp(&y.0));
    let want: Vec<_> = words
        .iter()
        .map(|w| (w.clone(), serde_json::json!(3)))
        .collect();
    assert_eq!(union, want);
    let mut ranged: Vec<String> = [&ha, &hb]
        .iter()
        .flat_map(|h| entries(h, "/stores/counts/range?from=word2&to=word4"))
        .map(|(k, _)| k)
        .collect();
    ranged.sort();
    assert_eq!(ranged, ["word2", "word3", "word4"]);
    let all_windows: usize = [&ha, &hb]
        .iter()
        .map(|h| {
            let r = get(
                h,
                &format!("/stores/win-counts/windows?from={}", base + 1000),
            );
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["windows"].as_array().unwrap().len()
        })
        .sum();
    assert_eq!(all_windows, 8, "one window per word from base + 1000 on");

    // Errors: status and a message naming what is wrong.
    let err = |path: &str, status: u16, needle: &str| {
        let r = get(&ha, path);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let msg = r.body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{path}: {msg}");
    };
    err("/stores/nope/keys/x", 404, "nope");
    err("/stores/nope/all", 404, "nope");
    err("/metadata/keys/nope/x", 404, "nope");
    err("/metadata/stores/nope", 404, "nope");
    // An absent key is a 404 from its owner (any other instance redirects there).
    let absent_owner = a
        .query_metadata_for_key("counts", &"absent-word".to_string(), &serde::StringSerde)
        .unwrap()
        .active_host;
    let r = get(&absent_owner, "/stores/counts/keys/absent-word");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body["error"].as_str().unwrap().contains("absent-word"));
    err("/stores/counts/windows/word1", 400, "key-value store");
    err("/stores/win-counts/keys/word1", 400, "window store");
    err("/stores/win-counts/all", 400, "window store");
    err("/stores/win-counts/windows/word1?from=abc", 400, "from=abc");
    err("/stores/win-counts/windows/word1?from=5&to=1", 400, "after");
    err("/stores/counts/range?form=word1", 400, "form");
    err("/stores/counts/range?from=word5&to=word1", 400, "after");
    err("/stores/counts/keys/word1?x=1", 400, "'x'");
    err("/no/such/path", 404, "/no/such/path");
    let r = http("POST", &ha, "/stores/counts/keys/word1");
    assert_eq!(r.status, 405, "{}", r.body);

    a.close();
    b.close();
    // The endpoint stops with the instance.
    assert!(std::net::TcpStream::connect(sa.as_str()).is_err());
}

/// Session-store reads over the HTTP query endpoint (Kafka's ReadOnlySessionStore): a key's
/// sessions, narrowed by session end and start, a key range, and 4xx answers naming the mistake.
#[test]
fn session_store_reads_over_http() {
    let (input, output) = ("sqh-in", "sqh-out");
    create_topic(input, 2);
    create_topic(output, 1);
    let b = StreamsBuilder::new();
    let s = Serdes::string;
    b.stream(input, Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()))
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_millis(1000),
            Duration::from_secs(3600),
        ))
        .count(Materialized::as_("sessions"))
        .to_stream()
        .to(
            output,
            Produced::with(Serdes::session_windowed(s()), Serdes::i64()),
        );
    let dir = tempfile::tempdir().unwrap();
    let host = HostInfo::new("127.0.0.1", free_port());
    let server = host.to_string();
    let mut app = KafkaStreams::new(
        b.build().unwrap(),
        config(
            "sqh",
            dir.path(),
            &[
                ("application.server", &server),
                ("strom.query.http.enabled", "true"),
            ],
        ),
    )
    .unwrap();
    app.start().unwrap();
    let base = 1_700_000_000_000i64;
    // alice: one session of two records [base, base + 500] and a later one at base + 5000; bob
    // and carol one record each.
    produce_at(
        input,
        &[
            ("alice", "x", base),
            ("bob", "x", base + 100),
            ("carol", "x", base + 200),
            ("alice", "x", base + 500),
            ("alice", "x", base + 5000),
        ],
    );
    let sessions = |path: &str| -> Vec<(String, i64, i64, i64)> {
        let r = get(&host, path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.body["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["key"].as_str().unwrap_or_default().to_string(),
                    x["start"].as_i64().unwrap(),
                    x["end"].as_i64().unwrap(),
                    x["value"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    // The counts reach the store at the next commit.
    wait_for("alice's two sessions to be served", || {
        let r = get(&host, "/stores/sessions/sessions/alice");
        r.status == 200
            && r.body["sessions"].as_array().is_some_and(|a| a.len() == 2)
            && sessions("/stores/sessions/sessions?from=carol&to=carol").len() == 1
    });
    let r = get(&host, "/stores/sessions/sessions/alice");
    assert_eq!(r.body["key"], "alice");
    assert_eq!(r.body["host"], server);
    let alice = |s: i64, e: i64, n: i64| (String::new(), base + s, base + e, n);
    assert_eq!(
        sessions("/stores/sessions/sessions/alice"),
        vec![alice(0, 500, 2), alice(5000, 5000, 1)],
        "merged session then the later one, by end time"
    );
    // findSessions: ending at or after / starting at or before.
    assert_eq!(
        sessions(&format!(
            "/stores/sessions/sessions/alice?earliestEnd={}",
            base + 1000
        )),
        vec![alice(5000, 5000, 1)]
    );
    assert_eq!(
        sessions(&format!(
            "/stores/sessions/sessions/alice?latestStart={}",
            base + 1000
        )),
        vec![alice(0, 500, 2)]
    );
    assert_eq!(
        sessions(&format!(
            "/stores/sessions/sessions/alice?earliestEnd={}&latestStart={}",
            base + 600,
            base + 4000
        )),
        vec![]
    );
    assert!(sessions("/stores/sessions/sessions/nobody").is_empty());
    // A key range over this instance's partitions, in key order.
    let k = |key: &str, s: i64, e: i64, n: i64| (key.to_string(), base + s, base + e, n);
    assert_eq!(
        sessions("/stores/sessions/sessions?from=alice&to=bob"),
        vec![
            k("alice", 0, 500, 2),
            k("alice", 5000, 5000, 1),
            k("bob", 100, 100, 1)
        ]
    );
    assert_eq!(
        sessions("/stores/sessions/sessions"),
        vec![
            k("alice", 0, 500, 2),
            k("alice", 5000, 5000, 1),
            k("bob", 100, 100, 1),
            k("carol", 200, 200, 1)
        ]
    );
    assert_eq!(
        sessions(&format!(
            "/stores/sessions/sessions?from=b&earliestEnd={}",
            base + 150
        )),
        vec![k("carol", 200, 200, 1)]
    );

    let err = |path: &str, status: u16, needle: &str| {
        let r = get(&host, path);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let msg = r.body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{path}: {msg}");
    };
    err("/stores/sessions/keys/alice", 400, "session store");
    err("/stores/sessions/windows/alice", 400, "/sessions");
    err("/stores/nope/sessions/alice", 404, "nope");
    err("/stores/sessions/sessions/alice?from=1", 400, "'from'");
    err(
        "/stores/sessions/sessions/alice?earliestEnd=soon",
        400,
        "earliestEnd=soon",
    );
    err(
        "/stores/sessions/sessions?from=carol&to=alice",
        400,
        "after",
    );
    // The Rust API reads the same sessions.
    let st = app.session_store::<String, i64>("sessions").unwrap();
    let got: Vec<(i64, i64, i64)> = st
        .fetch(&"alice".to_string())
        .unwrap()
        .into_iter()
        .map(|(w, n)| (w.window.start - base, w.window.end - base, n))
        .collect();
    assert_eq!(got, vec![(0, 500, 2), (5000, 5000, 1)]);
    app.close();
}

/// A task reading two topics processes their records by timestamp, not topic after topic as the
/// fetches deliver them: records pre-produced with timestamps interleaving across the topics come
/// out of a merge in timestamp order. At the default `max.task.idle.ms` 0 this holds because of
/// KIP-695: a task whose other partition is not fetched yet (lag unknown, or records on the broker
/// not yet handed over) waits instead of running ahead on the first fetch's topic.
#[test]
fn merged_topics_are_processed_in_timestamp_order_at_default_idle() {
    merged_in_timestamp_order("tso", &[]);
}

/// The same with fetches of one record batch each (only the first partition with data gets one),
/// so the two topics arrive in separate fetches and the task must wait for the other.
#[test]
fn merged_topics_fetched_one_batch_at_a_time_are_processed_in_timestamp_order() {
    merged_in_timestamp_order("tsf", &[("consumer.max.partition.fetch.bytes", "1")]);
}

/// The same with some idle time: the lag rules decide, the idle time only adds a wait once both
/// partitions are caught up.
#[test]
fn merged_topics_are_processed_in_timestamp_order_with_idle_time() {
    merged_in_timestamp_order("tsi", &[("max.task.idle.ms", "100")]);
}

fn merged_in_timestamp_order(app: &str, extra: &[(&str, &str)]) {
    let (ta, tb, tout) = (format!("{app}-a"), format!("{app}-b"), format!("{app}-out"));
    create_topic(&ta, 1);
    create_topic(&tb, 1);
    create_topic(&tout, 1);
    let base = 1_700_000_000_000i64;
    let a: Vec<(String, i64)> = (0..10)
        .map(|i| (format!("a{}", 2 * i), base + 2 * i))
        .collect();
    let b: Vec<(String, i64)> = (0..10)
        .map(|i| (format!("b{}", 2 * i + 1), base + 2 * i + 1))
        .collect();
    let produce_all = |topic: &str, v: &[(String, i64)]| {
        let recs: Vec<(&str, &str, i64)> = v.iter().map(|(s, ts)| ("k", s.as_str(), *ts)).collect();
        produce_at(topic, &recs);
    };
    // Both topics are complete before the application starts, so the task has both to choose from.
    produce_all(&ta, &a);
    produce_all(&tb, &b);
    let builder = StreamsBuilder::new();
    let s = Serdes::string;
    builder
        .stream(&ta, Consumed::with(s(), s()))
        .merge(&builder.stream(&tb, Consumed::with(s(), s())))
        .to(&tout, Produced::with(s(), s()));
    let dir = tempfile::tempdir().unwrap();
    let mut app =
        KafkaStreams::new(builder.build().unwrap(), config(app, dir.path(), extra)).unwrap();
    app.start().unwrap();
    let got = consume_until(&tout, |r| r.len() >= 20);
    // Then a record on one topic alone (the other caught up, lag 0) is processed promptly.
    let started = std::time::Instant::now();
    produce_at(&ta, &[("k", "late", base + 100)]);
    let got_late = consume_until(&tout, |r| r.len() >= 21);
    let waited = started.elapsed();
    app.close();
    let vals: Vec<String> = got
        .iter()
        .map(|(_, v)| String::from_utf8(v.clone().unwrap()).unwrap())
        .collect();
    let mut want: Vec<(String, i64)> = a.into_iter().chain(b).collect();
    want.sort_by_key(|(_, ts)| *ts);
    let want: Vec<String> = want.into_iter().map(|(s, _)| s).collect();
    assert_eq!(vals, want);
    assert_eq!(
        got_late.last().and_then(|(_, v)| v.clone()),
        Some(b"late".to_vec())
    );
    assert!(waited < Duration::from_secs(10), "took {waited:?}");
}

/// Every store restoration an instance reports (Kafka's StateRestoreListener).
#[derive(Default)]
struct RestoreLog(std::sync::Mutex<Vec<(TopicPartition, String, u64)>>);

impl StateRestoreListener for RestoreLog {
    fn on_restore_end(&self, partition: &TopicPartition, store_name: &str, total_restored: u64) {
        self.0
            .lock()
            .unwrap()
            .push((partition.clone(), store_name.to_string(), total_restored));
    }
}

/// The next changelog offset a task's `.checkpoint` in `state_dir` records for `changelog`.
fn checkpointed(
    state_dir: &std::path::Path,
    app: &str,
    task: task::TaskId,
    changelog: &str,
) -> Option<i64> {
    let f = state_dir
        .join(app)
        .join(task.to_string())
        .join(".checkpoint");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f).ok()?).ok()?;
    v.get(changelog)?.as_i64()
}

fn changelog_end(topic: &str, partition: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    c.fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap()
        .1
}

#[test]
fn standby_replicas_stay_warm_and_a_takeover_restores_only_the_tail() {
    standby_takeover("sb", "at_least_once");
}

#[test]
fn standby_replicas_under_exactly_once() {
    standby_takeover("sb-eos", "exactly_once_v2");
}

/// Two instances with one standby replica each: (a) each keeps the other's count task warm and the
/// metadata says so; (b) when one stops, the other restores only the changelog's tail and the
/// counts stay exact.
fn standby_takeover(app: &str, guarantee: &str) {
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    let (input, output) = (input.as_str(), output.as_str());
    let changelog = format!("{app}-counts-changelog");
    let changelog = changelog.as_str();
    let eos = guarantee == "exactly_once_v2";
    create_topic(input, 2);
    create_topic(output, 1);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ha, hb) = (
        HostInfo::new("127.0.0.1", free_port()),
        HostInfo::new("127.0.0.1", free_port()),
    );
    let (sa, sb) = (ha.to_string(), hb.to_string());
    // No cache: every count update is a changelog record, so the changelog is long and a full
    // restore would be easy to tell from a tail restore.
    let props = |server: &str| {
        vec![
            ("num.standby.replicas", "1".to_string()),
            ("statestore.cache.max.bytes", "0".to_string()),
            ("application.server", server.to_string()),
            ("strom.query.http.enabled", "true".to_string()),
            ("processing.guarantee", guarantee.to_string()),
        ]
    };
    let cfg = |dir: &std::path::Path, server: &str| {
        let p = props(server);
        let extra: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        config(app, dir, &extra)
    };
    let mut a = KafkaStreams::new(wordcount(input, output), cfg(d1.path(), &sa)).unwrap();
    let mut b = KafkaStreams::new(wordcount(input, output), cfg(d2.path(), &sb)).unwrap();
    let restores = std::sync::Arc::new(RestoreLog::default());
    b.set_global_state_restore_listener(restores.clone())
        .unwrap();
    a.start().unwrap();
    b.start().unwrap();
    // 2 partitions x 2 sub-topologies; the count store lives in sub-topology 1.
    wait_for("both instances to own tasks", || {
        assert_eq!((a.error(), b.error()), (None, None));
        let (ta, tb) = (a.local_tasks(), b.local_tasks());
        !ta.is_empty() && !tb.is_empty() && ta.len() + tb.len() == 4 && ta.is_disjoint(&tb)
    });
    let words: Vec<String> = (0..4000).map(|i| format!("w{}", i % 50)).collect();
    let lines: Vec<(Option<&str>, &str)> = words.iter().map(|w| (None, w.as_str())).collect();
    produce(input, &lines);
    let got = consume_until(output, |r| {
        let m = latest_counts(r);
        m.len() == 50 && m.values().all(|&c| c == 80)
    });
    assert!(
        latest_counts(&got).values().all(|&c| c == 80),
        "{:?}",
        latest_counts(&got)
    );

    // (a) Each instance keeps a standby of the other's count task (never of the stateless
    // sub-topology 0), and its checkpoint reaches the changelog's end.
    let counting = |s: &KafkaStreams| -> std::collections::BTreeSet<task::TaskId> {
        s.local_tasks()
            .into_iter()
            .filter(|t| t.subtopology == 1)
            .collect()
    };
    wait_for(
        "each instance to keep a standby of the other's count task",
        || b.local_standby_tasks() == counting(&a) && a.local_standby_tasks() == counting(&b),
    );
    let a_task = *counting(&a).iter().next().expect("a runs a count task");
    // The end is read again each time: a's last changelog writes may still be in flight. Under
    // exactly-once the last offset is a transaction's commit marker, which a consumer is never
    // given, so the standby's next offset is that marker's.
    wait_for("b's standby checkpoint to reach the changelog end", || {
        let end = changelog_end(changelog, a_task.partition);
        let cp = checkpointed(d2.path(), app, a_task, changelog);
        cp == Some(end) || (eos && cp == Some(end - 1))
    });
    let end = changelog_end(changelog, a_task.partition);
    assert!(
        end > 1000,
        "changelog {changelog}-{}: {end}",
        a_task.partition
    );
    // Query metadata names the standby host.
    wait_for("metadata to show the standby replicas", || {
        let (ma, mb) = (
            a.metadata_for_all_clients().unwrap(),
            b.metadata_for_all_clients().unwrap(),
        );
        ma == mb && ma.len() == 2 && ma.iter().all(|m| !m.standby_tasks.is_empty())
    });
    for m in b.metadata_for_all_clients().unwrap() {
        let (other, standbys) = if m.host_info == ha {
            (&b, a.local_standby_tasks())
        } else {
            (&a, b.local_standby_tasks())
        };
        assert_eq!(m.standby_tasks, standbys, "{m:?}");
        assert_eq!(
            m.standby_state_store_names,
            ["counts".to_string()].into(),
            "{m:?}"
        );
        let p = counting(other).iter().next().unwrap().partition;
        assert_eq!(
            m.standby_topic_partitions,
            [TopicPartition {
                topic: format!("{app}-counts-repartition"),
                partition: p
            }]
            .into(),
            "{m:?}"
        );
    }
    // The HTTP endpoint answers the same.
    let over_http = get(&ha, "/metadata");
    assert_eq!(over_http.status, 200);
    for m in over_http.body.as_array().unwrap() {
        let standbys = if m["host"] == sa.as_str() {
            a.local_standby_tasks()
        } else {
            b.local_standby_tasks()
        };
        let want: Vec<String> = standbys.iter().map(|t| t.to_string()).collect();
        assert_eq!(m["standbyTasks"], serde_json::json!(want), "{m}");
        assert_eq!(
            m["standbyStateStoreNames"],
            serde_json::json!(["counts"]),
            "{m}"
        );
    }
    let mut standby_hosts_seen = std::collections::BTreeSet::new();
    for i in 0..50 {
        let w = format!("w{i}");
        let md = b
            .query_metadata_for_key("counts", &w, &serde::StringSerde)
            .unwrap();
        let other = if md.active_host == ha { &hb } else { &ha };
        assert_eq!(md.standby_hosts, [other.clone()].into(), "{w}: {md:?}");
        if i < 3 {
            let k = get(&hb, &format!("/metadata/keys/counts/{w}"));
            assert_eq!(
                k.body["standbyHosts"],
                serde_json::json!([other.to_string()])
            );
        }
        standby_hosts_seen.insert(other.clone());
    }
    assert_eq!(
        standby_hosts_seen.len(),
        2,
        "keys should live on both instances"
    );

    // (b) Stop a: b takes every task over, and its former standby restores only what a wrote
    // after b's standby last applied, not a's whole changelog.
    restores.0.lock().unwrap().clear();
    a.close();
    wait_for("b to own all 4 tasks and keep no standby", || {
        b.local_tasks().len() == 4 && b.local_standby_tasks().is_empty()
    });
    let restored: u64 = restores
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(tp, _, _)| tp.topic == changelog)
        .map(|(_, _, n)| n)
        .sum();
    assert!(
        restored * 10 < end as u64,
        "takeover restored {restored} of the {end} changelog records of task {a_task}"
    );
    for i in 0..50 {
        let w = format!("w{i}");
        wait_for("b's store to hold every count", || {
            b.store::<String, i64>("counts")
                .and_then(|s| s.get(&w))
                .ok()
                .flatten()
                == Some(80)
        });
    }
    produce(input, &lines);
    let got = consume_until(output, |r| {
        let m = latest_counts(r);
        m.len() == 50 && m.values().all(|&c| c == 160)
    });
    assert!(
        latest_counts(&got).values().all(|&c| c == 160),
        "{:?}",
        latest_counts(&got)
    );
    b.close();
}
