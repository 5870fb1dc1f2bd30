//! The blob block's admin API and public-object origin.
//!
//! ```text
//! POST   /v1/blob/keys            {"admin": false}  -> 201 {"access_key", "secret_key", "admin"}
//! GET    /v1/blob/keys                              -> {"keys": [{"access_key", "admin", "created_ms"}]}
//! DELETE /v1/blob/keys/{access_key}                 -> 204 (404 if unknown)
//! POST   /v1/blob/links           {"bucket", "key", "method": "GET", "expires_secs": 3600,
//!                                  "access_key": null} -> {"url", "expires_at_ms"}
//! GET    /blob/{bucket}/{*key}    an object that bucket policies let anyone read, with
//!                                  ETag, Last-Modified, Range and conditional GET: the
//!                                  origin the CDN caches from
//! ```
//!
//! `/v1/blob/*` is guarded by `http.api_key` like the rest of `/v1`; `/blob/*` needs no
//! credentials and serves only what is public.

use crate::ApiError;
use crate::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use strata_blob::{Blob, BlobError, ByteRange, Pick, Principal, ReadConditions};

/// What the blob routes need besides the block: where presigned links point.
#[derive(Clone)]
pub struct BlobApi {
    pub blob: Blob,
    /// The s3 front's address as clients reach it: `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub region: String,
}

fn api(state: &AppState) -> Result<BlobApi, ApiError> {
    state
        .blob
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "the blob block is not enabled"))
}

impl From<BlobError> for ApiError {
    fn from(err: BlobError) -> Self {
        let err = match err {
            BlobError::Core(core) => return ApiError::from(core),
            other => other,
        };
        let (status, code) = match &err {
            BlobError::NoSuchBucket(_)
            | BlobError::NoSuchKey(_)
            | BlobError::NoSuchVersion(_)
            | BlobError::NoSuchUpload(_)
            | BlobError::NoSuchBucketPolicy(_)
            | BlobError::NoSuchAccessKey(_) => (StatusCode::NOT_FOUND, "not_found"),
            BlobError::AccessDenied(_) => (StatusCode::FORBIDDEN, "forbidden"),
            BlobError::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            BlobError::NotModified { .. } => (StatusCode::NOT_MODIFIED, "not_modified"),
            BlobError::InvalidRange { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "invalid_range"),
            BlobError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            _ => (StatusCode::BAD_REQUEST, "invalid_input"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(err) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", err.to_string())),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    #[serde(default)]
    admin: bool,
}

pub(crate) async fn create_key(
    State(state): State<AppState>,
    body: Option<Json<NewKey>>,
) -> Result<Response, ApiError> {
    let api = api(&state)?;
    let admin = body.map(|Json(b)| b.admin).unwrap_or(false);
    let (access_key, secret_key) = blocking(move || api.blob.create_user(admin)).await?;
    let body = json!({"access_key": access_key, "secret_key": secret_key, "admin": admin});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(crate) async fn list_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let api = api(&state)?;
    let users = blocking(move || api.blob.list_users()).await?;
    let keys: Vec<_> = users
        .into_iter()
        .map(|(key, user)| json!({"access_key": key, "admin": user.admin, "created_ms": user.created_ms}))
        .collect();
    Ok(Json(json!({ "keys": keys })).into_response())
}

pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Path(access_key): Path<String>,
) -> Result<Response, ApiError> {
    let api = api(&state)?;
    blocking(move || api.blob.revoke_user(&access_key)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkRequest {
    bucket: String,
    key: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default = "default_expiry")]
    expires_secs: u64,
    #[serde(default)]
    access_key: Option<String>,
}

fn default_method() -> String {
    "GET".into()
}

fn default_expiry() -> u64 {
    3600
}

pub(crate) async fn create_link(
    State(state): State<AppState>,
    Json(req): Json<LinkRequest>,
) -> Result<Response, ApiError> {
    let api = api(&state)?;
    let method = req.method.to_ascii_uppercase();
    let expires = req.expires_secs;
    let url = blocking(move || {
        api.blob.presign(&strata_blob::Link {
            method: &method,
            endpoint: &api.endpoint,
            region: &api.region,
            bucket: &req.bucket,
            key: &req.key,
            expires_secs: expires,
            access_key: req.access_key.as_deref(),
        })
    })
    .await?;
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis()
            as u64;
    Ok(Json(json!({"url": url, "expires_at_ms": now_ms + expires * 1000})).into_response())
}

/// Parses a single `bytes=` range; anything else is served whole, as HTTP allows.
fn parse_range(headers: &HeaderMap) -> Option<ByteRange> {
    let spec = headers.get(header::RANGE)?.to_str().ok()?.strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return last.parse().ok().map(ByteRange::Suffix);
    }
    let first = first.parse().ok()?;
    let last = if last.is_empty() { None } else { Some(last.parse().ok()?) };
    Some(ByteRange::From { first, last })
}

fn http_date(headers: &HeaderMap, name: header::HeaderName) -> Option<u64> {
    let value = headers.get(name)?.to_str().ok()?;
    let t = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Some((t.unix_timestamp() * 1000).max(0) as u64)
}

fn format_http_date(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&f).unwrap_or_default()
}

