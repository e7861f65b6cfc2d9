//! Data replication between two real brokers in this process, each on its own runtime, data
//! directory and port, sharing a hand-written metadata image (no controller quorum: the image
//! names both brokers, the leader and the ISR; ISR changes go to each node's local store).
//!
//! Covered: acks=all waits for the follower, which copies the leader's batches byte for byte;
//! a non-leader answers NOT_LEADER_OR_FOLLOWER with the leader's id, epoch and endpoint;
//! acks=all times out (REQUEST_TIMED_OUT) while an ISR member is gone; the ISR shrinks after
//! replica.lag.time.max.ms, min.insync.replicas then refuses (NOT_ENOUGH_REPLICAS), a restarted
//! follower catches up and rejoins; a follower holding records of an older epoch that the new
//! leader never had truncates them (OffsetForLeaderEpoch) and ends byte-identical.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{
    ApiKey, FetchResponse, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_broker::server::start;
use strom_broker::{Broker, BrokerConfig};

const TOPIC: &str = "replicated";
const TOPIC_ID: &str = "6f1c1d36-4c51-4d0e-9a43-0d5a4f0b9d11";
const CLUSTER_ID: &str = "cmVwbGljYXRpb24tdGVzdA";

struct Node {
    runtime: Option<tokio::runtime::Runtime>,
    broker: Arc<Broker>,
    addr: SocketAddr,
}

impl Node {
    fn start(node_id: i32, dir: &Path, port: u16, extra: &[&str]) -> Node {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut overrides = vec![
            format!("node.id={node_id}"),
            format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
            format!("log.dirs={}", dir.display()),
            "replica.fetch.wait.max.ms=100".to_string(),
            "replica.fetch.backoff.ms=100".to_string(),
        ];
        overrides.extend(extra.iter().map(|s| s.to_string()));
        let config = BrokerConfig::load(None, &overrides).expect("config");
        let server = runtime.block_on(start(config)).expect("start");
        Node {
            broker: server.broker.clone(),
            addr: server.local_addrs[0],
            runtime: Some(runtime),
        }
    }

    /// Closes the logs, then drops the runtime: listeners and fetchers stop with it.
    fn stop(mut self) {
        let b = self.broker.clone();
        if let Some(rt) = self.runtime.take() {
            rt.block_on(async move {
                tokio::task::spawn_blocking(move || b.shutdown())
                    .await
                    .expect("shutdown")
            });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }

    fn log_end_offset(&self) -> i64 {
        self.broker
            .replicas
            .get(TOPIC, 0)
            .expect("partition")
            .log
            .log_end_offset()
    }

    fn read_all(&self) -> Bytes {
        let p = self.broker.replicas.get(TOPIC, 0).expect("partition");
        p.log
            .read(p.log.log_start_offset(), 1 << 24, i64::MAX, true)
            .expect("read")
            .records
    }

    fn isr(&self) -> Vec<i32> {
        let image = self.broker.metadata.image();
        image.topic(TOPIC).expect("topic").partitions[0].isr.clone()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A sample of the node's metrics endpoint page, written exactly as `series`.
fn metric(node: &Node, series: &str) -> f64 {
    let page = strom_broker::metrics::render(&node.broker);
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{page}"))
        .trim()
        .parse()
        .expect("numeric sample")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The same image in each node's data directory: both brokers, one partition led by
/// `leader` in `leader_epoch`.
fn write_image(
    dir: &Path,
    node_id: i32,
    ports: [u16; 2],
    leader: i32,
    leader_epoch: i32,
    configs: &str,
) {
    std::fs::create_dir_all(dir).expect("dir");
    let broker = |id: i32, port: u16| {
        format!(
            r#""{id}": {{"node_id": {id}, "incarnation_id": "00000000-0000-0000-0000-00000000000{id}",
                "listeners": [{{"name": "PLAINTEXT", "host": "127.0.0.1", "port": {port}}}],
                "rack": null, "fenced": false}}"#
        )
    };
    let image = format!(
        r#"{{"cluster_id": "{CLUSTER_ID}", "epoch": 1,
            "topics": {{"{TOPIC}": {{"name": "{TOPIC}", "id": "{TOPIC_ID}",
                "partitions": [{{"partition": 0, "leader": {leader}, "leader_epoch": {leader_epoch},
                    "replicas": [1, 2], "isr": [1, 2], "partition_epoch": 1}}],
                "configs": {{{configs}}}}}}},
            "brokers": {{{}, {}}}}}"#,
        broker(1, ports[0]),
        broker(2, ports[1])
    );
    std::fs::write(dir.join("metadata.json"), image).expect("image");
    std::fs::write(
        dir.join("meta.properties"),
        format!("version=1\ncluster.id={CLUSTER_ID}\nnode.id={node_id}\n"),
    )
    .expect("meta.properties");
}

