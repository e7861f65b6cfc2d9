//! Group membership of a distributed worker (`WorkerGroupMember`, `WorkerCoordinator`): joins the
//! Connect group (protocol type `connect`) through the group coordinator, hands the leader's
//! assignment to the herder, and heartbeats from a thread of its own so a herder busy stopping
//! tasks does not lose its membership.
//!
//! It knows the group protocol only; what the assignment means is the herder's business.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::FindCoordinatorResponse;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::join_group_response::JoinGroupResponse;
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::leave_group_response::LeaveGroupResponse;
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{ApiKey, GroupId};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;

use super::protocol::{Assignment, PROTOCOL_NAME, PROTOCOL_TYPE, WorkerState};
use super::wire::WireClient;
use crate::error::{ConnectError, Result};

const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

/// The group settings of the worker config.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub heartbeat_interval_ms: u64,
}

/// A member's view of a completed JoinGroup.
#[derive(Clone, Debug)]
pub struct JoinResult {
    pub generation: i32,
    pub member_id: String,
    pub leader_id: String,
    /// Every member's metadata: only the leader receives it.
    pub members: Vec<(String, WorkerState)>,
}

impl JoinResult {
    pub fn is_leader(&self) -> bool {
        self.member_id == self.leader_id
    }
}

/// Why a join did not complete; the herder simply tries again.
#[derive(Debug)]
pub enum JoinError {
    /// The group moved on (rebalance, fencing): join again at once.
    Retry(String),
    /// The coordinator could not be reached or answered badly: back off, find it again.
    Fatal(ConnectError),
}

impl From<ConnectError> for JoinError {
    fn from(e: ConnectError) -> JoinError {
        JoinError::Fatal(e)
    }
}

struct Shared {
    generation: Mutex<(i32, String)>,
    /// Heartbeats run only between a successful SyncGroup and the next rejoin.
    stable: AtomicBool,
    rejoin: AtomicBool,
    stop: AtomicBool,
}

/// One worker's membership.
pub struct WorkerGroupMember {
    settings: GroupSettings,
    conn: Option<WireClient>,
    member_id: String,
    shared: Arc<Shared>,
    heartbeat: Option<JoinHandle<()>>,
}

fn group_error(api: &str, code: i16) -> String {
    let name = match code {
        COORDINATOR_NOT_AVAILABLE => "COORDINATOR_NOT_AVAILABLE",
        COORDINATOR_LOAD_IN_PROGRESS => "COORDINATOR_LOAD_IN_PROGRESS",
        NOT_COORDINATOR => "NOT_COORDINATOR",
        ILLEGAL_GENERATION => "ILLEGAL_GENERATION",
        UNKNOWN_MEMBER_ID => "UNKNOWN_MEMBER_ID",
        REBALANCE_IN_PROGRESS => "REBALANCE_IN_PROGRESS",
        MEMBER_ID_REQUIRED => "MEMBER_ID_REQUIRED",
        23 => "INCONSISTENT_GROUP_PROTOCOL",
        24 => "INVALID_GROUP_ID",
        26 => "INVALID_SESSION_TIMEOUT",
        30 => "GROUP_AUTHORIZATION_FAILED",
        _ => "",
    };
    format!("{api} failed with error code {code} {name}")
}

