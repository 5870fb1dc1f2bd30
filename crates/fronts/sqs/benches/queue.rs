//! Durable queue throughput through the sqs front, next to RabbitMQ and to the core's durable
//! commit rate:
//!
//!   cargo bench -p strata-sqs --bench queue
//!
//! 16 producers send batches of ten 1 KiB messages (SendMessageBatch) while 16 consumers
//! receive up to ten at a time and delete them in one DeleteMessageBatch, every request
//! SigV4-signed with AWS's signer as an SDK would. Each phase prints messages/s through the
//! whole cycle (send + receive + delete, all durable), the send rate and the end-to-end
//! latency (send to receive) p50/p99. Two measures:
//!
//! - **Producers flat out** for 10 seconds: each sends its next batch as soon as the last
//!   was acknowledged. Neither SQS nor this queue slows its senders, so here the producers
//!   outrun the consumers (a consumer makes two requests per ten messages, a producer one),
//!   the queue grows for the whole phase and the latency measures only how long it lasted.
//! - **Most sustained rate**, as the OpenMessaging Benchmark reports it: producers offer a
//!   fixed rate, spread evenly over them, and a rate is sustained when it is all sent and
//!   99% of it has gone through the cycle within a second of the producers stopping, with
//!   a median send-to-receive latency of at most 50 ms, so no backlog builds up. Steps of
//!   10% up from 10,000 messages/s, 6 seconds each (a second try after a failed one), find
//!   the highest. This runs first; the flat-out phase, which leaves a backlog behind, runs
//!   last.
//!
//! Then 16 threads commit one small transaction each at a time against a core store in the
//! same directory, the ceiling the queue is built on.
//!
//! If a RabbitMQ answers on 127.0.0.1:5672 (guest/guest; `scripts/queue-bench-vs-rabbitmq.sh`
//! installs and starts one), the same two measures run against it first: a durable queue,
//! persistent messages, publisher confirms awaited per batch of ten, consumers with prefetch
//! 10 and manual acks — RabbitMQ's equivalent of a durable send, receive, delete. Its flow
//! control slows publishers a queue cannot keep up with, so its flat-out phase is close to
//! its most sustained rate.

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
/// How long the flat-out phase runs.
const SECONDS: u64 = 10;
/// How long each step of the search for the most sustained rate runs.
const STEP_SECONDS: u64 = 6;
/// The offered rate the search for the most sustained one starts from, messages/s.
const FIRST_RATE: f64 = 10_000.0;
/// The longest median send-to-receive latency of a sustained rate, ms.
const MAX_P50_MS: f64 = 50.0;
/// How long consumers may take, once a paced phase's producers stop, to finish what was sent.
const DRAIN: Duration = Duration::from_secs(1);

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

/// What one phase of the workload measured.
#[derive(Clone, Copy, Default)]
struct Phase {
    /// Messages per second through send, receive and delete.
    completed: f64,
    /// Messages per second sent (acknowledged).
    sent: f64,
    /// Send-to-receive latency, ms.
    p50: f64,
    p99: f64,
}

impl Phase {
    /// Whether the system kept up with `rate` offered messages/s: the producers got it all
    /// sent, the consumers took 99% of it through the cycle by the end of the drain, and the
    /// median message waited at most [`MAX_P50_MS`], so no backlog stood in the queue.
    fn sustains(&self, rate: f64) -> bool {
        self.sent >= 0.95 * rate && self.completed >= 0.99 * self.sent && self.p50 <= MAX_P50_MS
    }

    fn describe(&self) -> String {
        format!(
            "{:.0} messages/s sent+received+deleted, {:.0} sent; latency send->receive p50 {:.1} ms, p99 {:.1} ms",
            self.completed, self.sent, self.p50, self.p99
        )
    }
}

/// A producer's pacing: `None` sends as fast as answers come; `Some(rate)` spreads `rate`
/// messages/s over the producers, one batch of ten per tick, producer `p` a fraction of a
/// tick after the one before.
fn ticker(rate: Option<f64>, p: usize) -> Option<tokio::time::Interval> {
    let period = Duration::from_secs_f64(10.0 * WORKERS as f64 / rate?);
    let first = tokio::time::Instant::now() + period.mul_f64(p as f64 / WORKERS as f64);
    let mut tick = tokio::time::interval_at(first, period);
    // A producer that fell behind (a slow answer) catches up, so the rate stays offered.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    Some(tick)
}

