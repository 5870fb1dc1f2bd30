//! Tests of the queue block through its Rust API, with a manual clock.

use super::*;
use strata_core::ManualClock;

fn queues() -> (Queues, ManualClock) {
    let clock = ManualClock::new(1_700_000_000_000);
    let q = Queues::open(Store::memory(), Arc::new(clock.clone()), Limits::default()).unwrap();
    (q, clock)
}

fn send(body: &str) -> Send {
    Send { body: body.into(), ..Send::default() }
}

fn fifo_send(body: &str, group: &str) -> Send {
    Send { body: body.into(), group: Some(group.into()), ..Send::default() }
}

#[test]
fn send_receive_delete_and_visibility() {
    let (q, clock) = queues();
    q.create_queue("jobs", Attributes::default(), BTreeMap::new()).unwrap();
    let sent = q.send("jobs", send("hello")).unwrap();
    assert_eq!(sent.md5_of_body, "5d41402abc4b2a76b9719d911017c592");
    let got = q.receive("jobs", 10, None).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.body, "hello");
    assert_eq!(got[0].message.receive_count, 1);
    assert!(q.receive("jobs", 10, None).unwrap().is_empty(), "hidden while in flight");
    assert_eq!(q.counts("jobs").unwrap().not_visible, 1);
    clock.advance_ms(30_001);
    let again = q.receive("jobs", 10, None).unwrap();
    assert_eq!(again[0].message.receive_count, 2, "redelivered after the visibility timeout");
    assert!(
        matches!(q.delete("jobs", &got[0].receipt_handle), Err(QueueError::ReceiptHandleInvalid(_))),
        "the first handle stopped working once the message was received again"
    );
    q.change_visibility("jobs", &again[0].receipt_handle, 0).unwrap();
    let third = q.receive("jobs", 1, Some(5)).unwrap();
    assert_eq!(third.len(), 1, "visibility 0 made it visible at once");
    q.delete("jobs", &third[0].receipt_handle).unwrap();
    q.delete("jobs", &third[0].receipt_handle).unwrap(); // deleting twice is fine, as in SQS
    assert_eq!(q.counts("jobs").unwrap(), Counts::default());
    assert!(matches!(q.delete("jobs", "garbage"), Err(QueueError::ReceiptHandleInvalid(_))));
}

#[test]
fn delays_and_retention() {
    let (q, clock) = queues();
    let attrs = Attributes { delay_secs: 10, retention_secs: 60, ..Attributes::default() };
    q.create_queue("later", attrs, BTreeMap::new()).unwrap();
    q.send("later", send("queue delay")).unwrap();
    q.send("later", Send { delay_secs: Some(0), ..send("now") }).unwrap();
    let got = q.receive("later", 10, None).unwrap();
    assert_eq!(got.iter().map(|r| r.message.body.as_str()).collect::<Vec<_>>(), ["now"]);
    assert_eq!(q.counts("later").unwrap().delayed, 1);
    clock.advance_ms(10_000);
    assert_eq!(q.receive("later", 10, None).unwrap()[0].message.body, "queue delay");
    q.send("later", send("old")).unwrap();
    clock.advance_ms(61_000);
    assert!(q.receive("later", 10, None).unwrap().is_empty(), "past retention, messages are gone");
    q.send("later", send("fresh")).unwrap();
    clock.advance_ms(61_000);
    assert_eq!(q.expire(100).unwrap(), 1);
}

#[test]
fn dead_letters_after_max_receives_and_moving_back() {
    let (q, clock) = queues();
    q.create_queue("dlq", Attributes::default(), BTreeMap::new()).unwrap();
    let redrive = Redrive { dead_letter_queue: "dlq".into(), max_receive_count: 2 };
    q.create_queue("work", Attributes { redrive: Some(redrive), ..Attributes::default() }, BTreeMap::new())
        .unwrap();
    q.send("work", send("poison")).unwrap();
    for _ in 0..2 {
        assert_eq!(q.receive("work", 1, Some(1)).unwrap().len(), 1);
        clock.advance_ms(1_001);
    }
    assert!(q.receive("work", 1, None).unwrap().is_empty(), "the third receive moved it");
    let parked = q.receive("dlq", 1, Some(0)).unwrap();
    assert_eq!(parked[0].message.body, "poison");
    assert_eq!(q.dead_letter_sources("dlq").unwrap(), ["work"]);
    assert_eq!(q.move_messages("dlq", None, 10).unwrap(), 1);
    assert_eq!(q.receive("work", 1, None).unwrap()[0].message.receive_count, 1, "back with a fresh count");
}

