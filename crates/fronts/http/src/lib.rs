//! # strata-http: the HTTP front (port 8080)
//!
//! Decodes HTTP requests, calls blocks, encodes JSON answers; holds no business logic.
//!
//! - `/v1/kv/...`: the durable key-value API (see `kv.rs` for the routes).
//! - `/v1/blob/...`: access keys and presigned links of the blob block; `/blob/...`:
//!   public objects, the CDN's origin (see `blob.rs`).
//! - `/v1/streams/views...`: windowed views of the stream block (see `streams.rs`).
//! - `/v1/locks/...`: leases of the lock block (see `locks.rs`).
//! - `/v1/edge/routes...`: the proxy's routes, changed at runtime (see `edge.rs`).
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
//! - Authentication is one shared API key (`http.api_key`); per-consumer keys and JWT come
//!   with the edge.

mod blob;
mod edge;
mod error;
mod kv;
mod locks;
mod observe;
mod streams;

pub use blob::BlobApi;
pub use error::ApiError;
pub use observe::metrics_handle;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::future::Future;
use strata_kv::Kv;
use tokio::net::TcpListener;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub kv: Kv,
    /// The blob block's admin API and public objects, when the block is on.
    pub blob: Option<BlobApi>,
    /// The stream block's windowed views, when the block is on.
    pub views: Option<strata_stream::views::Views>,
    /// The lock block, when it is on.
    pub locks: Option<strata_lock::Locks>,
    /// The proxy's route table, when the proxy is on.
    pub edge: Option<strata_edge::Edge>,
    pub metrics: PrometheusHandle,
    /// Largest request body accepted where no block limit applies.
    pub max_body_bytes: usize,
    /// When set, `/v1/*` requires `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Becomes `true` when the server shuts down, to end long-lived streams.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// The HTTP API's routes.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/kv/{ns}", get(kv::list).post(kv::batch))
        .route("/v1/kv/{ns}/{*key}", get(kv::get).put(kv::put).delete(kv::delete))
        .route("/v1/blob/keys", get(blob::list_keys).post(blob::create_key))
        .route("/v1/blob/keys/{access_key}", axum::routing::delete(blob::revoke_key))
        .route("/v1/blob/links", axum::routing::post(blob::create_link))
        .route("/v1/streams/views", get(streams::list_views).post(streams::create_view))
        .route("/v1/streams/views/{name}", get(streams::get_view).delete(streams::delete_view))
        .route("/v1/locks/acquire", axum::routing::post(locks::acquire))
        .route("/v1/locks/release", axum::routing::post(locks::release))
        .route("/v1/locks/extend", axum::routing::post(locks::extend))
        .route("/v1/locks/{resource}", get(locks::info))
        .route("/v1/edge/routes", get(edge::list))
        .route("/v1/edge/routes/{name}", get(edge::get).put(edge::put).delete(edge::delete))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_api_key));
    Router::new()
        .route("/health", get(observe::health))
        .route("/metrics", get(observe::metrics))
        .route("/blob/{bucket}/{*key}", get(blob::public_object))
        .merge(api)
        .layer(axum::middleware::from_fn(observe::track))
        .with_state(state)
}

/// Checks `Authorization: Bearer <key>` when an API key is configured.
async fn require_api_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        let presented = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(key.as_str()) {
            return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong API key")
                .into_response();
        }
    }
    next.run(request).await
}

/// Serves the API on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
