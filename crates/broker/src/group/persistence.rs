//! `__consumer_offsets`: which partition a group lives in, Kafka's record schemas for offset
//! commits and group metadata, appending them, and reading them back at start.
//!
//! Keys start with a version that says what the record is (0/1 offset commit, 2 group
//! metadata); values start with their own schema version. Written: OffsetCommitValue v3 (v1 when
//! an expiry timestamp is given) and GroupMetadataValue v3, as Kafka does; read: every version
//! Kafka defines, including the flexible v4s, so a data directory stays readable by tools that
//! understand Kafka's format. A null value is a tombstone.

use super::config::GroupConfig;
use super::offsets::OffsetAndMetadata;
use crate::broker::Broker;
use anyhow::{Context, bail};
use bytes::{BufMut, Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::BTreeMap;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

const OFFSET_COMMIT_KEY_V0: i16 = 0;
const OFFSET_COMMIT_KEY_V1: i16 = 1;
const GROUP_METADATA_KEY: i16 = 2;

/// Java's `String.hashCode` over UTF-16 code units, so a group lands in the same partition as on
/// Kafka (tools compute it the same way).
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// Kafka's `Utils.abs(groupId.hashCode()) % partitions` (`Utils.abs(MIN_VALUE)` is 0).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// GroupMetadataValue, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// One record of `__consumer_offsets`, decoded. `None` values are tombstones.
#[derive(Debug, Clone, PartialEq)]
pub enum CoordinatorRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetAndMetadata>,
    },
    Group {
        group: String,
        value: Option<GroupValue>,
    },
    /// A consumer-group (KIP-848) record (`consumer_records`).
    Consumer(super::consumer_records::ConsumerRecord),
}

// ---------------------------------------------------------------- encoding

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len().min(i16::MAX as usize) as i16);
    buf.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + group.len() + topic.len());
    buf.put_i16(OFFSET_COMMIT_KEY_V1);
    put_string(&mut buf, group);
    put_string(&mut buf, topic);
    buf.put_i32(partition);
    buf.freeze()
}

pub fn offset_value(o: &OffsetAndMetadata) -> Bytes {
    let mut buf = BytesMut::with_capacity(32 + o.metadata.len());
    match o.expire_timestamp {
        // v1 is the only version with an expiry timestamp (OffsetCommit v2–4 retention).
        Some(expire) => {
            buf.put_i16(1);
            buf.put_i64(o.committed_offset);
            put_string(&mut buf, &o.metadata);
            buf.put_i64(o.commit_timestamp);
            buf.put_i64(expire);
        }
        None => {
            buf.put_i16(3);
            buf.put_i64(o.committed_offset);
            buf.put_i32(o.leader_epoch.unwrap_or(-1));
            put_string(&mut buf, &o.metadata);
            buf.put_i64(o.commit_timestamp);
        }
    }
    buf.freeze()
}

pub fn group_key(group: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + group.len());
    buf.put_i16(GROUP_METADATA_KEY);
    put_string(&mut buf, group);
    buf.freeze()
}

pub fn group_value(g: &GroupValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_i16(3);
    put_string(&mut buf, &g.protocol_type);
    buf.put_i32(g.generation);
    put_nullable_string(&mut buf, g.protocol.as_deref());
    put_nullable_string(&mut buf, g.leader.as_deref());
    buf.put_i64(g.current_state_timestamp);
    buf.put_i32(g.members.len() as i32);
    for m in &g.members {
        put_string(&mut buf, &m.member_id);
        put_nullable_string(&mut buf, m.group_instance_id.as_deref());
        put_string(&mut buf, &m.client_id);
        put_string(&mut buf, &m.client_host);
        buf.put_i32(m.rebalance_timeout);
        buf.put_i32(m.session_timeout);
        put_bytes(&mut buf, &m.subscription);
        put_bytes(&mut buf, &m.assignment);
    }
    buf.freeze()
}

/// One uncompressed v2 batch holding `records` (key, value-or-tombstone).
pub fn encode_batch(records: &[(Bytes, Option<Bytes>)], now_ms: i64) -> anyhow::Result<BytesMut> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now_ms,
            key: Some(k.clone()),
            value: v.clone(),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::with_capacity(128);
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .context("encoding a __consumer_offsets batch")?;
    Ok(buf)
}

// ---------------------------------------------------------------- decoding

