//! # strata-edge: the API gateway's policy, without sockets
//!
//! What a request meets on its way through the proxy front, each piece testable alone:
//!
//! - **Routes** (`spec.rs`, `router.rs`): match on host (exact or `*.example.com`), path
//!   (exact, prefix, regex with captures), method and headers; strip a prefix or rewrite the
//!   path; add and remove headers; static answers and redirects. One document shape serves
//!   the config file and the admin API.
//! - **Authentication** (`auth.rs`): API keys, JWT (HS256/RS256/ES256, JWKS), HTTP Basic.
//! - **Rate limits** (`ratelimit.rs`): GCRA per consumer, client IP, route or header.
//! - **Load balancing** (`balance.rs`): round robin (weighted), least connections, power of
//!   two choices, random, consistent hashing; active health checks, passive ejection,
//!   a cap on requests in flight per backend.
//!
//! [`Edge`] holds the route table. Changing a route swaps in a new table; requests in
//! flight keep the one they started with (and its backends), so nothing is dropped and a
//! removed backend drains. Runtime changes go through a [`RouteJournal`] first when one is
//! given, so they outlive a restart.
//!
//! ## Limitations
//!
//! - Rate limits here are per process; the proxy front can keep them in a shared store
//!   instead (`strata_proxy`'s `shared_limits.rs`, with this limiter's parameters).
//! - A JWKS URL is fetched by the proxy front (`strata_proxy`'s `jwks.rs`); this crate only
//!   holds what it installs ([`auth::RemoteJwks`]).

pub mod auth;
pub mod balance;
pub mod ratelimit;
pub mod router;
pub mod spec;

pub use spec::RouteSpec;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeError {
    Invalid(String),
    /// The route journal could not record a change.
    Storage(String),
}

impl std::fmt::Display for EdgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EdgeError::Invalid(m) | EdgeError::Storage(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for EdgeError {}

/// A compiled route with its runtime state.
pub struct Route {
    pub spec: RouteSpec,
    pub matcher: router::Matcher,
    pub auth: Option<auth::Authenticator>,
    pub limiter: Option<ratelimit::Limiter>,
    pub pool: balance::Pool,
}

impl Route {
    pub fn new(spec: RouteSpec) -> Result<Route, EdgeError> {
        if spec.name.is_empty() || spec.name.len() > 128 {
            return Err(EdgeError::Invalid("a route needs a name of 1 to 128 bytes".into()));
        }
        if spec.upstreams.is_empty() && spec.respond.is_none() && spec.redirect.is_none() {
            return Err(EdgeError::Invalid(format!(
                "route {}: give upstreams, respond or redirect",
                spec.name
            )));
        }
        for u in &spec.upstreams {
            let ok = u
                .address()
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(EdgeError::Invalid(format!(
                    "route {}: upstream {:?} is not host:port",
                    spec.name,
                    u.address()
                )));
            }
        }
        if let Some(ca_file) = spec.upstream_tls.as_ref().and_then(|t| t.ca_file.as_deref()) {
            let pem = std::fs::read_to_string(ca_file).map_err(|err| {
                EdgeError::Invalid(format!("route {}: upstream_tls.ca_file {ca_file:?}: {err}", spec.name))
            })?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(EdgeError::Invalid(format!(
                    "route {}: upstream_tls.ca_file {ca_file:?} holds no PEM certificate",
                    spec.name
                )));
            }
        }
        if spec.strip_prefix && spec.matcher.path_prefix.is_none() {
            return Err(EdgeError::Invalid(format!(
                "route {}: strip_prefix needs match.path_prefix",
                spec.name
            )));
        }
        let matcher = router::Matcher::new(&spec.matcher)?;
        let auth = spec.auth.as_ref().map(auth::Authenticator::new).transpose()?;
        let limiter =
            spec.rate_limit.as_ref().map(|r| ratelimit::Limiter::new(&r.limit, r.burst)).transpose()?;
        if let Some(r) = &spec.rate_limit {
            let key_ok =
                matches!(r.key.as_str(), "consumer" | "ip" | "route") || r.key.starts_with("header:");
            if !key_ok {
                return Err(EdgeError::Invalid(format!("route {}: rate_limit.key {:?}", spec.name, r.key)));
            }
        }
        let limits = balance::Limits {
            max_connections: spec.max_connections,
            max_pending: spec.max_pending.unwrap_or(0),
        };
        let pool = balance::Pool::new(&spec.upstreams, spec.balance, spec.outlier.clone(), limits);
        Ok(Route { spec, matcher, auth, limiter, pool })
    }

    /// The JWKS this route's JWT keys come from, when they come from a URL.
    pub fn remote_jwks(&self) -> Option<&Arc<auth::RemoteJwks>> {
        self.auth.as_ref()?.remote_jwks()
    }
}

