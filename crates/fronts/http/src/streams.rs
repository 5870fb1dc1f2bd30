//! The stream block's windowed views.
//!
//! ```text
//! POST   /v1/streams/views          a view definition (strata_stream::views::ViewDef)
//!                                   -> 201 the definition
//! GET    /v1/streams/views          -> {"views": [definitions]}
//! GET    /v1/streams/views/{name}?key=K&limit=N
//!                                   -> {"status": {...}, "results": [final windows of K,
//!                                      or of every key, oldest first]}
//! DELETE /v1/streams/views/{name}   -> 204
//! ```

use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use strata_stream::StreamError;
use strata_stream::views::{ViewDef, Views};

/// Results one GET returns at most.
const MAX_RESULTS: usize = 10_000;

fn views(state: &AppState) -> Result<Views, ApiError> {
    state
        .views
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "the stream block is not enabled"))
}

impl From<StreamError> for ApiError {
    fn from(err: StreamError) -> Self {
        let err = match err {
            StreamError::Core(core) => return ApiError::from(core),
            other => other,
        };
        let (status, code) = match &err {
            StreamError::UnknownTopic(_) | StreamError::UnknownPartition { .. } => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            StreamError::TopicExists(_) => (StatusCode::CONFLICT, "exists"),
            StreamError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "io_error"),
            _ => (StatusCode::BAD_REQUEST, "invalid"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

/// Runs a block call on the blocking pool (views read and write core).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StreamError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(ApiError::from)
}

pub async fn create_view(
    State(state): State<AppState>,
    Json(def): Json<ViewDef>,
) -> Result<Response, ApiError> {
    let views = views(&state)?;
    let created = def.clone();
    blocking(move || views.create(created)).await?;
    Ok((StatusCode::CREATED, Json(def)).into_response())
}

pub async fn list_views(State(state): State<AppState>) -> Result<Response, ApiError> {
    let views = views(&state)?;
    let list = blocking(move || views.list()).await?;
    Ok(Json(json!({ "views": list })).into_response())
}

#[derive(Deserialize)]
pub struct ResultsQuery {
    key: Option<String>,
    limit: Option<usize>,
}

pub async fn get_view(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<ResultsQuery>,
) -> Result<Response, ApiError> {
    let views = views(&state)?;
    let limit = query.limit.unwrap_or(1000).min(MAX_RESULTS);
    let (status, results) = blocking(move || {
        let status = views.status(&name)?;
        Ok((status, views.results(&name, query.key.as_deref(), limit)?))
    })
    .await?;
    Ok(Json(json!({ "status": status, "results": results })).into_response())
}

pub async fn delete_view(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let views = views(&state)?;
    blocking(move || views.delete(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
