//! Errors of the search block, in Elasticsearch's terms: an HTTP status, the exception type
//! clients match on (`index_not_found_exception`, `version_conflict_engine_exception`, ...),
//! a reason, and the index concerned.

use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct SearchError {
    pub status: u16,
    pub kind: &'static str,
    pub reason: String,
    pub index: Option<String>,
}

pub type SearchResult<T> = Result<T, SearchError>;

impl SearchError {
    pub fn new(status: u16, kind: &'static str, reason: impl Into<String>) -> Self {
        SearchError { status, kind, reason: reason.into(), index: None }
    }

    pub fn with_index(mut self, index: &str) -> Self {
        self.index = Some(index.to_string());
        self
    }

    pub fn illegal_argument(reason: impl Into<String>) -> Self {
        Self::new(400, "illegal_argument_exception", reason)
    }

    pub fn parsing(reason: impl Into<String>) -> Self {
        Self::new(400, "parsing_exception", reason)
    }

    pub fn mapper_parsing(reason: impl Into<String>) -> Self {
        Self::new(400, "mapper_parsing_exception", reason)
    }

    pub fn index_not_found(index: &str) -> Self {
        Self::new(404, "index_not_found_exception", format!("no such index [{index}]")).with_index(index)
    }

    pub fn version_conflict(index: &str, id: &str, detail: impl std::fmt::Display) -> Self {
        Self::new(409, "version_conflict_engine_exception", format!("[{id}]: version conflict, {detail}"))
            .with_index(index)
    }

    pub fn internal(reason: impl std::fmt::Display) -> Self {
        Self::new(500, "exception", reason.to_string())
    }

    /// Elasticsearch's error body: `{"error": {"root_cause": [...], "type", "reason"}, "status"}`.
    pub fn to_json(&self) -> Value {
        let mut cause = json!({ "type": self.kind, "reason": self.reason });
        if let Some(index) = &self.index {
            cause["index"] = json!(index);
            cause["index_uuid"] = json!("_na_");
        }
        let mut error = cause.clone();
        error["root_cause"] = json!([cause]);
        json!({ "error": error, "status": self.status })
    }
}

impl std::fmt::Display for SearchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.reason)
    }
}

impl std::error::Error for SearchError {}

impl From<strata_core::Error> for SearchError {
    fn from(err: strata_core::Error) -> Self {
        if err.is_retryable() {
            SearchError::new(429, "es_rejected_execution_exception", err.to_string())
        } else {
            SearchError::internal(err)
        }
    }
}

impl From<std::io::Error> for SearchError {
    fn from(err: std::io::Error) -> Self {
        SearchError::internal(err)
    }
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(err: tantivy::TantivyError) -> Self {
        match err {
            tantivy::TantivyError::InvalidArgument(msg) => SearchError::illegal_argument(msg),
            tantivy::TantivyError::AggregationError(e) => SearchError::illegal_argument(e.to_string()),
            other => SearchError::internal(other),
        }
    }
}
