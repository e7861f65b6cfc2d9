//! The `__consumer_offsets` records of consumer groups (KIP-848), in Kafka's schemas.
//!
//! Keys are non-flexible and start with their record type: 3 ConsumerGroupMetadata, 4
//! ConsumerGroupPartitionMetadata (read as a tombstone target only; Kafka 4.1 stopped writing
//! it), 5 ConsumerGroupMemberMetadata, 6 ConsumerGroupTargetAssignmentMetadata, 7
//! ConsumerGroupTargetAssignmentMember, 8 ConsumerGroupCurrentMemberAssignment. Values are
//! version 0 of flexible schemas (compact strings and arrays, tagged fields, which are skipped
//! on read). This module only encodes and decodes; `consumer_group` decides what to write.

use super::assignor::Assignment;
use anyhow::{Context, bail};
use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

pub const GROUP_METADATA_KEY: i16 = 3;
pub const PARTITION_METADATA_KEY: i16 = 4;
pub const MEMBER_METADATA_KEY: i16 = 5;
pub const TARGET_METADATA_KEY: i16 = 6;
pub const TARGET_MEMBER_KEY: i16 = 7;
pub const CURRENT_ASSIGNMENT_KEY: i16 = 8;

/// ConsumerGroupMemberMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// ConsumerGroupCurrentMemberAssignmentValue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// Kafka's MemberState: 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: i8,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

/// One consumer-group record; `None` values are tombstones.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumerRecord {
    GroupMetadata {
        group: String,
        epoch: Option<i32>,
    },
    MemberMetadata {
        group: String,
        member: String,
        value: Option<MemberMetadataValue>,
    },
    TargetMetadata {
        group: String,
        assignment_epoch: Option<i32>,
    },
    TargetMember {
        group: String,
        member: String,
        value: Option<Assignment>,
    },
    CurrentAssignment {
        group: String,
        member: String,
        value: Option<CurrentAssignmentValue>,
    },
}

// ---------------------------------------------------------------- encoding

fn put_string(buf: &mut BytesMut, s: &str) {
    let n = s.len().min(i16::MAX as usize);
    buf.put_i16(n as i16);
    buf.put_slice(&s.as_bytes()[..n]);
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_compact_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(buf, 0),
        Some(s) => {
            put_uvarint(buf, s.len() as u64 + 1);
            buf.put_slice(s.as_bytes());
        }
    }
}

fn put_topic_partitions(buf: &mut BytesMut, a: &Assignment) {
    put_uvarint(buf, a.len() as u64 + 1);
    for (topic, parts) in a {
        buf.put_slice(topic.as_bytes());
        put_uvarint(buf, parts.len() as u64 + 1);
        for p in parts {
            buf.put_i32(*p);
        }
        put_uvarint(buf, 0);
    }
}

fn key(kind: i16, group: &str, member: Option<&str>) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + group.len());
    buf.put_i16(kind);
    put_string(&mut buf, group);
    if let Some(m) = member {
        put_string(&mut buf, m);
    }
    buf.freeze()
}

pub fn group_metadata_key(group: &str) -> Bytes {
    key(GROUP_METADATA_KEY, group, None)
}

pub fn partition_metadata_key(group: &str) -> Bytes {
    key(PARTITION_METADATA_KEY, group, None)
}

pub fn member_metadata_key(group: &str, member: &str) -> Bytes {
    key(MEMBER_METADATA_KEY, group, Some(member))
}

pub fn target_metadata_key(group: &str) -> Bytes {
    key(TARGET_METADATA_KEY, group, None)
}

pub fn target_member_key(group: &str, member: &str) -> Bytes {
    key(TARGET_MEMBER_KEY, group, Some(member))
}

pub fn current_assignment_key(group: &str, member: &str) -> Bytes {
    key(CURRENT_ASSIGNMENT_KEY, group, Some(member))
}

