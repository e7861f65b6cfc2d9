//! The metrics endpoint as a Prometheus scrape sees it: Kafka's metric names with values that
//! follow what clients did (produce, fetch, commit).

mod common;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchResponse, FindCoordinatorResponse, GroupId, OffsetCommitResponse,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use strom_broker::BrokerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOPIC: &str = "metered";
const GROUP: &str = "metered-readers";
const RECORDS: usize = 20;
const VALUE_SIZE: usize = 100;
const COMMITTED: i64 = 7;

/// One HTTP/1.1 GET; the status code and body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect metrics");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("metrics answered in time")
        .expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

/// The value of the sample written exactly as `series` (name plus labels).
fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
        .trim()
        .parse()
        .expect("numeric sample")
}

async fn scrape(addr: SocketAddr) -> String {
    let (status, content_type, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_reports_traffic_partitions_and_group_lag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::broker(
        dir.path(),
        &[
            "metrics.listener=http://127.0.0.1:0",
            "offsets.topic.num.partitions=2",
        ],
    )
    .await;
    let addr = server.local_addrs[0];
    let metrics = server.metrics_addr.expect("metrics endpoint bound");
    assert_eq!(common::create_topic(addr, TOPIC).await, 0);

    let records = common::plain_batch((0..RECORDS).map(|_| Bytes::from(vec![b'x'; VALUE_SIZE])));
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records.clone())),
                ]),
        ]);
    let resp: ProduceResponse = common::call(addr, ApiKey::Produce, 9, &produce).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);

    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let resp: FetchResponse = common::call(addr, ApiKey::Fetch, 12, &fetch).await;
    let fetched = resp.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, |r| r.len());
    assert!(fetched >= records.len(), "fetched {fetched} bytes");

    let body = scrape(metrics).await;
    let topic = format!("{{topic=\"{TOPIC}\"}}");
    for series in [
        format!("kafka_server_brokertopicmetrics_messagesin_total{topic}"),
        "kafka_server_brokertopicmetrics_messagesin_total".to_string(),
    ] {
        assert_eq!(value(&body, &series), RECORDS as f64, "{series}");
    }
    let bytes_in = value(
        &body,
        &format!("kafka_server_brokertopicmetrics_bytesin_total{topic}"),
    );
    assert!(bytes_in >= (RECORDS * VALUE_SIZE) as f64, "{bytes_in}");
    assert_eq!(bytes_in, records.len() as f64);
    assert_eq!(
        value(
            &body,
            &format!("kafka_server_brokertopicmetrics_bytesout_total{topic}")
        ),
        fetched as f64
    );
    assert!(
        value(
            &body,
            "kafka_network_requestmetrics_requests_total{request=\"Produce\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &body,
            "kafka_network_requestmetrics_requests_total{request=\"FetchConsumer\"}"
        ) >= 1.0
    );
    assert_eq!(
        value(
            &body,
            "kafka_network_requestmetrics_totaltimems_count{request=\"Produce\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &body,
            "kafka_network_requestmetrics_totaltimems_bucket{request=\"Produce\",le=\"+Inf\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&body, "kafka_server_replicamanager_partitioncount"),
        1.0
    );
    assert_eq!(value(&body, "kafka_server_replicamanager_leadercount"), 1.0);
    assert_eq!(
        value(
            &body,
            "kafka_server_replicamanager_underreplicatedpartitions"
        ),
        0.0
    );
    assert_eq!(
        value(
            &body,
            "kafka_controller_kafkacontroller_activecontrollercount"
        ),
        1.0
    );
    assert_eq!(
        value(
            &body,
            "kafka_controller_kafkacontroller_offlinepartitionscount"
        ),
        0.0
    );
    assert!(value(&body, "process_resident_memory_bytes") > 0.0);
    assert!(value(&body, "process_open_fds") > 0.0);
    assert!(value(&body, "strom_uptime_seconds") >= 0.0);

    // A group commits offset COMMITTED of RECORDS: its lag is the rest.
    let find = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str(GROUP));
    let resp: FindCoordinatorResponse = common::call(addr, ApiKey::FindCoordinator, 2, &find).await;
    assert_eq!(resp.error_code, 0);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(COMMITTED),
                ]),
        ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp: OffsetCommitResponse = common::call(addr, ApiKey::OffsetCommit, 8, &commit).await;
        let code = resp.topics[0].partitions[0].error_code;
        if code == 0 {
            break;
        }
        // The coordinator may still be loading __consumer_offsets.
        assert!(
            Instant::now() < deadline,
            "offset commit kept failing: {code}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let body = scrape(metrics).await;
    let labels = format!("{{consumergroup=\"{GROUP}\",topic=\"{TOPIC}\",partition=\"0\"}}");
    assert_eq!(
        value(&body, &format!("kafka_consumergroup_lag{labels}")),
        (RECORDS as i64 - COMMITTED) as f64
    );
    assert_eq!(
        value(
            &body,
            &format!("kafka_consumergroup_current_offset{labels}")
        ),
        COMMITTED as f64
    );
    // The topic plus the two partitions of __consumer_offsets.
    assert_eq!(
        value(&body, "kafka_server_replicamanager_partitioncount"),
        3.0
    );
    assert_eq!(
        value(&body, "kafka_controller_kafkacontroller_globaltopiccount"),
        2.0
    );

    let (status, _, _) = http_get(metrics, "/").await;
    assert_eq!(status, 404);
    let (status, _, _) = http_get(metrics, "/metricsx").await;
    assert_eq!(status, 404);
    server.shutdown().await.expect("shutdown");
}

#[test]
fn a_bad_metrics_listener_names_the_key() {
    for bad in [
        "127.0.0.1:9644",
        "https://127.0.0.1:9644",
        "http://127.0.0.1:port",
    ] {
        let err = BrokerConfig::load(None, &[format!("metrics.listener={bad}")])
            .expect_err("invalid metrics.listener");
        let message = err.to_string();
        assert!(message.contains("metrics.listener"), "{message}");
        assert!(message.contains(bad), "{message}");
    }
    let config = BrokerConfig::load(None, &[]).expect("defaults");
    assert!(config.metrics_listener.is_none(), "off unless configured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_port_in_use_stops_the_start_naming_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = BrokerConfig::load(
        None,
        &[
            "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
            format!("log.dirs={}", dir.path().display()),
            format!("metrics.listener=http://127.0.0.1:{port}"),
        ],
    )
    .expect("config");
    let err = match strom_broker::server::start(config).await {
        Ok(_) => panic!("started with its metrics port taken"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("metrics.listener"), "{err}");
}
