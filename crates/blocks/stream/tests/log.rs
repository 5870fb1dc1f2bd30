//! The stream block's log through its public API: compaction, retention, idempotent
//! producers, offsets by time and consumer-group offsets, across a reopen.

use bytes::BytesMut;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use std::sync::Arc;
use strata_core::{Options, Store, SystemClock};
use strata_stream::{Acks, NewRecord, OffsetQuery, StreamOptions, Streams, Until};

fn open(dir: &std::path::Path) -> Streams {
    let store = Store::open(dir.join("core"), Options::default()).unwrap();
    Streams::open(store, Arc::new(SystemClock), StreamOptions::new(dir.join("stream"))).unwrap()
}

fn keyed(key: &str, value: Option<&str>) -> NewRecord {
    NewRecord { key: Some(key.into()), value: value.map(Into::into), ..Default::default() }
}

fn replay(streams: &Streams, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    streams
        .replay(topic, 0, 0, Until::End, |r| {
            let text = |b: Option<bytes::Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
            out.push((r.offset, text(r.key).unwrap(), text(r.value)));
        })
        .unwrap();
    out
}

#[tokio::test]
async fn compaction_keeps_the_latest_value_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open(dir.path());
    let configs = [
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".into(), "1024".into()),
        ("delete.retention.ms".into(), "0".into()),
    ];
    streams.create_topic("accounts", Some(1), &configs).unwrap();
    for round in 0..20 {
        for account in ["a", "b", "c"] {
            let value = format!("{account}{round}");
            streams.append_records("accounts", 0, &[keyed(account, Some(&value))]).await.unwrap();
        }
    }
    streams.append_records("accounts", 0, &[keyed("c", None)]).await.unwrap();
    streams.append_records("accounts", 0, &[keyed("d", Some("d0"))]).await.unwrap();
    let (_, reclaimed) = streams.maintain().unwrap();
    assert!(reclaimed > 0);
    let log = replay(&streams, "accounts");
    let latest: std::collections::BTreeMap<_, _> =
        log.iter().map(|(_, k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(latest.get("a"), Some(&Some("a19".to_string())));
    assert_eq!(latest.get("b"), Some(&Some("b19".to_string())));
    assert_eq!(latest.get("d"), Some(&Some("d0".to_string())));
    assert!(log.len() < 20, "compacted: {} records left of 62", log.len());
    assert!(log.windows(2).all(|w| w[0].0 < w[1].0), "offsets keep their order, with gaps");
    drop(streams);
    let streams = open(dir.path());
    assert_eq!(replay(&streams, "accounts").len(), log.len(), "the compacted log is what reopens");
}

#[tokio::test]
async fn retention_by_bytes_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open(dir.path());
    let configs =
        [("segment.bytes".to_string(), "2048".to_string()), ("retention.bytes".into(), "4096".into())];
    streams.create_topic("clicks", Some(1), &configs).unwrap();
    for i in 0..100 {
        streams.append_records("clicks", 0, &[keyed("k", Some(&"x".repeat(100 + i % 3)))]).await.unwrap();
    }
    let (deleted, _) = streams.maintain().unwrap();
    assert!(deleted > 0);
    let (start, _) = streams.list_offset("clicks", 0, OffsetQuery::Earliest).unwrap();
    assert!(start > 0 && replay(&streams, "clicks").len() as i64 == 100 - start);
    assert!(streams.read("clicks", 0, 0, 1 << 20).is_err(), "offset 0 is gone: OFFSET_OUT_OF_RANGE");
}

fn idempotent_batch(producer_id: i64, first_sequence: i32, n: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_sequence + i as i32,
            timestamp: 1,
            key: None,
            value: Some(vec![b'v'; 10].into()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .unwrap();
    buf.to_vec()
}

#[tokio::test]
async fn a_retried_idempotent_batch_is_written_once_even_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open(dir.path());
    streams.create_topic("payments", Some(1), &[]).unwrap();
    let (pid, _) = streams.init_producer_id(None).unwrap();
    let first = streams.append("payments", 0, idempotent_batch(pid, 0, 3), Acks::Durable).await.unwrap();
    let retry = streams.append("payments", 0, idempotent_batch(pid, 0, 3), Acks::Durable).await.unwrap();
    assert_eq!((first.base_offset, retry.base_offset), (0, 0));
    let gap = streams.append("payments", 0, idempotent_batch(pid, 7, 1), Acks::Durable).await;
    assert!(matches!(gap, Err(strata_stream::StreamError::OutOfOrderSequence)));
    drop(streams);
    let streams = open(dir.path());
    let again = streams.append("payments", 0, idempotent_batch(pid, 0, 3), Acks::Durable).await.unwrap();
    assert_eq!(again.base_offset, 0, "producer state is rebuilt from the log");
    let next = streams.append("payments", 0, idempotent_batch(pid, 3, 2), Acks::Durable).await.unwrap();
    assert_eq!(next.base_offset, 3);
    assert_eq!(streams.list_offset("payments", 0, OffsetQuery::Latest).unwrap().0, 5);
    assert!(streams.init_producer_id(None).unwrap().0 > pid, "producer ids are not reused after a reopen");
}

#[tokio::test]
async fn committed_offsets_are_per_group_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open(dir.path());
    streams.create_topic("orders", Some(2), &[]).unwrap();
    streams
        .commit_offsets(
            "billing",
            &[("orders".into(), 0, 10, "m".into()), ("orders".into(), 1, 4, String::new())],
        )
        .unwrap();
    streams.commit_offsets("analytics", &[("orders".into(), 0, 2, String::new())]).unwrap();
    drop(streams);
    let streams = open(dir.path());
    assert_eq!(streams.committed("billing", "orders", 0).unwrap().unwrap().offset, 10);
    assert_eq!(streams.committed("analytics", "orders", 0).unwrap().unwrap().offset, 2);
    assert_eq!(streams.committed("analytics", "orders", 1).unwrap(), None);
    assert_eq!(streams.group_names().unwrap(), vec!["analytics".to_string(), "billing".to_string()]);
    assert_eq!(streams.group_offsets("billing").unwrap().len(), 2);
}

#[tokio::test]
async fn replay_rebuilds_balances_as_of_an_offset_or_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open(dir.path());
    streams.create_topic("transactions", Some(1), &[]).unwrap();
    for (at, account, amount) in
        [(1_000, "alice", 100), (2_000, "bob", 50), (3_000, "alice", -30), (4_000, "bob", 25)]
    {
        let value = format!(r#"{{"account":"{account}","amount":{amount}}}"#);
        let record = NewRecord { value: Some(value.into_bytes()), timestamp: Some(at), ..Default::default() };
        streams.append_records("transactions", 0, &[record]).await.unwrap();
    }
    let balances = |until| {
        let mut out = std::collections::BTreeMap::<String, i64>::new();
        let next = streams
            .replay("transactions", 0, 0, until, |r| {
                let tx: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
                *out.entry(tx["account"].as_str().unwrap().to_string()).or_default() +=
                    tx["amount"].as_i64().unwrap();
            })
            .unwrap();
        (out.into_iter().collect::<Vec<_>>(), next)
    };
    assert_eq!(balances(Until::End), (vec![("alice".into(), 70), ("bob".into(), 75)], 4));
    assert_eq!(balances(Until::Time(2_500)), (vec![("alice".into(), 100), ("bob".into(), 50)], 2));
    assert_eq!(balances(Until::Offset(1)), (vec![("alice".into(), 100)], 1));
}
