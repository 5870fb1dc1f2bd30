//! One request through the edge: route, static answers, auth, rate limit, body limit,
//! backend choice, forwarding with retries, WebSocket upgrades, response headers, access
//! log and metrics.

use crate::{AccessLog, ProxyConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_edge::balance::{Lease, Pool};
use strata_edge::ratelimit::Verdict;
use strata_edge::router::{RequestHead, forward_path};
use strata_edge::spec::UpstreamTls;
use strata_edge::{Edge, Route, auth::Credentials};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

/// Headers that belong to one hop and are not forwarded. (Names as constants: a `&str`
/// name is parsed and validated again at every use.)
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Retries allowed per route in a window: this many, plus a fifth of its requests.
const RETRY_BUDGET_BASE: u64 = 10;
const RETRY_WINDOW: Duration = Duration::from_secs(10);

/// A pooled client for upstreams: plain or TLS by the URI's scheme.
type UpstreamClient = Client<HttpsConnector<HttpConnector>, Body>;

/// What a pooled client is made for: (connect timeout in ms, HTTP/2, TLS).
type ClientKey = (u64, bool, Option<UpstreamTls>);

/// How a route reaches its upstreams.
#[derive(Clone, Copy)]
pub struct Reach<'a> {
    pub connect_timeout: Duration,
    /// HTTP/2: by prior knowledge (h2c) in the clear, by ALPN over TLS.
    pub http2: bool,
    pub tls: Option<&'a UpstreamTls>,
}

impl Reach<'_> {
    /// The URI of `target` (path and query) on the upstream at `address`.
    fn uri(&self, address: &str, target: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{address}{target}")
    }
}

/// The TLS settings of a client: for TLS upstreams, the system's roots plus the route's CA
/// file; for plain ones (which never use them), no roots at all.
fn tls_config(tls: Option<&UpstreamTls>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(tls) = tls {
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if let Some(path) = &tls.ca_file {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|err| format!("upstream_tls.ca_file {path:?}: {err}"))?;
            for cert in certs {
                roots.add(cert).map_err(|err| format!("upstream_tls.ca_file {path:?}: {err}"))?;
            }
        }
    }
    // rustls is built with more than one crypto provider here, so it has no process
    // default: name one.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Per route: (window start, requests, retries).
type Budgets = HashMap<String, (Instant, u64, u64)>;

/// The pipeline of one thread: its pooled clients are its own (a pooled upstream
/// connection is driven by a task on the runtime that opened it), the rest is shared with
/// the pipelines of the other threads.
pub struct Pipeline {
    edge: Edge,
    config: ProxyConfig,
    log: AccessLog,
    /// Pooled clients by how they reach upstreams.
    clients: Mutex<HashMap<ClientKey, UpstreamClient>>,
    /// Retry budgets, counted over all threads.
    budgets: Arc<Mutex<Budgets>>,
    /// Rate limits kept in a store shared with other edge processes, when configured.
    shared: Option<Arc<crate::shared_limits::SharedLimits>>,
    /// Metric handles by route name.
    metrics: Handles<RouteMetrics>,
    /// Answers by upstream address and status class.
    upstream_metrics: Handles<ByClass>,
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).map_err(|never| match never {}).boxed()
}

fn empty() -> Body {
    Empty::<Bytes>::new().map_err(|never| match never {}).boxed()
}

/// The JSON error answer.
fn error(status: u16, code: &str, message: &str, request_id: &str) -> Response<Body> {
    let body = json!({"error": {"code": code, "message": message}, "request_id": request_id});
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The status classes, as metric labels.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index of a status's class in [`STATUS_CLASSES`].
fn class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(String::from)
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()))
}

fn set(headers: &mut HeaderMap, name: impl TryInto<HeaderName>, value: &str) {
    if let (Ok(n), Ok(v)) = (name.try_into(), HeaderValue::from_str(value)) {
        headers.insert(n, v);
    }
}

/// What the access log says about a request.
struct Entry {
    started: Instant,
    request_id: String,
    method: String,
    path: String,
    route: Option<String>,
    consumer: Option<String>,
    upstream: Option<String>,
    retries: u32,
}

/// One line of the access log.
#[derive(serde::Serialize)]
struct LogLine<'a> {
    ts_ms: u64,
    request_id: &'a str,
    method: &'a str,
    path: &'a str,
    route: &'a str,
    consumer: Option<&'a str>,
    upstream: Option<&'a str>,
    status: u16,
    bytes: Option<u64>,
    latency_ms: f64,
    retries: u32,
}

