//! Transactions misused on the wire get Kafka's exact error codes (issue: transactions, bad
//! input): wrong epochs, unknown producer ids, a batch for a partition never added, ending a
//! transaction that is not open, an out-of-range timeout, and a commit after the broker aborted
//! a timed-out transaction.

mod common;

use bytes::{Bytes, BytesMut};
use common::{broker, call, create_topic};
use indexmap::IndexMap;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProduceResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::net::SocketAddr;

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const PRODUCER_FENCED: i16 = 90;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn init(addr: SocketAddr, txn: &str, timeout_ms: i32) -> InitProducerIdResponse {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(txn))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    call(addr, ApiKey::InitProducerId, 4, &req).await
}

/// AddPartitionsToTxn v3 (the client form) for `topic`-0; the partition's error code.
async fn add_partition(addr: SocketAddr, txn: &str, pid: i64, epoch: i16, topic: &str) -> i16 {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(txn)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![0]),
        ]);
    let resp: AddPartitionsToTxnResponse = call(addr, ApiKey::AddPartitionsToTxn, 3, &req).await;
    resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

async fn end(addr: SocketAddr, txn: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(txn)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let resp: EndTxnResponse = call(addr, ApiKey::EndTxn, 3, &req).await;
    resp.error_code
}

fn txn_batch(pid: i64, epoch: i16, sequence: i32) -> Bytes {
    let record = Record {
        transactional: true,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: pid,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from_static(b"v")),
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
    buf.freeze()
}

/// Produce v9 (transaction protocol v1) of one transactional batch to `topic`-0.
async fn produce(addr: SocketAddr, txn: &str, topic: &str, records: Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s(txn))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let resp: ProduceResponse = call(addr, ApiKey::Produce, 9, &req).await;
    resp.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misused_transactions_get_kafkas_error_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = broker(dir.path(), &[]).await;
    let addr = server.local_addrs[0];
    assert_eq!(create_topic(addr, "t").await, 0);
    assert_eq!(create_topic(addr, "u").await, 0);

    assert_eq!(
        init(addr, "bad-timeout", 900_001).await.error_code,
        INVALID_TRANSACTION_TIMEOUT
    );
    let ids = init(addr, "tx", 60_000).await;
    assert_eq!(ids.error_code, 0);
    let (pid, epoch) = (ids.producer_id.0, ids.producer_epoch);

    // Ending a transaction that was never begun.
    assert_eq!(end(addr, "tx", pid, epoch, true).await, INVALID_TXN_STATE);
    // An id the coordinator never gave out.
    assert_eq!(
        add_partition(addr, "tx", pid + 1000, epoch, "t").await,
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        end(addr, "never-initialised", pid, epoch, true).await,
        INVALID_PRODUCER_ID_MAPPING
    );
    // Another epoch than the current one.
    assert_eq!(
        add_partition(addr, "tx", pid, epoch + 1, "t").await,
        PRODUCER_FENCED
    );

    assert_eq!(add_partition(addr, "tx", pid, epoch, "t").await, 0);
    assert_eq!(produce(addr, "tx", "t", txn_batch(pid, epoch, 0)).await, 0);
    // A partition the transaction never added (KIP-890 verification).
    assert_eq!(
        produce(addr, "tx", "u", txn_batch(pid, epoch, 0)).await,
        INVALID_TXN_STATE
    );
    // A stale epoch ending it.
    assert_eq!(end(addr, "tx", pid, epoch - 1, true).await, PRODUCER_FENCED);
    assert_eq!(end(addr, "tx", pid, epoch, true).await, 0);
    // The first batch of the next transaction, from a fenced (older) epoch, is refused.
    let fenced = init(addr, "tx", 60_000).await;
    assert_eq!(fenced.producer_epoch, epoch + 1);
    assert_eq!(
        produce(addr, "tx", "t", txn_batch(pid, epoch, 1)).await,
        INVALID_PRODUCER_EPOCH
    );
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_after_the_broker_aborted_a_timed_out_transaction_is_fenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = broker(dir.path(), &[]).await;
    let addr = server.local_addrs[0];
    assert_eq!(create_topic(addr, "t").await, 0);
    let ids = init(addr, "slow", 200).await;
    let (pid, epoch) = (ids.producer_id.0, ids.producer_epoch);
    assert_eq!(add_partition(addr, "slow", pid, epoch, "t").await, 0);
    assert_eq!(
        produce(addr, "slow", "t", txn_batch(pid, epoch, 0)).await,
        0
    );
    // The broker checks every second; the timeout is 200 ms.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(end(addr, "slow", pid, epoch, true).await, PRODUCER_FENCED);
    server.shutdown().await.expect("shutdown");
}
