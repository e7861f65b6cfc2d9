//! Producer ids: InitProducerId for idempotent producers. Transactions (a transactional.id) need
//! the transaction coordinator, which is not built yet; they get a clear refusal.

use super::RequestContext;
use crate::broker::Broker;
use crate::error::ErrorCode;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use std::sync::Arc;

pub fn init_producer_id(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        // Fatal for the client, so a transactional producer fails at once with a clear
        // message instead of retrying until its timeout.
        tracing::info!(
            "refusing InitProducerId with a transactional.id: transactions are not supported yet"
        );
        return resp.with_error_code(ErrorCode::TransactionalIdAuthorizationFailed.code());
    }
    // KIP-360: an idempotent producer that knows its id may ask for the epoch to be bumped to
    // reset its sequences; it keeps the id until the epoch would overflow.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return resp
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match broker.producer_ids.generate(&broker.metadata) {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "allocating a producer id failed");
            resp.with_error_code(ErrorCode::UnknownServerError.code())
        }
    }
}
