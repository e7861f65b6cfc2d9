//! Fetch answers send their records from the segment files in place (`sendfile`): what a
//! client reads back must be exactly the produced batches, whole, in order, across segment
//! boundaries, several partitions in one answer, in both the old and the flexible encodings.

mod common;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchResponse, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

const TOPICS: [&str; 2] = ["in-place-a", "in-place-b"];
const BATCHES: usize = 30;
const PER_BATCH: usize = 10;
const VALUE_SIZE: usize = 1000;

fn value(topic: &str, offset: usize) -> Bytes {
    let mut v = format!("{topic}-{offset:06}-").into_bytes();
    v.resize(VALUE_SIZE, b'.');
    Bytes::from(v)
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_records_are_the_produced_batches_whole_and_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    // About six ~10 KB batches per segment, so reads start and end in several segments.
    let server = common::broker(dir.path(), &["log.segment.bytes=65536"]).await;
    let addr = server.local_addrs[0];
    for topic in TOPICS {
        assert_eq!(common::create_topic(addr, topic).await, 0);
        for b in 0..BATCHES {
            let batch =
                common::plain_batch((0..PER_BATCH).map(|i| value(topic, b * PER_BATCH + i)));
            let produce = ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(name(topic))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch)),
                        ]),
                ]);
            let resp: ProduceResponse = common::call(addr, ApiKey::Produce, 9, &produce).await;
            assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        }
    }
    let total = (BATCHES * PER_BATCH) as i64;
    for version in [4i16, 11, 12] {
        let mut next = [0i64; 2];
        let mut rounds = 0;
        while next.iter().any(|n| *n < total) {
            rounds += 1;
            assert!(rounds < 100, "v{version}: no progress at {next:?}");
            let fetch = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_topics(
                    TOPICS
                        .iter()
                        .zip(next)
                        .map(|(topic, offset)| {
                            FetchTopic::default()
                                .with_topic(name(topic))
                                .with_partitions(vec![
                                    FetchPartition::default()
                                        .with_partition(0)
                                        .with_fetch_offset(offset)
                                        .with_partition_max_bytes(25_000),
                                ])
                        })
                        .collect(),
                );
            let resp: FetchResponse = common::call(addr, ApiKey::Fetch, version, &fetch).await;
            assert_eq!(resp.responses.len(), 2, "v{version}");
            for (i, t) in resp.responses.iter().enumerate() {
                let p = &t.partitions[0];
                assert_eq!(p.error_code, 0, "v{version} {}", TOPICS[i]);
                assert_eq!(p.high_watermark, total);
                let mut records = p.records.clone().unwrap_or_default();
                let fetched = records.len();
                assert!(
                    fetched <= 25_000,
                    "v{version}: {fetched} bytes over the limit"
                );
                // Whole batches only: the decoder would fail on a torn one.
                let sets = RecordBatchDecoder::decode_all(&mut records)
                    .unwrap_or_else(|e| panic!("v{version}: undecodable records: {e}"));
                for set in sets {
                    for r in set.records {
                        assert_eq!(r.offset, next[i], "v{version} {}", TOPICS[i]);
                        let expected = value(TOPICS[i], r.offset as usize);
                        assert_eq!(r.value.as_ref(), Some(&expected), "v{version}");
                        next[i] += 1;
                    }
                }
            }
        }
        assert_eq!(next, [total, total], "v{version}");
    }
}
