//! AddRaftVoter and RemoveRaftVoter (KIP-853, API keys 80 and 81): change the voters of the
//! metadata quorum at runtime. Any node takes them and passes them to the active controller,
//! which adds a voter only once it has caught up with the metadata log as a learner.
//!
//! The voter's directory id is not checked: strom's voters are known by node id alone.

use super::RequestContext;
use crate::broker::Broker;
use crate::error::ErrorCode;
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use strom_meta::MetaError;

pub fn add_raft_voter(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: AddRaftVoterRequest,
) -> AddRaftVoterResponse {
    let (code, message) = match check_cluster_id(broker, req.cluster_id.as_deref()) {
        Err(e) => e,
        Ok(()) => {
            // The new voter's CONTROLLER endpoint: the one named in controller.listener.names,
            // else the first it sent.
            let names = &broker.config.controller_listener_names;
            let listener = req
                .listeners
                .iter()
                .find(|l| names.iter().any(|n| n.as_str() == l.name.as_str()))
                .or_else(|| req.listeners.first());
            match listener {
                None => (
                    ErrorCode::InvalidRequest,
                    Some("AddRaftVoter needs the new voter's listener".to_string()),
                ),
                Some(l) => {
                    let host = l.host.as_str();
                    let address = if host.contains(':') {
                        format!("[{host}]:{}", l.port)
                    } else {
                        format!("{host}:{}", l.port)
                    };
                    outcome(broker.metadata.add_voter(req.voter_id, &address))
                }
            }
        }
    };
    AddRaftVoterResponse::default()
        .with_error_code(code.code())
        .with_error_message(message.map(StrBytes::from_string))
}

pub fn remove_raft_voter(
    broker: &Arc<Broker>,
    _ctx: &RequestContext<'_>,
    req: RemoveRaftVoterRequest,
) -> RemoveRaftVoterResponse {
    let (code, message) = match check_cluster_id(broker, req.cluster_id.as_deref()) {
        Err(e) => e,
        Ok(()) => outcome(broker.metadata.remove_voter(req.voter_id)),
    };
    RemoveRaftVoterResponse::default()
        .with_error_code(code.code())
        .with_error_message(message.map(StrBytes::from_string))
}

/// A request naming another cluster is refused, as Kafka does (INCONSISTENT_CLUSTER_ID).
fn check_cluster_id(
    broker: &Broker,
    requested: Option<&str>,
) -> Result<(), (ErrorCode, Option<String>)> {
    let ours = broker.metadata.cluster_id();
    match requested {
        // An empty id is a client that did not send one.
        Some(id) if !id.is_empty() && id != ours => Err((
            ErrorCode::InconsistentClusterId,
            Some(format!("cluster id {id} is not this cluster's ({ours})")),
        )),
        _ => Ok(()),
    }
}

fn outcome(r: Result<(), MetaError>) -> (ErrorCode, Option<String>) {
    match r {
        Ok(()) => (ErrorCode::None, None),
        Err(MetaError::Refused(m)) => (ErrorCode::InvalidRequest, Some(m)),
        Err(MetaError::Unavailable(m)) => (ErrorCode::RequestTimedOut, Some(m)),
        Err(e) => (ErrorCode::UnknownServerError, Some(e.to_string())),
    }
}
