//! The kv block's behaviour, driven through its API on a memory store.

use std::sync::Arc;
use strata_core::{Error, ManualClock, Store};
use strata_kv::{Condition, EventKind, Kv, Limits, Op, Outcome};

fn kv() -> (Kv, ManualClock) {
    let clock = ManualClock::new(1_000_000);
    (Kv::open(Store::memory(), Arc::new(clock.clone()), Limits::default()).unwrap(), clock)
}

#[test]
fn versions_increase_and_compare_and_set_checks_them() {
    let (kv, _) = kv();
    let v1 = kv.put("ns", b"k", b"a", Condition::Absent, None).unwrap();
    assert!(matches!(kv.put("ns", b"k", b"b", Condition::Absent, None), Err(Error::PreconditionFailed(_))));
    let v2 = kv.put("ns", b"k", b"b", Condition::Version(v1), None).unwrap();
    assert!(v2 > v1);
    assert!(matches!(
        kv.put("ns", b"k", b"c", Condition::Version(v1), None),
        Err(Error::PreconditionFailed(_))
    ));
    assert_eq!(kv.get("ns", b"k").unwrap().unwrap().value, b"b");
    assert!(matches!(kv.delete("ns", b"k", Condition::Version(v1)), Err(Error::PreconditionFailed(_))));
    assert!(kv.delete("ns", b"k", Condition::Version(v2)).unwrap());
    assert!(!kv.delete("ns", b"k", Condition::None).unwrap());
    // Re-created, the key never reuses an old version.
    let v3 = kv.put("ns", b"k", b"d", Condition::None, None).unwrap();
    assert!(v3 > v2);
}

#[test]
fn ttl_expires_keys_and_the_sweeper_reports_them() {
    let (kv, clock) = kv();
    kv.put("ns", b"short", b"x", Condition::None, Some(1_000)).unwrap();
    kv.put("ns", b"long", b"x", Condition::None, Some(60_000)).unwrap();
    kv.put("ns", b"forever", b"x", Condition::None, None).unwrap();
    clock.advance_ms(999);
    assert!(kv.get("ns", b"short").unwrap().is_some());
    clock.advance_ms(1);
    assert!(kv.get("ns", b"short").unwrap().is_none());
    assert_eq!(kv.list("ns", b"", None, 10).unwrap().entries.len(), 2);
    // An expired key counts as absent for conditions.
    assert!(matches!(
        kv.put("ns", b"short", b"y", Condition::Exists, None),
        Err(Error::PreconditionFailed(_))
    ));
    let (_, from) = kv.changes(0, 1000).unwrap();
    assert_eq!(kv.sweep_expired(100).unwrap(), 1);
    assert_eq!(kv.sweep_expired(100).unwrap(), 0);
    let (events, _) = kv.changes(from, 1000).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].key.as_slice(), &events[0].kind), (&b"short"[..], &EventKind::Expired));
    // Rewriting a key without TTL clears its expiry.
    kv.put("ns", b"long", b"y", Condition::None, None).unwrap();
    clock.advance_ms(120_000);
    assert_eq!(kv.sweep_expired(100).unwrap(), 0);
    assert!(kv.get("ns", b"long").unwrap().is_some());
}

#[test]
fn listing_pages_through_a_prefix_in_key_order() {
    let (kv, _) = kv();
    for i in 0..25 {
        kv.put("ns", format!("user/{i:02}").as_bytes(), b"v", Condition::None, None).unwrap();
    }
    kv.put("ns", b"users", b"v", Condition::None, None).unwrap();
    kv.put("other", b"user/99", b"v", Condition::None, None).unwrap();
    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let page = kv.list("ns", b"user/", after.as_deref(), 10).unwrap();
        assert!(page.entries.len() <= 10);
        keys.extend(page.entries.into_iter().map(|e| String::from_utf8(e.key).unwrap()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let want: Vec<_> = (0..25).map(|i| format!("user/{i:02}")).collect();
    assert_eq!(keys, want);
}

#[test]
fn batches_are_atomic() {
    let (kv, _) = kv();
    let v = kv.put("ns", b"a", b"1", Condition::None, None).unwrap();
    let ops = vec![
        Op::Put { key: b"b".to_vec(), value: b"2".to_vec(), condition: Condition::None, ttl_ms: None },
        Op::Check { key: b"a".to_vec(), condition: Condition::Version(v + 100) },
    ];
    assert!(matches!(kv.apply("ns", ops), Err(Error::PreconditionFailed(_))));
    assert!(kv.get("ns", b"b").unwrap().is_none());
    let ops = vec![
        Op::Put { key: b"b".to_vec(), value: b"2".to_vec(), condition: Condition::Absent, ttl_ms: None },
        Op::Delete { key: b"a".to_vec(), condition: Condition::Version(v) },
        Op::Check { key: b"b".to_vec(), condition: Condition::Exists },
    ];
    let outcomes = kv.apply("ns", ops).unwrap();
    assert!(matches!(outcomes[..], [Outcome::Put { .. }, Outcome::Deleted(true), Outcome::Checked]));
}

#[test]
fn changes_come_back_in_commit_order() {
    let (kv, _) = kv();
    kv.put("ns", b"a", b"1", Condition::None, None).unwrap();
    kv.put("ns", b"b", b"2", Condition::None, None).unwrap();
    kv.delete("ns", b"a", Condition::None).unwrap();
    let (events, next) = kv.changes(0, 100).unwrap();
    let summary: Vec<_> =
        events.iter().map(|e| (e.key.clone(), matches!(e.kind, EventKind::Delete))).collect();
    assert_eq!(summary, vec![(b"a".to_vec(), false), (b"b".to_vec(), false), (b"a".to_vec(), true)]);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(kv.changes(next, 100).unwrap().0, vec![]);
}

#[test]
fn bad_input_is_rejected() {
    let (kv, _) = kv();
    assert!(matches!(kv.put("bad ns", b"k", b"v", Condition::None, None), Err(Error::InvalidInput(_))));
    assert!(matches!(kv.put("ns", b"", b"v", Condition::None, None), Err(Error::InvalidInput(_))));
    let big = vec![0; Limits::default().max_value_bytes + 1];
    assert!(matches!(kv.put("ns", b"k", &big, Condition::None, None), Err(Error::InvalidInput(_))));
    assert!(matches!(kv.put("ns", b"k", b"v", Condition::None, Some(0)), Err(Error::InvalidInput(_))));
}
