//! The one writer of the lock keyspace: a thread that takes every write queued since its
//! last batch and applies them as one core transaction, then answers each.
//!
//! Batching here, rather than one core commit per lease, is what lets 50 clients share an
//! fsync without 50 blocking threads waking for it. One writer also means writes reach
//! the journal in the order they were queued: a grant queued after a release is never
//! durable without that release.
//!
//! ## Two stages: apply, then wait for the fsync
//!
//! ```text
//!   queue ─► writer thread: apply batch (journal written to the OS) ─► answer `Written` jobs
//!                                 │
//!                                 └─► sync thread: wait for the fsync ─► answer `Synced` jobs
//! ```
//!
//! The writer applies a batch with [`strata_core::Txn::commit_unsynced`] and hands the
//! jobs that must be fsynced to the sync thread, then takes the next batch while that
//! fsync runs. Before, it waited for each fsync itself, and a commit cycle was an apply
//! plus an fsync (250 µs measured under the lock bench, with an 18-lease average batch),
//! nothing overlapping.
//!
//! A job is `Synced` (a grant, an extension, a raise of the token ceiling: answered once
//! on disk) or `Written` (a release, an expired hold's deletion: answered once in the
//! journal written to the OS). A written job survives `kill -9` like any other, and the
//! next fsync, which its commit asks for at once, makes it durable. Only a power loss before
//! that fsync can undo it, and then what comes back is a hold that was released: the
//! resource stays taken until that hold's TTL, and no two owners ever hold it at once.
//! A lost grant or extension, by contrast, could let a second owner in while the first
//! still acts on its answer, so those wait for their fsync.
//!
//! ## Answers go through a relay per single-threaded runtime
//!
//! A task of a current-thread tokio runtime (the resp front's I/O threads) woken from
//! another thread costs a write to that runtime's eventfd, every time: that scheduler does
//! not track whether its thread is already awake. Answering a batch of 25 leases one
//! oneshot at a time made 25 such writes and up to 25 wake-ups of the I/O thread
//! (`strace` of the writer under the lock bench: 22.8k eventfd writes a second, one per
//! lease). So the answers for tasks of such a runtime go to a relay task on it, over a
//! channel whose first message of a batch wakes it (later ones find it woken); the relay
//! then answers each oneshot from inside the runtime, where a wake is a push onto the local
//! run queue: about 1.7 eventfd writes a batch. Tasks of multi-thread runtimes, whose
//! wakes are cheap already, and callers outside a runtime are answered directly.

use crate::{LockError, LockResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};
use strata_core::{Keyspace, Store};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{mpsc as async_mpsc, oneshot};

/// Key writes: a value sets, `None` deletes.
pub type Ops = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Where a queued write's answer goes.
type Done = oneshot::Sender<LockResult<()>>;

/// A relay: a channel to the task that answers on its runtime's own thread.
type Relay = async_mpsc::UnboundedSender<(Done, LockResult<()>)>;

/// When a job is answered.
#[derive(Clone, Copy, PartialEq)]
pub enum Durability {
    /// Once fsynced.
    Synced,
    /// Once in the journal, written to the OS (survives `kill -9`); fsynced soon after.
    Written,
}

struct Job {
    ops: Ops,
    durability: Durability,
    done: Option<(Done, Option<Relay>)>,
}

/// Most writes applied together.
const MAX_BATCH: usize = 4096;

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
    /// The relay of each current-thread runtime that has queued a write.
    relays: Arc<Mutex<HashMap<tokio::runtime::Id, Relay>>>,
}

impl Writer {
    /// Starts the writer and sync threads; they end when every `Writer` is dropped.
    pub fn start(store: Store, ks: Keyspace) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let (to_sync, applied) = mpsc::channel::<(u64, Vec<Job>)>();
        let syncing = store.clone();
        std::thread::Builder::new().name("lock-sync".into()).spawn(move || sync_loop(&syncing, &applied))?;
        std::thread::Builder::new().name("lock-writer".into()).spawn(move || {
            while let Ok(first) = jobs.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                metrics::histogram!("strata_lock_commit_batch").record(batch.len() as f64);
                let applied = apply(&store, &ks, &batch);
                let (synced, written): (Vec<Job>, Vec<Job>) =
                    batch.into_iter().partition(|job| job.durability == Durability::Synced);
                answer_all(written, &applied.as_ref().map(|_| ()));
                match applied {
                    Ok(seq) if !synced.is_empty() => {
                        // A send fails only when the sync thread is gone, its jobs with it.
                        let _ = to_sync.send((seq, synced));
                    }
                    Ok(_) => {}
                    Err(err) => answer_all(synced, &Err(err)),
                }
            }
        })?;
        Ok(Writer { queue, relays: Arc::default() })
    }

    /// Queues `ops`; the receiver answers once they are applied with `durability`.
    pub fn queue(&self, ops: Ops, durability: Durability) -> oneshot::Receiver<LockResult<()>> {
        let (done, rx) = oneshot::channel();
        // A send fails only when the thread is gone; the dropped sender then closes `rx`.
        let _ = self.queue.send(Job { ops, durability, done: Some((done, self.relay())) });
        rx
    }

    /// The relay of the current runtime when it is a current-thread one, started on its
    /// first use there.
    fn relay(&self) -> Option<Relay> {
        let runtime = Handle::try_current().ok()?;
        if runtime.runtime_flavor() != RuntimeFlavor::CurrentThread {
            return None;
        }
        let mut relays = self.relays.lock().expect("relay lock poisoned");
        if let Some(relay) = relays.get(&runtime.id()).filter(|relay| !relay.is_closed()) {
            return Some(relay.clone());
        }
        // The relays of runtimes that have shut down go with this one's arrival.
        relays.retain(|_, relay| !relay.is_closed());
        let (relay, mut answers) = async_mpsc::unbounded_channel::<(Done, LockResult<()>)>();
        runtime.spawn(async move {
            while let Some((done, answer)) = answers.recv().await {
                let _ = done.send(answer);
            }
        });
        relays.insert(runtime.id(), relay.clone());
        Some(relay)
    }

    /// Queues `ops` without waiting for them (expired holds).
    pub fn queue_detached(&self, ops: Ops) {
        let _ = self.queue.send(Job { ops, durability: Durability::Written, done: None });
    }
}

