//! The pg front driven by tokio-postgres, an independently written client: both query
//! protocols, every supported type in text and binary, errors, transactions, conflicts.

use strata_core::Store;
use strata_pg::PgConfig;
use strata_sql::Sql;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

async fn start() -> String {
    let sql = Sql::open(Store::memory()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = PgConfig { user: "strata".into(), password: None, max_connections: 16 };
    tokio::spawn(strata_pg::serve(listener, sql, config, std::future::pending()));
    format!("host=127.0.0.1 port={port} user=strata dbname=strata")
}

async fn connect(conninfo: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn simple_query_protocol() {
    let client = connect(&start().await).await;
    client
        .batch_execute(
            "CREATE TABLE t (id INT PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'a'), (2, NULL);",
        )
        .await
        .unwrap();
    let messages = client.simple_query("SELECT id, name FROM t ORDER BY id").await.unwrap();
    let rows: Vec<(String, Option<String>)> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((r.get(0).unwrap().to_string(), r.get(1).map(str::to_string))),
            _ => None,
        })
        .collect();
    assert_eq!(rows, vec![("1".into(), Some("a".into())), ("2".into(), None)]);
    assert!(messages.iter().any(|m| matches!(m, SimpleQueryMessage::CommandComplete(2))));
}

/// The text values of a simple query's rows.
async fn simple_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = client.simple_query(sql).await.unwrap();
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn repeated_simple_queries_keep_the_meaning_of_their_numbers() {
    // The second and later texts of one shape run from the session's cached statement, with
    // their numbers as parameters; each must answer as its own literals say.
    let client = connect(&start().await).await;
    client
        .batch_execute(
            "CREATE TABLE t (id INT PRIMARY KEY, small SMALLINT, price NUMERIC(6,2));
             INSERT INTO t VALUES (1, 10, 1.50), (2, 20, 2.25), (3, 30, 3.00);",
        )
        .await
        .unwrap();
    for id in [1, 2, 3, 4, 2] {
        let rows = simple_rows(&client, &format!("SELECT small FROM t WHERE id = {id}")).await;
        let expected: Vec<Vec<Option<String>>> =
            if id <= 3 { vec![vec![Some((id * 10).to_string())]] } else { vec![] };
        assert_eq!(rows, expected, "id = {id}");
    }
    // A fraction compared with an integer column is a NUMERIC comparison, not a rounded key,
    // and a number beyond SMALLINT is no match rather than an out-of-range error.
    for (sql, count) in [
        ("SELECT id FROM t WHERE id = 1", 1),
        ("SELECT id FROM t WHERE id = 1.5", 0),
        ("SELECT id FROM t WHERE small = 20", 1),
        ("SELECT id FROM t WHERE small = 100000", 0),
        ("SELECT id FROM t WHERE small = 100000", 0),
    ] {
        assert_eq!(simple_rows(&client, sql).await.len(), count, "{sql}");
    }
    // Arithmetic keeps the literal's type: SMALLINT * INT is INT, so 30 * 2000 does not overflow.
    for _ in 0..2 {
        assert_eq!(
            simple_rows(&client, "SELECT small * 2000 FROM t WHERE id = 3").await,
            vec![vec![Some("60000".into())]]
        );
    }
    // An ordinal stays an ordinal; a repeated number stays one expression for GROUP BY.
    for _ in 0..2 {
        let rows = simple_rows(&client, "SELECT id, small FROM t ORDER BY 2 DESC LIMIT 1").await;
        assert_eq!(rows, vec![vec![Some("3".into()), Some("30".into())]]);
        let rows =
            simple_rows(&client, "SELECT small % 20, count(*) FROM t GROUP BY small % 20 ORDER BY 1").await;
        assert_eq!(rows.len(), 2);
    }
    for delta in [5, 7] {
        client.simple_query(&format!("UPDATE t SET small = small + {delta} WHERE id = 1")).await.unwrap();
    }
    assert_eq!(simple_rows(&client, "SELECT small FROM t WHERE id = 1").await, vec![vec![Some("22".into())]]);
    // DDL between runs of a shape is seen by the next run.
    client.batch_execute("ALTER TABLE t ADD COLUMN note TEXT").await.unwrap();
    let rows = simple_rows(&client, "SELECT * FROM t WHERE id = 2").await;
    assert_eq!(rows, vec![vec![Some("2".into()), Some("20".into()), Some("2.25".into()), None]]);
}