/// The highest offered rate `run` sustains (see [`Phase::sustains`]) in one of two tries, in
/// steps of 10% up from [`FIRST_RATE`] (down from it if that is too much). Returns the rate
/// and its phase.
async fn max_sustainable<F, Fut>(mut run: F) -> (f64, Phase)
where
    F: FnMut(f64) -> Fut,
    Fut: std::future::Future<Output = Phase>,
{
    // The phase that sustained `rate`, if one of two tries did: a second try, so that one
    // stall on this shared VM does not end the search.
    let mut step = async |rate: f64| {
        for _ in 0..2 {
            let phase = run(rate).await;
            let sustained = phase.sustains(rate);
            let verdict = if sustained { "sustained" } else { "not sustained" };
            println!("  offered {rate:.0} messages/s: {}; {verdict}", phase.describe());
            if sustained {
                return Some(phase);
            }
        }
        None
    };
    let mut rate = FIRST_RATE;
    let Some(first) = step(rate).await else {
        for _ in 0..8 {
            rate /= 1.1;
            if let Some(phase) = step(rate).await {
                return (rate, phase);
            }
        }
        return (0.0, Phase::default());
    };
    let mut best = (rate, first);
    for _ in 0..12 {
        rate *= 1.1;
        match step(rate).await {
            Some(phase) => best = (rate, phase),
            None => break,
        }
    }
    best
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let shape = format!("durable, batches of 10, {WORKERS} producers, {WORKERS} consumers, 1 KiB");
    // RabbitMQ first, before Strata's store exists: a store's background flushes and
    // compactions after its phases would otherwise take CPU from RabbitMQ's.
    let rabbit = match rabbitmq_connection().await {
        Some(conn) => {
            let (rate, at) = max_sustainable(|rate| rabbitmq_phase(&conn, Some(rate), STEP_SECONDS)).await;
            println!("rabbitmq, most sustained ({shape}): {rate:.0} messages/s offered: {}", at.describe());
            let flat_out = rabbitmq_phase(&conn, None, SECONDS).await;
            println!("rabbitmq, publishers flat out: {}", flat_out.describe());
            Some((rate, flat_out))
        }
        None => {
            println!("rabbitmq: none on 127.0.0.1:5672, not compared");
            None
        }
    };

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
    let mut phases = 0;
    let mut strata = |rate: Option<f64>, seconds: u64| {
        phases += 1;
        strata_phase(http.clone(), base.clone(), format!("bench-{phases}"), rate, seconds)
    };
    let (strata_rate, strata_at) = max_sustainable(|rate| strata(Some(rate), STEP_SECONDS)).await;
    println!(
        "strata sqs, most sustained ({shape}): {strata_rate:.0} messages/s offered: {}",
        strata_at.describe()
    );
    // Last, as it leaves a backlog behind.
    let flat_out = strata(None, SECONDS).await;
    println!("strata sqs, producers flat out: {}", flat_out.describe());
    if let Some((rabbit_rate, rabbit_flat_out)) = rabbit {
        println!(
            "strata / rabbitmq: most sustained {:.2}; producers flat out {:.2} (messages through the cycle)",
            strata_rate / rabbit_rate,
            flat_out.completed / rabbit_flat_out.completed
        );
    }

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
}

/// The flags and counters of one phase, shared by its producers and consumers.
#[derive(Clone, Default)]
struct Run {
    stop_sending: Arc<AtomicBool>,
    stop_receiving: Arc<AtomicBool>,
    /// Messages acknowledged to producers.
    sent: Arc<AtomicU64>,
    /// Messages received and deleted (acknowledged).
    done: Arc<AtomicU64>,
}

impl Run {
    fn sending(&self) -> bool {
        !self.stop_sending.load(Ordering::Relaxed)
    }

    fn receiving(&self) -> bool {
        !self.stop_receiving.load(Ordering::Relaxed)
    }

