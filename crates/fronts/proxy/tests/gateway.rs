//! The proxy front driven with reqwest (and raw sockets for bad input, upgrades and TCP)
//! against real upstream servers on port 0.

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use strata_edge::{Edge, RouteSpec};
use strata_proxy::{AccessLog, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that answers who it is, what it saw, and counts its requests.
#[derive(Clone)]
struct Upstream {
    name: String,
    healthy: Arc<AtomicBool>,
    hits: Arc<AtomicU64>,
    posts: Arc<AtomicU64>,
}

async fn upstream_handler(State(up): State<Upstream>, req: Request) -> axum::response::Response {
    let path = req.uri().path().to_string();
    if path == "/health" {
        let status = if up.healthy.load(Ordering::Relaxed) { 200 } else { 503 };
        return (axum::http::StatusCode::from_u16(status).unwrap(), "health").into_response();
    }
    up.hits.fetch_add(1, Ordering::Relaxed);
    if req.method() == axum::http::Method::POST {
        up.posts.fetch_add(1, Ordering::Relaxed);
    }
    if path == "/big" {
        // 32 MiB in 64 KiB chunks, produced as it is sent.
        let chunks = futures::stream::iter(0..512).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 64 * 1024]));
        return axum::body::Body::from_stream(chunks).into_response();
    }
    if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    if path == "/fail" {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    let headers: HashMap<String, String> =
        req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let query = req.uri().query().map(String::from);
    let mut bytes = 0usize;
    let mut body = req.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        bytes += chunk.map(|c| c.len()).unwrap_or(0);
    }
    let mut resp = axum::Json(
        json!({"server": up.name, "path": path, "query": query, "headers": headers, "bytes": bytes}),
    )
    .into_response();
    resp.headers_mut().insert("x-internal", "secret".parse().unwrap());
    resp
}

async fn upstream(name: &str) -> (String, Upstream) {
    let up = Upstream {
        name: name.into(),
        healthy: Arc::new(AtomicBool::new(true)),
        hits: Arc::default(),
        posts: Arc::default(),
    };
    let app = axum::Router::new().fallback(upstream_handler).with_state(up.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, up)
}

/// An address nothing listens on.
fn dead_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

async fn proxy(routes: Vec<Value>) -> (String, Edge) {
    proxy_with(routes, ProxyConfig { max_header_bytes: 16 * 1024, ..ProxyConfig::default() }).await
}

async fn proxy_with(routes: Vec<Value>, config: ProxyConfig) -> (String, Edge) {
    let specs: Vec<RouteSpec> = routes.into_iter().map(|r| serde_json::from_value(r).unwrap()).collect();
    let edge = Edge::new(specs).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(strata_proxy::serve(
        listener,
        edge.clone(),
        config,
        AccessLog::off(),
        std::future::pending(),
    ));
    (base, edge)
}

async fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn routing_rewrites_headers_static_and_redirects() {
    let (a, _) = upstream("a").await;
    let (b, _) = upstream("b").await;
    let (base, _edge) = proxy(vec![
        json!({"name": "api", "match": {"path_prefix": "/api"}, "strip_prefix": true, "upstreams": [a],
               "request_headers": {"add": {"x-gateway": "strata"}, "remove": ["x-drop"]},
               "response_headers": {"remove": ["x-internal"], "add": {"x-served-by": "edge"}}}),
        json!({"name": "users", "match": {"path_regex": "/u/(?P<id>\\d+)"}, "rewrite": "/users/$id", "upstreams": [b]}),
        json!({"name": "admin", "match": {"host": "admin.local", "path_prefix": "/"}, "upstreams": [b]}),
        json!({"name": "ping", "match": {"path": "/ping"}, "respond": {"status": 200, "body": "pong"}}),
        json!({"name": "old", "match": {"path_prefix": "/old"}, "redirect": {"location": "https://example.com$path", "status": 308}}),
    ])
    .await;
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/orders?x=1"))
        .header("x-drop", "1")
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-123");
    assert_eq!(resp.headers()["x-served-by"], "edge");
    assert!(!resp.headers().contains_key("x-internal"));
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(
        (seen["server"].as_str(), seen["path"].as_str(), seen["query"].as_str()),
        (Some("a"), Some("/orders"), Some("x=1"))
    );
    assert_eq!(seen["headers"]["x-gateway"], "strata");
    assert_eq!(seen["headers"]["x-request-id"], "req-123");
    assert!(seen["headers"].get("x-drop").is_none());
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");

    let (_, seen) = get(&format!("{base}/u/42")).await;
    assert_eq!((seen["server"].as_str(), seen["path"].as_str()), (Some("b"), Some("/users/42")));
    let resp = reqwest::Client::new()
        .get(format!("{base}/anything"))
        .header("host", "admin.local")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["server"], "b");
    assert_eq!(reqwest::get(format!("{base}/ping")).await.unwrap().text().await.unwrap(), "pong");
    let no_follow = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = no_follow.get(format!("{base}/old/page?q=1")).send().await.unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["location"], "https://example.com/old/page?q=1");
    let (status, body) = get(&format!("{base}/nowhere")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("no_route")));
    assert!(body["request_id"].as_str().is_some_and(|r| r.len() == 32));
}

fn jwt(secret: &str, sub: &str, exp_offset: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({"sub": sub, "exp": now + exp_offset, "iss": "issuer-1"});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn api_keys_jwt_and_basic_auth() {
    let (a, _) = upstream("a").await;
    let (base, _edge) = proxy(vec![
        json!({"name": "keys", "match": {"path_prefix": "/keys"}, "upstreams": [a],
               "auth": {"api_keys": {"k-alice": "alice", "k-bob": "bob"}, "allow": ["alice"]}}),
        json!({"name": "jwt", "match": {"path_prefix": "/jwt"}, "upstreams": [a],
               "auth": {"jwt": {"secret": "s3cret", "issuer": "issuer-1"}}}),
        json!({"name": "basic", "match": {"path_prefix": "/basic"}, "upstreams": [a],
               "auth": {"basic": {"carol": "pw"}}}),
    ])
    .await;
    let c = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    let ok = c.get(format!("{base}/keys")).header("x-api-key", "k-alice").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let seen: Value = ok.json().await.unwrap();
    assert_eq!(seen["headers"]["x-consumer-id"], "alice");
    assert_eq!(status(c.get(format!("{base}/keys")).header("x-api-key", "wrong").send().await.unwrap()), 401);
    let missing = c.get(format!("{base}/keys")).header("x-consumer-id", "alice").send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "unauthorized");
    assert_eq!(status(c.get(format!("{base}/keys")).header("x-api-key", "k-bob").send().await.unwrap()), 403);

    let good = jwt("s3cret", "dave", 60);
    let resp = c.get(format!("{base}/jwt")).bearer_auth(&good).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["headers"]["x-consumer-id"], "dave");
    assert_eq!(
        status(c.get(format!("{base}/jwt")).bearer_auth(jwt("s3cret", "dave", -120)).send().await.unwrap()),
        401
    );
    assert_eq!(
        status(c.get(format!("{base}/jwt")).bearer_auth(jwt("other", "dave", 60)).send().await.unwrap()),
        401
    );
    assert_eq!(status(c.get(format!("{base}/jwt")).bearer_auth("not.a.token").send().await.unwrap()), 401);

    assert_eq!(
        status(c.get(format!("{base}/basic")).basic_auth("carol", Some("pw")).send().await.unwrap()),
        200
    );
    assert_eq!(
        status(c.get(format!("{base}/basic")).basic_auth("carol", Some("no")).send().await.unwrap()),
        401
    );
}

