//! What the members of an application's consumer group tell each other, and how it is read back:
//! the role Kafka Streams gives its SubscriptionInfo / AssignmentInfo userdata (`partitionsByHost`).
//!
//! The stream threads' consumers are librdkafka's, whose range assignor is built in and offers no
//! hook to add userdata to the subscription. So strom puts the one thing the others need, the
//! instance's `application.server`, in the consumer's `client.id` (sent with every JoinGroup and
//! kept by the coordinator), and every instance reads the group back with DescribeGroups: each
//! member's client id names its host, and its member assignment (the ConsumerProtocolAssignment
//! the group leader computed) lists the partitions it owns. Only strom-streams instances join the
//! group, so this layout is strom's own.

use crate::metadata::HostInfo;

/// Separates the client id Kafka Streams would use from the advertised `host:port`.
const SERVER_MARK: char = '@';

/// The stream thread consumer's client id: `<application.id>-<process id>-StreamThread-<n>-consumer`,
/// followed by `@<host>:<port>` when `application.server` is set.
pub fn consumer_client_id(
    application_id: &str,
    process_id: &str,
    thread: usize,
    server: Option<&HostInfo>,
) -> String {
    let base = format!("{application_id}-{process_id}-StreamThread-{thread}-consumer");
    match server {
        Some(h) => format!("{base}{SERVER_MARK}{h}"),
        None => base,
    }
}

/// The `application.server` a member advertised in its client id, if any.
pub fn server_of_client_id(client_id: &str) -> Option<HostInfo> {
    let (_, server) = client_id.rsplit_once(SERVER_MARK)?;
    HostInfo::parse(server).ok()
}

/// The process id in a stream thread consumer's client id (see `consumer_client_id`): every
/// member of one instance carries the same one, which is how members are grouped into processes
/// for standby placement whether or not they advertise a server.
pub fn process_of_client_id(application_id: &str, client_id: &str) -> Option<String> {
    let base = client_id
        .rsplit_once(SERVER_MARK)
        .map_or(client_id, |(b, _)| b);
    let rest = base.strip_prefix(application_id)?.strip_prefix('-')?;
    let (process, _) = rest.rsplit_once("-StreamThread-")?;
    (!process.is_empty()).then(|| process.to_string())
}

/// Why a member assignment could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed member assignment: {0}")]
pub struct AssignmentDecodeError(&'static str);

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AssignmentDecodeError> {
        if self.b.len() < n {
            return Err(AssignmentDecodeError("truncated"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn i16(&mut self) -> Result<i16, AssignmentDecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, AssignmentDecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// An array length; negative (null) reads as empty.
    fn len(&mut self) -> Result<usize, AssignmentDecodeError> {
        let n = self.i32()?;
        let n = usize::try_from(n).unwrap_or(0);
        // Each element takes at least 2 bytes, so a larger count is garbage, not a huge array.
        if n > self.b.len() {
            return Err(AssignmentDecodeError("array longer than the data"));
        }
        Ok(n)
    }
}

/// Decodes the topic-partitions of a ConsumerProtocolAssignment (any version: the partitions come
/// first, the userdata after them is not needed here).
pub fn decode_assignment(b: &[u8]) -> Result<Vec<(String, i32)>, AssignmentDecodeError> {
    let mut out = Vec::new();
    if b.is_empty() {
        // A member that has not been given an assignment yet.
        return Ok(out);
    }
    let mut r = Reader { b };
    let version = r.i16()?;
    if version < 0 {
        return Err(AssignmentDecodeError("negative version"));
    }
    for _ in 0..r.len()? {
        let n = usize::try_from(r.i16()?).map_err(|_| AssignmentDecodeError("null topic"))?;
        let topic = std::str::from_utf8(r.take(n)?)
            .map_err(|_| AssignmentDecodeError("topic is not UTF-8"))?
            .to_string();
        for _ in 0..r.len()? {
            out.push((topic.clone(), r.i32()?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: i16, topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = v.to_be_bytes().to_vec();
        b.extend((topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes());
        b
    }

    #[test]
    fn assignments_decode_and_garbage_is_an_error() {
        let b = encode(1, &[("in", &[0, 2]), ("app-x-repartition", &[1])]);
        assert_eq!(
            decode_assignment(&b).unwrap(),
            vec![
                ("in".to_string(), 0),
                ("in".to_string(), 2),
                ("app-x-repartition".to_string(), 1)
            ]
        );
        assert!(decode_assignment(&[]).unwrap().is_empty());
        assert!(decode_assignment(&b[..b.len() - 9]).is_err());
        assert!(decode_assignment(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn client_id_carries_the_server() {
        let h = HostInfo::parse("10.0.0.7:8080").unwrap();
        let id = consumer_client_id("app", "pid", 2, Some(&h));
        assert_eq!(id, "app-pid-StreamThread-2-consumer@10.0.0.7:8080");
        assert_eq!(server_of_client_id(&id), Some(h.clone()));
        assert_eq!(
            server_of_client_id(&consumer_client_id("app", "pid", 1, None)),
            None
        );
        let pid = "0b6f5c1e-6a43-4c5e-9d1f-1f2e3d4c5b6a";
        for server in [Some(&h), None] {
            let id = consumer_client_id("my-app", pid, 3, server);
            assert_eq!(process_of_client_id("my-app", &id).as_deref(), Some(pid));
        }
        assert_eq!(process_of_client_id("other", &id), None);
        assert_eq!(process_of_client_id("app", "rdkafka"), None);
    }
}