/// ConsumerGroupMetadataValue and ConsumerGroupTargetAssignmentMetadataValue: one int32.
pub fn epoch_value(epoch: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(8);
    buf.put_i16(0);
    buf.put_i32(epoch);
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

pub fn member_metadata_value(v: &MemberMetadataValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(0);
    put_compact_string(&mut buf, v.instance_id.as_deref());
    put_compact_string(&mut buf, v.rack_id.as_deref());
    put_compact_string(&mut buf, Some(&v.client_id));
    put_compact_string(&mut buf, Some(&v.client_host));
    put_uvarint(&mut buf, v.subscribed_topic_names.len() as u64 + 1);
    for t in &v.subscribed_topic_names {
        put_compact_string(&mut buf, Some(t));
    }
    put_compact_string(&mut buf, v.subscribed_topic_regex.as_deref());
    buf.put_i32(v.rebalance_timeout_ms);
    put_compact_string(&mut buf, v.server_assignor.as_deref());
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

pub fn target_member_value(a: &Assignment) -> Bytes {
    let mut buf = BytesMut::with_capacity(32);
    buf.put_i16(0);
    put_topic_partitions(&mut buf, a);
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

pub fn current_assignment_value(v: &CurrentAssignmentValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(48);
    buf.put_i16(0);
    buf.put_i32(v.member_epoch);
    buf.put_i32(v.previous_member_epoch);
    buf.put_i8(v.state);
    put_topic_partitions(&mut buf, &v.assigned);
    put_topic_partitions(&mut buf, &v.pending_revocation);
    put_uvarint(&mut buf, 0);
    buf.freeze()
}

// ---------------------------------------------------------------- decoding

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            bail!("record truncated at byte {} (wanted {n} more)", self.pos);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn i8(&mut self) -> anyhow::Result<i8> {
        Ok(self.take(1)?[0] as i8)
    }

    fn i16(&mut self) -> anyhow::Result<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> anyhow::Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
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

    fn utf8(b: &[u8]) -> anyhow::Result<String> {
        Ok(std::str::from_utf8(b)
            .context("string is not UTF-8")?
            .to_string())
    }

    fn string(&mut self) -> anyhow::Result<String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(String::new());
        }
        Self::utf8(self.take(n as usize)?)
    }

    fn compact_string(&mut self) -> anyhow::Result<Option<String>> {
        match self.uvarint()? {
            0 => Ok(None),
            n => Ok(Some(Self::utf8(self.take(n as usize - 1)?)?)),
        }
    }

    fn compact_len(&mut self) -> anyhow::Result<usize> {
        let n = self.uvarint()?;
        let n = n.saturating_sub(1) as usize;
        // Every element takes at least one byte: a bigger count is corrupt, not a reason to
        // allocate.
        if n > self.buf.len() - self.pos {
            bail!("array of {n} elements in a {}-byte record", self.buf.len());
        }
        Ok(n)
    }

    fn skip_tags(&mut self) -> anyhow::Result<()> {
        let n = self.uvarint()?;
        for _ in 0..n {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }

    fn topic_partitions(&mut self) -> anyhow::Result<Assignment> {
        let n = self.compact_len()?;
        let mut a = Assignment::new();
        for _ in 0..n {
            let id = Uuid::from_slice(self.take(16)?).context("topic id")?;
            let np = self.compact_len()?;
            let mut parts = std::collections::BTreeSet::new();
            for _ in 0..np {
                parts.insert(self.i32()?);
            }
            self.skip_tags()?;
            if !parts.is_empty() {
                a.insert(id, parts);
            }
        }
        Ok(a)
    }

    fn value_version(&mut self, name: &str) -> anyhow::Result<()> {
        let v = self.i16()?;
        if v != 0 {
            bail!("unknown {name} version {v}");
        }
        Ok(())
    }
}

fn reader(v: &[u8]) -> Reader<'_> {
    Reader { buf: v, pos: 0 }
}

