//! DescribeCluster: the cluster id, the controller and the brokers.

use super::RequestContext;
use super::metadata::CLUSTER_ALL_OPERATIONS;
use crate::broker::Broker;
use crate::error::ErrorCode;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::{
    DescribeClusterBroker, DescribeClusterResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

/// Kafka's endpoint types (v1+): brokers (1) or controllers (2).
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn describe_cluster(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.metadata.cluster_id()))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_endpoint_type(req.endpoint_type);
    if ctx.version >= 1 && req.endpoint_type != ENDPOINT_TYPE_BROKERS {
        resp.error_code = ErrorCode::UnsupportedEndpointType.code();
        resp.error_message = Some(StrBytes::from_static_str(
            "The endpoint type is not supported by this broker listener",
        ));
        return resp;
    }
    if let Some(l) = broker.config.advertised_for(&ctx.conn.listener) {
        resp.brokers = vec![
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(broker.node_id()))
                .with_host(StrBytes::from_string(l.host.clone()))
                .with_port(l.port as i32)
                .with_rack(None),
        ];
    }
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        CLUSTER_ALL_OPERATIONS
    } else {
        i32::MIN
    };
    resp
}
