//! The kafka front against rskafka, an independently written pure-Rust Kafka client:
//! topics, produce and fetch with every codec, offsets by time, restart, and bad frames.

use chrono::{TimeZone, Utc};
use rskafka::client::partition::{Compression, OffsetAt, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use strata_core::{Options, Store, SystemClock};
use strata_kafka::{KafkaConfig, serve};
use strata_stream::{StreamOptions, Streams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Broker {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Broker {
    async fn start(dir: &std::path::Path) -> Broker {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let store = Store::open(dir.join("core"), Options::default()).unwrap();
        let streams =
            Streams::open(store, Arc::new(SystemClock), StreamOptions::new(dir.join("stream"))).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, streams, KafkaConfig::default(), async move {
            let _ = stopped.await;
        }));
        Broker { addr, stop: Some(stop), task }
    }

    async fn client(&self) -> Client {
        ClientBuilder::new(vec![self.addr.to_string()]).build().await.unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

fn record(key: &str, value: &str, ts_ms: i64) -> Record {
    Record {
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: BTreeMap::from([("source".to_string(), b"test".to_vec())]),
        timestamp: Utc.timestamp_millis_opt(ts_ms).unwrap(),
    }
}

#[tokio::test]
async fn produce_and_fetch_with_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path()).await;
    let client = broker.client().await;
    client.controller_client().unwrap().create_topic("events", 2, 1, 5_000).await.unwrap();
    let topics = client.list_topics().await.unwrap();
    let events = topics.iter().find(|t| t.name == "events").expect("listed");
    assert_eq!(events.partitions.len(), 2);

    let partition = client.partition_client("events", 1, UnknownTopicHandling::Error).await.unwrap();
    let codecs = [
        Compression::NoCompression,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Snappy,
        Compression::Zstd,
    ];
    let mut expected = Vec::new();
    for (i, codec) in codecs.into_iter().enumerate() {
        let batch: Vec<Record> = (0..10)
            .map(|j| record(&format!("k{i}-{j}"), &format!("v{i}-{j}"), 1_000 + (i * 10 + j) as i64))
            .collect();
        let offsets = partition.produce(batch.clone(), codec).await.unwrap();
        assert_eq!(offsets, ((i * 10) as i64..(i * 10 + 10) as i64).collect::<Vec<_>>());
        expected.extend(batch);
    }
    let mut got = Vec::new();
    let mut offset = 0;
    while got.len() < expected.len() {
        let (records, high_watermark) = partition.fetch_records(offset, 1..1_000_000, 1_000).await.unwrap();
        assert_eq!(high_watermark, 50);
        for r in records {
            if r.offset >= offset {
                assert_eq!(r.offset, got.len() as i64);
                got.push(r.record);
            }
        }
        offset = got.len() as i64;
    }
    assert_eq!(got, expected, "keys, values, headers and timestamps come back");

    let other = client.partition_client("events", 0, UnknownTopicHandling::Error).await.unwrap();
    assert_eq!(other.get_offset(OffsetAt::Latest).await.unwrap(), 0, "partitions are independent");
    broker.stop().await;
}

#[tokio::test]
async fn offsets_by_position_and_time_and_a_fetch_that_waits() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path()).await;
    let client = broker.client().await;
    client.controller_client().unwrap().create_topic("clicks", 1, 1, 5_000).await.unwrap();
    let partition =
        Arc::new(client.partition_client("clicks", 0, UnknownTopicHandling::Error).await.unwrap());
    for batch in 0..4 {
        let records = (0..5).map(|i| record("k", "v", 10_000 * (batch + 1) + i)).collect();
        partition.produce(records, Compression::NoCompression).await.unwrap();
    }
    assert_eq!(partition.get_offset(OffsetAt::Earliest).await.unwrap(), 0);
    assert_eq!(partition.get_offset(OffsetAt::Latest).await.unwrap(), 20);
    let at = |ms| OffsetAt::Timestamp(Utc.timestamp_millis_opt(ms).unwrap());
    assert_eq!(partition.get_offset(at(30_002)).await.unwrap(), 12, "the first record at or after the time");
    assert_eq!(partition.get_offset(at(20_100)).await.unwrap(), 10, "batch 1 ends at 20_004");

    // A fetch at the end waits for the next append instead of returning empty at once.
    let waiting = tokio::spawn({
        let partition = partition.clone();
        async move { partition.fetch_records(20, 1..1_000_000, 10_000).await.unwrap() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the fetch long-polls");
    // Requests on one connection are answered in order (as in Kafka), so the producer that
    // wakes the fetch is another client.
    let producer =
        broker.client().await.partition_client("clicks", 0, UnknownTopicHandling::Error).await.unwrap();
    producer.produce(vec![record("late", "arrival", 99_000)], Compression::NoCompression).await.unwrap();
    let (records, _) =
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
    assert_eq!(records[0].offset, 20);
    assert_eq!(records[0].record.key.as_deref(), Some(&b"late"[..]));

    // Past the end is an error in Kafka's terms, and the connection keeps serving.
    assert!(partition.fetch_records(1_000, 1..1_000_000, 10).await.is_err());
    assert_eq!(partition.get_offset(OffsetAt::Latest).await.unwrap(), 21);
    broker.stop().await;
}

#[tokio::test]
async fn records_survive_a_restart_and_deleted_topics_go() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path()).await;
    let client = broker.client().await;
    let controller = client.controller_client().unwrap();
    controller.create_topic("ledger", 1, 1, 5_000).await.unwrap();
    controller.create_topic("scratch", 1, 1, 5_000).await.unwrap();
    assert!(controller.create_topic("ledger", 1, 1, 5_000).await.is_err(), "TOPIC_ALREADY_EXISTS");
    assert!(controller.create_topic("bad/name", 1, 1, 5_000).await.is_err(), "INVALID_TOPIC_EXCEPTION");
    let partition = client.partition_client("ledger", 0, UnknownTopicHandling::Error).await.unwrap();
    partition
        .produce((0..100).map(|i| record(&i.to_string(), "x", i)).collect(), Compression::Zstd)
        .await
        .unwrap();
    controller.delete_topic("scratch", 5_000).await.unwrap();
    drop((partition, controller, client));
    broker.stop().await;

    let broker = Broker::start(dir.path()).await;
    let client = broker.client().await;
    let names: Vec<String> = client.list_topics().await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, vec!["ledger".to_string()]);
    let partition = client.partition_client("ledger", 0, UnknownTopicHandling::Error).await.unwrap();
    let (records, high_watermark) = partition.fetch_records(0, 1..10_000_000, 1_000).await.unwrap();
    assert_eq!((records.len(), high_watermark), (100, 100));
    let next =
        partition.produce(vec![record("after", "restart", 0)], Compression::NoCompression).await.unwrap();
    assert_eq!(next, vec![100]);
    broker.stop().await;
}

