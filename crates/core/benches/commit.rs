//! Durable commit throughput and latency, against this machine's raw fsync rate.
//!
//! `cargo bench -p strata-core` prints, for 1, 8 and 64 concurrent writers committing one
//! 100-byte value each: commits/s and p50/p99 latency with `sync = always` (group commit)
//! and with `sync = periodic` (durability off the commit path), then the raw fsync rate of
//! a file in the same directory: the physical limit a commit-per-fsync design would hit.
//! Set `STRATA_BENCH_SECS` to change the duration of each run (default 3), and
//! `STRATA_BENCH_WRITERS` to run one writer count only.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use strata_core::{Options, Store, SyncMode};

struct Run {
    commits_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn run(sync: SyncMode, writers: usize, secs: f64) -> Run {
    let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
    let store = Store::open(dir.path(), Options { sync, ..Options::default() }).unwrap();
    let ks = store.keyspace("bench").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|_| {
            let (store, ks, stop, counter, barrier) =
                (store.clone(), ks.clone(), stop.clone(), counter.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let started = Instant::now();
                    let mut txn = store.begin();
                    txn.set(&ks, n.to_be_bytes().to_vec(), vec![0xab; 100]).unwrap();
                    txn.commit().unwrap();
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Run { commits_per_sec: latencies.len() as f64 / elapsed, p50: pct(0.5), p99: pct(0.99) }
}

fn raw_fsync_rate(secs: f64) -> f64 {
    let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
    let mut file = std::fs::File::create(dir.path().join("fsync")).unwrap();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed().as_secs_f64() < secs {
        file.write_all(&[0xab; 100]).unwrap();
        file.sync_data().unwrap();
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run briefly then.
    let benching = std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("STRATA_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let secs = if benching { secs } else { 0.2 };
    println!("strata-core commit benchmark: one 100-byte value per commit, {secs}s per run");
    println!("{:<10} {:>8} {:>12} {:>10} {:>10}", "sync", "writers", "commits/s", "p50 ms", "p99 ms");
    let mut table = Vec::new();
    for writers in [1, 8, 16, 32, 64] {
        if std::env::var("STRATA_BENCH_WRITERS").is_ok_and(|only| only != writers.to_string()) {
            continue;
        }
        for (name, sync) in
            [("always", SyncMode::Always), ("periodic", SyncMode::Periodic(Duration::from_secs(1)))]
        {
            let r = run(sync, writers, secs);
            println!(
                "{name:<10} {writers:>8} {:>12.0} {:>10.3} {:>10.3}",
                r.commits_per_sec,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3
            );
            table.push((name, writers, r));
        }
    }
    let fsyncs = raw_fsync_rate(secs);
    println!("raw fsync rate (write 100 B + fdatasync, one thread): {fsyncs:.0}/s");
    let get = |name: &str, writers: usize| {
        table.iter().find(|(n, w, _)| *n == name && *w == writers).map(|(_, _, r)| r)
    };
    let (Some(single), Some(many), Some(relaxed)) =
        (get("always", 1), get("always", 64), get("periodic", 64))
    else {
        return;
    };
    let target = (10.0 * single.commits_per_sec).min(0.8 * relaxed.commits_per_sec);
    println!(
        "64 durable writers: {:.0} commits/s = {:.1}x one durable writer, {:.0}% of periodic; target {:.0}/s: {}",
        many.commits_per_sec,
        many.commits_per_sec / single.commits_per_sec,
        100.0 * many.commits_per_sec / relaxed.commits_per_sec,
        target,
        if many.commits_per_sec >= target { "met" } else { "NOT met" }
    );
}
