//! The HTTP endpoint of `metrics.listener`: GET /metrics answers the Prometheus text format,
//! every other path 404.

use super::exposition::CONTENT_TYPE;
use crate::broker::Broker;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves until the process ends; a failing accept is logged by axum and retried.
pub async fn serve(broker: Arc<Broker>, socket: TcpListener) {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found; metrics are at /metrics\n",
            )
        })
        .with_state(broker);
    if let Err(e) = axum::serve(socket, app).await {
        tracing::error!(error = %e, "metrics endpoint stopped (metrics.listener)");
    }
}

async fn scrape(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    // Rendering takes the group and partition locks briefly: off the async workers.
    let body = tokio::task::spawn_blocking(move || super::render(&broker)).await;
    match body {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "rendering metrics failed\n".to_string(),
        ),
    }
}
