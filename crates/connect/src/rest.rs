//! The Connect REST API (`ConnectRestServer` and its resources): same paths, bodies and status
//! codes as Kafka Connect; errors as `{"error_code": <status>, "message": "..."}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::config_def::ConfigMap;
use crate::connector::ConnectorType;
use crate::converter::CONVERTER_CLASSES;
use crate::herder::{HerderError, TargetState};
use crate::herder_api::Herder;
use crate::properties::json_to_config_map;
use crate::transforms::{PREDICATE_CLASSES, TRANSFORM_CLASSES};

/// Shared by every handler.
pub struct RestState {
    pub herder: Arc<dyn Herder>,
    pub kafka_cluster_id: Option<String>,
}

pub(crate) type AppState = Arc<RestState>;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.status.as_u16(), "message": self.message});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<HerderError> for ApiError {
    fn from(e: HerderError) -> ApiError {
        let status = match &e {
            HerderError::NotFound(_) => StatusCode::NOT_FOUND,
            HerderError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HerderError::Conflict(_) => StatusCode::CONFLICT,
            HerderError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Runs a herder call off the async threads: stopping tasks waits for their threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HerderError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("request handler failed: {e}"),
        )),
    }
}

pub(crate) fn query_params(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bool_param(params: &[(String, String)], key: &str, default: bool) -> Result<bool, ApiError> {
    match params.iter().rev().find(|(k, _)| k == key) {
        None => Ok(default),
        Some((_, v)) => match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ApiError::bad_request(format!(
                "Invalid value {v} for query parameter {key}: expected true or false"
            ))),
        },
    }
}

fn parse_json(body: &Bytes) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Request body is not valid JSON: {e}")))
}

fn config_from_body(v: &serde_json::Value) -> Result<ConfigMap, ApiError> {
    json_to_config_map(v).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Declares every route once: [`ROUTES`] (path and methods, which the OpenAPI test compares
/// with docs/connect-openapi.json) and the router built from the same lines, so the two cannot
/// drift apart. The web console's `/ui` routes are not in this table on purpose: they are not
/// part of Kafka Connect's REST API, so [`router`] merges them from [`crate::web_console`].
macro_rules! route_table {
    ($($path:literal => { $($method:ident: $handler:path),+ $(,)? }),+ $(,)?) => {
        /// Every route the REST server serves: its path (axum's `{param}` syntax, as OpenAPI's)
        /// and its methods, lower case.
        pub const ROUTES: &[(&str, &[&str])] = &[$(($path, &[$(stringify!($method)),+])),+];

        fn routes() -> Router<AppState> {
            Router::new()
                $(.route($path, axum::routing::MethodRouter::new()$(.$method($handler))+))+
        }
    };
}

route_table! {
    "/" => { get: root },
    "/health" => { get: health },
    "/openapi.json" => { get: crate::rest_openapi::openapi },
    "/connectors" => { get: list_connectors, post: create_connector },
    "/connectors/{name}" => { get: get_connector, delete: delete_connector },
    "/connectors/{name}/config" => {
        get: get_connector_config,
        put: put_connector_config,
        patch: patch_connector_config,
    },
    "/connectors/{name}/status" => { get: connector_status },
    "/connectors/{name}/restart" => { post: restart_connector },
    "/connectors/{name}/pause" => { put: pause_connector },
    "/connectors/{name}/resume" => { put: resume_connector },
    "/connectors/{name}/stop" => { put: stop_connector },
    "/connectors/{name}/tasks" => { get: task_configs },
    "/connectors/{name}/tasks/{task}/status" => { get: task_status },
    "/connectors/{name}/tasks/{task}/restart" => { post: restart_task },
    "/connectors/{name}/offsets" => {
        get: connector_offsets,
        patch: alter_connector_offsets,
        delete: reset_connector_offsets,
    },
    "/connectors/{name}/topics" => { get: connector_topics },
    "/connectors/{name}/topics/reset" => { put: reset_connector_topics },
    "/admin/loggers" => { get: list_loggers },
    "/admin/loggers/{logger}" => { get: get_logger, put: put_logger },
    "/connector-plugins" => { get: list_plugins },
    "/connector-plugins/{plugin}/config" => { get: plugin_config },
    "/connector-plugins/{plugin}/config/validate" => { put: validate_config },
}

/// The REST router.
pub fn router(state: AppState) -> Router {
    routes()
        .merge(crate::web_console::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::rest_forward::forward_to_leader,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "HTTP 404 Not Found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTP 405 Method Not Allowed",
    )
}

async fn root(State(s): State<AppState>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "commit": "strom",
            "kafka_cluster_id": s.kafka_cluster_id,
        }),
    )
}