#[tokio::test]
async fn the_request_past_the_limit_gets_429() {
    let (a, _) = upstream("a").await;
    let (base, _edge) = proxy(vec![json!({"name": "limited", "upstreams": [a],
        "auth": {"api_keys": {"k1": "one", "k2": "two"}},
        "rate_limit": {"key": "consumer", "limit": "5/min", "burst": 5}})])
    .await;
    let c = reqwest::Client::new();
    for i in 0..5 {
        let resp = c.get(format!("{base}/x")).header("x-api-key", "k1").send().await.unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(resp.headers()["ratelimit-limit"], "5");
        assert_eq!(resp.headers()["ratelimit-remaining"], (4 - i).to_string().as_str());
    }
    let limited = c.get(format!("{base}/x")).header("x-api-key", "k1").send().await.unwrap();
    assert_eq!(limited.status(), 429);
    // A slot frees every 12 s: that is when to come back (a slow machine may be a second in).
    let retry: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((10..=12).contains(&retry), "retry-after {retry}");
    assert_eq!(limited.headers()["ratelimit-remaining"], "0");
    assert_eq!(limited.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");
    // Another consumer has its own bucket.
    assert_eq!(c.get(format!("{base}/x")).header("x-api-key", "k2").send().await.unwrap().status(), 200);
}

/// Whether `check` turns true within ten seconds (polled).
async fn eventually<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn servers_hit(base: &str, n: usize, header: Option<(&str, String)>) -> HashMap<String, usize> {
    let c = reqwest::Client::new();
    let mut seen = HashMap::new();
    for _ in 0..n {
        let mut req = c.get(format!("{base}/x"));
        if let Some((name, value)) = &header {
            req = req.header(*name, value.as_str());
        }
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        *seen.entry(body["server"].as_str().unwrap().to_string()).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn balancing_policies_spread_requests() {
    let (a, _) = upstream("a").await;
    let (b, _) = upstream("b").await;
    let (c, _) = upstream("c").await;
    let (base, edge) = proxy(vec![json!({"name": "rr", "upstreams": [a, b, c]})]).await;
    let seen = servers_hit(&base, 30, None).await;
    assert_eq!((seen["a"], seen["b"], seen["c"]), (10, 10, 10));

    let weighted = json!({"upstreams": [{"address": a, "weight": 3}, b], "balance": "round_robin"});
    edge.put("rr", serde_json::from_value(weighted).unwrap()).unwrap();
    let seen = servers_hit(&base, 40, None).await;
    assert_eq!((seen["a"], seen["b"]), (30, 10));

    for policy in ["least_conn", "p2c", "random"] {
        edge.put("rr", serde_json::from_value(json!({"upstreams": [a, b, c], "balance": policy})).unwrap())
            .unwrap();
        let seen = servers_hit(&base, 60, None).await;
        assert_eq!(seen.values().sum::<usize>(), 60);
        if policy == "least_conn" {
            assert_eq!(seen.len(), 3, "{policy} uses every backend: {seen:?}");
        }
    }

    edge.put(
        "rr",
        serde_json::from_value(
            json!({"upstreams": [a, b, c], "balance": "consistent_hash", "hash_on": "header:x-user"}),
        )
        .unwrap(),
    )
    .unwrap();
    let seen = servers_hit(&base, 20, Some(("x-user", "user-7".into()))).await;
    assert_eq!(seen.len(), 1, "one user, one backend: {seen:?}");
}

#[tokio::test]
async fn health_checks_eject_and_readmit_and_ejection_is_passive_too() {
    let (a, up_a) = upstream("a").await;
    let (b, _) = upstream("b").await;
    let (base, _edge) = proxy(vec![json!({"name": "svc", "upstreams": [a, b],
        "health_check": {"path": "/health", "interval_ms": 50, "unhealthy_threshold": 2, "healthy_threshold": 2}})])
    .await;
    up_a.healthy.store(false, Ordering::Relaxed);
    let out = eventually(|| async { !servers_hit(&base, 10, None).await.contains_key("a") }).await;
    assert!(out, "a failed its checks and is out");
    up_a.healthy.store(true, Ordering::Relaxed);
    let back = eventually(|| async { servers_hit(&base, 10, None).await.get("a") == Some(&5) }).await;
    assert!(back, "a passed its checks and shares the load again");

    // Passive: a backend answering 5xx is ejected after three in a row.
    let (c, up_c) = upstream("c").await;
    let (d, _) = upstream("d").await;
    let (base, _edge) = proxy(vec![json!({"name": "svc", "upstreams": [c, d], "retries": 0,
        "outlier": {"consecutive_failures": 3, "ejection_ms": 60000}})])
    .await;
    let client = reqwest::Client::new();
    for _ in 0..6 {
        let _ = client.get(format!("{base}/fail")).send().await.unwrap();
    }
    let before = up_c.hits.load(Ordering::Relaxed);
    assert_eq!(before, 3);
    for _ in 0..4 {
        let _ = client.get(format!("{base}/fail")).send().await.unwrap();
    }
    assert_eq!(up_c.hits.load(Ordering::Relaxed), before, "c stays ejected");
}

#[tokio::test]
async fn idempotent_requests_are_retried_and_posts_are_not() {
    let (live, up) = upstream("live").await;
    let dead = dead_address();
    let (base, _edge) = proxy(vec![json!({"name": "svc", "upstreams": [dead, live], "retries": 1})]).await;
    let c = reqwest::Client::new();
    for _ in 0..4 {
        let resp = c.get(format!("{base}/x")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "a GET moves to the live backend");
    }
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(c.post(format!("{base}/x")).body("order").send().await.unwrap().status().as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 502, 502], "a POST that hit the dead backend is not repeated");
    assert_eq!(up.posts.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn circuit_breaking_queues_up_to_max_pending_and_answers_503_past_it() {
    let (a, up) = upstream("a").await;
    let (b, _) = upstream("b").await;
    let (base, _edge) = proxy(vec![
        json!({"name": "short", "match": {"path_prefix": "/short"}, "upstreams": [b],
               "max_connections": 1, "max_pending": 4, "queue_timeout_ms": 100}),
        json!({"name": "svc", "upstreams": [a], "max_connections": 1, "max_pending": 1, "queue_timeout_ms": 30000}),
    ])
    .await;
    let slow = |url: String| {
        tokio::spawn(async move {
            let resp = reqwest::get(url).await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        })
    };
    // One request in flight holds the only connection for 1.5 s; of the next two, one
    // waits for it and one finds the queue full.
    let first = slow(format!("{base}/slow"));
    assert!(eventually(|| async { up.hits.load(Ordering::Relaxed) == 1 }).await);
    let (second, third) = (slow(format!("{base}/slow")), slow(format!("{base}/slow")));
    let mut answers = [first.await.unwrap(), second.await.unwrap(), third.await.unwrap()];
    answers.sort_by_key(|(status, _)| *status);
    assert_eq!(answers.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [200, 200, 503]);
    assert_eq!(answers[2].1["error"]["code"], "upstream_overflow");
    assert!(answers[2].1["error"]["message"].as_str().unwrap().contains("max_pending"));
    assert_eq!(up.hits.load(Ordering::Relaxed), 2, "the overflowing request never reached the upstream");
    // Nothing stays counted: the connection and the queue are free again.
    for _ in 0..3 {
        assert_eq!(get(&format!("{base}/x")).await.0, 200);
    }

    // A request that waits longer than queue_timeout_ms gets its 503 while the other is
    // still in flight.
    let held = slow(format!("{base}/short/slow"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = get(&format!("{base}/short/x")).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "upstream_overflow");
    assert!(body["error"]["message"].as_str().unwrap().contains("within 100ms"), "{body}");
    assert_eq!(held.await.unwrap().0, 200);
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let (a, _) = upstream("a").await;
    let (base, _edge) =
        proxy(vec![json!({"name": "svc", "upstreams": [a], "max_body_bytes": 1_000_000_000u64})]).await;
    let resp = reqwest::get(format!("{base}/big")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut total = 0;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        total += chunk.unwrap().len();
    }
    assert_eq!(total, 32 * 1024 * 1024);
    // 64 MiB up, produced while it is sent (no Content-Length).
    let chunks = futures::stream::iter(0..1024).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 64 * 1024]));
    let resp = reqwest::Client::new()
        .post(format!("{base}/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["bytes"], 64 * 1024 * 1024);
}

#[tokio::test]
async fn upgrades_pass_through() {
    // An upstream that switches protocols and then echoes bytes in upper case.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(String::from_utf8_lossy(&head).to_ascii_lowercase().contains("upgrade: websocket"));
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf.to_ascii_uppercase()).await.unwrap();
    });
    let (base, _edge) = proxy(vec![json!({"name": "ws", "upstreams": [up]})]).await;
    let mut c = TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    c.write_all(b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    c.write_all(b"hello").await.unwrap();
    let mut echoed = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut echoed)).await.unwrap().unwrap();
    assert_eq!(&echoed, b"HELLO");
}

