//! `strom transactions`, like kafka-transactions.sh: list and describe transactions, show the
//! producers of a partition, find hanging transactions and abort one so it stops pinning the
//! last stable offset.

use crate::common::ConnectArgs;
use crate::wire::WireClient;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_producers_request::{
    DescribeProducersRequest, TopicRequest,
};
use kafka_protocol::messages::describe_producers_response::{
    DescribeProducersResponse, ProducerState,
};
use kafka_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use kafka_protocol::messages::describe_transactions_response::DescribeTransactionsResponse;
use kafka_protocol::messages::list_transactions_request::ListTransactionsRequest;
use kafka_protocol::messages::list_transactions_response::ListTransactionsResponse;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic, WriteTxnMarkersRequest,
};
use kafka_protocol::messages::write_txn_markers_response::WriteTxnMarkersResponse;
use kafka_protocol::messages::{ApiKey, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Subcommand, Debug)]
pub enum TransactionsCommand {
    /// List every transactional id the cluster knows, with its producer id and state.
    List(ListArgs),
    /// Describe one transactional id: producer, epoch, state, partitions, start time.
    Describe(DescribeArgs),
    /// Show the producers a partition has state for (DescribeProducers).
    DescribeProducers(PartitionArgs),
    /// Find open transactions that have run longer than the maximum transaction timeout.
    FindHanging(FindHangingArgs),
    /// Abort an open transaction on one partition by writing an abort marker.
    Abort(AbortArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[arg(long = "transactional-id")]
    transactional_id: String,
}

#[derive(Args, Debug)]
pub struct PartitionArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[arg(long)]
    topic: String,
    #[arg(long)]
    partition: i32,
}

#[derive(Args, Debug)]
pub struct FindHangingArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[arg(long)]
    topic: String,
    /// Partitions to look at (default: 0).
    #[arg(long, num_args = 1.., default_value = "0")]
    partition: Vec<i32>,
    /// Minutes after which an open transaction counts as hanging (Kafka's default: 15).
    #[arg(long = "max-transaction-timeout", default_value_t = 15)]
    max_transaction_timeout: i64,
}

#[derive(Args, Debug)]
pub struct AbortArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[arg(long)]
    topic: String,
    #[arg(long)]
    partition: i32,
    /// The first offset of the transaction to abort (its producer is looked up).
    #[arg(long = "start-offset", conflicts_with_all = ["producer_id", "producer_epoch"])]
    start_offset: Option<i64>,
    #[arg(long = "producer-id", requires = "producer_epoch")]
    producer_id: Option<i64>,
    #[arg(long = "producer-epoch")]
    producer_epoch: Option<i16>,
    #[arg(long = "coordinator-epoch", default_value_t = 0)]
    coordinator_epoch: i32,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn run(cmd: TransactionsCommand) -> anyhow::Result<()> {
    match cmd {
        TransactionsCommand::List(a) => list(a),
        TransactionsCommand::Describe(a) => describe(a),
        TransactionsCommand::DescribeProducers(a) => describe_producers(a),
        TransactionsCommand::FindHanging(a) => find_hanging(a),
        TransactionsCommand::Abort(a) => abort(a),
    }
}

fn list(a: ListArgs) -> anyhow::Result<()> {
    let mut c = WireClient::connect(&a.connect.bootstrap_server)?;
    let resp: ListTransactionsResponse = c.send(
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest::default().with_duration_filter(-1),
    )?;
    if resp.error_code != 0 {
        bail!(
            "ListTransactions failed with error code {}",
            resp.error_code
        );
    }
    println!("TransactionalId\tProducerId\tTransactionState");
    for t in resp.transaction_states {
        println!(
            "{}\t{}\t{}",
            t.transactional_id.as_str(),
            t.producer_id.0,
            t.transaction_state.as_str()
        );
    }
    Ok(())
}

fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let mut c = WireClient::connect(&a.connect.bootstrap_server)?;
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s(&a.transactional_id))]);
    let resp: DescribeTransactionsResponse = c.send(ApiKey::DescribeTransactions, 0, &req)?;
    let t = resp
        .transaction_states
        .into_iter()
        .next()
        .context("empty DescribeTransactions response")?;
    if t.error_code != 0 {
        bail!(
            "transactional id {} not found (error code {})",
            a.transactional_id,
            t.error_code
        );
    }
    let partitions: Vec<String> = t
        .topics
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |p| format!("{}-{p}", tp.topic.0.as_str()))
        })
        .collect();
    let duration = if t.transaction_start_time_ms >= 0 {
        (now_ms() - t.transaction_start_time_ms).to_string()
    } else {
        "None".into()
    };
    println!(
        "TransactionalId\tProducerId\tProducerEpoch\tTransactionState\tTransactionTimeoutMs\tCurrentTransactionStartTimeMs\tTransactionDurationMs\tTopicPartitions"
    );
    println!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        t.transactional_id.as_str(),
        t.producer_id.0,
        t.producer_epoch,
        t.transaction_state.as_str(),
        t.transaction_timeout_ms,
        t.transaction_start_time_ms,
        duration,
        partitions.join(",")
    );
    Ok(())
}

