//! The web console over HTTP: `GET /ui` (and `/ui/`) answers the page, and the page's script
//! and stylesheet are served with the content types a browser needs to run them. No broker is needed; the REST calls the script makes are covered by tests/compat.

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

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 GET; the status, headers and body.
fn get(addr: std::net::SocketAddr, path: &str) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

#[test]
fn the_console_page_and_its_assets_are_served_with_their_content_types() {
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

    let page = get(addr, "/ui");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(get(addr, "/ui/").body, page.body);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.starts_with("<!doctype html>"), "{}", page.body);
    // The page loads its own assets, from the worker, not from a CDN.
    assert!(page.body.contains(r#"<script src="/ui/console.js">"#));
    assert!(page.body.contains(r#"href="/ui/console.css""#));
    assert!(!page.body.contains("https://"), "no external resources");

    let js = get(addr, "/ui/console.js");
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    // It drives the public REST API.
    assert!(js.body.contains("/connectors?expand=status&expand=info"));
    assert!(js.body.contains("/config/validate"));

    let css = get(addr, "/ui/console.css");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.body.contains(".state-FAILED"));

    // Anything else under /ui is the API's JSON 404, not the page.
    let missing = get(addr, "/ui/no-such-file.js");
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains(r#""error_code":404"#),
        "{}",
        missing.body
    );
    rt.shutdown_background();
}