fn batch(values: &[String]) -> Bytes {
    common::plain_batch(values.iter().map(|v| Bytes::copy_from_slice(v.as_bytes())))
}

fn send<Resp: Decodable>(
    addr: SocketAddr,
    key: ApiKey,
    version: i16,
    body: &impl Encodable,
) -> Resp {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("replication-test")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, key.request_header_version(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(&buf).expect("write");
    let mut size = [0u8; 4];
    s.read_exact(&mut size).expect("response size");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).expect("response body");
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, key.response_header_version(version)).expect("header");
    Resp::decode(&mut body, version).expect("response")
}

/// Produce (v10) one batch with `acks`; returns (error code, base offset, the response).
fn produce(
    addr: SocketAddr,
    values: &[String],
    acks: i16,
    timeout_ms: i32,
) -> (i16, i64, ProduceResponse) {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(values))),
                ]),
        ]);
    let resp: ProduceResponse = send(addr, ApiKey::Produce, 10, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset, resp.clone())
}

fn values(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn acks_all_waits_for_the_follower_which_copies_the_log_exactly() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    write_image(d1.path(), 1, ports, 1, 3, "");
    write_image(d2.path(), 2, ports, 1, 3, "");
    // A long lag time: the ISR cannot shrink during this test.
    let lag = "replica.lag.time.max.ms=600000";
    let n1 = Node::start(1, d1.path(), ports[0], &[lag]);
    let n2 = Node::start(2, d2.path(), ports[1], &[lag]);

    for round in 0..5 {
        let (code, base, _) = produce(n1.addr, &values(&format!("r{round}"), 10), -1, 20_000);
        assert_eq!(
            (code, base),
            (0, round * 10),
            "acks=all produce round {round}"
        );
        // Acknowledged with acks=all: the follower has the records already.
        assert!(
            n2.log_end_offset() >= (round + 1) * 10,
            "follower behind an acknowledged write"
        );
    }
    wait_until("follower log end", Duration::from_secs(20), || {
        n2.log_end_offset() == 50
    });
    assert_eq!(
        n1.read_all(),
        n2.read_all(),
        "follower's batches differ from the leader's"
    );
    let leader = n1.broker.replicas.get(TOPIC, 0).unwrap();
    let follower = n2.broker.replicas.get(TOPIC, 0).unwrap();
    assert_eq!(leader.log.epoch_entries(), vec![(3, 0)]);
    assert_eq!(follower.log.epoch_entries(), vec![(3, 0)]);
    assert_eq!(leader.high_watermark(), 50);

    // Metrics: the leader counts the produced records and what the follower fetched; the
    // follower's replication appends are not MessagesIn.
    let leader_bytes = n1.read_all().len() as f64;
    assert_eq!(metric(&n1, "kafka_server_replicamanager_leadercount"), 1.0);
    assert_eq!(metric(&n2, "kafka_server_replicamanager_leadercount"), 0.0);
    assert_eq!(
        metric(&n2, "kafka_server_replicamanager_partitioncount"),
        1.0
    );
    assert_eq!(
        metric(&n1, "kafka_server_replicamanager_underreplicatedpartitions"),
        0.0
    );
    assert_eq!(
        metric(&n1, "kafka_server_brokertopicmetrics_messagesin_total"),
        50.0
    );
    assert_eq!(
        metric(&n2, "kafka_server_brokertopicmetrics_messagesin_total"),
        0.0
    );
    assert!(
        metric(
            &n1,
            "kafka_server_brokertopicmetrics_replicationbytesout_total"
        ) >= leader_bytes
    );
    assert_eq!(
        metric(&n1, "kafka_server_brokertopicmetrics_bytesout_total"),
        0.0,
        "follower fetches are not BytesOut"
    );
    assert!(
        metric(
            &n1,
            "kafka_network_requestmetrics_requests_total{request=\"FetchFollower\"}"
        ) >= 1.0
    );

    // The follower refuses clients and names the leader (KIP-951 fields of Produce v10).
    let (code, _, resp) = produce(n2.addr, &values("wrong", 1), 1, 5_000);
    assert_eq!(code, 6, "NOT_LEADER_OR_FOLLOWER");
    let hint = &resp.responses[0].partition_responses[0].current_leader;
    assert_eq!((hint.leader_id.0, hint.leader_epoch), (1, 3));
    assert!(
        resp.node_endpoints
            .iter()
            .any(|e| e.node_id.0 == 1 && e.port == i32::from(ports[0])),
        "leader endpoint missing: {:?}",
        resp.node_endpoints
    );
    let fetch = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(3)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let resp: FetchResponse = send(n2.addr, ApiKey::Fetch, 12, &fetch);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 6, "consumer fetch from a follower");
    assert_eq!(p.current_leader.leader_id.0, 1);
    // A stale epoch is fenced at the leader.
    let mut stale = fetch.clone();
    stale.topics[0].partitions[0].current_leader_epoch = 2;
    let resp: FetchResponse = send(n1.addr, ApiKey::Fetch, 12, &stale);
    assert_eq!(
        resp.responses[0].partitions[0].error_code, 74,
        "FENCED_LEADER_EPOCH"
    );

    // With the follower gone but still in the ISR, acks=all cannot complete.
    n2.stop();
    let (code, _, _) = produce(n1.addr, &values("lost", 1), -1, 300);
    assert_eq!(code, 7, "REQUEST_TIMED_OUT");
    // acks=1 is answered by the leader alone.
    let (code, base, _) = produce(n1.addr, &values("one", 1), 1, 300);
    assert_eq!((code, base), (0, 51));
    // Consumers only see the committed records.
    let resp: FetchResponse = send(n1.addr, ApiKey::Fetch, 12, &fetch);
    assert_eq!(resp.responses[0].partitions[0].high_watermark, 50);
    n1.stop();
}

