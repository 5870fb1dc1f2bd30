//! Block-level tests through the async API on a real store.

use super::*;

fn acquire(resources: &[&str], owner: &str, ttl_ms: u64, wait_ms: u64) -> Acquire {
    Acquire {
        resources: resources.iter().map(|s| s.to_string()).collect(),
        owner: owner.into(),
        ttl: Duration::from_millis(ttl_ms),
        wait: Duration::from_millis(wait_ms),
        mode: Mode::Exclusive,
    }
}

fn open(dir: &std::path::Path) -> (Store, Locks) {
    // A store just dropped is released once the lock block's threads have let it go.
    let deadline = Instant::now() + Duration::from_secs(10);
    let store = loop {
        match Store::open(dir, Default::default()) {
            Ok(store) => break store,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("reopening the store: {e}"),
        }
    };
    let locks = Locks::open(store.clone(), LockConfig::default()).unwrap();
    (store, locks)
}

#[tokio::test]
async fn tokens_increase_across_a_restart_and_holds_survive_it() {
    let dir = tempfile::tempdir().unwrap();
    let (first, held) = {
        let (store, locks) = open(dir.path());
        let a = locks.acquire(acquire(&["ticket:1"], "alice", 60_000, 0)).await.unwrap().unwrap();
        let b = locks.acquire(acquire(&["ticket:2"], "bob", 60_000, 0)).await.unwrap().unwrap();
        assert!(b.token > a.token);
        locks.release("bob", &["ticket:2".into()]).await.unwrap();
        drop(locks);
        drop(store);
        (b.token, a)
    };
    let (_store, locks) = open(dir.path());
    let info = locks.info("ticket:1");
    assert_eq!(info.holders.len(), 1);
    assert_eq!((info.holders[0].owner.as_str(), info.holders[0].token), ("alice", held.token));
    assert!(info.holders[0].ttl_left > Duration::from_secs(50));
    assert!(locks.info("ticket:2").holders.is_empty(), "the release was durable");
    assert!(locks.acquire(acquire(&["ticket:1"], "carol", 1000, 0)).await.unwrap().is_none());
    let again = locks.acquire(acquire(&["ticket:2"], "carol", 1000, 0)).await.unwrap().unwrap();
    assert!(again.token > first, "{} > {first}", again.token);
}

#[tokio::test]
async fn a_lapsed_lease_passes_to_the_waiter_with_a_higher_token() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, locks) = open(dir.path());
    let holder = locks.acquire(acquire(&["cron"], "worker-1", 100, 0)).await.unwrap().unwrap();
    let waiter = locks.acquire(acquire(&["cron"], "worker-2", 10_000, 5_000)).await.unwrap().unwrap();
    assert!(waiter.token > holder.token);
    // The stale holder can neither extend nor release.
    assert!(matches!(
        locks.extend("worker-1", "cron", Duration::from_secs(1)).await,
        Err(LockError::NotOwner(_))
    ));
    assert!(matches!(locks.release("worker-1", &["cron".into()]).await, Err(LockError::NotOwner(_))));
    assert_eq!(locks.info("cron").holders[0].owner, "worker-2");
    let extended = locks.extend("worker-2", "cron", Duration::from_secs(30)).await.unwrap();
    assert_eq!(extended.token, waiter.token);
}

