//! `strata serve` as a user runs it: the real binary, driven over HTTP with reqwest.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Strata {
    child: Child,
    base: String,
    /// tokio-postgres connection string of the pg front.
    pg: String,
    /// redis URL of the resp front.
    redis: String,
    /// `http://host:port` of the s3 front.
    s3: String,
    /// `http://host:port` of the sqs front.
    sqs: String,
    /// `host:port` of the kafka front.
    kafka: String,
    /// `http://host:port` of the es front.
    es: String,
    /// `http://host:port` of the proxy front.
    proxy: String,
}

fn command(data_dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["serve", "--data-dir"])
        .arg(data_dir)
        .env("STRATA_HTTP_LISTEN", "127.0.0.1:0")
        .env("STRATA_PG_LISTEN", "127.0.0.1:0")
        .env("STRATA_RESP_LISTEN", "127.0.0.1:0")
        .env("STRATA_S3_LISTEN", "127.0.0.1:0")
        .env("STRATA_SQS_LISTEN", "127.0.0.1:0")
        .env("STRATA_KAFKA_LISTEN", "127.0.0.1:0")
        .env("STRATA_ES_LISTEN", "127.0.0.1:0")
        .env("STRATA_PROXY_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts the binary and waits for it to print its HTTP address.
fn start(data_dir: &Path, env: &[(&str, &str)]) -> Strata {
    start_command(command(data_dir, env))
}

fn start_command(mut command: Command) -> Strata {
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut http, mut pg, mut resp, mut s3, mut sqs, mut kafka, mut es, mut proxy) =
        (None, None, None, None, None, None, None, None);
    while http.is_none()
        || proxy.is_none()
        || pg.is_none()
        || resp.is_none()
        || s3.is_none()
        || sqs.is_none()
        || kafka.is_none()
        || es.is_none()
    {
        let line = lines.next().expect("strata exited before listening").unwrap();
        if let Some(addr) = line.strip_prefix("strata: http listening on ") {
            http = Some(addr.to_string());
        }
        if let Some(addr) = line.strip_prefix("strata: pg listening on ") {
            pg = addr.parse::<std::net::SocketAddr>().ok();
        }
        if let Some(addr) = line.strip_prefix("strata: resp listening on ") {
            resp = Some(format!("redis://{addr}/"));
        }
        if let Some(addr) = line.strip_prefix("strata: s3 listening on ") {
            s3 = Some(format!("http://{addr}"));
        }
        if let Some(addr) = line.strip_prefix("strata: sqs listening on ") {
            sqs = Some(format!("http://{addr}"));
        }
        if let Some(addr) = line.strip_prefix("strata: kafka listening on ") {
            kafka = Some(addr.to_string());
        }
        if let Some(addr) = line.strip_prefix("strata: es listening on ") {
            es = Some(format!("http://{addr}"));
        }
        if let Some(addr) = line.strip_prefix("strata: proxy listening on ") {
            proxy = Some(format!("http://{addr}"));
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let pg = pg.expect("pg address");
    Strata {
        child,
        base: format!("http://{}", http.expect("http address")),
        pg: format!("host={} port={} user=strata", pg.ip(), pg.port()),
        redis: resp.expect("resp address"),
        s3: s3.expect("s3 address"),
        sqs: sqs.expect("sqs address"),
        kafka: kafka.expect("kafka address"),
        es: es.expect("es address"),
        proxy: proxy.expect("proxy address"),
    }
}

/// Runs the binary expecting it to fail at start-up; returns its stderr.
fn start_fails(data_dir: &Path, env: &[(&str, &str)]) -> String {
    let mut child = command(data_dir, env).spawn().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    stderr
}

impl Drop for Strata {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

#[test]
fn acknowledged_puts_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let client = client();
    let mut acked = Vec::new();
    for round in 0..3 {
        let strata = start(dir.path(), &[]);
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (client, base) = (client.clone(), strata.base.clone());
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0.. {
                        let key = format!("r{round}w{w}i{i}");
                        match client.put(format!("{base}/v1/kv/crash/{key}")).body(key.clone()).send() {
                            Ok(r) if r.status().is_success() => acked.push(key),
                            _ => return acked,
                        }
                    }
                    acked
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400 + round * 150));
        drop(strata); // SIGKILL
        for w in writers {
            acked.extend(w.join().unwrap());
        }
    }
    assert!(!acked.is_empty());
    let strata = start(dir.path(), &[]);
    for key in &acked {
        let r = client.get(format!("{}/v1/kv/crash/{key}", strata.base)).send().unwrap();
        assert_eq!(r.status(), 200, "acknowledged key {key} lost");
        assert_eq!(r.text().unwrap(), *key);
    }
}

#[test]
fn a_second_instance_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = start(dir.path(), &[]);
    let stderr = start_fails(dir.path(), &[]);
    assert!(stderr.contains("in use by another Strata process"), "{stderr}");
    assert!(stderr.contains(&dir.path().display().to_string()), "{stderr}");
}

#[test]
fn a_port_in_use_names_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let stderr = start_fails(dir.path(), &[("STRATA_HTTP_LISTEN", &addr)]);
    assert!(
        stderr.contains(&addr) && stderr.contains("http.listen") && stderr.contains("STRATA_HTTP_LISTEN"),
        "{stderr}"
    );
}

