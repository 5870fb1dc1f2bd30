//! Windowed views over real appends: out-of-order and late events, every window kind, and
//! a restart in the middle that must not count anything twice.

use std::sync::Arc;
use strata_core::{Options, Store, SystemClock};
use strata_stream::views::{ViewDef, Views, WindowResult};
use strata_stream::{NewRecord, StreamOptions, Streams};

fn open(dir: &std::path::Path) -> (Streams, Views) {
    let store = Store::open(dir.join("core"), Options::default()).unwrap();
    let streams =
        Streams::open(store, Arc::new(SystemClock), StreamOptions::new(dir.join("stream"))).unwrap();
    let views = Views::new(streams.clone());
    (streams, views)
}

async fn send(streams: &Streams, events: &[(i64, &str, f64, &str)]) {
    let records: Vec<NewRecord> = events
        .iter()
        .map(|(ts, region, amount, user)| NewRecord {
            value: Some(
                serde_json::json!({"ts": ts, "region": region, "amount": amount, "user": user})
                    .to_string()
                    .into_bytes(),
            ),
            ..Default::default()
        })
        .collect();
    streams.append_records("deliveries", 0, &records).await.unwrap();
}

fn def(name: &str, window: serde_json::Value) -> ViewDef {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "topic": "deliveries",
        "window": window,
        "time_field": "ts",
        "key_field": "region",
        "allowed_lateness_ms": 5000,
        "output_topic": format!("{name}-out"),
        "aggregates": [
            {"op": "count"},
            {"op": "sum", "field": "amount"},
            {"op": "avg", "field": "amount"},
            {"op": "min", "field": "amount"},
            {"op": "max", "field": "amount"},
            {"op": "count_distinct", "field": "user"}
        ]
    }))
    .unwrap()
}

fn summary(results: &[WindowResult]) -> Vec<(String, i64, i64, f64, u64)> {
    results
        .iter()
        .map(|r| {
            (
                r.key.clone(),
                r.window_start,
                r.values["count"].as_i64().unwrap(),
                r.values["sum_amount"].as_f64().unwrap(),
                r.values["count_distinct_user"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn tumbling_windows_take_late_events_within_lateness_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (streams, views) = open(dir.path());
        streams.create_topic("deliveries", Some(1), &[]).unwrap();
        views.create(def("by-region", serde_json::json!({"type": "tumbling", "size_ms": 10000}))).unwrap();
        send(&streams, &[(1000, "eu", 10.0, "ann"), (12000, "eu", 20.0, "bob")]).await;
        views.step().await.unwrap();
        assert!(views.results("by-region", None, 100).unwrap().is_empty(), "watermark 7000 closes nothing");
        // 3000 is behind the newest event but within the 5 s lateness: it counts.
        send(&streams, &[(3000, "eu", 5.0, "ann"), (16000, "us", 7.0, "cid")]).await;
        views.step().await.unwrap();
        let eu = views.results("by-region", Some("eu"), 100).unwrap();
        assert_eq!(summary(&eu), vec![("eu".to_string(), 0, 2, 15.0, 1)]);
        assert_eq!(eu[0].values["avg_amount"], 7.5);
        assert_eq!(
            (eu[0].values["min_amount"].as_f64(), eu[0].values["max_amount"].as_f64()),
            (Some(5.0), Some(10.0))
        );
        // Window [0, 10 s) is final now: 4000 is too late and is dropped.
        send(&streams, &[(4000, "eu", 100.0, "dan")]).await;
        views.step().await.unwrap();
        assert_eq!(views.status("by-region").unwrap().late_dropped, 1);
    }
    // Restart: the view resumes after what it committed; nothing is counted twice.
    let (streams, views) = open(dir.path());
    send(&streams, &[(30000, "eu", 1.0, "eve"), (31000, "eu", 2.0, "fay")]).await;
    views.step().await.unwrap();
    views.step().await.unwrap();
    send(&streams, &[(50000, "us", 0.0, "gus")]).await;
    views.step().await.unwrap();
    let all = views.results("by-region", None, 100).unwrap();
    assert_eq!(
        summary(&all),
        vec![
            ("eu".to_string(), 0, 2, 15.0, 1),
            ("eu".to_string(), 10000, 1, 20.0, 1),
            ("eu".to_string(), 30000, 2, 3.0, 2),
            ("us".to_string(), 10000, 1, 7.0, 1),
        ]
    );
    // Every final window went to the output topic too, keyed key@start.
    let mut emitted = Vec::new();
    streams
        .replay("by-region-out", 0, 0, strata_stream::Until::End, |r| {
            emitted.push(String::from_utf8(r.key.unwrap().to_vec()).unwrap())
        })
        .unwrap();
    emitted.sort();
    assert_eq!(emitted, vec!["eu@0", "eu@10000", "eu@30000", "us@10000"]);
}

#[tokio::test]
async fn hopping_and_session_windows() {
    let dir = tempfile::tempdir().unwrap();
    let (streams, views) = open(dir.path());
    streams.create_topic("deliveries", Some(1), &[]).unwrap();
    views
        .create(def("hop", serde_json::json!({"type": "hopping", "size_ms": 10000, "advance_ms": 5000})))
        .unwrap();
    views.create(def("visits", serde_json::json!({"type": "session", "gap_ms": 4000}))).unwrap();
    assert!(
        views
            .create(def("bad", serde_json::json!({"type": "hopping", "size_ms": 10, "advance_ms": 20})))
            .is_err()
    );
    // eu: a session 0..3000 (gap 4 s), another at 20000; the hop windows overlap.
    send(
        &streams,
        &[
            (7000, "eu", 1.0, "a"),
            (0, "eu", 1.0, "b"),
            (3000, "eu", 1.0, "c"),
            (20000, "eu", 1.0, "d"),
            (40000, "eu", 1.0, "e"),
        ],
    )
    .await;
    views.step().await.unwrap();
    let hops = summary(&views.results("hop", Some("eu"), 100).unwrap());
    assert_eq!(
        hops.iter().map(|(_, start, count, _, _)| (*start, *count)).collect::<Vec<_>>(),
        vec![(-5000, 2), (0, 3), (5000, 1), (15000, 1), (20000, 1)],
        "each event in both windows that cover it"
    );
    let sessions = views.results("visits", Some("eu"), 100).unwrap();
    let spans: Vec<_> = sessions
        .iter()
        .map(|r| (r.window_start, r.window_end, r.values["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(spans, vec![(0, 11000, 3), (20000, 24000, 1)], "7000 bridges 0 and 3000 into one session");
}
