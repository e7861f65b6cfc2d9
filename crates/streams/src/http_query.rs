//! The optional HTTP endpoint for interactive queries (`strom.query.http.enabled`), served on
//! `application.server` (or `strom.query.http.bind`). Kafka Streams leaves the RPC layer to the
//! application; this is a small ready-made one over the same stores and metadata:
//!
//! - `GET /stores/{store}/keys/{key}`: the key's value in a key-value store, 404 if absent;
//! - `GET /stores/{store}/range?from=&to=` and `GET /stores/{store}/all`: the pairs of a key-value
//!   store in this instance's partitions, `from <= key <= to` (both optional);
//! - `GET /stores/{store}/windows/{key}?from=&to=`: a window store's windows for the key whose
//!   start is in `[from, to]` (epoch ms, both optional);
//! - `GET /stores/{store}/windows?from=&to=`: every key's windows in this instance's partitions;
//! - `GET /stores/{store}/sessions/{key}?earliestEnd=&latestStart=`: a session store's sessions
//!   for the key (Kafka's ReadOnlySessionStore `fetch(key)`, or with either bound
//!   `findSessions(key, earliestSessionEndTime, latestSessionStartTime)`: sessions ending at or
//!   after `earliestEnd` and starting at or before `latestStart`, epoch ms);
//! - `GET /stores/{store}/sessions?from=&to=&earliestEnd=&latestStart=`: the sessions of the keys
//!   `from <= key <= to` (both optional) in this instance's partitions (`fetch(keyFrom, keyTo)`);
//! - `GET /metadata`: every instance; `GET /metadata/stores/{store}`: the instances holding a part
//!   of the store; `GET /metadata/keys/{store}/{key}`: the instance holding the key.
//!
//! A single-key read for a key another instance holds is answered `307 Temporary Redirect` with
//! `Location` set to the same request on that host (the JSON body names the host too), never
//! proxied: the owner answers from its own store and no request is relayed twice. While no
//! instance is known to own the key (a rebalance), or the owner is this instance but the task's
//! store is not open yet (restoring), the answer is 503. Range and all-keys reads answer for this
//! instance only (`"host"` in the body); ask every host of `/metadata/stores/{store}` for the rest.
//!
//! Errors are JSON `{"error": "..."}`: 404 for an unknown store, key or path, 400 for a read of the
//! wrong store type, a key that does not parse, an unknown query parameter, or `from` after `to`.
//!
//! Keys in requests and keys and values in answers follow the store's serde: text for String,
//! JSON numbers for i32/i64/f64 (keys are written as decimal text in the path), otherwise the
//! base64 of the serialized bytes (requests may use the standard or URL-safe alphabet, padding
//! optional; answers use standard base64 with padding).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::error::{Result, StreamsError};
use crate::metadata::{HostInfo, MetadataState, StreamsMetadata};
use crate::record::Dyn;
use crate::runtime::Registry;
use crate::serde::ErasedSerde;
use crate::state::{KvBackend, StateStore, StoreKind, split_ts};
use crate::topology::{StoreDef, Topology};

/// What the endpoint reads: the topology's store definitions, the local stores and the metadata.
pub(crate) struct QueryService {
    pub topology: Arc<Topology>,
    pub registry: Registry,
    pub metadata: Arc<MetadataState>,
    /// This instance's `application.server`, as the metadata names it.
    pub local: HostInfo,
}

