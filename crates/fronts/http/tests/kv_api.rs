//! The `/v1/kv` API driven with reqwest against a server on port 0.

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use strata_core::{Store, SystemClock};
use strata_kv::{Kv, Limits};

mod common;

struct Server {
    base: String,
    client: reqwest::Client,
    _shutdown: tokio::sync::watch::Sender<bool>,
}

async fn start(limits: Limits) -> Server {
    let kv = Kv::open(Store::memory(), Arc::new(SystemClock), limits).unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let base = common::serve(common::state(kv, rx)).await;
    Server { base, client: reqwest::Client::new(), _shutdown: tx }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn put(&self, path: &str, body: &'static str) -> reqwest::Response {
        self.client.put(self.url(path)).body(body).send().await.unwrap()
    }

    /// The server still answers after whatever came before.
    async fn assert_alive(&self) {
        let health = self.client.get(self.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }
}

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn put_get_delete_round_trip() {
    let s = start(Limits::default()).await;
    let put = s.put("/v1/kv/app/greeting/en", "hello").await;
    assert_eq!(put.status(), StatusCode::OK);
    let version = put.json::<Value>().await.unwrap()["version"].as_u64().unwrap();
    let get = s.client.get(s.url("/v1/kv/app/greeting/en")).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(get.headers()["etag"], format!("\"{version}\"").as_str());
    assert_eq!(get.text().await.unwrap(), "hello");
    let del = s.client.delete(s.url("/v1/kv/app/greeting/en")).send().await.unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    let gone = s.client.get(s.url("/v1/kv/app/greeting/en")).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(gone).await, "not_found");
}

#[tokio::test]
async fn compare_and_set_mismatch_is_412() {
    let s = start(Limits::default()).await;
    let v1 =
        s.put("/v1/kv/app/counter", "1").await.json::<Value>().await.unwrap()["version"].as_u64().unwrap();
    let ok =
        s.client.put(s.url("/v1/kv/app/counter")).header("If-Match", format!("\"{v1}\"")).body("2").send();
    assert_eq!(ok.await.unwrap().status(), StatusCode::OK);
    let stale = s.client.put(s.url("/v1/kv/app/counter")).header("If-Match", format!("\"{v1}\"")).body("3");
    let stale = stale.send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(error_code(stale).await, "precondition_failed");
    let create = s.client.put(s.url("/v1/kv/app/counter")).header("If-None-Match", "*").body("x").send();
    assert_eq!(create.await.unwrap().status(), StatusCode::PRECONDITION_FAILED);
    let value = s.client.get(s.url("/v1/kv/app/counter")).send().await.unwrap().text().await.unwrap();
    assert_eq!(value, "2");
    s.assert_alive().await;
}

