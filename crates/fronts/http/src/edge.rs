//! The edge's admin API: the proxy's routes, changed at runtime without dropping
//! connections (requests in flight finish on the table they started with).
//!
//! ```text
//! GET    /v1/edge/routes          -> {"routes": [route documents, in precedence order]}
//! PUT    /v1/edge/routes/{name}   a route document -> 201 (new) or 200 (replaced), the document
//! GET    /v1/edge/routes/{name}   -> the document, or 404
//! DELETE /v1/edge/routes/{name}   -> 204, or 404
//! ```
//!
//! Changes made here are kept in core before they take effect, and a start applies them on
//! top of the config file's `[[edge.routes]]`.

use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use strata_edge::{Edge, EdgeError, RouteSpec};

/// Runs a route change (which records it in core, an fsync) off the async workers.
async fn change<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EdgeError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(EdgeError::Invalid(e))) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", e)),
        Ok(Err(EdgeError::Storage(e))) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e)),
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())),
    }
}

fn edge(state: &AppState) -> Result<Edge, ApiError> {
    state
        .edge
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "the proxy is not enabled"))
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route named {name}"))
}

pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "routes": edge(&state)?.list() })).into_response())
}

pub async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(spec): Json<RouteSpec>,
) -> Result<Response, ApiError> {
    let edge = edge(&state)?;
    let created = {
        let (edge, name) = (edge.clone(), name.clone());
        change(move || edge.put(&name, spec)).await?
    };
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(edge.get(&name))).into_response())
}

pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let spec = edge(&state)?.get(&name).ok_or_else(|| not_found(&name))?;
    Ok(Json(spec).into_response())
}

pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let edge = edge(&state)?;
    let deleted = {
        let name = name.clone();
        change(move || edge.delete(&name)).await?
    };
    if deleted { Ok(StatusCode::NO_CONTENT.into_response()) } else { Err(not_found(&name)) }
}
