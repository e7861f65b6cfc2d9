//! Writes the committed seed inputs of the fuzz targets, made with kafka-protocol's client-side
//! encoders as a real client would send them:
//!
//! - `fuzz/seeds/request_decode/*.bin`: one request frame each (header + body, no size prefix);
//! - `fuzz/seeds/batch/*.bin`: record batches v2 as a producer sends them (for
//!   `batch_validate`, `batch_validate_structured` and `log_append_read`).
//!
//! Run from anywhere: `cargo run --manifest-path fuzz/Cargo.toml -p strom-fuzz-seedgen`.
//! The output is deterministic, so re-running it leaves the committed files unchanged.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

/// One request frame: the header at the version `api_key` v`version` needs, then the body.
fn frame<R: Encodable>(api_key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(s("strom-fuzz-seed")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("encode request header");
    body.encode(&mut buf, version).expect("encode request body");
    buf.to_vec()
}

fn record(
    offset: i64,
    key: Option<&'static str>,
    value: &'static str,
    producer: Option<(i64, i16, i32)>,
) -> Record {
    let (producer_id, producer_epoch, sequence) = producer.unwrap_or((-1, -1, -1));
    let mut headers = IndexMap::new();
    if offset == 1 {
        headers.insert(s("h"), Some(Bytes::from_static(b"v")));
    }
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: if sequence < 0 {
            -1
        } else {
            sequence + offset as i32
        },
        timestamp: 1_700_000_000_000 + offset,
        key: key.map(|k| Bytes::from_static(k.as_bytes())),
        value: Some(Bytes::from_static(value.as_bytes())),
        headers,
    }
}

/// One record batch v2 with `count` records.
fn batch(
    count: i64,
    compression: Compression,
    producer: Option<(i64, i16, i32)>,
    transactional: bool,
) -> Vec<u8> {
    const VALUES: [&str; 4] = ["hello", "strom", "fuzz", "kafka"];
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let mut r = record(i, Some("key"), VALUES[i as usize % VALUES.len()], producer);
            r.transactional = transactional;
            r
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode batch");
    buf.to_vec()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create seed dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write seed");
    println!("{} ({} bytes)", path.display(), bytes.len());
}

fn main() {
    let seeds = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest_dir.parent().expect("fuzz/").join("seeds")
        });

    // Record batches.
    let batches = seeds.join("batch");
    let one = batch(1, Compression::None, None, false);
    let three = batch(3, Compression::None, None, false);
    let idempotent = batch(2, Compression::None, Some((1000, 0, 0)), false);
    let transactional = batch(2, Compression::None, Some((1001, 3, 7)), true);
    let gzip = batch(3, Compression::Gzip, None, false);
    write(&batches, "one_record.bin", &one);
    write(&batches, "three_records.bin", &three);
    write(&batches, "idempotent.bin", &idempotent);
    write(&batches, "transactional.bin", &transactional);
    write(&batches, "gzip.bin", &gzip);
    write(
        &batches,
        "two_batches.bin",
        &[one.clone(), three.clone()].concat(),
    );

    // Request frames.
    let requests = seeds.join("request_decode");
    let api_versions = ApiVersionsRequest::default()
        .with_client_software_name(s("strom-fuzz"))
        .with_client_software_version(s("0.1.0"));
    write(
        &requests,
        "api_versions_v3.bin",
        &frame(ApiKey::ApiVersions, 3, 1, &api_versions),
    );
    write(
        &requests,
        "api_versions_v0.bin",
        &frame(ApiKey::ApiVersions, 0, 2, &ApiVersionsRequest::default()),
    );

    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic("orders"))),
        ]))
        .with_allow_auto_topic_creation(true);
    write(
        &requests,
        "metadata_v12.bin",
        &frame(ApiKey::Metadata, 12, 3, &metadata),
    );
    write(
        &requests,
        "metadata_v1.bin",
        &frame(ApiKey::Metadata, 1, 4, &metadata),
    );

    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic("orders"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(three.clone()))),
                ]),
        ]);
    write(
        &requests,
        "produce_v9.bin",
        &frame(ApiKey::Produce, 9, 5, &produce),
    );
    write(
        &requests,
        "produce_v3.bin",
        &frame(ApiKey::Produce, 3, 6, &produce),
    );

    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(52_428_800)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic("orders"))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(0)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(1_048_576),
                ]),
        ]);
    write(
        &requests,
        "fetch_v12.bin",
        &frame(ApiKey::Fetch, 12, 7, &fetch),
    );

    let list_offsets = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    write(
        &requests,
        "list_offsets_v7.bin",
        &frame(ApiKey::ListOffsets, 7, 8, &list_offsets),
    );

    let init_producer_id = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    write(
        &requests,
        "init_producer_id_v4.bin",
        &frame(ApiKey::InitProducerId, 4, 9, &init_producer_id),
    );
}