/// Reads Kafka's schema primitives; `flexible` switches to the compact forms of the v4 schemas.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            flexible: false,
        }
    }

    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            bail!("record truncated at byte {} (wanted {n} more)", self.pos);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn i16(&mut self) -> anyhow::Result<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> anyhow::Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> anyhow::Result<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn uvarint(&mut self) -> anyhow::Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("varint too long")
    }

    /// Length of a string/bytes/array; `None` for null.
    fn length(&mut self, wide: bool) -> anyhow::Result<Option<usize>> {
        if self.flexible {
            let n = self.uvarint()?;
            return Ok(if n == 0 { None } else { Some(n as usize - 1) });
        }
        let n = if wide {
            self.i32()? as i64
        } else {
            self.i16()? as i64
        };
        Ok(if n < 0 { None } else { Some(n as usize) })
    }

    fn nullable_string(&mut self) -> anyhow::Result<Option<String>> {
        match self.length(false)? {
            None => Ok(None),
            Some(n) => {
                let b = self.take(n)?;
                Ok(Some(
                    std::str::from_utf8(b)
                        .context("string is not UTF-8")?
                        .to_string(),
                ))
            }
        }
    }

    fn string(&mut self) -> anyhow::Result<String> {
        Ok(self.nullable_string()?.unwrap_or_default())
    }

    fn bytes(&mut self) -> anyhow::Result<Bytes> {
        match self.length(true)? {
            None => Ok(Bytes::new()),
            Some(n) => Ok(Bytes::copy_from_slice(self.take(n)?)),
        }
    }

    fn array_len(&mut self) -> anyhow::Result<usize> {
        Ok(self.length(true)?.unwrap_or(0))
    }

    /// Tagged fields end every struct of a flexible version; none are known here, so skip them.
    fn skip_tags(&mut self) -> anyhow::Result<()> {
        if !self.flexible {
            return Ok(());
        }
        let n = self.uvarint()?;
        for _ in 0..n {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

/// Decode one record's key and value. `Ok(None)` for record types this coordinator does not
/// keep (e.g. share-group and streams-group records).
pub fn decode_record(
    key: &[u8],
    value: Option<&[u8]>,
) -> anyhow::Result<Option<CoordinatorRecord>> {
    let mut k = Reader::new(key);
    let key_version = k.i16()?;
    match key_version {
        OFFSET_COMMIT_KEY_V0 | OFFSET_COMMIT_KEY_V1 => {
            let group = k.string()?;
            let topic = k.string()?;
            let partition = k.i32()?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(Some(CoordinatorRecord::Offset {
                group,
                topic,
                partition,
                value,
            }))
        }
        GROUP_METADATA_KEY => {
            let group = k.string()?;
            let value = value.map(decode_group_value).transpose()?;
            Ok(Some(CoordinatorRecord::Group { group, value }))
        }
        3..=8 => Ok(super::consumer_records::decode(key_version, key, value)?
            .map(CoordinatorRecord::Consumer)),
        _ => Ok(None),
    }
}

fn decode_offset_value(bytes: &[u8]) -> anyhow::Result<OffsetAndMetadata> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=4).contains(&version) {
        bail!("unknown OffsetCommitValue version {version}");
    }
    r.flexible = version >= 4;
    let committed_offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    let expire_timestamp = if version == 1 { r.i64()? } else { -1 };
    r.skip_tags()?;
    Ok(OffsetAndMetadata {
        committed_offset,
        leader_epoch: (leader_epoch >= 0).then_some(leader_epoch),
        metadata,
        commit_timestamp,
        expire_timestamp: (expire_timestamp >= 0).then_some(expire_timestamp),
    })
}

fn decode_group_value(bytes: &[u8]) -> anyhow::Result<GroupValue> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=4).contains(&version) {
        bail!("unknown GroupMetadataValue version {version}");
    }
    r.flexible = version >= 4;
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let n = r.array_len()?;
    let mut members = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let session_or_rebalance = r.i32()?;
        let (rebalance_timeout, session_timeout) = if version >= 1 {
            (session_or_rebalance, r.i32()?)
        } else {
            (session_or_rebalance, session_or_rebalance)
        };
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.skip_tags()?;
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout,
            session_timeout,
            subscription,
            assignment,
        });
    }
    r.skip_tags()?;
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

// ---------------------------------------------------------------- the log

/// Why an append to `__consumer_offsets` failed, in the terms the coordinator answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendError {
    /// The batch is larger than the topic accepts (Kafka: INVALID_COMMIT_OFFSET_SIZE for commits).
    TooLarge,
    /// The partition is not hosted here or the write failed: the client retries elsewhere.
    Unavailable,
}

