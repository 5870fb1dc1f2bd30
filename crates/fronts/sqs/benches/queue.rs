//! Durable queue throughput through the sqs front, next to the core's durable commit rate:
//!
//!   cargo bench -p strata-sqs --bench queue
//!
//! 16 producers send batches of ten 1 KiB messages (SendMessageBatch) while 16 consumers
//! receive up to ten at a time and delete them in one DeleteMessageBatch, for 10 seconds,
//! every request SigV4-signed with AWS's signer as an SDK would. Prints messages/s through
//! the whole cycle (send + receive + delete, all durable), the end-to-end latency (send to
//! receive) p50/p99 and the send rate; then 16 threads committing one small transaction
//! each at a time against a core store in the same directory, the ceiling the queue is
//! built on.
//!
//! The queue has a `MaximumDepth` of 2,000 (`QUEUE_BENCH_MAX_DEPTH`; 0 for none), and a
//! producer whose messages a full queue throttles waits 100 ms and sends them again: the
//! backpressure the queue offers, as RabbitMQ's flow control slows its publishers. Without
//! it the producers outrun the consumers, the queue grows for as long as the run lasts and the
//! latency measures only how long that was.
//!
//! If a RabbitMQ answers on 127.0.0.1:5672 (guest/guest; `scripts/queue-bench-vs-rabbitmq.sh`
//! installs and starts one), the same workload runs against it in the same run: a durable
//! queue, persistent messages, publisher confirms awaited per batch of ten, consumers with
//! prefetch 10 and manual acks — RabbitMQ's equivalent of a durable send, receive, delete.

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strata_core::{Store, SystemClock};
use strata_queue::{Limits, Queues};

/// The allocator the `strata` binary serves with, so the server side allocates as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WORKERS: usize = 16;
const SECONDS: u64 = 10;
/// How long a producer waits before resending messages a full queue throttled.
const BACKOFF: Duration = Duration::from_millis(100);