#[tokio::test]
async fn tcp_mode_balances_connections() {
    let mut addrs = Vec::new();
    for tag in [b'1', b'2'] {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(l.local_addr().unwrap().to_string());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4];
                    if s.read_exact(&mut buf).await.is_ok() {
                        let _ = s.write_all(&[buf[0], buf[1], buf[2], tag]).await;
                    }
                });
            }
        });
    }
    let upstreams: Vec<strata_edge::spec::UpstreamSpec> =
        [dead_address(), addrs[0].clone(), addrs[1].clone()]
            .into_iter()
            .map(strata_edge::spec::UpstreamSpec::Address)
            .collect();
    let pool = Arc::new(strata_edge::balance::Pool::new(
        &upstreams,
        strata_edge::spec::Balance::RoundRobin,
        None,
        Default::default(),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let check = strata_edge::spec::TcpHealthCheckSpec {
        interval_ms: 50,
        timeout_ms: 500,
        unhealthy_threshold: 2,
        healthy_threshold: 2,
    };
    tokio::spawn(strata_proxy::serve_tcp(
        listener,
        pool.clone(),
        Duration::from_secs(1),
        Some(check),
        std::future::pending(),
    ));
    // The connect checks take the dead backend out, and keep the live ones in.
    assert!(eventually(|| async { !pool.backends[0].healthy() }).await, "the dead backend stayed in");
    assert!(pool.backends[1].healthy() && pool.backends[2].healthy());
    let mut tags = Vec::new();
    for _ in 0..6 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"pin?").await.unwrap();
        let mut out = [0u8; 4];
        s.read_exact(&mut out).await.unwrap();
        assert_eq!(&out[..3], b"pin");
        tags.push(out[3]);
    }
    assert!(tags.contains(&b'1') && tags.contains(&b'2'), "{tags:?}");
}

