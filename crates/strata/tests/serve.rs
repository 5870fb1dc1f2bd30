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
}

fn command(data_dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["serve", "--data-dir"])
        .arg(data_dir)
        .env("STRATA_HTTP_LISTEN", "127.0.0.1:0")
        .env("STRATA_PG_LISTEN", "127.0.0.1:0")
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
    let (mut http, mut pg) = (None, None);
    while http.is_none() || pg.is_none() {
        let line = lines.next().expect("strata exited before listening").unwrap();
        if let Some(addr) = line.strip_prefix("strata: http listening on ") {
            http = Some(addr.to_string());
        }
        if let Some(addr) = line.strip_prefix("strata: pg listening on ") {
            pg = addr.parse::<std::net::SocketAddr>().ok();
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let pg = pg.expect("pg address");
    Strata {
        child,
        base: format!("http://{}", http.expect("http address")),
        pg: format!("host={} port={} user=strata", pg.ip(), pg.port()),
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
