//! Where a partition's leader is, for NOT_LEADER_OR_FOLLOWER answers: Produce (v10+) and Fetch
//! (v12+) carry the current leader and its epoch, and (Produce v10+, Fetch v16+) the leader's
//! endpoint, so a client moves to the new leader without a Metadata round trip (KIP-951).

use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;
use strom_meta::MetadataImage;

pub struct LeaderHint {
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// host, port, rack of the leader on the listener the client used.
    pub endpoint: Option<(String, u16, Option<String>)>,
}

/// The leader of `topic`-`partition` in `image`, with its endpoint on `listener`.
pub fn leader_hint(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    listener: &str,
) -> Option<LeaderHint> {
    let p = image
        .topic(topic)?
        .partitions
        .iter()
        .find(|p| p.partition == partition)?;
    let endpoint = image.brokers.get(&p.leader).and_then(|b| {
        let l = b
            .listeners
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(listener))?;
        Some((l.host.clone(), l.port, b.rack.clone()))
    });
    Some(LeaderHint {
        leader_id: p.leader,
        leader_epoch: p.leader_epoch,
        endpoint,
    })
}

/// A Produce response's `node_endpoints` entry.
pub fn produce_endpoint(
    hint: &LeaderHint,
) -> Option<kafka_protocol::messages::produce_response::NodeEndpoint> {
    let (host, port, rack) = hint.endpoint.clone()?;
    Some(
        kafka_protocol::messages::produce_response::NodeEndpoint::default()
            .with_node_id(BrokerId(hint.leader_id))
            .with_host(StrBytes::from_string(host))
            .with_port(i32::from(port))
            .with_rack(rack.map(StrBytes::from_string)),
    )
}

/// A Fetch response's `node_endpoints` entry.
pub fn fetch_endpoint(
    hint: &LeaderHint,
) -> Option<kafka_protocol::messages::fetch_response::NodeEndpoint> {
    let (host, port, rack) = hint.endpoint.clone()?;
    Some(
        kafka_protocol::messages::fetch_response::NodeEndpoint::default()
            .with_node_id(BrokerId(hint.leader_id))
            .with_host(StrBytes::from_string(host))
            .with_port(i32::from(port))
            .with_rack(rack.map(StrBytes::from_string)),
    )
}