/// Routes in precedence order.
pub struct Table {
    routes: Vec<Arc<Route>>,
}

impl Table {
    /// The first route that matches, with the captures of its path regex.
    pub fn route(&self, req: &router::RequestHead) -> Option<(Arc<Route>, router::Captures)> {
        self.routes.iter().find_map(|r| r.matcher.matches(req).map(|caps| (r.clone(), caps)))
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }
}

struct State {
    /// By name, with their declaration order.
    routes: BTreeMap<String, (u64, Arc<Route>)>,
    next_order: u64,
    table: Arc<Table>,
}

/// Where changes made at runtime (the admin API) are kept, so that a restart starts from
/// them: the binary keeps them in core. A change is written here before it takes effect.
pub trait RouteJournal: Send + Sync {
    /// Records a route created or replaced.
    fn put(&self, spec: &RouteSpec) -> Result<(), EdgeError>;
    /// Records a route deleted.
    fn delete(&self, name: &str) -> Result<(), EdgeError>;
    /// What was recorded, in order: a route (`Some`) or a deletion (`None`) by name.
    fn load(&self) -> Result<Vec<(String, Option<RouteSpec>)>, EdgeError>;
}

/// The route table, changeable at runtime. Cheap to clone.
#[derive(Clone)]
pub struct Edge {
    state: Arc<RwLock<State>>,
    journal: Option<Arc<dyn RouteJournal>>,
    /// One change at a time, so the journal records changes in the order the table takes
    /// them, while the table's lock is held only for the swap (not for the journal's fsync,
    /// which would stall every request's `table()`).
    changes: Arc<Mutex<()>>,
}

impl Edge {
    pub fn new(specs: Vec<RouteSpec>) -> Result<Edge, EdgeError> {
        let edge = Edge {
            state: Arc::new(RwLock::new(State {
                routes: BTreeMap::new(),
                next_order: 0,
                table: Arc::new(Table { routes: Vec::new() }),
            })),
            journal: None,
            changes: Arc::default(),
        };
        for spec in specs {
            if edge.get(&spec.name).is_some() {
                return Err(EdgeError::Invalid(format!("two routes are named {}", spec.name)));
            }
            let name = spec.name.clone();
            edge.put(&name, spec)?;
        }
        Ok(edge)
    }

    /// The config file's routes, then the changes `journal` recorded at runtime on top (a
    /// recorded route replaces the file's of that name; a recorded deletion removes it).
    /// Later changes are recorded there too.
    pub fn with_journal(specs: Vec<RouteSpec>, journal: Arc<dyn RouteJournal>) -> Result<Edge, EdgeError> {
        let mut edge = Edge::new(specs)?;
        for (name, change) in journal.load()? {
            match change {
                Some(spec) => {
                    edge.put(&name, spec).map_err(|e| {
                        EdgeError::Invalid(format!("route {name} recorded by the admin API: {e}"))
                    })?;
                }
                None => {
                    edge.delete(&name)?;
                }
            }
        }
        edge.journal = Some(journal);
        Ok(edge)
    }

