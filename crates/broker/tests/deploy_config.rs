//! The example `deploy/server.properties` that docs/operations.md tells operators to copy must load
//! as the three-node cluster it describes.

use std::path::Path;
use strom_broker::BrokerConfig;

#[test]
fn deploy_server_properties_is_a_three_node_cluster_config() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/server.properties");
    let config = BrokerConfig::load(Some(&path), &[]).expect("deploy/server.properties loads");
    assert_eq!(config.node_id, 1);
    assert_eq!(config.process_roles, vec!["broker", "controller"]);
    assert_eq!(
        config
            .controller_quorum_voters
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(
        config
            .controller_quorum_voters
            .values()
            .all(|(_, port)| *port == 9093),
        "{:?}",
        config.controller_quorum_voters
    );
    assert_eq!(config.default_replication_factor, 3);
    assert!(
        config
            .listeners
            .iter()
            .any(|l| l.name == "CONTROLLER" && l.port == 9093)
    );
    assert!(
        config
            .listeners
            .iter()
            .any(|l| l.name == "PLAINTEXT" && l.port == 9092)
    );
    assert!(!config.unclean_leader_election_enable);
    // The same file with another node.id is the second host's.
    let second = BrokerConfig::load(Some(&path), &["node.id=2".to_string()]).expect("override");
    assert_eq!(second.node_id, 2);
}

/// `deploy/controller.properties` and `deploy/broker.properties` (docs/operations.md, "Separate
/// controllers and brokers") load as a controller-only voter and a broker-only observer.
#[test]
fn deploy_controller_and_broker_properties_split_the_roles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let ctl = BrokerConfig::load(Some(&dir.join("controller.properties")), &[])
        .expect("deploy/controller.properties loads");
    assert_eq!(ctl.process_roles, vec!["controller"]);
    assert!(ctl.is_controller() && !ctl.is_broker());
    assert!(ctl.client_listeners().is_empty(), "{:?}", ctl.listeners);
    assert_eq!(ctl.controller_listener().map(|l| l.port), Some(9093));
    assert!(ctl.controller_quorum_voters.contains_key(&ctl.node_id));
    let third = BrokerConfig::load(
        Some(&dir.join("controller.properties")),
        &["node.id=3".into()],
    )
    .expect("the third controller");
    assert_eq!(third.node_id, 3);

    let broker = BrokerConfig::load(Some(&dir.join("broker.properties")), &[])
        .expect("deploy/broker.properties loads");
    assert_eq!(broker.process_roles, vec!["broker"]);
    assert!(broker.is_broker() && !broker.is_controller() && broker.is_cluster());
    assert!(broker.controller_listener().is_none());
    assert_eq!(broker.controller_bootstrap_addresses().len(), 3);
    assert!(
        broker
            .controller_bootstrap_addresses()
            .iter()
            .all(|a| a.ends_with(":9093"))
    );
    assert!(!ctl.controller_quorum_voters.contains_key(&broker.node_id));
}
