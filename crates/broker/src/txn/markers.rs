//! Transaction markers: the commit or abort control batch that ends a transaction on each of its
//! partitions. A partition led here gets it at once; one led by another broker gets it through
//! WriteTxnMarkers, sent in the background with retries until every partition has it (Kafka's
//! TransactionMarkerChannelManager). Only then does the coordinator write CompleteCommit /
//! CompleteAbort; until then the id answers CONCURRENT_TRANSACTIONS, which clients retry.
//!
//! Owns the marker writes and the WriteTxnMarkers client side. Must not touch the coordinator's
//! state except through `TransactionCoordinator::finish_markers`.

use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::handlers::now_ms;
use crate::replica::client::LeaderConnection;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic, WriteTxnMarkersRequest,
};
use kafka_protocol::messages::write_txn_markers_response::WriteTxnMarkersResponse;
use kafka_protocol::messages::{ApiKey, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use strom_log::TxnMarker;

/// The only WriteTxnMarkers version strom speaks (the flexible one Kafka 3+ brokers send).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Markers still to write for one transaction end.
pub(super) struct MarkerJob {
    pub transactional_id: String,
    pub marker: TxnMarker,
    pub partitions: BTreeSet<(String, i32)>,
}

/// Appends `marker` to `topic`-`partition` when this broker leads it; otherwise the wire error:
/// UNKNOWN_TOPIC_OR_PARTITION when the partition does not exist, NOT_LEADER_OR_FOLLOWER when
/// another broker leads it, the log's code when the append is refused.
pub(crate) fn append_local(
    broker: &Broker,
    topic: &str,
    partition: i32,
    marker: &TxnMarker,
) -> Result<(), i16> {
    let Some(p) = broker.replicas.get(topic, partition) else {
        let exists = broker
            .metadata
            .image()
            .topic(topic)
            .is_some_and(|t| partition >= 0 && (partition as usize) < t.partitions.len());
        return Err(if exists {
            ErrorCode::NotLeaderOrFollower.code()
        } else {
            ErrorCode::UnknownTopicOrPartition.code()
        });
    };
    // A follower's log is written by its fetcher alone.
    if broker.config.is_cluster() && !p.is_leader() {
        return Err(ErrorCode::NotLeaderOrFollower.code());
    }
    p.log
        .append_marker(marker, p.leader_epoch(), now_ms())
        .map_err(|e| {
            tracing::error!(topic, partition, error = %e, "writing a transaction marker failed");
            e.kafka_error_code()
        })?;
    broker.on_txn_marker(topic, partition, marker.producer_id, marker.commit);
    Ok(())
}

/// Sends the rest of `job`'s markers from a background task (needs a tokio runtime).
pub(super) fn spawn(broker: &Arc<Broker>, job: MarkerJob) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::error!(transactional_id = %job.transactional_id, "no runtime to send transaction markers from");
        return;
    };
    handle.spawn(run(broker.clone(), job));
}

async fn run(broker: Arc<Broker>, mut job: MarkerJob) {
    let mut backoff = Duration::from_millis(20);
    loop {
        // A coordinator that lost the id stops: the new one resumes from the Prepare record.
        if broker
            .txn
            .check_coordinator(&broker, &job.transactional_id)
            .is_err()
        {
            tracing::info!(transactional_id = %job.transactional_id, "no longer its coordinator; leaving its markers to the new one");
            return;
        }
        let image = broker.metadata.image();
        // A partition deleted since it joined the transaction has nothing left to mark.
        job.partitions.retain(|(t, p)| {
            image
                .topic(t)
                .is_some_and(|m| *p >= 0 && (*p as usize) < m.partitions.len())
        });
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        for (t, p) in &job.partitions {
            let leader = image
                .topic(t)
                .and_then(|m| m.partitions.iter().find(|pm| pm.partition == *p))
                .map_or(-1, |pm| pm.leader);
            by_leader.entry(leader).or_default().push((t.clone(), *p));
        }
        let mut written = Vec::new();
        for (leader, partitions) in by_leader {
            if leader < 0 {
                continue; // no leader yet: try again after the backoff
            }
            if leader == broker.node_id() {
                for (t, p) in partitions {
                    if append_local(&broker, &t, p, &job.marker).is_ok() {
                        written.push((t, p));
                    }
                }
                broker.notify_appended();
                continue;
            }
            match send(&broker, leader, &job.marker, &partitions).await {
                Ok(done) => written.extend(done),
                Err(e) => {
                    tracing::debug!(leader, transactional_id = %job.transactional_id, error = %e, "WriteTxnMarkers failed; retrying")
                }
            }
        }
        for tp in &written {
            job.partitions.remove(tp);
        }
        if job.partitions.is_empty() {
            broker.txn.finish_markers(&broker, &job);
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One WriteTxnMarkers to `leader`; the partitions it wrote.
async fn send(
    broker: &Broker,
    leader: i32,
    marker: &TxnMarker,
    partitions: &[(String, i32)],
) -> Result<Vec<(String, i32)>, String> {
    let mut conn = LeaderConnection::to_broker(broker, leader, "txn-marker-sender").await?;
    let topics = crate::replica::client::by_topic(partitions);
    let req = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            ),
    ]);
    let resp: WriteTxnMarkersResponse = conn
        .send(ApiKey::WriteTxnMarkers, WRITE_TXN_MARKERS_VERSION, &req)
        .await?;
    let mut done = Vec::new();
    for m in resp.markers {
        for t in m.topics {
            for p in t.partitions {
                if p.error_code == 0 {
                    done.push((t.name.0.to_string(), p.partition_index));
                } else {
                    tracing::debug!(topic = %t.name.0, partition = p.partition_index, leader, code = p.error_code, "marker not written");
                }
            }
        }
    }
    Ok(done)
}