#[tokio::test]
async fn a_wait_times_out_and_deadlocks_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, locks) = open(dir.path());
    locks.acquire(acquire(&["a"], "p", 60_000, 0)).await.unwrap().unwrap();
    locks.acquire(acquire(&["b"], "q", 60_000, 0)).await.unwrap().unwrap();
    let started = Instant::now();
    assert!(locks.acquire(acquire(&["a"], "q", 1000, 100)).await.unwrap().is_none());
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(locks.info("a").waiters.is_empty(), "a timed-out waiter leaves the queue");
    // p waits for b (held by q); q then asking for a (held by p) is a cycle.
    let p_waits = {
        let locks = locks.clone();
        tokio::spawn(async move { locks.acquire(acquire(&["b"], "p", 60_000, 10_000)).await })
    };
    while locks.info("b").waiters.is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    match locks.acquire(acquire(&["a"], "q", 1000, 10_000)).await {
        Err(LockError::Deadlock(cycle)) => assert_eq!(cycle, ["p"]),
        other => panic!("expected a deadlock, got {other:?}"),
    }
    locks.release("q", &["b".into()]).await.unwrap();
    assert!(p_waits.await.unwrap().unwrap().is_some());
}

#[tokio::test]
async fn multi_resource_locks_are_all_or_nothing_and_shared_locks_share() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, locks) = open(dir.path());
    locks.acquire(acquire(&["seat:2"], "x", 60_000, 0)).await.unwrap().unwrap();
    assert!(locks.acquire(acquire(&["seat:1", "seat:2", "seat:3"], "y", 60_000, 0)).await.unwrap().is_none());
    assert!(locks.info("seat:1").holders.is_empty() && locks.info("seat:3").holders.is_empty());
    let both = locks.acquire(acquire(&["seat:3", "seat:1"], "y", 60_000, 0)).await.unwrap().unwrap();
    assert_eq!(both.resources, ["seat:1", "seat:3"]);
    assert_eq!(locks.release("y", &["seat:1".into(), "seat:3".into()]).await.unwrap(), 2);

    let read = |owner: &str| Acquire { mode: Mode::Shared, ..acquire(&["doc"], owner, 60_000, 0) };
    locks.acquire(read("r1")).await.unwrap().unwrap();
    locks.acquire(read("r2")).await.unwrap().unwrap();
    assert_eq!(locks.info("doc").holders.len(), 2);
    assert!(locks.acquire(acquire(&["doc"], "w", 60_000, 0)).await.unwrap().is_none());
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, locks) = open(dir.path());
    for bad in [acquire(&[], "o", 1000, 0), acquire(&["r"], "", 1000, 0), acquire(&["r"], "o", 0, 0)] {
        assert!(matches!(locks.acquire(bad).await, Err(LockError::Invalid(_))));
    }
    let long = "x".repeat(513);
    assert!(matches!(locks.acquire(acquire(&[&long], "o", 1000, 0)).await, Err(LockError::Invalid(_))));
}

/// Many clients acquire and release with random timing; from the recorded history, no two
/// leases on a resource overlap, and tokens follow the order of the leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_history_of_concurrent_clients() {
    use rand::Rng;
    let dir = tempfile::tempdir().unwrap();
    let (_store, locks) = open(dir.path());
    let history = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for client in 0..16 {
        let (locks, history) = (locks.clone(), history.clone());
        tasks.push(tokio::spawn(async move {
            let owner = format!("client-{client}");
            while Instant::now() < deadline {
                let resource = format!("r{}", rand::rng().random_range(0..3));
                let Some(lease) = locks.acquire(acquire(&[&resource], &owner, 60_000, 200)).await.unwrap()
                else {
                    continue;
                };
                let start = Instant::now();
                let hold = rand::rng().random_range(0..3);
                tokio::time::sleep(Duration::from_millis(hold)).await;
                let end = Instant::now();
                history.lock().unwrap().push((resource.clone(), lease.token, start, end));
                locks.release(&owner, &[resource]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut history = history.lock().unwrap().clone();
    assert!(history.len() > 50, "enough leases to check: {}", history.len());
    history.sort_by_key(|(r, token, _, _)| (r.clone(), *token));
    for pair in history.windows(2) {
        let ((r1, t1, _, end1), (r2, t2, start2, _)) = (&pair[0], &pair[1]);
        if r1 == r2 {
            assert!(t2 > t1);
            assert!(start2 >= end1, "leases {t1} and {t2} on {r1} overlap");
        }
    }
}