#[test]
fn fifo_groups_keep_order_and_spread_over_workers() {
    let (q, clock) = queues();
    let attrs = Attributes { fifo: true, content_based_dedup: true, ..Attributes::default() };
    q.create_queue("orders.fifo", attrs, BTreeMap::new()).unwrap();
    for i in 0..3 {
        q.send("orders.fifo", fifo_send(&format!("a{i}"), "A")).unwrap();
        q.send("orders.fifo", fifo_send(&format!("b{i}"), "B")).unwrap();
    }
    // Content-based deduplication: the same body within five minutes is the same message.
    let dup = q.send("orders.fifo", fifo_send("a0", "A")).unwrap();
    assert_eq!(q.counts("orders.fifo").unwrap().visible, 6, "{dup:?} was not stored twice");
    let first = q.receive("orders.fifo", 10, None).unwrap();
    let bodies: Vec<_> = first.iter().map(|r| r.message.body.as_str()).collect();
    assert_eq!(bodies, ["a0", "b0"], "one message per group in flight");
    assert!(q.receive("orders.fifo", 10, None).unwrap().is_empty(), "both groups are locked");
    q.delete("orders.fifo", &first[0].receipt_handle).unwrap();
    let next = q.receive("orders.fifo", 10, None).unwrap();
    assert_eq!(next.iter().map(|r| r.message.body.as_str()).collect::<Vec<_>>(), ["a1"]);
    // b0 comes back after its visibility timeout, still before b1.
    clock.advance_ms(30_001);
    let retry: Vec<_> =
        q.receive("orders.fifo", 10, None).unwrap().into_iter().map(|r| r.message.body).collect();
    assert!(retry.contains(&"b0".to_string()) && !retry.contains(&"b1".to_string()), "{retry:?}");
    assert!(matches!(q.send("orders.fifo", send("no group")), Err(QueueError::InvalidParameter(_))));
}

#[test]
fn backpressure_size_limits_and_names() {
    let (q, _) = queues();
    q.create_queue(
        "small",
        Attributes { max_depth: Some(2), max_message_bytes: 1024, ..Attributes::default() },
        BTreeMap::new(),
    )
    .unwrap();
    q.send("small", send("1")).unwrap();
    q.send("small", send("2")).unwrap();
    assert!(matches!(q.send("small", send("3")), Err(QueueError::Throttled { .. })));
    let capped = Queues::open(
        Store::memory(),
        Arc::new(ManualClock::new(0)),
        Limits { max_total_messages: 3, ..Limits::default() },
    )
    .unwrap();
    for name in ["a", "b"] {
        capped.create_queue(name, Attributes::default(), BTreeMap::new()).unwrap();
    }
    capped.send("a", send("1")).unwrap();
    capped.send("b", send("2")).unwrap();
    let batch = capped.send_batch("a", vec![send("3"), send("4")]).unwrap();
    assert!(
        batch[0].is_ok() && matches!(batch[1], Err(QueueError::Throttled { .. })),
        "the total bound spans queues"
    );
    assert!(matches!(
        q.send("small", send(&"x".repeat(2000))),
        Err(QueueError::MessageTooLong { limit: 1024 })
    ));
    assert!(matches!(q.send("nope", send("x")), Err(QueueError::NoSuchQueue(_))));
    assert!(q.create_queue("bad name", Attributes::default(), BTreeMap::new()).is_err());
    assert!(q.create_queue("plain.fifo", Attributes::default(), BTreeMap::new()).is_err());
    assert!(matches!(
        q.create_queue("small", Attributes::default(), BTreeMap::new()),
        Err(QueueError::QueueExists(_))
    ));
    q.purge("small").unwrap();
    q.send("small", send("after purge")).unwrap();
    assert_eq!(q.list_queues("sm").unwrap(), ["small"]);
    q.delete_queue("small").unwrap();
    assert!(q.list_queues("").unwrap().is_empty());
}

#[test]
fn redrive_allow_policies_decide_who_may_dead_letter() {
    let (q, _) = queues();
    let allow = |permission: &str| Attributes {
        redrive_allow: Some(format!(
            r#"{{"redrivePermission":"{permission}","sourceQueueArns":["arn:aws:sqs:us-east-1:000000000000:ok"]}}"#
        )),
        ..Attributes::default()
    };
    q.create_queue("closed", allow("denyAll"), BTreeMap::new()).unwrap();
    q.create_queue("picky", allow("byQueue"), BTreeMap::new()).unwrap();
    let to = |dlq: &str| Attributes {
        redrive: Some(Redrive { dead_letter_queue: dlq.into(), max_receive_count: 3 }),
        ..Attributes::default()
    };
    assert!(q.create_queue("src", to("closed"), BTreeMap::new()).is_err());
    assert!(q.create_queue("src", to("picky"), BTreeMap::new()).is_err());
    q.create_queue("ok", to("picky"), BTreeMap::new()).unwrap();
    assert!(
        q.create_queue("x.fifo", Attributes { fifo: true, ..to("picky") }, BTreeMap::new()).is_err(),
        "kinds must match"
    );
}