/// Where the coordinator writes its records. The broker's log in production; a vector in tests.
pub trait OffsetsLog {
    /// Partitions of `__consumer_offsets`, creating the topic on first use.
    fn partition_count(&self) -> i32;
    /// Append `records` to `partition` and return once they are in the log.
    fn append(
        &self,
        partition: i32,
        records: &[(Bytes, Option<Bytes>)],
        now_ms: i64,
    ) -> Result<(), AppendError>;
}

pub struct BrokerOffsetsLog<'a> {
    pub broker: &'a Broker,
    pub config: &'a GroupConfig,
}

impl BrokerOffsetsLog<'_> {
    /// Create `__consumer_offsets` if it does not exist: compacted, like Kafka's.
    pub fn ensure_topic(&self) -> i32 {
        if let Some(t) = self.broker.metadata.image().topic(OFFSETS_TOPIC) {
            return t.partitions.len() as i32;
        }
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert(
            "segment.bytes".to_string(),
            self.config.offsets_topic_segment_bytes.to_string(),
        );
        match self.broker.create_topic(
            OFFSETS_TOPIC,
            self.config.offsets_topic_num_partitions,
            configs,
        ) {
            Ok(t) => {
                tracing::info!(
                    partitions = t.partitions.len(),
                    "created the internal topic {OFFSETS_TOPIC}"
                );
                t.partitions.len() as i32
            }
            Err(e) => {
                // Most likely another request created it a moment ago.
                match self.broker.metadata.image().topic(OFFSETS_TOPIC) {
                    Some(t) => t.partitions.len() as i32,
                    None => {
                        tracing::error!(error = %e, "creating {OFFSETS_TOPIC} failed");
                        self.config.offsets_topic_num_partitions
                    }
                }
            }
        }
    }
}

impl OffsetsLog for BrokerOffsetsLog<'_> {
    fn partition_count(&self) -> i32 {
        self.ensure_topic()
    }

    fn append(
        &self,
        partition: i32,
        records: &[(Bytes, Option<Bytes>)],
        now_ms: i64,
    ) -> Result<(), AppendError> {
        self.ensure_topic();
        let Some(p) = self.broker.replicas.get(OFFSETS_TOPIC, partition) else {
            tracing::warn!(partition, "{OFFSETS_TOPIC} partition is not hosted here");
            return Err(AppendError::Unavailable);
        };
        // A follower's copy is written only by its fetcher: in a cluster, a node that lost the
        // leadership of this partition no longer coordinates its groups.
        if self.broker.config.is_cluster() && !p.is_leader() {
            tracing::warn!(partition, "{OFFSETS_TOPIC} partition is not led here");
            return Err(AppendError::Unavailable);
        }
        let mut batch = encode_batch(records, now_ms).map_err(|e| {
            tracing::error!(error = %e, "encoding coordinator records failed");
            AppendError::Unavailable
        })?;
        match p.log.append(&mut batch, p.leader_epoch(), now_ms) {
            Ok(_) => {
                self.broker.notify_appended();
                Ok(())
            }
            Err(e) => {
                tracing::warn!(partition, error = %e, "appending to {OFFSETS_TOPIC} failed");
                match e.kafka_error_code() {
                    10 | 18 => Err(AppendError::TooLarge),
                    _ => Err(AppendError::Unavailable),
                }
            }
        }
    }
}

/// Every coordinator record in `__consumer_offsets`, partition by partition in offset order.
/// Records that cannot be decoded are skipped with a warning rather than failing the start.
pub fn read_all(broker: &Broker) -> anyhow::Result<Vec<CoordinatorRecord>> {
    read_all_with_pending(broker).map(|(records, _)| records)
}

/// [`read_all`], with offsets committed inside transactions placed where their commit marker
/// is (aborted ones dropped), and those of transactions no marker decided yet returned apart,
/// by producer id (see `txn_offsets`).
pub fn read_all_with_pending(
    broker: &Broker,
) -> anyhow::Result<(
    Vec<CoordinatorRecord>,
    super::txn_offsets::PendingByProducer,
)> {
    read_with_pending(broker, None)
}

