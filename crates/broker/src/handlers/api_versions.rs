//! ApiVersions: what this broker speaks, and the KIP-511 fallback for versions it does not.

use super::{RequestContext, SUPPORTED};
use crate::error::ErrorCode;
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|s| {
            ApiVersion::default()
                .with_api_key(s.key as i16)
                .with_min_version(s.advertised_min)
                .with_max_version(s.max)
        })
        .collect()
}

pub fn handle(ctx: &RequestContext<'_>, req: ApiVersionsRequest) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default().with_api_keys(api_keys());
    // v3+ clients name themselves; Kafka refuses names outside its pattern with INVALID_REQUEST.
    if ctx.version >= 3
        && (!valid_software_field(&req.client_software_name)
            || !valid_software_field(&req.client_software_version))
    {
        resp.error_code = ErrorCode::InvalidRequest.code();
    }
    resp
}

/// Kafka's rule: letters, digits, '-' and '.', starting and ending with a letter or digit.
fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
}

/// A complete response frame in ApiVersions v0 form carrying UNSUPPORTED_VERSION and our ranges;
/// the response header of ApiVersions is always v0 (correlation id only).
pub fn unsupported_version_response(correlation_id: i32) -> BytesMut {
    let keys = api_keys();
    let mut out = BytesMut::with_capacity(16 + keys.len() * 6);
    out.put_i32(0);
    out.put_i32(correlation_id);
    out.put_i16(ErrorCode::UnsupportedVersion.code());
    out.put_i32(keys.len() as i32);
    for k in &keys {
        out.put_i16(k.api_key);
        out.put_i16(k.min_version);
        out.put_i16(k.max_version);
    }
    let len = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&len.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_names() {
        assert!(valid_software_field("apache-kafka-java"));
        assert!(valid_software_field("2.10.1"));
        assert!(!valid_software_field(""));
        assert!(!valid_software_field("-x"));
        assert!(!valid_software_field("a b"));
    }
}