fn producers(
    c: &mut WireClient,
    topic: &str,
    partition: i32,
) -> anyhow::Result<Vec<ProducerState>> {
    let req = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![partition]),
    ]);
    let resp: DescribeProducersResponse = c.send(ApiKey::DescribeProducers, 0, &req)?;
    let p = resp
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .next()
        .context("empty DescribeProducers response")?;
    if p.error_code != 0 {
        bail!(
            "describing producers of {topic}-{partition} failed with error code {}",
            p.error_code
        );
    }
    Ok(p.active_producers)
}

fn describe_producers(a: PartitionArgs) -> anyhow::Result<()> {
    let mut c = WireClient::connect(&a.connect.bootstrap_server)?;
    println!(
        "ProducerId\tProducerEpoch\tLatestCoordinatorEpoch\tLastSequence\tLastTimestamp\tCurrentTransactionStartOffset"
    );
    for p in producers(&mut c, &a.topic, a.partition)? {
        let start = if p.current_txn_start_offset >= 0 {
            p.current_txn_start_offset.to_string()
        } else {
            "None".into()
        };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            p.producer_id.0,
            p.producer_epoch,
            p.coordinator_epoch,
            p.last_sequence,
            p.last_timestamp,
            start
        );
    }
    Ok(())
}

fn find_hanging(a: FindHangingArgs) -> anyhow::Result<()> {
    let mut c = WireClient::connect(&a.connect.bootstrap_server)?;
    let max_ms = a.max_transaction_timeout * 60_000;
    println!(
        "Topic\tPartition\tProducerId\tProducerEpoch\tCoordinatorEpoch\tStartOffset\tLastTimestamp\tDuration(min)"
    );
    let now = now_ms();
    for &partition in &a.partition {
        for p in producers(&mut c, &a.topic, partition)? {
            if p.current_txn_start_offset < 0
                || p.last_timestamp < 0
                || now - p.last_timestamp <= max_ms
            {
                continue;
            }
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                a.topic,
                partition,
                p.producer_id.0,
                p.producer_epoch,
                p.coordinator_epoch,
                p.current_txn_start_offset,
                p.last_timestamp,
                (now - p.last_timestamp) / 60_000
            );
        }
    }
    Ok(())
}

fn abort(a: AbortArgs) -> anyhow::Result<()> {
    let mut c = WireClient::connect(&a.connect.bootstrap_server)?;
    let (producer_id, producer_epoch) = match (a.start_offset, a.producer_id, a.producer_epoch) {
        (Some(start), _, _) => {
            let found = producers(&mut c, &a.topic, a.partition)?
                .into_iter()
                .find(|p| p.current_txn_start_offset == start)
                .with_context(|| {
                    format!(
                        "no open transaction starts at offset {start} in {}-{} (--start-offset)",
                        a.topic, a.partition
                    )
                })?;
            (found.producer_id.0, found.producer_epoch as i16)
        }
        (None, Some(pid), Some(epoch)) => (pid, epoch),
        _ => bail!("give either --start-offset or --producer-id with --producer-epoch"),
    };
    let req = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_transaction_result(false)
            .with_coordinator_epoch(a.coordinator_epoch)
            .with_topics(vec![
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(s(&a.topic)))
                    .with_partition_indexes(vec![a.partition]),
            ]),
    ]);
    let resp: WriteTxnMarkersResponse = c.send(ApiKey::WriteTxnMarkers, 1, &req)?;
    let code = resp
        .markers
        .iter()
        .flat_map(|m| m.topics.iter().flat_map(|t| t.partitions.iter()))
        .map(|p| p.error_code)
        .next()
        .context("empty WriteTxnMarkers response")?;
    if code != 0 {
        bail!("writing the abort marker failed with error code {code}");
    }
    println!(
        "Aborted the transaction of producer {producer_id} (epoch {producer_epoch}) on {}-{}",
        a.topic, a.partition
    );
    Ok(())
}