/// Decode a consumer-group record whose key type is `kind` (3..=8); `key` includes the type.
pub fn decode(
    kind: i16,
    key: &[u8],
    value: Option<&[u8]>,
) -> anyhow::Result<Option<ConsumerRecord>> {
    let mut k = Reader { buf: key, pos: 2 };
    let group = k.string()?;
    Ok(Some(match kind {
        GROUP_METADATA_KEY | TARGET_METADATA_KEY => {
            let epoch = match value {
                None => None,
                Some(v) => {
                    let mut r = reader(v);
                    r.value_version("consumer group epoch value")?;
                    let e = r.i32()?;
                    r.skip_tags()?;
                    Some(e)
                }
            };
            if kind == GROUP_METADATA_KEY {
                ConsumerRecord::GroupMetadata { group, epoch }
            } else {
                ConsumerRecord::TargetMetadata {
                    group,
                    assignment_epoch: epoch,
                }
            }
        }
        MEMBER_METADATA_KEY => {
            let member = k.string()?;
            let value = match value {
                None => None,
                Some(v) => {
                    let mut r = reader(v);
                    r.value_version("ConsumerGroupMemberMetadataValue")?;
                    let instance_id = r.compact_string()?;
                    let rack_id = r.compact_string()?;
                    let client_id = r.compact_string()?.unwrap_or_default();
                    let client_host = r.compact_string()?.unwrap_or_default();
                    let n = r.compact_len()?;
                    let mut subscribed_topic_names = Vec::with_capacity(n);
                    for _ in 0..n {
                        subscribed_topic_names.push(r.compact_string()?.unwrap_or_default());
                    }
                    let subscribed_topic_regex = r.compact_string()?;
                    let rebalance_timeout_ms = r.i32()?;
                    let server_assignor = r.compact_string()?;
                    r.skip_tags()?;
                    Some(MemberMetadataValue {
                        instance_id,
                        rack_id,
                        client_id,
                        client_host,
                        subscribed_topic_names,
                        subscribed_topic_regex,
                        rebalance_timeout_ms,
                        server_assignor,
                    })
                }
            };
            ConsumerRecord::MemberMetadata {
                group,
                member,
                value,
            }
        }
        TARGET_MEMBER_KEY => {
            let member = k.string()?;
            let value = match value {
                None => None,
                Some(v) => {
                    let mut r = reader(v);
                    r.value_version("ConsumerGroupTargetAssignmentMemberValue")?;
                    let a = r.topic_partitions()?;
                    r.skip_tags()?;
                    Some(a)
                }
            };
            ConsumerRecord::TargetMember {
                group,
                member,
                value,
            }
        }
        CURRENT_ASSIGNMENT_KEY => {
            let member = k.string()?;
            let value = match value {
                None => None,
                Some(v) => {
                    let mut r = reader(v);
                    r.value_version("ConsumerGroupCurrentMemberAssignmentValue")?;
                    let member_epoch = r.i32()?;
                    let previous_member_epoch = r.i32()?;
                    let state = r.i8()?;
                    let assigned = r.topic_partitions()?;
                    let pending_revocation = r.topic_partitions()?;
                    r.skip_tags()?;
                    Some(CurrentAssignmentValue {
                        member_epoch,
                        previous_member_epoch,
                        state,
                        assigned,
                        pending_revocation,
                    })
                }
            };
            ConsumerRecord::CurrentAssignment {
                group,
                member,
                value,
            }
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(key: Bytes, value: Option<Bytes>) -> ConsumerRecord {
        let kind = i16::from_be_bytes([key[0], key[1]]);
        decode(kind, &key, value.as_deref())
            .expect("decodes")
            .expect("known")
    }

    #[test]
    fn records_round_trip() {
        let t = Uuid::from_u128(0xabc);
        let a: Assignment = [(t, [0, 2].into())].into();
        assert_eq!(
            round_trip(group_metadata_key("g"), Some(epoch_value(7))),
            ConsumerRecord::GroupMetadata {
                group: "g".into(),
                epoch: Some(7)
            }
        );
        assert_eq!(
            round_trip(target_metadata_key("g"), None),
            ConsumerRecord::TargetMetadata {
                group: "g".into(),
                assignment_epoch: None
            }
        );
        let m = MemberMetadataValue {
            instance_id: Some("i".into()),
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["a".into(), "b".into()],
            subscribed_topic_regex: Some("x.*".into()),
            rebalance_timeout_ms: 300000,
            server_assignor: Some("range".into()),
        };
        assert_eq!(
            round_trip(
                member_metadata_key("g", "m"),
                Some(member_metadata_value(&m))
            ),
            ConsumerRecord::MemberMetadata {
                group: "g".into(),
                member: "m".into(),
                value: Some(m)
            }
        );
        assert_eq!(
            round_trip(target_member_key("g", "m"), Some(target_member_value(&a))),
            ConsumerRecord::TargetMember {
                group: "g".into(),
                member: "m".into(),
                value: Some(a.clone())
            }
        );
        let c = CurrentAssignmentValue {
            member_epoch: 5,
            previous_member_epoch: 4,
            state: 1,
            assigned: a.clone(),
            pending_revocation: [(t, [1].into())].into(),
        };
        assert_eq!(
            round_trip(
                current_assignment_key("g", "m"),
                Some(current_assignment_value(&c))
            ),
            ConsumerRecord::CurrentAssignment {
                group: "g".into(),
                member: "m".into(),
                value: Some(c)
            }
        );
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        let v = current_assignment_value(&CurrentAssignmentValue::default());
        for cut in 0..v.len() {
            let _ = decode(
                CURRENT_ASSIGNMENT_KEY,
                &current_assignment_key("g", "m"),
                Some(&v[..cut]),
            );
        }
        let huge = [0u8, 0, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode(TARGET_MEMBER_KEY, &target_member_key("g", "m"), Some(&huge)).is_err());
    }
}
