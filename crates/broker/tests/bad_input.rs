//! Bad input on the wire: each gets Kafka's answer (an error code, or a closed connection for
//! frames Kafka cannot parse either), and the broker keeps serving everyone else.

mod common;

use common::{broker, create_topic, exchange, frame};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::net::SocketAddr;

async fn still_serves(addr: SocketAddr) {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("test"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let mut body = exchange(
        addr,
        &frame(ApiKey::ApiVersions, 3, &req),
        ApiKey::ApiVersions,
        3,
    )
    .await
    .expect("ApiVersions answered");
    let resp = ApiVersionsResponse::decode(&mut body, 3).expect("decode");
    assert_eq!(resp.error_code, 0);
}

fn batch(value_len: usize, corrupt_crc: bool) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from(vec![b'x'; value_len])),
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        std::iter::once(&record),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    if corrupt_crc {
        let last = buf.len() - 1;
        buf[last] ^= 0xff; // flips a byte the CRC covers
    }
    buf.freeze()
}

async fn produce(addr: SocketAddr, topic: &str, records: Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let mut body = exchange(addr, &frame(ApiKey::Produce, 9, &req), ApiKey::Produce, 9)
        .await
        .expect("produce answered");
    let resp = ProduceResponse::decode(&mut body, 9).expect("decode");
    resp.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = broker(dir.path(), &["socket.request.max.bytes=1048576"]).await;
    let addr = server.local_addrs[0];

    // A size prefix over socket.request.max.bytes, and a negative one.
    for size in [2_000_000i32, -5] {
        assert!(
            exchange(addr, &size.to_be_bytes(), ApiKey::ApiVersions, 0)
                .await
                .is_none()
        );
        still_serves(addr).await;
    }
    // An API key Kafka does not have.
    let mut unknown = frame(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    unknown[4..6].copy_from_slice(&999i16.to_be_bytes());
    assert!(
        exchange(addr, &unknown, ApiKey::ApiVersions, 0)
            .await
            .is_none()
    );
    // A truncated Metadata body.
    let mut truncated = BytesMut::new();
    truncated.put_i32(12);
    truncated.put_i16(ApiKey::Metadata as i16);
    truncated.put_i16(12);
    truncated.put_i32(1);
    truncated.put_i16(200); // a client id longer than the frame
    truncated.put_i16(0);
    assert!(
        exchange(addr, &truncated, ApiKey::Metadata, 12)
            .await
            .is_none()
    );
    // Array lengths far beyond the frame (fuzzing found these aborted the process when the
    // decoder reserved capacity for them): plain array, then compact array.
    let mut huge = BytesMut::new();
    huge.put_i32(14);
    huge.put_slice(&[0, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
    assert!(exchange(addr, &huge, ApiKey::Metadata, 1).await.is_none());
    let mut compact = BytesMut::new();
    compact.put_i32(16);
    compact.put_slice(&[
        0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f,
    ]);
    let _ = exchange(addr, &compact, ApiKey::Metadata, 12).await;
    still_serves(addr).await;
    // Produce v2: advertised (for old librdkafka) but refused, as Kafka 4 does.
    let mut v2 = frame(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    v2[4..6].copy_from_slice(&(ApiKey::Produce as i16).to_be_bytes());
    v2[6..8].copy_from_slice(&2i16.to_be_bytes());
    assert!(exchange(addr, &v2, ApiKey::Produce, 2).await.is_none());
    still_serves(addr).await;

    // A too-new ApiVersions gets the v0-form UNSUPPORTED_VERSION answer with our ranges.
    let mut newer = frame(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    newer[6..8].copy_from_slice(&99i16.to_be_bytes());
    let mut body = exchange(addr, &newer, ApiKey::ApiVersions, 0)
        .await
        .expect("answered");
    assert_eq!(body.get_i16(), 35);
    assert!(
        body.get_i32() > 10,
        "the supported list comes with the error"
    );
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_and_names_get_kafka_error_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = broker(
        dir.path(),
        &["message.max.bytes=10000", "auto.create.topics.enable=false"],
    )
    .await;
    let addr = server.local_addrs[0];
    assert_eq!(create_topic(addr, "good").await, 0);
    assert_eq!(create_topic(addr, "good").await, 36, "TOPIC_ALREADY_EXISTS");
    assert_eq!(
        create_topic(addr, "bad name!").await,
        17,
        "INVALID_TOPIC_EXCEPTION"
    );
    assert_eq!(
        produce(addr, "good", batch(10, true)).await,
        2,
        "CORRUPT_MESSAGE"
    );
    assert_eq!(
        produce(addr, "good", batch(20_000, false)).await,
        10,
        "MESSAGE_TOO_LARGE"
    );
    assert_eq!(
        produce(addr, "missing", batch(10, false)).await,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(
        produce(addr, "good", Bytes::from_static(&[0u8; 30])).await,
        2,
        "short batch"
    );
    // Nothing bad reached the log; a good batch still lands at offset 0.
    let partition = server.broker.replicas.get("good", 0).expect("partition");
    assert_eq!(partition.log.log_end_offset(), 0);
    assert_eq!(produce(addr, "good", batch(10, false)).await, 0);
    assert_eq!(partition.log.log_end_offset(), 1);
    server.shutdown().await.expect("shutdown");
}
