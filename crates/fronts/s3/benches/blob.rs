//! Blob throughput through the s3 front, next to the raw disk, in one run:
//!
//!   cargo bench -p strata-s3 --bench blob   (BLOB_BENCH_DIR=/path picks the disk;
//!                                            BLOB_BENCH_ROWS="256 MiB/1" runs one row)
//!
//! PUT and GET of 4 KiB objects (objects/s), 1 MiB and 256 MiB objects (MB/s), with 1 and 16
//! concurrent clients (object_store's S3 client, unsigned payloads so the client does not
//! hash), every PUT durable (core sync "always"). 256 MiB objects go twice: as one PUT and
//! one GET, and the way aws-cli and boto3's `upload_file`/`download_file` move any file over
//! 8 MiB (a multipart upload of 8 MiB parts and ranged GETs of 8 MiB, ten at a time per
//! client). The raw disk limit is a sequential write
//! of 1 GiB in 1 MiB writes with one fdatasync, and a read of it back (median of three).
//! Each row is the median of three rounds. Run as root, the page cache is dropped before the raw read and
//! before each GET round of 1 MiB and larger objects, so both read from the device;
//! otherwise both may read from the page cache, and the output says so.

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_blob::{Blob, Limits};
use strata_core::{Store, SystemClock};

/// The allocator the `strata` binary serves with, so the server side allocates as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MIB: usize = 1024 * 1024;
const ROUNDS: usize = 3;
/// aws-cli's (s3transfer's) multipart_chunksize and max_concurrent_requests.
const PART: usize = 8 * MIB;
const PARTS_AT_ONCE: usize = 10;

/// How a client moves an object.
#[derive(Clone, Copy, PartialEq)]
enum Transfer {
    /// One PUT, one GET.
    Whole,
    /// Multipart upload and ranged GETs, as aws-cli does for files over 8 MiB.
    Parts,
}

async fn put(client: &object_store::aws::AmazonS3, path: &Path, data: Bytes, transfer: Transfer) {
    if transfer == Transfer::Whole {
        client.put(path, PutPayload::from_bytes(data)).await.unwrap();
        return;
    }
    let upload = client.put_multipart(path).await.unwrap();
    let mut write = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
    for start in (0..data.len()).step_by(PART) {
        write.wait_for_capacity(PARTS_AT_ONCE).await.unwrap();
        write.put(data.slice(start..(start + PART).min(data.len())));
    }
    write.finish().await.unwrap();
}

