//! One transactional id's state, as Kafka's `TransactionMetadata` keeps it, and its record in
//! `__transaction_state` (Kafka's TransactionLogKey / TransactionLogValue v0 layout).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeSet;

/// Kafka's TransactionState, with its on-disk status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    Dead = 6,
    PrepareEpochFence = 7,
}

impl TransactionState {
    fn from_code(code: i8) -> Option<TransactionState> {
        use TransactionState::*;
        Some(match code {
            0 => Empty,
            1 => Ongoing,
            2 => PrepareCommit,
            3 => PrepareAbort,
            4 => CompleteCommit,
            5 => CompleteAbort,
            6 => Dead,
            7 => PrepareEpochFence,
            _ => return None,
        })
    }

    /// The names DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        use TransactionState::*;
        match self {
            Empty => "Empty",
            Ongoing => "Ongoing",
            PrepareCommit => "PrepareCommit",
            PrepareAbort => "PrepareAbort",
            CompleteCommit => "CompleteCommit",
            CompleteAbort => "CompleteAbort",
            Dead => "Dead",
            PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TransactionState,
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    /// When the current transaction started (-1 when none is open).
    pub start_ms: i64,
}

fn put_str(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn get_str(buf: &mut Bytes) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_i16();
    if len < 0 || buf.remaining() < len as usize {
        return None;
    }
    String::from_utf8(buf.split_to(len as usize).to_vec()).ok()
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(0);
    put_str(&mut buf, transactional_id);
    buf.freeze()
}

pub fn decode_key(mut key: Bytes) -> Option<String> {
    if key.remaining() < 2 || key.get_i16() != 0 {
        return None;
    }
    get_str(&mut key)
}

impl TransactionMetadata {
    pub fn encode_value(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i16(0);
        buf.put_i64(self.producer_id);
        buf.put_i16(self.producer_epoch);
        buf.put_i32(self.timeout_ms);
        buf.put_i8(self.state as i8);
        // Partitions grouped by topic, as Kafka writes them.
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (t, p) in &self.partitions {
            match topics.last_mut() {
                Some((name, parts)) if *name == t.as_str() => parts.push(*p),
                _ => topics.push((t.as_str(), vec![*p])),
            }
        }
        buf.put_i32(topics.len() as i32);
        for (t, parts) in topics {
            put_str(&mut buf, t);
            buf.put_i32(parts.len() as i32);
            for p in parts {
                buf.put_i32(p);
            }
        }
        buf.put_i64(self.last_update_ms);
        buf.put_i64(self.start_ms);
        buf.freeze()
    }

    pub fn decode_value(transactional_id: String, mut v: Bytes) -> Option<TransactionMetadata> {
        if v.remaining() < 2 + 8 + 2 + 4 + 1 + 4 {
            return None;
        }
        let version = v.get_i16();
        if version != 0 {
            return None;
        }
        let producer_id = v.get_i64();
        let producer_epoch = v.get_i16();
        let timeout_ms = v.get_i32();
        let state = TransactionState::from_code(v.get_i8())?;
        let topics = v.get_i32();
        let mut partitions = BTreeSet::new();
        for _ in 0..topics.max(0) {
            let t = get_str(&mut v)?;
            if v.remaining() < 4 {
                return None;
            }
            let n = v.get_i32();
            for _ in 0..n.max(0) {
                if v.remaining() < 4 {
                    return None;
                }
                partitions.insert((t.clone(), v.get_i32()));
            }
        }
        if v.remaining() < 16 {
            return None;
        }
        Some(TransactionMetadata {
            transactional_id,
            producer_id,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            last_update_ms: v.get_i64(),
            start_ms: v.get_i64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trip() {
        let m = TransactionMetadata {
            transactional_id: "t".into(),
            producer_id: 5,
            producer_epoch: 3,
            timeout_ms: 60000,
            state: TransactionState::Ongoing,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 10,
            start_ms: 9,
        };
        assert_eq!(decode_key(encode_key("t")).as_deref(), Some("t"));
        assert_eq!(
            TransactionMetadata::decode_value("t".into(), m.encode_value()),
            Some(m)
        );
    }
}
