//! A minimal blocking Kafka protocol connection for the group calls librdkafka cannot make with a
//! custom protocol type (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup). One request
//! at a time; versions are negotiated with ApiVersions.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::{ConnectError, Result};

/// The client id the broker sees on the worker's group connections.
const CLIENT_ID: &str = "strom-connect";

pub struct WireClient {
    address: String,
    stream: TcpStream,
    correlation: i32,
    /// (api key, min, max) the broker advertised.
    versions: Vec<(i16, i16, i16)>,
}

fn kafka_err(what: impl std::fmt::Display) -> ConnectError {
    ConnectError::Kafka(what.to_string())
}

impl WireClient {
    /// Connects to `host:port`; `read_timeout` must exceed the longest blocking call (JoinGroup
    /// waits up to the rebalance timeout).
    pub fn connect(address: &str, read_timeout: Duration) -> Result<WireClient> {
        let stream = TcpStream::connect(address)
            .map_err(|e| kafka_err(format!("cannot connect to {address}: {e}")))?;
        stream
            .set_read_timeout(Some(read_timeout))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| kafka_err(format!("socket setup for {address}: {e}")))?;
        let mut client = WireClient {
            address: address.to_string(),
            stream,
            correlation: 0,
            versions: Vec::new(),
        };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse = client.send_at(ApiKey::ApiVersions, 3, &req)?;
        if resp.error_code != 0 {
            return Err(kafka_err(format!(
                "ApiVersions to {address} failed with error code {}",
                resp.error_code
            )));
        }
        client.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        Ok(client)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The highest version of `key` both sides speak, capped at `client_max`.
    pub fn version(&self, key: ApiKey, client_max: i16) -> Result<i16> {
        let (_, min, max) = self
            .versions
            .iter()
            .find(|(k, _, _)| *k == key as i16)
            .copied()
            .ok_or_else(|| kafka_err(format!("the broker does not support {key:?}")))?;
        let v = max.min(client_max);
        if v < min {
            return Err(kafka_err(format!(
                "the broker supports {key:?} v{min}..v{max}, strom connect v0..v{client_max}"
            )));
        }
        Ok(v)
    }

    /// Sends a request at the best common version; returns it with the response.
    pub fn send<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        client_max: i16,
        build: impl FnOnce(i16) -> Req,
    ) -> Result<(i16, Resp)> {
        let version = self.version(key, client_max)?;
        let req = build(version);
        Ok((version, self.send_at(key, version, &req)?))
    }

    fn send_at<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .map_err(|e| kafka_err(format!("encoding {key:?} header: {e}")))?;
        req.encode(&mut buf, version)
            .map_err(|e| kafka_err(format!("encoding {key:?} v{version}: {e}")))?;
        let len = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        let io = |e: std::io::Error| kafka_err(format!("{key:?} to {}: {e}", self.address));
        self.stream.write_all(&buf).map_err(io)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io)?;
        let size = i32::from_be_bytes(size);
        if !(0..=100 * 1024 * 1024).contains(&size) {
            return Err(kafka_err(format!(
                "{key:?} response has an impossible size {size}"
            )));
        }
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body).map_err(io)?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| kafka_err(format!("decoding {key:?} response header: {e}")))?;
        if header.correlation_id != self.correlation {
            return Err(kafka_err(format!(
                "{key:?} response has correlation id {}, expected {}",
                header.correlation_id, self.correlation
            )));
        }
        Resp::decode(&mut body, version)
            .map_err(|e| kafka_err(format!("decoding the {key:?} v{version} response: {e}")))
    }
}
