//! Cluster gauges of the active controller (Kafka's `kafka.controller:type=KafkaController`),
//! read from the metadata image at scrape time.
//!
//! Only the active controller reports the cluster-wide values; the other nodes report 0, so a
//! dashboard's `sum()` over all nodes counts each partition once, as with Kafka.

use super::exposition::Exposition;
use crate::broker::Broker;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ControllerGauges {
    pub active: u64,
    /// Partitions without a leader.
    pub offline_partitions: u64,
    pub topics: u64,
    pub partitions: u64,
    /// Registered brokers not fenced, and fenced.
    pub active_brokers: u64,
    pub fenced_brokers: u64,
}

pub fn gauges(broker: &Broker) -> ControllerGauges {
    if !broker.metadata.is_active_controller() {
        return ControllerGauges::default();
    }
    let image = broker.metadata.image();
    let mut g = ControllerGauges {
        active: 1,
        ..ControllerGauges::default()
    };
    for t in image.topics.values() {
        g.topics += 1;
        for p in &t.partitions {
            g.partitions += 1;
            if p.leader < 0 {
                g.offline_partitions += 1;
            }
        }
    }
    for b in image.brokers.values() {
        if b.fenced {
            g.fenced_brokers += 1;
        } else {
            g.active_brokers += 1;
        }
    }
    g
}

pub fn write(broker: &Broker, e: &mut Exposition) {
    let g = gauges(broker);
    let families = [
        (
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the active controller, 0 elsewhere (ActiveControllerCount).",
            g.active,
        ),
        (
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a leader (OfflinePartitionsCount).",
            g.offline_partitions,
        ),
        (
            "kafka_controller_kafkacontroller_globaltopiccount",
            "Topics in the cluster (GlobalTopicCount).",
            g.topics,
        ),
        (
            "kafka_controller_kafkacontroller_globalpartitioncount",
            "Partitions in the cluster (GlobalPartitionCount).",
            g.partitions,
        ),
        (
            "kafka_controller_kafkacontroller_activebrokercount",
            "Registered brokers that are not fenced (ActiveBrokerCount).",
            g.active_brokers,
        ),
        (
            "kafka_controller_kafkacontroller_fencedbrokercount",
            "Registered brokers that are fenced (FencedBrokerCount).",
            g.fenced_brokers,
        ),
    ];
    for (name, help, value) in families {
        e.single(name, "gauge", help, value);
    }
}
