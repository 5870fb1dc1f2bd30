//! # strata-sqs: the SQS front (port 9324)
//!
//! Serves Amazon SQS's AWS JSON 1.0 protocol (`POST` with `X-Amz-Target: AmazonSQS.<Action>`
//! and a JSON body), which current SDKs and aws-cli speak, and the older query protocol
//! (form-encoded `Action=...`, XML answers; `query.rs`), over the queue block. Every
//! request is SigV4-verified (`auth.rs`) against the configured key; errors are SQS's JSON
//! errors with `x-amzn-query-error`. Queue URLs are `http://<host the client used>/<account>/<queue>`
//! and ARNs `arn:aws:sqs:<region>:<account>:<queue>`.
//!
//! ```text
//!   request ─► bounded body ─► SigV4 ─► X-Amz-Target ─► actions::run
//!                                                       └─► strata-queue: sends, receives,
//!                                                           deletes inline, then await
//!                                                           their fsync; the rest on a
//!                                                           blocking thread
//! ```
//!
//! ## Limitations
//!
//! - One access key (`sqs.access_key`); per-queue access policies are not enforced.

mod actions;
mod auth;
mod move_tasks;
mod query;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use strata_queue::Queues;
use tokio::net::TcpListener;

/// Settings of the sqs front.
#[derive(Clone, Debug)]
pub struct SqsConfig {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// The account id in queue URLs and ARNs.
    pub account_id: String,
    /// Largest request body (a batch of ten 256 KiB messages fits).
    pub max_body_bytes: usize,
    /// Most requests served at once; more are answered ServiceUnavailable (503).
    pub max_in_flight: usize,
}

impl Default for SqsConfig {
    fn default() -> Self {
        Self {
            access_key: "strata".into(),
            secret_key: "strata-secret".into(),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            max_body_bytes: 4 * 1024 * 1024,
            max_in_flight: 4096,
        }
    }
}

#[derive(Clone)]
struct AppState {
    queues: Queues,
    moves: move_tasks::MoveTasks,
    config: Arc<SqsConfig>,
    /// Permits for requests in flight (long polls hold one while they wait).
    slots: Arc<tokio::sync::Semaphore>,
}

/// An SQS error: HTTP status, the error type (`QueueDoesNotExist`), the query-protocol code
/// for `x-amzn-query-error`, who is at fault, and a message.
#[derive(Debug)]
pub(crate) struct SqsError {
    status: StatusCode,
    kind: &'static str,
    query_code: &'static str,
    sender_fault: bool,
    message: String,
    retry_after: Option<u64>,
}

impl SqsError {
    pub(crate) fn new(kind: &'static str, query_code: &'static str, message: impl Into<String>) -> SqsError {
        SqsError {
            status: StatusCode::BAD_REQUEST,
            kind,
            query_code,
            sender_fault: true,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> SqsError {
        SqsError::new("InvalidParameterValue", "InvalidParameterValue", message)
    }

    pub(crate) fn missing(name: &str) -> SqsError {
        SqsError::new(
            "MissingParameter",
            "MissingParameter",
            format!("the request must contain the parameter {name}"),
        )
    }

    pub(crate) fn code(&self) -> &'static str {
        self.kind
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn sender_fault(&self) -> bool {
        self.sender_fault
    }
}

/// The one mapping from queue errors to SQS errors.
impl From<strata_queue::QueueError> for SqsError {
    fn from(err: strata_queue::QueueError) -> Self {
        use strata_queue::QueueError as E;
        let message = err.to_string();
        match err {
            E::NoSuchQueue(_) => {
                SqsError::new("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", message)
            }
            E::QueueExists(_) => SqsError::new("QueueNameExists", "QueueAlreadyExists", message),
            E::InvalidParameter(_) | E::MessageTooLong { .. } => SqsError::invalid(message),
            E::ReceiptHandleInvalid(_) => {
                SqsError::new("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", message)
            }
            E::MessageNotInflight => {
                SqsError::new("MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", message)
            }
            E::Throttled { retry_after_secs } => SqsError {
                status: StatusCode::BAD_REQUEST,
                retry_after: Some(retry_after_secs),
                ..SqsError::new("ThrottlingException", "ThrottlingException", message)
            },
            E::Core(core) => {
                tracing::error!(err = %core, "queue operation failed");
                SqsError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    sender_fault: false,
                    ..SqsError::new("InternalFailure", "InternalFailure", core.to_string())
                }
            }
        }
    }
}

impl IntoResponse for SqsError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": format!("com.amazonaws.sqs#{}", self.kind), "message": self.message });
        let mut response = (self.status, body.to_string()).into_response();
        let h = response.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
        let fault = if self.sender_fault { "Sender" } else { "Receiver" };
        if let Ok(v) = HeaderValue::from_str(&format!("{};{fault}", self.query_code)) {
            h.insert("x-amzn-query-error", v);
        }
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            h.insert("retry-after", v);
        }
        response
    }
}