async fn call(http: &reqwest::Client, base: &str, action: &str, input: Value) -> Value {
    let url = format!("{base}/");
    let body = input.to_string();
    let host = base.trim_start_matches("http://").to_owned();
    let target = format!("AmazonSQS.{action}");
    let headers = [("host", host.as_str()), ("x-amz-target", target.as_str())];
    let identity =
        aws_credential_types::Credentials::new("strata", "strata-secret", None, None, "bench").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sqs")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable =
        SignableRequest::new("POST", &url, headers.into_iter(), SignableBody::Bytes(body.as_bytes()))
            .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().method("POST").uri(&url).body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    let mut builder = http.post(&url).header("x-amz-target", &target).body(body);
    for (name, value) in request.headers() {
        builder = builder.header(name.as_str(), value.to_str().unwrap());
    }
    let response = builder.send().await.unwrap();
    assert!(response.status().is_success(), "{action}: {}", response.status());
    response.json().await.unwrap()
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize] as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let store = Store::open(dir.path().join("core"), strata_core::Options::default()).unwrap();
    let queues = Queues::open(store.clone(), Arc::new(SystemClock), Limits::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(strata_sqs::serve(
        listener,
        queues,
        strata_sqs::SqsConfig::default(),
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    let max_depth = std::env::var("QUEUE_BENCH_MAX_DEPTH").map_or(2_000, |v| v.parse::<u64>().unwrap());
    let attributes = if max_depth > 0 { json!({"MaximumDepth": max_depth.to_string()}) } else { json!({}) };
    let url = call(&http, &base, "CreateQueue", json!({"QueueName": "bench", "Attributes": attributes}))
        .await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for p in 0..WORKERS {
        let (http, base, url, stop, sent) =
            (http.clone(), base.clone(), url.clone(), stop.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let pad = "x".repeat(1024 - 40);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut entries: Vec<Value> = (0..10)
                    .map(|j| json!({"Id": format!("{j}"), "MessageBody": format!("{}:{p}:{i}:{pad}", now_us())}))
                    .collect();
                // A full queue throttles what does not fit: back off, then send the rest.
                while !entries.is_empty() && !stop.load(Ordering::Relaxed) {
                    let answer =
                        call(&http, &base, "SendMessageBatch", json!({"QueueUrl": url, "Entries": entries}))
                            .await;
                    let accepted = answer["Successful"].as_array().map_or(0, Vec::len);
                    sent.fetch_add(accepted as u64, Ordering::Relaxed);
                    let failed: Vec<&str> =
                        answer["Failed"].as_array().into_iter().flatten().filter_map(|f| f["Id"].as_str()).collect();
                    entries.retain(|e| failed.contains(&e["Id"].as_str().unwrap()));
                    if !entries.is_empty() {
                        tokio::time::sleep(BACKOFF).await;
                    }
                }
                i += 1;
            }
            Vec::new()
        }));
    }
    for _ in 0..WORKERS {
        let (http, base, url, stop, done) =
            (http.clone(), base.clone(), url.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let got = call(
                    &http,
                    &base,
                    "ReceiveMessage",
                    json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}),
                )
                .await;
                let messages = got["Messages"].as_array().cloned().unwrap_or_default();
                if messages.is_empty() {
                    continue;
                }
                let received = now_us();
                let mut entries = Vec::new();
                for (j, m) in messages.iter().enumerate() {
                    let sent: u64 = m["Body"].as_str().unwrap().split(':').next().unwrap().parse().unwrap();
                    latencies.push(received.saturating_sub(sent));
                    entries.push(json!({"Id": format!("{j}"), "ReceiptHandle": m["ReceiptHandle"]}));
                }
                call(&http, &base, "DeleteMessageBatch", json!({"QueueUrl": url, "Entries": entries})).await;
                done.fetch_add(messages.len() as u64, Ordering::Relaxed);
            }
            latencies
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let completed = done.load(Ordering::Relaxed);
    let sent = sent.load(Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    latencies.sort_unstable();
    println!(
        "strata sqs: {:.0} messages/s sent+received+deleted (durable, batches of 10, {WORKERS} producers, {WORKERS} consumers, 1 KiB); \
         latency send->receive p50 {:.1} ms, p99 {:.1} ms; {:.0} messages/s sent",
        completed as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        sent as f64 / elapsed
    );

    // The core's durable commit rate with as many committers.
    let ks = store.keyspace("bench").unwrap();
    let commits = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(3);
    let threads: Vec<_> = (0..WORKERS)
        .map(|t| {
            let (store, ks, commits) = (store.clone(), ks.clone(), commits.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while Instant::now() < until {
                    let mut txn = store.begin();
                    txn.set(&ks, format!("{t}:{i}").into_bytes(), vec![0u8; 1024]).unwrap();
                    txn.commit().unwrap();
                    commits.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    println!(
        "core: {:.0} durable commits/s of 1 KiB with {WORKERS} committers",
        commits.load(Ordering::Relaxed) as f64 / 3.0
    );
    let strata_rate = completed as f64 / elapsed;
    match rabbitmq().await {
        Some((rate, p50, p99)) => println!(
            "rabbitmq: {rate:.0} messages/s published (confirmed) + consumed (acked), durable, same shape; \
             latency p50 {p50:.1} ms, p99 {p99:.1} ms; strata / rabbitmq = {:.2}",
            strata_rate / rate
        ),
        None => println!("rabbitmq: none on 127.0.0.1:5672, not compared"),
    }
}

/// The same workload against RabbitMQ: (messages/s, p50 ms, p99 ms), or `None` if none runs.
async fn rabbitmq() -> Option<(f64, f64, f64)> {
    use futures::StreamExt;
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
        QueueDeclareOptions, QueuePurgeOptions,
    };
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};
    let addr = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let conn = Arc::new(Connection::connect(addr, ConnectionProperties::default()).await.ok()?);
    let setup = conn.create_channel().await.ok()?;
    setup
        .queue_declare("strata-bench".into(), QueueDeclareOptions::durable(), FieldTable::default())
        .await
        .ok()?;
    setup.queue_purge("strata-bench".into(), QueuePurgeOptions::default()).await.ok()?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut publishers = Vec::new();
    for _ in 0..WORKERS {
        let (conn, stop) = (conn.clone(), stop.clone());
        publishers.push(tokio::spawn(async move {
            let ch = conn.create_channel().await.unwrap();
            ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
            let pad = "x".repeat(1024 - 40);
            while !stop.load(Ordering::Relaxed) {
                let mut confirms = Vec::new();
                for _ in 0..10 {
                    let body = format!("{}:{pad}", now_us());
                    let props = BasicProperties::default().with_delivery_mode(2);
                    let confirm = ch
                        .basic_publish(
                            "".into(),
                            "strata-bench".into(),
                            BasicPublishOptions::default(),
                            body.as_bytes(),
                            props,
                        )
                        .await
                        .unwrap();
                    confirms.push(confirm);
                }
                for confirm in confirms {
                    confirm.await.unwrap();
                }
            }
        }));
    }
    let mut consumers = Vec::new();
    for i in 0..WORKERS {
        let (conn, stop, done) = (conn.clone(), stop.clone(), done.clone());
        consumers.push(tokio::spawn(async move {
            let ch = conn.create_channel().await.unwrap();
            ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
            let mut consumer = ch
                .basic_consume(
                    "strata-bench".into(),
                    format!("c{i}").into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(Ok(delivery))) =
                    tokio::time::timeout(Duration::from_millis(200), consumer.next()).await
                else {
                    continue;
                };
                let body = String::from_utf8_lossy(&delivery.data);
                let sent: u64 = body.split(':').next().unwrap().parse().unwrap();
                latencies.push(now_us().saturating_sub(sent));
                delivery.ack(BasicAckOptions::default()).await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let completed = done.load(Ordering::Relaxed);
    for p in publishers {
        let _ = p.await;
    }
    let mut latencies = Vec::new();
    for c in consumers {
        latencies.extend(c.await.unwrap_or_default());
    }
    latencies.sort_unstable();
    Some((completed as f64 / elapsed, percentile(&latencies, 0.5), percentile(&latencies, 0.99)))
}
