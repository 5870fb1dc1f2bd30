//! `/v1/kv`: the kv block over HTTP.
//!
//! | request                                   | does                                          |
//! |-------------------------------------------|-----------------------------------------------|
//! | `PUT /v1/kv/{ns}/{key}` body = value      | writes; `If-Match: "<version>"` or `If-None-Match: *` for compare-and-set; `?ttl=<s>` or `?ttl_ms=` |
//! | `GET /v1/kv/{ns}/{key}`                   | the raw value; version in `ETag` and `X-Strata-Version` |
//! | `DELETE /v1/kv/{ns}/{key}`                | deletes (204, or 404); `If-Match` as for PUT  |
//! | `GET /v1/kv/{ns}?prefix=&cursor=&limit=`  | a JSON page of entries and `next_cursor`      |
//! | `GET /v1/kv/{ns}?watch=true&prefix=`      | Server-Sent Events of changes, resumable with `Last-Event-ID` or `?since=<seq>` |
//! | `POST /v1/kv/{ns}` JSON `{"ops": [...]}`  | an atomic batch of put/delete/check           |
//!
//! Errors are JSON with a stable `code` (see `error.rs`); a value over the limit is 413.

use crate::AppState;
use crate::error::ApiError;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use futures::Stream;
use http_body_util::LengthLimitError;
use serde::Deserialize;
use serde_json::{Value as Json_, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use strata_kv::{Condition, Entry, Event, EventKind, Kv, Op, Outcome};

/// Runs a blocking kv call off the reactor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> strata_core::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(err) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", err.to_string())),
    }
}

/// Reads a body of at most `limit` bytes; more is 413.
async fn read_body(body: Body, limit: usize, what: &str) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let too_large = std::error::Error::source(&err).is_some_and(|s| s.is::<LengthLimitError>());
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("{what} is over the limit of {limit} bytes"),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", format!("could not read the body: {err}"))
        }
    })
}