/// Metric handles by a label value (a route name, an upstream address), registered on its
/// first use: a handle is found once per label value, not per request.
struct Handles<T>(Mutex<HashMap<String, T>>);

impl<T> Default for Handles<T> {
    fn default() -> Self {
        Handles(Mutex::default())
    }
}

impl<T> Handles<T> {
    /// Runs `f` on the handles of `label`, made by `make` the first time.
    fn with(&self, label: &str, make: impl FnOnce(&str) -> T, f: impl FnOnce(&T)) {
        let mut handles = self.0.lock().expect("metrics lock");
        if !handles.contains_key(label) {
            handles.insert(label.to_string(), make(label));
        }
        f(&handles[label]);
    }
}

/// One counter per status class.
struct ByClass([metrics::Counter; STATUS_CLASSES.len()]);

impl ByClass {
    /// The counters of metric `name` whose label `key` is `value`.
    fn new(name: &'static str, key: &'static str, value: &str) -> ByClass {
        ByClass(
            STATUS_CLASSES.map(|class| metrics::counter!(name, key => value.to_string(), "status" => class)),
        )
    }

    fn count(&self, status: u16) {
        self.0[class_index(status)].increment(1);
    }
}

/// The request counters (by status class) and latency histogram of one route.
struct RouteMetrics {
    requests: ByClass,
    latency: metrics::Histogram,
}

impl RouteMetrics {
    fn new(route: &str) -> RouteMetrics {
        RouteMetrics {
            requests: ByClass::new("strata_proxy_requests_total", "route", route),
            latency: metrics::histogram!("strata_proxy_request_seconds", "route" => route.to_string()),
        }
    }
}

impl Pipeline {
    pub fn new(edge: Edge, config: ProxyConfig, log: AccessLog) -> Pipeline {
        let shared = config
            .rate_limit_store
            .as_deref()
            .map(|url| Arc::new(crate::shared_limits::SharedLimits::new(url)));
        Pipeline {
            edge,
            config,
            log,
            clients: Mutex::default(),
            budgets: Arc::default(),
            shared,
            metrics: Handles::default(),
            upstream_metrics: Handles::default(),
        }
    }

    /// A pipeline for another thread: the same routes, log, budgets and shared limits,
    /// with pooled clients of its own.
    pub fn for_thread(&self) -> Pipeline {
        Pipeline {
            edge: self.edge.clone(),
            config: self.config.clone(),
            log: self.log.clone(),
            clients: Mutex::default(),
            budgets: self.budgets.clone(),
            shared: self.shared.clone(),
            metrics: Handles::default(),
            upstream_metrics: Handles::default(),
        }
    }

