//! Broker metrics in the Prometheus text format, under the names the Prometheus JMX exporter
//! gives Kafka's MBeans, so dashboards and alerts built for Kafka read strom (docs/operations.md,
//! "Metrics", lists every name and its MBean).
//!
//! Owns the counters the request path adds to (`requests`: per API, recorded by the dispatcher;
//! `topics`: per topic, recorded by the produce and fetch handlers), the gauges read from the
//! broker's state at scrape time (`replica_state`, `controller_state`, `group_lag`, `process`),
//! the text format (`exposition`) and the endpoint of `metrics.listener` (`http`).
//!
//! Must not: take a lock per record on the request path, or change broker state when scraped.

pub mod controller_state;
pub mod exposition;
pub mod group_lag;
pub mod http;
pub mod process;
pub mod replica_state;
pub mod requests;
pub mod topics;

use crate::broker::Broker;

/// The counters a broker keeps from its start.
pub struct Metrics {
    pub requests: requests::RequestMetrics,
    pub topics: topics::BrokerTopicMetrics,
    start: process::StartTime,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: requests::RequestMetrics::default(),
            topics: topics::BrokerTopicMetrics::default(),
            start: process::StartTime::now(),
        }
    }
}

/// Every metric of this node, in the Prometheus text format.
pub fn render(broker: &Broker) -> String {
    let mut e = exposition::Exposition::default();
    let image = broker.metadata.image();
    topics::write(&broker.metrics.topics, &image, &mut e);
    requests::write(&broker.metrics.requests, &mut e);
    replica_state::write(broker, &mut e);
    controller_state::write(broker, &mut e);
    group_lag::write(broker, &mut e);
    process::write(&broker.metrics.start, &mut e);
    e.finish()
}
