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