/// The sync thread: waits for the fsync covering each applied batch, then answers its
/// jobs. Batches applied while it waited are covered by one wait for the newest of them.
fn sync_loop(store: &Store, applied: &mpsc::Receiver<(u64, Vec<Job>)>) {
    while let Ok((mut seq, mut jobs)) = applied.recv() {
        while let Ok((later, more)) = applied.try_recv() {
            seq = later;
            jobs.extend(more);
        }
        let synced = store.wait_synced(seq).map(|_| ());
        if let Err(err) = &synced {
            tracing::error!(%err, "syncing lock writes failed");
        }
        answer_all(jobs, &synced.map_err(|err| err.to_string()));
    }
}

/// Answers every job of `jobs` with `result`.
fn answer_all(jobs: Vec<Job>, result: &Result<(), impl std::fmt::Display>) {
    for job in jobs {
        if let Some((done, relay)) = job.done {
            let answer = match result {
                Ok(()) => Ok(()),
                Err(err) => Err(LockError::Storage(strata_core::Error::Unavailable(err.to_string()))),
            };
            answer_via(relay.as_ref(), done, answer);
        }
    }
}

/// Answers through `relay` when there is one (and its runtime still runs), else directly.
fn answer_via(relay: Option<&Relay>, done: Done, answer: LockResult<()>) {
    let unsent = match relay {
        Some(relay) => match relay.send((done, answer)) {
            Ok(()) => return,
            Err(async_mpsc::error::SendError(unsent)) => unsent,
        },
        None => (done, answer),
    };
    let _ = unsent.0.send(unsent.1);
}

/// Applies the batch's writes as one transaction, without waiting for its fsync; returns
/// its sequence number.
fn apply(store: &Store, ks: &Keyspace, batch: &[Job]) -> Result<u64, String> {
    let mut txn = store.begin();
    for job in batch {
        for (key, value) in &job.ops {
            let set = match value {
                Some(v) => txn.set(ks, key.clone(), v.clone()),
                None => txn.delete(ks, key.clone()),
            };
            set.map_err(|err| err.to_string())?;
        }
    }
    txn.commit_unsynced().map_err(|err| {
        tracing::error!(%err, "committing lock writes failed");
        err.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> Writer {
        let store = Store::memory();
        let ks = store.keyspace("lock").unwrap();
        Writer::start(store, ks).unwrap()
    }

    #[test]
    fn tasks_of_current_thread_runtimes_are_answered_through_their_relay() {
        let writer = writer();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let answers = runtime.block_on(async {
            let pending: Vec<_> =
                (0..50u8).map(|i| writer.queue(vec![(vec![i], Some(vec![i]))], Durability::Synced)).collect();
            let mut answers = Vec::new();
            for rx in pending {
                answers.push(rx.await.expect("answered"));
            }
            answers
        });
        assert!(answers.iter().all(Result::is_ok));
        assert_eq!(writer.relays.lock().unwrap().len(), 1, "one relay for the runtime");

        // A runtime that is gone leaves its relay closed; its successor's arrival removes it.
        drop(runtime);
        let next = tokio::runtime::Builder::new_current_thread().build().unwrap();
        next.block_on(writer.queue(vec![(b"k".to_vec(), None)], Durability::Synced)).unwrap().unwrap();
        assert_eq!(writer.relays.lock().unwrap().len(), 1);

        // Multi-thread runtimes and plain threads are answered directly.
        let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        multi.block_on(writer.queue(vec![(b"m".to_vec(), None)], Durability::Synced)).unwrap().unwrap();
        writer.queue(vec![(b"t".to_vec(), None)], Durability::Synced).blocking_recv().unwrap().unwrap();
        assert_eq!(writer.relays.lock().unwrap().len(), 1);
    }

    #[test]
    fn an_answer_whose_relay_is_gone_is_sent_directly() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let writer = writer();
        let relay = runtime.block_on(async { writer.relay() }).expect("a current-thread runtime has one");
        drop(runtime);
        let (done, rx) = oneshot::channel();
        answer_via(Some(&relay), done, Ok(()));
        assert!(rx.blocking_recv().unwrap().is_ok());
    }
}
