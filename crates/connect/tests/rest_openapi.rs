//! `GET /openapi.json` over HTTP, and every operation the document lists answered by the server
//! through a route of its own (not the router's 404 / 405 fallback). Requests use made-up names
//! and empty bodies, so they fail on purpose before changing anything. No broker is needed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use strom_connect::rest::{RestState, router};
use strom_connect::*;

fn herder(dir: &tempfile::TempDir) -> StandaloneHerder {
    let mut props: ConfigMap = [
        ("bootstrap.servers", "127.0.0.1:1"),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    props.insert(
        "offset.storage.file.filename".into(),
        dir.path().join("offsets").display().to_string(),
    );
    let worker =
        Worker::new(WorkerConfig::standalone(props).expect("worker config")).expect("worker");
    StandaloneHerder::new(Arc::new(worker), Plugins::new())
}

/// One HTTP/1.1 request; the status and the body.
fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

#[test]
fn the_server_serves_its_description_and_every_operation_in_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let state = Arc::new(RestState {
        herder: Arc::new(herder(&dir)),
        kafka_cluster_id: None,
    });
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move { axum::serve(listener, router(state)).await });

    let (status, body) = request(addr, "GET", "/openapi.json");
    assert_eq!(status, 200);
    let served: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/connect-openapi.json"
        ))
        .expect("docs/connect-openapi.json"),
    )
    .expect("JSON");
    assert_eq!(served, shipped, "the server serves the shipped document");

    let paths = served["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20);
    for (path, item) in paths {
        let concrete = path
            .replace("{name}", "no-such-connector")
            .replace("{task}", "0")
            .replace("{plugin}", "NoSuchPlugin")
            .replace("{logger}", "strom_connect");
        for method in item.as_object().expect("item").keys() {
            let (status, body) = request(addr, &method.to_uppercase(), &concrete);
            assert_ne!(status, 405, "{method} {path}: {body}");
            assert!(
                !body.contains("HTTP 404 Not Found"),
                "{method} {path} reached no route: {status} {body}"
            );
            if status >= 400 {
                let err: serde_json::Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"));
                if path != "/health" {
                    assert_eq!(err["error_code"], status, "{method} {path}: {body}");
                    assert!(err["message"].is_string(), "{method} {path}: {body}");
                }
            }
        }
    }
    // And the fallback does answer what is not in the document.
    let (status, body) = request(addr, "GET", "/no/such/path");
    assert_eq!(status, 404);
    assert!(body.contains("HTTP 404 Not Found"));
    rt.shutdown_background();
}
