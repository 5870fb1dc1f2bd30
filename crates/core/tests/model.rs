//! Model-based test: random interleaved transactions on both engines, checked against a
//! `BTreeMap` model of committed state, per-transaction snapshots and the conflict rule.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use strata_core::{Error, Isolation, Keyspace, Options, Store, SyncMode, Txn};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// What the model knows of one open transaction.
struct ModelTxn {
    txn: Txn,
    start: usize,
    snapshot: BTreeMap<(usize, Vec<u8>), Vec<u8>>,
    writes: BTreeMap<(usize, Vec<u8>), Option<Vec<u8>>>,
    read_points: BTreeSet<(usize, Vec<u8>)>,
    read_ranges: Vec<(usize, Vec<u8>, Vec<u8>)>,
}

impl ModelTxn {
    fn view(&self, ks: usize) -> Map {
        let mut view: Map = self
            .snapshot
            .iter()
            .filter(|((k, _), _)| *k == ks)
            .map(|((_, key), v)| (key.clone(), v.clone()))
            .collect();
        for ((k, key), v) in &self.writes {
            if *k == ks {
                match v {
                    Some(v) => view.insert(key.clone(), v.clone()),
                    None => view.remove(key),
                };
            }
        }
        view
    }
}

fn key(rng: &mut StdRng) -> Vec<u8> {
    // A small key space, so that transactions collide often.
    vec![b'k', rng.random_range(0..12u8)]
}

fn run(store: &Store, seed: u64, isolation: Isolation) {
    let mut rng = StdRng::seed_from_u64(seed);
    let keyspaces: Vec<Keyspace> = vec![store.keyspace("a").unwrap(), store.keyspace("b").unwrap()];
    let mut committed: BTreeMap<(usize, Vec<u8>), Vec<u8>> = BTreeMap::new();
    // The keys written by each commit, in commit order.
    let mut history: Vec<BTreeSet<(usize, Vec<u8>)>> = Vec::new();
    let mut open: Vec<ModelTxn> = Vec::new();
    let (mut commits, mut conflicts) = (0, 0);

    for _ in 0..600 {
        if open.is_empty() || (open.len() < 4 && rng.random_bool(0.2)) {
            let txn = match isolation {
                Isolation::Serializable => store.begin(),
                _ => store.begin_snapshot(),
            };
            open.push(ModelTxn {
                txn,
                start: history.len(),
                snapshot: committed.clone(),
                writes: BTreeMap::new(),
                read_points: BTreeSet::new(),
                read_ranges: Vec::new(),
            });
            continue;
        }
        let i = rng.random_range(0..open.len());
        let ks = rng.random_range(0..keyspaces.len());
        let t = &mut open[i];
        match rng.random_range(0..100) {
            0..30 => {
                let (k, v) = (key(&mut rng), vec![rng.random::<u8>(); rng.random_range(0..4)]);
                t.txn.set(&keyspaces[ks], k.clone(), v.clone()).unwrap();
                t.writes.insert((ks, k), Some(v));
            }
            30..40 => {
                let k = key(&mut rng);
                t.txn.delete(&keyspaces[ks], k.clone()).unwrap();
                t.writes.insert((ks, k), None);
            }
            40..55 => {
                let k = key(&mut rng);
                let got = t.txn.get(&keyspaces[ks], &k).unwrap();
                assert_eq!(got, t.view(ks).get(&k).cloned(), "get {k:?} (seed {seed})");
                if !t.writes.contains_key(&(ks, k.clone())) {
                    t.read_points.insert((ks, k));
                }
            }
            55..75 => {
                let (mut lo, mut hi) = (key(&mut rng), key(&mut rng));
                if lo > hi {
                    std::mem::swap(&mut lo, &mut hi);
                }
                let reverse = rng.random_bool(0.5);
                let range = (Bound::Included(lo.clone()), Bound::Excluded(hi.clone()));
                let got: Vec<_> = if reverse {
                    t.txn.scan_rev(&keyspaces[ks], range).map(Result::unwrap).collect()
                } else {
                    t.txn.scan(&keyspaces[ks], range).map(Result::unwrap).collect()
                };
                let mut want: Vec<_> =
                    t.view(ks).range(lo.clone()..hi.clone()).map(|(k, v)| (k.clone(), v.clone())).collect();
                if reverse {
                    want.reverse();
                }
                assert_eq!(got, want, "scan {lo:?}..{hi:?} reverse={reverse} (seed {seed})");
                t.read_ranges.push((ks, lo, hi));
            }
            75..92 => {
                let t = open.swap_remove(i);
                let concurrent: BTreeSet<_> = history[t.start..].iter().flatten().cloned().collect();
                let written: BTreeSet<_> = t.writes.keys().cloned().collect();
                let mut conflict = concurrent.iter().any(|k| written.contains(k));
                if isolation == Isolation::Serializable {
                    conflict |= concurrent.iter().any(|(ks, k)| {
                        t.read_points.contains(&(*ks, k.clone()))
                            || t.read_ranges.iter().any(|(rks, lo, hi)| rks == ks && k >= lo && k < hi)
                    });
                }
                conflict &= !written.is_empty();
                match t.txn.commit() {
                    Ok(_) => {
                        assert!(!conflict, "commit should have conflicted (seed {seed})");
                        for ((ks, k), v) in t.writes {
                            match v {
                                Some(v) => committed.insert((ks, k), v),
                                None => committed.remove(&(ks, k)),
                            };
                        }
                        history.push(written);
                        commits += 1;
                    }
                    Err(Error::Conflict) => {
                        assert!(conflict, "unexpected conflict (seed {seed})");
                        conflicts += 1;
                    }
                    Err(err) => panic!("commit failed: {err}"),
                }
            }
            _ => {
                open.swap_remove(i).txn.rollback();
            }
        }
    }
    assert!(
        commits > 20 && conflicts > 0,
        "the run exercised too little: {commits} commits, {conflicts} conflicts"
    );

    // A fresh reader sees exactly the committed state, both directions.
    let reader = store.begin_read_only();
    for (ks, handle) in keyspaces.iter().enumerate() {
        let want: Vec<_> = committed
            .iter()
            .filter(|((k, _), _)| *k == ks)
            .map(|((_, key), v)| (key.clone(), v.clone()))
            .collect();
        let got: Vec<_> = reader.scan(handle, ..).map(Result::unwrap).collect();
        assert_eq!(got, want);
        let mut got_rev: Vec<_> = reader.scan_rev(handle, ..).map(Result::unwrap).collect();
        got_rev.reverse();
        assert_eq!(got_rev, want);
    }
}

#[test]
fn memory_engine_matches_model() {
    for seed in 0..20 {
        run(&Store::memory(), seed, Isolation::Serializable);
        run(&Store::memory(), seed, Isolation::Snapshot);
    }
}

#[test]
fn fjall_engine_matches_model() {
    for seed in 0..6 {
        for isolation in [Isolation::Serializable, Isolation::Snapshot] {
            let dir = tempfile::tempdir().unwrap();
            let options = Options {
                sync: SyncMode::Periodic(std::time::Duration::from_millis(50)),
                ..Options::default()
            };
            run(&Store::open(dir.path(), options).unwrap(), seed, isolation);
        }
    }
}