async fn list_connectors(State(s): State<AppState>, RawQuery(q): RawQuery) -> ApiResult {
    let params = query_params(&q);
    let expand: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "expand")
        .map(|(_, v)| v.as_str())
        .collect();
    let herder = s.herder.clone();
    if expand.is_empty() {
        return Ok(json_response(StatusCode::OK, &herder.connectors()));
    }
    let want_status = expand.contains(&"status");
    let want_info = expand.contains(&"info");
    let out = blocking(move || {
        let mut out = serde_json::Map::new();
        for name in herder.connectors() {
            let mut entry = serde_json::Map::new();
            // A connector deleted meanwhile is skipped, as Kafka does.
            if want_status && let Ok(st) = herder.status(&name) {
                entry.insert("status".into(), json!(st));
            }
            if want_info && let Ok(info) = herder.connector_info(&name) {
                entry.insert("info".into(), json!(info));
            }
            out.insert(name, serde_json::Value::Object(entry));
        }
        Ok(out)
    })
    .await?;
    Ok(json_response(StatusCode::OK, &out))
}

fn location(name: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/connectors/{}", url_encode(name))) {
        h.insert(header::LOCATION, v);
    }
    h
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn create_connector(State(s): State<AppState>, body: Bytes) -> ApiResult {
    let v = parse_json(&body)?;
    let name = v
        .get("name")
        .and_then(|n| n.as_str())
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::bad_request("Connector name must not be empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "Connector name must not contain ISO control characters",
        ));
    }
    let config = match v.get("config") {
        Some(c) => config_from_body(c)?,
        None => {
            return Err(ApiError::bad_request(
                "Connector config must be provided in the \"config\" field",
            ));
        }
    };
    if let Some(n) = config.get("name")
        && n != &name
    {
        return Err(ApiError::bad_request(format!(
            "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
        )));
    }
    let initial = match v.get("initial_state").and_then(|s| s.as_str()) {
        None => TargetState::Started,
        Some(st) => match st.to_ascii_uppercase().as_str() {
            "RUNNING" => TargetState::Started,
            "PAUSED" => TargetState::Paused,
            "STOPPED" => TargetState::Stopped,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid initial state {st}: expected RUNNING, PAUSED or STOPPED"
                )));
            }
        },
    };
    let herder = s.herder.clone();
    let n = name.clone();
    let (_, info) =
        blocking(move || herder.put_connector_config(&n, config, false, initial)).await?;
    Ok((StatusCode::CREATED, location(&name), axum::Json(info)).into_response())
}

async fn get_connector(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let info = s.herder.connector_info(&name)?;
    Ok(json_response(StatusCode::OK, &info))
}

async fn delete_connector(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let herder = s.herder.clone();
    let deleted = name.clone();
    blocking(move || herder.delete(&name)).await?;
    crate::active_topics::reset(&deleted);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn connector_topics(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    s.herder.connector_info(&name)?;
    let topics = crate::active_topics::topics(&name);
    Ok(json_response(
        StatusCode::OK,
        &json!({ name: {"topics": topics} }),
    ))
}

async fn reset_connector_topics(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    s.herder.connector_info(&name)?;
    crate::active_topics::reset(&name);
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn get_connector_config(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        &s.herder.connector_config(&name)?,
    ))
}

async fn put_connector_config(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let config = config_from_body(&parse_json(&body)?)?;
    if let Some(n) = config.get("name")
        && n != &name
    {
        return Err(ApiError::bad_request(format!(
            "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
        )));
    }
    let herder = s.herder.clone();
    let n = name.clone();
    let (created, info) =
        blocking(move || herder.put_connector_config(&n, config, true, TargetState::Started))
            .await?;
    if created {
        Ok((StatusCode::CREATED, location(&name), axum::Json(info)).into_response())
    } else {
        Ok(json_response(StatusCode::OK, &info))
    }
}

