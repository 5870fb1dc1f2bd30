//! `LOCK.*` commands and the Redlock pattern, driven with the `redis` crate against
//! servers on port 0.

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value, cmd};
use std::sync::Arc;
use std::time::Duration;
use strata_cache::{Cache, CacheOptions};
use strata_core::{Store, SystemClock};
use strata_lock::redlock::Redlock;
use strata_lock::{LockConfig, Locks};
use tokio::net::TcpListener;

async fn start() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cache = Cache::new(CacheOptions::default(), Arc::new(SystemClock));
    let locks = Locks::open(Store::memory(), LockConfig::default()).unwrap();
    let config = strata_resp::RespConfig::default();
    tokio::spawn(strata_resp::serve(listener, cache, Some(locks), config, std::future::pending()));
    addr
}

async fn connect(addr: &str) -> MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}/")).unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn run(c: &mut MultiplexedConnection, line: &str) -> RedisResult<Value> {
    let mut command = cmd(line.split(' ').next().unwrap());
    for arg in line.split(' ').skip(1) {
        command.arg(arg);
    }
    command.query_async(c).await
}

/// Polls LOCK.INFO until `resource` has a waiter.
async fn wait_for_waiter(c: &mut MultiplexedConnection, resource: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info: std::collections::HashMap<String, Value> =
            redis::from_redis_value(&run(c, &format!("LOCK.INFO {resource}")).await.unwrap()).unwrap();
        if matches!(&info["waiters"], Value::Array(w) if !w.is_empty()) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "nobody queued on {resource}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn code(result: RedisResult<Value>) -> String {
    let err = result.expect_err("an error reply");
    err.code().unwrap_or_default().to_string()
}

#[tokio::test]
async fn lock_commands_over_resp() {
    let addr = start().await;
    let mut c = connect(&addr).await;
    let Value::Int(token) = run(&mut c, "LOCK.ACQUIRE order:1 OWNER alice TTL 30000").await.unwrap() else {
        panic!("a token")
    };
    assert_eq!(run(&mut c, "LOCK.ACQUIRE order:1 OWNER bob TTL 30000").await.unwrap(), Value::Nil);
    assert_eq!(code(run(&mut c, "LOCK.RELEASE order:1 OWNER bob").await), "NOTOWNER");
    assert_eq!(run(&mut c, "LOCK.EXTEND order:1 OWNER alice TTL 60000").await.unwrap(), Value::Int(token));
    let info: std::collections::HashMap<String, Value> =
        redis::from_redis_value(&run(&mut c, "LOCK.INFO order:1").await.unwrap()).unwrap();
    let holders: Vec<std::collections::HashMap<String, Value>> =
        redis::from_redis_value(&info["holders"]).unwrap();
    assert_eq!(holders[0]["owner"], Value::BulkString(b"alice".to_vec()));
    assert_eq!(holders[0]["token"], Value::Int(token));

    // Bob waits on another connection; alice's release hands him the lock, higher token.
    let mut bob = connect(&addr).await;
    let waiting =
        tokio::spawn(
            async move { run(&mut bob, "LOCK.ACQUIRE order:1 OWNER bob TTL 30000 WAIT 5000").await },
        );
    wait_for_waiter(&mut c, "order:1").await;
    assert_eq!(run(&mut c, "LOCK.RELEASE order:1 OWNER alice").await.unwrap(), Value::Int(1));
    let Value::Int(bobs) = waiting.await.unwrap().unwrap() else { panic!("bob's token") };
    assert!(bobs > token);

    // Two owners waiting on each other: the second wait is a DEADLOCK at once.
    run(&mut c, "LOCK.ACQUIRE a OWNER p TTL 30000").await.unwrap();
    run(&mut c, "LOCK.ACQUIRE b OWNER q TTL 30000").await.unwrap();
    let mut p = connect(&addr).await;
    let p_waits =
        tokio::spawn(async move { run(&mut p, "LOCK.ACQUIRE b OWNER p TTL 30000 WAIT 10000").await });
    wait_for_waiter(&mut c, "b").await;
    assert_eq!(code(run(&mut c, "LOCK.ACQUIRE a OWNER q TTL 30000 WAIT 10000").await), "DEADLOCK");
    run(&mut c, "LOCK.RELEASE b OWNER q").await.unwrap();
    assert!(matches!(p_waits.await.unwrap().unwrap(), Value::Int(_)));

    // Several resources, all or nothing; shared readers.
    assert_eq!(run(&mut c, "LOCK.ACQUIRE a x y OWNER r TTL 1000").await.unwrap(), Value::Nil);
    assert!(matches!(run(&mut c, "LOCK.ACQUIRE x y OWNER r TTL 1000").await.unwrap(), Value::Int(_)));
    assert_eq!(run(&mut c, "LOCK.RELEASE x y OWNER r").await.unwrap(), Value::Int(2));
    assert!(matches!(run(&mut c, "LOCK.ACQUIRE doc OWNER r1 TTL 1000 SHARED").await.unwrap(), Value::Int(_)));
    assert!(matches!(run(&mut c, "LOCK.ACQUIRE doc OWNER r2 TTL 1000 SHARED").await.unwrap(), Value::Int(_)));
    assert_eq!(run(&mut c, "LOCK.ACQUIRE doc OWNER w TTL 1000").await.unwrap(), Value::Nil);

    // Bad input is an error and the connection goes on.
    assert_eq!(code(run(&mut c, "LOCK.ACQUIRE r TTL 10").await), "ERR");
    assert_eq!(code(run(&mut c, "LOCK.ACQUIRE r OWNER o TTL soon").await), "ERR");
    assert_eq!(code(run(&mut c, "LOCK.ACQUIRE r OWNER o TTL 0").await), "ERR");
    assert_eq!(code(run(&mut c, "LOCK.NOPE r").await), "ERR");
    assert_eq!(run(&mut c, "PING").await.unwrap(), Value::SimpleString("PONG".into()));
}