#[test]
fn concurrent_receivers_through_the_head_take_every_message() {
    let (q, clock) = queues();
    q.create_queue("busy", Attributes::default(), BTreeMap::new()).unwrap();
    let total = 3 * heads::CAPACITY / 10 * 10;
    for chunk in 0..total / 10 {
        let batch = (0..10).map(|i| send(&format!("{}", chunk * 10 + i))).collect();
        q.send_batch("busy", batch).unwrap().into_iter().for_each(|r| assert!(r.is_ok()));
    }
    // Four receivers; each gives every third message back (visibility 0) and deletes the rest.
    let seen = Mutex::new(HashMap::<String, u32>::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut empty = 0;
                while empty < 3 {
                    let got = q.receive("busy", 10, None).unwrap();
                    empty = if got.is_empty() { empty + 1 } else { 0 };
                    for r in got {
                        let n: usize = r.message.body.parse().unwrap();
                        *seen.lock().unwrap().entry(r.message.body.clone()).or_default() += 1;
                        if n.is_multiple_of(3) && r.message.receive_count == 1 {
                            q.change_visibility("busy", &r.receipt_handle, 0).unwrap();
                        } else {
                            q.delete("busy", &r.receipt_handle).unwrap();
                        }
                    }
                }
            });
        }
    });
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), total, "every message was received");
    for (body, times) in &seen {
        let expected = if body.parse::<usize>().unwrap().is_multiple_of(3) { 2 } else { 1 };
        assert_eq!(*times, expected, "message {body}: received once, or twice if given back");
    }
    assert_eq!(q.counts("busy").unwrap(), Counts::default());

    // A message whose visibility ends comes back through the head; a purge empties it.
    q.send("busy", send("late")).unwrap();
    assert_eq!(q.receive("busy", 10, None).unwrap().len(), 1);
    assert!(q.receive("busy", 10, None).unwrap().is_empty());
    clock.advance_ms(30_001);
    assert_eq!(q.receive("busy", 10, None).unwrap()[0].message.body, "late");
    q.purge("busy").unwrap();
    clock.advance_ms(30_001);
    assert!(q.receive("busy", 10, None).unwrap().is_empty(), "purged messages do not come back");
    q.send("busy", send("after purge")).unwrap();
    assert_eq!(q.receive("busy", 10, None).unwrap()[0].message.body, "after purge");
}

#[test]
fn counts_split_a_queue_by_state_and_age_its_oldest_message() {
    let clock = ManualClock::new(1_700_000_000_000);
    let store = Store::memory();
    let q = Queues::open(store.clone(), Arc::new(clock.clone()), Limits::default()).unwrap();
    q.create_queue("mix", Attributes::default(), BTreeMap::new()).unwrap();
    for i in 0..5 {
        q.send("mix", send(&format!("m{i}"))).unwrap();
    }
    clock.advance_ms(2_000);
    q.send("mix", Send { delay_secs: Some(60), ..send("delayed") }).unwrap();
    q.send_batch("mix", (0..3).map(|i| send(&format!("n{i}"))).collect()).unwrap();
    assert_eq!(q.receive("mix", 2, None).unwrap().len(), 2);
    let expected = Counts { visible: 6, not_visible: 2, delayed: 1, oldest_age_ms: 2_000 };
    assert_eq!(q.counts("mix").unwrap(), expected);
    // A fresh block over the same store counts the depth again and agrees.
    let reopened = Queues::open(store, Arc::new(clock.clone()), Limits::default()).unwrap();
    assert_eq!(reopened.counts("mix").unwrap(), expected);
    // Once the visibility timeout and the delay end, everything is visible.
    clock.advance_ms(60_000);
    assert_eq!(q.counts("mix").unwrap(), Counts { visible: 9, oldest_age_ms: 62_000, ..Counts::default() });
}