    /// The pooled client for upstreams reached as `reach` says; an error when its TLS
    /// settings cannot be made (an unreadable CA file).
    fn client(&self, reach: Reach) -> Result<UpstreamClient, String> {
        let key = (reach.connect_timeout.as_millis() as u64, reach.http2, reach.tls.cloned());
        let mut clients = self.clients.lock().expect("clients lock");
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(reach.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        // ALPN offers the one protocol the client speaks.
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(reach.tls)?)
            .https_or_http();
        let connector = if reach.http2 {
            builder.enable_http2().wrap_connector(connector)
        } else {
            builder.enable_http1().wrap_connector(connector)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(self.config.pool_idle_per_host)
            .http2_only(reach.http2)
            .build(connector);
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// A health check: GET `path` on `address` as `reach` says, 2xx within its connect
    /// timeout (the check's timeout).
    pub async fn probe(&self, address: &str, path: &str, reach: Reach<'_>) -> bool {
        let Ok(req) = Request::get(reach.uri(address, path)).body(empty()) else { return false };
        let Ok(client) = self.client(reach) else { return false };
        let answer = tokio::time::timeout(reach.connect_timeout, client.request(req)).await;
        matches!(answer, Ok(Ok(resp)) if resp.status().is_success())
    }

    /// Whether the route may retry once more (and counts it).
    fn retry_allowed(&self, route: &str) -> bool {
        let mut budgets = self.budgets.lock().expect("budget lock");
        let (_, requests, retries) = budgets.get_mut(route).expect("counted at the request");
        if *retries < RETRY_BUDGET_BASE + *requests / 5 {
            *retries += 1;
            true
        } else {
            false
        }
    }

    fn count_request(&self, route: &str) {
        let mut budgets = self.budgets.lock().expect("budget lock");
        let entry = budgets.entry(route.to_string()).or_insert((Instant::now(), 0, 0));
        if entry.0.elapsed() > RETRY_WINDOW {
            *entry = (Instant::now(), 0, 0);
        }
        entry.1 += 1;
    }

    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let mut entry = Entry {
            started: Instant::now(),
            request_id: request_id(req.headers()),
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            route: None,
            consumer: None,
            upstream: None,
            retries: 0,
        };
        let mut resp = self.run(req, peer, &mut entry).await;
        set(resp.headers_mut(), X_REQUEST_ID, &entry.request_id);
        self.finish(&entry, &resp);
        resp
    }

    fn finish(&self, entry: &Entry, resp: &Response<Body>) {
        let status = resp.status().as_u16();
        let route = entry.route.as_deref().unwrap_or("-");
        let latency = entry.started.elapsed();
        self.metrics.with(route, RouteMetrics::new, |m| {
            m.requests.count(status);
            m.latency.record(latency.as_secs_f64());
        });
        if self.log.enabled() {
            let bytes =
                resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            self.log.write(&LogLine {
                ts_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                request_id: &entry.request_id,
                method: &entry.method,
                path: &entry.path,
                route,
                consumer: entry.consumer.as_deref(),
                upstream: entry.upstream.as_deref(),
                status,
                bytes,
                latency_ms: latency.as_secs_f64() * 1000.0,
                retries: entry.retries,
            });
        }
    }

    async fn run(&self, mut req: Request<Incoming>, peer: SocketAddr, entry: &mut Entry) -> Response<Body> {
        let rid = entry.request_id.clone();
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(String::from);
        let table = self.edge.table();
        let matched = {
            let headers = req.headers();
            let lookup = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(String::from);
            let head =
                RequestHead { host: &host, path: &path, method: req.method().as_str(), header: &lookup };
            table.route(&head)
        };
        let Some((route, captures)) = matched else {
            return error(404, "no_route", &format!("no route for {host}{path}"), &rid);
        };
        entry.route = Some(route.spec.name.clone());
        let spec = &route.spec;
        if let Some(r) = &spec.respond {
            let mut resp = Response::new(full(r.body.clone()));
            *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
            for (k, v) in &r.headers {
                set(resp.headers_mut(), k, v);
            }
            return resp;
        }
        if let Some(r) = &spec.redirect {
            let target = match &query {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            let mut resp = Response::new(empty());
            *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
            set(resp.headers_mut(), "location", &r.location.replace("$path", &target));
            return resp;
        }
        if let Some(auth) = &route.auth {
            let h = req.headers();
            let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
            let creds = Credentials {
                api_key: text("x-api-key"),
                authorization: text("authorization"),
                query: query.as_deref(),
            };
            match auth.authenticate(&creds) {
                Ok(consumer) => entry.consumer = Some(consumer),
                Err(denied) => {
                    let code = if denied.status == 403 { "forbidden" } else { "unauthorized" };
                    let mut resp = error(denied.status, code, &denied.message, &rid);
                    if denied.status == 401 {
                        set(resp.headers_mut(), "www-authenticate", "Bearer, Basic realm=\"strata\"");
                    }
                    return resp;
                }
            }
        }
        let mut limit_headers = Vec::new();
        if let (Some(limiter), Some(r)) = (&route.limiter, &spec.rate_limit) {
            let ip = peer.ip().to_string();
            let key = match r.key.as_str() {
                "consumer" => entry.consumer.clone().unwrap_or(ip),
                "route" => spec.name.clone(),
                k => match k.strip_prefix("header:") {
                    Some(name) => {
                        req.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from).unwrap_or(ip)
                    }
                    None => ip,
                },
            };
            let secs = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
            limit_headers.push(("ratelimit-limit", limiter.limit.to_string()));
            let verdict = match &self.shared {
                Some(shared) => shared.check(&spec.name, &key, limiter).await,
                None => limiter.check(&key, Instant::now()),
            };
            match verdict {
                Verdict::Allowed { remaining, reset } => {
                    limit_headers.push(("ratelimit-remaining", remaining.to_string()));
                    limit_headers.push(("ratelimit-reset", secs(reset).to_string()));
                }
                Verdict::Limited { retry_after, reset } => {
                    metrics::counter!("strata_proxy_rate_limited_total", "route" => spec.name.clone())
                        .increment(1);
                    let mut resp =
                        error(429, "rate_limited", &format!("over the limit of {}", r.limit), &rid);
                    let h = resp.headers_mut();
                    set(h, "retry-after", &secs(retry_after).max(1).to_string());
                    set(h, "ratelimit-limit", &limiter.limit.to_string());
                    set(h, "ratelimit-remaining", "0");
                    set(h, "ratelimit-reset", &secs(reset).to_string());
                    return resp;
                }
            }
        }
        let max_body = spec.max_body_bytes.unwrap_or(self.config.max_body_bytes);
        let length =
            req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if length.is_some_and(|l| l > max_body) {
            return error(413, "body_too_large", &format!("the body is over {max_body} bytes"), &rid);
        }
        let bodiless = length.unwrap_or(0) == 0 && !req.headers().contains_key(header::TRANSFER_ENCODING);
        let upgrade = req.headers().contains_key(header::UPGRADE);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

        // The forwarded request's head.
        let forwarded = forward_path(spec, &path, &captures);
        let target = match &query {
            Some(q) => format!("{forwarded}?{q}"),
            None => forwarded,
        };
        let (head, incoming) = req.into_parts();
        let (method, mut headers) = (head.method, head.headers);
        strip_hop_by_hop(&mut headers, upgrade);
        headers.remove(X_CONSUMER_ID);
        for name in &spec.request_headers.remove {
            headers.remove(name.as_str());
        }
        for (k, v) in &spec.request_headers.add {
            set(&mut headers, k, v);
        }
        set(&mut headers, X_REQUEST_ID, &rid);
        let xff = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prior) => format!("{prior}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        set(&mut headers, X_FORWARDED_FOR, &xff);
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        if !host.is_empty() {
            set(&mut headers, X_FORWARDED_HOST, &host);
            set(&mut headers, header::HOST, &host);
        }
        if let Some(consumer) = &entry.consumer {
            set(&mut headers, X_CONSUMER_ID, consumer);
        }
        let hash_key = hash_key(spec.hash_on.as_deref(), &headers, peer);
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
        );
        let retries = if idempotent && bodiless && !upgrade {
            spec.retries.unwrap_or(u32::from(route.pool.backends.len() > 1))
        } else {
            0
        };
        let mut body = Some(Limited::new(incoming, max_body as usize).boxed());
        let connect_timeout =
            spec.connect_timeout_ms.map_or(self.config.connect_timeout, Duration::from_millis);
        let reach = Reach {
            connect_timeout,
            http2: spec.upstream_http2 && !upgrade,
            tls: spec.upstream_tls.as_ref(),
        };
        let client = match self.client(reach) {
            Ok(client) => client,
            Err(err) => return error(502, "bad_gateway", &err, &rid),
        };
        let timeout = spec.timeout_ms.map_or(self.config.timeout, Duration::from_millis);
        self.count_request(&spec.name);

        let mut tried = Vec::new();
        let mut last_error = None;
        loop {
            let lease = match route.pool.pick(hash_key.as_deref(), &tried) {
                Some(lease) => lease,
                None if route.pool.full(&tried) => {
                    let wait = spec.queue_timeout_ms.map_or(connect_timeout, Duration::from_millis);
                    match wait_for_backend(&route.pool, hash_key.as_deref(), &tried, wait).await {
                        Ok(lease) => lease,
                        Err(message) => {
                            metrics::counter!("strata_proxy_overflows_total", "route" => spec.name.clone())
                                .increment(1);
                            return error(503, "upstream_overflow", &message, &rid);
                        }
                    }
                }
                None => {
                    return last_error.unwrap_or_else(|| {
                        error(503, "no_healthy_upstream", "no backend is available", &rid)
                    });
                }
            };
            let (address, index) = (lease.address().to_string(), lease.index);
            entry.upstream = Some(address.clone());
            let mut builder = Request::builder().method(method.clone()).uri(reach.uri(&address, &target));
            // The last attempt takes the headers; one that may be retried sends a copy.
            *builder.headers_mut().expect("a fresh builder") =
                if entry.retries < retries { headers.clone() } else { std::mem::take(&mut headers) };
            let outgoing = builder.body(body.take().unwrap_or_else(empty)).expect("a valid request");
            let attempt = tokio::time::timeout(timeout, client.request(outgoing)).await;
            let can_retry = (entry.retries as usize) < retries as usize && self.retry_allowed(&spec.name);
            let (failed, outcome) = match attempt {
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    let upstream =
                        |a: &str| ByClass::new("strata_proxy_upstream_requests_total", "upstream", a);
                    self.upstream_metrics.with(&address, upstream, |c| c.count(status));
                    (status >= 500, Ok(resp))
                }
                Ok(Err(err)) => {
                    tracing::debug!(%err, upstream = %address, "upstream request failed");
                    (true, Err(error(502, "bad_gateway", &format!("upstream {address}: {err}"), &rid)))
                }
                Err(_) => (
                    true,
                    Err(error(
                        504,
                        "upstream_timeout",
                        &format!("upstream {address} did not answer in {timeout:?}"),
                        &rid,
                    )),
                ),
            };
            route.pool.report(lease.index, failed);
            drop(lease);
            let retriable = match &outcome {
                Ok(resp) => matches!(resp.status().as_u16(), 502..=504),
                Err(_) => true,
            };
            if failed && retriable && can_retry {
                tried.push(index);
                entry.retries += 1;
                metrics::counter!("strata_proxy_retries_total", "route" => spec.name.clone()).increment(1);
                if let Err(resp) = outcome {
                    last_error = Some(resp);
                }
                continue;
            }
            return match outcome {
                Ok(resp) => respond(resp, &route, client_upgrade, &limit_headers),
                Err(resp) => resp,
            };
        }
    }
}

