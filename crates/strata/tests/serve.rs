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
}

fn command(data_dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["serve", "--data-dir"])
        .arg(data_dir)
        .env("STRATA_HTTP_LISTEN", "127.0.0.1:0")
        .env("STRATA_PG_LISTEN", "127.0.0.1:0")
        .env("STRATA_RESP_LISTEN", "127.0.0.1:0")
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
    let mut child = command(data_dir, env).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut http, mut pg, mut resp) = (None, None, None);
    while http.is_none() || pg.is_none() || resp.is_none() {
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
    }
    std::thread::spawn(move || lines.for_each(drop));
    let pg = pg.expect("pg address");
    Strata {
        child,
        base: format!("http://{}", http.expect("http address")),
        pg: format!("host={} port={} user=strata", pg.ip(), pg.port()),
        redis: resp.expect("resp address"),
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
    let via_function: String = redis::cmd("FCALL").arg("get2").arg(1).arg("w0:0").query(&mut con).unwrap();
    assert_eq!(via_function, "0", "FUNCTION libraries survive a restart");
}
