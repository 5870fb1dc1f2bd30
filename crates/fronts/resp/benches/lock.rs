//! Lock acquire+release pairs per second over RESP, 50 clients, on distinct resources (one
//! per client) and on contended ones (50 clients on 5 resources): Strata's `LOCK.*` with
//! durable leases (fsynced before each answer) side by side with redis-server running the
//! classic pattern (`SET key token NX PX ttl` + a Lua check-and-delete), when installed.
//!
//!   cargo bench -p strata-resp --bench lock
//!
//! `LOCK_BENCH_SECS` sets each phase's length (default 5), `LOCK_BENCH_IO_THREADS` the resp
//! front's I/O threads (default 0: one per core). Prints the median of per-second rates and
//! the ratio strata/redis.

use redis::aio::MultiplexedConnection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use strata_cache::{Cache, CacheOptions};
use strata_core::{Store, SystemClock};
use strata_lock::{LockConfig, Locks};

/// The allocator the `strata` binary serves with, so the server side allocates as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENTS: usize = 50;
const CONTENDED: usize = 5;
const RELEASE: &str =
    r#"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end"#;

#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Strata,
    Redis,
}

struct Client {
    peer: Peer,
    conn: MultiplexedConnection,
    owner: String,
    resource: String,
}

impl Client {
    async fn acquire(&mut self) -> bool {
        match self.peer {
            Peer::Strata => {
                let token: Option<i64> = redis::cmd("LOCK.ACQUIRE")
                    .arg(&self.resource)
                    .arg("OWNER")
                    .arg(&self.owner)
                    .arg("TTL")
                    .arg(10_000)
                    .arg("WAIT")
                    .arg(1000)
                    .query_async(&mut self.conn)
                    .await
                    .unwrap();
                token.is_some()
            }
            Peer::Redis => {
                let ok: Option<String> = redis::cmd("SET")
                    .arg(&self.resource)
                    .arg(&self.owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(10_000)
                    .query_async(&mut self.conn)
                    .await
                    .unwrap();
                ok.is_some()
            }
        }
    }

    async fn release(&mut self, script: &redis::Script) {
        let _: i64 = match self.peer {
            Peer::Strata => redis::cmd("LOCK.RELEASE")
                .arg(&self.resource)
                .arg("OWNER")
                .arg(&self.owner)
                .query_async(&mut self.conn)
                .await
                .unwrap(),
            Peer::Redis => {
                script.key(&self.resource).arg(&self.owner).invoke_async(&mut self.conn).await.unwrap()
            }
        };
    }

    /// Acquire, release, count, until `stop`. Redis has no wait queue: the pattern retries.
    async fn run(mut self, count: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
        let script = redis::Script::new(RELEASE);
        while !stop.load(Ordering::Relaxed) {
            if self.acquire().await {
                self.release(&script).await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Median pairs/s over `secs` one-second windows.
async fn measure(peer: Peer, url: &str, contended: bool, secs: u64) -> f64 {
    let handle = redis::Client::open(url).unwrap();
    let (count, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let client = Client {
            peer,
            conn: handle.get_multiplexed_async_connection().await.unwrap(),
            owner: format!("client-{i}"),
            resource: if contended { format!("hot:{}", i % CONTENDED) } else { format!("r:{i}") },
        };
        tasks.push(tokio::spawn(client.run(count.clone(), stop.clone())));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut last = count.load(Ordering::Relaxed);
    let mut rates = Vec::new();
    for _ in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = count.load(Ordering::Relaxed);
        rates.push((now - last) as f64);
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

async fn start_strata(dir: &std::path::Path) -> String {
    let store = Store::open(dir, Default::default()).unwrap();
    let locks = Locks::open(store, LockConfig::default()).unwrap();
    let cache = Cache::new(CacheOptions::default(), Arc::new(SystemClock));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/", listener.local_addr().unwrap());
    tokio::spawn(strata_resp::serve(
        listener,
        cache,
        Some(locks),
        strata_resp::RespConfig {
            io_threads: env_number("LOCK_BENCH_IO_THREADS", 0) as usize,
            ..Default::default()
        },
        std::future::pending(),
    ));
    url
}

/// redis-server on `port`; `fsync_always` for the durable configuration.
async fn start_redis(
    dir: &std::path::Path,
    port: u16,
    fsync_always: bool,
) -> Option<(std::process::Child, String)> {
    let mut args: Vec<String> =
        ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""].map(String::from).into();
    if fsync_always {
        args.extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from));
    }
    let child = std::process::Command::new("redis-server")
        .args(&args)
        .arg("--dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url.as_str()).ok()?;
    for _ in 0..50 {
        if client.get_multiplexed_async_connection().await.is_ok() {
            return Some((child, url));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    let secs = env_number("LOCK_BENCH_SECS", 5);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let strata = start_strata(&dir.path().join("strata")).await;
        println!("{CLIENTS} clients, acquire+release pairs/s (median of {secs} one-second windows)");
        let mut results = Vec::new();
        for (name, contended) in [("distinct", false), ("contended", true)] {
            let s = measure(Peer::Strata, &strata, contended, secs).await;
            println!("strata LOCK.* (durable)        {name:>9}: {s:>9.0}");
            results.push((name, contended, s));
        }
        for (label, port, fsync) in
            [("redis (no persistence)", 16401, false), ("redis (appendfsync always)", 16402, true)]
        {
            let rdir = dir.path().join(format!("redis-{port}"));
            std::fs::create_dir_all(&rdir).unwrap();
            let Some((mut child, url)) = start_redis(&rdir, port, fsync).await else {
                println!("redis-server not found: skipping the peer (apt-get install redis-server)");
                return;
            };
            for (name, contended, s) in &results {
                let r = measure(Peer::Redis, &url, *contended, secs).await;
                println!("{label:<30} {name:>9}: {r:>9.0}   ratio strata/redis {:.2}x", s / r);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    });
}
