//! The memory engine: multi-version ordered maps, for tests and throwaway stores.
//!
//! Each key keeps its versions as `(batch number, value or tombstone)`; a snapshot is a batch
//! number and sees, for each key, the newest version at or below it. Scans read in chunks so
//! that no lock is held while the caller consumes the iterator.
//!
//! Limitation: old versions are never collected; the engine is meant for tests, not for
//! long-running stores.

use super::{Engine, KsId, Op, Pair, PairIter, Snapshot};
use crate::Result;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock};

type Versions = Vec<(u64, Option<Arc<[u8]>>)>;

#[derive(Default)]
struct State {
    names: Vec<String>,
    keyspaces: Vec<BTreeMap<Vec<u8>, Versions>>,
    batch: u64,
}

#[derive(Default)]
pub(crate) struct MemoryEngine {
    state: Arc<RwLock<State>>,
}

impl Engine for MemoryEngine {
    fn open_keyspace(&self, name: &str, _tuning: &crate::KeyspaceTuning) -> Result<KsId> {
        let mut state = self.state.write().expect("memory engine lock poisoned");
        if let Some(id) = state.names.iter().position(|n| n == name) {
            return Ok(id);
        }
        state.names.push(name.to_string());
        state.keyspaces.push(BTreeMap::new());
        Ok(state.keyspaces.len() - 1)
    }

    fn snapshot(&self) -> Arc<dyn Snapshot> {
        let at = self.state.read().expect("memory engine lock poisoned").batch;
        Arc::new(MemorySnapshot { state: self.state.clone(), at })
    }

    fn apply(&self, ops: Vec<Op>) -> Result<()> {
        let mut state = self.state.write().expect("memory engine lock poisoned");
        state.batch += 1;
        let batch = state.batch;
        for (ks, key, value) in ops {
            let versions = state.keyspaces[ks].entry(key).or_default();
            let value = value.map(Arc::from);
            match versions.last_mut() {
                Some((b, v)) if *b == batch => *v = value,
                _ => versions.push((batch, value)),
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

struct MemorySnapshot {
    state: Arc<RwLock<State>>,
    at: u64,
}

fn visible(versions: &Versions, at: u64) -> Option<&Arc<[u8]>> {
    versions.iter().rev().find(|(b, _)| *b <= at).and_then(|(_, v)| v.as_ref())
}

impl Snapshot for MemorySnapshot {
    fn get(&self, ks: KsId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let state = self.state.read().expect("memory engine lock poisoned");
        Ok(state.keyspaces[ks].get(key).and_then(|v| visible(v, self.at)).map(|v| v.to_vec()))
    }

    fn scan(&self, ks: KsId, range: (Bound<Vec<u8>>, Bound<Vec<u8>>), reverse: bool) -> PairIter {
        Box::new(ChunkedScan {
            state: self.state.clone(),
            at: self.at,
            ks,
            range,
            reverse,
            buffer: VecDeque::new(),
            exhausted: false,
        })
    }
}

/// Reads `CHUNK` visible pairs at a time, narrowing its range past what it has returned.
struct ChunkedScan {
    state: Arc<RwLock<State>>,
    at: u64,
    ks: KsId,
    range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    reverse: bool,
    buffer: VecDeque<Pair>,
    exhausted: bool,
}

const CHUNK: usize = 256;

impl ChunkedScan {
    fn refill(&mut self) {
        if !is_nonempty(&self.range) {
            self.exhausted = true;
            return;
        }
        let state = self.state.read().expect("memory engine lock poisoned");
        let map = &state.keyspaces[self.ks];
        let range = (self.range.0.as_ref().map(Vec::as_slice), self.range.1.as_ref().map(Vec::as_slice));
        let entries = map.range::<[u8], _>(range);
        let mut visible_pairs = |iter: &mut dyn Iterator<Item = (&Vec<u8>, &Versions)>| {
            for (k, versions) in iter {
                if let Some(v) = visible(versions, self.at) {
                    self.buffer.push_back((k.clone(), v.to_vec()));
                    if self.buffer.len() == CHUNK {
                        return false;
                    }
                }
            }
            true
        };
        self.exhausted =
            if self.reverse { visible_pairs(&mut entries.rev()) } else { visible_pairs(&mut { entries }) };
        if let Some((last, _)) = self.buffer.back() {
            if self.reverse {
                self.range.1 = Bound::Excluded(last.clone());
            } else {
                self.range.0 = Bound::Excluded(last.clone());
            }
        }
    }
}

impl Iterator for ChunkedScan {
    type Item = Result<Pair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.exhausted {
            self.refill();
        }
        self.buffer.pop_front().map(Ok)
    }
}

/// Whether a range can hold any key (`BTreeMap::range` panics on an inverted range).
fn is_nonempty(range: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> bool {
    match range {
        (Bound::Included(s), Bound::Included(e)) => s <= e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s < e,
        _ => true,
    }
}