#[tokio::test]
async fn bad_input_gets_the_right_4xx_and_the_proxy_keeps_serving() {
    let (a, _) = upstream("a").await;
    let (base, _edge) = proxy(vec![
        json!({"name": "svc", "match": {"host": "known.local"}, "upstreams": [a], "max_body_bytes": 1024}),
    ])
    .await;
    let addr = base.trim_start_matches("http://").to_string();
    let raw = |request: Vec<u8>| {
        let addr = addr.clone();
        async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(&request).await.unwrap();
            let mut out = vec![0u8; 512];
            let n =
                tokio::time::timeout(Duration::from_secs(5), s.read(&mut out)).await.unwrap().unwrap_or(0);
            String::from_utf8_lossy(&out[..n]).to_string()
        }
    };
    assert!(raw(b"THIS IS NOT HTTP\r\n\r\n".to_vec()).await.starts_with("HTTP/1.1 400"));
    let huge = format!("GET / HTTP/1.1\r\nHost: known.local\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
    assert!(raw(huge.into_bytes()).await.starts_with("HTTP/1.1 431"));
    let c = reqwest::Client::new();
    let resp =
        c.post(format!("{base}/x")).header("host", "known.local").body(vec![0u8; 4096]).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let resp = c.get(format!("{base}/x")).header("host", "unknown.local").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = c.get(format!("{base}/x")).header("host", "known.local").send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// A token signed with a test key pair (`tests/keys/`).
fn signed(alg: jsonwebtoken::Algorithm, private_pem: &str, sub: &str, kid: Option<&str>) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let key = match alg {
        jsonwebtoken::Algorithm::RS256 => {
            jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap()
        }
        _ => jsonwebtoken::EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap(),
    };
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, &json!({"sub": sub, "exp": now + 60, "aud": "shop"}), &key).unwrap()
}

