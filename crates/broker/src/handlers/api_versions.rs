//! ApiVersions: what this broker speaks, its features (KIP-584; `transaction.version`, which
//! decides whether Kafka 4 clients use transaction protocol v2), and the KIP-511 fallback for
//! versions it does not.

use super::{RequestContext, SUPPORTED};
use crate::broker::Broker;
use crate::error::ErrorCode;
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, ApiVersionsResponse, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::protocol::StrBytes;

/// Kafka's feature name for the transaction protocol level.
pub const TRANSACTION_VERSION: &str = "transaction.version";
/// The highest `transaction.version` strom implements (2: KIP-890's protocol v2).
const MAX_TRANSACTION_VERSION: i16 = 2;
/// Features never change while a broker runs, so one epoch serves (clients only compare them).
const FINALIZED_FEATURES_EPOCH: i64 = 1;

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

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    req: ApiVersionsRequest,
) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default().with_api_keys(api_keys());
    if ctx.version >= 3 {
        let name = StrBytes::from_static_str(TRANSACTION_VERSION);
        resp.supported_features = vec![
            SupportedFeatureKey::default()
                .with_name(name.clone())
                .with_min_version(0)
                .with_max_version(MAX_TRANSACTION_VERSION),
        ];
        let level = broker.config.transaction_version;
        resp.finalized_features_epoch = FINALIZED_FEATURES_EPOCH;
        resp.finalized_features = vec![
            FinalizedFeatureKey::default()
                .with_name(name)
                .with_min_version_level(level)
                .with_max_version_level(level),
        ];
    }
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
