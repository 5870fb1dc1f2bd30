//! The lock block over HTTP; the same operations as `LOCK.*` on the resp front.
//!
//! ```text
//! POST /v1/locks/acquire  {"resources": ["r", ...] | "resource": "r", "owner": "o",
//!                          "ttl_ms": 30000, "wait_ms": 0, "shared": false}
//!                         -> 200 {"token": 7, "resources": [...], "ttl_ms": 30000}
//!                         -> 409 {"code": "not_acquired"} when not free within wait_ms (a
//!                            long poll), 409 {"code": "deadlock"} when waiting would deadlock
//! POST /v1/locks/release  {"resources" | "resource", "owner"} -> 200 {"released": n}
//! POST /v1/locks/extend   {"resource", "owner", "ttl_ms"}     -> 200 {"token", "ttl_ms"}
//!                         (409 {"code": "not_owner"} for someone who does not hold it)
//! GET  /v1/locks/{resource} -> {"resource", "holders": [{"owner", "token", "mode", "ttl_ms"}],
//!                              "waiters": [{"owner", "mode"}]}
//! ```

use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use strata_lock::{Acquire, LockError, Locks, Mode};

fn locks(state: &AppState) -> Result<Locks, ApiError> {
    state
        .locks
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "the lock block is not enabled"))
}

impl From<LockError> for ApiError {
    fn from(err: LockError) -> Self {
        let (status, code) = match &err {
            LockError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
            LockError::NotOwner(_) => (StatusCode::CONFLICT, "not_owner"),
            LockError::Deadlock(_) => (StatusCode::CONFLICT, "deadlock"),
            LockError::TooManyWaiters => (StatusCode::TOO_MANY_REQUESTS, "too_many_waiters"),
            LockError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockBody {
    #[serde(default)]
    resources: Vec<String>,
    resource: Option<String>,
    owner: String,
    ttl_ms: Option<u64>,
    #[serde(default)]
    wait_ms: u64,
    #[serde(default)]
    shared: bool,
}

impl LockBody {
    fn resources(&mut self) -> Vec<String> {
        let mut all = std::mem::take(&mut self.resources);
        all.extend(self.resource.take());
        all
    }

    fn ttl(&self) -> Result<Duration, ApiError> {
        self.ttl_ms
            .map(Duration::from_millis)
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", "ttl_ms is required"))
    }
}

pub async fn acquire(
    State(state): State<AppState>,
    Json(mut body): Json<LockBody>,
) -> Result<Json<Value>, ApiError> {
    let locks = locks(&state)?;
    let request = Acquire {
        resources: body.resources(),
        ttl: body.ttl()?,
        wait: Duration::from_millis(body.wait_ms),
        mode: if body.shared { Mode::Shared } else { Mode::Exclusive },
        owner: body.owner,
    };
    match locks.acquire(request).await? {
        Some(lease) => Ok(Json(json!({
            "token": lease.token,
            "resources": lease.resources,
            "ttl_ms": lease.ttl.as_millis() as u64,
        }))),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_acquired",
            "the resources are held by another owner",
        )),
    }
}

pub async fn release(
    State(state): State<AppState>,
    Json(mut body): Json<LockBody>,
) -> Result<Json<Value>, ApiError> {
    let locks = locks(&state)?;
    let resources = body.resources();
    let released = locks.release(&body.owner, &resources).await?;
    Ok(Json(json!({ "released": released })))
}

pub async fn extend(
    State(state): State<AppState>,
    Json(mut body): Json<LockBody>,
) -> Result<Json<Value>, ApiError> {
    let locks = locks(&state)?;
    let ttl = body.ttl()?;
    let [resource] = body.resources().try_into().map_err(|_| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", "extend takes exactly one resource")
    })?;
    let lease = locks.extend(&body.owner, &resource, ttl).await?;
    Ok(Json(json!({ "token": lease.token, "ttl_ms": ttl.as_millis() as u64 })))
}

pub async fn info(
    State(state): State<AppState>,
    Path(resource): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let info = locks(&state)?.info(&resource);
    let mode = |m: Mode| if m == Mode::Shared { "shared" } else { "exclusive" };
    Ok(Json(json!({
        "resource": resource,
        "holders": info.holders.iter().map(|h| json!({
            "owner": h.owner, "token": h.token, "mode": mode(h.mode), "ttl_ms": h.ttl_left.as_millis() as u64,
        })).collect::<Vec<_>>(),
        "waiters": info.waiters.iter().map(|(owner, m)| json!({"owner": owner, "mode": mode(*m)})).collect::<Vec<_>>(),
    })))
}