#[test]
fn isr_shrinks_min_insync_refuses_and_restarted_follower_rejoins() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let configs = r#""min.insync.replicas": "2""#;
    write_image(d1.path(), 1, ports, 1, 1, configs);
    write_image(d2.path(), 2, ports, 1, 1, configs);
    let lag = "replica.lag.time.max.ms=1000";
    let n1 = Node::start(1, d1.path(), ports[0], &[lag]);
    let n2 = Node::start(2, d2.path(), ports[1], &[lag]);
    let (code, _, _) = produce(n1.addr, &values("a", 5), -1, 20_000);
    assert_eq!(code, 0);

    n2.stop();
    // Records the follower misses make it fall behind; after the lag time the leader drops it.
    let _ = produce(n1.addr, &values("b", 5), 1, 1_000);
    wait_until("ISR shrink to the leader", Duration::from_secs(30), || {
        n1.isr() == vec![1]
    });
    wait_until(
        "under-replicated in the metrics",
        Duration::from_secs(10),
        || metric(&n1, "kafka_server_replicamanager_underreplicatedpartitions") == 1.0,
    );
    assert_eq!(
        metric(&n1, "kafka_server_replicamanager_underminisrpartitioncount"),
        1.0
    );
    let (code, _, _) = produce(n1.addr, &values("c", 5), -1, 5_000);
    assert_eq!(
        code, 19,
        "NOT_ENOUGH_REPLICAS with ISR [1] and min.insync.replicas=2"
    );
    let (code, _, _) = produce(n1.addr, &values("d", 5), 1, 5_000);
    assert_eq!(code, 0, "acks=1 does not need the ISR");

    // The follower comes back (new port: the leader never connects to it), catches up and
    // is added to the ISR again; acks=all works again.
    let n2 = Node::start(2, d2.path(), free_port(), &[lag]);
    wait_until(
        "follower rejoining the ISR",
        Duration::from_secs(30),
        || n1.isr() == vec![1, 2],
    );
    let (code, base, _) = produce(n1.addr, &values("e", 5), -1, 20_000);
    assert_eq!((code, base), (0, 15));
    assert_eq!(
        metric(&n1, "kafka_server_replicamanager_underreplicatedpartitions"),
        0.0
    );
    assert_eq!(
        metric(&n1, "kafka_server_replicamanager_underminisrpartitioncount"),
        0.0
    );
    wait_until("follower log end", Duration::from_secs(20), || {
        n2.log_end_offset() == 20
    });
    assert_eq!(n1.read_all(), n2.read_all());
    n2.stop();
    n1.stop();
}