/// Bytes per chunk of a streamed response.
const CHUNK: usize = 256 * 1024;

pub(crate) async fn public_object(
    State(state): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let api = api(&state)?;
    let range = parse_range(&headers);
    let conditions = ReadConditions {
        if_match: headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned),
        if_none_match: headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned),
        if_modified_since_ms: http_date(&headers, header::IF_MODIFIED_SINCE),
        if_unmodified_since_ms: http_date(&headers, header::IF_UNMODIFIED_SINCE),
    };
    // Point reads of core, done here; an object held in core is read here too, one in files
    // on a blocking thread.
    let in_core = api
        .blob
        .authorize(Principal::Anonymous, "s3:GetObject", Some(&bucket), Some(&key))
        .and_then(|()| api.blob.open_object_in_core(&bucket, &key, None, Pick::Range(range), &conditions))
        .map_err(ApiError::from);
    let opened = match in_core {
        Ok(Some((meta, mut reader, span))) => match reader.next_chunk(span.1 as usize) {
            Ok(bytes) => Ok((meta, Body::from(bytes.unwrap_or_default()), span)),
            Err(err) => Err(ApiError::from(BlobError::from(err))),
        },
        Ok(None) => blocking(move || api.blob.open_object(&bucket, &key, None, range, &conditions))
            .await
            .map(|(meta, reader, span)| (meta, stream(reader), span)),
        Err(err) => Err(err),
    };
    let (meta, body, (start, len)) = match opened {
        Ok(opened) => opened,
        Err(err) if err.status == StatusCode::NOT_MODIFIED => {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
        Err(err) => return Err(err),
    };
    let mut response = Response::new(body);
    let h = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(header::ETAG, &meta.quoted_etag());
    set(header::LAST_MODIFIED, &format_http_date(meta.last_modified_ms));
    set(header::CONTENT_LENGTH, &len.to_string());
    set(header::ACCEPT_RANGES, "bytes");
    set(header::CONTENT_TYPE, meta.headers.content_type.as_deref().unwrap_or("application/octet-stream"));
    if let Some(cc) = &meta.headers.cache_control {
        set(header::CACHE_CONTROL, cc);
    }
    if range.is_some() {
        set(header::CONTENT_RANGE, &format!("bytes {start}-{}/{}", start + len - 1, meta.size));
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(response)
}

/// A body that reads `reader` on a blocking thread, a few chunks ahead of the socket.
fn stream(mut reader: strata_blob::ObjectReader) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || {
        while let Some(result) = reader.next_chunk(CHUNK).transpose() {
            let failed = result.is_err();
            if tx.blocking_send(result).is_err() || failed {
                return;
            }
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}