/// [`read_all_with_pending`] for one partition only (`Some`), as a coordinator taking over
/// that partition's leadership loads it.
pub fn read_with_pending(
    broker: &Broker,
    only: Option<i32>,
) -> anyhow::Result<(
    Vec<CoordinatorRecord>,
    super::txn_offsets::PendingByProducer,
)> {
    let mut out = Vec::new();
    let mut txn = super::txn_offsets::TxnOffsetLoader::default();
    let Some(topic) = broker.metadata.image().topic(OFFSETS_TOPIC).cloned() else {
        return Ok((out, txn.into_pending()));
    };
    for pm in &topic.partitions {
        if only.is_some_and(|o| o != pm.partition) {
            continue;
        }
        let Some(p) = broker.replicas.get(OFFSETS_TOPIC, pm.partition) else {
            continue;
        };
        let end = p.log.log_end_offset();
        let mut offset = p.log.log_start_offset();
        while offset < end {
            let slice = p
                .log
                .read(offset, 1 << 20, end, true)
                .with_context(|| format!("reading {OFFSETS_TOPIC}-{} at {offset}", pm.partition))?;
            if slice.records.is_empty() {
                break;
            }
            let mut rest = &slice.records[..];
            let mut next = offset;
            while rest.len() >= 61 {
                let base = i64::from_be_bytes(rest[0..8].try_into().unwrap_or([0; 8]));
                let len = i32::from_be_bytes(rest[8..12].try_into().unwrap_or([0; 4]));
                let last_delta = i32::from_be_bytes(rest[23..27].try_into().unwrap_or([0; 4]));
                let total = 12 + len.max(0) as usize;
                if total > rest.len() {
                    break;
                }
                let mut one = &rest[..total];
                match RecordBatchDecoder::decode(&mut one) {
                    Ok(set) => {
                        for r in set.records {
                            if r.offset < offset {
                                continue;
                            }
                            let Some(key) = r.key.as_deref() else {
                                continue;
                            };
                            if r.control {
                                if let Some(commit) = super::txn_offsets::marker_commits(key) {
                                    out.extend(txn.marker(pm.partition, r.producer_id, commit));
                                }
                                continue;
                            }
                            match decode_record(key, r.value.as_deref()) {
                                Ok(Some(rec)) if r.transactional => {
                                    out.extend(txn.hold(pm.partition, r.producer_id, rec));
                                }
                                Ok(Some(rec)) => {
                                    txn.observe(&rec);
                                    out.push(rec);
                                }
                                Ok(None) => {}
                                Err(e) => tracing::warn!(
                                    partition = pm.partition,
                                    offset = r.offset,
                                    error = %e,
                                    "skipping an undecodable {OFFSETS_TOPIC} record"
                                ),
                            }
                        }
                    }
                    Err(e) => tracing::warn!(
                        partition = pm.partition,
                        offset = base,
                        error = %e,
                        "skipping an undecodable {OFFSETS_TOPIC} batch"
                    ),
                }
                next = base + i64::from(last_delta) + 1;
                rest = &rest[total..];
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
    }
    Ok((out, txn.into_pending()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_kafka() {
        // Java: "test-group".hashCode() == 1024807136... verified against Utils.abs(hash) % 50.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
        // "polygenelubricants".hashCode() is Integer.MIN_VALUE in Java.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        for g in ["g", "my-group", "ключ"] {
            let p = partition_for(g, 50);
            assert!((0..50).contains(&p));
        }
    }

    #[test]
    fn offset_records_round_trip() {
        let o = OffsetAndMetadata {
            committed_offset: 42,
            leader_epoch: Some(3),
            metadata: "meta".into(),
            commit_timestamp: 1000,
            expire_timestamp: None,
        };
        let rec = decode_record(&offset_key("g", "t", 5), Some(&offset_value(&o)))
            .expect("decode")
            .expect("known");
        assert_eq!(
            rec,
            CoordinatorRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 5,
                value: Some(o.clone())
            }
        );
        let expiring = OffsetAndMetadata {
            expire_timestamp: Some(5000),
            leader_epoch: None,
            ..o
        };
        let rec = decode_record(&offset_key("g", "t", 5), Some(&offset_value(&expiring)))
            .expect("decode")
            .expect("known");
        assert!(matches!(rec, CoordinatorRecord::Offset { value: Some(v), .. } if v == expiring));
        let tomb = decode_record(&offset_key("g", "t", 5), None)
            .expect("decode")
            .expect("known");
        assert!(matches!(
            tomb,
            CoordinatorRecord::Offset { value: None, .. }
        ));
    }

    #[test]
    fn group_records_round_trip_and_batch_encodes() {
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 99,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 300000,
                session_timeout: 45000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let rec = decode_record(&group_key("grp"), Some(&group_value(&g)))
            .expect("decode")
            .expect("known");
        assert_eq!(
            rec,
            CoordinatorRecord::Group {
                group: "grp".into(),
                value: Some(g.clone())
            }
        );
        let batch = encode_batch(&[(group_key("grp"), Some(group_value(&g)))], 5).expect("batch");
        let set = RecordBatchDecoder::decode(&mut &batch[..]).expect("decodes");
        assert_eq!(set.records.len(), 1);
    }
}
