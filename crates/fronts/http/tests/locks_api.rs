//! `/v1/locks` driven with reqwest against a server on port 0.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use strata_core::{Store, SystemClock};
use strata_http::AppState;
use strata_kv::{Kv, Limits};
use strata_lock::{LockConfig, Locks};

mod common;

async fn start() -> (String, tokio::sync::watch::Sender<bool>) {
    let store = Store::memory();
    let kv = Kv::open(store.clone(), Arc::new(SystemClock), Limits::default()).unwrap();
    let locks = Locks::open(store, LockConfig::default()).unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let base = common::serve(AppState { locks: Some(locks), ..common::state(kv, rx) }).await;
    (base, tx)
}

async fn post(base: &str, op: &str, body: Value) -> (StatusCode, Value) {
    let resp = reqwest::Client::new().post(format!("{base}/v1/locks/{op}")).json(&body).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn acquire_wait_release_extend_and_inspect() {
    let (base, _stop) = start().await;
    let (status, first) =
        post(&base, "acquire", json!({"resource": "ticket:9", "owner": "alice", "ttl_ms": 30000})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let token = first["token"].as_u64().unwrap();

    let (status, busy) =
        post(&base, "acquire", json!({"resource": "ticket:9", "owner": "bob", "ttl_ms": 30000})).await;
    assert_eq!((status, busy["code"].as_str()), (StatusCode::CONFLICT, Some("not_acquired")));

    // A long poll: bob waits while alice finishes.
    let waiter = {
        let base = base.clone();
        tokio::spawn(async move {
            post(
                &base,
                "acquire",
                json!({"resources": ["ticket:9"], "owner": "bob", "ttl_ms": 30000, "wait_ms": 5000}),
            )
            .await
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let info: Value =
            reqwest::get(format!("{base}/v1/locks/ticket:9")).await.unwrap().json().await.unwrap();
        if info["waiters"].as_array().unwrap().len() == 1 {
            assert_eq!(info["holders"][0]["owner"], "alice");
            assert_eq!(info["holders"][0]["token"], token);
            assert_eq!(info["waiters"][0], json!({"owner": "bob", "mode": "exclusive"}));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "bob never queued: {info}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, wrong) = post(&base, "release", json!({"resource": "ticket:9", "owner": "mallory"})).await;
    assert_eq!((status, wrong["code"].as_str()), (StatusCode::CONFLICT, Some("not_owner")));
    let (status, released) = post(&base, "release", json!({"resource": "ticket:9", "owner": "alice"})).await;
    assert_eq!((status, released["released"].as_u64()), (StatusCode::OK, Some(1)));
    let (status, bobs) = waiter.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{bobs}");
    assert!(bobs["token"].as_u64().unwrap() > token);

    let (status, extended) =
        post(&base, "extend", json!({"resource": "ticket:9", "owner": "bob", "ttl_ms": 60000})).await;
    assert_eq!((status, extended["token"].clone()), (StatusCode::OK, bobs["token"].clone()));
    let (status, stale) =
        post(&base, "extend", json!({"resource": "ticket:9", "owner": "alice", "ttl_ms": 60000})).await;
    assert_eq!((status, stale["code"].as_str()), (StatusCode::CONFLICT, Some("not_owner")));
}

#[tokio::test]
async fn bad_requests_get_a_json_error() {
    let (base, _stop) = start().await;
    let (status, body) = post(&base, "acquire", json!({"resource": "r", "owner": "o"})).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_input")));
    let (status, body) = post(&base, "acquire", json!({"resources": [], "owner": "o", "ttl_ms": 10})).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_input")));
    let (status, _) =
        post(&base, "acquire", json!({"resource": "r", "owner": "o", "ttl_ms": 10, "bogus": 1})).await;
    assert!(status.is_client_error());
    // Still serving.
    let (status, _) = post(&base, "acquire", json!({"resource": "r", "owner": "o", "ttl_ms": 10})).await;
    assert_eq!(status, StatusCode::OK);
}
