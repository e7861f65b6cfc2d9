//! End-to-end tests of the console tools against a running broker (strom or Apache Kafka).
//!
//! The broker is given by `STROM_TEST_BOOTSTRAP=HOST:PORT`; without it every test prints why it is
//! skipped and passes, so `cargo test` stays green on machines without a broker. The tools run as
//! the crate's `strom-tools` binary (the same subcommands as `strom`), so flags, stdout, stderr and
//! exit codes are all tested as users see them.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

fn bootstrap(test: &str) -> Option<String> {
    match std::env::var("STROM_TEST_BOOTSTRAP") {
        Ok(b) if !b.trim().is_empty() => Some(b),
        _ => {
            eprintln!(
                "skipping {test}: STROM_TEST_BOOTSTRAP (HOST:PORT of a running broker) is not set"
            );
            None
        }
    }
}

/// A topic name no other test run uses.
fn unique_topic(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("tools-it-{tag}-{}-{nanos}", std::process::id())
}

fn tools(bootstrap: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strom-tools"));
    cmd.args(args)
        .arg("--bootstrap-server")
        .arg(bootstrap)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn strom-tools");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for strom-tools")
}

/// Runs the tool and insists on success, returning stdout.
fn ok(bootstrap: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = tools(bootstrap, args, stdin);
    assert!(
        out.status.success(),
        "strom-tools {args:?} failed: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

#[test]
fn topic_lifecycle() {
    let Some(b) = bootstrap("topic_lifecycle") else {
        return;
    };
    let t = unique_topic("life");
    let out = ok(
        &b,
        &[
            "topic",
            "create",
            &t,
            "--partitions",
            "2",
            "--replication-factor",
            "1",
            "--config",
            "cleanup.policy=compact",
        ],
        None,
    );
    assert_eq!(out.trim(), format!("Created topic {t}."));

    // A second create fails and names the topic; --if-not-exists makes it a no-op.
    let again = tools(&b, &["topic", "create", &t], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains(&t));
    ok(&b, &["topic", "create", &t, "--if-not-exists"], None);

    let list = ok(&b, &["topic", "list"], None);
    assert!(list.lines().any(|l| l == t), "{t} not in list:\n{list}");

    let desc = ok(&b, &["topic", "describe", &t], None);
    let lines: Vec<&str> = desc.lines().collect();
    assert_eq!(lines.len(), 3, "{desc}");
    assert!(
        lines[0].starts_with(&format!("Topic: {t}\tTopicId: ")),
        "{desc}"
    );
    assert!(
        lines[0].contains("\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: "),
        "{desc}"
    );
    assert!(lines[0].contains("cleanup.policy=compact"), "{desc}");
    assert!(
        lines[1].starts_with(&format!("\tTopic: {t}\tPartition: 0\tLeader: ")),
        "{desc}"
    );
    assert!(
        lines[2].contains("\tPartition: 1\t") && lines[2].contains("\tIsr: "),
        "{desc}"
    );

    ok(
        &b,
        &["topic", "alter", "--topic", &t, "--partitions", "3"],
        None,
    );
    let desc = ok(&b, &["topic", "describe", "--topic", &t], None);
    assert!(desc.contains("PartitionCount: 3"), "{desc}");

    ok(&b, &["topic", "delete", &t], None);
    // Deletion is asynchronous on some brokers; describe must fail once it is done.
    let mut gone = false;
    for _ in 0..50 {
        if !tools(&b, &["topic", "describe", &t], None).status.success() {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone, "topic {t} still described after delete");
    ok(&b, &["topic", "delete", &t, "--if-exists"], None);
    ok(&b, &["topic", "describe", &t, "--if-exists"], None);
}

#[test]
fn produce_and_consume_round_trip() {
    let Some(b) = bootstrap("produce_and_consume_round_trip") else {
        return;
    };
    let t = unique_topic("rt");
    ok(&b, &["topic", "create", &t, "--partitions", "1"], None);
    ok(
        &b,
        &[
            "produce",
            "--topic",
            &t,
            "--key-separator",
            ":",
            "--header",
            "src=it",
            "--acks",
            "all",
            "--compression",
            "lz4",
        ],
        Some("k1:v1\nk2:v:2\n:no-key\n"),
    );
    ok(&b, &["produce", "--topic", &t], Some("plain\r\n"));

    let out = tools(
        &b,
        &[
            "consume",
            "--topic",
            &t,
            "--from-beginning",
            "--max-messages",
            "4",
            "--timeout-ms",
            "20000",
            "--print-key",
            "--print-headers",
            "--print-offset",
            "--print-partition",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        stdout,
        "Partition:0\tOffset:0\tsrc:it\tk1\tv1\n\
         Partition:0\tOffset:1\tsrc:it\tk2\tv:2\n\
         Partition:0\tOffset:2\tsrc:it\t\tno-key\n\
         Partition:0\tOffset:3\tNO_HEADERS\tnull\tplain\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Processed a total of 4 messages"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Start at an explicit offset of one partition, with timestamps.
    let out = ok(
        &b,
        &[
            "consume",
            "--topic",
            &t,
            "--partition",
            "0",
            "--offset",
            "2",
            "--max-messages",
            "2",
            "--timeout-ms",
            "20000",
            "--print-timestamp",
        ],
        None,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("CreateTime:") && lines[0].ends_with("\tno-key"),
        "{out}"
    );
    assert!(lines[1].ends_with("\tplain"), "{out}");

    // --timeout-ms ends a consumer that has caught up.
    let out = tools(
        &b,
        &["consume", "--topic", &t, "--timeout-ms", "1500"],
        None,
    );
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    ok(&b, &["topic", "delete", &t], None);
}

#[test]
fn produce_rejects_line_without_separator() {
    let Some(b) = bootstrap("produce_rejects_line_without_separator") else {
        return;
    };
    let t = unique_topic("badline");
    ok(&b, &["topic", "create", &t, "--partitions", "1"], None);
    let out = tools(
        &b,
        &["produce", "--topic", &t, "--key-separator", "="],
        Some("a=1\nbroken\nc=3\n"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("broken"), "{err}");
    // The record read before the bad line was still delivered.
    let out = ok(
        &b,
        &[
            "consume",
            "--topic",
            &t,
            "--from-beginning",
            "--timeout-ms",
            "3000",
            "--print-key",
        ],
        None,
    );
    assert_eq!(out, "a\t1\n");
    ok(&b, &["topic", "delete", &t], None);
}

#[test]
fn bench_produce_then_consume() {
    let Some(b) = bootstrap("bench_produce_then_consume") else {
        return;
    };
    let t = unique_topic("bench");
    ok(&b, &["topic", "create", &t, "--partitions", "2"], None);
    let out = ok(
        &b,
        &[
            "bench",
            "produce",
            "--topic",
            &t,
            "--num-records",
            "5000",
            "--record-size",
            "200",
            "--throughput",
            "-1",
            "--acks",
            "1",
            "--json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["records"], 5000);
    assert_eq!(v["errors"], 0);
    assert!(v["latency_ms"]["p99"].as_f64().is_some_and(|p| p >= 0.0));

    let out = ok(
        &b,
        &[
            "bench",
            "consume",
            "--topic",
            &t,
            "--messages",
            "5000",
            "--timeout",
            "20000",
            "--json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["messages"], 5000);
    assert_eq!(v["bytes"], 5000 * 200);
    ok(&b, &["topic", "delete", &t], None);
}

#[test]
fn bad_flags_name_themselves() {
    // No broker needed: these fail before connecting.
    let b = "127.0.0.1:1";
    let out = tools(b, &["produce", "--topic", "x", "--acks", "2"], Some(""));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--acks"));
    let out = tools(b, &["consume", "--topic", "x", "--offset", "5"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--partition"));
    let out = tools(
        b,
        &["consume", "--topic", "x", "--property", "bogus=1"],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
    let out = tools(b, &["topic", "create", "bad name"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOPIC"));
}
