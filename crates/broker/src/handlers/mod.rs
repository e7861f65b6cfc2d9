//! Request routing by API key, and the table of what this broker serves.
//!
//! One module per API family. Each handler takes the decoded request and returns the response
//! body; this module owns header decoding, version checks and response framing.

mod admin;
mod alter_configs;
mod api_versions;
mod cluster;
mod configs;
mod consumer_group;
mod delete_records;
mod fetch;
mod group;
mod leader_check;
mod leader_hint;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod produce;
mod produce_errors;
mod raft_voters;
pub mod response;
mod sasl;
mod txn;
mod txn_admin;
mod txn_verification;

use crate::broker::Broker;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use response::{Response, SpliceEncoder};
use std::net::SocketAddr;
use std::sync::Arc;

pub struct ConnectionContext {
    pub peer: SocketAddr,
    pub listener: Arc<str>,
}

/// An API this broker serves: the versions it advertises and the lowest it accepts. They differ
/// only for Produce, where Kafka 4 advertises v0–2 (old librdkafka turns compression off without
/// them) but refuses them.
pub struct Supported {
    pub key: ApiKey,
    pub advertised_min: i16,
    pub min: i16,
    pub max: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> Supported {
    Supported {
        key,
        advertised_min: min,
        min,
        max,
    }
}

/// Exactly what is implemented, with Kafka 4.1's version ranges.
pub const SUPPORTED: &[Supported] = &[
    Supported {
        key: ApiKey::Produce,
        advertised_min: 0,
        min: 3,
        max: 13,
    },
    api(ApiKey::Fetch, 4, 18),
    api(ApiKey::ListOffsets, 1, 10),
    api(ApiKey::Metadata, 0, 13),
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::SaslAuthenticate, 0, 2),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DescribeCluster, 0, 2),
    api(ApiKey::DescribeQuorum, 0, 2),
    // KIP-853 voter changes (handlers::raft_voters).
    api(ApiKey::AddRaftVoter, 0, 0),
    api(ApiKey::RemoveRaftVoter, 0, 0),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::AlterPartitionReassignments, 0, 1),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::AddPartitionsToTxn, 0, 5),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    api(ApiKey::EndTxn, 0, 5),
    api(ApiKey::TxnOffsetCommit, 0, 5),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, 2),
    api(ApiKey::WriteTxnMarkers, 1, 1),
    // Replication: followers truncate with it after a leader change (handlers::offset_for_leader_epoch).
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    // Consumer groups, classic protocol (handlers::group).
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::DescribeGroups, 0, 6),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    // Consumer groups, consumer protocol (KIP-848; handlers::consumer_group).
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
];

fn supported(key: ApiKey) -> Option<&'static Supported> {
    SUPPORTED.iter().find(|s| s.key == key)
}

/// A request frame after header and body decoding.
pub enum Decoded {
    Request {
        header: RequestHeader,
        api_key: ApiKey,
        version: i16,
        request: Box<RequestKind>,
    },
    /// A complete response to send as is (the KIP-511 ApiVersions fallback).
    Immediate(BytesMut),
}

/// Decode one request frame (without the size prefix). `Err` means the connection must close,
/// which is what Kafka does for frames it cannot parse and versions it does not serve. Public
/// so the fuzz target can drive it with arbitrary bytes.
pub fn decode_request(frame: Bytes) -> Result<Decoded, String> {
    if frame.len() < 8 {
        return Err(format!(
            "request of {} bytes is too short for a header",
            frame.len()
        ));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| format!("unknown API key {raw_key}"))?;
    let Some(sup) = supported(api_key) else {
        return Err(format!("API {api_key:?} (key {raw_key}) is not supported"));
    };
    if version < sup.min || version > sup.max {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer a too-new ApiVersions in v0 form, with our ranges, so the client
            // can retry with a version we speak.
            return Ok(Decoded::Immediate(
                api_versions::unsupported_version_response(correlation_id),
            ));
        }
        return Err(format!(
            "{api_key:?} v{version} is not supported (versions {}..={})",
            sup.min, sup.max
        ));
    }
    let mut body = frame;
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut body, header_version)
        .map_err(|e| format!("malformed {api_key:?} v{version} request header: {e}"))?;
    let request = RequestKind::decode(api_key, &mut body, version)
        .map_err(|e| format!("malformed {api_key:?} v{version} request: {e:#}"))?;
    Ok(Decoded::Request {
        header,
        api_key,
        version,
        request: Box::new(request),
    })
}

