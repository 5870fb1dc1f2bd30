//! The route document: one shape for `[[edge.routes]]` in the config file and for the admin
//! API's `PUT /v1/edge/routes/{name}` JSON.
//!
//! ```json
//! {"match": {"host": "api.example.com", "path_prefix": "/api", "methods": ["GET"]},
//!  "strip_prefix": true, "upstreams": ["127.0.0.1:9001", {"address": "127.0.0.1:9002", "weight": 3}],
//!  "balance": "round_robin", "auth": {"api_keys": {"k1": "alice"}}, "rate_limit": {"key": "consumer", "limit": "5/s", "burst": 5},
//!  "health_check": {"path": "/health", "interval_ms": 1000}}
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The route's name (the config file's `name`; the admin API takes it from the path).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, rename = "match")]
    pub matcher: MatchSpec,
    /// Higher first; ties go to the more specific match.
    #[serde(default)]
    pub priority: i32,
    /// Removes the matched `path_prefix` before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// The forwarded path; `$1`, `$name` are the captures of `path_regex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<UpstreamSpec>,
    #[serde(default)]
    pub balance: Balance,
    /// What `consistent_hash` hashes: `header:<name>`, `cookie:<name>` or `ip` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
    /// Passive outlier ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier: Option<OutlierSpec>,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub request_headers: HeaderOps,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub response_headers: HeaderOps,
    /// Speaks HTTP/2 to the upstreams (cleartext, prior knowledge: h2c servers and gRPC
    /// services); HTTP/1.1 otherwise. Upgrades (WebSocket) always go over HTTP/1.1.
    #[serde(default)]
    pub upstream_http2: bool,
    /// Speaks TLS to the upstreams (HTTPS; with `upstream_http2`, HTTP/2 by ALPN), checking
    /// their certificates against the system's roots and `ca_file`, for the host of each
    /// upstream address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_tls: Option<UpstreamTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// Until the upstream's response head arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Extra attempts for idempotent requests without a body, on another backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Most requests in flight to one backend (circuit breaking). When every usable
    /// backend is at it, a request waits for one (see `max_pending`) or gets 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Most requests waiting for a backend under `max_connections` (default 0: none wait);
    /// one more gets 503 `upstream_overflow` at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending: Option<usize>,
    /// How long a request waits for a backend under `max_connections` before its 503
    /// (default: the route's connect timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_timeout_ms: Option<u64>,
    /// Answers without an upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond: Option<StaticResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// `api.example.com` or `*.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// An exact path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// A regex over the whole path, with captures for `rewrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Headers that must be present with these values (`*` for any value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UpstreamSpec {
    Address(String),
    Weighted { address: String, weight: u32 },
}

impl UpstreamSpec {
    pub fn address(&self) -> &str {
        match self {
            UpstreamSpec::Address(a) | UpstreamSpec::Weighted { address: a, .. } => a,
        }
    }

    pub fn weight(&self) -> u32 {
        match self {
            UpstreamSpec::Address(_) => 1,
            UpstreamSpec::Weighted { weight, .. } => *weight,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Round robin, weighted (smooth, as nginx does) when weights differ.
    #[default]
    RoundRobin,
    LeastConn,
    /// The less loaded of two random backends.
    P2c,
    Random,
    ConsistentHash,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// API key → consumer; read from `X-Api-Key` (or the `api_key_query` parameter).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub api_keys: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
    /// HTTP Basic: user → password; the user is the consumer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub basic: BTreeMap<String, String>,
    /// Consumers allowed on the route (empty: every authenticated one); others get 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSpec {
    /// HS256 shared secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// An RS256 or ES256 public key, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// A JWKS document (JSON) or a path to one; keys are chosen by `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// An `http(s)://` URL the proxy fetches a JWKS from, again every `jwks_refresh_secs`
    /// and soon after a token names a `kid` it does not have (key rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Seconds between fetches of `jwks_url` (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_refresh_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The claim that names the consumer (default `sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_claim: Option<String>,
    /// Clock skew allowed on `exp`/`nbf`, in seconds (default 0).
    #[serde(default)]
    pub leeway_secs: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// `consumer`, `ip`, `route` or `header:<name>`.
    #[serde(default = "default_limit_key")]
    pub key: String,
    /// `100/s`, `600/min`, `10000/hour`, `5/10s`.
    pub limit: String,
    /// Requests allowed at once (default: the limit's count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

fn default_limit_key() -> String {
    "ip".into()
}

/// How the proxy checks its upstreams' certificates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// A PEM file of certificates to trust besides the system's roots (an internal CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    pub path: String,
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    #[serde(default = "default_check_timeout")]
    pub timeout_ms: u64,
    /// Failed checks in a row that mark a backend down.
    #[serde(default = "default_threshold")]
    pub unhealthy_threshold: u32,
    /// Passed checks in a row that bring it back.
    #[serde(default = "default_threshold")]
    pub healthy_threshold: u32,
}

/// A connect check of every backend of a TCP (L4) balancer: a backend that does not accept a
/// connection within `timeout_ms` fails it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpHealthCheckSpec {
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    #[serde(default = "default_check_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_threshold")]
    pub unhealthy_threshold: u32,
    #[serde(default = "default_threshold")]
    pub healthy_threshold: u32,
}

fn default_interval() -> u64 {
    1000
}
fn default_check_timeout() -> u64 {
    500
}
fn default_threshold() -> u32 {
    2
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierSpec {
    /// Consecutive 5xx answers or connect failures that eject a backend.
    #[serde(default = "default_failures")]
    pub consecutive_failures: u32,
    #[serde(default = "default_ejection")]
    pub ejection_ms: u64,
}

fn default_failures() -> u32 {
    5
}
fn default_ejection() -> u64 {
    30_000
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOps {
    /// Set (replacing) these headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResponse {
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

fn default_status() -> u16 {
    200
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// The target; `$path` is replaced by the request's path and query.
    pub location: String,
    #[serde(default = "default_redirect")]
    pub status: u16,
}

fn default_redirect() -> u16 {
    301
}