/// Sends raw bytes and reports whether the broker closed the connection.
async fn closes_after(addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path()).await;
    let client = broker.client().await;
    assert!(closes_after(broker.addr, &i32::MAX.to_be_bytes()).await, "oversize frame");
    assert!(closes_after(broker.addr, &[0, 0, 0, 8, 0x7f, 0x00, 0, 0, 0, 0, 0, 1]).await, "unknown api key");
    assert!(
        closes_after(broker.addr, &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]).await,
        "Produce v0 is not served"
    );
    assert!(
        closes_after(broker.addr, &[0, 0, 0, 10, 0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0x7f]).await,
        "truncated Metadata"
    );

    // ApiVersions v99 gets UNSUPPORTED_VERSION (35) in a v0 answer, not a disconnect.
    let mut socket = tokio::net::TcpStream::connect(broker.addr).await.unwrap();
    socket.write_all(&[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 7, 0, 0]).await.unwrap();
    let len = socket.read_i32().await.unwrap();
    let mut body = vec![0u8; len as usize];
    socket.read_exact(&mut body).await.unwrap();
    assert_eq!(&body[..4], &7i32.to_be_bytes(), "correlation id");
    assert_eq!(&body[4..6], &35i16.to_be_bytes(), "UNSUPPORTED_VERSION");

    // A corrupt batch is refused with CORRUPT_MESSAGE; everything else keeps working.
    client.controller_client().unwrap().create_topic("still-fine", 1, 1, 5_000).await.unwrap();
    let partition = client.partition_client("still-fine", 0, UnknownTopicHandling::Error).await.unwrap();
    assert_eq!(
        partition.produce(vec![record("a", "b", 1)], Compression::NoCompression).await.unwrap(),
        vec![0]
    );
    broker.stop().await;
}