/// Handle one request frame. `Ok(None)` means no response (acks=0); `Err` closes the connection.
pub async fn handle(
    broker: &Arc<Broker>,
    conn: &ConnectionContext,
    frame: Bytes,
) -> Result<Option<Response>, String> {
    let (header, api_key, version, request) = match decode_request(frame)? {
        Decoded::Immediate(response) => return Ok(Some(response.into())),
        Decoded::Request {
            header,
            api_key,
            version,
            request,
        } => (header, api_key, version, *request),
    };
    let correlation_id = header.correlation_id;
    let started = std::time::Instant::now();
    let fetch_from_follower = match &request {
        RequestKind::Fetch(r) => Some(fetch::from_follower(r, version)),
        _ => None,
    };
    let ctx = RequestContext {
        header,
        api_key,
        version,
        conn,
    };
    let mut ranges = Vec::new();
    let response = match request {
        RequestKind::ApiVersions(r) => Some(ResponseKind::ApiVersions(api_versions::handle(
            broker, &ctx, r,
        ))),
        RequestKind::Metadata(r) => Some(ResponseKind::Metadata(metadata::handle(broker, &ctx, r))),
        RequestKind::Produce(r) => produce::handle(broker, &ctx, r)
            .await
            .map(ResponseKind::Produce),
        RequestKind::Fetch(r) => {
            let answer = fetch::handle(broker, &ctx, r).await;
            ranges = answer.ranges;
            Some(ResponseKind::Fetch(answer.response))
        }
        RequestKind::OffsetForLeaderEpoch(r) => Some(ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(broker, &ctx, r),
        )),
        RequestKind::ListOffsets(r) => Some(ResponseKind::ListOffsets(list_offsets::handle(
            broker, &ctx, r,
        ))),
        RequestKind::CreateTopics(r) => Some(ResponseKind::CreateTopics(admin::create_topics(
            broker, &ctx, r,
        ))),
        RequestKind::DeleteTopics(r) => Some(ResponseKind::DeleteTopics(admin::delete_topics(
            broker, &ctx, r,
        ))),
        RequestKind::CreatePartitions(r) => Some(ResponseKind::CreatePartitions(
            admin::create_partitions(broker, &ctx, r),
        )),
        RequestKind::DescribeCluster(r) => Some(ResponseKind::DescribeCluster(
            cluster::describe_cluster(broker, &ctx, r),
        )),
        RequestKind::DescribeQuorum(r) => Some(ResponseKind::DescribeQuorum(
            cluster::describe_quorum(broker, &ctx, r),
        )),
        RequestKind::AddRaftVoter(r) => Some(ResponseKind::AddRaftVoter(
            raft_voters::add_raft_voter(broker, &ctx, r),
        )),
        RequestKind::RemoveRaftVoter(r) => Some(ResponseKind::RemoveRaftVoter(
            raft_voters::remove_raft_voter(broker, &ctx, r),
        )),
        RequestKind::ElectLeaders(r) => Some(ResponseKind::ElectLeaders(cluster::elect_leaders(
            broker, &ctx, r,
        ))),
        RequestKind::AlterPartitionReassignments(r) => {
            Some(ResponseKind::AlterPartitionReassignments(
                cluster::alter_partition_reassignments(broker, &ctx, r),
            ))
        }
        RequestKind::ListPartitionReassignments(r) => {
            Some(ResponseKind::ListPartitionReassignments(
                cluster::list_partition_reassignments(broker, &ctx, r),
            ))
        }
        RequestKind::AlterConfigs(r) => Some(ResponseKind::AlterConfigs(
            alter_configs::alter_configs(broker, &ctx, r),
        )),
        RequestKind::IncrementalAlterConfigs(r) => Some(ResponseKind::IncrementalAlterConfigs(
            alter_configs::incremental_alter_configs(broker, &ctx, r),
        )),
        RequestKind::DeleteRecords(r) => Some(ResponseKind::DeleteRecords(delete_records::handle(
            broker, &ctx, r,
        ))),
        RequestKind::DescribeConfigs(r) => Some(ResponseKind::DescribeConfigs(
            configs::describe_configs(broker, &ctx, r),
        )),
        RequestKind::InitProducerId(r) => Some(ResponseKind::InitProducerId(
            txn::init_producer_id(broker, &ctx, r).await,
        )),
        RequestKind::AddPartitionsToTxn(r) => Some(ResponseKind::AddPartitionsToTxn(
            txn::add_partitions_to_txn(broker, &ctx, r).await,
        )),
        RequestKind::AddOffsetsToTxn(r) => Some(ResponseKind::AddOffsetsToTxn(
            txn::add_offsets_to_txn(broker, &ctx, r).await,
        )),
        RequestKind::TxnOffsetCommit(r) => Some(ResponseKind::TxnOffsetCommit(
            txn::txn_offset_commit(broker, &ctx, r).await,
        )),
        RequestKind::EndTxn(r) => Some(ResponseKind::EndTxn(txn::end_txn(broker, &ctx, r).await)),
        RequestKind::FindCoordinator(r) => Some(ResponseKind::FindCoordinator(
            group::find_coordinator(broker, &ctx, r),
        )),
        RequestKind::JoinGroup(r) => Some(ResponseKind::JoinGroup(
            group::join_group(broker, &ctx, r).await,
        )),
        RequestKind::SyncGroup(r) => Some(ResponseKind::SyncGroup(
            group::sync_group(broker, &ctx, r).await,
        )),
        RequestKind::Heartbeat(r) => {
            Some(ResponseKind::Heartbeat(group::heartbeat(broker, &ctx, r)))
        }
        RequestKind::LeaveGroup(r) => Some(ResponseKind::LeaveGroup(group::leave_group(
            broker, &ctx, r,
        ))),
        RequestKind::OffsetCommit(r) => Some(ResponseKind::OffsetCommit(
            group::offset_commit(broker, &ctx, r).await,
        )),
        RequestKind::OffsetFetch(r) => Some(ResponseKind::OffsetFetch(group::offset_fetch(
            broker, &ctx, r,
        ))),
        RequestKind::ListGroups(r) => Some(ResponseKind::ListGroups(group::list_groups(
            broker, &ctx, r,
        ))),
        RequestKind::DescribeGroups(r) => Some(ResponseKind::DescribeGroups(
            group::describe_groups(broker, &ctx, r),
        )),
        RequestKind::DeleteGroups(r) => Some(ResponseKind::DeleteGroups(group::delete_groups(
            broker, &ctx, r,
        ))),
        RequestKind::OffsetDelete(r) => Some(ResponseKind::OffsetDelete(group::offset_delete(
            broker, &ctx, r,
        ))),
        RequestKind::ConsumerGroupHeartbeat(r) => Some(ResponseKind::ConsumerGroupHeartbeat(
            consumer_group::consumer_group_heartbeat(broker, &ctx, r),
        )),
        RequestKind::ConsumerGroupDescribe(r) => Some(ResponseKind::ConsumerGroupDescribe(
            consumer_group::consumer_group_describe(broker, &ctx, r),
        )),
        RequestKind::DescribeProducers(r) => Some(ResponseKind::DescribeProducers(
            txn_admin::describe_producers(broker, &ctx, r),
        )),
        RequestKind::DescribeTransactions(r) => Some(ResponseKind::DescribeTransactions(
            txn_admin::describe_transactions(broker, &ctx, r),
        )),
        RequestKind::ListTransactions(r) => Some(ResponseKind::ListTransactions(
            txn_admin::list_transactions(broker, &ctx, r),
        )),
        RequestKind::WriteTxnMarkers(r) => Some(ResponseKind::WriteTxnMarkers(
            txn_admin::write_txn_markers(broker, &ctx, r),
        )),
        RequestKind::SaslHandshake(r) => Some(ResponseKind::SaslHandshake(sasl::handshake(r))),
        RequestKind::SaslAuthenticate(r) => {
            Some(ResponseKind::SaslAuthenticate(sasl::authenticate(r)))
        }
        other => {
            return Err(format!(
                "no handler for {:?}",
                std::mem::discriminant(&other)
            ));
        }
    };
    broker
        .metrics
        .requests
        .observe(api_key, fetch_from_follower, started.elapsed());
    match response {
        Some(body) => encode_response(api_key, version, correlation_id, &body, ranges).map(Some),
        None => Ok(None),
    }
}

