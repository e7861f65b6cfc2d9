//! Followers copying their leaders' logs (Kafka's `ReplicaFetcherThread`): one task per leader
//! broker, fetching every partition this node follows on it with the ordinary Fetch request
//! carrying this node's replica id, so the leader serves it up to its log end and learns the
//! follower's progress from the fetch offset.
//!
//! A partition whose leader or leader epoch changed first truncates: it asks the leader with
//! OffsetForLeaderEpoch where its own latest epoch ended there and cuts its log at that point,
//! so records the new leader never had are dropped before fetching resumes. A Fetch answer
//! with a diverging epoch does the same later on.

use super::client::LeaderConnection;
use super::config::ReplicaConfig;
use super::partition::Partition;
use crate::broker::Broker;
use crate::error::ErrorCode;
use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderEpochRequest, OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::OffsetForLeaderEpochResponse;
use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Fetch v12: replica id in the request, last fetched epoch and diverging epoch, topic names.
const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

type Key = (Arc<str>, i32);

#[derive(Clone)]
struct FetchState {
    partition: Arc<Partition>,
    leader_epoch: i32,
    truncating: bool,
}

struct Shared {
    partitions: Mutex<HashMap<Key, FetchState>>,
    wake: Notify,
}

struct Fetcher {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// The fetcher tasks, by leader (Kafka's `ReplicaFetcherManager`).
#[derive(Default)]
pub struct ReplicaFetcherManager {
    fetchers: Mutex<HashMap<i32, Fetcher>>,
}

impl ReplicaFetcherManager {
    /// Whether `partition` is fetched from `leader` in `leader_epoch` already.
    pub fn is_fetching(&self, partition: &Partition, leader: i32, leader_epoch: i32) -> bool {
        let key = (partition.topic.clone(), partition.index);
        self.fetchers.lock().get(&leader).is_some_and(|f| {
            f.shared
                .partitions
                .lock()
                .get(&key)
                .is_some_and(|s| s.leader_epoch == leader_epoch)
        })
    }

    /// Fetch `partition` from `leader` from now on, truncating first.
    pub fn add(&self, broker: &Arc<Broker>, partition: Arc<Partition>, leader: i32, epoch: i32) {
        let key = (partition.topic.clone(), partition.index);
        let mut fetchers = self.fetchers.lock();
        for (id, f) in fetchers.iter() {
            if *id != leader {
                f.shared.partitions.lock().remove(&key);
            }
        }
        let fetcher = fetchers.entry(leader).or_insert_with(|| {
            let shared = Arc::new(Shared {
                partitions: Mutex::new(HashMap::new()),
                wake: Notify::new(),
            });
            let task = tokio::spawn(run(broker.clone(), leader, shared.clone()));
            tracing::info!(leader, "started replica fetcher");
            Fetcher { shared, task }
        });
        fetcher.shared.partitions.lock().insert(
            key,
            FetchState {
                partition,
                leader_epoch: epoch,
                truncating: true,
            },
        );
        fetcher.shared.wake.notify_one();
        Self::stop_idle(&mut fetchers);
    }

    /// Stop fetching `topic`-`partition` (it became leader, went offline or was deleted).
    pub fn remove(&self, topic: &str, partition: i32) {
        let key: Key = (Arc::from(topic), partition);
        let mut fetchers = self.fetchers.lock();
        for f in fetchers.values() {
            f.shared.partitions.lock().remove(&key);
        }
        Self::stop_idle(&mut fetchers);
    }

    fn stop_idle(fetchers: &mut HashMap<i32, Fetcher>) {
        fetchers.retain(|leader, f| {
            let idle = f.shared.partitions.lock().is_empty();
            if idle {
                f.task.abort();
                tracing::info!(leader = *leader, "stopped idle replica fetcher");
            }
            !idle
        });
    }

