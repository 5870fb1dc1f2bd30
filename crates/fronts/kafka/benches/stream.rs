//! Stream benchmark: produce (acks=all) and consume throughput through the kafka front with
//! rskafka, end-to-end latency, next to the disk's sequential fsync write bandwidth measured
//! in the same run (the physical limit) and Redis Streams (XADD / XREADGROUP on a
//! redis-server with `appendfsync always`, so both sides are durable) when one is installed.
//!
//!   cargo bench -p strata-kafka --bench stream
//!
//! `STREAM_BENCH_SECS` sets each phase's length (default 5). Prints medians of per-second
//! rates and the ratios the targets are stated in.

use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::record::Record;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use strata_core::{Options, Store, SystemClock};
use strata_stream::{StreamOptions, Streams};

const PRODUCERS: usize = 4;

fn secs() -> u64 {
    std::env::var("STREAM_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

/// Sequential writes of `chunk` bytes, each followed by fdatasync, for `secs`: MB/s.
fn disk_fsync_bandwidth(dir: &std::path::Path, chunk: usize, secs: u64) -> f64 {
    let mut file = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let buf = vec![7u8; chunk];
    let start = Instant::now();
    let mut written = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        file.write_all(&buf).unwrap();
        file.sync_data().unwrap();
        written += chunk as u64;
    }
    let mbps = written as f64 / start.elapsed().as_secs_f64() / 1e6;
    drop(file);
    let _ = std::fs::remove_file(dir.join("fsync-probe"));
    mbps
}

fn record(size: usize) -> Record {
    Record {
        key: None,
        value: Some(vec![b'x'; size]),
        headers: Default::default(),
        timestamp: chrono::Utc::now(),
    }
}

/// Runs `PRODUCERS` producers, one per partition, sending batches of `batch` records of
/// `size` bytes for `secs`: (median records/s, median MB/s).
async fn produce(partitions: &[Arc<PartitionClient>], size: usize, batch: usize, secs: u64) -> (f64, f64) {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = partitions
        .iter()
        .map(|p| {
            let (p, count, stop) = (p.clone(), count.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let records = (0..batch).map(|_| record(size)).collect();
                    p.produce(records, Compression::NoCompression).await.unwrap();
                    count.fetch_add(batch as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut rates = Vec::new();
    let mut last = 0;
    for _ in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = count.load(Ordering::Relaxed);
        rates.push((now - last) as f64);
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let records = median(rates);
    (records, records * size as f64 / 1e6)
}

/// Reads every partition from offset 0 to its end: records/s.
async fn consume(partitions: &[Arc<PartitionClient>]) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = partitions
        .iter()
        .map(|p| {
            let p = p.clone();
            tokio::spawn(async move {
                let mut offset = 0;
                let mut n = 0u64;
                loop {
                    let (records, hw) = p.fetch_records(offset, 1..8 << 20, 100).await.unwrap();
                    let from = offset;
                    for r in records.iter().filter(|r| r.offset >= from) {
                        n += 1;
                        offset = r.offset + 1;
                    }
                    if offset >= hw {
                        return n;
                    }
                }
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// One producer sends single records; a consumer long-polls: end-to-end latency p50, p99 (ms).
async fn latency(producer: Arc<PartitionClient>, consumer: Arc<PartitionClient>, secs: u64) -> (f64, f64) {
    let base = Instant::now();
    let start_offset = consumer.fetch_records(0, 1..1, 0).await.map(|(_, hw)| hw).unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut offset = start_offset;
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok((records, _)) = consumer.fetch_records(offset, 1..1 << 20, 500).await else { break };
                let now = base.elapsed().as_nanos() as u64;
                let from = offset;
                for r in records.iter().filter(|r| r.offset >= from) {
                    let sent = u64::from_be_bytes(r.record.value.as_ref().unwrap()[..8].try_into().unwrap());
                    lat.push((now - sent) as f64 / 1e6);
                    offset = r.offset + 1;
                }
            }
            lat
        })
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let mut value = (base.elapsed().as_nanos() as u64).to_be_bytes().to_vec();
        value.resize(100, 0);
        let r = Record {
            key: None,
            value: Some(value),
            headers: Default::default(),
            timestamp: chrono::Utc::now(),
        };
        producer.produce(vec![r], Compression::NoCompression).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = reader.await.unwrap();
    lat.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0.0)
    };
    (pick(0.5), pick(0.99))
}

async fn redis_streams(size: usize, batch: usize, secs: u64) -> Option<(f64, f64)> {
    let dir = tempfile::tempdir().ok()?;
    let port = 16399;
    let mut child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut conn = None;
    for _ in 0..50 {
        if let Ok(c) = client.get_multiplexed_async_connection().await {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = conn?;
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|i| {
            let (client, count, stop) = (client.clone(), count.clone(), stop.clone());
            tokio::spawn(async move {
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let value = vec![b'x'; size];
                while !stop.load(Ordering::Relaxed) {
                    let mut pipe = redis::pipe();
                    for _ in 0..batch {
                        pipe.cmd("XADD").arg(format!("s{i}")).arg("*").arg("v").arg(&value).ignore();
                    }
                    let _: () = pipe.query_async(&mut conn).await.unwrap();
                    count.fetch_add(batch as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut rates = Vec::new();
    let mut last = 0;
    for _ in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = count.load(Ordering::Relaxed);
        rates.push((now - last) as f64);
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let produced = median(rates);
    // XREADGROUP the whole of stream s0.
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let _: redis::RedisResult<()> =
        redis::cmd("XGROUP").arg("CREATE").arg("s0").arg("g").arg("0").query_async(&mut conn).await;
    let start = Instant::now();
    let mut read = 0usize;
    loop {
        let reply: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(1000)
            .arg("STREAMS")
            .arg("s0")
            .arg(">")
            .query_async(&mut conn)
            .await
            .ok()?;
        let n = match &reply {
            redis::Value::Array(streams) => streams
                .iter()
                .map(|s| match s {
                    redis::Value::Array(pair) if pair.len() == 2 => match &pair[1] {
                        redis::Value::Array(entries) => entries.len(),
                        _ => 0,
                    },
                    _ => 0,
                })
                .sum(),
            _ => 0,
        };
        if n == 0 {
            break;
        }
        read += n;
    }
    let consumed = read as f64 / start.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    Some((produced, consumed))
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let secs = secs();
    let dir = tempfile::tempdir_in(std::env::var("STREAM_BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let disk_1m = disk_fsync_bandwidth(dir.path(), 1 << 20, secs.min(3));
    println!("disk: sequential 1 MiB writes + fdatasync: {disk_1m:.0} MB/s (the physical limit)");
    runtime.block_on(async {
        let store = Store::open(dir.path().join("core"), Options::default()).unwrap();
        let streams = Streams::open(store, Arc::new(SystemClock), StreamOptions::new(dir.path().join("stream"))).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(strata_kafka::serve(listener, streams, strata_kafka::KafkaConfig::default(), std::future::pending()));
        let admin = ClientBuilder::new(vec![addr.clone()]).build().await.unwrap();
        let mut partitions = Vec::new();
        for (topic, n) in [("bench-1k", PRODUCERS), ("bench-100", PRODUCERS), ("latency", 1)] {
            admin.controller_client().unwrap().create_topic(topic, n as i32, 1, 5_000).await.unwrap();
        }
        for topic in ["bench-1k", "bench-100"] {
            let mut clients = Vec::new();
            for p in 0..PRODUCERS {
                let client = ClientBuilder::new(vec![addr.clone()]).build().await.unwrap();
                clients.push(Arc::new(client.partition_client(topic, p as i32, UnknownTopicHandling::Error).await.unwrap()));
            }
            partitions.push(clients);
        }
        let (r1k, mb1k) = produce(&partitions[0], 1024, 100, secs).await;
        println!("strata produce 1 KiB x100/batch, {PRODUCERS} producers, acks=all: {r1k:.0} records/s, {mb1k:.1} MB/s = {:.2} of the disk limit", mb1k / disk_1m);
        let (r100, mb100) = produce(&partitions[1], 100, 1000, secs).await;
        println!("strata produce 100 B x1000/batch, {PRODUCERS} producers, acks=all: {r100:.0} records/s, {mb100:.1} MB/s");
        let c1k = consume(&partitions[0]).await;
        let c100 = consume(&partitions[1]).await;
        println!("strata consume: 1 KiB {c1k:.0} records/s ({:.0} MB/s), 100 B {c100:.0} records/s", c1k * 1024.0 / 1e6);
        let lat_client = ClientBuilder::new(vec![addr.clone()]).build().await.unwrap();
        let producer = Arc::new(lat_client.partition_client("latency", 0, UnknownTopicHandling::Error).await.unwrap());
        let consumer_client = ClientBuilder::new(vec![addr.clone()]).build().await.unwrap();
        let consumer = Arc::new(consumer_client.partition_client("latency", 0, UnknownTopicHandling::Error).await.unwrap());
        let (p50, p99) = latency(producer, consumer, secs).await;
        println!("strata end-to-end latency (acks=all, long-poll fetch): p50 {p50:.2} ms, p99 {p99:.2} ms");
        match redis_streams(1024, 100, secs).await {
            Some((xadd, xread)) => {
                println!("redis streams (appendfsync always) XADD 1 KiB x100/pipeline, {PRODUCERS} clients: {xadd:.0} records/s; XREADGROUP {xread:.0} records/s");
                println!("ratio strata/redis: produce 1 KiB {:.2}x, consume {:.2}x", r1k / xadd, c1k / xread);
            }
            None => println!("redis-server not found: skipping the Redis Streams peer (apt-get install redis-server)"),
        }
        if let Some((xadd, _)) = redis_streams(100, 1000, secs).await {
            println!("redis streams XADD 100 B x1000/pipeline: {xadd:.0} records/s; ratio strata/redis {:.2}x", r100 / xadd);
        }
    });
}
