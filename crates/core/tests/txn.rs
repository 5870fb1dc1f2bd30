//! Transaction behaviour on both engines: conflicts, read-only, limits, reopen, change feed.

use std::sync::{Arc, Barrier};
use strata_core::{Error, Options, Store};

fn stores() -> Vec<(Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let disk = Store::open(dir.path(), Options::default()).unwrap();
    vec![(Store::memory(), None), (disk, Some(dir))]
}

#[test]
fn two_writers_of_one_key_exactly_one_commits() {
    for (store, _dir) in stores() {
        let ks = store.keyspace("t").unwrap();
        for begin in [Store::begin, Store::begin_snapshot] {
            let mut a = begin(&store);
            let mut b = begin(&store);
            a.set(&ks, b"x".to_vec(), b"a".to_vec()).unwrap();
            b.set(&ks, b"x".to_vec(), b"b".to_vec()).unwrap();
            a.commit().unwrap();
            let err = b.commit().unwrap_err();
            assert!(matches!(err, Error::Conflict) && err.is_retryable());
            assert_eq!(store.begin_read_only().get(&ks, b"x").unwrap(), Some(b"a".to_vec()));
        }
    }
}

#[test]
fn concurrent_increments_never_lose_an_update() {
    for (store, _dir) in stores() {
        let ks = store.keyspace("t").unwrap();
        let threads = 8;
        let per_thread = 25;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (store, ks, barrier) = (store.clone(), ks.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut retries = 0;
                    for _ in 0..per_thread {
                        loop {
                            let mut txn = store.begin_snapshot();
                            let n = txn
                                .get(&ks, b"n")
                                .unwrap()
                                .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()));
                            txn.set(&ks, b"n".to_vec(), (n + 1).to_le_bytes().to_vec()).unwrap();
                            match txn.commit() {
                                Ok(_) => break,
                                Err(Error::Conflict) => retries += 1,
                                Err(err) => panic!("{err}"),
                            }
                        }
                    }
                    retries
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let n = store.begin_read_only().get(&ks, b"n").unwrap().unwrap();
        assert_eq!(u64::from_le_bytes(n.try_into().unwrap()), (threads * per_thread) as u64);
    }
}

#[test]
fn serializable_detects_write_skew_snapshot_allows_it() {
    for (store, _dir) in stores() {
        let ks = store.keyspace("t").unwrap();
        let mut init = store.begin();
        init.set(&ks, b"a".to_vec(), b"1".to_vec()).unwrap();
        init.set(&ks, b"b".to_vec(), b"1".to_vec()).unwrap();
        init.commit().unwrap();
        // Each reads both and clears a different one (the on-call doctors anomaly).
        for (begin, skew_allowed) in [(Store::begin as fn(&Store) -> _, false), (Store::begin_snapshot, true)]
        {
            let mut t1 = begin(&store);
            let mut t2 = begin(&store);
            for t in [&t1, &t2] {
                assert_eq!(t.scan_prefix(&ks, b"").count(), 2);
            }
            t1.set(&ks, b"a".to_vec(), b"0".to_vec()).unwrap();
            t2.set(&ks, b"b".to_vec(), b"0".to_vec()).unwrap();
            t1.commit().unwrap();
            assert_eq!(t2.commit().is_ok(), skew_allowed);
            let mut reset = store.begin();
            reset.set(&ks, b"a".to_vec(), b"1".to_vec()).unwrap();
            reset.set(&ks, b"b".to_vec(), b"1".to_vec()).unwrap();
            reset.commit().unwrap();
        }
    }
}

#[test]
fn serializable_detects_phantoms_in_scanned_ranges() {
    for (store, _dir) in stores() {
        let ks = store.keyspace("t").unwrap();
        let mut reader = store.begin();
        assert_eq!(reader.scan_prefix(&ks, b"row/").count(), 0);
        let mut writer = store.begin();
        writer.set(&ks, b"row/1".to_vec(), b"x".to_vec()).unwrap();
        writer.commit().unwrap();
        reader.set(&ks, b"summary".to_vec(), b"0 rows".to_vec()).unwrap();
        assert!(matches!(reader.commit(), Err(Error::Conflict)));
        // A write outside the scanned range does not conflict.
        let mut reader = store.begin();
        assert_eq!(reader.scan_prefix(&ks, b"row/").count(), 1);
        let mut writer = store.begin();
        writer.set(&ks, b"other".to_vec(), b"x".to_vec()).unwrap();
        writer.commit().unwrap();
        reader.set(&ks, b"summary".to_vec(), b"1 row".to_vec()).unwrap();
        reader.commit().unwrap();
    }
}

