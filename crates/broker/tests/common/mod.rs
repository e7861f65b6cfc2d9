//! What the wire-level integration tests share: an in-process broker, raw request frames, and
//! one request/response exchange over a fresh connection.
#![allow(dead_code)] // each test file uses its own subset

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::net::SocketAddr;
use strom_broker::BrokerConfig;
use strom_broker::server::{RunningServer, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub async fn broker(dir: &std::path::Path, extra: &[&str]) -> RunningServer {
    let mut overrides = vec![
        "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
        format!("log.dirs={}", dir.display()),
    ];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    let config = BrokerConfig::load(None, &overrides).expect("config");
    start(config).await.expect("start")
}

pub fn frame(api_key: ApiKey, version: i16, body: &impl Encodable) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    buf
}

/// Send raw bytes; the response body after the header, or None if the broker closed the socket.
pub async fn exchange(
    addr: SocketAddr,
    bytes: &[u8],
    api_key: ApiKey,
    version: i16,
) -> Option<Bytes> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut size = [0u8; 4];
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut size)).await;
    match read {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return None, // closed
        Err(_) => panic!("broker neither answered nor closed the connection"),
    }
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).await.expect("body");
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, api_key.response_header_version(version))
        .expect("response header");
    Some(body)
}

/// One request as `key` v`version` and its decoded response.
pub async fn call<Resp: Decodable>(
    addr: SocketAddr,
    key: ApiKey,
    version: i16,
    req: &impl Encodable,
) -> Resp {
    let mut body = exchange(addr, &frame(key, version, req), key, version)
        .await
        .unwrap_or_else(|| panic!("{key:?} v{version} not answered"));
    Resp::decode(&mut body, version).expect("decode response")
}

pub async fn create_topic(addr: SocketAddr, name: &str) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    let mut body = exchange(
        addr,
        &frame(ApiKey::CreateTopics, 5, &req),
        ApiKey::CreateTopics,
        5,
    )
    .await
    .expect("answered");
    CreateTopicsResponse::decode(&mut body, 5)
        .expect("decode")
        .topics[0]
        .error_code
}

/// A v2 batch of plain records (no producer id, no key), offsets from 0, one millisecond apart.
pub fn plain_batch(values: impl IntoIterator<Item = Bytes>) -> Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(v),
            headers: indexmap::IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf.freeze()
}
