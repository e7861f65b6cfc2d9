//! Fast fencing of a broker whose process is gone. Kafka's controller waits the whole
//! `broker.session.timeout.ms` (9 s by default) before it moves leadership off a dead broker, so
//! every SIGKILL or crash costs its partitions that long. A crashed process leaves a host that
//! answers its listener port with a refusal (RST) at once; a hung process, a dead host or a cut
//! network do not, and keep the full session timeout.
//!
//! A refusal alone is not enough (a firewall may reject the controller yet let the broker's own
//! heartbeats through), so the caller also requires the broker to have missed a heartbeat.

use std::io::ErrorKind;
use std::time::Duration;
use strom_meta::BrokerMeta;

/// How long a connect may take before we stop probing: a refusal on a reachable host is immediate.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

/// True when every advertised listener of `broker` refuses connections right now.
pub async fn listeners_refuse(broker: &BrokerMeta) -> bool {
    if broker.listeners.is_empty() {
        return false;
    }
    for l in &broker.listeners {
        let addr = (l.host.as_str(), l.port);
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {}
            // connected, timed out, or failed some other way (unreachable, DNS): not proof of death
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_meta::BrokerEndpoint;
    use uuid::Uuid;

    fn broker_at(port: u16) -> BrokerMeta {
        BrokerMeta {
            node_id: 7,
            incarnation_id: Uuid::new_v4(),
            listeners: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port,
            }],
            rack: None,
            fenced: false,
        }
    }

    #[tokio::test]
    async fn a_listening_broker_is_not_refused_and_a_closed_port_is() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert!(!listeners_refuse(&broker_at(port)).await);
        drop(l);
        assert!(listeners_refuse(&broker_at(port)).await);
    }

    #[tokio::test]
    async fn no_listeners_is_no_proof() {
        let mut b = broker_at(1);
        b.listeners.clear();
        assert!(!listeners_refuse(&b).await);
    }
}