/// Finds the group coordinator through any bootstrap server.
fn find_coordinator(settings: &GroupSettings, read_timeout: Duration) -> Result<WireClient> {
    let mut last = String::from("bootstrap.servers is empty");
    for server in settings
        .bootstrap_servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let mut c = match WireClient::connect(server, Duration::from_secs(30)) {
            Ok(c) => c,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let group = settings.group_id.clone();
        let r: Result<(i16, FindCoordinatorResponse)> = c.send(ApiKey::FindCoordinator, 4, |v| {
            let mut req = FindCoordinatorRequest::default().with_key_type(0);
            if v >= 4 {
                req.coordinator_keys = vec![StrBytes::from_string(group)];
            } else {
                req.key = StrBytes::from_string(group);
            }
            req
        });
        let (v, resp) = match r {
            Ok(r) => r,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let (code, host, port) = if v >= 4 {
            match resp.coordinators.first() {
                Some(co) => (co.error_code, co.host.to_string(), co.port),
                None => (COORDINATOR_NOT_AVAILABLE, String::new(), 0),
            }
        } else {
            (resp.error_code, resp.host.to_string(), resp.port)
        };
        if code != 0 {
            last = group_error("FindCoordinator", code);
            continue;
        }
        return WireClient::connect(&format!("{host}:{port}"), read_timeout);
    }
    Err(ConnectError::Kafka(format!(
        "cannot find the coordinator of group {}: {last}",
        settings.group_id
    )))
}

impl WorkerGroupMember {
    pub fn new(settings: GroupSettings) -> WorkerGroupMember {
        let shared = Arc::new(Shared {
            generation: Mutex::new((-1, String::new())),
            stable: AtomicBool::new(false),
            rejoin: AtomicBool::new(true),
            stop: AtomicBool::new(false),
        });
        let heartbeat = {
            let shared = shared.clone();
            let settings = settings.clone();
            std::thread::Builder::new()
                .name("connect-heartbeat".into())
                .spawn(move || heartbeat_loop(&settings, &shared))
                .ok()
        };
        WorkerGroupMember {
            settings,
            conn: None,
            member_id: String::new(),
            shared,
            heartbeat,
        }
    }

    /// Whether the group asked for (or this worker wants) a new rebalance.
    pub fn rejoin_needed(&self) -> bool {
        self.shared.rejoin.load(Ordering::SeqCst)
    }

    /// Asks for a rebalance at the next herder tick (for example after a config change).
    pub fn request_rejoin(&self) {
        self.shared.rejoin.store(true, Ordering::SeqCst);
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.rebalance_timeout_ms.max(1000) as u64 + 10_000)
    }

    fn conn(&mut self) -> Result<&mut WireClient> {
        if self.conn.is_none() {
            self.conn = Some(find_coordinator(&self.settings, self.read_timeout())?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ConnectError::Kafka("no coordinator connection".into()))
    }

    /// Drops the coordinator connection after an error, so the next call finds it again.
    fn reset(&mut self) {
        self.conn = None;
    }

    /// JoinGroup: blocks until the coordinator has every member's join (or their timeout).
    pub fn join(&mut self, me: &WorkerState) -> std::result::Result<JoinResult, JoinError> {
        self.shared.stable.store(false, Ordering::SeqCst);
        self.shared.rejoin.store(false, Ordering::SeqCst);
        let metadata = Bytes::from(me.encode());
        for _ in 0..3 {
            let s = self.settings.clone();
            let member_id = self.member_id.clone();
            let md = metadata.clone();
            let r: Result<(i16, JoinGroupResponse)> =
                self.conn()?.send(ApiKey::JoinGroup, 7, |_| {
                    JoinGroupRequest::default()
                        .with_group_id(GroupId(StrBytes::from_string(s.group_id)))
                        .with_session_timeout_ms(s.session_timeout_ms)
                        .with_rebalance_timeout_ms(s.rebalance_timeout_ms)
                        .with_member_id(StrBytes::from_string(member_id))
                        .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
                        .with_protocols(vec![
                            JoinGroupRequestProtocol::default()
                                .with_name(StrBytes::from_static_str(PROTOCOL_NAME))
                                .with_metadata(md),
                        ])
                });
            let (_, resp) = match r {
                Ok(r) => r,
                Err(e) => {
                    self.reset();
                    return Err(JoinError::Fatal(e));
                }
            };
            match resp.error_code {
                0 => {}
                MEMBER_ID_REQUIRED => {
                    self.member_id = resp.member_id.to_string();
                    continue;
                }
                UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION => {
                    self.member_id.clear();
                    return Err(JoinError::Retry(group_error("JoinGroup", resp.error_code)));
                }
                REBALANCE_IN_PROGRESS => {
                    return Err(JoinError::Retry(group_error("JoinGroup", resp.error_code)));
                }
                code @ (NOT_COORDINATOR
                | COORDINATOR_NOT_AVAILABLE
                | COORDINATOR_LOAD_IN_PROGRESS) => {
                    self.reset();
                    return Err(JoinError::Retry(group_error("JoinGroup", code)));
                }
                code => {
                    return Err(JoinError::Fatal(ConnectError::Kafka(format!(
                        "{} (group {})",
                        group_error("JoinGroup", code),
                        self.settings.group_id
                    ))));
                }
            }
            self.member_id = resp.member_id.to_string();
            let mut members = Vec::new();
            for m in &resp.members {
                match WorkerState::decode(&m.metadata) {
                    Ok(st) => members.push((m.member_id.to_string(), st)),
                    Err(e) => {
                        tracing::warn!(member = %m.member_id, error = %e, "ignoring a member with bad metadata")
                    }
                }
            }
            *self.shared.generation.lock() = (resp.generation_id, self.member_id.clone());
            return Ok(JoinResult {
                generation: resp.generation_id,
                member_id: self.member_id.clone(),
                leader_id: resp.leader.to_string(),
                members,
            });
        }
        Err(JoinError::Retry(
            "JoinGroup asked for a member id repeatedly".into(),
        ))
    }

    /// SyncGroup: the leader sends every member's assignment; everyone gets their own back.
    pub fn sync(
        &mut self,
        join: &JoinResult,
        assignments: Vec<(String, Assignment)>,
    ) -> std::result::Result<Assignment, JoinError> {
        let s = self.settings.clone();
        let j = join.clone();
        let r: Result<(i16, SyncGroupResponse)> = self.conn()?.send(ApiKey::SyncGroup, 5, |_| {
            SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(s.group_id)))
                .with_generation_id(j.generation)
                .with_member_id(StrBytes::from_string(j.member_id))
                .with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
                .with_protocol_name(Some(StrBytes::from_static_str(PROTOCOL_NAME)))
                .with_assignments(
                    assignments
                        .into_iter()
                        .map(|(m, a)| {
                            SyncGroupRequestAssignment::default()
                                .with_member_id(StrBytes::from_string(m))
                                .with_assignment(Bytes::from(a.encode()))
                        })
                        .collect(),
                )
        });
        let (_, resp) = match r {
            Ok(r) => r,
            Err(e) => {
                self.reset();
                return Err(JoinError::Fatal(e));
            }
        };
        match resp.error_code {
            0 => {}
            code @ (REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION) => {
                return Err(JoinError::Retry(group_error("SyncGroup", code)));
            }
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                return Err(JoinError::Retry(group_error(
                    "SyncGroup",
                    UNKNOWN_MEMBER_ID,
                )));
            }
            code => {
                self.reset();
                return Err(JoinError::Retry(group_error("SyncGroup", code)));
            }
        }
        let a =
            Assignment::decode(&resp.assignment).map_err(|e| JoinError::Retry(e.to_string()))?;
        self.shared.stable.store(true, Ordering::SeqCst);
        Ok(a)
    }

    /// LeaveGroup, so the others rebalance at once instead of after the session timeout.
    pub fn leave(&mut self) {
        self.shared.stable.store(false, Ordering::SeqCst);
        if self.member_id.is_empty() {
            return;
        }
        let group = self.settings.group_id.clone();
        let member = self.member_id.clone();
        let r: Result<(i16, LeaveGroupResponse)> = self.conn().and_then(|c| {
            c.send(ApiKey::LeaveGroup, 4, |v| {
                let mut req = LeaveGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(group)));
                if v >= 3 {
                    req.members = vec![
                        MemberIdentity::default().with_member_id(StrBytes::from_string(member)),
                    ];
                } else {
                    req.member_id = StrBytes::from_string(member);
                }
                req
            })
        });
        match r {
            Ok((_, resp)) if resp.error_code == 0 => tracing::info!("left the Connect group"),
            Ok((_, resp)) => {
                tracing::warn!("{}", group_error("LeaveGroup", resp.error_code))
            }
            Err(e) => tracing::warn!(error = %e, "LeaveGroup failed"),
        }
        self.member_id.clear();
    }
}

