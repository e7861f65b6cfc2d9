//! Consumer group offsets and lag, named as kafka-exporter names them (`kafka_consumergroup_*`;
//! Kafka itself has no per-group lag MBean).
//!
//! Each node reports the groups it coordinates, so every group is reported once in a cluster.
//! Lag is the partition's high watermark minus the committed offset, for partitions with a
//! replica on this node (a follower's high watermark may trail the leader's a little).

use super::exposition::Exposition;
use crate::broker::Broker;

pub fn write(broker: &Broker, e: &mut Exposition) {
    let offsets = broker.groups.committed_offsets();
    let current = "kafka_consumergroup_current_offset";
    e.family(
        current,
        "gauge",
        "Committed offset of a consumer group in a partition.",
    );
    for o in &offsets {
        let partition = o.partition.to_string();
        e.sample(
            current,
            &[
                ("consumergroup", &o.group),
                ("topic", &o.topic),
                ("partition", &partition),
            ],
            o.offset,
        );
    }
    let lag = "kafka_consumergroup_lag";
    e.family(
        lag,
        "gauge",
        "High watermark minus the committed offset of a consumer group in a partition.",
    );
    for o in &offsets {
        let Some(p) = broker.replicas.get(&o.topic, o.partition) else {
            continue;
        };
        // A committed offset past the high watermark (after truncation) is no lag, not negative.
        let value = (p.high_watermark() - o.offset).max(0);
        let partition = o.partition.to_string();
        e.sample(
            lag,
            &[
                ("consumergroup", &o.group),
                ("topic", &o.topic),
                ("partition", &partition),
            ],
            value,
        );
    }
}