/// A receive records the message's new state apart from its record, which keeps the body as
/// sent; the state holds across reopening, and expiry removes every key of the message.
#[test]
fn receives_keep_the_record_as_sent_and_expiry_leaves_no_key() {
    let clock = ManualClock::new(1_700_000_000_000);
    let store = Store::memory();
    let q = Queues::open(store.clone(), Arc::new(clock.clone()), Limits::default()).unwrap();
    q.create_queue("keep", Attributes { retention_secs: 60, ..Attributes::default() }, BTreeMap::new())
        .unwrap();
    let sent = q.send("keep", send(&"x".repeat(4096))).unwrap();
    let record = || store.begin_read_only().get(&q.inner.ks, &keys::msg("keep", &sent.id)).unwrap();
    let as_sent = record().expect("the message record");

    let first = q.receive("keep", 1, None).unwrap().pop().unwrap();
    assert_eq!(record().as_ref(), Some(&as_sent), "a receive does not rewrite the record");
    let reopened = Queues::open(store.clone(), Arc::new(clock.clone()), Limits::default()).unwrap();
    assert_eq!(reopened.counts("keep").unwrap().not_visible, 1);
    reopened.change_visibility("keep", &first.receipt_handle, 0).unwrap();
    let second = reopened.receive("keep", 1, None).unwrap().pop().unwrap();
    assert_eq!(
        (second.message.receive_count, second.message.first_receive_ms),
        (2, first.message.first_receive_ms)
    );
    assert!(matches!(
        reopened.delete("keep", &first.receipt_handle),
        Err(QueueError::ReceiptHandleInvalid(_))
    ));

    clock.advance_ms(61_000);
    assert_eq!(reopened.expire(100).unwrap(), 1);
    let txn = store.begin_read_only();
    for prefix in [keys::msgs("keep"), keys::states("keep"), keys::readies("keep")] {
        assert_eq!(txn.scan_prefix(&q.inner.ks, &prefix).count(), 0);
    }
}

/// A deferring handle's send is visible when it returns, and `durable` resolves only once the
/// fsync covering it is done; the plain handle has nothing to await.
#[test]
fn a_deferring_handle_awaits_its_fsync_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), strata_core::Options::default()).unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let q = Queues::open(store.clone(), Arc::new(clock), Limits::default()).unwrap();
    q.create_queue("jobs", Attributes::default(), BTreeMap::new()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let acknowledged = store.subscribe();

    let deferring = q.deferring();
    deferring.send("jobs", send("later")).unwrap();
    let sent_at = store.last_seq();
    assert_eq!(q.receive("jobs", 1, None).unwrap()[0].message.body, "later", "visible at once");
    runtime.block_on(deferring.durable()).unwrap();
    assert!(*acknowledged.borrow() >= sent_at, "durable resolved before the fsync covered the send");
    runtime.block_on(q.durable()).unwrap();
    drop((q, deferring, store));

    let store = Store::open(dir.path(), strata_core::Options::default()).unwrap();
    let q = Queues::open(store, Arc::new(ManualClock::new(1_700_000_100_000)), Limits::default()).unwrap();
    assert_eq!(q.receive("jobs", 1, None).unwrap()[0].message.body, "later");
}

/// Queue records are decoded once and kept (`must_queue`), but every operation still sees
/// the record its own transaction reads: a changed attribute, a deleted queue, and a queue
/// created again under the same name with other attributes.
#[test]
fn operations_see_a_queues_current_attributes() {
    let (q, clock) = queues();
    q.create_queue("jobs", Attributes::default(), BTreeMap::new()).unwrap();
    q.send("jobs", send("one")).unwrap();
    assert_eq!(q.receive("jobs", 1, None).unwrap().len(), 1);
    q.update_queue("jobs", |meta| {
        meta.attributes.visibility_timeout_secs = 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(q.queue("jobs").unwrap().attributes.visibility_timeout_secs, 1);
    q.send("jobs", send("two")).unwrap();
    assert_eq!(q.receive("jobs", 1, None).unwrap().len(), 1);
    clock.advance_ms(1_001);
    let back = q.receive("jobs", 10, None).unwrap();
    assert_eq!(back.len(), 1, "the second message, hidden for the new timeout of 1 s, is back");
    assert_eq!(back[0].message.body, "two");

    q.delete_queue("jobs").unwrap();
    assert!(matches!(q.receive("jobs", 1, None), Err(QueueError::NoSuchQueue(_))));
    assert!(matches!(q.send("jobs", send("three")), Err(QueueError::NoSuchQueue(_))));
    let attributes = Attributes { delay_secs: 5, ..Attributes::default() };
    q.create_queue("jobs", attributes, BTreeMap::new()).unwrap();
    assert_eq!(q.queue("jobs").unwrap().attributes.delay_secs, 5);
    q.send("jobs", send("four")).unwrap();
    assert!(q.receive("jobs", 1, None).unwrap().is_empty(), "delayed by the new queue's 5 s");
}