/// Parses `If-Match` / `If-None-Match` into a condition.
fn condition(headers: &HeaderMap) -> Result<Condition, ApiError> {
    let bad = |what: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_header", what.to_string());
    if let Some(value) = headers.get(header::IF_NONE_MATCH) {
        return match value.to_str() {
            Ok("*") => Ok(Condition::Absent),
            _ => Err(bad("If-None-Match supports only *")),
        };
    }
    match headers.get(header::IF_MATCH).map(|v| v.to_str()) {
        None => Ok(Condition::None),
        Some(Ok("*")) => Ok(Condition::Exists),
        Some(Ok(tag)) => tag
            .trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .parse()
            .map(Condition::Version)
            .map_err(|_| bad("If-Match must be a version, quoted or not, or *")),
        Some(Err(_)) => Err(bad("If-Match is not ASCII")),
    }
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

#[derive(Deserialize)]
pub struct PutQuery {
    ttl: Option<u64>,
    ttl_ms: Option<u64>,
}

pub async fn put(
    State(state): State<AppState>,
    Path((ns, key)): Path<(String, String)>,
    Query(query): Query<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let condition = condition(&headers)?;
    let value = read_body(body, state.kv.limits().max_value_bytes, "the value").await?;
    let ttl_ms = query.ttl_ms.or(query.ttl.map(|s| s.saturating_mul(1000)));
    let kv = state.kv.clone();
    let k = key.clone();
    let version = blocking(move || kv.put(&ns, k.as_bytes(), &value, condition, ttl_ms)).await?;
    let mut response = Json(json!({ "key": key, "version": version })).into_response();
    response.headers_mut().insert(header::ETAG, etag(version));
    Ok(response)
}

pub async fn get(
    State(state): State<AppState>,
    Path((ns, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let kv = state.kv.clone();
    let k = key.clone();
    let Some(entry) = blocking(move || kv.get(&ns, k.as_bytes())).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no key {key:?}")));
    };
    let mut response = entry.value.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::ETAG, etag(entry.version));
    headers.insert("x-strata-version", entry.version.into());
    if let Some(at) = entry.expires_at_ms {
        headers.insert("x-strata-expires-at-ms", at.into());
    }
    Ok(response)
}

pub async fn delete(
    State(state): State<AppState>,
    Path((ns, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let condition = condition(&headers)?;
    let kv = state.kv.clone();
    let k = key.clone();
    if blocking(move || kv.delete(&ns, k.as_bytes(), condition)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no key {key:?}")))
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    prefix: String,
    cursor: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    watch: bool,
    since: Option<u64>,
}

/// A value as JSON: a string when it is UTF-8, else base64 under `value_base64`.
fn put_value(object: &mut serde_json::Map<String, Json_>, value: &[u8]) {
    match std::str::from_utf8(value) {
        Ok(text) => object.insert("value".into(), text.into()),
        Err(_) => object.insert("value_base64".into(), STANDARD.encode(value).into()),
    };
}

fn entry_json(entry: &Entry) -> Json_ {
    let mut object = serde_json::Map::new();
    object.insert("key".into(), String::from_utf8_lossy(&entry.key).into());
    object.insert("version".into(), entry.version.into());
    put_value(&mut object, &entry.value);
    if let Some(at) = entry.expires_at_ms {
        object.insert("expires_at_ms".into(), at.into());
    }
    Json_::Object(object)
}

pub async fn list(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if query.watch {
        return watch(state, ns, query, &headers).await;
    }
    let after = match &query.cursor {
        Some(cursor) => Some(URL_SAFE_NO_PAD.decode(cursor).map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_cursor", "cursor is not one this API returned")
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(100);
    let kv = state.kv.clone();
    let prefix = query.prefix.clone();
    let page = blocking(move || kv.list(&ns, prefix.as_bytes(), after.as_deref(), limit)).await?;
    let items: Vec<Json_> = page.entries.iter().map(entry_json).collect();
    let next = page.next.map(|k| URL_SAFE_NO_PAD.encode(k));
    Ok(Json(json!({ "items": items, "next_cursor": next })).into_response())
}

/// How many change records one read of the feed takes.
const WATCH_BATCH: usize = 256;

async fn watch(
    state: AppState,
    ns: String,
    query: ListQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let resume =
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let from = match (query.since, resume) {
        (_, Some(last)) => last + 1,
        (Some(since), None) => since,
        (None, None) => state.kv.store().last_seq() + 1,
    };
    let stream = watch_stream(state.kv.clone(), ns, query.prefix.into_bytes(), from, state.shutdown.clone());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

struct Watch {
    kv: Kv,
    ns: String,
    prefix: Vec<u8>,
    next: u64,
    pending: VecDeque<Event>,
    commits: tokio::sync::watch::Receiver<u64>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

fn watch_stream(
    kv: Kv,
    ns: String,
    prefix: Vec<u8>,
    from: u64,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let commits = kv.store().subscribe();
    let watch = Watch { kv, ns, prefix, next: from, pending: VecDeque::new(), commits, shutdown };
    futures::stream::unfold(watch, |mut w| async move {
        loop {
            if let Some(event) = w.pending.pop_front() {
                return Some((Ok(sse_event(&event)), w));
            }
            // Mark the newest commit seen before reading, so a commit during the read wakes us.
            w.commits.borrow_and_update();
            let (kv, next) = (w.kv.clone(), w.next);
            let (events, next) =
                match tokio::task::spawn_blocking(move || kv.changes(next, WATCH_BATCH)).await {
                    Ok(Ok(read)) => read,
                    Ok(Err(err)) => {
                        tracing::error!(%err, "watch could not read the change feed");
                        return None;
                    }
                    Err(_) => return None,
                };
            let caught_up = next == w.next;
            w.next = next;
            w.pending
                .extend(events.into_iter().filter(|e| e.namespace == w.ns && e.key.starts_with(&w.prefix)));
            if caught_up && w.pending.is_empty() {
                tokio::select! {
                    changed = w.commits.changed() => if changed.is_err() { return None },
                    _ = w.shutdown.wait_for(|stop| *stop) => return None,
                }
            }
        }
    })
}

fn sse_event(event: &Event) -> SseEvent {
    let mut object = serde_json::Map::new();
    object.insert("seq".into(), event.seq.into());
    object.insert("key".into(), String::from_utf8_lossy(&event.key).into());
    let name = match &event.kind {
        EventKind::Put { version, value } => {
            object.insert("version".into(), (*version).into());
            put_value(&mut object, value);
            "put"
        }
        EventKind::Delete => "delete",
        EventKind::Expired => "expired",
    };
    SseEvent::default().id(event.seq.to_string()).event(name).data(Json_::Object(object).to_string())
}

/// One operation of a `POST /v1/kv/{ns}` batch.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum BatchOp {
    Put {
        key: String,
        value: Option<String>,
        value_base64: Option<String>,
        #[serde(flatten)]
        condition: BatchCondition,
        ttl_ms: Option<u64>,
    },
    Delete {
        key: String,
        #[serde(flatten)]
        condition: BatchCondition,
    },
    Check {
        key: String,
        #[serde(flatten)]
        condition: BatchCondition,
    },
}

#[derive(Deserialize)]
struct BatchCondition {
    if_version: Option<u64>,
    #[serde(default)]
    if_absent: bool,
    #[serde(default)]
    if_exists: bool,
}

impl BatchCondition {
    fn to_condition(&self) -> Result<Condition, ApiError> {
        match (self.if_version, self.if_absent, self.if_exists) {
            (None, false, false) => Ok(Condition::None),
            (Some(v), false, false) => Ok(Condition::Version(v)),
            (None, true, false) => Ok(Condition::Absent),
            (None, false, true) => Ok(Condition::Exists),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_input",
                "an op takes at most one of if_version, if_absent, if_exists",
            )),
        }
    }
}

#[derive(Deserialize)]
struct Batch {
    ops: Vec<BatchOp>,
}

pub async fn batch(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(body, state.max_body_bytes, "the request body").await?;
    let batch: Batch = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("malformed batch: {err}"))
    })?;
    let mut ops = Vec::with_capacity(batch.ops.len());
    let mut keys = Vec::with_capacity(batch.ops.len());
    for op in batch.ops {
        let (key, op) = match op {
            BatchOp::Put { key, value, value_base64, condition, ttl_ms } => {
                let value = match (value, value_base64) {
                    (Some(v), None) => v.into_bytes(),
                    (None, Some(b)) => STANDARD.decode(b).map_err(|_| {
                        ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", "value_base64 is not base64")
                    })?,
                    _ => {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "invalid_input",
                            "a put takes exactly one of value, value_base64",
                        ));
                    }
                };
                let condition = condition.to_condition()?;
                (key.clone(), Op::Put { key: key.into_bytes(), value, condition, ttl_ms })
            }
            BatchOp::Delete { key, condition } => {
                (key.clone(), Op::Delete { key: key.into_bytes(), condition: condition.to_condition()? })
            }
            BatchOp::Check { key, condition } => {
                (key.clone(), Op::Check { key: key.into_bytes(), condition: condition.to_condition()? })
            }
        };
        keys.push(key);
        ops.push(op);
    }
    let kv = state.kv.clone();
    let outcomes = blocking(move || kv.apply(&ns, ops)).await?;
    let results: Vec<Json_> = keys
        .into_iter()
        .zip(outcomes)
        .map(|(key, outcome)| match outcome {
            Outcome::Put { version } => json!({ "op": "put", "key": key, "version": version }),
            Outcome::Deleted(deleted) => json!({ "op": "delete", "key": key, "deleted": deleted }),
            Outcome::Checked => json!({ "op": "check", "key": key }),
        })
        .collect();
    Ok(Json(json!({ "results": results })).into_response())
}