#[tokio::test]
async fn rs256_and_es256_tokens_with_public_keys_and_audience() {
    let (a, _) = upstream("a").await;
    let rsa_pub = include_str!("keys/rsa.pub");
    let ec_pub = include_str!("keys/ec.pub");
    let (base, _edge) = proxy(vec![
        json!({"name": "rs", "match": {"path_prefix": "/rs"}, "upstreams": [a],
               "auth": {"jwt": {"public_key_pem": rsa_pub, "audience": "shop"}}}),
        json!({"name": "es", "match": {"path_prefix": "/es"}, "upstreams": [a],
               "auth": {"jwt": {"public_key_pem": ec_pub, "audience": "shop"}}}),
        json!({"name": "other-aud", "match": {"path_prefix": "/other"}, "upstreams": [a],
               "auth": {"jwt": {"public_key_pem": rsa_pub, "audience": "billing"}}}),
    ])
    .await;
    let c = reqwest::Client::new();
    let rs = signed(jsonwebtoken::Algorithm::RS256, include_str!("keys/rsa.pem"), "erin", None);
    let es = signed(jsonwebtoken::Algorithm::ES256, include_str!("keys/ec.pem"), "frank", None);
    let resp = c.get(format!("{base}/rs")).bearer_auth(&rs).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["headers"]["x-consumer-id"], "erin");
    let resp = c.get(format!("{base}/es")).bearer_auth(&es).send().await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["headers"]["x-consumer-id"], "frank");
    // The EC token on the RSA route, and the right key with the wrong audience: refused.
    assert_eq!(c.get(format!("{base}/rs")).bearer_auth(&es).send().await.unwrap().status(), 401);
    assert_eq!(c.get(format!("{base}/other")).bearer_auth(&rs).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn two_edge_processes_share_a_limit_through_a_resp_store() {
    // The store: a Strata resp front (the cache block) on port 0.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store = format!("redis://{}/", listener.local_addr().unwrap());
    let cache =
        strata_cache::Cache::new(strata_cache::CacheOptions::default(), Arc::new(strata_core::SystemClock));
    tokio::spawn(strata_resp::serve(listener, cache, None, Default::default(), std::future::pending()));
    let (a, _) = upstream("a").await;
    let route = json!({"name": "shared", "upstreams": [a], "rate_limit": {"key": "route", "limit": "5/min", "burst": 5}});
    let config = || ProxyConfig { rate_limit_store: Some(store.clone()), ..ProxyConfig::default() };
    let (one, _) = proxy_with(vec![route.clone()], config()).await;
    let (two, _) = proxy_with(vec![route.clone()], config()).await;
    let (alone, _) = proxy(vec![route]).await;
    let c = reqwest::Client::new();
    for (i, base) in [&one, &two, &one, &two, &one].into_iter().enumerate() {
        assert_eq!(c.get(format!("{base}/x")).send().await.unwrap().status(), 200, "request {i}");
    }
    let sixth = c.get(format!("{two}/x")).send().await.unwrap();
    assert_eq!(sixth.status(), 429, "five went through the other process already");
    assert_eq!(c.get(format!("{one}/x")).send().await.unwrap().status(), 429);
    // A process without the store counts alone.
    assert_eq!(c.get(format!("{alone}/x")).send().await.unwrap().status(), 200);
}

/// The JWK (public part, with `kid`) of a test key pair.
fn jwk(alg: jsonwebtoken::Algorithm, private_pem: &str, kid: &str) -> Value {
    let key = match alg {
        jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()),
        _ => jsonwebtoken::EncodingKey::from_ec_pem(private_pem.as_bytes()),
    };
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key.unwrap(), alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_value(jwk).unwrap()
}