#[tokio::test]
async fn extended_protocol_round_trips_every_type() {
    let client = connect(&start().await).await;
    client
        .batch_execute(
            "CREATE TABLE every (
                id BIGINT PRIMARY KEY, b BOOLEAN, s SMALLINT, i INTEGER, r REAL, d DOUBLE PRECISION,
                n NUMERIC(10,2), t TEXT, v VARCHAR(10), by BYTEA, dt DATE, ts TIMESTAMP, tz TIMESTAMPTZ,
                u UUID, j JSONB)",
        )
        .await
        .unwrap();
    let date = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let ts = date.and_hms_micro_opt(12, 34, 56, 789).unwrap();
    let tz = ts.and_utc();
    let uuid = uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
    let json = serde_json::json!({"tags": ["x", "y"], "n": 1});
    let numeric = rust_decimal::Decimal::new(12345, 2);
    let insert = client
        .prepare(
            "INSERT INTO every VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .await
        .unwrap();
    let n = client
        .execute(
            &insert,
            &[
                &7i64,
                &true,
                &3i16,
                &-40i32,
                &1.5f32,
                &2.25f64,
                &numeric,
                &"text",
                &"short",
                &vec![0u8, 255],
                &date,
                &ts,
                &tz,
                &uuid,
                &json,
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let row = client.query_one("SELECT * FROM every WHERE id = $1", &[&7i64]).await.unwrap();
    assert!(row.get::<_, bool>("b"));
    assert_eq!(row.get::<_, i16>("s"), 3);
    assert_eq!(row.get::<_, i32>("i"), -40);
    assert_eq!(row.get::<_, f32>("r"), 1.5);
    assert_eq!(row.get::<_, f64>("d"), 2.25);
    assert_eq!(row.get::<_, rust_decimal::Decimal>("n"), numeric);
    assert_eq!(row.get::<_, String>("t"), "text");
    assert_eq!(row.get::<_, String>("v"), "short");
    assert_eq!(row.get::<_, Vec<u8>>("by"), vec![0, 255]);
    assert_eq!(row.get::<_, chrono::NaiveDate>("dt"), date);
    assert_eq!(row.get::<_, chrono::NaiveDateTime>("ts"), ts);
    assert_eq!(row.get::<_, chrono::DateTime<chrono::Utc>>("tz"), tz);
    assert_eq!(row.get::<_, uuid::Uuid>("u"), uuid);
    assert_eq!(row.get::<_, serde_json::Value>("j"), json);
    // JSON operators and NULL parameters.
    let tag: String = client.query_one("SELECT j->'tags'->>0 FROM every", &[]).await.unwrap().get(0);
    assert_eq!(tag, "x");
    let none: Option<i32> = client.query_one("SELECT $1::INT", &[&None::<i32>]).await.unwrap().get(0);
    assert_eq!(none, None);
    // A statement prepared once runs many times.
    let by_id = client.prepare("SELECT t FROM every WHERE id = $1").await.unwrap();
    for _ in 0..3 {
        assert_eq!(client.query(&by_id, &[&7i64]).await.unwrap().len(), 1);
    }
}

async fn sql_error(client: &Client, sql: &str) -> tokio_postgres::error::DbError {
    let err = client.simple_query(sql).await.unwrap_err();
    err.as_db_error().cloned().unwrap_or_else(|| panic!("not a database error: {err}"))
}

#[tokio::test]
async fn errors_carry_sqlstate_and_the_session_goes_on() {
    let client = connect(&start().await).await;
    client.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, name TEXT)").await.unwrap();
    let syntax = sql_error(&client, "SELECT * FORM t").await;
    assert_eq!(syntax.code(), &SqlState::SYNTAX_ERROR);
    assert!(syntax.position().is_some());
    assert_eq!(sql_error(&client, "SELECT * FROM missing").await.code(), &SqlState::UNDEFINED_TABLE);
    assert_eq!(sql_error(&client, "SELECT nope FROM t").await.code(), &SqlState::UNDEFINED_COLUMN);
    assert_eq!(sql_error(&client, "SELECT 1 WHERE 1").await.code(), &SqlState::DATATYPE_MISMATCH);
    assert_eq!(sql_error(&client, "SELECT 1 / 0").await.code(), &SqlState::DIVISION_BY_ZERO);
    client.batch_execute("INSERT INTO t VALUES (1, 'x')").await.unwrap();
    assert_eq!(sql_error(&client, "INSERT INTO t VALUES (1, 'y')").await.code(), &SqlState::UNIQUE_VIOLATION);
    // An oversize query is an error, not an allocation, and the connection survives.
    let huge = format!("SELECT '{}'", "x".repeat(2 * 1024 * 1024));
    assert!(client.simple_query(&huge).await.is_err());
    let count: i64 = client.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn transactions_commit_roll_back_and_abort() {
    let client = connect(&start().await).await;
    client.batch_execute("CREATE TABLE t (id INT PRIMARY KEY)").await.unwrap();
    client.batch_execute("BEGIN; INSERT INTO t VALUES (1); ROLLBACK;").await.unwrap();
    client.batch_execute("BEGIN; INSERT INTO t VALUES (2); COMMIT;").await.unwrap();
    let ids: Vec<i32> =
        client.query("SELECT id FROM t", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![2]);
    // After an error in a transaction block, commands fail until ROLLBACK.
    client.batch_execute("BEGIN").await.unwrap();
    assert!(client.batch_execute("INSERT INTO t VALUES (2)").await.is_err());
    let aborted = sql_error(&client, "SELECT 1").await;
    assert_eq!(aborted.code(), &SqlState::IN_FAILED_SQL_TRANSACTION);
    client.batch_execute("ROLLBACK").await.unwrap();
    client.batch_execute("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn concurrent_updates_of_one_row_serialize_or_fail_with_40001() {
    let conninfo = start().await;
    let (a, b) = (connect(&conninfo).await, connect(&conninfo).await);
    a.batch_execute("CREATE TABLE acct (id INT PRIMARY KEY, balance INT); INSERT INTO acct VALUES (1, 100)")
        .await
        .unwrap();
    a.batch_execute("BEGIN; UPDATE acct SET balance = balance - 30 WHERE id = 1").await.unwrap();
    b.batch_execute("BEGIN; UPDATE acct SET balance = balance - 50 WHERE id = 1").await.unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    let err = b.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    // The result equals a serial order: only the first update applied.
    let balance: i32 = b.query_one("SELECT balance FROM acct WHERE id = 1", &[]).await.unwrap().get(0);
    assert_eq!(balance, 70);
}

#[tokio::test]
async fn read_committed_writers_of_one_row_wait_and_both_apply() {
    let conninfo = start().await;
    let (a, b) = (connect(&conninfo).await, connect(&conninfo).await);
    a.batch_execute("CREATE TABLE acct (id INT PRIMARY KEY, balance INT); INSERT INTO acct VALUES (1, 100)")
        .await
        .unwrap();
    a.batch_execute(
        "BEGIN ISOLATION LEVEL READ COMMITTED; UPDATE acct SET balance = balance - 30 WHERE id = 1",
    )
    .await
    .unwrap();
    b.batch_execute("SET default_transaction_isolation = 'read committed'").await.unwrap();
    let level: String = b.query_one("SHOW transaction isolation level", &[]).await.unwrap().get(0);
    assert_eq!(level, "read committed");
    b.batch_execute("BEGIN").await.unwrap();
    // b's update waits for a's row lock, then applies to a's committed result.
    let b_update = tokio::spawn(async move {
        b.batch_execute("UPDATE acct SET balance = balance - 50 WHERE id = 1").await.unwrap();
        b.batch_execute("COMMIT").await.unwrap();
        b
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!b_update.is_finished(), "the second writer waits for the first");
    a.batch_execute("COMMIT").await.unwrap();
    let b = b_update.await.unwrap();
    let balance: i32 = b.query_one("SELECT balance FROM acct WHERE id = 1", &[]).await.unwrap().get(0);
    assert_eq!(balance, 20);
}

#[tokio::test]
async fn shutdown_closes_open_connections_and_serve_returns() {
    let sql = Sql::open(Store::memory()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = PgConfig { user: "strata".into(), password: None, max_connections: 16 };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(strata_pg::serve(listener, sql, config, async move {
        let _ = stopped.await;
    }));
    let client = connect(&format!("host=127.0.0.1 port={port} user=strata dbname=strata")).await;
    client.batch_execute("CREATE TABLE t (id INT PRIMARY KEY)").await.unwrap();
    stop.send(()).unwrap();
    // serve returns only once the open connection has ended.
    server.await.unwrap().unwrap();
    assert!(client.batch_execute("SELECT 1").await.is_err());
}

/// Runs `sql` on `client`, checks that it is still running after `delay`, cancels it, and
/// checks that it then fails with 57014 (within ten seconds). Hands the client back.
async fn cancel_while_running(client: Client, sql: &'static str, delay_ms: u64) -> Client {
    let token = client.cancel_token();
    let running = tokio::spawn(async move {
        let result = client.simple_query(sql).await;
        (client, result)
    });
    tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
    assert!(!running.is_finished(), "{sql} runs until cancelled");
    token.cancel_query(NoTls).await.unwrap();
    let (client, result) = tokio::time::timeout(std::time::Duration::from_secs(10), running)
        .await
        .unwrap_or_else(|_| panic!("the cancel did not stop {sql}"))
        .unwrap();
    assert_eq!(result.unwrap_err().code(), Some(&SqlState::QUERY_CANCELED), "{sql}");
    client
}

#[tokio::test]
async fn a_cancel_request_stops_the_running_statement_and_the_session_goes_on() {
    let conninfo = start().await;
    let (client, other) = (connect(&conninfo).await, connect(&conninfo).await);
    // A cancel for another connection's key is ignored.
    other.cancel_token().cancel_query(NoTls).await.unwrap();
    let client = cancel_while_running(client, "SELECT pg_sleep(60)", 200).await;
    // A cancel that arrives between statements cancels nothing.
    client.cancel_token().cancel_query(NoTls).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    // A long join is cancelled too (nine million row pairs: seconds of work), and the
    // session carries on.
    client.batch_execute("CREATE TABLE big (id INT PRIMARY KEY)").await.unwrap();
    let values: Vec<String> = (0..3000).map(|i| format!("({i})")).collect();
    client.batch_execute(&format!("INSERT INTO big VALUES {}", values.join(","))).await.unwrap();
    let client =
        cancel_while_running(client, "SELECT count(*) FROM big a, big b WHERE a.id + b.id < 0", 100).await;
    let count: i64 = client.query_one("SELECT count(*) FROM big", &[]).await.unwrap().get(0);
    assert_eq!(count, 3000);
    // A READ COMMITTED writer waiting for a row lock is cancelled too; its transaction is
    // then aborted, as in PostgreSQL.
    other
        .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED; UPDATE big SET id = -1 WHERE id = 7")
        .await
        .unwrap();
    client.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED").await.unwrap();
    let client = cancel_while_running(client, "UPDATE big SET id = -2 WHERE id = 7", 200).await;
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    client.batch_execute("ROLLBACK").await.unwrap();
    other.batch_execute("COMMIT").await.unwrap();
    let moved: i64 = client.query_one("SELECT count(*) FROM big WHERE id = -1", &[]).await.unwrap().get(0);
    assert_eq!(moved, 1);
}