#[tokio::test]
async fn the_plain_command_pattern_works() {
    let addr = start().await;
    let mut c = connect(&addr).await;
    let release = redis::Script::new(
        r#"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end"#,
    );
    let set: Option<String> = cmd("SET")
        .arg("lock:job")
        .arg("token-a")
        .arg("NX")
        .arg("PX")
        .arg(30000)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(set.as_deref(), Some("OK"));
    let again: Option<String> = cmd("SET")
        .arg("lock:job")
        .arg("token-b")
        .arg("NX")
        .arg("PX")
        .arg(30000)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(again, None);
    let n: i64 = release.key("lock:job").arg("token-b").invoke_async(&mut c).await.unwrap();
    assert_eq!(n, 0, "another value does not release");
    let n: i64 = release.key("lock:job").arg("token-a").invoke_async(&mut c).await.unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn redlock_takes_a_majority_of_three() {
    let addrs = [start().await, start().await, start().await];
    let urls: Vec<String> = addrs.iter().map(|a| format!("redis://{a}/")).collect();
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    // Generous per-instance timeouts: a loaded test machine must not lose votes.
    let patient = |mut r: Redlock| {
        r.instance_timeout = Duration::from_secs(2);
        r
    };
    let first = patient(Redlock::connect(&refs).await);
    let second = patient(Redlock::connect(&refs).await);
    assert_eq!(first.quorum(), 2);
    let lease = first.lock("auction:7", Duration::from_secs(10)).await.expect("a free lock");
    assert!(lease.validity < Duration::from_secs(10) && lease.validity > Duration::from_secs(9));
    let mut quick = patient(Redlock::connect(&refs).await);
    quick.retry_count = 1;
    assert!(quick.lock("auction:7", Duration::from_secs(10)).await.is_none(), "held");
    // Each instance holds the first client's value.
    for addr in &addrs {
        let value: Option<String> =
            cmd("GET").arg("auction:7").query_async(&mut connect(addr).await).await.unwrap();
        assert_eq!(value.as_deref(), Some(lease.value.as_str()));
    }
    let extended = first.extend(&lease, Duration::from_secs(20)).await.expect("extended");
    assert!(extended.validity > Duration::from_secs(19));
    first.unlock(&lease).await;
    assert!(second.lock("auction:7", Duration::from_secs(10)).await.is_some());

    // One instance down: two votes still make a majority; two down: no lock.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("redis://{}/", l.local_addr().unwrap())
    };
    let one_down = patient(Redlock::connect(&[refs[0], refs[1], &dead]).await);
    assert!(one_down.lock("job:1", Duration::from_secs(5)).await.is_some());
    let mut two_down = patient(Redlock::connect(&[refs[0], &dead, &dead]).await);
    two_down.retry_count = 0;
    assert!(two_down.lock("job:2", Duration::from_secs(5)).await.is_none());
    // A failed attempt leaves nothing behind on the live instance.
    let left: Option<String> =
        cmd("GET").arg("job:2").query_async(&mut connect(&addrs[0]).await).await.unwrap();
    assert_eq!(left, None);
}

/// A LOCK.ACQUIRE that waits, pipelined behind other requests: their replies are sent at
/// once, not held until the lock is granted.
#[tokio::test]
async fn replies_before_a_waiting_acquire_are_sent_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = start().await;
    let mut holder = connect(&addr).await;
    assert!(matches!(run(&mut holder, "LOCK.ACQUIRE r OWNER a TTL 30000").await.unwrap(), Value::Int(_)));
    let mut waiter = tokio::net::TcpStream::connect(&addr).await.unwrap();
    waiter.write_all(b"PING\r\nLOCK.ACQUIRE r OWNER b TTL 30000 WAIT 5000\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), waiter.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"+PONG\r\n");
    wait_for_waiter(&mut holder, "r").await;
    assert_eq!(run(&mut holder, "LOCK.RELEASE r OWNER a").await.unwrap(), Value::Int(1));
    let n = tokio::time::timeout(Duration::from_secs(5), waiter.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b":"), "a fencing token: {:?}", String::from_utf8_lossy(&buf[..n]));
}