    /// Lets the phase run for `seconds`, stops it and measures it. A paced phase (`drain`)
    /// then gives the consumers up to [`DRAIN`] to finish what was sent, so that messages
    /// in flight at the end count; flat out, what is left at the end is the backlog.
    async fn measure(
        self,
        seconds: u64,
        drain: bool,
        producers: Vec<tokio::task::JoinHandle<()>>,
        consumers: Vec<tokio::task::JoinHandle<Vec<u64>>>,
    ) -> Phase {
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        self.stop_sending.store(true, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        if drain {
            for p in producers {
                let _ = p.await;
            }
            let until = Instant::now() + DRAIN;
            while self.done.load(Ordering::Relaxed) < self.sent.load(Ordering::Relaxed)
                && Instant::now() < until
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.stop_receiving.store(true, Ordering::Relaxed);
        let (done, sent) = (self.done.load(Ordering::Relaxed), self.sent.load(Ordering::Relaxed));
        let mut latencies = Vec::new();
        for c in consumers {
            latencies.extend(c.await.unwrap_or_default());
        }
        latencies.sort_unstable();
        Phase {
            completed: done.min(sent) as f64 / elapsed,
            sent: sent as f64 / elapsed,
            p50: percentile(&latencies, 0.5),
            p99: percentile(&latencies, 0.99),
        }
    }
}

/// One phase against the sqs front, on a fresh queue: 16 producers send batches of ten
/// (paced by [`ticker`]), 16 consumers receive up to ten and delete them in one batch.
async fn strata_phase(
    http: reqwest::Client,
    base: String,
    queue: String,
    rate: Option<f64>,
    seconds: u64,
) -> Phase {
    let url = call(&http, &base, "CreateQueue", json!({"QueueName": queue})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = Run::default();
    let mut producers = Vec::new();
    for p in 0..WORKERS {
        let (http, base, url, run) = (http.clone(), base.clone(), url.clone(), run.clone());
        producers.push(tokio::spawn(async move {
            let pad = "x".repeat(1024 - 40);
            let mut tick = ticker(rate, p);
            let mut i = 0u64;
            loop {
                if let Some(tick) = &mut tick {
                    tick.tick().await;
                }
                if !run.sending() {
                    break;
                }
                let entries: Vec<Value> = (0..10)
                    .map(|j| json!({"Id": format!("{j}"), "MessageBody": format!("{}:{p}:{i}:{pad}", now_us())}))
                    .collect();
                let answer =
                    call(&http, &base, "SendMessageBatch", json!({"QueueUrl": url, "Entries": entries})).await;
                let accepted = answer["Successful"].as_array().map_or(0, Vec::len);
                run.sent.fetch_add(accepted as u64, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let mut consumers = Vec::new();
    for _ in 0..WORKERS {
        let (http, base, url, run) = (http.clone(), base.clone(), url.clone(), run.clone());
        consumers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while run.receiving() {
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
                run.done.fetch_add(messages.len() as u64, Ordering::Relaxed);
            }
            latencies
        }));
    }
    run.measure(seconds, rate.is_some(), producers, consumers).await
}

/// A connection to the RabbitMQ on 127.0.0.1:5672 (guest/guest), with the bench's durable
/// queue declared; `None` if none answers.
async fn rabbitmq_connection() -> Option<Arc<lapin::Connection>> {
    use lapin::options::QueueDeclareOptions;
    use lapin::types::FieldTable;
    let addr = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let conn = lapin::Connection::connect(addr, lapin::ConnectionProperties::default()).await.ok()?;
    let setup = conn.create_channel().await.ok()?;
    setup
        .queue_declare("strata-bench".into(), QueueDeclareOptions::durable(), FieldTable::default())
        .await
        .ok()?;
    Some(Arc::new(conn))
}

/// The same workload against RabbitMQ, on the emptied durable queue: persistent messages,
/// publisher confirms awaited per batch of ten, consumers with prefetch 10 and manual acks.
async fn rabbitmq_phase(conn: &Arc<lapin::Connection>, rate: Option<f64>, seconds: u64) -> Phase {
    use futures::StreamExt;
    use lapin::BasicProperties;
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
        QueuePurgeOptions,
    };
    use lapin::types::FieldTable;
    let setup = conn.create_channel().await.unwrap();
    setup.queue_purge("strata-bench".into(), QueuePurgeOptions::default()).await.unwrap();
    let run = Run::default();
    let mut publishers = Vec::new();
    for p in 0..WORKERS {
        let (conn, run) = (conn.clone(), run.clone());
        publishers.push(tokio::spawn(async move {
            let ch = conn.create_channel().await.unwrap();
            ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
            let pad = "x".repeat(1024 - 40);
            let mut tick = ticker(rate, p);
            loop {
                if let Some(tick) = &mut tick {
                    tick.tick().await;
                }
                if !run.sending() {
                    break;
                }
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
                run.sent.fetch_add(10, Ordering::Relaxed);
            }
            let _ = ch.close(200, "done".into()).await;
        }));
    }
    let mut consumers = Vec::new();
    for i in 0..WORKERS {
        let (conn, run) = (conn.clone(), run.clone());
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
            while run.receiving() {
                let Ok(Some(Ok(delivery))) =
                    tokio::time::timeout(Duration::from_millis(200), consumer.next()).await
                else {
                    continue;
                };
                let body = String::from_utf8_lossy(&delivery.data);
                let sent: u64 = body.split(':').next().unwrap().parse().unwrap();
                latencies.push(now_us().saturating_sub(sent));
                delivery.ack(BasicAckOptions::default()).await.unwrap();
                run.done.fetch_add(1, Ordering::Relaxed);
            }
            // Closing the channel hands its unacknowledged deliveries back to the queue.
            let _ = ch.close(200, "done".into()).await;
            latencies
        }));
    }
    run.measure(seconds, rate.is_some(), publishers, consumers).await
}