#[test]
fn read_only_transactions_refuse_writes_and_see_a_snapshot() {
    for (store, _dir) in stores() {
        let ks = store.keyspace("t").unwrap();
        let mut reader = store.begin_read_only();
        assert!(matches!(reader.set(&ks, b"k".to_vec(), b"v".to_vec()), Err(Error::ReadOnly)));
        let mut w = store.begin();
        w.set(&ks, b"k".to_vec(), b"v".to_vec()).unwrap();
        w.commit().unwrap();
        assert_eq!(reader.get(&ks, b"k").unwrap(), None);
        assert_eq!(store.begin_read_only().get(&ks, b"k").unwrap(), Some(b"v".to_vec()));
    }
}

#[test]
fn oversize_keys_and_values_are_invalid_input() {
    let store = Store::memory();
    let ks = store.keyspace("t").unwrap();
    let mut txn = store.begin();
    let big_key = vec![0u8; Options::default().max_key_bytes + 1];
    assert!(matches!(txn.set(&ks, big_key, b"v".to_vec()), Err(Error::InvalidInput(_))));
    let big_value = vec![0u8; Options::default().max_value_bytes + 1];
    assert!(matches!(txn.set(&ks, b"k".to_vec(), big_value), Err(Error::InvalidInput(_))));
    assert!(store.keyspace("_feed").is_err());
}