/// Waits up to `wait`, as one of at most `max_pending` waiting requests, for a backend of
/// `pool` under `max_connections`; the reason for the 503 when the queue is full, the wait
/// ends, or no usable backend is left.
async fn wait_for_backend<'p>(
    pool: &'p Pool,
    hash_key: Option<&str>,
    tried: &[usize],
    wait: Duration,
) -> Result<Lease<'p>, String> {
    let Some(_queued) = pool.enqueue() else {
        return Err("every backend is at max_connections and max_pending requests wait".into());
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let released = pool.released();
        tokio::pin!(released);
        // Registered before the next try, so a release in between wakes it.
        released.as_mut().enable();
        if let Some(lease) = pool.pick(hash_key, tried) {
            return Ok(lease);
        }
        if !pool.full(tried) || tokio::time::timeout_at(deadline, released).await.is_err() {
            return Err(format!("no backend fell under max_connections within {wait:?}"));
        }
    }
}

/// The upstream's answer, with the route's response headers; a 101 joins the two upgraded
/// connections.
fn respond(
    mut resp: Response<Incoming>,
    route: &Route,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    limit_headers: &[(&str, String)],
) -> Response<Body> {
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching && let Some(client_side) = client_upgrade {
        let upstream_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            if let (Ok(client), Ok(upstream)) = (client_side.await, upstream_side.await) {
                let (mut c, mut u) = (TokioIo::new(client), TokioIo::new(upstream));
                let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
            }
        });
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, switching);
    for name in &route.spec.response_headers.remove {
        parts.headers.remove(name.as_str());
    }
    for (k, v) in &route.spec.response_headers.add {
        set(&mut parts.headers, k, v);
    }
    for (k, v) in limit_headers {
        set(&mut parts.headers, *k, v);
    }
    Response::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed())
}

/// Removes hop-by-hop headers (and those `Connection` names); an upgrade keeps
/// `Connection` and `Upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let kept = |name: &HeaderName| upgrade && (name == header::CONNECTION || name == header::UPGRADE);
    // Empty (and not allocated) when there is no `Connection` header.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if !kept(&name) {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        if !kept(&name) {
            headers.remove(name);
        }
    }
}

/// The consistent-hash key: a header, a cookie, or the client IP.
fn hash_key(hash_on: Option<&str>, headers: &HeaderMap, peer: SocketAddr) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(String::from);
    let key = match hash_on.unwrap_or("ip") {
        "ip" => None,
        h => match (h.strip_prefix("header:"), h.strip_prefix("cookie:")) {
            (Some(name), _) => text(name),
            (_, Some(name)) => text("cookie").and_then(|c| {
                c.split(';').find_map(|kv| {
                    let (k, v) = kv.trim().split_once('=')?;
                    (k == name).then(|| v.to_string())
                })
            }),
            _ => None,
        },
    };
    Some(key.unwrap_or_else(|| peer.ip().to_string()))
}
