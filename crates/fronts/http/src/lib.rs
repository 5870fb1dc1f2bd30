//! # strata-http: the HTTP front (port 8080)
//!
//! Decodes HTTP requests, calls blocks, encodes JSON answers; holds no business logic.
//!
//! - `/v1/kv/...`: the durable key-value API (see `kv.rs` for the routes).
//! - `GET /health`: liveness, with the store's newest commit sequence number.
//! - `GET /metrics`: Prometheus text for every block (counters and latency histograms).
//!
//! Blocking store calls run on tokio's blocking pool, never on a reactor thread. Bodies are
//! bounded: a KV value by `kv.max_value_bytes`, any other body by `http.max_body_bytes`.
//!
//! ## Limitations
//!
//! - Keys in URLs must be UTF-8 (percent-encoded as needed); binary keys are reachable only
//!   through listings and batches that carry them as UTF-8.
//! - No authentication yet: the front refuses (in the binary) to bind a non-loopback address.

mod error;
mod kv;
mod observe;

pub use error::ApiError;
pub use observe::metrics_handle;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::future::Future;
use strata_kv::Kv;
use tokio::net::TcpListener;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub kv: Kv,
    pub metrics: PrometheusHandle,
    /// Largest request body accepted where no block limit applies.
    pub max_body_bytes: usize,
    /// Becomes `true` when the server shuts down, to end long-lived streams.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// The HTTP API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(observe::health))
        .route("/metrics", get(observe::metrics))
        .route("/v1/kv/{ns}", get(kv::list).post(kv::batch))
        .route("/v1/kv/{ns}/{*key}", get(kv::get).put(kv::put).delete(kv::delete))
        .layer(axum::middleware::from_fn(observe::track))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
