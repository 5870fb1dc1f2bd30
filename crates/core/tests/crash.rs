//! Crash test: a child process commits in a loop and prints each acknowledged commit; the
//! parent SIGKILLs it at a random moment, reopens the store, and checks that every
//! acknowledged transaction is there whole and that no transaction is there in part.

use rand::Rng;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use strata_core::{Options, Store};

const DIR_VAR: &str = "STRATA_CRASH_TEST_DIR";
const WRITERS: u64 = 4;

#[test]
#[ignore = "run as a child process by crash_keeps_every_acknowledged_commit"]
fn crash_child() {
    let dir = std::env::var(DIR_VAR).expect("child needs its directory");
    let store = Store::open(dir, Options::default()).unwrap();
    let ks = store.keyspace("crash").unwrap();
    let start = store.last_seq() * 1000; // numbers distinct from earlier rounds
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, ks) = (store.clone(), ks.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let n = start + i * WRITERS + w;
                    let mut txn = store.begin();
                    for part in ["a", "b", "c"] {
                        txn.set(&ks, format!("{part}/{n:020}"), vec![7u8; 100]).unwrap();
                    }
                    txn.commit().unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {n}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn crash_keeps_every_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    let mut acked_total = 0;
    for round in 0..5 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (acks, acked_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ack ") {
                    let _ = acks.send(n.parse::<u64>().unwrap());
                }
            }
        });
        // The kill moment is random, but counted from the first acknowledgement: on a loaded
        // machine the child may take longer than any fixed delay just to open the store.
        let first = acked_rx.recv_timeout(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(rng.random_range(0..600)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let acked: Vec<u64> = first.into_iter().chain(acked_rx.try_iter()).collect();
        assert!(!acked.is_empty(), "round {round}: the child acknowledged nothing");
        acked_total += acked.len();

        let store = Store::open(dir.path(), Options::default()).unwrap();
        let ks = store.keyspace("crash").unwrap();
        let txn = store.begin_read_only();
        for n in &acked {
            for part in ["a", "b", "c"] {
                let key = format!("{part}/{n:020}");
                assert!(
                    txn.get(&ks, key.as_bytes()).unwrap().is_some(),
                    "round {round}: acknowledged {key} lost"
                );
            }
        }
        // Every transaction present is whole: each `a/n` has its `b/n` and `c/n`.
        let count = |part: &str| txn.scan_prefix(&ks, format!("{part}/").as_bytes()).count();
        let a = count("a");
        assert_eq!((a, a), (count("b"), count("c")), "round {round}: a partial transaction is visible");
        for pair in txn.scan_prefix(&ks, b"a/") {
            let (key, _) = pair.unwrap();
            let n = &key[2..];
            for part in ["b", "c"] {
                let other = [part.as_bytes(), b"/", n].concat();
                assert!(txn.get(&ks, &other).unwrap().is_some(), "round {round}: partial transaction");
            }
        }
    }
    assert!(acked_total > 0);
}
