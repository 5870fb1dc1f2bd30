//! # strata-es: the Elasticsearch front (port 9200)
//!
//! Serves Elasticsearch's REST API over the search block, for curl and the official
//! `elasticsearch` and `opensearch` clients: the root info (`version.number`, `tagline`),
//! index APIs, document APIs, `_bulk`, `_mget`, `_search`, `_msearch`, `_count`, the
//! by-query APIs, `_analyze`, `_refresh` and `_cat/indices`. Every response carries
//! `X-Elastic-Product: Elasticsearch`, which the official clients check; errors have
//! Elasticsearch's shape (`{"error": {"root_cause", "type", "reason"}, "status"}`).
//!
//! ```text
//!   request ─► bounded body ─► basic auth ─► content type ─► routes::dispatch
//!                                                          └─► strata-search (blocking pool)
//! ```
//!
//! Request bodies are read as `application/json`, `application/x-ndjson` or the versioned
//! `application/vnd.elasticsearch+json; compatible-with=8|9`; answers to the versioned type
//! come back in it.

mod bulk;
mod routes;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use strata_search::{Search, SearchError};
use tokio::net::TcpListener;

/// Settings of the es front.
#[derive(Clone, Debug)]
pub struct EsConfig {
    /// Basic-auth user and password; no password means no authentication (loopback only).
    pub username: String,
    pub password: Option<String>,
    /// Largest request body (Elasticsearch's `http.max_content_length`).
    pub max_body_bytes: usize,
    /// Most requests served at once; more are answered 429.
    pub max_in_flight: usize,
    /// The cluster name `GET /` reports.
    pub cluster_name: String,
}

impl Default for EsConfig {
    fn default() -> Self {
        EsConfig {
            username: "elastic".into(),
            password: None,
            max_body_bytes: 100 * 1024 * 1024,
            max_in_flight: 1024,
            cluster_name: "strata".into(),
        }
    }
}

/// The Elasticsearch version this front answers as.
pub const VERSION: &str = "8.15.0";

#[derive(Clone)]
struct AppState {
    search: Search,
    config: Arc<EsConfig>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// An answer: status and JSON body (or nothing, for HEAD), or plain text (`_cat`).
pub(crate) enum Reply {
    Json(u16, Value),
    /// JSON already written out.
    Serialized(u16, String),
    Text(u16, String),
    Empty(u16),
}

impl From<SearchError> for Reply {
    fn from(err: SearchError) -> Self {
        if err.status >= 500 {
            tracing::error!(%err, "search request failed");
        }
        Reply::Json(err.status, err.to_json())
    }
}

pub(crate) type Outcome = Result<Reply, SearchError>;

/// Serves the Elasticsearch API until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    search: Search,
    config: EsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1)));
    let state = AppState { search, config: Arc::new(config), slots };
    let app = axum::Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

fn authorized(config: &EsConfig, headers: &HeaderMap) -> bool {
    let Some(password) = &config.password else { return true };
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else { return false };
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    let expected = format!("{}:{password}", config.username);
    subtle::ConstantTimeEq::ct_eq(decoded.as_slice(), expected.as_bytes()).into()
}

/// The media type of a request body, if it is one Elasticsearch reads.
fn body_kind(headers: &HeaderMap) -> Result<(), String> {
    let Some(ct) = headers.get("content-type").and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/json"
        | "application/x-ndjson"
        | "application/vnd.elasticsearch+json"
        | "application/vnd.elasticsearch+x-ndjson"
        | "" => Ok(()),
        _ => Err(ct.to_string()),
    }
}

/// Answers in the versioned media type when the client asked in it.
fn reply_type(headers: &HeaderMap) -> HeaderValue {
    let accept = headers
        .get("accept")
        .or_else(|| headers.get("content-type"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("vnd.elasticsearch+json") {
        let version = if accept.contains("compatible-with=9") { "9" } else { "8" };
        HeaderValue::from_str(&format!("application/vnd.elasticsearch+json;compatible-with={version}"))
            .unwrap_or(HeaderValue::from_static("application/json"))
    } else {
        HeaderValue::from_static("application/json; charset=UTF-8")
    }
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = reply_type(&headers);
    let limit = state.config.max_body_bytes;
    let body: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let err = SearchError::new(
                413,
                "content_too_long_exception",
                format!("request body is larger than the limit of [{limit}] bytes (es.max_body_bytes)"),
            );
            return finish(Reply::from(err), &content_type, &method);
        }
    };
    let reply = if !authorized(&state.config, &headers) {
        let err = SearchError::new(
            401,
            "security_exception",
            "missing authentication credentials for REST request",
        );
        let mut response = finish(Reply::from(err), &content_type, &method);
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"security\" charset=\"UTF-8\""),
        );
        return response;
    } else if let Err(ct) = body_kind(&headers) {
        let err = SearchError::new(
            406,
            "media_type_header_exception",
            format!(
                "Invalid media-type value on headers [Content-Type]: Content-Type header [{ct}] is not supported"
            ),
        );
        Reply::from(err)
    } else {
        match state.slots.clone().try_acquire_owned() {
            Err(_) => Reply::from(SearchError::new(
                429,
                "es_rejected_execution_exception",
                "too many requests in flight; retry later",
            )),
            Ok(permit) => {
                let (search, config) = (state.search.clone(), state.config.clone());
                let (m, u) = (method.clone(), uri.clone());
                let started = std::time::Instant::now();
                let joined = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    routes::dispatch(&search, &config, &m, &u, &body)
                })
                .await;
                metrics::histogram!("strata_es_request_seconds").record(started.elapsed().as_secs_f64());
                match joined {
                    Ok(Ok(reply)) => reply,
                    Ok(Err(err)) => Reply::from(err),
                    Err(panic) => {
                        tracing::error!(%panic, "es request panicked");
                        Reply::from(SearchError::internal("the request failed inside the server"))
                    }
                }
            }
        }
    };
    finish(reply, &content_type, &method)
}

fn finish(reply: Reply, content_type: &HeaderValue, method: &Method) -> Response {
    let (status, body, ct) = match reply {
        Reply::Json(status, v) => (status, v.to_string(), content_type.clone()),
        Reply::Serialized(status, text) => (status, text, content_type.clone()),
        Reply::Text(status, text) => (status, text, HeaderValue::from_static("text/plain; charset=UTF-8")),
        Reply::Empty(status) => (status, String::new(), content_type.clone()),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let len = body.len();
    let mut response = if *method == Method::HEAD {
        (status, Body::empty()).into_response()
    } else {
        (status, body).into_response()
    };
    let h = response.headers_mut();
    h.insert("x-elastic-product", HeaderValue::from_static("Elasticsearch"));
    h.insert("content-type", ct);
    if *method == Method::HEAD {
        h.insert("content-length", HeaderValue::from(len));
    }
    response
}

/// `GET /`.
pub(crate) fn info(config: &EsConfig) -> Value {
    json!({
        "name": "strata",
        "cluster_name": config.cluster_name,
        "cluster_uuid": "strata-cluster",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "strata",
            "build_hash": env!("CARGO_PKG_VERSION"),
            "build_date": "2026-01-01T00:00:00.000Z",
            "build_snapshot": false,
            "lucene_version": "9.11.1",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "You Know, for Search"
    })
}