#[test]
fn commits_survive_reopen_and_sequence_numbers_continue() {
    let dir = tempfile::tempdir().unwrap();
    let seq = {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        assert!(
            matches!(Store::open(dir.path(), Options::default()), Err(Error::Unavailable(msg)) if msg.contains("in use"))
        );
        let ks = store.keyspace("t").unwrap();
        let mut txn = store.begin();
        txn.set(&ks, b"k".to_vec(), b"v".to_vec()).unwrap();
        txn.commit().unwrap()
    };
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let ks = store.keyspace("t").unwrap();
    assert_eq!(store.begin_read_only().get(&ks, b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(store.last_seq(), seq);
    let mut txn = store.begin();
    txn.set(&ks, b"k2".to_vec(), b"v".to_vec()).unwrap();
    assert_eq!(txn.commit().unwrap(), seq + 1);
}

#[test]
fn change_feed_delivers_records_in_commit_order() {
    for (store, _dir) in stores() {
        let ks = store.keyspace("t").unwrap();
        let mut rx = store.subscribe();
        let mut seqs = Vec::new();
        for i in 0..5u8 {
            let mut txn = store.begin();
            txn.set(&ks, vec![i], vec![i]).unwrap();
            txn.emit("test", vec![i, 0]).unwrap();
            txn.emit("test", vec![i, 1]).unwrap();
            seqs.push(txn.commit().unwrap());
        }
        // An aborted transaction's records never appear.
        let mut aborted = store.begin();
        aborted.emit("test", vec![99]).unwrap();
        aborted.rollback();
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), *seqs.last().unwrap());
        let changes = store.read_changes(seqs[1], 100).unwrap();
        let got: Vec<_> = changes.iter().map(|c| (c.seq, c.source.as_str(), c.payload.clone())).collect();
        let want: Vec<_> = (1..5u8)
            .flat_map(|i| [(seqs[i as usize], "test", vec![i, 0]), (seqs[i as usize], "test", vec![i, 1])])
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn refreshing_a_snapshot_sees_new_commits_and_guards_own_writes() {
    for (store, _dir) in stores() {
        let ks = store.keyspace("t").unwrap();
        let mut t1 = store.begin_snapshot();
        t1.set(&ks, b"mine".to_vec(), b"1".to_vec()).unwrap();
        let mut other = store.begin();
        other.set(&ks, b"theirs".to_vec(), b"2".to_vec()).unwrap();
        other.commit().unwrap();
        assert_eq!(t1.get(&ks, b"theirs").unwrap(), None);
        t1.refresh_snapshot().unwrap();
        assert_eq!(t1.get(&ks, b"theirs").unwrap(), Some(b"2".to_vec()));
        assert_eq!(t1.get(&ks, b"mine").unwrap(), Some(b"1".to_vec()));
        t1.commit().unwrap();

        // A key this transaction wrote, written by a commit since: refreshing is a conflict.
        let mut t2 = store.begin_snapshot();
        t2.set(&ks, b"mine".to_vec(), b"3".to_vec()).unwrap();
        let mut other = store.begin();
        other.set(&ks, b"mine".to_vec(), b"4".to_vec()).unwrap();
        other.commit().unwrap();
        assert!(matches!(t2.refresh_snapshot(), Err(Error::Conflict)));
        assert!(store.begin().refresh_snapshot().is_err(), "serializable transactions keep their snapshot");
    }
}

#[test]
fn commit_visible_runs_once_the_commit_is_visible_and_only_if_it_commits() {
    for (store, _dir) in stores() {
        let ks = store.keyspace("t").unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut a = store.begin_snapshot();
        let mut b = store.begin_snapshot();
        a.set(&ks, b"x".to_vec(), b"a".to_vec()).unwrap();
        b.set(&ks, b"x".to_vec(), b"b".to_vec()).unwrap();
        let hook = |name: &'static str| {
            let (store, ks, seen) = (store.clone(), ks.clone(), seen.clone());
            move || {
                let value = store.begin_read_only().get(&ks, b"x").unwrap();
                seen.lock().unwrap().push((name, value));
            }
        };
        a.commit_visible(hook("a")).unwrap();
        assert!(matches!(b.commit_visible(hook("b")), Err(Error::Conflict)));
        // `a`'s hook saw its write, before `commit_visible` returned; `b`'s never ran.
        assert_eq!(*seen.lock().unwrap(), vec![("a", Some(b"a".to_vec()))]);
    }
}

/// An unsynced commit is visible when it returns, and the commit thread makes it durable on
/// its own soon after (the feed, which hears of a commit only after its fsync, reaches it)
/// though nobody waits; it survives reopening.
#[test]
fn an_unsynced_commit_is_visible_at_once_and_synced_without_a_waiter() {
    for (store, dir) in stores() {
        let ks = store.keyspace("t").unwrap();
        let acknowledged = store.subscribe();
        let mut txn = store.begin_snapshot();
        txn.set(&ks, b"lease".to_vec(), b"held".to_vec()).unwrap();
        let seq = txn.commit_unsynced().unwrap();
        assert_eq!(store.begin_read_only().get(&ks, b"lease").unwrap(), Some(b"held".to_vec()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while *acknowledged.borrow() < seq {
            assert!(std::time::Instant::now() < deadline, "no fsync covered the unsynced commit");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if let Some(dir) = dir {
            drop(store);
            let reopened = Store::open(dir.path(), Options::default()).unwrap();
            let ks = reopened.keyspace("t").unwrap();
            assert_eq!(reopened.begin_read_only().get(&ks, b"lease").unwrap(), Some(b"held".to_vec()));
        }
    }
}

/// `Store::durable` resolves once the fsync covering a commit is done, for many tasks at
/// once, without a thread parked per commit; a commit already covered resolves at once.
#[test]
fn unsynced_commits_are_awaited_durable_from_tasks() {
    for (store, dir) in stores() {
        let ks = store.keyspace("t").unwrap();
        let acknowledged = store.subscribe();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let seqs = runtime.block_on(async {
            let tasks: Vec<_> = (0..32u32)
                .map(|i| {
                    let (store, ks) = (store.clone(), ks.clone());
                    tokio::spawn(async move {
                        let mut txn = store.begin_snapshot();
                        txn.set(&ks, i.to_be_bytes().to_vec(), b"sent".to_vec()).unwrap();
                        let seq = txn.commit_unsynced().unwrap();
                        assert_eq!(store.durable(seq).await.unwrap(), seq);
                        seq
                    })
                })
                .collect();
            let mut seqs = Vec::new();
            for task in tasks {
                seqs.push(task.await.unwrap());
            }
            seqs
        });
        let highest = *seqs.iter().max().unwrap();
        if dir.is_some() {
            assert!(*acknowledged.borrow() >= highest, "the fsync covered every awaited commit");
        }
        assert_eq!(runtime.block_on(store.durable(highest)).unwrap(), highest, "already durable");
        if let Some(dir) = dir {
            drop(store);
            let reopened = Store::open(dir.path(), Options::default()).unwrap();
            let ks = reopened.keyspace("t").unwrap();
            assert_eq!(reopened.begin_read_only().scan_prefix(&ks, b"").count(), 32);
        }
    }
}
