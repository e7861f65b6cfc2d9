//! A minimal blocking Kafka protocol client for the admin APIs librdkafka does not expose
//! (ListTransactions, DescribeTransactions, DescribeProducers, WriteTxnMarkers). One request at a
//! time on one connection to the first bootstrap server, which is enough for a command-line tool
//! talking to a single broker or to the node it names.

use anyhow::{Context, bail};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct WireClient {
    stream: TcpStream,
    correlation: i32,
    /// (api key, min, max) the broker advertised.
    versions: Vec<(i16, i16, i16)>,
}

impl WireClient {
    pub fn connect(bootstrap: &str) -> anyhow::Result<WireClient> {
        let first = bootstrap
            .split(',')
            .next()
            .filter(|s| !s.is_empty())
            .context("--bootstrap-server is empty")?;
        let stream = TcpStream::connect(first)
            .with_context(|| format!("connecting to {first} (--bootstrap-server)"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        let mut client = WireClient {
            stream,
            correlation: 0,
            versions: Vec::new(),
        };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strom-tools"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse = client.send_at(ApiKey::ApiVersions, 3, &req)?;
        if resp.error_code != 0 {
            bail!("ApiVersions failed with error code {}", resp.error_code);
        }
        client.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        Ok(client)
    }

    /// The highest version of `key` both sides speak.
    pub fn version(&self, key: ApiKey, client_max: i16) -> anyhow::Result<i16> {
        let (_, min, max) = self
            .versions
            .iter()
            .find(|(k, _, _)| *k == key as i16)
            .copied()
            .with_context(|| format!("the broker does not support {key:?}"))?;
        let v = max.min(client_max);
        if v < min {
            bail!("the broker supports {key:?} v{min}..v{max}, this tool v0..v{client_max}");
        }
        Ok(v)
    }

    pub fn send<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        client_max: i16,
        req: &Req,
    ) -> anyhow::Result<Resp> {
        let version = self.version(key, client_max)?;
        self.send_at(key, version, req)
    }

    fn send_at<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> anyhow::Result<Resp> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("strom-tools")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, key.request_header_version(version))?;
        req.encode(&mut buf, version)?;
        let len = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        self.stream
            .write_all(&buf)
            .with_context(|| format!("sending {key:?}"))?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).with_context(|| {
            format!("reading the {key:?} response (the broker closed the connection?)")
        })?;
        let size = i32::from_be_bytes(size);
        if !(0..=100 * 1024 * 1024).contains(&size) {
            bail!("{key:?} response has an impossible size {size}");
        }
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body)?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))?;
        if header.correlation_id != self.correlation {
            bail!(
                "{key:?} response has correlation id {}, expected {}",
                header.correlation_id,
                self.correlation
            );
        }
        Resp::decode(&mut body, version)
            .with_context(|| format!("decoding the {key:?} v{version} response"))
    }
}