/// Reads the object whole; returns its length.
async fn get(client: &object_store::aws::AmazonS3, path: &Path, size: usize, transfer: Transfer) -> usize {
    if transfer == Transfer::Whole {
        let mut stream = client.get(path).await.unwrap().into_stream();
        let mut n = 0;
        while let Some(chunk) = stream.next().await {
            n += chunk.unwrap().len();
        }
        return n;
    }
    let ranges = (0..size as u64).step_by(PART).map(|start| start..(start + PART as u64).min(size as u64));
    futures::stream::iter(ranges)
        .map(|range| async move { client.get_range(path, range).await.unwrap().len() })
        .buffer_unordered(PARTS_AT_ONCE)
        .fold(0, |n, len| async move { n + len })
        .await
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// Empties the page cache (needs root); returns whether it could.
fn drop_caches() -> bool {
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// (MB/s written with one fdatasync, MB/s read back) for a 1 GiB file in `dir`.
fn raw_disk(dir: &std::path::Path) -> (f64, f64) {
    let path = dir.join("raw-disk-probe");
    let chunk = vec![0x5au8; MIB];
    let total = 1024;
    let started = Instant::now();
    let mut file = std::fs::File::create(&path).unwrap();
    for _ in 0..total {
        file.write_all(&chunk).unwrap();
    }
    file.sync_data().unwrap();
    let write = total as f64 / started.elapsed().as_secs_f64();
    drop(file);
    drop_caches();
    let mut buf = vec![0u8; MIB];
    let started = Instant::now();
    let mut file = std::fs::File::open(&path).unwrap();
    while file.read(&mut buf).unwrap() > 0 {}
    let read = total as f64 / started.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    (write * MIB as f64 / 1e6, read * MIB as f64 / 1e6)
}

/// Runs `count` operations over `clients` tasks; returns seconds taken.
async fn run<F, Fut>(clients: usize, count: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    op(i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let base = std::env::var("BLOB_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = tempfile::tempdir_in(&base).unwrap();
    let probes: Vec<(f64, f64)> = (0..ROUNDS).map(|_| raw_disk(dir.path())).collect();
    let disk_write = median(probes.iter().map(|p| p.0).collect());
    let disk_read = median(probes.iter().map(|p| p.1).collect());
    let store = Store::open(dir.path().join("core"), strata_core::Options::default()).unwrap();
    let blob = Blob::open(
        store,
        &dir.path().join("blob"),
        Arc::new(SystemClock),
        Limits::default(),
        ("strata".into(), "strata-secret".into()),
    )
    .unwrap();
    blob.create_bucket("bench", "strata").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(strata_s3::serve(listener, blob, strata_s3::S3Config::default(), std::future::pending()));
    let client = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name("bench")
            .with_access_key_id("strata")
            .with_secret_access_key("strata-secret")
            .with_unsigned_payload(true)
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_allow_http(true)
                    .with_timeout(Duration::from_secs(600)),
            )
            .build()
            .unwrap(),
    );

    // What S3's MD5 ETag costs on this CPU: the ceiling of one upload stream.
    let block = vec![0xa5u8; 256 * MIB];
    let started = Instant::now();
    let mut md5 = <md5::Md5 as md5::Digest>::new();
    md5::Digest::update(&mut md5, &block);
    std::hint::black_box(md5::Digest::finalize(md5));
    let md5_rate = block.len() as f64 / started.elapsed().as_secs_f64() / 1e6;
    drop(block);
    let cold = drop_caches();
    println!(
        "raw disk: sequential write + fdatasync {disk_write:.0} MB/s, read {disk_read:.0} MB/s ({}; reads {})",
        base.display(),
        if cold {
            "from the device, page cache dropped"
        } else {
            "may hit the page cache: run as root to drop it"
        }
    );
    println!("MD5 (every PUT's ETag) on one core: {md5_rate:.0} MB/s");
    println!("| object | clients | PUT | GET | PUT / disk write | GET / disk read |");
    println!("|---|---|---|---|---|---|");
    let rows = [
        (4 * 1024, "4 KiB", [1000, 4000], Transfer::Whole),
        (MIB, "1 MiB", [100, 400], Transfer::Whole),
        (256 * MIB, "256 MiB", [2, 16], Transfer::Whole),
        (256 * MIB, "256 MiB in 8 MiB parts", [2, 16], Transfer::Parts),
    ];
    for (size, label, counts, transfer) in rows {
        for (clients, count) in [1, 16].into_iter().zip(counts) {
            if std::env::var("BLOB_BENCH_ROWS")
                .is_ok_and(|rows| !rows.split(',').any(|r| r == format!("{label}/{clients}")))
            {
                continue;
            }
            let data = Bytes::from((0..size).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>());
            let (mut puts, mut gets) = (Vec::new(), Vec::new());
            for round in 0..ROUNDS {
                let prefix = format!("{size}-{clients}-{round}");
                let (c, d, p) = (client.clone(), data.clone(), prefix.clone());
                let put_time = run(clients, count, move |i| {
                    let (c, d, p) = (c.clone(), d.clone(), p.clone());
                    async move { put(&c, &Path::from(format!("{p}/{i}")), d, transfer).await }
                })
                .await;
                if size >= MIB {
                    drop_caches();
                }
                let (c, p) = (client.clone(), prefix.clone());
                let get_time =
                    run(clients, count, move |i| {
                        let (c, p) = (c.clone(), p.clone());
                        async move {
                            assert_eq!(get(&c, &Path::from(format!("{p}/{i}")), size, transfer).await, size)
                        }
                    })
                    .await;
                puts.push(count as f64 / put_time);
                gets.push(count as f64 / get_time);
                // Keep the disk from filling with the large rounds.
                let (c, p) = (client.clone(), prefix);
                run(16, count, move |i| {
                    let (c, p) = (c.clone(), p.clone());
                    async move { c.delete(&Path::from(format!("{p}/{i}"))).await.unwrap() }
                })
                .await;
            }
            let (put, get) = (median(puts), median(gets));
            if size < MIB {
                println!("| {label} | {clients} | {put:.0} objects/s | {get:.0} objects/s | - | - |");
            } else {
                let (put_mb, get_mb) = (put * size as f64 / 1e6, get * size as f64 / 1e6);
                println!(
                    "| {label} | {clients} | {put_mb:.0} MB/s | {get_mb:.0} MB/s | {:.2} | {:.2} |",
                    put_mb / disk_write,
                    get_mb / disk_read
                );
            }
        }
    }
}