#[test]
fn follower_truncates_records_the_new_leader_never_had() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    // History: node 2 led epoch 1 and wrote offsets 0..9 (committed: node 1 copied 0..5) and
    // then 10..14 that nobody copied; node 1 became leader in epoch 2 and wrote 10..12.
    {
        use strom_log::{Log, LogConfig};
        let id = uuid::Uuid::parse_str(TOPIC_ID).unwrap().into_bytes();
        let old = Log::open(
            &d2.path().join(format!("{TOPIC}-0")),
            LogConfig::default(),
            id,
        )
        .unwrap();
        let new = Log::open(
            &d1.path().join(format!("{TOPIC}-0")),
            LogConfig::default(),
            id,
        )
        .unwrap();
        for (tag, n) in [("x", 5), ("y", 5)] {
            let mut b = BytesMut::from(&batch(&values(tag, n))[..]);
            let info = old.append(&mut b, 1, 0).unwrap();
            let mut copy = BytesMut::from(
                &old.read(info.base_offset, 1 << 20, i64::MAX, true)
                    .unwrap()
                    .records[..],
            );
            new.append_as_follower(&mut copy, 0).unwrap();
        }
        old.append(
            &mut BytesMut::from(&batch(&values("uncommitted", 5))[..]),
            1,
            0,
        )
        .unwrap();
        new.append(&mut BytesMut::from(&batch(&values("epoch2", 3))[..]), 2, 0)
            .unwrap();
        old.close().unwrap();
        new.close().unwrap();
    }
    write_image(d1.path(), 1, ports, 1, 2, "");
    write_image(d2.path(), 2, ports, 1, 2, "");
    let lag = "replica.lag.time.max.ms=600000";
    let n1 = Node::start(1, d1.path(), ports[0], &[lag]);
    let n2 = Node::start(2, d2.path(), ports[1], &[lag]);
    wait_until(
        "follower truncated and caught up",
        Duration::from_secs(30),
        || n2.read_all() == n1.read_all(),
    );
    assert_eq!(n2.log_end_offset(), 13);
    let follower = n2.broker.replicas.get(TOPIC, 0).unwrap();
    assert_eq!(follower.log.epoch_entries(), vec![(1, 0), (2, 10)]);
    let (code, base, _) = produce(n1.addr, &values("after", 2), -1, 20_000);
    assert_eq!((code, base), (0, 13));
    n2.stop();
    n1.stop();
}