pub struct RequestContext<'a> {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub version: i16,
    pub conn: &'a ConnectionContext,
}

/// Size prefix, response header, body; `ranges` are the file ranges a fetch body's
/// placeholder records stand for.
fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    ranges: Vec<strom_log::FileRange>,
) -> Result<Response, String> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    // A fetch answer whose records could not be spliced carries megabytes: sized up front, the
    // buffer is not regrown (and recopied) a dozen times on the way.
    let body_size = match body {
        // The spliced ranges are not copied into it.
        ResponseKind::Fetch(fetch) => fetch
            .compute_size(version)
            .unwrap_or(0)
            .saturating_sub(ranges.iter().map(|r| r.len()).sum()),
        _ => 0,
    };
    let mut out = BytesMut::with_capacity(256 + body_size);
    out.put_i32(0);
    header
        .encode(&mut out, header_version)
        .map_err(|e| format!("encoding {api_key:?} response header: {e}"))?;
    let mut encoded = match body {
        ResponseKind::Fetch(fetch) if !ranges.is_empty() => {
            let mut encoder = SpliceEncoder::new(out, ranges);
            fetch
                .encode(&mut encoder, version)
                .map_err(|e| format!("encoding {api_key:?} v{version} response: {e:#}"))?;
            if encoder.unclaimed() > 0 {
                return Err(format!(
                    "encoding {api_key:?} v{version} response: {} record ranges not placed",
                    encoder.unclaimed()
                ));
            }
            Response {
                bytes: encoder.out,
                splices: encoder.splices,
            }
        }
        _ => {
            body.encode(&mut out, version)
                .map_err(|e| format!("encoding {api_key:?} v{version} response: {e:#}"))?;
            Response::from(out)
        }
    };
    let len = i32::try_from(encoded.wire_len() - 4)
        .map_err(|_| format!("{api_key:?} v{version} response over 2 GiB"))?;
    encoded.bytes[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(encoded)
}

/// Milliseconds since the epoch, for LogAppendTime and timestamps in answers.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