/// An answer that is not a 200: status and message, as JSON `{"error": ...}`.
struct HttpError(StatusCode, String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

type HttpResult = std::result::Result<Response, HttpError>;

fn bad(e: impl std::fmt::Display) -> HttpError {
    HttpError(StatusCode::BAD_REQUEST, e.to_string())
}

fn not_found(e: impl std::fmt::Display) -> HttpError {
    HttpError(StatusCode::NOT_FOUND, e.to_string())
}

fn unavailable(e: impl std::fmt::Display) -> HttpError {
    HttpError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

fn internal(e: impl std::fmt::Display) -> HttpError {
    HttpError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// How a serde's values are written in JSON. Found by probing the type-erased serde with a value
/// of each type, since the store definition keeps no type name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repr {
    Text,
    I64,
    I32,
    F64,
    Base64,
}

fn repr(s: &ErasedSerde) -> Repr {
    let accepts = |d: Dyn| (s.ser)("", &d).is_ok();
    if accepts(Arc::new(String::new())) {
        Repr::Text
    } else if accepts(Arc::new(0i64)) {
        Repr::I64
    } else if accepts(Arc::new(0i32)) {
        Repr::I32
    } else if accepts(Arc::new(0f64)) {
        Repr::F64
    } else {
        Repr::Base64
    }
}

/// A store's definition with the serdes it is queried with.
struct Typed<'a> {
    def: &'a StoreDef,
    ks: &'a ErasedSerde,
    vs: &'a ErasedSerde,
    krepr: Repr,
    vrepr: Repr,
}

impl Typed<'_> {
    fn name(&self) -> &str {
        &self.def.name
    }

    /// A key as the client wrote it -> the bytes the store holds.
    fn key_bytes(&self, key: &str) -> std::result::Result<Vec<u8>, HttpError> {
        let name = self.name();
        let parse_err = |what: &str| {
            bad(format!(
                "key '{key}' is not {what} (the key serde of store {name})"
            ))
        };
        let d: Dyn = match self.krepr {
            Repr::Text => Arc::new(key.to_string()),
            Repr::I64 => Arc::new(key.parse::<i64>().map_err(|_| parse_err("an i64"))?),
            Repr::I32 => Arc::new(key.parse::<i32>().map_err(|_| parse_err("an i32"))?),
            Repr::F64 => Arc::new(key.parse::<f64>().map_err(|_| parse_err("an f64"))?),
            Repr::Base64 => {
                // Accept both alphabets and optional padding: keys travel in paths and queries,
                // where clients differ in what they escape.
                let norm: String = key
                    .trim_end_matches('=')
                    .chars()
                    .map(|c| match c {
                        '+' => '-',
                        '/' => '_',
                        c => c,
                    })
                    .collect();
                return URL_SAFE_NO_PAD
                    .decode(norm)
                    .map_err(|_| parse_err("base64 (the store's serde is not text or a number)"));
            }
        };
        (self.ks.ser)(name, &d).map_err(bad)
    }

    fn key_json(&self, b: &[u8]) -> Value {
        render(self.name(), self.ks, self.krepr, b)
    }

    fn value_json(&self, b: &[u8]) -> Value {
        render(self.name(), self.vs, self.vrepr, b)
    }
}

/// Stored bytes -> JSON. Bytes the serde cannot read are shown as base64 rather than failing the
/// whole answer.
fn render(name: &str, s: &ErasedSerde, r: Repr, b: &[u8]) -> Value {
    if r != Repr::Base64
        && let Ok(d) = (s.de)(name, b)
    {
        if let Some(t) = d.downcast_ref::<String>() {
            return Value::String(t.clone());
        }
        if let Some(n) = d.downcast_ref::<i64>() {
            return json!(n);
        }
        if let Some(n) = d.downcast_ref::<i32>() {
            return json!(n);
        }
        if let Some(n) = d.downcast_ref::<f64>() {
            return json!(n);
        }
    }
    Value::String(STANDARD.encode(b))
}

/// The query parameters, refusing any not in `allowed` (a misspelt `form=` must not silently
/// read everything).
fn params(
    q: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
    allowed: &[&str],
) -> std::result::Result<HashMap<String, String>, HttpError> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    if let Some(k) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown query parameter '{k}' (this endpoint takes: {})",
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        )));
    }
    Ok(q)
}

fn path<T>(p: std::result::Result<Path<T>, PathRejection>) -> std::result::Result<T, HttpError> {
    p.map(|Path(t)| t).map_err(|e| bad(e.body_text()))
}

fn parse_ms(
    q: &HashMap<String, String>,
    k: &str,
    default: i64,
) -> std::result::Result<i64, HttpError> {
    match q.get(k) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| bad(format!("{k}={v} is not a time in epoch milliseconds"))),
    }
}

fn metadata_json(m: &StreamsMetadata) -> Value {
    json!({
        "host": m.host_info.to_string(),
        "stateStoreNames": m.state_store_names,
        "topicPartitions": m.topic_partitions.iter()
            .map(|tp| format!("{}-{}", tp.topic, tp.partition)).collect::<Vec<_>>(),
        "tasks": m.tasks.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "standbyStateStoreNames": m.standby_state_store_names,
        "standbyTopicPartitions": m.standby_topic_partitions.iter()
            .map(|tp| format!("{}-{}", tp.topic, tp.partition)).collect::<Vec<_>>(),
        "standbyTasks": m.standby_tasks.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
    })
}

