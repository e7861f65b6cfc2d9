//! Connect's group protocol bodies (`ConnectProtocol`, the eager "default" protocol, version 0):
//! the member metadata a worker sends in JoinGroup and the assignment the leader sends back in
//! SyncGroup, in Kafka's binary layout so the bytes mean the same to a Kafka worker.
//!
//! Metadata: `version:int16, url:string, config_offset:int64`.
//! Assignment: `version:int16, error:int16, leader:string, leader_url:string, config_offset:int64,
//! assignment:[connector:string, tasks:[int32]]`, where task `-1` stands for the connector itself.

/// The eager protocol's name in JoinGroup.
pub const PROTOCOL_NAME: &str = "default";
/// The group's protocol type.
pub const PROTOCOL_TYPE: &str = "connect";
/// `ConnectProtocol.Assignment.NO_ERROR`.
pub const NO_ERROR: i16 = 0;
/// `CONFIG_MISMATCH`: the leader could not read the config topic as far as a member had.
pub const CONFIG_MISMATCH: i16 = 1;
/// The task id that marks a connector in an assignment (`CONNECTOR_TASK`).
const CONNECTOR_TASK: i32 = -1;

/// What a worker tells the group about itself (`WorkerState`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerState {
    pub url: String,
    pub config_offset: i64,
}

/// The leader's answer to one member (`Assignment`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Assignment {
    pub error: i16,
    pub leader: String,
    pub leader_url: String,
    pub config_offset: i64,
    pub connectors: Vec<String>,
    /// (connector, task id)
    pub tasks: Vec<(String, usize)>,
}

/// A body that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("malformed Connect protocol {what}: {why}")]
pub struct ProtocolError {
    what: &'static str,
    why: String,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.extend_from_slice(&(b.len().min(i16::MAX as usize) as i16).to_be_bytes());
    out.extend_from_slice(&b[..b.len().min(i16::MAX as usize)]);
}

struct Reader<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl Reader<'_> {
    fn err(&self, why: impl Into<String>) -> ProtocolError {
        ProtocolError {
            what: self.what,
            why: why.into(),
        }
    }
    fn take(&mut self, n: usize) -> Result<&[u8], ProtocolError> {
        if self.data.len() < n {
            return Err(self.err(format!("needs {n} more bytes, has {}", self.data.len())));
        }
        let (a, b) = self.data.split_at(n);
        self.data = b;
        Ok(a)
    }
    fn i16(&mut self) -> Result<i16, ProtocolError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, ProtocolError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, ProtocolError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn string(&mut self) -> Result<String, ProtocolError> {
        let n = self.i16()?;
        if n < 0 {
            return Err(self.err("null string"));
        }
        let b = self.take(n as usize)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }
    fn array_len(&mut self) -> Result<usize, ProtocolError> {
        let n = self.i32()?;
        // Every element takes at least two bytes: a count beyond that is corrupt, not a reason to
        // allocate.
        if n < 0 || n as usize > self.data.len() / 2 + 1 {
            return Err(self.err(format!("impossible array length {n}")));
        }
        Ok(n as usize)
    }
}

impl WorkerState {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0i16.to_be_bytes());
        put_str(&mut out, &self.url);
        out.extend_from_slice(&self.config_offset.to_be_bytes());
        out
    }

    /// Reads any version: later versions (compatible, sessioned) start with the same fields.
    pub fn decode(data: &[u8]) -> Result<WorkerState, ProtocolError> {
        let mut r = Reader {
            data,
            what: "member metadata",
        };
        let version = r.i16()?;
        if version < 0 {
            return Err(r.err(format!("version {version}")));
        }
        Ok(WorkerState {
            url: r.string()?,
            config_offset: r.i64()?,
        })
    }
}

impl Assignment {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&self.error.to_be_bytes());
        put_str(&mut out, &self.leader);
        put_str(&mut out, &self.leader_url);
        out.extend_from_slice(&self.config_offset.to_be_bytes());
        // Group by connector: its own entry (-1) first, then its tasks.
        let mut by_connector: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
        for c in &self.connectors {
            by_connector.entry(c).or_default().push(CONNECTOR_TASK);
        }
        for (c, t) in &self.tasks {
            by_connector.entry(c).or_default().push(*t as i32);
        }
        out.extend_from_slice(&(by_connector.len() as i32).to_be_bytes());
        for (c, ids) in by_connector {
            put_str(&mut out, c);
            out.extend_from_slice(&(ids.len() as i32).to_be_bytes());
            for id in ids {
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
        out
    }

    pub fn decode(data: &[u8]) -> Result<Assignment, ProtocolError> {
        let mut r = Reader {
            data,
            what: "assignment",
        };
        let version = r.i16()?;
        if version < 0 {
            return Err(r.err(format!("version {version}")));
        }
        let mut a = Assignment {
            error: r.i16()?,
            leader: r.string()?,
            leader_url: r.string()?,
            config_offset: r.i64()?,
            ..Assignment::default()
        };
        for _ in 0..r.array_len()? {
            let connector = r.string()?;
            for _ in 0..r.array_len()? {
                match r.i32()? {
                    CONNECTOR_TASK => a.connectors.push(connector.clone()),
                    t if t >= 0 => a.tasks.push((connector.clone(), t as usize)),
                    t => return Err(r.err(format!("task id {t}"))),
                }
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let m = WorkerState {
            url: "http://a:1/".into(),
            config_offset: 7,
        };
        let b = m.encode();
        // version 0, then a 2-byte length and the URL, then the offset.
        assert_eq!(&b[..4], &[0, 0, 0, 11]);
        assert_eq!(WorkerState::decode(&b).expect("decode"), m);
        let a = Assignment {
            error: NO_ERROR,
            leader: "w1".into(),
            leader_url: "http://a:1/".into(),
            config_offset: 9,
            connectors: vec!["src".into()],
            tasks: vec![("src".into(), 0), ("sink".into(), 2)],
        };
        let d = Assignment::decode(&a.encode()).expect("decode");
        assert_eq!(d.connectors, a.connectors);
        let mut tasks = d.tasks.clone();
        tasks.sort();
        assert_eq!(tasks, vec![("sink".into(), 2), ("src".into(), 0)]);
        assert!(Assignment::decode(&[0, 0, 0]).is_err());
        let mut huge = a.encode();
        let n = huge.len();
        huge.truncate(n - 4);
        assert!(Assignment::decode(&huge).is_err());
    }
}