/// `PATCH /connectors/{name}/config` (KIP-477): keys in the body replace the connector's, keys
/// set to `null` are removed; the result is validated like a PUT.
async fn patch_connector_config(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let patch = parse_json(&body)?;
    let Some(patch) = patch.as_object() else {
        return Err(ApiError::bad_request(
            "Connector config patch must be a JSON object",
        ));
    };
    let mut config = s.herder.connector_config(&name)?;
    for (k, v) in patch {
        match v {
            serde_json::Value::Null => {
                config.remove(k);
            }
            serde_json::Value::String(v) => {
                config.insert(k.clone(), v.clone());
            }
            other => {
                config.insert(k.clone(), other.to_string());
            }
        }
    }
    if let Some(n) = config.get("name")
        && n != &name
    {
        return Err(ApiError::bad_request(format!(
            "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
        )));
    }
    let herder = s.herder.clone();
    let (_, info) =
        blocking(move || herder.put_connector_config(&name, config, true, TargetState::Started))
            .await?;
    Ok(json_response(StatusCode::OK, &info))
}

/// `GET /health` (KIP-1017): 200 once the worker can serve requests, 503 while it starts.
async fn health(State(s): State<AppState>) -> Response {
    if s.herder.ready() {
        json_response(
            StatusCode::OK,
            &json!({"status": "healthy",
                    "message": "Worker has completed startup and is ready to handle requests."}),
        )
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "starting",
                    "message": "Worker is still starting up: it has not joined its Connect group yet."}),
        )
    }
}

async fn connector_status(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    Ok(json_response(StatusCode::OK, &s.herder.status(&name)?))
}

async fn restart_connector(
    State(s): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params = query_params(&q);
    let include_tasks = bool_param(&params, "includeTasks", false)?;
    let only_failed = bool_param(&params, "onlyFailed", false)?;
    let herder = s.herder.clone();
    let st = blocking(move || {
        herder.restart_connector(&name, include_tasks, only_failed)?;
        herder.status(&name)
    })
    .await?;
    // Kafka: the plain form answers 204; with either flag, 202 and the status.
    if !include_tasks && !only_failed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(json_response(StatusCode::ACCEPTED, &st))
    }
}

async fn pause_connector(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let herder = s.herder.clone();
    blocking(move || herder.pause(&name)).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn resume_connector(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let herder = s.herder.clone();
    blocking(move || herder.resume(&name)).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn stop_connector(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let herder = s.herder.clone();
    blocking(move || herder.stop(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn task_configs(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        &s.herder.task_configs(&name)?,
    ))
}

fn task_id(name: &str, task: &str) -> Result<usize, ApiError> {
    task.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Task {name}-{task} not found"),
        )
    })
}

async fn task_status(
    State(s): State<AppState>,
    Path((name, task)): Path<(String, String)>,
) -> ApiResult {
    let id = task_id(&name, &task)?;
    Ok(json_response(
        StatusCode::OK,
        &s.herder.task_status(&name, id)?,
    ))
}

async fn restart_task(
    State(s): State<AppState>,
    Path((name, task)): Path<(String, String)>,
) -> ApiResult {
    let id = task_id(&name, &task)?;
    let herder = s.herder.clone();
    blocking(move || herder.restart_task(&name, id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn connector_offsets(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let offsets = s.herder.offsets(&name)?;
    let list: Vec<serde_json::Value> = offsets
        .into_iter()
        .map(|(p, o)| json!({"partition": p, "offset": o}))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "offsets": list })))
}

/// The `{"offsets": [{"partition": {..}, "offset": {..} | null}]}` body of an alter request.
fn offsets_from_body(v: &serde_json::Value) -> Result<crate::herder_api::OffsetChanges, ApiError> {
    let list = v
        .get("offsets")
        .and_then(|o| o.as_array())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "Partitions / offsets need to be provided for an alter offsets request",
            )
        })?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let partition = match item.get("partition") {
            Some(serde_json::Value::Object(p)) => p.clone(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "offsets[{i}].partition must be a JSON object (the source partition)"
                )));
            }
        };
        let offset = match item.get("offset") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Object(o)) => Some(o.clone()),
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "offsets[{i}].offset must be a JSON object (the source offset) or null"
                )));
            }
        };
        out.push((partition, offset));
    }
    Ok(Some(out))
}

async fn alter_connector_offsets(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let changes = offsets_from_body(&parse_json(&body)?)?;
    let herder = s.herder.clone();
    blocking(move || herder.alter_offsets(&name, changes)).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"message": "The offsets for this connector have been altered successfully"}),
    ))
}