#[tokio::test]
async fn jwks_from_a_url_is_fetched_and_follows_a_key_rotation() {
    // An identity provider serving its JWKS; `fetches` counts the GETs.
    let document = Arc::new(std::sync::Mutex::new(String::new()));
    let fetches = Arc::new(AtomicU64::new(0));
    let rsa = jwk(jsonwebtoken::Algorithm::RS256, include_str!("keys/rsa.pem"), "rsa-1");
    let ec = jwk(jsonwebtoken::Algorithm::ES256, include_str!("keys/ec.pem"), "ec-2");
    *document.lock().unwrap() = json!({"keys": [rsa]}).to_string();
    let idp = {
        let (document, fetches) = (document.clone(), fetches.clone());
        axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (document, fetches) = (document.clone(), fetches.clone());
                async move {
                    fetches.fetch_add(1, Ordering::Relaxed);
                    document.lock().unwrap().clone()
                }
            }),
        )
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, idp).await });

    let (a, _) = upstream("a").await;
    let (base, _edge) =
        proxy(vec![json!({"name": "api", "match": {"path_prefix": "/api"}, "upstreams": [a],
        "auth": {"jwt": {"jwks_url": jwks_url, "audience": "shop"}}})])
        .await;
    let c = reqwest::Client::new();
    let status = |token: String| {
        let (c, url) = (c.clone(), format!("{base}/api"));
        async move { c.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    let rs = || signed(jsonwebtoken::Algorithm::RS256, include_str!("keys/rsa.pem"), "erin", Some("rsa-1"));
    let es = || signed(jsonwebtoken::Algorithm::ES256, include_str!("keys/ec.pem"), "frank", Some("ec-2"));
    // Fetched when the route appears: the RSA key verifies, the EC key is not published.
    assert!(eventually(|| async { status(rs()).await == 200 }).await, "the JWKS was never fetched");
    assert_eq!(status(es()).await, 401);
    // Rotation: the provider publishes the EC key; a token naming it makes the proxy fetch
    // again (after its minimum gap), and then it is accepted.
    *document.lock().unwrap() = json!({"keys": [rsa, ec]}).to_string();
    let before = fetches.load(Ordering::Relaxed);
    assert!(eventually(|| async { status(es()).await == 200 }).await, "the rotated key was never fetched");
    assert!(fetches.load(Ordering::Relaxed) > before);
    assert_eq!(status(rs()).await, 200);
    // A token signed by a key nobody published stays refused.
    let forged =
        signed(jsonwebtoken::Algorithm::RS256, include_str!("keys/rsa.pem"), "mallory", Some("nope"));
    assert_eq!(status(forged).await, 401);
}

/// An upstream that speaks only HTTP/2 over cleartext (prior knowledge, as gRPC services
/// do) and answers the version it saw.
async fn h2c_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                        let body = format!("{:?} {}", req.version(), req.uri().path());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(body),
                        )))
                    });
                let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http2_upstreams_and_http2_clients() {
    let h2 = h2c_upstream().await;
    let (a, _) = upstream("a").await;
    let (base, _edge) = proxy(vec![
        json!({"name": "grpc", "match": {"path_prefix": "/grpc"}, "upstreams": [h2], "upstream_http2": true,
               "health_check": {"path": "/health", "interval_ms": 100}}),
        json!({"name": "plain", "match": {"path_prefix": "/plain"}, "upstreams": [a]}),
    ])
    .await;
    // HTTP/1.1 in, HTTP/2 to the upstream (its health checks too: it stays in the pool).
    let resp = reqwest::get(format!("{base}/grpc/svc")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "HTTP/2.0 /grpc/svc");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        reqwest::get(format!("{base}/grpc/again")).await.unwrap().text().await.unwrap(),
        "HTTP/2.0 /grpc/again"
    );
    // An HTTP/2 client (prior knowledge, hyper's) in front of both kinds of upstream.
    let socket = TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(socket),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for (path, expected) in [("/grpc/x", "HTTP/2.0 /grpc/x"), ("/plain/y", "\"server\":\"a\"")] {
        let req = hyper::Request::get(format!("{base}{path}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = h2.send_request(req).await.unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (200, hyper::Version::HTTP_2));
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(expected), "{path}: {body:?}");
    }
}

