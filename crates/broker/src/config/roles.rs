//! `process.roles` and what each role needs, as Kafka's KRaft checks it at start: a controller is
//! one of `controller.quorum.voters` and has a CONTROLLER listener; a controller-only node has no
//! client listener; a broker-only node is no voter, has no CONTROLLER listener, and finds the
//! quorum through `controller.quorum.voters` or `controller.quorum.bootstrap.servers`. A controller
//! given only `controller.quorum.bootstrap.servers` joins a running quorum as a new voter.

use super::{BrokerConfig, ConfigError, invalid};

impl BrokerConfig {
    /// Refuse a combination of roles, listeners and quorum settings that cannot run, naming the
    /// key to change.
    pub(super) fn check_roles(&self) -> Result<(), ConfigError> {
        let roles = self.process_roles.join(",");
        let listeners = self
            .listeners
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let voters = self
            .explicit
            .get("controller.quorum.voters")
            .cloned()
            .unwrap_or_default();
        let combined = self.is_broker() && self.is_controller();
        if !self.is_cluster() && !combined {
            return Err(invalid(
                "process.roles",
                &roles,
                "a broker-only or controller-only node belongs to a cluster: set controller.quorum.voters (a broker may use controller.quorum.bootstrap.servers instead); a single node is broker,controller",
            ));
        }
        if self.is_broker() && self.client_listeners().is_empty() {
            return Err(invalid(
                "listeners",
                &listeners,
                "no listener left for clients once controller.listener.names are taken out",
            ));
        }
        if !self.is_broker()
            && let Some(l) = self.client_listeners().first()
        {
            return Err(invalid(
                "listeners",
                &listeners,
                &format!(
                    "a controller-only node (process.roles=controller) serves no clients: listeners may only name controller.listener.names ({}), not {l}",
                    self.controller_listener_names.join(",")
                ),
            ));
        }
        for l in &self.advertised_listeners {
            if l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::" {
                return Err(invalid(
                    "advertised.listeners",
                    &l.to_string(),
                    "a client cannot connect to a wildcard address; set advertised.listeners to a reachable host",
                ));
            }
        }
        if !self.is_cluster() {
            return Ok(());
        }
        if self.is_controller() {
            // Without controller.quorum.voters a controller joins a running quorum found through
            // controller.quorum.bootstrap.servers: it votes once AddRaftVoter (`strom cluster
            // add-voter`) has added it.
            if !self.controller_quorum_voters.is_empty()
                && !self.controller_quorum_voters.contains_key(&self.node_id)
            {
                return Err(invalid(
                    "controller.quorum.voters",
                    &voters,
                    &format!(
                        "node.id {} has process.roles={roles} but is not one of the voters; list it, make it process.roles=broker, or start it with controller.quorum.bootstrap.servers only and add it with `strom cluster add-voter`",
                        self.node_id
                    ),
                ));
            }
            if self.controller_listener().is_none() {
                return Err(invalid(
                    "listeners",
                    &listeners,
                    "a controller needs a listener named in controller.listener.names (e.g. CONTROLLER://:9093)",
                ));
            }
        } else {
            if self.controller_quorum_voters.contains_key(&self.node_id) {
                return Err(invalid(
                    "controller.quorum.voters",
                    &voters,
                    &format!(
                        "node.id {} is listed as a voter but process.roles={roles} has no controller role: a broker-only node follows the quorum without voting; add controller to process.roles or take {} out of controller.quorum.voters",
                        self.node_id, self.node_id
                    ),
                ));
            }
            if self.controller_listener().is_some() {
                return Err(invalid(
                    "listeners",
                    &listeners,
                    &format!(
                        "a broker-only node (process.roles=broker) must not listen on controller.listener.names ({}): only controllers serve the CONTROLLER listener",
                        self.controller_listener_names.join(",")
                    ),
                ));
            }
        }
        if self.is_broker() && self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms {
            return Err(invalid(
                "broker.heartbeat.interval.ms",
                &self.broker_heartbeat_interval_ms.to_string(),
                "must be smaller than broker.session.timeout.ms",
            ));
        }
        Ok(())
    }

    /// Where a broker-only node first looks for the controllers (host:port):
    /// `controller.quorum.bootstrap.servers`, else the voters' addresses.
    pub fn controller_bootstrap_addresses(&self) -> Vec<String> {
        self.controller_quorum_bootstrap_servers
            .iter()
            .map(|(h, p)| host_port(h, *p))
            .collect()
    }

    /// `controller.quorum.voters` as node id → host:port.
    pub fn voter_addresses(&self) -> std::collections::BTreeMap<i32, String> {
        self.controller_quorum_voters
            .iter()
            .map(|(id, (h, p))| (*id, host_port(h, *p)))
            .collect()
    }
}

/// `host:port`, bracketing an IPv6 host.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