    pub fn shutdown(&self) {
        for (_, f) in self.fetchers.lock().drain() {
            f.task.abort();
        }
    }
}

/// The host and port of `leader`'s inter-broker listener in the current image.
pub(crate) fn leader_endpoint(broker: &Broker, leader: i32) -> Result<(String, u16), String> {
    let image = broker.metadata.image();
    let meta = image
        .brokers
        .get(&leader)
        .ok_or_else(|| format!("broker {leader} is not registered"))?;
    let wanted = broker.config.explicit.get("inter.broker.listener.name");
    let controller = &broker.config.controller_listener_names;
    let endpoint = meta
        .listeners
        .iter()
        .find(|l| match wanted {
            Some(name) => l.name.eq_ignore_ascii_case(name.trim()),
            None => !controller.iter().any(|c| c.eq_ignore_ascii_case(&l.name)),
        })
        .ok_or_else(|| format!("broker {leader} has no inter-broker listener"))?;
    Ok((endpoint.host.clone(), endpoint.port))
}

async fn run(broker: Arc<Broker>, leader: i32, shared: Arc<Shared>) {
    let config = ReplicaConfig::from_broker(&broker.config);
    let backoff = Duration::from_millis(config.fetch_backoff_ms.max(50));
    // Right after a leader change, leader and follower apply the same image moments apart: the
    // follower's first requests may meet an epoch its new leader does not know yet. Retry soon,
    // then back off towards `replica.fetch.backoff.ms` if the wait is not such a race.
    let first_pause = Duration::from_millis(20).min(backoff);
    let mut pause_for = first_pause;
    let mut conn: Option<LeaderConnection> = None;
    loop {
        if shared.partitions.lock().is_empty() {
            shared.wake.notified().await;
            continue;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                let connected = match leader_endpoint(&broker, leader) {
                    Ok((host, port)) => {
                        LeaderConnection::connect(
                            &host,
                            port,
                            &format!("strom-replica-fetcher-{}", broker.node_id()),
                            Duration::from_millis(config.socket_timeout_ms),
                            config.fetch_response_max_bytes as usize + (1 << 20),
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                match connected {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        tracing::debug!(leader, error = %e, "replica fetcher cannot reach leader");
                        let _ = tokio::time::timeout(backoff, shared.wake.notified()).await;
                        continue;
                    }
                }
            }
        };
        let states: Vec<FetchState> = shared.partitions.lock().values().cloned().collect();
        let (truncating, fetching): (Vec<_>, Vec<_>) =
            states.into_iter().partition(|s| s.truncating);
        let mut pause = false;
        if !truncating.is_empty() {
            match truncate(&broker, c, &shared, truncating).await {
                Ok(all_done) => pause |= !all_done,
                Err(e) => {
                    tracing::warn!(leader, error = %e, "OffsetForLeaderEpoch to leader failed");
                    conn = None;
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        if !fetching.is_empty() {
            match fetch(&broker, c, &shared, &config, fetching).await {
                Ok(errors) => pause |= errors,
                Err(e) => {
                    tracing::warn!(leader, error = %e, "fetch from leader failed");
                    conn = None;
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        if pause {
            // Waiting for a newer image (epochs) or for the leader to catch up with one.
            let _ = tokio::time::timeout(pause_for, shared.wake.notified()).await;
            pause_for = (pause_for * 2).min(backoff);
        } else {
            pause_for = first_pause;
        }
    }
}

/// Whether `state` is still what the fetcher holds for its partition (no leader change since).
fn still_current(shared: &Shared, state: &FetchState, truncating: bool) -> bool {
    let key = (state.partition.topic.clone(), state.partition.index);
    shared
        .partitions
        .lock()
        .get(&key)
        .is_some_and(|s| s.leader_epoch == state.leader_epoch && s.truncating == truncating)
}

fn mark_fetching(shared: &Shared, state: &FetchState) {
    let key = (state.partition.topic.clone(), state.partition.index);
    if let Some(s) = shared.partitions.lock().get_mut(&key)
        && s.leader_epoch == state.leader_epoch
    {
        s.truncating = false;
    }
}

fn mark_truncating(shared: &Shared, state: &FetchState) {
    let key = (state.partition.topic.clone(), state.partition.index);
    if let Some(s) = shared.partitions.lock().get_mut(&key)
        && s.leader_epoch == state.leader_epoch
    {
        s.truncating = true;
    }
}

fn truncate_log(partition: &Partition, offset: i64) {
    match partition.log.truncate_to(offset) {
        Ok(true) => {
            partition.clamp_high_watermark();
            tracing::info!(topic = %partition.topic, partition = partition.index, offset, "follower truncated its log");
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(topic = %partition.topic, partition = partition.index, offset, error = %e, "truncating follower log failed")
        }
    }
}

/// OffsetForLeaderEpoch for the partitions that must truncate; returns whether all finished.
async fn truncate(
    broker: &Broker,
    conn: &mut LeaderConnection,
    shared: &Shared,
    states: Vec<FetchState>,
) -> Result<bool, String> {
    let mut all_done = true;
    let mut asked = Vec::new();
    let mut topics: HashMap<Arc<str>, Vec<OffsetForLeaderPartition>> = HashMap::new();
    for s in states {
        let p = &s.partition;
        match p.log.latest_epoch() {
            // No epoch recorded (an empty log or one written before epochs were kept): only
            // what was committed is known to be on the leader.
            None => {
                truncate_log(p, p.high_watermark());
                mark_fetching(shared, &s);
            }
            Some(epoch) => {
                topics.entry(p.topic.clone()).or_default().push(
                    OffsetForLeaderPartition::default()
                        .with_partition(p.index)
                        .with_current_leader_epoch(s.leader_epoch)
                        .with_leader_epoch(epoch),
                );
                asked.push(s);
            }
        }
    }
    if asked.is_empty() {
        return Ok(true);
    }
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(broker.node_id()))
        .with_topics(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(parts)
                })
                .collect(),
        );
    let resp: OffsetForLeaderEpochResponse = conn
        .send(
            ApiKey::OffsetForLeaderEpoch,
            OFFSET_FOR_LEADER_EPOCH_VERSION,
            &req,
        )
        .await?;
    let mut answers = HashMap::new();
    for t in resp.topics {
        for p in t.partitions {
            answers.insert((t.topic.0.to_string(), p.partition), p);
        }
    }
    for s in asked {
        let p = &s.partition;
        if !still_current(shared, &s, true) {
            continue;
        }
        let Some(answer) = answers.get(&(p.topic.to_string(), p.index)) else {
            all_done = false;
            continue;
        };
        if answer.error_code != 0 {
            // Fenced / unknown epoch / not leader: the image will say more; try again later.
            tracing::debug!(topic = %p.topic, partition = p.index, error = answer.error_code, "OffsetForLeaderEpoch refused");
            all_done = false;
            continue;
        }
        let leo = p.log.log_end_offset();
        if answer.end_offset < 0 {
            // The leader knows nothing of our epoch: keep only what was committed.
            truncate_log(p, p.high_watermark());
            mark_fetching(shared, &s);
            continue;
        }
        let (own_epoch, own_end) = p.log.end_offset_for_epoch(answer.leader_epoch);
        if own_epoch == answer.leader_epoch {
            truncate_log(p, answer.end_offset.min(leo));
            mark_fetching(shared, &s);
        } else {
            // We never had the leader's epoch: cut to where our older one ended and ask again
            // with our (now older) latest epoch.
            let target = if own_end < 0 {
                p.high_watermark()
            } else {
                own_end.min(answer.end_offset)
            };
            truncate_log(p, target.min(leo));
            all_done = false;
        }
    }
    Ok(all_done)
}

/// The prefix of `records` made of whole batches.
fn whole_batches(records: &[u8]) -> usize {
    let mut at = 0usize;
    while let Some(len) = records.get(at + 8..at + 12) {
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        if len < 0 {
            break;
        }
        let next = at + 12 + len as usize;
        if next > records.len() {
            break;
        }
        at = next;
    }
    at
}

/// One Fetch for the partitions in the fetching phase; returns whether any partition answered
/// with an error that calls for a pause.
async fn fetch(
    broker: &Broker,
    conn: &mut LeaderConnection,
    shared: &Shared,
    config: &ReplicaConfig,
    states: Vec<FetchState>,
) -> Result<bool, String> {
    let mut topics: HashMap<Arc<str>, Vec<FetchPartition>> = HashMap::new();
    for s in &states {
        let p = &s.partition;
        topics.entry(p.topic.clone()).or_default().push(
            FetchPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(s.leader_epoch)
                .with_fetch_offset(p.log.log_end_offset())
                .with_last_fetched_epoch(p.log.latest_epoch().unwrap_or(-1))
                .with_log_start_offset(p.log.log_start_offset())
                .with_partition_max_bytes(config.fetch_max_bytes),
        );
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(broker.node_id()))
        .with_max_wait_ms(config.fetch_wait_max_ms)
        .with_min_bytes(config.fetch_min_bytes)
        .with_max_bytes(config.fetch_response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(parts)
                })
                .collect(),
        );
    let resp: FetchResponse = conn.send(ApiKey::Fetch, FETCH_VERSION, &req).await?;
    if resp.error_code != 0 {
        return Err(format!("fetch answered with error {}", resp.error_code));
    }
    let by_key: HashMap<(String, i32), &FetchState> = states
        .iter()
        .map(|s| ((s.partition.topic.to_string(), s.partition.index), s))
        .collect();
    let mut pause = false;
    let mut appended = false;
    for t in resp.responses {
        for pd in t.partitions {
            let Some(state) = by_key.get(&(t.topic.0.to_string(), pd.partition_index)) else {
                continue;
            };
            if !still_current(shared, state, false) {
                continue;
            }
            let p = &state.partition;
            match pd.error_code {
                0 => {}
                code if code == ErrorCode::OffsetOutOfRange.code() => {
                    let leo = p.log.log_end_offset();
                    if pd.log_start_offset > leo {
                        // Everything we have is below the leader's start: start over there.
                        tracing::warn!(topic = %p.topic, partition = p.index, leo, leader_start = pd.log_start_offset, "follower fell below the leader's log start");
                        if let Err(e) = p.log.truncate_fully_and_start_at(pd.log_start_offset) {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "resetting follower log failed");
                        }
                        p.clamp_high_watermark();
                    } else {
                        mark_truncating(shared, state);
                    }
                    continue;
                }
                code => {
                    if code != FENCED_LEADER_EPOCH
                        && code != UNKNOWN_LEADER_EPOCH
                        && code != ErrorCode::NotLeaderOrFollower.code()
                    {
                        tracing::warn!(topic = %p.topic, partition = p.index, error = code, "leader refused follower fetch");
                    }
                    pause = true;
                    continue;
                }
            }
            if pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0 {
                let div = &pd.diverging_epoch;
                let (own_epoch, own_end) = p.log.end_offset_for_epoch(div.epoch);
                let target = if own_end < 0 {
                    p.high_watermark()
                } else if own_epoch == div.epoch {
                    div.end_offset.min(own_end)
                } else {
                    own_end.min(div.end_offset)
                };
                truncate_log(p, target);
                continue;
            }
            if let Some(records) = pd.records.as_ref().filter(|r| !r.is_empty()) {
                let whole = whole_batches(records);
                let mut buf = BytesMut::from(&records[..whole]);
                skip_below(p, &mut buf);
                if !buf.is_empty() {
                    match p
                        .log
                        .append_as_follower(&mut buf, crate::handlers::now_ms())
                    {
                        Ok(_) => appended = true,
                        Err(e) => {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "appending fetched records failed");
                            pause = true;
                        }
                    }
                }
            }
            p.update_follower_high_watermark(pd.high_watermark);
            follow_log_start(p, pd.log_start_offset);
        }
    }
    if appended {
        broker.notify_appended();
    }
    Ok(pause)
}

/// Moves the follower's log start up to the leader's (DeleteRecords, retention on the leader),
/// never past its own high watermark, so deleted records stay deleted after a failover.
fn follow_log_start(p: &Partition, leader_log_start: i64) {
    let hw = p.high_watermark();
    let target = leader_log_start.min(hw);
    if target <= p.log.log_start_offset() {
        return;
    }
    if let Err(e) = p.log.delete_records_before(target, hw) {
        tracing::debug!(topic = %p.topic, partition = p.index, target, error = %e, "following the leader's log start failed");
    }
}

/// Drops batches wholly below the log end (a leader answers with the batch holding the fetch
/// offset); a batch straddling the end means our tail differs in batching: cut to its start.
fn skip_below(p: &Partition, buf: &mut BytesMut) {
    let leo = p.log.log_end_offset();
    loop {
        let Some(head) = buf.get(0..12) else { return };
        let base = i64::from_be_bytes([
            head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7],
        ]);
        let len = i32::from_be_bytes([head[8], head[9], head[10], head[11]]).max(0) as usize;
        let Some(delta) = buf.get(23..27) else { return };
        let last = base + i64::from(i32::from_be_bytes([delta[0], delta[1], delta[2], delta[3]]));
        if base >= leo {
            return;
        }
        if last >= leo {
            truncate_log(p, base);
            return;
        }
        let _ = buf.split_to((12 + len).min(buf.len()));
    }
}
