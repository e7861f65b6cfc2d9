//! One member of a classic group (Kafka's MemberMetadata).

use super::group::{JoinResult, SyncResult};
use bytes::Bytes;
use std::collections::HashSet;
use tokio::sync::oneshot;

/// How long a new member's JoinGroup may wait in a rebalance before it is dropped (Kafka's
/// `NewMemberJoinTimeoutMs`): a client that went away mid-join must not hold the group forever.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

#[derive(Debug)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (protocol name, member metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// Set while the member's JoinGroup waits for the rebalance to complete.
    pub awaiting_join: Option<oneshot::Sender<JoinResult>>,
    /// Set while the member's SyncGroup waits for the leader's assignment.
    pub awaiting_sync: Option<oneshot::Sender<SyncResult>>,
    /// Joined in the current rebalance and has not been answered yet.
    pub is_new: bool,
    pub last_heartbeat_ms: i64,
}

impl MemberMetadata {
    pub fn is_static(&self) -> bool {
        self.group_instance_id.is_some()
    }

    pub fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    /// The member's metadata for `protocol` (empty if it does not support it).
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    /// Same protocols with the same metadata, in the same order: a rejoin that changes nothing.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// The member's most preferred protocol among `candidates`.
    pub fn vote<'a>(&'a self, candidates: &HashSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Kafka's `shouldKeepAlive`: a member waiting for its JoinGroup answer is not expired by
    /// its session timeout (it cannot heartbeat while its request is parked), except a new member
    /// after NEW_MEMBER_JOIN_TIMEOUT_MS; a member waiting for SyncGroup gets its rebalance
    /// timeout; everyone else must heartbeat within the session timeout.
    pub fn should_keep_alive(&self, now_ms: i64) -> bool {
        if self.is_awaiting_join() {
            !self.is_new || self.last_heartbeat_ms + NEW_MEMBER_JOIN_TIMEOUT_MS > now_ms
        } else if self.awaiting_sync.is_some() {
            self.last_heartbeat_ms + i64::from(self.rebalance_timeout_ms) > now_ms
        } else {
            self.last_heartbeat_ms + i64::from(self.session_timeout_ms) > now_ms
        }
    }
}
