//! Forwarding of REST requests that change cluster state to the group leader (Kafka's
//! `RestClient` and the `forward` query parameter of `ConnectorsResource`).
//!
//! In distributed mode only the leader writes connector configs and target states to the config
//! topic, so a follower passes such requests on, unchanged, to the leader's advertised URL with
//! `forward=false` added (which stops a second hop). While a rebalance is in progress there is no
//! leader to ask: the request waits for one (bounded) instead of failing at once, and only then
//! answers 409 as Kafka does. This module owns no herder state; it only asks
//! [`Herder::leader_route`](crate::herder_api::Herder::leader_route).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::herder_api::LeaderRoute;
use crate::rest::{ApiError, AppState, query_params};

/// How long a request waits for a rebalance to finish before it is answered 409.
const REBALANCE_WAIT: Duration = Duration::from_secs(20);
/// The largest request body forwarded (connector configs are small).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Whether Kafka's herder would run this request on the leader.
fn needs_leader(method: &Method, path: &str) -> bool {
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return false;
    }
    // Task restarts go to the task's worker (the herder forwards them itself); validation and
    // logger changes are answered by any worker.
    path.starts_with("/connectors") && !path.contains("/tasks/")
}

/// The middleware: handles locally, forwards to the leader, or waits out a rebalance.
pub async fn forward_to_leader(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let forwarded = query_params(&query)
        .iter()
        .any(|(k, v)| k == "forward" && v.eq_ignore_ascii_case("false"));
    if forwarded || !needs_leader(req.method(), &path) {
        return next.run(req).await;
    }
    let deadline = Instant::now() + REBALANCE_WAIT;
    loop {
        match s.herder.leader_route() {
            LeaderRoute::Local => return next.run(req).await,
            LeaderRoute::Forward(url) => return proxy(req, &url, &path, query).await,
            LeaderRoute::Rebalancing if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            LeaderRoute::Rebalancing => {
                return ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "Cannot complete request {} {path} because of a conflicting operation \
                         (e.g. worker rebalance): no group leader was elected within {} s",
                        req.method(),
                        REBALANCE_WAIT.as_secs()
                    ),
                )
                .into_response();
            }
        }
    }
}

async fn proxy(req: Request, leader_url: &str, path: &str, query: Option<String>) -> Response {
    let method = req.method().to_string();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("Cannot read request body: {e}"),
            )
            .into_response();
        }
    };
    let target = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{path}?{q}&forward=false"),
        None => format!("{path}?forward=false"),
    };
    let url = leader_url.to_string();
    let what = format!("{method} {path}");
    let result = tokio::task::spawn_blocking(move || {
        http_request(&url, &method, &target, Some(&body), Duration::from_secs(90))
    })
    .await;
    match result {
        Ok(Ok(resp)) => {
            let mut out = Response::new(Body::from(resp.body));
            *out.status_mut() =
                StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            for (k, v) in [
                (header::CONTENT_TYPE, resp.content_type),
                (header::LOCATION, resp.location),
            ] {
                if let Some(v) = v.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    out.headers_mut().insert(k, v);
                }
            }
            out
        }
        Ok(Err(e)) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "Error trying to forward REST request {what} to the leader at {leader_url}: {e}"
            ),
        )
        .into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Forwarding {what} failed: {e}"),
        )
        .into_response(),
    }
}

/// One HTTP answer.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body: Bytes,
}

/// A blocking HTTP/1.1 request to another worker (`http://host:port/`), one connection each.
pub fn http_request(
    base_url: &str,
    method: &str,
    path_and_query: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<HttpResponse> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let host = base_url
        .strip_prefix("http://")
        .ok_or_else(|| bad(format!("unsupported worker URL {base_url} (http only)")))?
        .trim_end_matches('/');
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)?
        .next()
        .ok_or_else(|| bad(format!("cannot resolve {host}")))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("truncated HTTP response".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut payload = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("bad HTTP status line in {head:?}")))?;
    let (mut content_type, mut location, mut chunked) = (None, None, false);
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim().to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-type" => content_type = Some(v),
                "location" => location = Some(v),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
    }
    if chunked {
        payload = dechunk(&payload).ok_or_else(|| bad("bad chunked HTTP body".into()))?;
    }
    Ok(HttpResponse {
        status,
        content_type,
        location,
        body: Bytes::from(payload),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_only_requests() {
        assert!(needs_leader(&Method::POST, "/connectors"));
        assert!(needs_leader(&Method::PUT, "/connectors/a/config"));
        assert!(needs_leader(&Method::DELETE, "/connectors/a"));
        assert!(!needs_leader(&Method::GET, "/connectors/a/status"));
        assert!(!needs_leader(
            &Method::POST,
            "/connectors/a/tasks/0/restart"
        ));
        assert!(!needs_leader(
            &Method::PUT,
            "/connector-plugins/FileStreamSource/config/validate"
        ));
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").as_deref(),
            Some(&b"abcde"[..])
        );
    }
}
