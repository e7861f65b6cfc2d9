//! The web console: a small single-page app served by the worker at `GET /ui` (assets under
//! `/ui/...`) that drives the public Connect REST API from the browser.
//!
//! This module owns only the serving of the console's files, which are embedded in the binary
//! (`include_str!`) so a worker needs no web root, npm build or CDN. Everything the console shows
//! or changes goes through the same REST endpoints a user would call with curl; it has no
//! private API. Its routes are kept out of [`crate::rest::ROUTES`] on purpose: that table is the
//! Kafka Connect REST API, which docs/connect-openapi.json describes and a test compares both
//! ways, and the console is not part of that API.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page itself.
pub const INDEX_HTML: &str = include_str!("web_console/index.html");
/// The styles.
pub const CONSOLE_CSS: &str = include_str!("web_console/console.css");
/// The script that calls the REST API and renders the page.
pub const CONSOLE_JS: &str = include_str!("web_console/console.js");

/// The console's routes, every one a GET of an embedded file.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        // The page names its assets by absolute path, so it works at `/ui` and `/ui/` alike.
        .route(
            "/ui",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/ui/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/ui/index.html",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/ui/console.css",
            get(|| async { asset(CONSOLE_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/ui/console.js",
            get(|| async { asset(CONSOLE_JS, "text/javascript; charset=utf-8") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // The files change with the binary; a browser should not keep an old script after
            // the worker is upgraded.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}