impl Drop for WorkerGroupMember {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
    }
}

/// Heartbeats while the membership is stable; flags a rejoin when the group moves on.
fn heartbeat_loop(settings: &GroupSettings, shared: &Shared) {
    let interval = Duration::from_millis(settings.heartbeat_interval_ms.max(100));
    let mut conn: Option<WireClient> = None;
    let mut last = Instant::now();
    while !shared.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if !shared.stable.load(Ordering::SeqCst) || last.elapsed() < interval {
            continue;
        }
        last = Instant::now();
        if conn.is_none() {
            match find_coordinator(settings, Duration::from_secs(30)) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat: no coordinator");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let (generation, member) = shared.generation.lock().clone();
        let group = settings.group_id.clone();
        let r: Result<(i16, HeartbeatResponse)> = c.send(ApiKey::Heartbeat, 4, |_| {
            HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group)))
                .with_generation_id(generation)
                .with_member_id(StrBytes::from_string(member))
        });
        match r {
            Ok((_, resp)) => match resp.error_code {
                0 => {}
                code @ (REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID) => {
                    tracing::info!("{}: rejoining the group", group_error("Heartbeat", code));
                    shared.stable.store(false, Ordering::SeqCst);
                    shared.rejoin.store(true, Ordering::SeqCst);
                }
                code => {
                    tracing::warn!("{}", group_error("Heartbeat", code));
                    conn = None;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                conn = None;
            }
        }
    }
}