/// Where a single-key read is answered.
enum Answer {
    /// Here, from these backends (the key's partition, or every backend of a global store).
    Local(Vec<Arc<dyn KvBackend>>),
    /// Elsewhere: the redirect or the 503.
    Elsewhere(Response),
}

impl QueryService {
    fn def(&self, store: &str) -> std::result::Result<&StoreDef, HttpError> {
        self.topology
            .store_def(store)
            .ok_or_else(|| not_found(format!("no store '{store}' in the topology")))
    }

    fn typed(&self, store: &str, want: &str) -> std::result::Result<Typed<'_>, HttpError> {
        let def = self.def(store)?;
        let ok = match want {
            "key-value" => def.kind == StoreKind::KeyValue,
            "session" => matches!(def.kind, StoreKind::Session { .. }),
            _ => matches!(def.kind, StoreKind::Window { .. }),
        };
        if !ok {
            let is = match def.kind {
                StoreKind::KeyValue => "a key-value store (read it under /keys, /range or /all)",
                StoreKind::Window { .. } => "a window store (read it under /windows)",
                StoreKind::Session { .. } => "a session store (read it under /sessions)",
            };
            return Err(bad(format!("store '{store}' is {is}, not a {want} store")));
        }
        let (Some(ks), Some(vs)) = (&def.key_serde, &def.value_serde) else {
            return Err(bad(format!("store '{store}' has no serdes to query with")));
        };
        Ok(Typed {
            def,
            ks,
            vs,
            krepr: repr(ks),
            vrepr: repr(vs),
        })
    }

    /// Every local backend of `store`, in task order.
    fn parts(&self, store: &str) -> Vec<Arc<dyn KvBackend>> {
        self.registry
            .read()
            .get(store)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether this instance answers for `key`, and from which backends.
    fn route(&self, store: &str, key: &[u8], uri: &Uri) -> std::result::Result<Answer, HttpError> {
        let md = self.metadata.for_key_bytes(store, key).map_err(not_found)?;
        // A global store's key is on every instance.
        if md.partition < 0 {
            return Ok(Answer::Local(self.parts(store)));
        }
        if md.active_host == self.local {
            let here: Vec<_> = self
                .registry
                .read()
                .get(store)
                .map(|m| {
                    m.iter()
                        .filter(|(t, _)| t.partition == md.partition)
                        .map(|(_, b)| b.clone())
                        .collect()
                })
                .unwrap_or_default();
            if here.is_empty() {
                return Err(unavailable(format!(
                    "partition {} of store '{store}' belongs to this instance but is not open yet \
                     (restoring or rebalancing)",
                    md.partition
                )));
            }
            return Ok(Answer::Local(here));
        }
        if !md.active_host.is_available() {
            return Err(unavailable(format!(
                "no instance is known to hold partition {} of store '{store}' (rebalancing?)",
                md.partition
            )));
        }
        let target = format!(
            "http://{}{}",
            md.active_host,
            uri.path_and_query().map_or(uri.path(), |p| p.as_str())
        );
        Ok(Answer::Elsewhere(
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, target)],
                axum::Json(json!({
                    "error": format!("the key lives on {}", md.active_host),
                    "host": md.active_host.to_string(),
                    "partition": md.partition,
                })),
            )
                .into_response(),
        ))
    }
}

async fn get_key(
    State(s): State<Arc<QueryService>>,
    p: std::result::Result<Path<(String, String)>, PathRejection>,
    q: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
    uri: Uri,
) -> HttpResult {
    let (store, key) = path(p)?;
    params(q, &[])?;
    let t = s.typed(&store, "key-value")?;
    let kb = t.key_bytes(&key)?;
    let parts = match s.route(&store, &kb, &uri)? {
        Answer::Local(p) => p,
        Answer::Elsewhere(r) => return Ok(r),
    };
    for p in parts {
        if let Some(b) = p.get(&kb).map_err(internal)? {
            let (_, v) = split_ts(&b);
            return Ok(axum::Json(json!({
                "key": t.key_json(&kb),
                "value": t.value_json(&v),
                "host": s.local.to_string(),
            }))
            .into_response());
        }
    }
    Err(not_found(format!(
        "key '{key}' not found in store '{store}'"
    )))
}