#[test]
fn sigterm_shuts_down_cleanly_and_data_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut strata = start(dir.path(), &[]);
    let client = client();
    let r = client.put(format!("{}/v1/kv/app/k", strata.base)).body("v").send().unwrap();
    assert!(r.status().is_success());
    let killed = Command::new("kill").args(["-TERM", &strata.child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = strata.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let strata = start(dir.path(), &[]);
    assert_eq!(client.get(format!("{}/v1/kv/app/k", strata.base)).send().unwrap().text().unwrap(), "v");
}

#[test]
fn an_api_key_guards_the_api_but_not_health() {
    let dir = tempfile::tempdir().unwrap();
    let strata = start(dir.path(), &[("STRATA_HTTP_API_KEY", "s3cret")]);
    let client = client();
    let url = format!("{}/v1/kv/app/k", strata.base);
    assert_eq!(client.put(&url).body("v").send().unwrap().status(), 401);
    assert_eq!(client.put(&url).bearer_auth("wrong").body("v").send().unwrap().status(), 401);
    assert_eq!(client.put(&url).bearer_auth("s3cret").body("v").send().unwrap().status(), 200);
    assert_eq!(client.get(format!("{}/health", strata.base)).send().unwrap().status(), 200);
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = start_fails(dir.path(), &[("STRATA_CORE_SYNC", "sometimes")]);
    assert!(stderr.contains("core.sync"), "{stderr}");
}

/// SQL rows written through the pg front survive kill -9, and no uncommitted row appears;
/// every index agrees with its table afterwards.
#[test]
fn committed_sql_rows_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let strata = start(dir.path(), &[]);
    let committed = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&strata.pg, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute("CREATE TABLE ledger (id INT PRIMARY KEY, account TEXT, amount INT); CREATE INDEX ON ledger (account)")
            .await
            .unwrap();
        let insert = client.prepare("INSERT INTO ledger VALUES ($1, $2, $3)").await.unwrap();
        let mut committed = Vec::new();
        for id in 0..200i32 {
            client.execute(&insert, &[&id, &format!("acct{}", id % 7), &(id * 10)]).await.unwrap();
            committed.push(id);
        }
        // An open transaction that never commits.
        client.batch_execute("BEGIN; INSERT INTO ledger VALUES (10000, 'ghost', 1)").await.unwrap();
        committed
    });
    drop(strata); // SIGKILL with the transaction open
    let strata = start(dir.path(), &[]);
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&strata.pg, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let ids: Vec<i32> = client
            .query("SELECT id FROM ledger ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(ids, committed);
        // The index lookup (by account) agrees with a scan of the table.
        for account in 0..7 {
            let name = format!("acct{account}");
            let by_index: i64 = client
                .query_one("SELECT count(*) FROM ledger WHERE account = $1", &[&name])
                .await
                .unwrap()
                .get(0);
            let by_scan: i64 = client
                .query_one("SELECT count(*) FROM ledger WHERE account || '' = $1", &[&name])
                .await
                .unwrap()
                .get(0);
            assert_eq!(by_index, by_scan);
        }
        let plan: Vec<String> = client
            .query("EXPLAIN SELECT * FROM ledger WHERE account = 'acct1'", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(plan.iter().any(|l| l.contains("Index Scan")), "{plan:?}");
    });
}

/// `cache.persistence = "log"`: kill -9 under a write load of several connections; every
/// write acknowledged before the kill, TTLs included, is back after a restart.
#[test]
fn acknowledged_cache_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("STRATA_CACHE_PERSISTENCE", "log")];
    let strata = start(dir.path(), &env);
    let url = strata.redis.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                let mut acked = Vec::new();
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && std::time::Instant::now() < deadline
                {
                    let key = format!("w{w}:{i}");
                    let ok: redis::RedisResult<()> = redis::cmd("SET").arg(&key).arg(i).query(&mut con);
                    if ok.is_err() {
                        break;
                    }
                    let ok: redis::RedisResult<i64> =
                        redis::cmd("RPUSH").arg(format!("list{w}")).arg(i).query(&mut con);
                    if ok.is_err() {
                        break;
                    }
                    acked.push(i);
                    i += 1;
                }
                acked
            })
        })
        .collect();
    {
        let mut con = redis::Client::open(url.clone()).unwrap().get_connection().unwrap();
        let _: () = redis::cmd("SET").arg("ttl-key").arg("v").arg("EX").arg(1000).query(&mut con).unwrap();
        let _: () = redis::cmd("ZADD").arg("board").arg(1.5).arg("a").query(&mut con).unwrap();
        let _: () = redis::cmd("HSET").arg("h").arg("f").arg("v").query(&mut con).unwrap();
        let _: String =
            redis::cmd("XADD").arg("events").arg("1-0").arg("k").arg("v").query(&mut con).unwrap();
        let _: () =
            redis::cmd("XGROUP").arg("CREATE").arg("events").arg("g").arg("0").query(&mut con).unwrap();
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("STREAMS")
            .arg("events")
            .arg(">")
            .query(&mut con)
            .unwrap();
        let lib = "#!lua name=lib\nredis.register_function('get2', function(keys) return redis.call('GET', keys[1]) end)";
        let _: String = redis::cmd("FUNCTION").arg("LOAD").arg(lib).query(&mut con).unwrap();
    }
    std::thread::sleep(Duration::from_millis(800));
    let mut strata = strata;
    strata.child.kill().unwrap();
    strata.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: Vec<Vec<u64>> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(acked.iter().all(|a| !a.is_empty()), "every writer got some writes in");
    drop(strata);

    let strata = start(dir.path(), &env);
    let mut con = redis::Client::open(strata.redis.clone()).unwrap().get_connection().unwrap();
    for (w, acked) in acked.iter().enumerate() {
        for i in acked {
            let v: Option<u64> = redis::cmd("GET").arg(format!("w{w}:{i}")).query(&mut con).unwrap();
            assert_eq!(v, Some(*i), "w{w}:{i} was acknowledged");
        }
        let list: Vec<u64> =
            redis::cmd("LRANGE").arg(format!("list{w}")).arg(0).arg(-1).query(&mut con).unwrap();
        assert!(list.len() >= acked.len(), "list{w} lost pushes");
        assert_eq!(&list[..acked.len()], acked.as_slice());
    }
    let ttl: i64 = redis::cmd("TTL").arg("ttl-key").query(&mut con).unwrap();
    assert!((900..=1000).contains(&ttl), "TTL survives: {ttl}");
    let score: f64 = redis::cmd("ZSCORE").arg("board").arg("a").query(&mut con).unwrap();
    assert_eq!(score, 1.5);
    let f: String = redis::cmd("HGET").arg("h").arg("f").query(&mut con).unwrap();
    assert_eq!(f, "v");
    let pending: (i64, String, String, Vec<(String, String)>) =
        redis::cmd("XPENDING").arg("events").arg("g").query(&mut con).unwrap();
    assert_eq!(
        pending,
        (1, "1-0".into(), "1-0".into(), vec![("c".into(), "1".into())]),
        "a stream's group survives"
    );
    let entries: Vec<(String, Vec<String>)> =
        redis::cmd("XRANGE").arg("events").arg("-").arg("+").query(&mut con).unwrap();
    assert_eq!(entries, vec![("1-0".to_string(), vec!["k".to_string(), "v".to_string()])]);
    let via_function: String = redis::cmd("FCALL").arg("get2").arg(1).arg("w0:0").query(&mut con).unwrap();
    assert_eq!(via_function, "0", "FUNCTION libraries survive a restart");
}

