//! Row locks for READ COMMITTED writers.
//!
//! An UPDATE or DELETE in a READ COMMITTED transaction locks each row it is about to write
//! and holds the lock until its transaction ends. A second writer of the row waits instead of
//! failing at COMMIT; once it holds the lock it moves to a fresh snapshot and re-reads the
//! row (PostgreSQL's behaviour: the later update applies to the earlier one's result).
//!
//! Limitation: there is no wait-for graph yet; a wait longer than the lock timeout is
//! reported as a deadlock (40P01), which is what a real deadlock turns into.

use crate::error::{SqlError, SqlResult};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often a waiter checks whether its statement was cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(50);

#[derive(Default)]
pub struct RowLocks {
    state: Mutex<LockState>,
}

#[derive(Default)]
struct LockState {
    holder: HashMap<Vec<u8>, u64>,
    held_by: HashMap<u64, Vec<Vec<u8>>>,
    /// Rows someone waits for: how many wait, and what wakes them. A release wakes only the
    /// waiters of the rows it frees (one condition variable for every row woke every waiter
    /// at every commit, and on a VM each needless wake-up costs a context switch or two).
    waiting: HashMap<Vec<u8>, (usize, Arc<Condvar>)>,
}

impl RowLocks {
    /// Locks `key` for `owner`, waiting up to `timeout` for another owner to release it.
    pub fn acquire(&self, key: Vec<u8>, owner: u64, timeout: Duration) -> SqlResult<()> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().expect("row lock table poisoned");
        loop {
            match state.holder.get(&key) {
                None => {
                    state.holder.insert(key.clone(), owner);
                    state.held_by.entry(owner).or_default().push(key);
                    return Ok(());
                }
                Some(&holder) if holder == owner => return Ok(()),
                Some(_) => {
                    crate::cancel::check()?;
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(SqlError::new(
                            "40P01",
                            format!("deadlock detected: waited more than {timeout:?} for a row lock"),
                        ));
                    }
                    let released = {
                        let entry = state.waiting.entry(key.clone()).or_default();
                        entry.0 += 1;
                        entry.1.clone()
                    };
                    // Wake at least every CANCEL_POLL to notice a cancel of this statement.
                    let wait = (deadline - now).min(CANCEL_POLL);
                    state = released.wait_timeout(state, wait).expect("row lock table poisoned").0;
                    if let Some(entry) = state.waiting.get_mut(&key) {
                        entry.0 -= 1;
                        if entry.0 == 0 {
                            state.waiting.remove(&key);
                        }
                    }
                }
            }
        }
    }

    /// Releases every lock `owner` holds.
    pub fn release_all(&self, owner: u64) {
        let mut state = self.state.lock().expect("row lock table poisoned");
        if let Some(keys) = state.held_by.remove(&owner) {
            for key in keys {
                state.holder.remove(&key);
                if let Some((_, released)) = state.waiting.get(&key) {
                    released.notify_all();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_waits_until_release() {
        let locks = Arc::new(RowLocks::default());
        locks.acquire(b"k".to_vec(), 1, Duration::from_secs(1)).unwrap();
        locks.acquire(b"k".to_vec(), 1, Duration::from_secs(1)).unwrap();
        let waiter = {
            let locks = locks.clone();
            std::thread::spawn(move || locks.acquire(b"k".to_vec(), 2, Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(50));
        locks.release_all(1);
        waiter.join().unwrap().unwrap();
        assert_eq!(locks.acquire(b"k".to_vec(), 3, Duration::from_millis(20)).unwrap_err().code, "40P01");
        assert!(locks.state.lock().unwrap().waiting.is_empty(), "no waiter is left registered");
    }

    /// Waiters of one row take it in turn as each holder releases; waiters of another row
    /// are untouched by those releases and get theirs when it is freed.
    #[test]
    fn waiters_queue_per_row() {
        let locks = Arc::new(RowLocks::default());
        locks.acquire(b"a".to_vec(), 1, Duration::from_secs(1)).unwrap();
        locks.acquire(b"b".to_vec(), 2, Duration::from_secs(1)).unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let waiters: Vec<_> = (10..14u64)
            .map(|owner| {
                let (locks, done) = (locks.clone(), done_tx.clone());
                std::thread::spawn(move || {
                    locks.acquire(b"a".to_vec(), owner, Duration::from_secs(10)).unwrap();
                    done.send(owner).unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                    locks.release_all(owner);
                })
            })
            .collect();
        let b_waiter = {
            let locks = locks.clone();
            std::thread::spawn(move || locks.acquire(b"b".to_vec(), 20, Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(50));
        locks.release_all(1);
        let mut got: Vec<u64> = (0..4).map(|_| done_rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(got, [10, 11, 12, 13]);
        waiters.into_iter().for_each(|w| w.join().unwrap());
        assert!(!b_waiter.is_finished(), "row b is still held by owner 2");
        locks.release_all(2);
        b_waiter.join().unwrap().unwrap();
        assert!(locks.state.lock().unwrap().waiting.is_empty());
    }
}