#[tokio::test]
async fn idle_client_connections_are_closed_and_busy_ones_kept() {
    let (a, _) = upstream("a").await;
    let config =
        ProxyConfig { idle_timeout: Duration::from_millis(300), workers: 1, ..ProxyConfig::default() };
    let (base, _edge) = proxy_with(vec![json!({"name": "all", "upstreams": [a]})], config).await;
    let addr = base.trim_start_matches("http://").to_string();

    // A request on a kept-alive connection is answered; then the connection idles and is
    // closed by the proxy (EOF), not by the client.
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    socket.write_all(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
    assert!(read_response(&mut socket).await.starts_with("HTTP/1.1 200"));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(_))), "the idle connection was not closed: {closed:?}");

    // A connection that keeps sending requests more often than the timeout stays open.
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    for _ in 0..5 {
        socket.write_all(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
        assert!(read_response(&mut socket).await.starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the proxy keeps serving new connections.
    assert_eq!(get(&format!("{base}/y")).await.0, 200);
}

/// One HTTP/1.1 response with a Content-Length body, read whole from `socket`.
async fn read_response(socket: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .expect("a content-length");
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// The test CA and the certificate it issued for 127.0.0.1 and localhost (valid to 2126),
/// made with openssl for these tests.
fn tls_file(name: &str) -> String {
    format!("{}/tests/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// An HTTPS upstream (HTTP/1.1 or HTTP/2 by ALPN) that answers its protocol and path.
async fn tls_upstream() -> String {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(tls_file("upstream.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(tls_file("upstream.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that does not trust the certificate ends the handshake.
                let Ok(tls) = acceptor.accept(socket).await else { return };
                let service =
                    hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                        let body = format!("{:?} {} over tls", req.version(), req.uri().path());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(body),
                        )))
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn tls_upstreams_are_verified_against_the_system_roots_and_a_ca_file() {
    let secure = tls_upstream().await;
    let ca = tls_file("ca.pem");
    let (base, _edge) = proxy(vec![
        json!({"name": "h1", "match": {"path_prefix": "/h1"}, "upstreams": [secure],
               "upstream_tls": {"ca_file": ca}, "health_check": {"path": "/health", "interval_ms": 50}}),
        json!({"name": "h2", "match": {"path_prefix": "/h2"}, "upstreams": [secure],
               "upstream_tls": {"ca_file": ca}, "upstream_http2": true}),
        json!({"name": "untrusted", "match": {"path_prefix": "/untrusted"}, "upstreams": [secure],
               "upstream_tls": {}}),
    ])
    .await;
    let text = |path: &'static str| {
        let url = format!("{base}{path}");
        async move {
            let resp = reqwest::get(url).await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    assert_eq!(text("/h1/x").await, (200, "HTTP/1.1 /h1/x over tls".to_string()));
    assert_eq!(text("/h2/y").await, (200, "HTTP/2.0 /h2/y over tls".to_string()));
    // The health checks reach the upstream over TLS too, so it stays in the pool.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(text("/h1/z").await.0, 200);
    // A certificate from a CA the route does not trust is refused.
    let (status, body) = text("/untrusted/x").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("bad_gateway"), "{body}");

    let bad = |ca_file: &str| {
        let spec = json!({"name": "bad", "upstreams": ["127.0.0.1:1"], "upstream_tls": {"ca_file": ca_file}});
        Edge::new(vec![serde_json::from_value(spec).unwrap()]).err().map(|err| err.to_string())
    };
    assert!(bad("/nonexistent/ca.pem").unwrap().contains("upstream_tls.ca_file"));
    assert!(bad(&tls_file("upstream.key")).unwrap().contains("no PEM certificate"));
}
