//! The `redis` crate (an independent client) against the resp front on port 0: every command
//! family, pipelining, RESP3, MULTI/WATCH, pub/sub, blocking pops and bad input.

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Value, cmd, pipe};
use std::sync::Arc;
use std::time::Duration;
use strata_cache::{Cache, CacheOptions};
use strata_core::SystemClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start_with(options: CacheOptions) -> String {
    // Every connection on one I/O thread: a long script must not stall the others there
    // (SCRIPT KILL below).
    start_on_threads(options, 1).await
}

async fn start_on_threads(options: CacheOptions, io_threads: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cache = Cache::new(options, Arc::new(SystemClock));
    let mut config = strata_resp::RespConfig::default();
    config.limits.max_bulk = 1024 * 1024;
    config.io_threads = io_threads;
    tokio::spawn(strata_resp::serve(listener, cache, None, config, std::future::pending()));
    addr
}

async fn start() -> (String, MultiplexedConnection) {
    let addr = start_with(CacheOptions::default()).await;
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let con = client.get_multiplexed_async_connection().await.unwrap();
    (addr, con)
}

#[tokio::test]
async fn strings_and_keys() {
    let (_, mut c) = start().await;
    let _: () = c.set("s", "hello").await.unwrap();
    assert_eq!(c.get::<_, String>("s").await.unwrap(), "hello");
    assert_eq!(c.append::<_, _, i64>("s", " world").await.unwrap(), 11);
    assert_eq!(c.getrange::<_, String>("s", 0, 4).await.unwrap(), "hello");
    assert_eq!(c.strlen::<_, i64>("s").await.unwrap(), 11);
    assert_eq!(c.setrange::<_, _, i64>("s", 6, "WORLD").await.unwrap(), 11);
    assert_eq!(c.get::<_, String>("s").await.unwrap(), "hello WORLD");
    assert_eq!(c.incr::<_, _, i64>("n", 5).await.unwrap(), 5);
    assert_eq!(c.decr::<_, _, i64>("n", 2).await.unwrap(), 3);
    assert_eq!(cmd("INCRBYFLOAT").arg("f").arg("1.5").query_async::<String>(&mut c).await.unwrap(), "1.5");
    let err = c.incr::<_, _, i64>("s", 1).await.unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");
    // SET options
    let set_nx: Option<String> = cmd("SET").arg("s").arg("x").arg("NX").query_async(&mut c).await.unwrap();
    assert_eq!(set_nx, None);
    let old: String = cmd("SET").arg("s").arg("x").arg("GET").query_async(&mut c).await.unwrap();
    assert_eq!(old, "hello WORLD");
    let _: () = cmd("SET").arg("t").arg("v").arg("EX").arg(100).query_async(&mut c).await.unwrap();
    let ttl: i64 = c.ttl("t").await.unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");
    let _: () = cmd("SET").arg("t").arg("w").arg("KEEPTTL").query_async(&mut c).await.unwrap();
    assert!(c.pttl::<_, i64>("t").await.unwrap() > 0);
    assert_eq!(c.persist::<_, i64>("t").await.unwrap(), 1);
    assert_eq!(c.ttl::<_, i64>("t").await.unwrap(), -1);
    assert_eq!(c.ttl::<_, i64>("missing").await.unwrap(), -2);
    let _: () = c.mset(&[("a", "1"), ("b", "2")]).await.unwrap();
    let got: Vec<Option<String>> = c.mget(&["a", "b", "zz"]).await.unwrap();
    assert_eq!(got, vec![Some("1".into()), Some("2".into()), None]);
    assert_eq!(
        cmd("MSETNX").arg("a").arg("9").arg("c").arg("3").query_async::<i64>(&mut c).await.unwrap(),
        0
    );
    assert_eq!(cmd("GETDEL").arg("a").query_async::<String>(&mut c).await.unwrap(), "1");
    assert_eq!(c.exists::<_, i64>("a").await.unwrap(), 0);
    let _: String = cmd("GETEX").arg("b").arg("PX").arg(50_000).query_async(&mut c).await.unwrap();
    assert!(c.pttl::<_, i64>("b").await.unwrap() > 40_000);
    // keys
    assert_eq!(c.key_type::<_, String>("b").await.unwrap(), "string");
    let _: () = c.rename("b", "b2").await.unwrap();
    assert!(c.pttl::<_, i64>("b2").await.unwrap() > 40_000, "TTL moves with RENAME");
    assert_eq!(c.rename_nx::<_, _, i64>("b2", "s").await.unwrap(), 0);
    let mut keys: Vec<String> = c.keys("*").await.unwrap();
    keys.sort();
    assert_eq!(keys, vec!["b2", "f", "n", "s", "t"]);
    assert_eq!(cmd("DBSIZE").query_async::<i64>(&mut c).await.unwrap(), 5);
    assert_eq!(cmd("COPY").arg("s").arg("s2").arg("DB").arg(3).query_async::<i64>(&mut c).await.unwrap(), 1);
    assert_eq!(cmd("OBJECT").arg("ENCODING").arg("n").query_async::<String>(&mut c).await.unwrap(), "int");
    // The subcommand is checked before the key, as redis-server does.
    let err = cmd("OBJECT").arg("FOO").arg("missing").query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("unknown subcommand 'FOO'"), "{err}");
    let err = cmd("OBJECT").arg("ENCODING").query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("'object|encoding'"), "{err}");
    assert_eq!(c.del::<_, i64>(&["s", "n", "nope"]).await.unwrap(), 2);
    assert_eq!(cmd("PEXPIRE").arg("f").arg(30).query_async::<i64>(&mut c).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(c.get::<_, Option<String>>("f").await.unwrap(), None, "expired keys are never served");
    // SELECT and FLUSHDB
    let _: () = cmd("SELECT").arg(3).query_async(&mut c).await.unwrap();
    assert_eq!(c.get::<_, String>("s2").await.unwrap(), "x");
    let _: () = cmd("FLUSHDB").query_async(&mut c).await.unwrap();
    assert_eq!(cmd("DBSIZE").query_async::<i64>(&mut c).await.unwrap(), 0);
    let err = cmd("SELECT").arg(16).query_async::<()>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_on_two_io_threads_share_one_keyspace() {
    let addr = start_on_threads(CacheOptions::default(), 2).await;
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut tasks = Vec::new();
    for i in 0..4 {
        // Separate connections, so they spread over both threads.
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        tasks.push(tokio::spawn(async move {
            for round in 0..50 {
                let mut p = pipe();
                for _ in 0..10 {
                    p.incr("counter", 1).ignore().rpush("items", format!("{i}:{round}")).ignore();
                }
                let () = p.query_async(&mut c).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    assert_eq!(c.get::<_, i64>("counter").await.unwrap(), 2000);
    assert_eq!(c.llen::<_, i64>("items").await.unwrap(), 2000);
    // Each connection's own pushes stay in its order.
    let items: Vec<String> = c.lrange("items", 0, -1).await.unwrap();
    for i in 0..4 {
        let rounds: Vec<usize> = items
            .iter()
            .filter_map(|item| item.strip_prefix(&format!("{i}:")))
            .map(|round| round.parse().unwrap())
            .collect();
        assert_eq!(rounds.len(), 500);
        assert!(rounds.windows(2).all(|w| w[0] <= w[1]), "connection {i} out of order");
    }
}

/// LCS, with Redis's documented example and redis-server 7.0's answers.
#[tokio::test]
async fn longest_common_subsequence() {
    let (_, mut c) = start().await;
    let _: () = c.mset(&[("key1", "ohmytext"), ("key2", "mynewtext")]).await.unwrap();
    let lcs = |args: &[&str]| cmd("LCS").arg("key1").arg("key2").arg(args).clone();
    assert_eq!(lcs(&[]).query_async::<String>(&mut c).await.unwrap(), "mytext");
    assert_eq!(lcs(&["LEN"]).query_async::<i64>(&mut c).await.unwrap(), 6);
    let span = |s: i64, e: i64| Value::Array(vec![Value::Int(s), Value::Int(e)]);
    let indexed: Value = lcs(&["IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"]).query_async(&mut c).await.unwrap();
    assert_eq!(
        indexed,
        Value::Array(vec![
            Value::BulkString(b"matches".to_vec()),
            Value::Array(vec![Value::Array(vec![span(4, 7), span(5, 8), Value::Int(4)])]),
            Value::BulkString(b"len".to_vec()),
            Value::Int(6),
        ])
    );
    // Every match, last first.
    let all: Value = lcs(&["IDX"]).query_async(&mut c).await.unwrap();
    let Value::Array(items) = all else { panic!("{all:?}") };
    assert_eq!(
        items[1],
        Value::Array(vec![
            Value::Array(vec![span(4, 7), span(5, 8)]),
            Value::Array(vec![span(2, 3), span(0, 1)]),
        ])
    );
    let err = lcs(&["LEN", "IDX"]).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("please just use IDX"), "{err}");
    let _: () = c.rpush("list", "x").await.unwrap();
    let err = cmd("LCS").arg("key1").arg("list").query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("must contain string values"), "{err}");
    assert_eq!(cmd("LCS").arg("key1").arg("nothing").query_async::<String>(&mut c).await.unwrap(), "");
    // The table for two 20 KB strings would be 1.6 GB: refused, and the server goes on.
    let _: () = c.mset(&[("big1", "a".repeat(20_000)), ("big2", "a".repeat(20_000))]).await.unwrap();
    let err = cmd("LCS").arg("big1").arg("big2").arg("LEN").query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("Insufficient memory"), "{err}");
    assert_eq!(cmd("PING").query_async::<String>(&mut c).await.unwrap(), "PONG");
}

/// MOVE takes a key, with its TTL, to another database where its name is free.
#[tokio::test]
async fn move_takes_a_key_to_another_database() {
    let (_, mut c) = start().await;
    let _: () = cmd("SET").arg("k").arg("v").arg("EX").arg(100).query_async(&mut c).await.unwrap();
    assert_eq!(cmd("MOVE").arg("k").arg(1).query_async::<i64>(&mut c).await.unwrap(), 1);
    assert!(!c.exists::<_, bool>("k").await.unwrap());
    assert_eq!(cmd("MOVE").arg("k").arg(1).query_async::<i64>(&mut c).await.unwrap(), 0, "no key left here");
    let (value, ttl): (String, i64) = pipe()
        .cmd("SELECT")
        .arg(1)
        .ignore()
        .get("k")
        .ttl("k")
        .cmd("SELECT")
        .arg(0)
        .ignore()
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(value, "v");
    assert!((99..=100).contains(&ttl), "{ttl}");
    // A name taken in the target database stays where it is.
    let _: () = c.set("k", "here").await.unwrap();
    assert_eq!(cmd("MOVE").arg("k").arg(1).query_async::<i64>(&mut c).await.unwrap(), 0);
    assert_eq!(c.get::<_, String>("k").await.unwrap(), "here");
    for (db, wanted) in
        [("0", "source and destination objects are the same"), ("16", "DB index is out of range")]
    {
        let err = cmd("MOVE").arg("k").arg(db).query_async::<Value>(&mut c).await.unwrap_err();
        assert!(err.to_string().contains(wanted), "MOVE k {db}: {err}");
    }
}

#[tokio::test]
async fn scan_visits_every_key() {
    let (_, mut c) = start().await;
    for i in 0..500 {
        let _: () = c.set(format!("user:{i}"), i).await.unwrap();
    }
    let _: () = c.set("other", 1).await.unwrap();
    let _: () = c.sadd("aset", "m").await.unwrap();
    let mut cursor = 0u64;
    let mut seen = std::collections::HashSet::new();
    loop {
        let (next, batch): (u64, Vec<String>) = cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("user:*")
            .arg("COUNT")
            .arg(37)
            .query_async(&mut c)
            .await
            .unwrap();
        // Deleting keys during the scan must not hide the ones that stay.
        if cursor == 0 {
            for i in 0..50 {
                let _: () = c.del(format!("user:{i}")).await.unwrap();
            }
        }
        seen.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    for i in 50..500 {
        assert!(seen.contains(&format!("user:{i}")), "user:{i} missed");
    }
    assert!(!seen.contains("other"));
    let (_, typed): (u64, Vec<String>) =
        cmd("SCAN").arg(0).arg("TYPE").arg("set").arg("COUNT").arg(1000).query_async(&mut c).await.unwrap();
    assert_eq!(typed, vec!["aset"]);
}

#[tokio::test]
async fn hashes() {
    let (_, mut c) = start().await;
    let _: () = c.hset_multiple("h", &[("a", "1"), ("b", "2")]).await.unwrap();
    assert_eq!(c.hset::<_, _, _, i64>("h", "c", "3").await.unwrap(), 1);
    assert_eq!(c.hset_nx::<_, _, _, i64>("h", "c", "9").await.unwrap(), 0);
    assert_eq!(c.hget::<_, _, String>("h", "c").await.unwrap(), "3");
    let many: Vec<Option<String>> =
        cmd("HMGET").arg("h").arg("a").arg("x").query_async(&mut c).await.unwrap();
    assert_eq!(many, vec![Some("1".into()), None]);
    assert_eq!(c.hincr::<_, _, _, i64>("h", "a", 10).await.unwrap(), 11);
    let f: String = cmd("HINCRBYFLOAT").arg("h").arg("b").arg("0.5").query_async(&mut c).await.unwrap();
    assert_eq!(f, "2.5");
    assert!(c.hexists::<_, _, bool>("h", "a").await.unwrap());
    assert_eq!(c.hlen::<_, i64>("h").await.unwrap(), 3);
    let all: std::collections::HashMap<String, String> = c.hgetall("h").await.unwrap();
    assert_eq!(all.get("a").map(String::as_str), Some("11"));
    let mut keys: Vec<String> = c.hkeys("h").await.unwrap();
    keys.sort();
    assert_eq!(keys, vec!["a", "b", "c"]);
    assert_eq!(c.hvals::<_, Vec<String>>("h").await.unwrap().len(), 3);
    assert_eq!(cmd("HSTRLEN").arg("h").arg("a").query_async::<i64>(&mut c).await.unwrap(), 2);
    let picks: Vec<String> = cmd("HRANDFIELD").arg("h").arg(2).query_async(&mut c).await.unwrap();
    assert_eq!(picks.len(), 2);
    let (cursor, items): (u64, Vec<String>) =
        cmd("HSCAN").arg("h").arg(0).arg("COUNT").arg(100).query_async(&mut c).await.unwrap();
    assert_eq!((cursor, items.len()), (0, 6));
    assert_eq!(c.hdel::<_, _, i64>("h", &["a", "b", "c"]).await.unwrap(), 3);
    assert_eq!(c.exists::<_, i64>("h").await.unwrap(), 0, "an emptied hash is deleted");
    let _: () = c.set("str", "x").await.unwrap();
    let err = c.hget::<_, _, String>("str", "a").await.unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
}

#[tokio::test]
async fn lists_and_blocking_pops() {
    let (addr, mut c) = start().await;
    assert_eq!(c.rpush::<_, _, i64>("l", &["a", "b", "c"]).await.unwrap(), 3);
    assert_eq!(c.lpush::<_, _, i64>("l", "z").await.unwrap(), 4);
    assert_eq!(c.lrange::<_, Vec<String>>("l", 0, -1).await.unwrap(), vec!["z", "a", "b", "c"]);
    assert_eq!(c.lindex::<_, String>("l", -1).await.unwrap(), "c");
    let _: () = c.lset("l", 1, "A").await.unwrap();
    assert_eq!(c.linsert_after::<_, _, _, i64>("l", "A", "x").await.unwrap(), 5);
    assert_eq!(c.lrem::<_, _, i64>("l", 0, "x").await.unwrap(), 1);
    assert_eq!(cmd("LPOS").arg("l").arg("b").query_async::<i64>(&mut c).await.unwrap(), 2);
    let _: () = c.ltrim("l", 1, 2).await.unwrap();
    assert_eq!(c.lrange::<_, Vec<String>>("l", 0, -1).await.unwrap(), vec!["A", "b"]);
    let popped: Vec<String> = cmd("RPOP").arg("l").arg(5).query_async(&mut c).await.unwrap();
    assert_eq!(popped, vec!["b", "A"]);
    assert_eq!(c.exists::<_, i64>("l").await.unwrap(), 0);
    assert_eq!(c.lpush_exists::<_, _, i64>("l", "v").await.unwrap(), 0);
    let _: () = c.rpush("src", &["1", "2"]).await.unwrap();
    let moved: String =
        cmd("LMOVE").arg("src").arg("dst").arg("LEFT").arg("RIGHT").query_async(&mut c).await.unwrap();
    assert_eq!(moved, "1");
    assert_eq!(c.llen::<_, i64>("dst").await.unwrap(), 1);

    // BLPOP waits for a push from another connection.
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut blocked = client.get_multiplexed_async_connection().await.unwrap();
    let waiter = tokio::spawn(async move {
        cmd("BLPOP")
            .arg("jobs")
            .arg("other")
            .arg(5)
            .query_async::<(String, String)>(&mut blocked)
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: () = c.rpush("jobs", "job-1").await.unwrap();
    assert_eq!(waiter.await.unwrap(), ("jobs".to_string(), "job-1".to_string()));
    // A timeout gives a nil.
    let none: Option<(String, String)> =
        cmd("BRPOP").arg("empty").arg("0.05").query_async(&mut c).await.unwrap();
    assert_eq!(none, None);
    let mut blocked = client.get_multiplexed_async_connection().await.unwrap();
    let waiter = tokio::spawn(async move {
        cmd("BLMOVE")
            .arg("q")
            .arg("q2")
            .arg("RIGHT")
            .arg("LEFT")
            .arg(5)
            .query_async::<String>(&mut blocked)
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _: () = c.rpush("q", "m").await.unwrap();
    assert_eq!(waiter.await.unwrap(), "m");
    assert_eq!(c.lrange::<_, Vec<String>>("q2", 0, -1).await.unwrap(), vec!["m"]);
}

/// Redis 6.2 and 7's additions to lists: LMPOP, BLMPOP and the older BRPOPLPUSH.
#[tokio::test]
async fn multi_key_pops_and_their_blocking_forms() {
    let (addr, mut c) = start().await;
    let _: () = c.rpush("l1", &["a", "b", "c", "d"]).await.unwrap();
    // The first non-empty list, from the chosen end, up to COUNT elements.
    let popped: (String, Vec<String>) = cmd("LMPOP")
        .arg(2)
        .arg("none")
        .arg("l1")
        .arg("LEFT")
        .arg("COUNT")
        .arg(3)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(popped, ("l1".to_string(), vec!["a".to_string(), "b".to_string(), "c".to_string()]));
    let popped: (String, Vec<String>) =
        cmd("LMPOP").arg(1).arg("l1").arg("RIGHT").query_async(&mut c).await.unwrap();
    assert_eq!(popped.1, vec!["d"]);
    assert!(!c.exists::<_, bool>("l1").await.unwrap(), "an emptied list is gone");
    let none: Option<(String, Vec<String>)> =
        cmd("LMPOP").arg(1).arg("l1").arg("LEFT").query_async(&mut c).await.unwrap();
    assert_eq!(none, None);
    for (args, wanted) in [
        (vec!["0", "l1", "LEFT"], "numkeys should be greater than 0"),
        (vec!["3", "l1", "LEFT"], "syntax error"),
        (vec!["1", "l1", "UP"], "syntax error"),
        (vec!["1", "l1", "LEFT", "COUNT", "0"], "count should be greater than 0"),
    ] {
        let err = cmd("LMPOP").arg(&args).query_async::<Value>(&mut c).await.unwrap_err();
        assert!(err.to_string().contains(wanted), "LMPOP {args:?}: {err}");
    }
    let _: () = c.set("str", "x").await.unwrap();
    let err = cmd("LMPOP").arg(1).arg("str").arg("LEFT").query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");

    // BLMPOP (timeout first) and BRPOPLPUSH wait for a push from another connection.
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut blocked = client.get_multiplexed_async_connection().await.unwrap();
    let waiter = tokio::spawn(async move {
        cmd("BLMPOP")
            .arg(5)
            .arg(2)
            .arg("a")
            .arg("b")
            .arg("RIGHT")
            .arg("COUNT")
            .arg(2)
            .query_async::<(String, Vec<String>)>(&mut blocked)
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: () = c.rpush("b", &["x", "y", "z"]).await.unwrap();
    assert_eq!(waiter.await.unwrap(), ("b".to_string(), vec!["z".to_string(), "y".to_string()]));
    let mut blocked = client.get_multiplexed_async_connection().await.unwrap();
    let waiter = tokio::spawn(async move {
        cmd("BRPOPLPUSH").arg("src").arg("dst").arg(5).query_async::<String>(&mut blocked).await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: () = c.rpush("src", &["1", "2"]).await.unwrap();
    assert_eq!(waiter.await.unwrap(), "2");
    assert_eq!(c.lrange::<_, Vec<String>>("dst", 0, -1).await.unwrap(), vec!["2"]);
    // Timeouts answer nil; a bad timeout is an error.
    let none: Option<(String, Vec<String>)> =
        cmd("BLMPOP").arg("0.05").arg(1).arg("nothing").arg("LEFT").query_async(&mut c).await.unwrap();
    assert_eq!(none, None);
    let none: Option<String> =
        cmd("BRPOPLPUSH").arg("nothing").arg("dst").arg("0.05").query_async(&mut c).await.unwrap();
    assert_eq!(none, None);
    let err =
        cmd("BLMPOP").arg(-1).arg(1).arg("b").arg("LEFT").query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("timeout is negative"), "{err}");
    // Inside MULTI a blocking pop does not wait.
    let (popped,): (Option<(String, Vec<String>)>,) = pipe()
        .atomic()
        .cmd("BLMPOP")
        .arg(0)
        .arg(1)
        .arg("nothing")
        .arg("LEFT")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(popped, None);
}

#[tokio::test]
async fn sets() {
    let (_, mut c) = start().await;
    assert_eq!(c.sadd::<_, _, i64>("s1", &["a", "b", "c"]).await.unwrap(), 3);
    assert_eq!(c.sadd::<_, _, i64>("s2", &["b", "c", "d"]).await.unwrap(), 3);
    assert!(c.sismember::<_, _, bool>("s1", "a").await.unwrap());
    let mis: Vec<i64> = cmd("SMISMEMBER").arg("s1").arg("a").arg("z").query_async(&mut c).await.unwrap();
    assert_eq!(mis, vec![1, 0]);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(c.sinter(&["s1", "s2"]).await.unwrap()), vec!["b", "c"]);
    assert_eq!(sorted(c.sunion(&["s1", "s2"]).await.unwrap()), vec!["a", "b", "c", "d"]);
    assert_eq!(sorted(c.sdiff(&["s1", "s2"]).await.unwrap()), vec!["a"]);
    assert_eq!(c.sinterstore::<_, _, i64>("s3", &["s1", "s2"]).await.unwrap(), 2);
    assert_eq!(c.sunionstore::<_, _, i64>("s4", &["s1", "s2"]).await.unwrap(), 4);
    assert_eq!(c.sdiffstore::<_, _, i64>("s5", &["s1", "s2"]).await.unwrap(), 1);
    assert_eq!(
        cmd("SINTERCARD")
            .arg(2)
            .arg("s1")
            .arg("s2")
            .arg("LIMIT")
            .arg(1)
            .query_async::<i64>(&mut c)
            .await
            .unwrap(),
        1
    );
    assert_eq!(c.scard::<_, i64>("s4").await.unwrap(), 4);
    assert!(c.smove::<_, _, _, bool>("s1", "s5", "b").await.unwrap());
    assert_eq!(sorted(c.smembers("s5").await.unwrap()), vec!["a", "b"]);
    let rand: Vec<String> = c.srandmember_multiple("s4", 10).await.unwrap();
    assert_eq!(rand.len(), 4);
    let rand: Vec<String> = cmd("SRANDMEMBER").arg("s4").arg(-10).query_async(&mut c).await.unwrap();
    assert_eq!(rand.len(), 10);
    let popped: Vec<String> = cmd("SPOP").arg("s4").arg(3).query_async(&mut c).await.unwrap();
    assert_eq!(popped.len(), 3);
    assert_eq!(c.scard::<_, i64>("s4").await.unwrap(), 1);
    assert_eq!(c.srem::<_, _, i64>("s2", &["b", "x"]).await.unwrap(), 1);
    let (cursor, members): (u64, Vec<String>) =
        cmd("SSCAN").arg("s2").arg(0).arg("MATCH").arg("c").query_async(&mut c).await.unwrap();
    assert_eq!((cursor, members), (0, vec!["c".to_string()]));
}

/// An entry as XRANGE and XREAD give it: its ID and its fields and values.
type Entries = Vec<(String, Vec<String>)>;

fn fv(pairs: &[&str]) -> Vec<String> {
    pairs.iter().map(|s| s.to_string()).collect()
}

/// Streams: IDs, ranges, deletes and trims, consumer groups with their pending entries and
/// claims, and XREAD/XREADGROUP blocking until another connection adds an entry.
#[tokio::test]
async fn streams_and_consumer_groups() {
    let (addr, mut c) = start().await;
    for (id, v) in [("1-1", "a"), ("1-2", "b"), ("2-0", "c")] {
        let got: String = cmd("XADD").arg("s").arg(id).arg("f").arg(v).query_async(&mut c).await.unwrap();
        assert_eq!(got, id);
    }
    let err =
        cmd("XADD").arg("s").arg("2-0").arg("f").arg("v").query_async::<String>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("equal or smaller than the target stream top item"), "{err}");
    let same_ms: String =
        cmd("XADD").arg("s").arg("2-*").arg("f").arg("d").query_async(&mut c).await.unwrap();
    assert_eq!(same_ms, "2-1");
    let auto: String = cmd("XADD").arg("s").arg("*").arg("f").arg("e").query_async(&mut c).await.unwrap();
    let ms: u64 = auto.split_once('-').unwrap().0.parse().unwrap();
    assert!(ms > 1_600_000_000_000, "'*' takes the clock's milliseconds: {auto}");
    assert_eq!(cmd("XLEN").arg("s").query_async::<i64>(&mut c).await.unwrap(), 5);
    assert_eq!(cmd("TYPE").arg("s").query_async::<String>(&mut c).await.unwrap(), "stream");
    let range: Entries = cmd("XRANGE").arg("s").arg("(1-1").arg("2").query_async(&mut c).await.unwrap();
    assert_eq!(
        range,
        vec![
            ("1-2".into(), fv(&["f", "b"])),
            ("2-0".into(), fv(&["f", "c"])),
            ("2-1".into(), fv(&["f", "d"]))
        ]
    );
    let last: Entries =
        cmd("XREVRANGE").arg("s").arg("+").arg("-").arg("COUNT").arg(1).query_async(&mut c).await.unwrap();
    assert_eq!(last, vec![(auto.clone(), fv(&["f", "e"]))]);
    assert_eq!(cmd("XDEL").arg("s").arg("1-2").arg("9-9").query_async::<i64>(&mut c).await.unwrap(), 1);
    assert_eq!(cmd("XTRIM").arg("s").arg("MAXLEN").arg(2).query_async::<i64>(&mut c).await.unwrap(), 2);
    let left: Entries = cmd("XRANGE").arg("s").arg("-").arg("+").query_async(&mut c).await.unwrap();
    assert_eq!(left.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), vec!["2-1", auto.as_str()]);
    // `~` trims whole nodes of 100 entries only, never below the threshold.
    let mut p = pipe();
    for i in 1..=250 {
        p.cmd("XADD").arg("big").arg(format!("{i}-0")).arg("n").arg(i).ignore();
    }
    let _: () = p.query_async(&mut c).await.unwrap();
    let trimmed: i64 =
        cmd("XTRIM").arg("big").arg("MAXLEN").arg("~").arg(120).query_async(&mut c).await.unwrap();
    assert_eq!(trimmed, 100);
    let trimmed: i64 = cmd("XTRIM").arg("big").arg("MINID").arg("200").query_async(&mut c).await.unwrap();
    assert_eq!((trimmed, cmd("XLEN").arg("big").query_async::<i64>(&mut c).await.unwrap()), (99, 51));

    // A consumer group: entries go to one consumer each and stay pending until acknowledged.
    let ok: String = cmd("XGROUP")
        .arg("CREATE")
        .arg("jobs")
        .arg("workers")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    let busy = cmd("XGROUP")
        .arg("CREATE")
        .arg("jobs")
        .arg("workers")
        .arg("0")
        .query_async::<String>(&mut c)
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Some("BUSYGROUP"));
    for (id, task) in [("1-0", "one"), ("2-0", "two"), ("3-0", "three")] {
        let _: String =
            cmd("XADD").arg("jobs").arg(id).arg("task").arg(task).query_async(&mut c).await.unwrap();
    }
    let read = |consumer: &str, count: usize, from: &str| {
        let mut command = cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg("workers")
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg("jobs")
            .arg(from);
        command
    };
    let alice: Vec<(String, Entries)> = read("alice", 2, ">").query_async(&mut c).await.unwrap();
    assert_eq!(
        alice,
        vec![(
            "jobs".into(),
            vec![("1-0".into(), fv(&["task", "one"])), ("2-0".into(), fv(&["task", "two"]))]
        )]
    );
    let bob: Vec<(String, Entries)> = read("bob", 10, ">").query_async(&mut c).await.unwrap();
    assert_eq!(bob, vec![("jobs".into(), vec![("3-0".into(), fv(&["task", "three"]))])]);
    let nothing: Option<Vec<(String, Entries)>> = read("bob", 10, ">").query_async(&mut c).await.unwrap();
    assert_eq!(nothing, None, "nothing new for the group");
    assert_eq!(
        cmd("XACK").arg("jobs").arg("workers").arg("1-0").query_async::<i64>(&mut c).await.unwrap(),
        1
    );
    type Summary = (i64, String, String, Vec<(String, String)>);
    let summary: Summary = cmd("XPENDING").arg("jobs").arg("workers").query_async(&mut c).await.unwrap();
    assert_eq!(
        summary,
        (2, "2-0".into(), "3-0".into(), vec![("alice".into(), "1".into()), ("bob".into(), "1".into())])
    );
    // Alice's history: what she holds, delivered again.
    let history: Vec<(String, Entries)> = read("alice", 10, "0").query_async(&mut c).await.unwrap();
    assert_eq!(history, vec![("jobs".into(), vec![("2-0".into(), fv(&["task", "two"]))])]);
    let detail: Vec<(String, String, i64, i64)> = cmd("XPENDING")
        .arg("jobs")
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(10)
        .arg("alice")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!((detail[0].0.as_str(), detail[0].1.as_str(), detail[0].3), ("2-0", "alice", 2));
    // Bob claims alice's entry; then carol takes everything with XAUTOCLAIM.
    let claimed: Entries = cmd("XCLAIM")
        .arg("jobs")
        .arg("workers")
        .arg("bob")
        .arg(0)
        .arg("2-0")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(claimed, vec![("2-0".into(), fv(&["task", "two"]))]);
    let (cursor, ids, deleted): (String, Vec<String>, Vec<String>) = cmd("XAUTOCLAIM")
        .arg("jobs")
        .arg("workers")
        .arg("carol")
        .arg(0)
        .arg("0")
        .arg("JUSTID")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!((cursor.as_str(), ids, deleted), ("0-0", fv(&["2-0", "3-0"]), vec![]));
    let groups: Vec<std::collections::HashMap<String, Value>> =
        cmd("XINFO").arg("GROUPS").arg("jobs").query_async(&mut c).await.unwrap();
    assert_eq!(groups[0]["pending"], Value::Int(2));
    assert_eq!(groups[0]["lag"], Value::Int(0));
    assert_eq!(groups[0]["consumers"], Value::Int(3));
    assert_eq!(
        cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg("jobs")
            .arg("workers")
            .arg("carol")
            .query_async::<i64>(&mut c)
            .await
            .unwrap(),
        2
    );
    let no_group = read("x", 1, ">").arg("nokey").arg(">").query_async::<Value>(&mut c).await;
    assert!(no_group.is_err());

    // XREAD from `$` waits for what is added after it began, however often it is woken.
    let _: String =
        cmd("XADD").arg("events").arg("4-0").arg("kind").arg("old").query_async(&mut c).await.unwrap();
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut blocked = client.get_multiplexed_async_connection().await.unwrap();
    let waiter = tokio::spawn(async move {
        cmd("XREAD")
            .arg("BLOCK")
            .arg(5000)
            .arg("STREAMS")
            .arg("events")
            .arg("$")
            .query_async::<Option<Vec<(String, Entries)>>>(&mut blocked)
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A write that adds no entry wakes the reader, which goes back to waiting.
    let _: String =
        cmd("XGROUP").arg("CREATE").arg("events").arg("g").arg("$").query_async(&mut c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _: String =
        cmd("XADD").arg("events").arg("5-0").arg("kind").arg("new").query_async(&mut c).await.unwrap();
    assert_eq!(
        waiter.await.unwrap(),
        Some(vec![("events".into(), vec![("5-0".into(), fv(&["kind", "new"]))])])
    );
    // XREADGROUP with `>` waits for an entry the group has not seen.
    let seen: Vec<(String, Entries)> = cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("dan")
        .arg("STREAMS")
        .arg("events")
        .arg(">")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(seen[0].1[0].0, "5-0");
    let mut blocked = client.get_multiplexed_async_connection().await.unwrap();
    let waiter = tokio::spawn(async move {
        cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("dan")
            .arg("BLOCK")
            .arg(5000)
            .arg("STREAMS")
            .arg("events")
            .arg(">")
            .query_async::<Vec<(String, Entries)>>(&mut blocked)
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: String =
        cmd("XADD").arg("events").arg("6-0").arg("kind").arg("next").query_async(&mut c).await.unwrap();
    let got = waiter.await.unwrap();
    assert_eq!(got, vec![("events".into(), vec![("6-0".into(), fv(&["kind", "next"]))])]);
    // Two consumers blocked on one group: each new entry goes to one of them.
    let waiters: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|consumer| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut blocked = client.get_multiplexed_async_connection().await.unwrap();
                let got: Vec<(String, Entries)> = cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("g")
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(1)
                    .arg("BLOCK")
                    .arg(5000)
                    .arg("STREAMS")
                    .arg("events")
                    .arg(">")
                    .query_async(&mut blocked)
                    .await
                    .unwrap();
                got[0].1[0].0.clone()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    for id in ["7-0", "8-0"] {
        let _: String =
            cmd("XADD").arg("events").arg(id).arg("kind").arg("x").query_async(&mut c).await.unwrap();
    }
    let mut got = Vec::new();
    for w in waiters {
        got.push(w.await.unwrap());
    }
    got.sort();
    assert_eq!(got, vec!["7-0", "8-0"]);
    // A timeout answers nil.
    let none: Option<Vec<(String, Entries)>> = cmd("XREAD")
        .arg("BLOCK")
        .arg(50)
        .arg("STREAMS")
        .arg("events")
        .arg("$")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(none, None);
}

#[tokio::test]
async fn sorted_sets() {
    let (addr, mut c) = start().await;
    let _: () = c.zadd_multiple("z", &[(1.0, "a"), (2.0, "b"), (3.0, "c"), (4.0, "d")]).await.unwrap();
    assert_eq!(c.zscore::<_, _, f64>("z", "c").await.unwrap(), 3.0);
    assert_eq!(c.zrank::<_, _, i64>("z", "c").await.unwrap(), 2);
    assert_eq!(c.zrevrank::<_, _, i64>("z", "c").await.unwrap(), 1);
    assert_eq!(c.zcard::<_, i64>("z").await.unwrap(), 4);
    assert_eq!(c.zcount::<_, _, _, i64>("z", "(1", 3).await.unwrap(), 2);
    assert_eq!(c.zrange::<_, Vec<String>>("z", 0, 1).await.unwrap(), vec!["a", "b"]);
    assert_eq!(c.zrevrange::<_, Vec<String>>("z", 0, 1).await.unwrap(), vec!["d", "c"]);
    let with: Vec<(String, f64)> = c.zrange_withscores("z", -2, -1).await.unwrap();
    assert_eq!(with, vec![("c".to_string(), 3.0), ("d".to_string(), 4.0)]);
    assert_eq!(
        c.zrangebyscore::<_, _, _, Vec<String>>("z", "(1", "+inf").await.unwrap(),
        vec!["b", "c", "d"]
    );
    assert_eq!(
        c.zrevrangebyscore::<_, _, _, Vec<String>>("z", 3, "-inf").await.unwrap(),
        vec!["c", "b", "a"]
    );
    let limited: Vec<String> = cmd("ZRANGE")
        .arg("z")
        .arg(4)
        .arg(1)
        .arg("BYSCORE")
        .arg("REV")
        .arg("LIMIT")
        .arg(1)
        .arg(2)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(limited, vec!["c", "b"]);
    // ZADD flags
    assert_eq!(
        cmd("ZADD")
            .arg("z")
            .arg("NX")
            .arg(10)
            .arg("a")
            .arg(5)
            .arg("e")
            .query_async::<i64>(&mut c)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        cmd("ZADD")
            .arg("z")
            .arg("XX")
            .arg("CH")
            .arg(10)
            .arg("a")
            .arg(9)
            .arg("f")
            .query_async::<i64>(&mut c)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        cmd("ZADD").arg("z").arg("GT").arg("CH").arg(1).arg("a").query_async::<i64>(&mut c).await.unwrap(),
        0
    );
    let incr: f64 = cmd("ZADD").arg("z").arg("INCR").arg(0.5).arg("a").query_async(&mut c).await.unwrap();
    assert_eq!(incr, 10.5);
    assert_eq!(c.zincr::<_, _, _, f64>("z", "b", 1.5).await.unwrap(), 3.5);
    let ms: Vec<Option<f64>> =
        cmd("ZMSCORE").arg("z").arg("b").arg("nope").query_async(&mut c).await.unwrap();
    assert_eq!(ms, vec![Some(3.5), None]);
    // lex
    let _: () = c.zadd_multiple("lex", &[(0, "a"), (0, "b"), (0, "c"), (0, "d")]).await.unwrap();
    assert_eq!(c.zrangebylex::<_, _, _, Vec<String>>("lex", "[b", "(d").await.unwrap(), vec!["b", "c"]);
    assert_eq!(c.zlexcount::<_, _, _, i64>("lex", "-", "+").await.unwrap(), 4);
    assert_eq!(
        cmd("ZREMRANGEBYLEX").arg("lex").arg("[a").arg("[b").query_async::<i64>(&mut c).await.unwrap(),
        2
    );
    // pops and removals
    let min: Vec<(String, f64)> = cmd("ZPOPMIN").arg("z").query_async(&mut c).await.unwrap();
    assert_eq!(min, vec![("c".to_string(), 3.0)]);
    let max: Vec<(String, f64)> = cmd("ZPOPMAX").arg("z").arg(1).query_async(&mut c).await.unwrap();
    assert_eq!(max, vec![("a".to_string(), 10.5)]);
    assert_eq!(c.zrembyscore::<_, _, _, i64>("z", 3, 4).await.unwrap(), 2);
    assert_eq!(cmd("ZREMRANGEBYRANK").arg("z").arg(0).arg(0).query_async::<i64>(&mut c).await.unwrap(), 1);
    assert_eq!(c.zrem::<_, _, i64>("z", "nope").await.unwrap(), 0);
    // store
    let _: () = c.zadd_multiple("z1", &[(1, "x"), (2, "y")]).await.unwrap();
    let _: () = c.zadd_multiple("z2", &[(10, "y"), (20, "w")]).await.unwrap();
    assert_eq!(
        cmd("ZUNIONSTORE")
            .arg("u")
            .arg(2)
            .arg("z1")
            .arg("z2")
            .arg("WEIGHTS")
            .arg(1)
            .arg(2)
            .query_async::<i64>(&mut c)
            .await
            .unwrap(),
        3
    );
    assert_eq!(c.zscore::<_, _, f64>("u", "y").await.unwrap(), 22.0);
    assert_eq!(
        cmd("ZINTERSTORE")
            .arg("i")
            .arg(2)
            .arg("z1")
            .arg("z2")
            .arg("AGGREGATE")
            .arg("MAX")
            .query_async::<i64>(&mut c)
            .await
            .unwrap(),
        1
    );
    assert_eq!(c.zscore::<_, _, f64>("i", "y").await.unwrap(), 10.0);
    let (cursor, items): (u64, Vec<String>) = cmd("ZSCAN").arg("u").arg(0).query_async(&mut c).await.unwrap();
    assert_eq!((cursor, items.len()), (0, 6));
    // BZPOPMIN waits
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut blocked = client.get_multiplexed_async_connection().await.unwrap();
    let waiter = tokio::spawn(async move {
        cmd("BZPOPMIN").arg("board").arg(5).query_async::<(String, String, f64)>(&mut blocked).await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _: () = c.zadd("board", "p", 7).await.unwrap();
    assert_eq!(waiter.await.unwrap(), ("board".to_string(), "p".to_string(), 7.0));
}

/// A command that answers (member, score) pairs.
async fn scored(c: &mut MultiplexedConnection, args: &[&str]) -> Vec<(String, f64)> {
    cmd(args[0]).arg(&args[1..]).query_async(c).await.unwrap()
}

/// ZUNION, ZINTER, ZDIFF (and ZDIFFSTORE), ZINTERCARD, ZRANGESTORE, ZRANDMEMBER, ZMPOP and
/// BZMPOP, checked against what redis-server 7.0 answers for the same commands.
#[tokio::test]
async fn sorted_set_algebra_random_members_and_multi_key_pops() {
    let (addr, mut c) = start().await;
    let _: () = c.zadd_multiple("a", &[(1.0, "x"), (2.0, "y"), (3.0, "z")]).await.unwrap();
    let _: () = c.zadd_multiple("b", &[(10.0, "y"), (20.0, "z"), (30.0, "w")]).await.unwrap();
    let _: () = c.sadd("s", &["y", "q"]).await.unwrap();
    let pairs = |v: &[(&str, f64)]| v.iter().map(|(m, s)| (m.to_string(), *s)).collect::<Vec<_>>();
    assert_eq!(
        scored(&mut c, &["ZUNION", "2", "a", "b", "WITHSCORES"]).await,
        pairs(&[("x", 1.0), ("y", 12.0), ("z", 23.0), ("w", 30.0)])
    );
    // Weights, MAX, and a plain set (score 1) as an input.
    assert_eq!(
        scored(
            &mut c,
            &["ZUNION", "3", "a", "b", "s", "WEIGHTS", "1", "2", "3", "AGGREGATE", "MAX", "WITHSCORES"]
        )
        .await,
        pairs(&[("x", 1.0), ("q", 3.0), ("y", 20.0), ("z", 40.0), ("w", 60.0)])
    );
    assert_eq!(
        scored(&mut c, &["ZINTER", "2", "a", "b", "AGGREGATE", "MIN", "WITHSCORES"]).await,
        pairs(&[("y", 2.0), ("z", 3.0)])
    );
    assert_eq!(scored(&mut c, &["ZDIFF", "2", "a", "b", "WITHSCORES"]).await, pairs(&[("x", 1.0)]));
    let members: Vec<String> = cmd("ZINTER").arg(2).arg("a").arg("b").query_async(&mut c).await.unwrap();
    assert_eq!(members, vec!["y", "z"]);
    assert_eq!(
        cmd("ZDIFFSTORE").arg("d").arg(2).arg("b").arg("a").query_async::<i64>(&mut c).await.unwrap(),
        1
    );
    assert_eq!(
        c.zrange_withscores::<_, Vec<(String, f64)>>("d", 0, -1).await.unwrap(),
        pairs(&[("w", 30.0)])
    );
    let card = |limit: i64| cmd("ZINTERCARD").arg(2).arg("a").arg("b").arg("LIMIT").arg(limit).clone();
    assert_eq!(card(0).query_async::<i64>(&mut c).await.unwrap(), 2);
    assert_eq!(card(1).query_async::<i64>(&mut c).await.unwrap(), 1);
    for (args, wanted) in [
        (vec!["ZDIFF", "0", "a"], "at least 1 input key is needed for 'zdiff' command"),
        (vec!["ZUNION", "3", "a"], "syntax error"),
        (vec!["ZDIFF", "2", "a", "b", "WEIGHTS", "1", "2"], "syntax error"),
        (vec!["ZINTERCARD", "2", "a", "b", "LIMIT", "-1"], "LIMIT can't be negative"),
    ] {
        let err = cmd(args[0]).arg(&args[1..]).query_async::<Value>(&mut c).await.unwrap_err();
        assert!(err.to_string().contains(wanted), "{args:?}: {err}");
    }

    // ZRANGESTORE: ZRANGE's selection, stored; an empty one removes the destination.
    let store = |args: &[&str]| cmd("ZRANGESTORE").arg(args).clone();
    assert_eq!(store(&["r", "a", "1", "-1"]).query_async::<i64>(&mut c).await.unwrap(), 2);
    assert_eq!(
        c.zrange_withscores::<_, Vec<(String, f64)>>("r", 0, -1).await.unwrap(),
        pairs(&[("y", 2.0), ("z", 3.0)])
    );
    assert_eq!(
        store(&["r", "b", "(10", "+inf", "BYSCORE", "LIMIT", "0", "1"])
            .query_async::<i64>(&mut c)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        c.zrange_withscores::<_, Vec<(String, f64)>>("r", 0, -1).await.unwrap(),
        pairs(&[("z", 20.0)])
    );
    let _: () = c.zadd_multiple("lex", &[(0.0, "a"), (0.0, "b"), (0.0, "c")]).await.unwrap();
    assert_eq!(store(&["r", "lex", "[b", "+", "BYLEX"]).query_async::<i64>(&mut c).await.unwrap(), 2);
    assert_eq!(c.zrange::<_, Vec<String>>("r", 0, -1).await.unwrap(), vec!["b", "c"]);
    assert_eq!(store(&["r", "nothing", "0", "-1"]).query_async::<i64>(&mut c).await.unwrap(), 0);
    assert!(!c.exists::<_, bool>("r").await.unwrap());
    let err = store(&["r", "a", "0", "-1", "WITHSCORES"]).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");

    // ZRANDMEMBER: distinct members for a positive count, repeats allowed for a negative one.
    let all: Vec<(String, f64)> =
        cmd("ZRANDMEMBER").arg("a").arg(10).arg("WITHSCORES").query_async(&mut c).await.unwrap();
    let mut sorted = all.clone();
    sorted.sort_by(|x, y| x.1.total_cmp(&y.1));
    assert_eq!(sorted, pairs(&[("x", 1.0), ("y", 2.0), ("z", 3.0)]));
    let two: Vec<String> = cmd("ZRANDMEMBER").arg("a").arg(2).query_async(&mut c).await.unwrap();
    assert!(two.len() == 2 && two[0] != two[1], "{two:?}");
    let many: Vec<String> = cmd("ZRANDMEMBER").arg("a").arg(-20).query_async(&mut c).await.unwrap();
    assert!(many.len() == 20 && many.iter().all(|m| ["x", "y", "z"].contains(&m.as_str())));
    let one: String = cmd("ZRANDMEMBER").arg("a").query_async(&mut c).await.unwrap();
    assert!(["x", "y", "z"].contains(&one.as_str()));
    let none: Option<String> = cmd("ZRANDMEMBER").arg("nothing").query_async(&mut c).await.unwrap();
    assert_eq!(none, None);

    // ZMPOP: the first non-empty sorted set, from the low or the high end.
    let popped: (String, Vec<(String, f64)>) = cmd("ZMPOP")
        .arg(2)
        .arg("nothing")
        .arg("a")
        .arg("MAX")
        .arg("COUNT")
        .arg(2)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(popped, ("a".to_string(), pairs(&[("z", 3.0), ("y", 2.0)])));
    let popped: (String, Vec<(String, f64)>) =
        cmd("ZMPOP").arg(1).arg("a").arg("MIN").query_async(&mut c).await.unwrap();
    assert_eq!(popped.1, pairs(&[("x", 1.0)]));
    let none: Option<(String, Vec<(String, f64)>)> =
        cmd("ZMPOP").arg(1).arg("a").arg("MIN").query_async(&mut c).await.unwrap();
    assert_eq!(none, None);
    // BZMPOP waits for a ZADD from another connection.
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut blocked = client.get_multiplexed_async_connection().await.unwrap();
    let waiter = tokio::spawn(async move {
        cmd("BZMPOP")
            .arg(5)
            .arg(1)
            .arg("later")
            .arg("MIN")
            .query_async::<(String, Vec<(String, f64)>)>(&mut blocked)
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: () = c.zadd_multiple("later", &[(5.0, "p"), (7.0, "q")]).await.unwrap();
    assert_eq!(waiter.await.unwrap(), ("later".to_string(), pairs(&[("p", 5.0)])));
    let none: Option<(String, Vec<(String, f64)>)> =
        cmd("BZMPOP").arg("0.05").arg(1).arg("nothing").arg("MAX").query_async(&mut c).await.unwrap();
    assert_eq!(none, None);
}

/// GEO commands, with the answers redis-server 7.0 gives for Redis's own Sicily example.
#[tokio::test]
async fn geospatial_commands() {
    let (_, mut c) = start().await;
    let add = |args: &[&str]| cmd("GEOADD").arg("Sicily").arg(args).clone();
    assert_eq!(
        add(&["13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"])
            .query_async::<i64>(&mut c)
            .await
            .unwrap(),
        2
    );
    // A GEO key is a sorted set scored by a 52-bit geohash.
    assert_eq!(c.zscore::<_, _, f64>("Sicily", "Palermo").await.unwrap(), 3479099956230698.0);
    let err = add(&["200", "100", "bad"]).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("invalid longitude,latitude pair 200.000000,100.000000"), "{err}");
    assert_eq!(add(&["NX", "1", "1", "Palermo"]).query_async::<i64>(&mut c).await.unwrap(), 0);
    let err = add(&["NX", "XX", "1", "1", "Palermo"]).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    assert_eq!(
        add(&["XX", "CH", "12.5", "37.8", "Marsala", "13.361389", "38.115556", "Palermo"])
            .query_async::<i64>(&mut c)
            .await
            .unwrap(),
        0,
        "XX adds nothing new and Palermo did not move"
    );

    let pos: Vec<Option<(String, String)>> =
        cmd("GEOPOS").arg("Sicily").arg("Palermo").arg("Nowhere").query_async(&mut c).await.unwrap();
    assert_eq!(pos, vec![Some(("13.36138933897018433".into(), "38.11555639549629859".into())), None]);
    let dist = |unit: &str| cmd("GEODIST").arg("Sicily").arg("Palermo").arg("Catania").arg(unit).clone();
    assert_eq!(dist("m").query_async::<String>(&mut c).await.unwrap(), "166274.1516");
    assert_eq!(dist("km").query_async::<String>(&mut c).await.unwrap(), "166.2742");
    assert_eq!(dist("mi").query_async::<String>(&mut c).await.unwrap(), "103.3182");
    let err = dist("parsec").query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("unsupported unit"), "{err}");
    let hashes: Vec<String> =
        cmd("GEOHASH").arg("Sicily").arg("Palermo").arg("Catania").query_async(&mut c).await.unwrap();
    assert_eq!(hashes, vec!["sqc8b49rny0", "sqdtr74hyu0"]);

    // Searches: by radius and by box, nearest first, with distances, hashes and coordinates.
    let search = |args: &[&str]| cmd("GEOSEARCH").arg("Sicily").arg(args).clone();
    let near: Vec<(String, String)> =
        search(&["FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC", "WITHDIST"])
            .query_async(&mut c)
            .await
            .unwrap();
    assert_eq!(near, vec![("Catania".into(), "56.4413".into()), ("Palermo".into(), "190.4424".into())]);
    let boxed: Vec<String> = search(&["FROMLONLAT", "15", "37", "BYBOX", "100", "400", "km", "ASC"])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(boxed, vec!["Catania"], "Palermo is 200 km west, outside a box 100 km wide");
    let full: Value = search(&["FROMMEMBER", "Catania", "BYRADIUS", "1", "km", "WITHHASH", "WITHCOORD"])
        .query_async(&mut c)
        .await
        .unwrap();
    let coord = |lon: &str, lat: &str| {
        Value::Array(vec![Value::BulkString(lon.into()), Value::BulkString(lat.into())])
    };
    assert_eq!(
        full,
        Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"Catania".to_vec()),
            Value::Int(3479447370796909),
            coord("15.08726745843887329", "37.50266842333162032"),
        ])])
    );
    let one: Vec<String> = cmd("GEORADIUS")
        .arg(&["Sicily", "15", "37", "200", "km", "COUNT", "1"])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(one, vec!["Catania"]);
    let by_member: Vec<String> =
        cmd("GEORADIUSBYMEMBER").arg(&["Sicily", "Palermo", "100", "km"]).query_async(&mut c).await.unwrap();
    assert_eq!(by_member, vec!["Palermo"]);
    for (args, wanted) in [
        (
            vec!["GEOSEARCH", "Sicily", "BYRADIUS", "1", "km", "ASC", "WITHDIST"],
            "exactly one of FROMMEMBER or FROMLONLAT",
        ),
        (
            vec!["GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "ASC", "WITHDIST"],
            "exactly one of BYRADIUS and BYBOX",
        ),
        (vec!["GEOSEARCH", "Sicily", "FROMMEMBER", "Nowhere", "BYRADIUS", "1", "km"], "could not decode"),
        (vec!["GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "0"], "COUNT must be > 0"),
        (vec!["GEORADIUS", "Sicily", "15", "37", "200", "km", "ANY"], "ANY argument requires COUNT"),
        (vec!["GEORADIUS", "Sicily", "15", "37", "-1", "km"], "radius cannot be negative"),
        (vec!["GEORADIUS_RO", "Sicily", "15", "37", "200", "km", "STORE", "x"], "syntax error"),
    ] {
        let err = cmd(args[0]).arg(&args[1..]).query_async::<Value>(&mut c).await.unwrap_err();
        assert!(err.to_string().contains(wanted), "{args:?}: {err}");
    }

    // Stored results: geohashes, or distances in the search's unit.
    let stored: i64 = cmd("GEOSEARCHSTORE")
        .arg(&["near", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "STOREDIST"])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(stored, 2);
    assert_eq!(c.zscore::<_, _, f64>("near", "Catania").await.unwrap(), 56.4412578701582);
    let stored: i64 = cmd("GEORADIUS")
        .arg(&["Sicily", "15", "37", "100", "km", "STORE", "close"])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    assert_eq!(c.zscore::<_, _, f64>("close", "Catania").await.unwrap(), 3479447370796909.0);

    // Near the antimeridian, points on both sides of it are found.
    let _: i64 = cmd("GEOADD")
        .arg(&["world", "-179.99", "0", "east", "179.99", "0", "west"])
        .query_async(&mut c)
        .await
        .unwrap();
    let mut both: Vec<String> = cmd("GEOSEARCH")
        .arg(&["world", "FROMLONLAT", "180", "0", "BYRADIUS", "10", "km"])
        .query_async(&mut c)
        .await
        .unwrap();
    both.sort();
    assert_eq!(both, vec!["east", "west"]);
}

/// SORT and SORT_RO, with the answers redis-server 7.0 gives for the same data.
#[tokio::test]
async fn sort_by_value_by_weights_with_gets_and_store() {
    let (_, mut c) = start().await;
    let _: () = c.rpush("nums", &["3", "1", "10", "2"]).await.unwrap();
    let sort = |args: &[&str]| cmd("SORT").arg(args).clone();
    let sorted = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    assert_eq!(
        sort(&["nums"]).query_async::<Vec<Option<String>>>(&mut c).await.unwrap(),
        sorted(&["1", "2", "3", "10"])
    );
    assert_eq!(
        sort(&["nums", "DESC", "LIMIT", "1", "2"]).query_async::<Vec<Option<String>>>(&mut c).await.unwrap(),
        sorted(&["3", "2"])
    );
    assert_eq!(
        sort(&["nums", "ALPHA"]).query_async::<Vec<Option<String>>>(&mut c).await.unwrap(),
        sorted(&["1", "10", "2", "3"])
    );
    let _: () = c.rpush("words", &["b", "a"]).await.unwrap();
    let err = sort(&["words"]).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("can't be converted into double"), "{err}");

    // Weights from other keys (a missing one weighs 0), projections through hashes.
    let _: () = c.mset(&[("w_3", "30"), ("w_1", "10"), ("w_10", "5")]).await.unwrap();
    let _: () = c.hset("user_1", "name", "ann").await.unwrap();
    let _: () = c.hset("user_3", "name", "cid").await.unwrap();
    let got: Vec<Option<String>> =
        sort(&["nums", "BY", "w_*", "GET", "#", "GET", "user_*->name"]).query_async(&mut c).await.unwrap();
    let want = [Some("2"), None, Some("10"), None, Some("1"), Some("ann"), Some("3"), Some("cid")];
    assert_eq!(got, want.map(|v| v.map(String::from)));
    assert_eq!(
        sort(&["nums", "BY", "w_*", "ALPHA"]).query_async::<Vec<Option<String>>>(&mut c).await.unwrap(),
        sorted(&["2", "1", "3", "10"]),
        "as text a missing weight comes first, and \"10\" before \"30\" before \"5\""
    );
    assert_eq!(
        sort(&["nums", "BY", "nosort"]).query_async::<Vec<Option<String>>>(&mut c).await.unwrap(),
        sorted(&["3", "1", "10", "2"])
    );
    // Equal weights fall back to the elements themselves.
    let _: () = c.rpush("eq", &["2", "1"]).await.unwrap();
    let _: () = c.mset(&[("k_1", "5"), ("k_2", "5")]).await.unwrap();
    assert_eq!(
        sort(&["eq", "BY", "k_*"]).query_async::<Vec<Option<String>>>(&mut c).await.unwrap(),
        sorted(&["1", "2"])
    );

    // STORE keeps a list (missing values as empty strings); SORT_RO refuses it.
    assert_eq!(sort(&["nums", "STORE", "out"]).query_async::<i64>(&mut c).await.unwrap(), 4);
    assert_eq!(c.lrange::<_, Vec<String>>("out", 0, -1).await.unwrap(), vec!["1", "2", "3", "10"]);
    assert_eq!(sort(&["nums", "GET", "nope_*", "STORE", "out"]).query_async::<i64>(&mut c).await.unwrap(), 4);
    assert_eq!(c.lrange::<_, Vec<String>>("out", 0, -1).await.unwrap(), vec![""; 4]);
    let err =
        cmd("SORT_RO").arg("nums").arg("STORE").arg("x").query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    // Sets and sorted sets sort too; other types are refused.
    let _: () = c.sadd("s", &["5", "4"]).await.unwrap();
    assert_eq!(sort(&["s"]).query_async::<Vec<Option<String>>>(&mut c).await.unwrap(), sorted(&["4", "5"]));
    let _: () = c.zadd_multiple("z", &[(1.0, "b"), (2.0, "a")]).await.unwrap();
    assert_eq!(
        sort(&["z", "BY", "nosort"]).query_async::<Vec<Option<String>>>(&mut c).await.unwrap(),
        sorted(&["b", "a"])
    );
    let _: () = c.set("str", "x").await.unwrap();
    let err = sort(&["str"]).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    assert!(sort(&["nothing"]).query_async::<Vec<String>>(&mut c).await.unwrap().is_empty());
}

#[tokio::test]
async fn rank_and_range_on_a_large_sorted_set() {
    let (_, mut c) = start().await;
    let mut p = pipe();
    for i in 0..20_000 {
        p.cmd("ZADD").arg("big").arg(i * 2).arg(format!("m{i}")).ignore();
    }
    let _: () = p.query_async(&mut c).await.unwrap();
    assert_eq!(c.zrank::<_, _, i64>("big", "m12345").await.unwrap(), 12345);
    assert_eq!(c.zrange::<_, Vec<String>>("big", 19_998, -1).await.unwrap(), vec!["m19998", "m19999"]);
    assert_eq!(c.zcount::<_, _, _, i64>("big", 100, "(200").await.unwrap(), 50);
}

#[tokio::test]
async fn bitmaps_and_hyperloglog() {
    let (_, mut c) = start().await;
    assert_eq!(c.setbit::<_, i64>("b", 7, true).await.unwrap(), 0);
    assert_eq!(c.setbit::<_, i64>("b", 7, true).await.unwrap(), 1);
    assert!(c.getbit::<_, bool>("b", 7).await.unwrap());
    assert!(!c.getbit::<_, bool>("b", 100).await.unwrap());
    let _: () = c.set("k", "foobar").await.unwrap();
    assert_eq!(c.bitcount::<_, i64>("k").await.unwrap(), 26);
    assert_eq!(c.bitcount_range::<_, i64>("k", 1, 1).await.unwrap(), 6);
    assert_eq!(
        cmd("BITCOUNT").arg("k").arg(5).arg(30).arg("BIT").query_async::<i64>(&mut c).await.unwrap(),
        17
    );
    let _: () = c.set("p", b"\xff\xf0\x00".as_slice()).await.unwrap();
    assert_eq!(cmd("BITPOS").arg("p").arg(0).query_async::<i64>(&mut c).await.unwrap(), 12);
    assert_eq!(cmd("BITPOS").arg("p").arg(1).arg(2).query_async::<i64>(&mut c).await.unwrap(), -1);
    let _: () = c.set("x", "abc").await.unwrap();
    let _: () = c.set("y", "   ").await.unwrap();
    assert_eq!(
        cmd("BITOP").arg("XOR").arg("d").arg("x").arg("y").query_async::<i64>(&mut c).await.unwrap(),
        3
    );
    assert_eq!(c.get::<_, String>("d").await.unwrap(), "ABC");
    let r: Vec<Option<i64>> = cmd("BITFIELD")
        .arg("bf")
        .arg("SET")
        .arg("u8")
        .arg(0)
        .arg(255)
        .arg("GET")
        .arg("u8")
        .arg(0)
        .arg("INCRBY")
        .arg("u8")
        .arg(0)
        .arg(10)
        .arg("OVERFLOW")
        .arg("SAT")
        .arg("INCRBY")
        .arg("i8")
        .arg("#1")
        .arg(200)
        .arg("OVERFLOW")
        .arg("FAIL")
        .arg("INCRBY")
        .arg("u4")
        .arg(0)
        .arg(100)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(r, vec![Some(0), Some(255), Some(9), Some(127), None]);
    // HyperLogLog
    for chunk in (0..20_000).collect::<Vec<_>>().chunks(1000) {
        let items: Vec<String> = chunk.iter().map(|i| format!("visitor-{i}")).collect();
        let _: i64 = c.pfadd("hll", items).await.unwrap();
    }
    let count: i64 = c.pfcount("hll").await.unwrap();
    assert!((count - 20_000).abs() < 20_000 * 3 / 100, "estimate {count}");
    let _: i64 = c.pfadd("hll2", &["visitor-1", "someone-else"]).await.unwrap();
    let _: () = c.pfmerge("merged", &["hll", "hll2"]).await.unwrap();
    let merged: i64 = c.pfcount("merged").await.unwrap();
    assert!((merged - 20_001).abs() < 20_000 * 3 / 100, "merged {merged}");
    let err = c.pfadd::<_, _, i64>("k", "x").await.unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
}

#[tokio::test]
async fn pipelining_and_resp3() {
    let addr = start_with(CacheOptions::default()).await;
    let client = redis::Client::open(format!("redis://{addr}/?protocol=resp3")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut p = pipe();
    for i in 0..1000 {
        p.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    p.cmd("GET").arg("k999").cmd("DBSIZE");
    let (last, size): (String, i64) = p.query_async(&mut c).await.unwrap();
    assert_eq!((last.as_str(), size), ("999", 1000));
    let hello: Value = cmd("HELLO").arg(3).query_async(&mut c).await.unwrap();
    assert!(matches!(hello, Value::Map(_)), "RESP3 HELLO is a map: {hello:?}");
    let _: () = c.hset("h", "f", "v").await.unwrap();
    let all: Value = cmd("HGETALL").arg("h").query_async(&mut c).await.unwrap();
    assert!(matches!(all, Value::Map(_)), "{all:?}");
    let _: () = c.zadd("z", "m", 1.5).await.unwrap();
    let score: Value = cmd("ZSCORE").arg("z").arg("m").query_async(&mut c).await.unwrap();
    assert_eq!(score, Value::Double(1.5));
    let missing: Value = cmd("GET").arg("nope").query_async(&mut c).await.unwrap();
    assert_eq!(missing, Value::Nil);
    // WITHSCORES answers pairs in RESP3, as Redis 7 does; ZPOPMIN without a count stays flat.
    let _: () = c.zadd("z", "n", 2.5).await.unwrap();
    let pair = |m: &str, s: f64| Value::Array(vec![Value::BulkString(m.into()), Value::Double(s)]);
    for args in [vec!["ZRANGE", "z", "0", "-1", "WITHSCORES"], vec!["ZUNION", "1", "z", "WITHSCORES"]] {
        let ranged: Value = cmd(args[0]).arg(&args[1..]).query_async(&mut c).await.unwrap();
        assert_eq!(ranged, Value::Array(vec![pair("m", 1.5), pair("n", 2.5)]), "{args:?}");
    }
    let popped: Value = cmd("ZPOPMIN").arg("z").query_async(&mut c).await.unwrap();
    assert_eq!(popped, pair("m", 1.5));
    let popped: Value = cmd("ZPOPMIN").arg("z").arg(1).query_async(&mut c).await.unwrap();
    assert_eq!(popped, Value::Array(vec![pair("n", 2.5)]));
    let fields: Value =
        cmd("HRANDFIELD").arg("h").arg(1).arg("WITHVALUES").query_async(&mut c).await.unwrap();
    let field_value = Value::Array(vec![Value::BulkString(b"f".to_vec()), Value::BulkString(b"v".to_vec())]);
    assert_eq!(fields, Value::Array(vec![field_value]));
}

#[tokio::test]
async fn multi_exec_and_watch() {
    let (addr, mut c) = start().await;
    let (a, b): (i64, i64) = pipe().atomic().incr("x", 1).incr("x", 10).query_async(&mut c).await.unwrap();
    assert_eq!((a, b), (1, 11));

    // A WATCHed key changed by another client aborts EXEC (nil reply).
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut w = client.get_multiplexed_async_connection().await.unwrap();
    let mut other = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = cmd("WATCH").arg("x").query_async(&mut w).await.unwrap();
    let _: () = other.set("x", 100).await.unwrap();
    let _: () = cmd("MULTI").query_async(&mut w).await.unwrap();
    let queued: String = cmd("SET").arg("x").arg(0).query_async(&mut w).await.unwrap();
    assert_eq!(queued, "QUEUED");
    let result: Value = cmd("EXEC").query_async(&mut w).await.unwrap();
    assert_eq!(result, Value::Nil);
    assert_eq!(c.get::<_, i64>("x").await.unwrap(), 100);
    // Unchanged watch: EXEC runs.
    let _: () = cmd("WATCH").arg("x").query_async(&mut w).await.unwrap();
    let _: () = cmd("MULTI").query_async(&mut w).await.unwrap();
    let _: String = cmd("INCR").arg("x").query_async(&mut w).await.unwrap();
    let result: Vec<i64> = cmd("EXEC").query_async(&mut w).await.unwrap();
    assert_eq!(result, vec![101]);
    // A queued command with a wrong arity aborts the transaction.
    let _: () = cmd("MULTI").query_async(&mut w).await.unwrap();
    let _ = cmd("GET").query_async::<Value>(&mut w).await.unwrap_err();
    let err = cmd("EXEC").query_async::<Value>(&mut w).await.unwrap_err();
    assert_eq!(err.kind(), redis::ErrorKind::ExecAbortError, "{err}");
    // Errors at run time do not stop the others (raw bytes: the client library turns an
    // error inside EXEC's array into an error for the whole reply).
    let _: () = c.set("s", "text").await.unwrap();
    let out = raw(&addr, b"MULTI\r\nINCR s\r\nINCR x\r\nEXEC\r\n").await;
    assert_eq!(
        out,
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-ERR value is not an integer or out of range\r\n:102\r\n"
    );
    let _: () = cmd("MULTI").query_async(&mut w).await.unwrap();
    let _: () = cmd("DISCARD").query_async(&mut w).await.unwrap();
    assert_eq!(c.get::<_, i64>("x").await.unwrap(), 102);
    // An INCR that fails changes nothing, so a WATCH of its key still lets EXEC run.
    let _: () = cmd("WATCH").arg("s").query_async(&mut w).await.unwrap();
    let _ = other.incr::<_, _, i64>("s", 1).await.unwrap_err();
    let _: () = cmd("MULTI").query_async(&mut w).await.unwrap();
    let _: String = cmd("INCR").arg("x").query_async(&mut w).await.unwrap();
    let result: Vec<i64> = cmd("EXEC").query_async(&mut w).await.unwrap();
    assert_eq!(result, vec![103]);
}

/// Integer arguments are read as Redis reads them (string2ll): no '+', no leading zeros,
/// no "-0". Each answer below is redis-server 7.0's.
#[tokio::test]
async fn integer_arguments_are_read_as_redis_reads_them() {
    let (_addr, mut c) = start().await;
    let _: () = c.set("k", "v").await.unwrap();
    for line in
        ["INCRBY n +1", "INCRBY n 007", "INCRBY n -0", "EXPIRE k 007", "SETRANGE k +1 x", "LRANGE l 0 +1"]
    {
        let mut command = cmd(line.split(' ').next().unwrap());
        line.split(' ').skip(1).for_each(|a| {
            command.arg(a);
        });
        let err = command.query_async::<Value>(&mut c).await.unwrap_err();
        assert_eq!(err.detail(), Some("value is not an integer or out of range"), "{line}");
    }
    assert_eq!(c.incr::<_, _, i64>("n", -7).await.unwrap(), -7);
    // A string is an "int" to OBJECT ENCODING only if it reads as one.
    for (value, encoding) in [("007", "embstr"), ("7", "int"), ("-0", "embstr"), ("-7", "int")] {
        let _: () = c.set("k", value).await.unwrap();
        let got: String = cmd("OBJECT").arg("ENCODING").arg("k").query_async(&mut c).await.unwrap();
        assert_eq!(got, encoding, "{value}");
    }
}

/// Writes look keys up without counting hits or misses, as Redis's lookupKeyWrite does.
#[tokio::test]
async fn writes_count_no_keyspace_hits_or_misses() {
    let (_addr, mut c) = start().await;
    let stat = |info: &str, name: &str| -> String {
        info.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default().trim().to_string()
    };
    for _ in 0..3 {
        let _: i64 = c.incr("counter", 1).await.unwrap();
    }
    let info: String = cmd("INFO").arg("stats").query_async(&mut c).await.unwrap();
    assert_eq!((stat(&info, "keyspace_hits:"), stat(&info, "keyspace_misses:")), ("0".into(), "0".into()));
    let _: Option<String> = c.get("counter").await.unwrap();
    let _: Option<String> = c.get("absent").await.unwrap();
    let info: String = cmd("INFO").arg("stats").query_async(&mut c).await.unwrap();
    assert_eq!((stat(&info, "keyspace_hits:"), stat(&info, "keyspace_misses:")), ("1".into(), "1".into()));
}

#[tokio::test]
async fn pubsub() {
    let (addr, mut c) = start().await;
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe("news").await.unwrap();
    sub.psubscribe("metrics.*").await.unwrap();
    let channels: Vec<String> = cmd("PUBSUB").arg("CHANNELS").query_async(&mut c).await.unwrap();
    assert_eq!(channels, vec!["news"]);
    let numsub: (String, i64) = cmd("PUBSUB").arg("NUMSUB").arg("news").query_async(&mut c).await.unwrap();
    assert_eq!(numsub.1, 1);
    assert_eq!(c.publish::<_, _, i64>("news", "hello").await.unwrap(), 1);
    assert_eq!(c.publish::<_, _, i64>("metrics.cpu", "42").await.unwrap(), 1);
    assert_eq!(c.publish::<_, _, i64>("nobody", "x").await.unwrap(), 0);
    use futures_lite::StreamExt;
    let mut stream = sub.on_message();
    let first = stream.next().await.unwrap();
    assert_eq!((first.get_channel_name(), first.get_payload::<String>().unwrap()), ("news", "hello".into()));
    let second = stream.next().await.unwrap();
    assert_eq!(second.get_channel_name(), "metrics.cpu");
    assert_eq!(second.get_pattern::<String>().unwrap(), "metrics.*");
    assert_eq!(second.get_payload::<String>().unwrap(), "42");
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_disconnected_not_left_behind() {
    let (addr, mut c) = start().await;
    // A raw subscriber that never reads after subscribing.
    let mut stalled = TcpStream::connect(&addr).await.unwrap();
    stalled.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nfeed\r\n").await.unwrap();
    let mut confirm = [0u8; 64];
    let n = stalled.read(&mut confirm).await.unwrap();
    assert!(String::from_utf8_lossy(&confirm[..n]).contains("subscribe"));
    // Publish until the server lets go of it: its socket buffers fill, then its queue.
    let payload = "x".repeat(1024);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut published = 0u64;
    loop {
        let mut pipe = redis::pipe();
        for _ in 0..256 {
            pipe.cmd("PUBLISH").arg("feed").arg(&payload);
        }
        let receivers: Vec<i64> = pipe.query_async(&mut c).await.unwrap();
        published += 256;
        if receivers.contains(&0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still subscribed after {published} messages");
    }
    assert!(published > strata_cache::PUBSUB_QUEUE_LIMIT as u64, "evicted after only {published} messages");
    // It is gone from the channel, and its connection is closed (after what was in flight).
    let mut gone = false;
    for _ in 0..200 {
        let numsub: (String, i64) =
            cmd("PUBSUB").arg("NUMSUB").arg("feed").query_async(&mut c).await.unwrap();
        if numsub.1 == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "the evicted subscriber is still counted");
    let mut sink = vec![0u8; 1 << 20];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stalled.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the evicted subscriber's connection stayed open");
    // The server goes on serving.
    assert_eq!(c.publish::<_, _, i64>("feed", "after").await.unwrap(), 0);
}

#[tokio::test]
async fn client_kill_closes_the_named_connections_at_once() {
    let (addr, mut admin) = start().await;
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    // Two idle raw connections, one of them a subscriber.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"CLIENT ID\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = idle.read(&mut buf).await.unwrap();
    let idle_id: i64 = String::from_utf8_lossy(&buf[1..n]).trim().parse().unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe("news").await.unwrap();
    let list: String = cmd("CLIENT").arg("LIST").query_async(&mut admin).await.unwrap();
    assert!(list.contains("sub=1 psub=0"), "{list}");
    // By id: the idle connection is closed without sending anything.
    let killed: i64 = cmd("CLIENT").arg("KILL").arg("ID").arg(idle_id).query_async(&mut admin).await.unwrap();
    assert_eq!(killed, 1);
    let eof = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf)).await.expect("still open");
    assert!(matches!(eof, Ok(0) | Err(_)), "{eof:?}");
    // By type: the subscriber goes, the caller (SKIPME yes) stays.
    let killed: i64 =
        cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async(&mut admin).await.unwrap();
    assert_eq!(killed, 1);
    let mut gone = false;
    for _ in 0..200 {
        let numsub: (String, i64) =
            cmd("PUBSUB").arg("NUMSUB").arg("news").query_async(&mut admin).await.unwrap();
        if numsub.1 == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "the killed subscriber is still subscribed");
    // The old form by address, and bad filters.
    let other = TcpStream::connect(&addr).await.unwrap();
    let other_addr = other.local_addr().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ok: String = cmd("CLIENT").arg("KILL").arg(&other_addr).query_async(&mut admin).await.unwrap();
    assert_eq!(ok, "OK");
    let err =
        cmd("CLIENT").arg("KILL").arg("127.0.0.1:1").query_async::<Value>(&mut admin).await.unwrap_err();
    assert!(err.to_string().contains("No such client"), "{err}");
    let err =
        cmd("CLIENT").arg("KILL").arg("COLOR").arg("red").query_async::<Value>(&mut admin).await.unwrap_err();
    assert!(err.to_string().contains("syntax"), "{err}");
    assert_eq!(cmd("PING").query_async::<String>(&mut admin).await.unwrap(), "PONG");
}

#[tokio::test]
async fn server_commands_clients_probe() {
    let (_, mut c) = start().await;
    let pong: String = cmd("PING").query_async(&mut c).await.unwrap();
    assert_eq!(pong, "PONG");
    assert_eq!(cmd("ECHO").arg("hi").query_async::<String>(&mut c).await.unwrap(), "hi");
    // A primary without replicas, as clients that look for one (sentinel-aware ones) see it.
    let role: (String, i64, Vec<Value>) = cmd("ROLE").query_async(&mut c).await.unwrap();
    assert_eq!(role, ("master".to_string(), 0, Vec::new()));
    assert_eq!(cmd("WAIT").arg(1).arg(100).query_async::<i64>(&mut c).await.unwrap(), 0);
    let err = cmd("WAIT").arg(1).arg(-1).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("timeout is negative"), "{err}");
    // MEMORY USAGE: what a key counts for against maxmemory.
    let _: () = c.set("big", "x".repeat(10_000)).await.unwrap();
    let _: () = c.set("small", "x").await.unwrap();
    let usage = |key: &str| cmd("MEMORY").arg("USAGE").arg(key).clone();
    let big: i64 = usage("big").query_async(&mut c).await.unwrap();
    let small: i64 = usage("small").query_async(&mut c).await.unwrap();
    assert!((10_000..11_000).contains(&big) && small < 1_000, "{big} {small}");
    let missing: Option<i64> = usage("nothing").query_async(&mut c).await.unwrap();
    assert_eq!(missing, None);
    let sampled: i64 = usage("big").arg("SAMPLES").arg(5).query_async(&mut c).await.unwrap();
    assert_eq!(sampled, big);
    let info: String = cmd("INFO").query_async(&mut c).await.unwrap();
    assert!(info.contains("redis_version:7."), "{info}");
    for section in
        ["# Server", "# Clients", "# Memory", "# Stats", "# Keyspace", "keyspace_hits:", "used_memory:"]
    {
        assert!(info.contains(section), "INFO lacks {section}");
    }
    let _: () = cmd("CLIENT").arg("SETNAME").arg("tester").query_async(&mut c).await.unwrap();
    assert_eq!(cmd("CLIENT").arg("GETNAME").query_async::<String>(&mut c).await.unwrap(), "tester");
    let _: () =
        cmd("CLIENT").arg("SETINFO").arg("lib-name").arg("redis-rs").query_async(&mut c).await.unwrap();
    let list: String = cmd("CLIENT").arg("LIST").query_async(&mut c).await.unwrap();
    assert!(list.contains("name=tester") && list.contains("lib-name=redis-rs"), "{list}");
    assert!(cmd("CLIENT").arg("ID").query_async::<i64>(&mut c).await.unwrap() > 0);
    let count: i64 = cmd("COMMAND").arg("COUNT").query_async(&mut c).await.unwrap();
    assert!(count > 150, "{count}");
    let info: Value = cmd("COMMAND").arg("INFO").arg("get").query_async(&mut c).await.unwrap();
    assert!(format!("{info:?}").contains("readonly"), "{info:?}");
    let all: Vec<Value> = cmd("COMMAND").arg("INFO").query_async(&mut c).await.unwrap();
    assert_eq!(all.len() as i64, count);
    let help: Vec<String> = cmd("COMMAND").arg("HELP").query_async(&mut c).await.unwrap();
    assert!(help.iter().any(|l| l.starts_with("GETKEYS")), "{help:?}");
    // Refused, so that redis-cli falls back to the argument hints compiled into it.
    let docs = cmd("COMMAND").arg("DOCS").arg("set").query_async::<Value>(&mut c).await.unwrap_err();
    assert!(docs.to_string().contains("unknown subcommand 'DOCS'"), "{docs}");
    let conf: Vec<String> = cmd("CONFIG").arg("GET").arg("maxmemory*").query_async(&mut c).await.unwrap();
    assert!(conf.contains(&"maxmemory-policy".to_string()), "{conf:?}");
    let _: () = cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("10mb")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut c)
        .await
        .unwrap();
    let conf: Vec<String> = cmd("CONFIG").arg("GET").arg("maxmemory").query_async(&mut c).await.unwrap();
    assert_eq!(conf, vec!["maxmemory", "10485760"]);
    let (secs, micros): (String, String) = cmd("TIME").query_async(&mut c).await.unwrap();
    assert!(secs.parse::<u64>().unwrap() > 1_700_000_000 && micros.parse::<u64>().unwrap() < 1_000_000);
    let _: () = cmd("DEBUG").arg("SLEEP").arg("0").query_async(&mut c).await.unwrap();
    let hits_before: String = cmd("INFO").arg("stats").query_async(&mut c).await.unwrap();
    let _: Option<String> = c.get("missing-key").await.unwrap();
    let hits_after: String = cmd("INFO").arg("stats").query_async(&mut c).await.unwrap();
    assert_ne!(stat(&hits_before, "keyspace_misses"), stat(&hits_after, "keyspace_misses"));
}

/// SLOWLOG: commands at or over `slowlog-log-slower-than` microseconds are kept newest first,
/// with their client, at most `slowlog-max-len` of them; a negative threshold keeps none.
#[tokio::test]
async fn slowlog_keeps_commands_over_the_threshold() {
    let (_, mut c) = start().await;
    let set = |name: &str, value: i64| {
        let mut command = cmd("CONFIG");
        command.arg("SET").arg(name).arg(value);
        command
    };
    let _: () = set("slowlog-log-slower-than", -1).query_async(&mut c).await.unwrap();
    let _: () = cmd("SLOWLOG").arg("RESET").query_async(&mut c).await.unwrap();
    let _: () = c.set("quiet", "1").await.unwrap();
    assert_eq!(cmd("SLOWLOG").arg("LEN").query_async::<i64>(&mut c).await.unwrap(), 0);
    let _: () = set("slowlog-log-slower-than", 0).query_async(&mut c).await.unwrap();
    let _: () = set("slowlog-max-len", 3).query_async(&mut c).await.unwrap();
    let _: () = cmd("CLIENT").arg("SETNAME").arg("timer").query_async(&mut c).await.unwrap();
    let _: () = c.set("k", "v").await.unwrap();
    let _: Option<String> = c.get("k").await.unwrap();
    let _: i64 = cmd("INCR").arg("n").query_async(&mut c).await.unwrap();
    let _: (i64,) = pipe().atomic().cmd("INCR").arg("n").query_async(&mut c).await.unwrap();
    let _: i64 = cmd("EVAL").arg("return 1").arg(0).query_async(&mut c).await.unwrap();
    type Entry = (i64, i64, i64, Vec<String>, String, String);
    let log: Vec<Entry> = cmd("SLOWLOG").arg("GET").arg(-1).query_async(&mut c).await.unwrap();
    let commands: Vec<Vec<String>> = log.iter().map(|e| e.3.clone()).collect();
    // The INCR of MULTI/EXEC is logged, not EXEC itself.
    assert_eq!(commands, vec![fv(&["EVAL", "return 1", "0"]), fv(&["INCR", "n"]), fv(&["INCR", "n"])]);
    assert!(log[0].0 > log[1].0 && log[1].0 > log[2].0, "newest first: {log:?}");
    assert!(log[0].1 > 1_700_000_000, "a unix time in seconds: {log:?}");
    assert!(log[0].4.starts_with("127.0.0.1:") && log[0].5 == "timer", "{log:?}");
    let conf: Vec<String> = cmd("CONFIG").arg("GET").arg("slowlog-*").query_async(&mut c).await.unwrap();
    assert_eq!(conf, fv(&["slowlog-log-slower-than", "0", "slowlog-max-len", "3"]));
    let _: () = cmd("SLOWLOG").arg("RESET").query_async(&mut c).await.unwrap();
    let after_reset: Vec<Entry> = cmd("SLOWLOG").arg("GET").query_async(&mut c).await.unwrap();
    assert!(after_reset.is_empty(), "{after_reset:?}");
    let err = cmd("SLOWLOG").arg("GET").arg(-2).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("greater than or equal to -1"), "{err}");
}

/// The latency monitor: off until `latency-monitor-threshold` is set; then a script that
/// runs 5 ms is a sample of the event `command`.
#[tokio::test]
async fn latency_monitor_samples_slow_commands() {
    let (_, mut c) = start().await;
    let busy = "local s = redis.call('TIME') repeat local n = redis.call('TIME') \
                until (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > 5000 return 1";
    let _: i64 = cmd("EVAL").arg(busy).arg(0).query_async(&mut c).await.unwrap();
    let latest: Vec<(String, i64, i64, i64)> =
        cmd("LATENCY").arg("LATEST").query_async(&mut c).await.unwrap();
    assert!(latest.is_empty(), "off by default: {latest:?}");
    let _: () =
        cmd("CONFIG").arg("SET").arg("latency-monitor-threshold").arg(1).query_async(&mut c).await.unwrap();
    let _: i64 = cmd("EVAL").arg(busy).arg(0).query_async(&mut c).await.unwrap();
    let latest: Vec<(String, i64, i64, i64)> =
        cmd("LATENCY").arg("LATEST").query_async(&mut c).await.unwrap();
    assert_eq!(latest.len(), 1, "{latest:?}");
    let (event, at, ms, max) = &latest[0];
    assert_eq!(event, "command");
    assert!(*at > 1_700_000_000 && *ms >= 5 && max >= ms, "{latest:?}");
    let history: Vec<(i64, i64)> =
        cmd("LATENCY").arg("HISTORY").arg("command").query_async(&mut c).await.unwrap();
    assert_eq!(history, vec![(*at, *ms)]);
    let doctor: String = cmd("LATENCY").arg("DOCTOR").query_async(&mut c).await.unwrap();
    assert!(doctor.contains("command: 1 latency spikes"), "{doctor}");
    assert_eq!(cmd("LATENCY").arg("RESET").query_async::<i64>(&mut c).await.unwrap(), 1);
    let latest: Vec<(String, i64, i64, i64)> =
        cmd("LATENCY").arg("LATEST").query_async(&mut c).await.unwrap();
    assert!(latest.is_empty(), "{latest:?}");
}

fn stat(info: &str, name: &str) -> u64 {
    info.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn auth_with_a_password() {
    let options = CacheOptions { password: Some("s3cret".into()), ..CacheOptions::default() };
    let addr = start_with(options).await;
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let err = cmd("GET").arg("k").query_async::<Option<String>>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("NOAUTH"), "{err}");
    let err = cmd("AUTH").arg("wrong").query_async::<()>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("WRONGPASS"), "{err}");
    let _: () = cmd("AUTH").arg("s3cret").query_async(&mut c).await.unwrap();
    let _: () = c.set("k", "v").await.unwrap();
    // The URL form authenticates on connect (HELLO/AUTH as the client chooses).
    let client = redis::Client::open(format!("redis://:s3cret@{addr}/")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    assert_eq!(c.get::<_, String>("k").await.unwrap(), "v");
}

/// Raw bytes on a socket: what a broken or hostile client sends.
async fn raw(addr: &str, send: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(send).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A blocking read that arrives in one packet with other requests still blocks, and the
/// replies before it are sent at once, as Redis sends them once the client blocks.
#[tokio::test]
async fn a_pipelined_blocking_read_waits_for_its_entry() {
    let (addr, mut c) = start().await;
    let mut reader = TcpStream::connect(&addr).await.unwrap();
    reader.write_all(b"PING\r\nXREAD BLOCK 5000 STREAMS events $\r\n").await.unwrap();
    let mut seen = Vec::new();
    read_until(&mut reader, &mut seen, |seen| seen.len() >= 7).await;
    assert_eq!(String::from_utf8_lossy(&seen), "+PONG\r\n");
    let _: String = cmd("XADD").arg("events").arg("1-0").arg("k").arg("v").query_async(&mut c).await.unwrap();
    let mut seen = Vec::new();
    let entry = b"*1\r\n*2\r\n$6\r\nevents\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nk\r\n$1\r\nv\r\n";
    read_until(&mut reader, &mut seen, |seen| seen.len() >= entry.len()).await;
    assert_eq!(String::from_utf8_lossy(&seen), String::from_utf8_lossy(entry));
}

/// Reads from `socket` into `seen` until `done(seen)`, each read within 5 s; the server
/// closing the connection first fails the test.
async fn read_until(
    socket: &mut (impl AsyncReadExt + Unpin),
    seen: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> bool,
) {
    let mut buf = vec![0u8; 65536];
    while !done(seen) {
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed after {} bytes", seen.len());
        seen.extend_from_slice(&buf[..n]);
    }
}

/// A RESP3 subscriber that keeps sending requests gets its messages between the replies:
/// messages that arrive while requests are being read are not held back for a quiet moment.
#[tokio::test]
async fn a_busy_resp3_subscriber_gets_its_messages() {
    let (addr, mut c) = start().await;
    let mut sub = TcpStream::connect(&addr).await.unwrap();
    sub.write_all(b"HELLO 3\r\nSUBSCRIBE news\r\n").await.unwrap();
    let mut seen = Vec::new();
    let subscribed = b">3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n";
    read_until(&mut sub, &mut seen, |seen| seen.windows(subscribed.len()).any(|w| w == subscribed)).await;
    let pings = 20_000;
    let (mut rd, mut wr) = sub.into_split();
    let writer = tokio::spawn(async move {
        for _ in 0..pings / 1000 {
            wr.write_all(&b"PING\r\n".repeat(1000)).await.unwrap();
        }
        wr
    });
    let receivers: i64 = c.publish("news", "hi").await.unwrap();
    assert_eq!(receivers, 1);
    let message = b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n";
    let mut seen = Vec::new();
    let count = |seen: &[u8]| seen.windows(7).filter(|w| w == b"+PONG\r\n").count();
    read_until(&mut rd, &mut seen, |seen| {
        count(seen) >= pings && seen.windows(message.len()).any(|w| w == message)
    })
    .await;
    writer.await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_errors_and_the_connection_goes_on() {
    let addr = start_with(CacheOptions::default()).await;
    // Wrong arity, unknown command, wrong type, oversize bulk (limit 1 MiB here): each an
    // error, then the same connection answers PING.
    let big = vec![b'x'; 2 * 1024 * 1024];
    let mut wire = Vec::new();
    wire.extend_from_slice(b"*1\r\n$3\r\nGET\r\n");
    wire.extend_from_slice(b"*2\r\n$7\r\nNOTACMD\r\n$1\r\na\r\n");
    wire.extend_from_slice(
        b"*3\r\n$3\r\nSET\r\n$1\r\ns\r\n$1\r\nv\r\n*3\r\n$5\r\nLPUSH\r\n$1\r\ns\r\n$1\r\nv\r\n",
    );
    wire.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$1\r\nb\r\n${}\r\n", big.len()).as_bytes());
    wire.extend_from_slice(&big);
    wire.extend_from_slice(b"\r\n*1\r\n$4\r\nPING\r\nPING\r\n");
    let out = raw(&addr, &wire).await;
    let lines: Vec<&str> = out.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "-ERR wrong number of arguments for 'get' command");
    assert!(lines[1].starts_with("-ERR unknown command 'NOTACMD'"), "{}", lines[1]);
    assert_eq!(lines[2], "+OK");
    assert!(lines[3].starts_with("-WRONGTYPE"), "{}", lines[3]);
    assert!(lines[4].starts_with("-ERR") && lines[4].contains("exceeds"), "{}", lines[4]);
    assert_eq!(&lines[5..], ["+PONG", "+PONG"]);
    // A frame split across writes is put back together.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"*2\r\n$4\r\nECHO\r\n$5\r\nhel").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b"lo\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"$5\r\nhello\r\n");
    // Broken framing is a protocol error (and, as in Redis, the connection closes); the
    // server serves the next connection.
    let out = raw(&addr, b"*1\r\n$x\r\n").await;
    assert!(out.starts_with("-ERR Protocol error"), "{out}");
    assert_eq!(raw(&addr, b"PING\r\n").await, "+PONG\r\n");
}

// Several worker threads: a running script holds one, like a Redis busy with a script.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lua_scripts_and_functions() {
    let options = CacheOptions { script_busy_ms: 200, ..CacheOptions::default() };
    let addr = start_with(options).await;
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    // redis::Script sends EVALSHA and falls back to EVAL on NOSCRIPT, as real apps do.
    let script = redis::Script::new(
        r#"
        local n = redis.call('INCRBY', KEYS[1], ARGV[1])
        redis.call('RPUSH', KEYS[2], n)
        return {n, redis.call('LLEN', KEYS[2]), 'done', false, 3.9}
        "#,
    );
    let out: Vec<Value> = script.key("counter").key("log").arg(5).invoke_async(&mut c).await.unwrap();
    assert_eq!(
        out,
        vec![Value::Int(5), Value::Int(1), Value::BulkString(b"done".to_vec()), Value::Nil, Value::Int(3)]
    );
    let sha: String =
        cmd("SCRIPT").arg("LOAD").arg("return ARGV[1] .. ':' .. #KEYS").query_async(&mut c).await.unwrap();
    assert_eq!(sha.len(), 40);
    let r: String =
        cmd("EVALSHA").arg(&sha).arg(2).arg("a").arg("b").arg("x").query_async(&mut c).await.unwrap();
    assert_eq!(r, "x:2");
    let exists: Vec<i64> =
        cmd("SCRIPT").arg("EXISTS").arg(&sha).arg("0000").query_async(&mut c).await.unwrap();
    assert_eq!(exists, vec![1, 0]);
    let _: () = cmd("SCRIPT").arg("FLUSH").query_async(&mut c).await.unwrap();
    let err = cmd("EVALSHA").arg(&sha).arg(0).query_async::<Value>(&mut c).await.unwrap_err();
    assert_eq!(err.kind(), redis::ErrorKind::NoScriptError, "{err}");
    // Errors: redis.call raises, redis.pcall returns the error, error_reply/status_reply.
    let _: () = c.set("str", "text").await.unwrap();
    let err = cmd("EVAL")
        .arg("return redis.call('INCR', KEYS[1])")
        .arg(1)
        .arg("str")
        .query_async::<Value>(&mut c)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");
    let r: String = cmd("EVAL")
        .arg("local r = redis.pcall('INCR', KEYS[1]); return r['err']")
        .arg(1)
        .arg("str")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(r.contains("not an integer"), "{r}");
    let err = cmd("EVAL")
        .arg("return redis.error_reply('MYERR custom')")
        .arg(0)
        .query_async::<Value>(&mut c)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("custom"), "{err}");
    let ok: String =
        cmd("EVAL").arg("return redis.status_reply('FINE')").arg(0).query_async(&mut c).await.unwrap();
    assert_eq!(ok, "FINE");
    let err =
        cmd("EVAL").arg("return nosuchfunction()").arg(0).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("nosuchfunction") || err.to_string().contains("nil"), "{err}");
    let err = cmd("EVAL").arg("leaked = 1").arg(0).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("global variable 'leaked'"), "{err}");
    let err = cmd("EVAL").arg("return (").arg(0).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("compiling"), "{err}");
    // Libraries scripts rely on.
    let json: String = cmd("EVAL")
        .arg("local t = cjson.decode(ARGV[1]); t.n = t.n + 1; return cjson.encode(t)")
        .arg(0)
        .arg(r#"{"n":41}"#)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(json, r#"{"n":42}"#);
    let bits: Vec<i64> = cmd("EVAL")
        .arg("return {bit.band(12, 10), bit.bor(12, 10), bit.bxor(12, 10), bit.lshift(1, 4), bit.tobit(4294967295)}")
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(bits, vec![8, 14, 6, 16, -1]);
    let packed: Vec<i64> = cmd("EVAL")
        .arg("local s = struct.pack('>I2<i4B', 513, -2, 7); local a, b, c, nxt = struct.unpack('>I2<i4B', s); return {#s, a, b, c, nxt, struct.size('>I2<i4B')}")
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(packed, vec![7, 513, -2, 7, 8, 7]);
    let sha1: String = cmd("EVAL").arg("return redis.sha1hex('')").arg(0).query_async(&mut c).await.unwrap();
    assert_eq!(sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    // Read-only scripts cannot write.
    let err = cmd("EVAL_RO")
        .arg("return redis.call('SET', 'k', 'v')")
        .arg(0)
        .query_async::<Value>(&mut c)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    // A script is atomic: a long read-only script blocks others, which get BUSY after the
    // threshold; SCRIPT KILL stops it.
    let mut runner = client.get_multiplexed_async_connection().await.unwrap();
    let long = tokio::spawn(async move {
        cmd("EVAL")
            .arg("local i = 0 while true do i = i + 1 end")
            .arg(0)
            .query_async::<Value>(&mut runner)
            .await
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut other = client.get_multiplexed_async_connection().await.unwrap();
    let busy = cmd("GET").arg("str").query_async::<Value>(&mut other).await.unwrap_err();
    assert_eq!(busy.code(), Some("BUSY"), "{busy}");
    let _: () = cmd("SCRIPT").arg("KILL").query_async(&mut other).await.unwrap();
    let killed = long.await.unwrap().unwrap_err();
    assert!(killed.to_string().contains("killed"), "{killed}");
    assert_eq!(other.get::<_, String>("str").await.unwrap(), "text");
    // Functions.
    let lib = "#!lua name=mylib\nredis.register_function('incr2', function(keys, args) return redis.call('INCRBY', keys[1], 2 * args[1]) end)";
    let name: String = cmd("FUNCTION").arg("LOAD").arg(lib).query_async(&mut c).await.unwrap();
    assert_eq!(name, "mylib");
    let err = cmd("FUNCTION").arg("LOAD").arg(lib).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let _: String = cmd("FUNCTION").arg("LOAD").arg("REPLACE").arg(lib).query_async(&mut c).await.unwrap();
    let n: i64 = cmd("FCALL").arg("incr2").arg(1).arg("fc").arg(5).query_async(&mut c).await.unwrap();
    assert_eq!(n, 10);
    let _: () = cmd("FUNCTION").arg("FLUSH").query_async(&mut c).await.unwrap();
    let err =
        cmd("FCALL").arg("incr2").arg(1).arg("fc").arg(5).query_async::<Value>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[tokio::test]
async fn client_pause_holds_writes_or_everything_until_unpaused_or_over() {
    let (addr, mut admin) = start().await;
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut other = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = other.set("k", "before").await.unwrap();

    // WRITE: reads go on, writes wait until CLIENT UNPAUSE.
    let ok: String =
        cmd("CLIENT").arg("PAUSE").arg(60_000).arg("WRITE").query_async(&mut admin).await.unwrap();
    assert_eq!(ok, "OK");
    assert_eq!(other.get::<_, String>("k").await.unwrap(), "before");
    // (A connection of its own: a held command holds what its connection sends after it.)
    let mut writer = client.get_multiplexed_async_connection().await.unwrap();
    let mut set = tokio::spawn(async move { writer.set::<_, _, ()>("k", "after").await });
    assert!(tokio::time::timeout(Duration::from_millis(300), &mut set).await.is_err(), "the SET waits");
    assert_eq!(other.get::<_, String>("k").await.unwrap(), "before");
    let _: () = cmd("CLIENT").arg("UNPAUSE").query_async(&mut admin).await.unwrap();
    set.await.unwrap().unwrap();
    assert_eq!(other.get::<_, String>("k").await.unwrap(), "after");

    // ALL (the default): reads wait too, until the pause is over by itself.
    let _: () = cmd("CLIENT").arg("PAUSE").arg(400).query_async(&mut admin).await.unwrap();
    let mut reader = client.get_multiplexed_async_connection().await.unwrap();
    let mut get = tokio::spawn(async move { reader.get::<_, String>("k").await });
    assert!(tokio::time::timeout(Duration::from_millis(150), &mut get).await.is_err(), "the GET waits");
    assert_eq!(get.await.unwrap().unwrap(), "after");

    // Bad arguments are errors, and the connection goes on.
    let err = cmd("CLIENT").arg("PAUSE").arg("soon").query_async::<()>(&mut admin).await.unwrap_err();
    assert!(err.to_string().contains("timeout is not an integer"), "{err}");
    let err =
        cmd("CLIENT").arg("PAUSE").arg(10).arg("MAYBE").query_async::<()>(&mut admin).await.unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    assert_eq!(other.get::<_, String>("k").await.unwrap(), "after");
}