    /// The table requests use now.
    pub fn table(&self) -> Arc<Table> {
        self.state.read().expect("edge lock").table.clone()
    }

    /// Creates or replaces a route; returns whether it is new.
    pub fn put(&self, name: &str, mut spec: RouteSpec) -> Result<bool, EdgeError> {
        spec.name = name.to_string();
        let route = Arc::new(Route::new(spec)?);
        let _one = self.changes.lock().expect("edge changes lock");
        if let Some(journal) = &self.journal {
            journal.put(&route.spec)?;
        }
        let mut state = self.state.write().expect("edge lock");
        if let Some(remote) = route.remote_jwks() {
            let same_url = state.table.routes.iter().filter_map(|r| r.remote_jwks());
            if let Some(old) = same_url.filter(|old| old.url == remote.url).find(|old| !old.wants_keys()) {
                remote.adopt(old);
            }
        }
        let order = match state.routes.get(name) {
            Some((order, _)) => *order,
            None => {
                state.next_order += 1;
                state.next_order
            }
        };
        let created = state.routes.insert(name.to_string(), (order, route)).is_none();
        rebuild(&mut state);
        Ok(created)
    }

    /// Deletes a route; returns whether there was one.
    pub fn delete(&self, name: &str) -> Result<bool, EdgeError> {
        let _one = self.changes.lock().expect("edge changes lock");
        if !self.state.read().expect("edge lock").routes.contains_key(name) {
            return Ok(false);
        }
        if let Some(journal) = &self.journal {
            journal.delete(name)?;
        }
        let mut state = self.state.write().expect("edge lock");
        state.routes.remove(name);
        rebuild(&mut state);
        Ok(true)
    }

    pub fn get(&self, name: &str) -> Option<RouteSpec> {
        self.state.read().expect("edge lock").routes.get(name).map(|(_, r)| r.spec.clone())
    }

    pub fn list(&self) -> Vec<RouteSpec> {
        self.table().routes.iter().map(|r| r.spec.clone()).collect()
    }
}

