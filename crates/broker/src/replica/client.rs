//! A follower's connection to a leader: Kafka requests over one TCP connection, one at a time
//! (Kafka's `BlockingSend` for the replica fetcher). Errors are strings naming the request:
//! the fetcher logs them, backs off and reconnects.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Partitions grouped by topic, as request bodies list them.
pub fn by_topic(partitions: &[(String, i32)]) -> std::collections::BTreeMap<&str, Vec<i32>> {
    let mut topics: std::collections::BTreeMap<&str, Vec<i32>> = std::collections::BTreeMap::new();
    for (t, p) in partitions {
        topics.entry(t.as_str()).or_default().push(*p);
    }
    topics
}

pub struct LeaderConnection {
    stream: TcpStream,
    correlation: i32,
    client_id: StrBytes,
    timeout: Duration,
    max_response_bytes: usize,
}

impl LeaderConnection {
    /// A connection to broker `node`'s inter-broker listener for a coordinator's request
    /// (`purpose` names it in the client id), with the replica socket timeout.
    pub async fn to_broker(
        broker: &crate::broker::Broker,
        node: i32,
        purpose: &str,
    ) -> Result<LeaderConnection, String> {
        let (host, port) = super::fetcher::leader_endpoint(broker, node)?;
        let config = super::ReplicaConfig::from_broker(&broker.config);
        LeaderConnection::connect(
            &host,
            port,
            &format!("strom-{purpose}-{}", broker.node_id()),
            Duration::from_millis(config.socket_timeout_ms),
            1 << 20,
        )
        .await
    }

    pub async fn connect(
        host: &str,
        port: u16,
        client_id: &str,
        timeout: Duration,
        max_response_bytes: usize,
    ) -> Result<LeaderConnection, String> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| format!("connecting to {host}:{port} timed out"))?
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(LeaderConnection {
            stream,
            correlation: 0,
            client_id: StrBytes::from_string(client_id.to_string()),
            timeout,
            max_response_bytes,
        })
    }

    /// Sends `req` as `key` v`version` and reads its response.
    pub async fn send<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, String> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .map_err(|e| format!("encoding {key:?} header: {e}"))?;
        req.encode(&mut buf, version)
            .map_err(|e| format!("encoding {key:?} v{version}: {e}"))?;
        let len = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        let exchange = async {
            self.stream
                .write_all(&buf)
                .await
                .map_err(|e| format!("sending {key:?}: {e}"))?;
            let size = self
                .stream
                .read_i32()
                .await
                .map_err(|e| format!("reading the {key:?} response: {e}"))?;
            if size < 0 || size as usize > self.max_response_bytes {
                return Err(format!("{key:?} response has an impossible size {size}"));
            }
            let mut body = vec![0u8; size as usize];
            self.stream
                .read_exact(&mut body)
                .await
                .map_err(|e| format!("reading the {key:?} response: {e}"))?;
            Ok(Bytes::from(body))
        };
        let mut body = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("{key:?} not answered within {:?}", self.timeout))??;
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| format!("decoding the {key:?} response header: {e}"))?;
        if header.correlation_id != self.correlation {
            return Err(format!(
                "{key:?} response has correlation id {}, expected {}",
                header.correlation_id, self.correlation
            ));
        }
        Resp::decode(&mut body, version)
            .map_err(|e| format!("decoding the {key:?} v{version} response: {e}"))
    }
}