#[tokio::test]
async fn ttl_expires_a_key() {
    let s = start(Limits::default()).await;
    assert_eq!(s.put("/v1/kv/app/session?ttl_ms=300", "token").await.status(), StatusCode::OK);
    let live = s.client.get(s.url("/v1/kv/app/session")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert!(live.headers().contains_key("x-strata-expires-at-ms"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let expired = s.client.get(s.url("/v1/kv/app/session")).send().await.unwrap();
    assert_eq!(expired.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn listing_paginates_with_a_cursor() {
    let s = start(Limits::default()).await;
    for i in 0..25 {
        let url = s.url(&format!("/v1/kv/app/user:{i:02}"));
        s.client.put(url).body(format!("u{i}")).send().await.unwrap();
    }
    s.put("/v1/kv/app/zzz", "not in the prefix").await;
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = s.url("/v1/kv/app?prefix=user:&limit=10");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = s.client.get(url).send().await.unwrap().json().await.unwrap();
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            keys.push(item["key"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(keys, (0..25).map(|i| format!("user:{i:02}")).collect::<Vec<_>>());
    let bad = s.client.get(s.url("/v1/kv/app?cursor=!!!")).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oversize_value_is_413_and_the_server_keeps_serving() {
    let s = start(Limits { max_value_bytes: 1024, ..Limits::default() }).await;
    let big = s.client.put(s.url("/v1/kv/app/big")).body(vec![b'x'; 4096]).send().await.unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(big).await, "too_large");
    assert_eq!(s.put("/v1/kv/app/small", "fits").await.status(), StatusCode::OK);
    s.assert_alive().await;
}

#[tokio::test]
async fn malformed_json_is_400_and_batches_are_atomic() {
    let s = start(Limits::default()).await;
    let bad = s.client.post(s.url("/v1/kv/app")).body("{\"ops\": [").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(bad).await, "invalid_json");
    s.assert_alive().await;

    let failing = serde_json::json!({"ops": [
        {"op": "put", "key": "a", "value": "1"},
        {"op": "check", "key": "missing", "if_exists": true},
    ]});
    let r = s.client.post(s.url("/v1/kv/app")).json(&failing).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(s.client.get(s.url("/v1/kv/app/a")).send().await.unwrap().status(), StatusCode::NOT_FOUND);

    let ok = serde_json::json!({"ops": [
        {"op": "put", "key": "a", "value": "1", "if_absent": true},
        {"op": "put", "key": "b", "value_base64": "AAEC"},
        {"op": "delete", "key": "c"},
    ]});
    let r: Value = s.client.post(s.url("/v1/kv/app")).json(&ok).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["results"].as_array().unwrap().len(), 3);
    assert_eq!(r["results"][2]["deleted"], false);
    let b = s.client.get(s.url("/v1/kv/app/b")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(b.as_ref(), &[0, 1, 2]);
}

/// Reads SSE events (event name, id, data) until `n` have arrived.
async fn read_events(response: reqwest::Response, n: usize) -> Vec<(String, u64, Value)> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < n {
        let chunk =
            tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut name, mut id, mut data) = (String::new(), 0, Value::Null);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().unwrap();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).unwrap();
                }
            }
            if !name.is_empty() {
                events.push((name, id, data));
            }
        }
    }
    events
}

#[tokio::test]
async fn watch_streams_changes_in_commit_order_and_resumes() {
    let s = start(Limits::default()).await;
    s.put("/v1/kv/app/cfg/before", "old").await;
    let watch = s.client.get(s.url("/v1/kv/app?watch=true&prefix=cfg/")).send().await.unwrap();
    assert_eq!(watch.status(), StatusCode::OK);
    let writer = {
        let s = Server {
            base: s.base.clone(),
            client: s.client.clone(),
            _shutdown: tokio::sync::watch::channel(false).0,
        };
        tokio::spawn(async move {
            for i in 0..5 {
                s.client
                    .put(s.url(&format!("/v1/kv/app/cfg/{i}")))
                    .body(format!("v{i}"))
                    .send()
                    .await
                    .unwrap();
                s.put("/v1/kv/app/other/ignored", "x").await;
            }
            s.client.delete(s.url("/v1/kv/app/cfg/0")).send().await.unwrap();
        })
    };
    let events = read_events(watch, 6).await;
    writer.await.unwrap();
    let keys: Vec<_> =
        events.iter().map(|(name, _, d)| format!("{name} {}", d["key"].as_str().unwrap())).collect();
    assert_eq!(keys, ["put cfg/0", "put cfg/1", "put cfg/2", "put cfg/3", "put cfg/4", "delete cfg/0"]);
    assert!(events.windows(2).all(|w| w[0].1 < w[1].1), "ids increase in commit order");
    assert_eq!(events[1].2["value"], "v1");

    // Resuming after the third event replays the rest.
    let resumed = s
        .client
        .get(s.url("/v1/kv/app?watch=true&prefix=cfg/"))
        .header("Last-Event-ID", events[2].1.to_string())
        .send()
        .await
        .unwrap();
    let rest = read_events(resumed, 3).await;
    assert_eq!(
        rest.iter().map(|e| e.1).collect::<Vec<_>>(),
        events[3..].iter().map(|e| e.1).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let s = start(Limits::default()).await;
    s.put("/v1/kv/app/m", "1").await;
    let text = s.client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("strata_http_requests_total"), "{text}");
    assert!(text.contains("strata_core_commits_total"), "{text}");
    assert!(text.contains("strata_http_request_seconds_bucket"), "{text}");
}

#[tokio::test]
async fn bad_namespace_and_headers_are_400() {
    let s = start(Limits::default()).await;
    let r = s.put("/v1/kv/bad%20ns/k", "v").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "invalid_input");
    let r = s.client.put(s.url("/v1/kv/app/k")).header("If-Match", "abc").body("v").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    s.assert_alive().await;
}