/// Sends a blocking request to the s3 front signed with SigV4 by AWS's own signer.
fn s3_signed(
    base: &str,
    key: (&str, &str),
    method: &str,
    path: &str,
    body: &[u8],
) -> reqwest::blocking::Response {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
    };
    let url = format!("{base}{path}");
    let identity = aws_credential_types::Credentials::new(key.0, key.1, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let host = base.trim_start_matches("http://").to_string();
    let signable =
        SignableRequest::new(method, &url, [("host", host.as_str())].into_iter(), SignableBody::Bytes(body))
            .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().method(method).uri(&url).body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    let mut builder = client().request(method.parse().unwrap(), &url).body(body.to_vec());
    for (name, value) in request.headers() {
        builder = builder.header(name.as_str(), value.to_str().unwrap());
    }
    builder.send().unwrap()
}

/// The bytes of object `name`: a pattern only that name produces, of a size picked from it.
fn object_bytes(name: &str) -> Vec<u8> {
    let seed = name.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let size = [900, 90_000, 700_000, 2_500_000][(seed % 4) as usize] + (seed % 1000) as usize;
    (0..size).map(|i| (seed.wrapping_add(i as u64 * 2_654_435_761) >> 7) as u8).collect()
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Concurrent uploads through the s3 front, SIGKILL, restart: every acknowledged object is
/// whole, nothing half-written is listed, and no file of an interrupted upload is left.
#[test]
fn acknowledged_objects_survive_kill_9_whole() {
    use object_store::{ObjectStore, ObjectStoreExt};
    let dir = tempfile::tempdir().unwrap();
    let strata = start(dir.path(), &[]);
    let root = ("strata", "strata-secret");
    assert_eq!(s3_signed(&strata.s3, root, "PUT", "/crash", b"").status(), 200);
    let store = |base: &str| {
        std::sync::Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_endpoint(base)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_bucket_name("crash")
                .with_access_key_id(root.0)
                .with_secret_access_key(root.1)
                .with_retry(object_store::RetryConfig { max_retries: 0, ..Default::default() })
                .build()
                .unwrap(),
        )
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s3 = store(&strata.s3);
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let s3 = s3.clone();
            runtime.spawn(async move {
                let mut acked = Vec::new();
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                for i in 0.. {
                    let name = format!("w{w}/obj{i}");
                    let path = object_store::path::Path::from(name.as_str());
                    match s3.put(&path, object_bytes(&name).into()).await {
                        Ok(_) if std::time::Instant::now() < deadline => acked.push(name),
                        _ => return acked,
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    drop(strata); // SIGKILL mid-upload
    let acked: Vec<String> = writers.into_iter().flat_map(|w| runtime.block_on(w).unwrap()).collect();
    assert!(acked.len() >= 6, "the writers got objects in before the kill: {}", acked.len());

    let strata = start(dir.path(), &[]);
    let s3 = store(&strata.s3);
    let listed: Vec<object_store::ObjectMeta> = runtime.block_on(async {
        use futures::TryStreamExt;
        s3.list(None).try_collect().await.unwrap()
    });
    let names: std::collections::HashSet<String> = listed.iter().map(|m| m.location.to_string()).collect();
    for name in &acked {
        assert!(names.contains(name), "acknowledged object {name} is missing");
    }
    for meta in &listed {
        let name = meta.location.to_string();
        let bytes = runtime.block_on(async { s3.get(&meta.location).await.unwrap().bytes().await.unwrap() });
        let expected = object_bytes(&name);
        assert_eq!(bytes.len(), expected.len(), "{name} is whole");
        assert_eq!(md5_hex(&bytes), md5_hex(&expected), "{name}'s bytes are its own");
        assert_eq!(meta.e_tag.as_deref(), Some(format!("\"{}\"", md5_hex(&expected)).as_str()));
    }
    // Every file in the blob directory belongs to a listed object (small ones live in core).
    let files: usize = std::fs::read_dir(dir.path().join("blob/data"))
        .unwrap()
        .map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap().count())
        .sum();
    let large = listed.iter().filter(|m| m.size > 65_536).count();
    assert_eq!(files, large, "interrupted uploads left no files behind");
    assert_eq!(std::fs::read_dir(dir.path().join("blob/tmp")).unwrap().count(), 0);
}

/// `strata blob key create`, `strata blob presign` and the public-object origin, against a
/// running server.
#[test]
fn blob_cli_makes_keys_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let strata = start(dir.path(), &[]);
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["blob", "--server", &strata.base])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let created = cli(&["key", "create"]);
    let field =
        |name: &str| created.lines().find_map(|l| l.strip_prefix(&format!("{name} = "))).unwrap().to_string();
    let (access_key, secret_key) = (field("access_key"), field("secret_key"));
    let user = (access_key.as_str(), secret_key.as_str());
    assert!(cli(&["key", "list"]).contains(&access_key));
    assert_eq!(s3_signed(&strata.s3, user, "PUT", "/mine", b"").status(), 200);
    assert_eq!(s3_signed(&strata.s3, user, "PUT", "/mine/hello.txt", b"hello").status(), 200);

    // A presigned GET made by the CLI with the user's key works without credentials.
    let url = cli(&["presign", "mine/hello.txt", "--expires", "300", "--access-key", &access_key]);
    let response = client().get(url.trim()).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "hello");
    // A presigned PUT uploads.
    let url = cli(&["presign", "mine/upload.txt", "--method", "PUT", "--access-key", &access_key]);
    assert_eq!(client().put(url.trim()).body("uploaded").send().unwrap().status(), 200);

    // The http front serves an object as origin only once a policy makes it public.
    let public = format!("{}/blob/mine/hello.txt", strata.base);
    assert_eq!(client().get(&public).send().unwrap().status(), 403);
    let policy = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::mine/*"}]}"#;
    assert_eq!(s3_signed(&strata.s3, user, "PUT", "/mine?policy", policy.as_bytes()).status(), 204);
    let response = client().get(&public).send().unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(response.text().unwrap(), "hello");
    let response = client().get(&public).header("if-none-match", &etag).send().unwrap();
    assert_eq!(response.status(), 304);
    let response = client().get(&public).header("range", "bytes=1-3").send().unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.text().unwrap(), "ell");

    // Revoked keys stop working.
    cli(&["key", "revoke", &access_key]);
    assert_eq!(s3_signed(&strata.s3, user, "GET", "/mine/hello.txt", b"").status(), 403);
}

/// `blob.backend = "s3"` through the binary: one Strata keeps its object bytes in another.
#[test]
fn blob_backend_s3_stores_bytes_in_another_service() {
    let (backing_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let backing = start(backing_dir.path(), &[]);
    let root = ("strata", "strata-secret");
    assert_eq!(s3_signed(&backing.s3, root, "PUT", "/backing", b"").status(), 200);
    let env = [
        ("STRATA_BLOB_BACKEND", "s3"),
        ("STRATA_BLOB_REMOTE_ENDPOINT", backing.s3.as_str()),
        ("STRATA_BLOB_REMOTE_BUCKET", "backing"),
        ("STRATA_BLOB_REMOTE_ACCESS_KEY", root.0),
        ("STRATA_BLOB_REMOTE_SECRET_KEY", root.1),
    ];
    let strata = start(dir.path(), &env);
    assert_eq!(s3_signed(&strata.s3, root, "PUT", "/photos", b"").status(), 200);
    let large = object_bytes("w0/obj2"); // 700 KB: a segment of its own
    assert_eq!(s3_signed(&strata.s3, root, "PUT", "/photos/cat.jpg", &large).status(), 200);
    let back = s3_signed(&strata.s3, root, "GET", "/photos/cat.jpg", b"").bytes().unwrap();
    assert_eq!(md5_hex(&back), md5_hex(&large));
    let listing =
        s3_signed(&backing.s3, root, "GET", "/backing?list-type=2&prefix=strata/", b"").text().unwrap();
    assert_eq!(listing.matches("<Key>strata/").count(), 1, "{listing}");
    assert!(!dir.path().join("blob/data").exists(), "no local copy of object bytes");
}

/// One SQS JSON-protocol call signed by AWS's signer; `None` if the server did not answer 200.
fn sqs_call(base: &str, action: &str, input: serde_json::Value) -> Option<serde_json::Value> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let url = format!("{base}/");
    let body = input.to_string();
    let host = base.trim_start_matches("http://").to_string();
    let target = format!("AmazonSQS.{action}");
    let headers = [("host", host.as_str()), ("x-amz-target", target.as_str())];
    let identity =
        aws_credential_types::Credentials::new("strata", "strata-secret", None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sqs")
        .time(std::time::SystemTime::now())
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
    let mut builder = client().post(&url).header("x-amz-target", &target).body(body);
    for (name, value) in request.headers() {
        builder = builder.header(name.as_str(), value.to_str().unwrap());
    }
    let response = builder.send().ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().ok()
}

/// Producers and consumers through the sqs front while Strata is killed with SIGKILL and
/// restarted: every acknowledged SendMessage is received at least once in the end, and a
/// FIFO queue's groups are never received out of order.
#[test]
fn acknowledged_messages_survive_kill_9() {
    use serde_json::json;
    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex};
    type Seen = Arc<Mutex<(HashSet<String>, HashMap<String, Vec<u64>>)>>;
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen: Seen = Arc::default();
    // Records each body; FIFO bodies `g<group>:<n>` also append n to their group's order.
    let consume = |base: String, url: String, seen: Seen, until: std::time::Instant| {
        std::thread::spawn(move || {
            while std::time::Instant::now() < until {
                let input = json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1, "VisibilityTimeout": 2});
                let Some(got) = sqs_call(&base, "ReceiveMessage", input) else { return };
                for m in got["Messages"].as_array().into_iter().flatten() {
                    let body = m["Body"].as_str().unwrap().to_owned();
                    let mut seen = seen.lock().unwrap();
                    if seen.0.insert(body.clone())
                        && let Some((group, n)) = body.split_once(':')
                    {
                        seen.1.entry(group.to_owned()).or_default().push(n.parse().unwrap());
                    }
                    drop(seen);
                    sqs_call(
                        &base,
                        "DeleteMessage",
                        json!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]}),
                    );
                }
            }
        })
    };
    let queues = |base: &str| {
        let plain = sqs_call(base, "CreateQueue", json!({"QueueName": "crash"})).unwrap()["QueueUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        let fifo = sqs_call(base, "CreateQueue", json!({"QueueName": "crash.fifo", "Attributes": {"FifoQueue": "true", "ContentBasedDeduplication": "true"}}))
            .unwrap()["QueueUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        (plain, fifo)
    };
    for round in 0..3 {
        let strata = start(dir.path(), &[]);
        let (plain, fifo) = queues(&strata.sqs);
        let until = std::time::Instant::now() + Duration::from_secs(10);
        let producers: Vec<_> = (0..3)
            .map(|p| {
                let (base, acked) = (strata.sqs.clone(), acked.clone());
                let url = if p == 2 { fifo.clone() } else { plain.clone() };
                std::thread::spawn(move || {
                    for i in 0.. {
                        let (body, input) = if p == 2 {
                            let body = format!("g{round}:{i}");
                            (body.clone(), json!({"QueueUrl": url, "MessageBody": body, "MessageGroupId": format!("g{round}")}))
                        } else {
                            let body = format!("r{round}p{p}m{i}");
                            (body.clone(), json!({"QueueUrl": url, "MessageBody": body}))
                        };
                        if sqs_call(&base, "SendMessage", input).is_none() || std::time::Instant::now() > until {
                            return;
                        }
                        acked.lock().unwrap().push(body);
                    }
                })
            })
            .collect();
        let consumers = [
            consume(strata.sqs.clone(), plain, seen.clone(), until),
            consume(strata.sqs.clone(), fifo, seen.clone(), until),
        ];
        std::thread::sleep(Duration::from_millis(700 + round * 200));
        drop(strata); // SIGKILL
        for t in producers {
            t.join().unwrap();
        }
        for t in consumers {
            t.join().unwrap();
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "producers got messages in: {}", acked.len());
    let strata = start(dir.path(), &[]);
    let (plain, fifo) = queues(&strata.sqs);
    // Drain: messages in flight at a kill come back after their 2 s visibility timeout.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline && !acked.iter().all(|b| seen.lock().unwrap().0.contains(b)) {
        let until = std::time::Instant::now() + Duration::from_secs(2);
        let threads = [
            consume(strata.sqs.clone(), plain.clone(), seen.clone(), until),
            consume(strata.sqs.clone(), fifo.clone(), seen.clone(), until),
        ];
        for t in threads {
            t.join().unwrap();
        }
    }
    let seen = seen.lock().unwrap();
    let lost: Vec<_> = acked.iter().filter(|b| !seen.0.contains(*b)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages were never received: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(!seen.1.is_empty(), "FIFO messages went through");
    for (group, order) in &seen.1 {
        assert!(order.windows(2).all(|w| w[0] < w[1]), "group {group} went out of order: {order:?}");
    }
}

/// Producers (rskafka, acks=all) on three partitions while Strata is killed with SIGKILL and
/// restarted: every acknowledged record is in the log exactly once, at the offset it was
/// acknowledged with, in the order it was produced.
#[test]
fn acknowledged_stream_records_survive_kill_9() {
    use rskafka::client::ClientBuilder;
    use rskafka::client::partition::{Compression, UnknownTopicHandling};
    use rskafka::record::Record;
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut acked: Vec<(i32, i64, String)> = Vec::new();
    for round in 0..3u64 {
        let strata = start(dir.path(), &[]);
        let addr = strata.kafka.clone();
        let producers = runtime.block_on(async move {
            let client = ClientBuilder::new(vec![addr.clone()]).build().await.unwrap();
            if round == 0 {
                client.controller_client().unwrap().create_topic("payments", 3, 1, 5_000).await.unwrap();
            }
            (0..3)
                .map(|partition| {
                    let addr = addr.clone();
                    tokio::spawn(async move {
                        let client = ClientBuilder::new(vec![addr]).build().await.unwrap();
                        let Ok(producer) =
                            client.partition_client("payments", partition, UnknownTopicHandling::Error).await
                        else {
                            return Vec::new();
                        };
                        let mut acked = Vec::new();
                        for i in 0.. {
                            let key = format!("r{round}p{partition}i{i}");
                            let record = Record {
                                key: Some(key.clone().into_bytes()),
                                value: Some(vec![b'x'; 200]),
                                headers: Default::default(),
                                timestamp: chrono::Utc::now(),
                            };
                            let produced = tokio::time::timeout(
                                Duration::from_secs(2),
                                producer.produce(vec![record], Compression::NoCompression),
                            )
                            .await;
                            match produced {
                                Ok(Ok(offsets)) => acked.push((partition, offsets[0], key)),
                                _ => return acked,
                            }
                        }
                        acked
                    })
                })
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(600 + round * 200));
        drop(strata); // SIGKILL
        for producer in producers {
            acked.extend(runtime.block_on(producer).unwrap());
        }
    }
    assert!(acked.len() > 30, "the producers got records in before the kills: {}", acked.len());
    let strata = start(dir.path(), &[]);
    let addr = strata.kafka.clone();
    runtime.block_on(async move {
        let client = ClientBuilder::new(vec![addr]).build().await.unwrap();
        for partition in 0..3 {
            let consumer =
                client.partition_client("payments", partition, UnknownTopicHandling::Error).await.unwrap();
            let mut log = Vec::new();
            loop {
                let (records, high_watermark) =
                    consumer.fetch_records(log.len() as i64, 1..10_000_000, 100).await.unwrap();
                let from = log.len() as i64;
                for r in records.into_iter().filter(|r| r.offset >= from) {
                    assert_eq!(r.offset, log.len() as i64, "offsets are dense");
                    log.push(String::from_utf8(r.record.key.unwrap()).unwrap());
                }
                if log.len() as i64 >= high_watermark {
                    break;
                }
            }
            let mine: Vec<_> = acked.iter().filter(|(p, _, _)| *p == partition).collect();
            for (_, offset, key) in &mine {
                assert_eq!(log.get(*offset as usize), Some(key), "acknowledged record {key} at {offset}");
                assert_eq!(log.iter().filter(|k| *k == key).count(), 1, "{key} is in the log once");
            }
            let positions: Vec<usize> = mine.iter().map(|(_, offset, _)| *offset as usize).collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "produce order is log order");
        }
    });
}

/// A windowed view defined over HTTP, fed by a Kafka producer (rskafka), queried over HTTP
/// and, through its SQL table, over the pg front: mean delivery time per region.
#[test]
fn a_stream_view_answers_over_http_and_sql() {
    use rskafka::client::ClientBuilder;
    use rskafka::client::partition::{Compression, UnknownTopicHandling};
    use rskafka::record::Record;
    let dir = tempfile::tempdir().unwrap();
    let strata = start(dir.path(), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = strata.kafka.clone();
    let producer = runtime.block_on(async move {
        let client = ClientBuilder::new(vec![addr]).build().await.unwrap();
        client.controller_client().unwrap().create_topic("deliveries", 1, 1, 5_000).await.unwrap();
        client.partition_client("deliveries", 0, UnknownTopicHandling::Error).await.unwrap()
    });
    let view = serde_json::json!({
        "name": "delivery-times",
        "topic": "deliveries",
        "window": {"type": "tumbling", "size_ms": 3_600_000},
        "time_field": "delivered_at",
        "key_field": "region",
        "aggregates": [{"op": "avg", "field": "minutes", "name": "mean_minutes"}, {"op": "count"}],
        "allowed_lateness_ms": 0,
        "sql_table": "delivery_times"
    });
    let created = client().post(format!("{}/v1/streams/views", strata.base)).json(&view).send().unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().unwrap());
    let bad = client()
        .post(format!("{}/v1/streams/views", strata.base))
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 422, "a definition missing fields is refused");
    let hour = 3_600_000i64;
    let events =
        [("eu", 0, 30), ("eu", 1_000, 50), ("us", 2_000, 20), ("eu", hour + 5, 10), ("us", 2 * hour, 0)];
    let records = events
        .iter()
        .map(|(region, at, minutes)| Record {
            key: None,
            value: Some(
                serde_json::json!({"region": region, "delivered_at": at, "minutes": minutes})
                    .to_string()
                    .into_bytes(),
            ),
            headers: Default::default(),
            timestamp: chrono::Utc::now(),
        })
        .collect();
    runtime.block_on(producer.produce(records, Compression::NoCompression)).unwrap();
    let mut results = serde_json::Value::Null;
    for _ in 0..100 {
        let got: serde_json::Value = client()
            .get(format!("{}/v1/streams/views/delivery-times?key=eu", strata.base))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if got["results"].as_array().is_some_and(|r| r.len() == 2) {
            results = got;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let results = results["results"].as_array().expect("two final eu windows").clone();
    assert_eq!(results[0]["values"]["mean_minutes"], 40.0);
    assert_eq!(results[0]["values"]["count"], 2);
    assert_eq!(results[1]["values"]["count"], 1);
    let pg = strata.pg.clone();
    let rows = runtime.block_on(async move {
        let (client, connection) = tokio_postgres::connect(&pg, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .query("SELECT key, mean_minutes FROM delivery_times WHERE window_start = 0 ORDER BY key", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, f64>(1)))
            .collect::<Vec<_>>()
    });
    assert_eq!(rows, vec![("eu".to_string(), 40.0), ("us".to_string(), 20.0)]);
}

/// Bulk indexing (small `_bulk` requests, no refresh) while Strata is killed with SIGKILL and
/// restarted: every document whose bulk item was acknowledged is searchable afterwards.
#[test]
fn acknowledged_documents_are_searchable_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<String> = Vec::new();
    for round in 0..3u64 {
        let strata = start(dir.path(), &[]);
        let es = strata.es.clone();
        let writer = std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
            let mut acked = Vec::new();
            for batch in 0.. {
                let mut body = String::new();
                for i in 0..20 {
                    let id = format!("r{round}b{batch}i{i}");
                    body.push_str(&format!("{{\"index\":{{\"_index\":\"events\",\"_id\":\"{id}\"}}}}\n"));
                    body.push_str(&format!("{{\"msg\":\"event {id} happened\",\"round\":{round}}}\n"));
                }
                let Ok(resp) = http
                    .post(format!("{es}/_bulk"))
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                else {
                    return acked;
                };
                let Ok(answer) = resp.json::<serde_json::Value>() else { return acked };
                for item in answer["items"].as_array().into_iter().flatten() {
                    if item["index"]["status"].as_u64().is_some_and(|s| s < 300) {
                        acked.push(item["index"]["_id"].as_str().unwrap().to_string());
                    }
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(700 + round * 300));
        drop(strata); // SIGKILL
        acked.extend(writer.join().unwrap());
    }
    assert!(acked.len() > 100, "documents were acknowledged before the kills: {}", acked.len());
    let strata = start(dir.path(), &[]);
    let http = client();
    let count: serde_json::Value =
        http.post(format!("{}/events/_count", strata.es)).send().unwrap().json().unwrap();
    assert!(count["count"].as_u64().unwrap() >= acked.len() as u64, "{count} < {}", acked.len());
    for id in acked.iter().step_by(7) {
        let query = serde_json::json!({"query": {"match": {"msg": id.to_lowercase()}}, "_source": false});
        let answer: serde_json::Value = http
            .post(format!("{}/events/_search", strata.es))
            .header("content-type", "application/json")
            .body(query.to_string())
            .send()
            .unwrap()
            .json()
            .unwrap();
        let hits: Vec<&str> =
            answer["hits"]["hits"].as_array().unwrap().iter().map(|h| h["_id"].as_str().unwrap()).collect();
        assert!(hits.contains(&id.as_str()), "acknowledged document {id} is searchable: {answer}");
    }
}

/// An index declared on a SQL table (`index.strata.source`) follows it through the change
/// feed; rows committed just before a kill -9 are indexed after the restart, from where
/// the indexer stopped.
#[test]
fn a_sql_table_feeds_its_search_index_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let pg = |strata: &Strata| {
        let address = strata.pg.clone();
        runtime.block_on(async move {
            let (client, connection) =
                tokio_postgres::connect(&address, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            client
        })
    };
    let http = client();
    let count = |es: &str, query: serde_json::Value| -> u64 {
        let _ = http.post(format!("{es}/articles/_refresh")).send().unwrap();
        let answer: serde_json::Value = http
            .post(format!("{es}/articles/_count"))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "query": query }).to_string())
            .send()
            .unwrap()
            .json()
            .unwrap();
        answer["count"].as_u64().unwrap_or_else(|| panic!("count answer: {answer}"))
    };
    let wait_count = |es: &str, query: serde_json::Value, want: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let have = count(es, query.clone());
            if have == want {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{have} documents match {query}, want {want}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let strata = start(dir.path(), &[]);
    let client = pg(&strata);
    runtime.block_on(async {
        client
            .batch_execute(
                "CREATE TABLE articles (id BIGINT PRIMARY KEY, title TEXT, body TEXT);
                 INSERT INTO articles VALUES (1, 'Searching tables', 'indexes follow their tables'),
                                             (2, 'Queues', 'messages wait in line');",
            )
            .await
            .unwrap();
    });
    let create = serde_json::json!({
        "settings": {"index": {"strata.source": "sql:articles"}},
        "mappings": {"properties": {"title": {"type": "text", "analyzer": "english"},
                                    "body": {"type": "text", "analyzer": "english"}}}
    });
    let resp = http
        .put(format!("{}/articles", strata.es))
        .header("content-type", "application/json")
        .body(create.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap());
    wait_count(&strata.es, serde_json::json!({"match": {"title": "search"}}), 1);
    // 300 rows in 30 commits, then kill -9 right after the last one is acknowledged.
    runtime.block_on(async {
        for batch in 0..30i64 {
            let values: Vec<String> = (0..10)
                .map(|i| format!("({}, 'row {}', 'stemming finds running')", 100 + batch * 10 + i, i))
                .collect();
            client.batch_execute(&format!("INSERT INTO articles VALUES {}", values.join(","))).await.unwrap();
        }
        client.batch_execute("DELETE FROM articles WHERE id = 2").await.unwrap();
    });
    drop(client);
    drop(strata); // SIGKILL
    let strata = start(dir.path(), &[]);
    wait_count(&strata.es, serde_json::json!({"match": {"body": "run"}}), 300);
    wait_count(&strata.es, serde_json::json!({"match_all": {}}), 301);
    let client = pg(&strata);
    runtime.block_on(async {
        client.batch_execute("UPDATE articles SET body = 'now about queues' WHERE id < 150").await.unwrap();
    });
    // Rows 1 and 100..=149.
    wait_count(&strata.es, serde_json::json!({"match": {"body": "queue"}}), 51);
}

/// Locks held when Strata is killed are still held after the restart, until their TTL;
/// fencing tokens keep increasing; a lease that lapses while Strata is down is gone.
#[test]
fn held_locks_and_fencing_tokens_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let lock = |con: &mut redis::Connection, line: &str| -> redis::Value {
        let mut parts = line.split(' ');
        let mut command = redis::cmd(parts.next().unwrap());
        for part in parts {
            command.arg(part);
        }
        command.query(con).unwrap()
    };
    let int = |v: redis::Value| match v {
        redis::Value::Int(n) => n,
        other => panic!("expected a token, got {other:?}"),
    };
    let strata = start(dir.path(), &[]);
    let mut con = redis::Client::open(strata.redis.clone()).unwrap().get_connection().unwrap();
    let held = int(lock(&mut con, "LOCK.ACQUIRE ticket:42 OWNER checkout-1 TTL 60000"));
    let brief = int(lock(&mut con, "LOCK.ACQUIRE cron:nightly OWNER worker-1 TTL 300"));
    let mut last = held.max(brief);
    for i in 0..50 {
        last = int(lock(&mut con, &format!("LOCK.ACQUIRE item:{i} OWNER bidder TTL 60000")));
    }
    // A release is answered once in the journal (before its fsync): the kill keeps it.
    assert_eq!(int(lock(&mut con, "LOCK.RELEASE item:7 OWNER bidder")), 1);
    drop(con);
    drop(strata); // SIGKILL
    std::thread::sleep(Duration::from_millis(400));
    let strata = start(dir.path(), &[]);
    let mut con = redis::Client::open(strata.redis.clone()).unwrap().get_connection().unwrap();
    assert_eq!(lock(&mut con, "LOCK.ACQUIRE ticket:42 OWNER checkout-2 TTL 1000"), redis::Value::Nil);
    let info: std::collections::HashMap<String, redis::Value> =
        redis::from_redis_value(&lock(&mut con, "LOCK.INFO ticket:42")).unwrap();
    let holders: Vec<std::collections::HashMap<String, redis::Value>> =
        redis::from_redis_value(&info["holders"]).unwrap();
    assert_eq!(holders[0]["owner"], redis::Value::BulkString(b"checkout-1".to_vec()));
    assert_eq!(holders[0]["token"], redis::Value::Int(held));
    // The brief lease ended while Strata was down: free, with a higher token.
    let next = int(lock(&mut con, "LOCK.ACQUIRE cron:nightly OWNER worker-2 TTL 1000"));
    assert!(next > last, "{next} > {last}");
    // The holder still owns it.
    assert_eq!(int(lock(&mut con, "LOCK.RELEASE ticket:42 OWNER checkout-1")), 1);
    // The lock released just before the kill is free; the others are still held.
    assert!(int(lock(&mut con, "LOCK.ACQUIRE item:7 OWNER bidder-2 TTL 1000")) > last);
    assert_eq!(lock(&mut con, "LOCK.ACQUIRE item:8 OWNER bidder-2 TTL 1000"), redis::Value::Nil);
}

/// A tiny HTTP upstream on port 0 that answers `<name> <path>` to every request.
fn http_upstream(name: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head);
                let path = text.split_whitespace().nth(1).unwrap_or("?").to_string();
                let body = format!("{name} {path}");
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

/// Routes from the config file proxy through port 8000's front; the admin API adds,
/// replaces and deletes routes while the proxy serves.
#[test]
fn the_gateway_routes_from_config_and_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (http_upstream("a"), http_upstream("b"));
    let config = dir.path().join("strata.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[edge.routes]]
name = "api"
match = {{ path_prefix = "/api" }}
strip_prefix = true
upstreams = ["{a}"]
rate_limit = {{ key = "ip", limit = "100/s" }}
[edge.routes.auth]
api_keys = {{ "key-1" = "alice" }}
"#
        ),
    )
    .unwrap();
    let mut cmd = command(&dir.path().join("data"), &[]);
    cmd.arg("--config").arg(&config);
    let strata = start_command(cmd);
    let http = client();
    let resp = http.get(format!("{}/api/orders", strata.proxy)).header("x-api-key", "key-1").send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "a /orders");
    assert_eq!(http.get(format!("{}/api/orders", strata.proxy)).send().unwrap().status(), 401);

    let route = serde_json::json!({"match": {"path_prefix": "/shop"}, "upstreams": [b]});
    let resp = http.put(format!("{}/v1/edge/routes/shop", strata.base)).json(&route).send().unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        http.get(format!("{}/shop/cart", strata.proxy)).send().unwrap().text().unwrap(),
        "b /shop/cart"
    );
    let listed: serde_json::Value =
        http.get(format!("{}/v1/edge/routes", strata.base)).send().unwrap().json().unwrap();
    assert_eq!(listed["routes"].as_array().unwrap().len(), 2);
    let bad = http
        .put(format!("{}/v1/edge/routes/bad", strata.base))
        .json(&serde_json::json!({"upstreams": ["nope"]}))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(http.delete(format!("{}/v1/edge/routes/shop", strata.base)).send().unwrap().status(), 204);
    assert_eq!(http.get(format!("{}/shop/cart", strata.proxy)).send().unwrap().status(), 404);

    // Per-route and per-upstream metrics: requests by status class, latency.
    let metrics = http.get(format!("{}/metrics", strata.base)).send().unwrap().text().unwrap();
    let has = |series: &str| metrics.lines().any(|l| l.starts_with(series));
    for series in [
        r#"strata_proxy_requests_total{route="api",status="2xx"} 1"#,
        r#"strata_proxy_requests_total{route="api",status="4xx"} 1"#,
        r#"strata_proxy_requests_total{route="shop",status="2xx"} 1"#,
        r#"strata_proxy_request_seconds_count{route="api"} 2"#,
    ] {
        assert!(has(series), "no {series} in\n{metrics}");
    }
    for (upstream, answers) in [(&a, 1), (&b, 1)] {
        let series = format!(
            r#"strata_proxy_upstream_requests_total{{upstream="{upstream}",status="2xx"}} {answers}"#
        );
        assert!(has(&series), "no {series} in\n{metrics}");
    }

    // Admin changes outlive a kill -9: a new route stays, a config route deleted stays deleted.
    let route = serde_json::json!({"match": {"path_prefix": "/store"}, "upstreams": [b]});
    assert_eq!(
        http.put(format!("{}/v1/edge/routes/store", strata.base)).json(&route).send().unwrap().status(),
        201
    );
    assert_eq!(http.delete(format!("{}/v1/edge/routes/api", strata.base)).send().unwrap().status(), 204);
    drop(strata); // SIGKILL
    let mut cmd = command(&dir.path().join("data"), &[]);
    cmd.arg("--config").arg(&config);
    let strata = start_command(cmd);
    let listed: serde_json::Value =
        http.get(format!("{}/v1/edge/routes", strata.base)).send().unwrap().json().unwrap();
    let names: Vec<&str> =
        listed["routes"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["store"]);
    assert_eq!(http.get(format!("{}/store/x", strata.proxy)).send().unwrap().text().unwrap(), "b /store/x");
    assert_eq!(
        http.get(format!("{}/api/orders", strata.proxy))
            .header("x-api-key", "key-1")
            .send()
            .unwrap()
            .status(),
        404
    );
}