fn rebuild(state: &mut State) {
    let mut routes: Vec<(u64, Arc<Route>)> = state.routes.values().cloned().collect();
    routes.sort_by(|(oa, a), (ob, b)| {
        (b.spec.priority, b.matcher.specificity())
            .cmp(&(a.spec.priority, a.matcher.specificity()))
            .then(oa.cmp(ob))
    });
    state.table = Arc::new(Table { routes: routes.into_iter().map(|(_, r)| r).collect() });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> RouteSpec {
        serde_json::from_value(v).unwrap()
    }

    fn route_of(edge: &Edge, host: &str, path: &str, method: &str) -> Option<String> {
        let none = |_: &str| None;
        let head = router::RequestHead { host, path, method, header: &none };
        edge.table().route(&head).map(|(r, _)| r.spec.name.clone())
    }

    #[test]
    fn precedence_exact_then_regex_then_longest_prefix_and_hosts() {
        let up = json!(["127.0.0.1:1"]);
        let edge = Edge::new(vec![
            spec(json!({"name": "all", "upstreams": up})),
            spec(json!({"name": "api", "match": {"path_prefix": "/api"}, "upstreams": up})),
            spec(json!({"name": "api-v2", "match": {"path_prefix": "/api/v2"}, "upstreams": up})),
            spec(json!({"name": "user", "match": {"path_regex": "/api/users/(\\d+)"}, "upstreams": up})),
            spec(json!({"name": "health", "match": {"path": "/api/health"}, "upstreams": up})),
            spec(json!({"name": "tenant", "match": {"host": "*.example.com", "path_prefix": "/api"}, "upstreams": up})),
            spec(json!({"name": "posts", "match": {"path_prefix": "/api", "methods": ["POST"]}, "upstreams": up})),
        ])
        .unwrap();
        assert_eq!(route_of(&edge, "x", "/api/health", "GET").as_deref(), Some("health"));
        assert_eq!(route_of(&edge, "x", "/api/users/7", "GET").as_deref(), Some("user"));
        assert_eq!(route_of(&edge, "x", "/api/v2/things", "GET").as_deref(), Some("api-v2"));
        assert_eq!(route_of(&edge, "x", "/api/things", "GET").as_deref(), Some("api"));
        assert_eq!(route_of(&edge, "x", "/api/things", "POST").as_deref(), Some("posts"));
        assert_eq!(route_of(&edge, "acme.example.com:8000", "/api/x", "GET").as_deref(), Some("tenant"));
        assert_eq!(route_of(&edge, "x", "/apis", "GET").as_deref(), Some("all"), "a prefix ends at a /");
        edge.delete("all").unwrap();
        assert_eq!(route_of(&edge, "x", "/other", "GET"), None);
    }

    #[test]
    fn rewrites() {
        let r = Route::new(spec(json!({"name": "r", "match": {"path_prefix": "/api/"}, "strip_prefix": true, "upstreams": ["h:1"]}))).unwrap();
        assert_eq!(router::forward_path(&r.spec, "/api/users", &[]), "/users");
        assert_eq!(router::forward_path(&r.spec, "/api", &[]), "/");
        let r = Route::new(spec(json!({"name": "r", "match": {"path_regex": "/u/(?P<id>\\d+)/(.*)"}, "rewrite": "/users/$id/$2", "upstreams": ["h:1"]}))).unwrap();
        let none = |_: &str| None;
        let caps = r
            .matcher
            .matches(&router::RequestHead { host: "", path: "/u/42/posts", method: "GET", header: &none })
            .unwrap();
        assert_eq!(router::forward_path(&r.spec, "/u/42/posts", &caps), "/users/42/posts");
    }

    #[test]
    fn bad_routes_are_refused() {
        for bad in [
            json!({"name": "r"}),
            json!({"name": "r", "upstreams": ["nohost"]}),
            json!({"name": "r", "match": {"path_regex": "("}, "upstreams": ["h:1"]}),
            json!({"name": "r", "strip_prefix": true, "upstreams": ["h:1"]}),
            json!({"name": "r", "upstreams": ["h:1"], "rate_limit": {"limit": "many"}}),
            json!({"name": "r", "upstreams": ["h:1"], "auth": {"jwt": {"jwks_url": "ftp://idp/keys"}}}),
            json!({"name": "r", "upstreams": ["h:1"], "auth": {"jwt": {}}}),
        ] {
            assert!(Route::new(spec(bad.clone())).is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<RouteSpec>(json!({"name": "r", "bogus": 1})).is_err());
    }

    #[test]
    fn a_replaced_route_keeps_the_keys_fetched_for_its_jwks_url() {
        let route = |name: &str| {
            spec(json!({"name": name, "upstreams": ["h:1"],
                        "auth": {"jwt": {"jwks_url": "http://idp/keys", "jwks_refresh_secs": 60}}}))
        };
        let remote = |edge: &Edge| edge.table().routes()[0].remote_jwks().unwrap().clone();
        let edge = Edge::new(vec![route("api")]).unwrap();
        let first = remote(&edge);
        assert_eq!(
            (first.url.as_str(), first.refresh),
            ("http://idp/keys", std::time::Duration::from_secs(60))
        );
        assert!(first.wants_keys(), "nothing fetched yet");
        assert!(first.install("not json").is_err());
        let jwks = json!({"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]}).to_string();
        assert_eq!(first.install(&jwks).unwrap(), 1);
        assert!(!first.wants_keys());
        edge.put("api", route("api")).unwrap();
        let second = remote(&edge);
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(!second.wants_keys(), "the new route adopted the fetched keys");
    }
}
