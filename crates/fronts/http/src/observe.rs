//! Health and metrics: `GET /health`, `GET /metrics` (Prometheus text), and the middleware
//! that counts and times every HTTP request by route.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::AppState;

/// Latency buckets, in seconds, for every `*_seconds` histogram.
const BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// How often histogram samples are folded into their buckets. The recorder keeps every
/// sample until then; a scrape of `/metrics` also folds them, but a server nobody scrapes
/// (or one with the http front off) would otherwise grow by every sample it records.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use, with a thread that keeps
/// its memory bounded. Every block's `metrics::` macros report to it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(BUCKETS).expect("buckets are not empty");
            let handle = builder.install_recorder().unwrap_or_else(|err| {
                tracing::warn!(%err, "a metrics recorder was already installed; /metrics will be empty");
                PrometheusBuilder::new().build_recorder().handle()
            });
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new().name("strata-metrics".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
            if let Err(err) = spawned {
                tracing::warn!(%err, "could not start the metrics upkeep thread");
            }
            handle
        })
        .clone()
}

pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok", "last_seq": state.kv.store().last_seq() }))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// Counts and times each request under its route template (not its raw path, which would
/// make one series per key).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("strata_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("strata_http_request_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
