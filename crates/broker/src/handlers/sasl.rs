//! SaslHandshake / SaslAuthenticate on a listener without SASL: the answers Kafka gives.

use crate::error::ErrorCode;
use kafka_protocol::messages::sasl_authenticate_request::SaslAuthenticateRequest;
use kafka_protocol::messages::sasl_authenticate_response::SaslAuthenticateResponse;
use kafka_protocol::messages::sasl_handshake_request::SaslHandshakeRequest;
use kafka_protocol::messages::sasl_handshake_response::SaslHandshakeResponse;
use kafka_protocol::protocol::StrBytes;

/// No mechanism is enabled on a PLAINTEXT listener: UNSUPPORTED_SASL_MECHANISM with an empty list.
pub fn handshake(_req: SaslHandshakeRequest) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(ErrorCode::UnsupportedSaslMechanism.code())
        .with_mechanisms(Vec::new())
}

pub fn authenticate(_req: SaslAuthenticateRequest) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ErrorCode::IllegalSaslState.code())
        .with_error_message(Some(StrBytes::from_static_str(
            "SASL is not enabled on this listener",
        )))
}