async fn reset_connector_offsets(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let herder = s.herder.clone();
    blocking(move || herder.alter_offsets(&name, None)).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"message": "The offsets for this connector have been reset successfully"}),
    ))
}

fn logger_json((level, modified): (String, Option<i64>)) -> serde_json::Value {
    json!({"level": level, "last_modified": modified})
}

async fn list_loggers() -> ApiResult {
    let all: serde_json::Map<String, serde_json::Value> = crate::loggers::all()
        .into_iter()
        .map(|(k, v)| (k, logger_json(v)))
        .collect();
    Ok(json_response(StatusCode::OK, &all))
}

async fn get_logger(Path(logger): Path<String>) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        &logger_json(crate::loggers::level(&logger)),
    ))
}

async fn put_logger(Path(logger): Path<String>, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let params = query_params(&q);
    if let Some((_, scope)) = params.iter().rev().find(|(k, _)| k == "scope")
        && !scope.eq_ignore_ascii_case("worker")
    {
        return Err(ApiError::bad_request(format!(
            "Invalid value {scope} for query parameter scope: strom changes log levels per \
             worker only (scope=worker)"
        )));
    }
    let v = parse_json(&body)?;
    let level = v.get("level").and_then(|l| l.as_str());
    match crate::loggers::set_level(&logger, level) {
        Ok(affected) => Ok(json_response(StatusCode::OK, &affected)),
        Err(e) => {
            let status = match e {
                crate::loggers::LoggerError::MissingLevel => StatusCode::BAD_REQUEST,
                crate::loggers::LoggerError::InvalidLevel(_) => StatusCode::NOT_FOUND,
                crate::loggers::LoggerError::Unavailable(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Err(ApiError::new(status, e.to_string()))
        }
    }
}

#[derive(Serialize)]
struct PluginInfo {
    class: String,
    #[serde(rename = "type")]
    plugin_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

async fn list_plugins(State(s): State<AppState>, RawQuery(q): RawQuery) -> ApiResult {
    let params = query_params(&q);
    let connectors_only = bool_param(&params, "connectorsOnly", true)?;
    let version = env!("CARGO_PKG_VERSION").to_string();
    let mut out: Vec<PluginInfo> = s
        .herder
        .plugins()
        .connectors()
        .iter()
        .map(|p| PluginInfo {
            class: p.class_name.to_string(),
            plugin_type: match p.connector_type() {
                ConnectorType::Source => "source",
                ConnectorType::Sink => "sink",
            },
            version: Some(p.version.to_string()),
        })
        .collect();
    out.sort_by(|a, b| a.class.cmp(&b.class));
    if !connectors_only {
        for (classes, t) in [
            (CONVERTER_CLASSES, "converter"),
            (TRANSFORM_CLASSES, "transformation"),
            (PREDICATE_CLASSES, "predicate"),
        ] {
            for c in classes {
                out.push(PluginInfo {
                    class: c.to_string(),
                    plugin_type: t,
                    version: Some(version.clone()),
                });
            }
        }
    }
    Ok(json_response(StatusCode::OK, &out))
}

async fn plugin_config(State(s): State<AppState>, Path(plugin): Path<String>) -> ApiResult {
    let p =
        s.herder.plugins().find(&plugin).copied().ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("Unknown plugin {plugin}."))
        })?;
    let def = p.instantiate().as_connector().config();
    Ok(json_response(StatusCode::OK, &def.key_infos()))
}

async fn validate_config(
    State(s): State<AppState>,
    Path(plugin): Path<String>,
    body: Bytes,
) -> ApiResult {
    let mut config = config_from_body(&parse_json(&body)?)?;
    let plugins = s.herder.plugins();
    match config.get("connector.class") {
        Some(c) => {
            let same = c == &plugin || plugins.find(c).is_some_and(|p| p.matches(&plugin));
            if !same {
                return Err(ApiError::bad_request(format!(
                    "Included connector type {c} does not match request type {plugin}"
                )));
            }
        }
        None => {
            config.insert("connector.class".to_string(), plugin.clone());
        }
    }
    let herder = s.herder.clone();
    let infos = blocking(move || herder.validate(&config)).await?;
    Ok(json_response(StatusCode::OK, &infos))
}
