//! Topics each connector has used since its creation or last reset (KIP-558), for
//! `GET /connectors/{name}/topics` and `PUT /connectors/{name}/topics/reset`.
//!
//! Source tasks record the topic of every record they send, sink tasks the topic of every record
//! they read. The set lives in this worker's memory: it is empty after a restart, and in
//! distributed mode a worker answers for the tasks it runs (Kafka keeps it in the status topic).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use parking_lot::RwLock;

static ACTIVE: LazyLock<RwLock<BTreeMap<String, BTreeSet<String>>>> =
    LazyLock::new(|| RwLock::new(BTreeMap::new()));

/// Notes that `connector` used `topic`; a read lock suffices once it is known (the common case).
pub fn record(connector: &str, topic: &str) {
    if ACTIVE
        .read()
        .get(connector)
        .is_some_and(|t| t.contains(topic))
    {
        return;
    }
    ACTIVE
        .write()
        .entry(connector.to_string())
        .or_default()
        .insert(topic.to_string());
}

/// The connector's active topics, sorted.
pub fn topics(connector: &str) -> Vec<String> {
    ACTIVE
        .read()
        .get(connector)
        .map(|t| t.iter().cloned().collect())
        .unwrap_or_default()
}

/// Forgets the connector's topics (reset, or the connector was deleted).
pub fn reset(connector: &str) {
    ACTIVE.write().remove(connector);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_list_reset() {
        record("kip558-c", "b");
        record("kip558-c", "a");
        record("kip558-c", "a");
        assert_eq!(topics("kip558-c"), vec!["a".to_string(), "b".to_string()]);
        reset("kip558-c");
        assert!(topics("kip558-c").is_empty());
    }
}
