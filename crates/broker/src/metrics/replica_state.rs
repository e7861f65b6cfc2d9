//! This node's partition gauges (Kafka's `kafka.server:type=ReplicaManager`), read from the
//! hosted partitions at scrape time.

use super::exposition::Exposition;
use crate::broker::Broker;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReplicaGauges {
    /// Partitions with a replica on this node.
    pub partitions: u64,
    /// Of those, the ones this node leads.
    pub leaders: u64,
    /// Led here, with fewer in-sync replicas than replicas.
    pub under_replicated: u64,
    /// Led here, with fewer in-sync replicas than min.insync.replicas (capped at the
    /// replication factor, as produce caps it).
    pub under_min_isr: u64,
}

pub fn gauges(broker: &Broker) -> ReplicaGauges {
    let image = broker.metadata.image();
    let mut g = ReplicaGauges::default();
    for p in broker.replicas.all() {
        g.partitions += 1;
        if !p.is_leader() {
            continue;
        }
        g.leaders += 1;
        let isr = p.isr().len();
        let replicas = p.replicas().len();
        if isr < replicas {
            g.under_replicated += 1;
        }
        let min_isr = image
            .topic(&p.topic)
            .map_or(1, |t| broker.topic_configs.min_insync_replicas(&t.configs))
            .min(replicas.max(1));
        if isr < min_isr {
            g.under_min_isr += 1;
        }
    }
    g
}

pub fn write(broker: &Broker, e: &mut Exposition) {
    let g = gauges(broker);
    e.single(
        "kafka_server_replicamanager_partitioncount",
        "gauge",
        "Partitions with a replica on this broker (PartitionCount).",
        g.partitions,
    );
    e.single(
        "kafka_server_replicamanager_leadercount",
        "gauge",
        "Partitions this broker leads (LeaderCount).",
        g.leaders,
    );
    e.single(
        "kafka_server_replicamanager_underreplicatedpartitions",
        "gauge",
        "Partitions led here with fewer in-sync replicas than replicas (UnderReplicatedPartitions).",
        g.under_replicated,
    );
    e.single(
        "kafka_server_replicamanager_underminisrpartitioncount",
        "gauge",
        "Partitions led here with fewer in-sync replicas than min.insync.replicas (UnderMinIsrPartitionCount).",
        g.under_min_isr,
    );
}