async fn range(
    State(s): State<Arc<QueryService>>,
    p: std::result::Result<Path<String>, PathRejection>,
    q: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> HttpResult {
    let store = path(p)?;
    let q = params(q, &["from", "to"])?;
    read_range(&s, &store, &q)
}

async fn all(
    State(s): State<Arc<QueryService>>,
    p: std::result::Result<Path<String>, PathRejection>,
    q: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> HttpResult {
    let store = path(p)?;
    params(q, &[])?;
    read_range(&s, &store, &HashMap::new())
}

fn read_range(s: &QueryService, store: &str, q: &HashMap<String, String>) -> HttpResult {
    let t = s.typed(store, "key-value")?;
    let lo = q.get("from").map(|k| t.key_bytes(k)).transpose()?;
    let hi = q.get("to").map(|k| t.key_bytes(k)).transpose()?;
    if let (Some(l), Some(h)) = (&lo, &hi)
        && l > h
    {
        return Err(bad(format!(
            "from={} is after to={} in the store's key order",
            q.get("from").map_or("", String::as_str),
            q.get("to").map_or("", String::as_str)
        )));
    }
    let mut all = Vec::new();
    for p in s.parts(store) {
        let lo_b = lo.as_deref().map_or(Bound::Unbounded, Bound::Included);
        let hi_b = hi.as_deref().map_or(Bound::Unbounded, Bound::Included);
        for (k, v) in p.range(lo_b, hi_b).map_err(internal)? {
            all.push((k, split_ts(&v).1));
        }
    }
    // Partitions are read one after another; the answer is in one key order, as a single store's.
    all.sort();
    let entries: Vec<Value> = all
        .iter()
        .map(|(k, v)| json!({ "key": t.key_json(k), "value": t.value_json(v) }))
        .collect();
    Ok(axum::Json(json!({ "host": s.local.to_string(), "entries": entries })).into_response())
}

fn time_range(q: &HashMap<String, String>) -> std::result::Result<(i64, i64), HttpError> {
    let (from, to) = (parse_ms(q, "from", i64::MIN)?, parse_ms(q, "to", i64::MAX)?);
    if from > to {
        return Err(bad(format!("from={from} is after to={to}")));
    }
    Ok((from, to))
}

async fn key_windows(
    State(s): State<Arc<QueryService>>,
    p: std::result::Result<Path<(String, String)>, PathRejection>,
    q: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
    uri: Uri,
) -> HttpResult {
    let (store, key) = path(p)?;
    let q = params(q, &["from", "to"])?;
    let t = s.typed(&store, "window")?;
    let kb = t.key_bytes(&key)?;
    let (from, to) = time_range(&q)?;
    let parts = match s.route(&store, &kb, &uri)? {
        Answer::Local(p) => p,
        Answer::Elsewhere(r) => return Ok(r),
    };
    let mut out = Vec::new();
    for p in parts {
        let view = StateStore::new(store.clone(), t.def.kind, p, None, false);
        for (start, _, _, v) in view.window_fetch(&kb, from, to).map_err(internal)? {
            out.push((start, v));
        }
    }
    out.sort_by_key(|(start, _)| *start);
    let windows: Vec<Value> = out
        .iter()
        .map(|(start, v)| json!({ "start": start, "value": t.value_json(v) }))
        .collect();
    Ok(axum::Json(json!({
        "key": t.key_json(&kb),
        "host": s.local.to_string(),
        "windows": windows,
    }))
    .into_response())
}

async fn all_windows(
    State(s): State<Arc<QueryService>>,
    p: std::result::Result<Path<String>, PathRejection>,
    q: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> HttpResult {
    let store = path(p)?;
    let q = params(q, &["from", "to"])?;
    let t = s.typed(&store, "window")?;
    let (from, to) = time_range(&q)?;
    let mut out = Vec::new();
    for p in s.parts(&store) {
        let view = StateStore::new(store.clone(), t.def.kind, p, None, false);
        out.extend(view.window_fetch_all(from, to).map_err(internal)?);
    }
    out.sort();
    let windows: Vec<Value> = out
        .iter()
        .map(|(k, start, v)| {
            json!({ "key": t.key_json(k), "start": start, "value": t.value_json(v) })
        })
        .collect();
    Ok(axum::Json(json!({ "host": s.local.to_string(), "windows": windows })).into_response())
}

/// The session-time bounds of a session read: (earliest end, latest start), unbounded by default.
fn session_bounds(q: &HashMap<String, String>) -> std::result::Result<(i64, i64), HttpError> {
    Ok((
        parse_ms(q, "earliestEnd", i64::MIN)?,
        parse_ms(q, "latestStart", i64::MAX)?,
    ))
}

fn session_json(t: &Typed<'_>, start: i64, end: i64, v: &[u8]) -> Value {
    json!({ "start": start, "end": end, "value": t.value_json(v) })
}

async fn key_sessions(
    State(s): State<Arc<QueryService>>,
    p: std::result::Result<Path<(String, String)>, PathRejection>,
    q: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
    uri: Uri,
) -> HttpResult {
    let (store, key) = path(p)?;
    let q = params(q, &["earliestEnd", "latestStart"])?;
    let t = s.typed(&store, "session")?;
    let kb = t.key_bytes(&key)?;
    let (earliest_end, latest_start) = session_bounds(&q)?;
    let parts = match s.route(&store, &kb, &uri)? {
        Answer::Local(p) => p,
        Answer::Elsewhere(r) => return Ok(r),
    };
    let mut out = Vec::new();
    for p in parts {
        let view = StateStore::new(store.clone(), t.def.kind, p, None, false);
        out.extend(
            view.find_sessions(&kb, earliest_end, latest_start)
                .map_err(internal)?,
        );
    }
    // Kafka's session stores iterate a key's sessions by end time, then start time.
    out.sort_by_key(|(start, end, _)| (*end, *start));
    let sessions: Vec<Value> = out
        .iter()
        .map(|(start, end, v)| session_json(&t, *start, *end, v))
        .collect();
    Ok(axum::Json(json!({
        "key": t.key_json(&kb),
        "host": s.local.to_string(),
        "sessions": sessions,
    }))
    .into_response())
}

async fn range_sessions(
    State(s): State<Arc<QueryService>>,
    p: std::result::Result<Path<String>, PathRejection>,
    q: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> HttpResult {
    let store = path(p)?;
    let q = params(q, &["from", "to", "earliestEnd", "latestStart"])?;
    let t = s.typed(&store, "session")?;
    let lo = q.get("from").map(|k| t.key_bytes(k)).transpose()?;
    let hi = q.get("to").map(|k| t.key_bytes(k)).transpose()?;
    if let (Some(l), Some(h)) = (&lo, &hi)
        && l > h
    {
        return Err(bad(format!(
            "from={} is after to={} in the store's key order",
            q.get("from").map_or("", String::as_str),
            q.get("to").map_or("", String::as_str)
        )));
    }
    let (earliest_end, latest_start) = session_bounds(&q)?;
    let mut out = Vec::new();
    for p in s.parts(&store) {
        let view = StateStore::new(store.clone(), t.def.kind, p, None, false);
        out.extend(
            view.find_sessions_in_key_range(
                lo.as_deref(),
                hi.as_deref(),
                earliest_end,
                latest_start,
            )
            .map_err(internal)?,
        );
    }
    out.sort_by(|a, b| (&a.0, a.2, a.1).cmp(&(&b.0, b.2, b.1)));
    let sessions: Vec<Value> = out
        .iter()
        .map(|(k, start, end, v)| {
            let mut j = session_json(&t, *start, *end, v);
            j["key"] = t.key_json(k);
            j
        })
        .collect();
    Ok(axum::Json(json!({ "host": s.local.to_string(), "sessions": sessions })).into_response())
}

async fn key_metadata(
    State(s): State<Arc<QueryService>>,
    p: std::result::Result<Path<(String, String)>, PathRejection>,
    q: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> HttpResult {
    let (store, key) = path(p)?;
    params(q, &[])?;
    let def = s.def(&store)?;
    let Some(ks) = &def.key_serde else {
        return Err(bad(format!("store '{store}' has no key serde")));
    };
    let t = Typed {
        def,
        ks,
        vs: ks,
        krepr: repr(ks),
        vrepr: Repr::Base64,
    };
    let kb = t.key_bytes(&key)?;
    let md = s.metadata.for_key_bytes(&store, &kb).map_err(not_found)?;
    Ok(axum::Json(json!({
        "activeHost": md.active_host.to_string(),
        "available": md.active_host.is_available(),
        "standbyHosts": md.standby_hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "partition": md.partition,
    }))
    .into_response())
}

async fn store_metadata(
    State(s): State<Arc<QueryService>>,
    p: std::result::Result<Path<String>, PathRejection>,
    q: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> HttpResult {
    let store = path(p)?;
    params(q, &[])?;
    s.def(&store)?;
    let hosts: Vec<Value> = s
        .metadata
        .for_store(&store)
        .iter()
        .map(metadata_json)
        .collect();
    Ok(axum::Json(Value::Array(hosts)).into_response())
}

async fn all_metadata(
    State(s): State<Arc<QueryService>>,
    q: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> HttpResult {
    params(q, &[])?;
    let hosts: Vec<Value> = s.metadata.all().iter().map(metadata_json).collect();
    Ok(axum::Json(Value::Array(hosts)).into_response())
}

async fn no_route(uri: Uri) -> HttpError {
    not_found(format!(
        "no endpoint {} (see /stores/{{store}}/keys/{{key}}, /range, /all, /windows, /sessions, \
         /metadata)",
        uri.path()
    ))
}

async fn no_method() -> HttpError {
    HttpError(
        StatusCode::METHOD_NOT_ALLOWED,
        "the query endpoint only answers GET".into(),
    )
}

fn router(s: Arc<QueryService>) -> Router {
    Router::new()
        .route("/stores/{store}/keys/{key}", get(get_key))
        .route("/stores/{store}/range", get(range))
        .route("/stores/{store}/all", get(all))
        .route("/stores/{store}/windows/{key}", get(key_windows))
        .route("/stores/{store}/windows", get(all_windows))
        .route("/stores/{store}/sessions/{key}", get(key_sessions))
        .route("/stores/{store}/sessions", get(range_sessions))
        .route("/metadata/keys/{store}/{key}", get(key_metadata))
        .route("/metadata/stores/{store}", get(store_metadata))
        .route("/metadata", get(all_metadata))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .with_state(s)
}

/// Binds `bind` now (so a taken port fails `start()`), then serves on a thread of its own until
/// `shutdown` is set.
pub(crate) fn start(
    service: QueryService,
    bind: &HostInfo,
    shutdown: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let listener = std::net::TcpListener::bind(bind.to_string()).map_err(|e| {
        StreamsError::Streams(format!("HTTP query endpoint cannot bind {bind}: {e}"))
    })?;
    listener.set_nonblocking(true)?;
    let local: Option<SocketAddr> = listener.local_addr().ok();
    let app = router(Arc::new(service));
    let h = std::thread::Builder::new()
        .name("query-http".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "HTTP query endpoint: no runtime");
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "HTTP query endpoint: listener");
                        return;
                    }
                };
                tracing::info!(addr = ?local, "HTTP query endpoint listening");
                let stop = async move {
                    while !shutdown.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "HTTP query endpoint failed");
                }
            });
        })?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::Serdes;

    #[test]
    fn serdes_are_recognised_by_type() {
        assert_eq!(repr(&ErasedSerde::of(Serdes::string())), Repr::Text);
        assert_eq!(repr(&ErasedSerde::of(Serdes::i64())), Repr::I64);
        assert_eq!(repr(&ErasedSerde::of(Serdes::i32())), Repr::I32);
        assert_eq!(repr(&ErasedSerde::of(Serdes::f64())), Repr::F64);
        assert_eq!(repr(&ErasedSerde::of(Serdes::bytes())), Repr::Base64);
        let i = ErasedSerde::of(Serdes::i64());
        assert_eq!(render("s", &i, Repr::I64, &7i64.to_be_bytes()), json!(7));
        // Bytes an i64 serde cannot read come back as base64, not as an error.
        assert_eq!(render("s", &i, Repr::I64, &[1, 2]), json!("AQI="));
    }
}