/// Serves SQS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    queues: Queues,
    config: SqsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limit = config.max_body_bytes;
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_in_flight));
    let state = AppState { queues, moves: Default::default(), config: Arc::new(config), slots };
    let app = axum::Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// The wire form of a request and its answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `X-Amz-Target` and JSON.
    Json,
    /// `Action=` form or query string, XML answers.
    Query,
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let protocol = if target.is_some() { Protocol::Json } else { Protocol::Query };
    let result = match state.slots.clone().try_acquire_owned() {
        Ok(_slot) => answer(&state, &method, &uri, &headers, body, target.as_deref()).await,
        Err(_) => Err(SqsError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            sender_fault: false,
            retry_after: Some(1),
            ..SqsError::new("ServiceUnavailable", "ServiceUnavailable", "too many requests in flight; retry")
        }),
    };
    let request_id = format!("{:032x}", rand::random::<u128>());
    let (action, response) = match (protocol, result) {
        (Protocol::Json, Ok((action, value))) => {
            let mut response = (StatusCode::OK, value.to_string()).into_response();
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
            (action, response)
        }
        (Protocol::Json, Err(err)) => (String::new(), err.into_response()),
        (Protocol::Query, Ok((action, value))) => {
            let xml = query::answer(&action, &value, &request_id);
            let mut response = (StatusCode::OK, xml).into_response();
            response.headers_mut().insert("content-type", HeaderValue::from_static("text/xml"));
            (action, response)
        }
        (Protocol::Query, Err(err)) => {
            let xml = query::error(err.query_code, &err.message, err.sender_fault, &request_id);
            let mut response = (err.status, xml).into_response();
            response.headers_mut().insert("content-type", HeaderValue::from_static("text/xml"));
            (String::new(), response)
        }
    };
    let mut response = response;
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    finish(action, response, started)
}

fn finish(action: String, response: Response, started: Instant) -> Response {
    let label = if action.is_empty() { "unknown".to_owned() } else { action };
    metrics::counter!("strata_sqs_requests_total", "action" => label.clone(), "status" => response.status().as_u16().to_string())
        .increment(1);
    metrics::histogram!("strata_sqs_request_seconds", "action" => label)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn answer(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    target: Option<&str>,
) -> Result<(String, serde_json::Value), SqsError> {
    let host =
        headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost").to_owned();
    let url = format!("http://{host}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
    let config = state.config.clone();
    auth::verify(method.as_str(), &url, headers, &body, |key| {
        (key == config.access_key).then(|| config.secret_key.clone())
    })
    .map_err(|err| match err {
        auth::AuthError::Missing(msg) => SqsError {
            status: StatusCode::FORBIDDEN,
            ..SqsError::new("MissingAuthenticationToken", "MissingAuthenticationToken", msg)
        },
        auth::AuthError::UnknownKey => SqsError {
            status: StatusCode::FORBIDDEN,
            ..SqsError::new(
                "InvalidClientTokenId",
                "InvalidClientTokenId",
                "the security token included in the request is invalid",
            )
        },
        auth::AuthError::SignatureMismatch => SqsError {
            status: StatusCode::FORBIDDEN,
            ..SqsError::new(
                "SignatureDoesNotMatch",
                "SignatureDoesNotMatch",
                "the request signature we calculated does not match the signature you provided",
            )
        },
        auth::AuthError::Expired => SqsError {
            status: StatusCode::FORBIDDEN,
            ..SqsError::new(
                "RequestExpired",
                "RequestExpired",
                "the request is more than 15 minutes off the server's clock",
            )
        },
    })?;
    let (action, input) = match target {
        Some(target) => {
            let action = target.strip_prefix("AmazonSQS.").unwrap_or_default().to_owned();
            if action.is_empty() {
                return Err(SqsError::new(
                    "InvalidAction",
                    "InvalidAction",
                    "X-Amz-Target must name an AmazonSQS action",
                ));
            }
            let input: serde_json::Value = if body.is_empty() {
                serde_json::json!({})
            } else {
                serde_json::from_slice(&body)
                    .map_err(|e| SqsError::invalid(format!("the body is not JSON: {e}")))?
            };
            (action, input)
        }
        None => {
            let form = if body.is_empty() { uri.query().unwrap_or_default().as_bytes() } else { &body[..] };
            let (action, mut input) = query::parse(form);
            if action.is_empty() {
                return Err(SqsError::new("MissingAction", "MissingAction", "the request names no Action"));
            }
            // Query clients may address the queue by the URL they post to.
            if input.get("QueueUrl").is_none() && uri.path().matches('/').count() >= 2 {
                input["QueueUrl"] = serde_json::Value::String(format!("http://{host}{}", uri.path()));
            }
            (action, input)
        }
    };
    let cx = actions::Context {
        queues: state.queues.clone(),
        moves: state.moves.clone(),
        config: state.config.clone(),
        host,
    };
    let output = actions::run(cx, &action, input).await?;
    Ok((action, output))
}
